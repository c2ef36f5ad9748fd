"""Synthetic long-context tasks for chapter 6 (issue 15): passkey, RULER-style NIAH, variable tracking, cwe.

- :mod:`.vocab`: :class:`Vocab` / :data:`VOCAB`, the one small vocabulary (ids <-> strings) of every task.
- :mod:`.generators`: :func:`make_sample` (seeded; needle at a chosen depth, :func:`needle_start`) and
  :func:`solve` (each task's answer read from the prompt alone); the token format of each task.
- :mod:`.scoring`: :func:`exact_match`.

Example::

    from longctx_lab.lm.tasks import VOCAB, make_sample
    s = make_sample("passkey", 64, depth=0.25, seed=0)
    VOCAB.decode(s.prompt[s.needle_positions[0]:][:8])   # 'pass = d d d d d ;'

Conventions and errors: docs/conventions.md.
"""

from longctx_lab.lm.tasks.generators import NEEDLE_TASKS, TASKS, Sample, check_task, make_sample, needle_start, solve
from longctx_lab.lm.tasks.scoring import exact_match
from longctx_lab.lm.tasks.vocab import VOCAB, Vocab

__all__ = ["NEEDLE_TASKS", "TASKS", "VOCAB", "Sample", "Vocab", "check_task", "exact_match", "make_sample",
           "needle_start", "solve"]
