"""Synthetic long-context tasks for chapter 6 (issue 15): passkey, RULER-style NIAH, variable tracking, cwe.

- :mod:`.vocab`: :class:`Vocab` / :data:`VOCAB`, the one small vocabulary (ids <-> strings) of every task.
- :mod:`.generators`: :func:`make_sample` (seeded; needle at a chosen depth, :func:`needle_start`) and
  :func:`solve` (each task's answer read from the prompt alone); the token format of each task.
- :mod:`.scoring`: :func:`exact_match`.
- :mod:`.mqar`: multi-query associative recall (Zoology, chapter 8): :func:`make_mqar`, :func:`mqar_batch`,
  :func:`score_mqar` (its own sequence layout: every query answered in place, teacher-forced).

Example::

    from longctx_lab.lm.tasks import VOCAB, make_sample
    s = make_sample("passkey", 64, depth=0.25, seed=0)
    VOCAB.decode(s.prompt[s.needle_positions[0]:][:8])   # 'pass = d d d d d ;'

Conventions and errors: docs/conventions.md.
"""

from longctx_lab.lm.tasks.generators import NEEDLE_TASKS, TASKS, Sample, check_task, make_sample, needle_start, solve
from longctx_lab.lm.tasks.mqar import MQAR_KEYS, MQAR_VALUES, MQARSample, make_mqar, mqar_batch, score_mqar, solve_mqar
from longctx_lab.lm.tasks.scoring import exact_match
from longctx_lab.lm.tasks.vocab import VOCAB, Vocab

__all__ = ["MQAR_KEYS", "MQAR_VALUES", "NEEDLE_TASKS", "TASKS", "VOCAB", "MQARSample", "Sample", "Vocab", "check_task",
           "exact_match", "make_mqar", "make_sample", "mqar_batch", "needle_start", "score_mqar", "solve", "solve_mqar"]
