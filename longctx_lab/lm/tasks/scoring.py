"""Exact-match scoring of the synthetic tasks (no judge model): see docs/conventions.md for errors."""

from __future__ import annotations

import numbers

__all__ = ["exact_match"]


def _ids(name: str, value) -> list[int]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a list of token ids, got {type(value).__name__}")
    value = list(value.tolist() if hasattr(value, "tolist") else value)
    if any(isinstance(t, bool) or not isinstance(t, numbers.Integral) for t in value):
        raise TypeError(f"{name} must hold integer token ids, got {value!r}")
    return [int(t) for t in value]


def exact_match(prediction, answer) -> bool:
    """``True`` when the predicted ids equal the answer ids exactly: same length, same tokens, same order.

    Nothing is trimmed: a prediction with an extra or a missing token is wrong. The harness asks an adapter
    for exactly ``len(answer)`` tokens.
    """
    return _ids("prediction", prediction) == _ids("answer", answer)
