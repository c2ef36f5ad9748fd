"""Batched needle-in-a-haystack scoring of a :class:`~longctx_lab.lm.model.TinyLM`, by teacher forcing.

:func:`evaluate_grid` scores the same grid as :func:`longctx_lab.lm.niah.run_niah` (same samples: trial ``t`` of
cell ``(depth i, length j)`` uses :func:`longctx_lab.lm.niah.trial_seed`) with one forward per cell instead of
one generation per trial. Exact match under greedy decoding equals "the argmax at every answer position,
with the true answer fed in before it, is the answer token": if every teacher-forced argmax is right, greedy
decoding writes exactly the answer; if one is wrong, greedy decoding first differs there (the tokens before
it are the answer's, so its input is the same). The rounding of a cached decode and of one full forward
differ in the last bits, so the two agree except on exact ties of the argmax.

:func:`needle_distance` is how far back the answer's first token must look: from the position that predicts
it (the ``<a>`` token) to the first value token of the queried needle.
"""

from __future__ import annotations

import numpy as np
import torch

from longctx_lab.core.validate import check_int
from longctx_lab.lm.niah import NIAHResult, trial_seed
from longctx_lab.lm.niah.harness import _depths, _lengths
from longctx_lab.lm.tasks import check_task, make_sample

__all__ = ["evaluate_grid", "needle_distance"]

#: Tokens between a needle's first token and its first value token (``pass =`` / ``Ki =``).
VALUE_OFFSET = 2


def needle_distance(sample) -> int:
    """Positions from the one predicting the first answer token (the prompt's last, ``<a>``) back to the queried
    needle's first value token: ``len(prompt) - 1 - (needle_positions[0] + 2)``."""
    if not getattr(sample, "needle_positions", None):
        raise ValueError(f"sample must be a needle task's Sample (with needle_positions), got {sample!r}")
    return len(sample.prompt) - 1 - (sample.needle_positions[0] + VALUE_OFFSET)


@torch.no_grad()
def _score(model, samples: list) -> list[bool]:
    """Teacher-forced exact match of each sample (all with one prompt and answer length)."""
    rows = torch.tensor([s.prompt + s.answer[:-1] for s in samples], dtype=torch.long, device=model.device)
    answers = torch.tensor([s.answer for s in samples], dtype=torch.long, device=model.device)
    p, n = len(samples[0].prompt), answers.shape[1]
    logits = model(rows)[:, p - 1:p - 1 + n]
    return (logits.argmax(-1) == answers).all(dim=1).tolist()


def evaluate_grid(model, task: str = "passkey", *, lengths=(64, 128), depths=(0.0, 0.25, 0.5, 0.75, 1.0),
                  trials: int = 8, seed: int = 0, batch_size: int = 64, keep_distances: bool = False,
                  **options) -> NIAHResult:
    """Score ``model`` on ``task`` over ``lengths`` x ``depths`` with ``trials`` seeded samples per cell.

    The samples are :func:`longctx_lab.lm.niah.run_niah`'s for the same ``seed`` and ``options`` (e.g.
    ``n_digits=5``); scoring is teacher-forced (module docstring), ``batch_size`` samples per forward.
    Returns a :class:`~longctx_lab.lm.niah.NIAHResult` (``accuracy[depth_index][length_index]``) whose records
    hold ``length``, ``depth``, ``trial``, ``correct`` and, with ``keep_distances``, ``distance``
    (:func:`needle_distance`).
    """
    from longctx_lab.lm.model import TinyLM

    if not isinstance(model, TinyLM):
        raise TypeError(f"model must be a TinyLM, got {type(model).__name__}")
    task = check_task(task)
    lengths, depths = _lengths(lengths), _depths(task, depths)
    trials = check_int("trials", trials, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    correct = np.zeros((len(depths), len(lengths)), dtype=np.int64)
    records = []
    was_training = model.training
    model.eval()
    try:
        for i, depth in enumerate(depths):
            for j, length in enumerate(lengths):
                samples = [make_sample(task, length, depth, seed=trial_seed(seed, length, i, t), **options)
                           for t in range(trials)]
                groups: dict[tuple[int, int], list[int]] = {}
                for t, s in enumerate(samples):
                    groups.setdefault((len(s.prompt), len(s.answer)), []).append(t)
                ok = [False] * trials
                for members in groups.values():
                    for start in range(0, len(members), batch_size):
                        chunk = members[start:start + batch_size]
                        for t, good in zip(chunk, _score(model, [samples[t] for t in chunk]), strict=True):
                            ok[t] = bool(good)
                correct[i, j] = sum(ok)
                for t, s in enumerate(samples):
                    rec = {"length": length, "depth": depth, "trial": t, "correct": ok[t]}
                    if keep_distances:
                        rec["distance"] = needle_distance(s)
                    records.append(rec)
    finally:
        model.train(was_training)
    return NIAHResult(task, lengths, depths, trials, seed, dict(options), (correct / trials).tolist(), records)
