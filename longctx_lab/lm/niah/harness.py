"""The needle-in-a-haystack grid: context lengths x needle depths, seeded trials, exact match, effective length.

:func:`run_niah` makes ``trials`` samples per cell (:func:`longctx_lab.lm.tasks.make_sample`, the trial's seed
``SeedSequence([seed, length, depth_index, trial])``), asks the adapter (:mod:`.adapters`) for ``len(answer)``
tokens and scores by :func:`longctx_lab.lm.tasks.exact_match`. :class:`NIAHResult` holds the
``accuracy[depth_index][length_index]`` table, every trial's record, the accuracy by needle depth over all
lengths (the "lost in the middle" curve) and by length, and RULER's effective length (:func:`effective_length`).
:func:`write_json` records it with the command, device, versions and date (as ``longctx_lab.cli.bench`` does).
Tasks without a needle (``cwe``) take ``depths=None``: one row, depth ``None``.

Conventions and errors: docs/conventions.md. This module draws nothing (see :mod:`.plot`).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from longctx_lab.core.display import progress
from longctx_lab.core.validate import check_int, check_number
from longctx_lab.lm.tasks import NEEDLE_TASKS, check_task, exact_match, make_sample

__all__ = ["RULER_THRESHOLD", "NIAHResult", "effective_length", "load_json", "run_niah", "trial_seed", "write_json"]

RULER_THRESHOLD = 0.856  # RULER's threshold: Llama-2-7B's score at 4K


def trial_seed(seed: int, length: int, depth_index: int, trial: int) -> int:
    """The seed of one trial: ``SeedSequence([seed, length, depth_index, trial])``'s first 32-bit word."""
    return int(np.random.SeedSequence([seed, length, depth_index, trial]).generate_state(1)[0])


def effective_length(scores: dict, threshold: float = RULER_THRESHOLD) -> int | None:
    """RULER's effective length: the longest length ``L`` such that the score at ``L`` and at every shorter
    length in ``scores`` (``{length: accuracy in [0, 1]}``) is ``>= threshold``; ``None`` when the shortest
    already falls below it. A length after a failing one does not count, even if it scores well."""
    threshold = check_number("threshold", threshold, minimum=0.0, maximum=1.0)
    if not isinstance(scores, dict) or not scores:
        raise ValueError(f"scores must be a non-empty dict {{length: accuracy}}, got {scores!r}")
    best = None
    for length in sorted(scores):
        check_int("scores' length", length, minimum=1)
        acc = check_number(f"scores[{length}]", scores[length], minimum=0.0, maximum=1.0)
        if acc < threshold:
            break
        best = length
    return best


@dataclass
class NIAHResult:
    """A grid's outcome. ``accuracy[i][j]``: fraction correct at ``depths[i]``, ``lengths[j]``; ``records``:
    one dict per trial (``length``, ``depth``, ``trial``, ``seed``, ``answer``, ``prediction``, ``correct``)."""

    task: str
    lengths: list[int]
    depths: list[float | None]
    trials: int
    seed: int
    options: dict
    accuracy: list[list[float]]
    records: list[dict] = field(default_factory=list)

    def by_depth(self) -> list[float]:
        """Accuracy per depth, averaged over lengths (the "lost in the middle" curve), ``len(depths)``."""
        return [float(np.mean(row)) for row in self.accuracy]

    def by_length(self) -> dict[int, float]:
        """Accuracy per length, averaged over depths: ``{length: accuracy}``."""
        table = np.asarray(self.accuracy)
        return {length: float(table[:, j].mean()) for j, length in enumerate(self.lengths)}

    def effective_length(self, threshold: float = RULER_THRESHOLD) -> int | None:
        """:func:`effective_length` of :meth:`by_length`."""
        return effective_length(self.by_length(), threshold)

    def to_dict(self, threshold: float = RULER_THRESHOLD) -> dict:
        out = asdict(self)
        out.update(by_depth=self.by_depth(), by_length={str(k): v for k, v in self.by_length().items()},
                   threshold=threshold, effective_length=self.effective_length(threshold))
        return out


def _lengths(lengths) -> list[int]:
    if isinstance(lengths, (str, bytes)) or not hasattr(lengths, "__iter__"):
        raise TypeError(f"lengths must be a list of integers, got {type(lengths).__name__}")
    out = [check_int("lengths' entries", x, minimum=1) for x in lengths]
    if not out or len(set(out)) != len(out):
        raise ValueError(f"lengths must be a non-empty list of distinct integers, got {list(lengths)!r}")
    return sorted(out)


def _depths(task: str, depths) -> list[float | None]:
    if task not in NEEDLE_TASKS:
        if depths is not None:
            raise ValueError(f"depths must be None for task {task!r} (it has no needle), got {depths!r}")
        return [None]
    if depths is None or isinstance(depths, (str, bytes)) or not hasattr(depths, "__iter__"):
        raise ValueError(f"depths must be a non-empty list of numbers in [0, 1], got {depths!r}")
    out = [check_number("depths' entries", d) for d in depths]
    bad = [d for d in out if not 0.0 <= d <= 1.0]
    if not out or bad:
        raise ValueError(f"depths must be a non-empty list of numbers in [0, 1], got {list(depths)!r}")
    return out


def run_niah(adapter, task: str = "passkey", *, lengths=(64, 128, 256), depths=(0.0, 0.25, 0.5, 0.75, 1.0),
             trials: int = 5, seed: int = 0, show_progress: bool = True, **options) -> NIAHResult:
    """Score ``adapter`` on ``task`` over ``lengths`` (context tokens) x ``depths`` (module docstring).

    ``options`` go to :func:`~longctx_lab.lm.tasks.make_sample` (e.g. ``n_digits=3``); every cell is checked
    (a depth outside [0, 1], a length too short for the needles) before the adapter is called.
    """
    task = check_task(task)
    if not callable(getattr(adapter, "predict", None)):
        raise TypeError(f"adapter must have a predict(prompt_ids, max_new_tokens) method, got {type(adapter).__name__}")
    lengths, depths = _lengths(lengths), _depths(task, depths)
    trials = check_int("trials", trials, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    cells = [(i, j) for i in range(len(depths)) for j in range(len(lengths))]
    samples = {(i, j, t): make_sample(task, lengths[j], depths[i], seed=trial_seed(seed, lengths[j], i, t), **options)
               for i, j in cells for t in range(trials)}
    correct = np.zeros((len(depths), len(lengths)), dtype=np.int64)
    records = []
    items = progress(sorted(samples.items()), desc=f"niah {task}") if show_progress else sorted(samples.items())
    for (i, j, t), sample in items:
        prediction = [int(x) for x in adapter.predict(list(sample.prompt), len(sample.answer))]
        ok = exact_match(prediction, sample.answer)
        correct[i, j] += ok
        records.append({"length": lengths[j], "depth": depths[i], "trial": t, "seed": sample.seed,
                        "needle_positions": sample.needle_positions, "answer": sample.answer,
                        "prediction": prediction, "correct": ok})
    accuracy = (correct / trials).tolist()
    return NIAHResult(task, lengths, depths, trials, seed, dict(options), accuracy, records)


def _versions() -> dict:
    import torch

    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__}


def write_json(result: NIAHResult, path, *, command: str | None = None, device: str = "cpu", model: str = "",
               threshold: float = RULER_THRESHOLD) -> Path:
    """Write ``result`` (:meth:`NIAHResult.to_dict`) with ``command`` (default: this process's argv), ``device``,
    ``model`` (a description), versions and the UTC date to ``path``; returns the path."""
    if not isinstance(result, NIAHResult):
        raise TypeError(f"result must be a NIAHResult, got {type(result).__name__}")
    path = Path(path)
    payload = {"command": command if command is not None else " ".join(sys.argv), "device": device, "model": model,
               "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **_versions(),
               **result.to_dict(threshold)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def load_json(path) -> NIAHResult:
    """The :class:`NIAHResult` stored by :func:`write_json`."""
    data = json.loads(Path(path).read_text())
    names = ("task", "lengths", "depths", "trials", "seed", "options", "accuracy", "records")
    missing = [k for k in names if k not in data]
    if missing:
        raise ValueError(f"path must be a JSON written by longctx_lab.lm.niah.write_json, got {path} without {missing}")
    return NIAHResult(**{k: data[k] for k in names})
