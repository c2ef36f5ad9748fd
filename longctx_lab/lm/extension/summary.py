"""Reading the recorded chapter-6 extension results: spreads over seeds and tables (no plotting here).

A *grid* is ``{"lengths": [L...], "depths": [d...], "accuracy": [[...]]}`` with ``accuracy[i][j]`` the
fraction correct at ``depths[i]``, ``lengths[j]`` (the :class:`longctx_lab.lm.niah.NIAHResult` layout). Every
experiment in ``ch06-extension.json`` stores, per seed, ``{"seed": s, "seconds": t, "grids": {method:
grid}}`` (see :mod:`longctx_lab.lm.extension` for the whole format). This module turns those into

- :func:`spread`: mean, min and max (and the count) of a list of numbers;
- :func:`grid_by_length`: a grid's accuracy per length (mean over depths);
- :func:`method_spread`: per method and length, the spread over seeds of the by-length accuracy, and the
  mean heatmap over seeds;
- :func:`table_rows`: rows ``(method, length, mean, min, max)`` ready to print, and :func:`format_table`;
- :func:`load_results` / :func:`recorded_path`: the JSON (by default the copy shipped with the package,
  :mod:`longctx_lab.core.recorded`).

Bad input raises ``ValueError``/``TypeError`` naming the argument.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["RESULT_NAME", "format_table", "grid_by_length", "load_results", "method_spread", "recorded_path",
           "spread", "table_rows"]

RESULT_NAME = "ch06-extension.json"


def spread(values) -> dict:
    """``{"mean", "min", "max", "n"}`` of a non-empty list of finite numbers (the spread over seeds)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"values must be a list of numbers, got {type(values).__name__}")
    vals = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"values must hold numbers, got {type(v).__name__} {v!r}")
        if not math.isfinite(v):
            raise ValueError(f"values must be finite, got {v!r}")
        vals.append(float(v))
    if not vals:
        raise ValueError("values must be a non-empty list of numbers, got an empty one")
    return {"mean": sum(vals) / len(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def _check_grid(grid, name: str = "grid") -> dict:
    if not isinstance(grid, dict) or not {"lengths", "depths", "accuracy"} <= set(grid):
        raise ValueError(f"{name} must be a dict with lengths, depths and accuracy, got {grid!r:.200}")
    acc = grid["accuracy"]
    if len(acc) != len(grid["depths"]) or any(len(row) != len(grid["lengths"]) for row in acc):
        raise ValueError(f"{name}['accuracy'] must be len(depths) x len(lengths) = {len(grid['depths'])} x "
                         f"{len(grid['lengths'])}, got rows of {[len(r) for r in acc]}")
    bad = [a for row in acc for a in row if not (isinstance(a, (int, float)) and 0.0 <= a <= 1.0)]
    if bad:
        raise ValueError(f"{name}['accuracy'] must hold numbers in [0, 1], got {bad[:3]}")
    return grid


def grid_by_length(grid: dict) -> dict[int, float]:
    """``{length: accuracy averaged over depths}`` of one grid."""
    grid = _check_grid(grid)
    n = len(grid["depths"])
    return {int(length): sum(row[j] for row in grid["accuracy"]) / n for j, length in enumerate(grid["lengths"])}


def method_spread(seed_results: list[dict]) -> dict:
    """For an experiment's per-seed results (each ``{"seed", "grids": {method: grid}}``), per method:
    ``{"lengths", "depths", "by_length": {length: spread}, "mean_accuracy": mean grid over seeds,
    "seeds": [...]}``. Every seed must have the same methods and grid shapes."""
    if not isinstance(seed_results, list) or not seed_results:
        raise ValueError(f"seed_results must be a non-empty list of per-seed dicts, got {seed_results!r:.200}")
    for k, r in enumerate(seed_results):
        if not isinstance(r, dict) or not isinstance(r.get("grids"), dict):
            raise ValueError(f"seed_results[{k}] must be a dict with a 'grids' dict, got {r!r:.200}")
    methods = list(seed_results[0]["grids"])
    out = {}
    for method in methods:
        grids = []
        for k, r in enumerate(seed_results):
            if method not in r["grids"]:
                raise ValueError(f"seed_results[{k}] lacks method {method!r} (has {sorted(r['grids'])})")
            grids.append(_check_grid(r["grids"][method], f"seed_results[{k}]['grids'][{method!r}]"))
        first = grids[0]
        for k, g in enumerate(grids):
            if g["lengths"] != first["lengths"] or g["depths"] != first["depths"]:
                raise ValueError(f"seed_results[{k}]['grids'][{method!r}] must have the lengths and depths of "
                                 f"seed_results[0]'s, got {g['lengths']}, {g['depths']}")
        by_length = {}
        for length in first["lengths"]:
            by_length[int(length)] = spread([grid_by_length(g)[int(length)] for g in grids])
        mean = [[sum(g["accuracy"][i][j] for g in grids) / len(grids) for j in range(len(first["lengths"]))]
                for i in range(len(first["depths"]))]
        out[method] = {"lengths": list(first["lengths"]), "depths": list(first["depths"]), "by_length": by_length,
                       "mean_accuracy": mean, "seeds": [r.get("seed") for r in seed_results]}
    return out


def table_rows(seed_results: list[dict]) -> list[tuple[str, int, float, float, float]]:
    """``(method, length, mean, min, max)`` of :func:`method_spread`, methods in recorded order."""
    rows = []
    for method, s in method_spread(seed_results).items():
        for length, st in s["by_length"].items():
            rows.append((method, length, st["mean"], st["min"], st["max"]))
    return rows


def format_table(seed_results: list[dict]) -> str:
    """A plain-text table: one row per method, one column per length, ``mean [min-max]`` over seeds."""
    spreads = method_spread(seed_results)
    lengths = sorted({length for s in spreads.values() for length in s["by_length"]})
    width = max(len(m) for m in spreads) + 2
    lines = ["".ljust(width) + "".join(f"L={length}".rjust(18) for length in lengths)]
    for method, s in spreads.items():
        cells = []
        for length in lengths:
            st = s["by_length"].get(length)
            cells.append("-".rjust(18) if st is None else
                         f"{st['mean']:.2f} [{st['min']:.2f}-{st['max']:.2f}]".rjust(18))
        lines.append(method.ljust(width) + "".join(cells))
    return "\n".join(lines)


def recorded_path():
    """The shipped copy of ``benchmarks/results/ch06-extension.json`` (:mod:`longctx_lab.core.recorded`; a path
    on disk in an ordinary install)."""
    from longctx_lab.core.recorded import recorded_file

    return recorded_file(RESULT_NAME)


def load_results(path=None) -> dict:
    """The JSON written by ``longctx-lab bench ch06-extension``: ``path``, or by default the copy shipped with the
    package (:func:`recorded_path`)."""
    path = recorded_path() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path must be a ch06-extension JSON (run `longctx-lab bench ch06-extension`), "
                                f"got {path}")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data.get("experiments"), dict):
        raise ValueError(f"{path} must hold an 'experiments' dict (written by longctx-lab bench ch06-extension)")
    return data
