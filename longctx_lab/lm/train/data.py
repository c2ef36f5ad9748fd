"""Training batches for the synthetic tasks: ``(tokens, targets)`` with the loss on the answer only.

A batch is ``batch_size`` samples of :func:`longctx_lab.lm.tasks.make_sample`, all with the same context length
(no padding): ``tokens`` ``(batch, prompt_len + answer_len - 1)`` is the prompt followed by the answer minus its
last token, and ``targets`` the same shape, ``-100`` (ignored by ``cross_entropy``) everywhere except the
positions that predict an answer token (teacher forcing). Needle depths are uniform in [0, 1].

Seeds: sample ``i`` of step ``s`` uses ``SeedSequence([TRAIN_STREAM, seed, s, i])``, a stream disjoint from
the evaluation seeds of :func:`longctx_lab.lm.niah.trial_seed` (which start with the run's seed, never
:data:`TRAIN_STREAM`), so a model is never scored on a prompt it was trained on by construction of the seeds.
The context length of step ``s`` comes from ``SeedSequence([TRAIN_STREAM, seed, s])``: fixed when
``seq_len`` is an int, uniform over ``[lo, hi]`` when it is a pair.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from longctx_lab.core.validate import check_int
from longctx_lab.lm.tasks import TASKS, check_task, make_sample, mqar_batch

__all__ = ["IGNORE", "TRAIN_STREAM", "TRAIN_TASKS", "check_seq_len", "check_train_task", "make_batch", "step_length"]

#: What :func:`make_batch` (and so the training loop) can train on: the chapter-6 tasks and MQAR (chapter 8,
#: :mod:`longctx_lab.lm.tasks.mqar`: ``seq_len`` is then the whole sequence's length, ``task_options`` take
#: ``n_pairs`` (default 4; a list: each step draws one, seeded, as Zoology trains on several) and ``n_queries``).
TRAIN_TASKS = (*TASKS, "mqar")

IGNORE = -100
#: First word of every training seed (an arbitrary constant, > any evaluation seed the course uses first).
TRAIN_STREAM = 7_919_000_001


def check_seq_len(seq_len) -> tuple[int, int]:
    """``seq_len`` as ``(lo, hi)``: an int ``n`` is ``(n, n)``, a pair ``(lo, hi)`` needs ``1 <= lo <= hi``."""
    if isinstance(seq_len, numbers.Integral) and not isinstance(seq_len, bool):
        n = check_int("seq_len", seq_len, minimum=1)
        return n, n
    if isinstance(seq_len, (tuple, list)) and len(seq_len) == 2:
        lo = check_int("seq_len[0]", seq_len[0], minimum=1)
        hi = check_int("seq_len[1]", seq_len[1], minimum=lo)
        return lo, hi
    raise TypeError(f"seq_len must be an int or a (lo, hi) pair of ints, got {type(seq_len).__name__} {seq_len!r}")


def _rng(*words: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([TRAIN_STREAM, *words]))


def step_length(seq_len, seed: int, step: int) -> int:
    """The context length of training step ``step`` (see the module docstring)."""
    lo, hi = check_seq_len(seq_len)
    return lo if lo == hi else int(_rng(seed, step).integers(lo, hi + 1))


#: The options ``train(task="mqar", task_options=...)`` takes (``n_pairs`` may be a list: one drawn per batch).
MQAR_OPTIONS = ("n_pairs", "n_queries")


def check_train_task(task) -> str:
    """Return ``task`` if it is one of :data:`TRAIN_TASKS`, else ``ValueError`` naming it."""
    if not isinstance(task, str) or task not in TRAIN_TASKS:
        raise ValueError(f"task must be one of {list(TRAIN_TASKS)}, got {task!r}")
    return task


def _mqar_batch(seq_len, batch_size, seed, step, options) -> tuple[torch.Tensor, torch.Tensor]:
    unknown = sorted(set(options) - set(MQAR_OPTIONS))
    if unknown:
        raise ValueError(f"options of task 'mqar' must be among {list(MQAR_OPTIONS)}, got {unknown}")
    pairs = options.get("n_pairs", 4)
    if isinstance(pairs, (list, tuple)):
        if not pairs:
            raise ValueError("n_pairs must be an int or a non-empty list of ints, got []")
        pairs = pairs[int(_rng(seed, step, 2**40).integers(0, len(pairs)))]  # a word no row index takes
    return mqar_batch(pairs, step_length(seq_len, seed, step), batch_size, seed=seed, step=step,
                      n_queries=options.get("n_queries"), stream=TRAIN_STREAM)


def make_batch(task: str, seq_len, batch_size: int, *, seed: int = 0, step: int = 0,
               task_options: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens, targets)``, both ``(batch_size, T)`` int64, for training step ``step`` (module docstring)."""
    if task == "mqar":
        if task_options is not None and not isinstance(task_options, dict):
            raise TypeError(f"task_options must be a dict or None, got {type(task_options).__name__}")
        return _mqar_batch(seq_len, batch_size, check_int("seed", seed, minimum=0),
                           check_int("step", step, minimum=0), task_options or {})
    task = check_task(task)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    step = check_int("step", step, minimum=0)
    if task_options is not None and not isinstance(task_options, dict):
        raise TypeError(f"task_options must be a dict or None, got {type(task_options).__name__}")
    length = step_length(seq_len, seed, step)
    rows, targets = [], []
    for i in range(batch_size):
        rng = _rng(seed, step, i)
        depth = None if task == "cwe" else float(rng.random())
        sample = make_sample(task, length, depth, seed=int(rng.integers(0, 2**63 - 1)), **(task_options or {}))
        seq = sample.prompt + sample.answer
        target = [IGNORE] * len(seq)
        p = len(sample.prompt)
        target[p - 1: p - 1 + len(sample.answer)] = sample.answer
        rows.append(seq[:-1])
        targets.append(target[:-1])
    return torch.tensor(rows, dtype=torch.long), torch.tensor(targets, dtype=torch.long)
