"""Checks used in exercise notebooks: readable hints for learners, never the answer itself.

Every helper raises ``AssertionError`` with a message a learner can act on (nbgrader counts an
AssertionError as a failed test). A learner's own exception is reported with its type and
message instead of a traceback into the grader.
"""

from __future__ import annotations

import math
import numbers

import torch


def call(fn, *args, name: str | None = None, **kwargs):
    """Call the learner's ``fn``; turn its exception into a readable failed check."""
    label = name or getattr(fn, "__name__", "your function")
    if not callable(fn):
        raise AssertionError(f"{label} should be a function, but it is a {type(fn).__name__}")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise AssertionError(f"{label} is not written yet: replace the NotImplementedError line") from None
    except Exception as exc:  # noqa: BLE001 - any learner error becomes a hint
        raise AssertionError(f"{label} raised {type(exc).__name__}: {exc}") from None


def check_number(value, expected: float, *, name: str, rel_tol: float = 1e-6, hint: str = "") -> None:
    """``value`` must be a finite real number within ``rel_tol`` of ``expected``.

    When it is off by a power of ten or of two the message says so (a units slip: GB vs GiB,
    bits vs bytes, 1e3 per prefix); otherwise only whether it is too high or too low.
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise AssertionError(f"{name} should be a number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        raise AssertionError(f"{name} is {value}: check for a division by zero or an overflow")
    if math.isclose(value, expected, rel_tol=rel_tol, abs_tol=0.0 if expected else 1e-12):
        return
    message = f"{name} is {'too high' if value > expected else 'too low'}"
    if value and expected and value / expected > 0:
        ratio = value / expected
        log10, log2 = math.log10(ratio), math.log2(ratio)
        if abs(log10 - round(log10)) < 0.01 and round(log10) != 0:
            message += f" by a factor of 10^{round(log10)}: check units and prefixes"
        elif abs(log2 - round(log2)) < 0.01 and round(log2) != 0:
            message += f" by a factor of 2^{round(log2)}: check bytes per element, K and V, or a halving"
        elif abs(ratio - (2**30 / 1e9)) < 1e-3 or abs(ratio - (1e9 / 2**30)) < 1e-3:
            message += ": GB (1e9) and GiB (2**30) differ by 7.4%"
    raise AssertionError(message + (f". Hint: {hint}" if hint else ""))


def check_tensor(value, expected: torch.Tensor, *, name: str, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """``value`` must be a tensor of ``expected``'s shape and dtype kind, close to it, without NaN."""
    if not isinstance(value, torch.Tensor):
        raise AssertionError(f"{name} should be a torch.Tensor, got {type(value).__name__}")
    if tuple(value.shape) != tuple(expected.shape):
        raise AssertionError(f"{name} has shape {tuple(value.shape)}, expected {tuple(expected.shape)}")
    if value.dtype == torch.bool and expected.dtype != torch.bool:
        raise AssertionError(f"{name} is boolean, expected numbers")
    if expected.dtype == torch.bool:
        if value.dtype != torch.bool:
            raise AssertionError(f"{name} should be a boolean tensor, got dtype {value.dtype}")
        wrong = int((value != expected).sum())
        if wrong:
            raise AssertionError(f"{name} differs from the expected mask in {wrong} of {value.numel()} entries")
        return
    if torch.isnan(value).any():
        raise AssertionError(f"{name} contains NaN: a fully masked row or exp() of a large number?")
    if not torch.allclose(value.double(), expected.double(), atol=atol, rtol=rtol):
        err = (value.double() - expected.double()).abs().max().item()
        raise AssertionError(f"{name} is off by up to {err:.3g} (tolerance {atol:g})")
