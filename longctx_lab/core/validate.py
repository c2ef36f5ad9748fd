"""Argument checks shared by every public function.

Each check raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, bad value)
with a message that names the argument, states what was expected and shows what was given,
e.g. ``window must be an integer >= 1, got 0``.
"""

from __future__ import annotations

import math
import numbers

import torch

# Bytes per element for the dtype names the course uses. fp8/int8/int4 appear in KV-cache sizing.
DTYPE_BYTES: dict[str, float] = {
    "float64": 8,
    "fp64": 8,
    "float32": 4,
    "fp32": 4,
    "float16": 2,
    "fp16": 2,
    "bfloat16": 2,
    "bf16": 2,
    "float8": 1,
    "fp8": 1,
    "int8": 1,
    "int4": 0.5,
}


def check_int(name: str, value, *, minimum: int | None = None) -> int:
    """Return ``value`` as an int; reject bools, floats and values below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def check_optional_int(name: str, value, *, minimum: int | None = None) -> int | None:
    return None if value is None else check_int(name, value, minimum=minimum)


def check_number(
    name: str,
    value,
    *,
    minimum: float | None = None,
    exclusive_minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """Return ``value`` as a finite float within the given bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if exclusive_minimum is not None and value <= exclusive_minimum:
        raise ValueError(f"{name} must be > {exclusive_minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def dtype_bytes(dtype, name: str = "dtype") -> float:
    """Bytes per element for a dtype name (``"fp16"``, ``"bfloat16"``, ``"int4"``...) or a torch dtype."""
    if isinstance(dtype, torch.dtype):
        return torch.empty((), dtype=dtype).element_size()
    if isinstance(dtype, str):
        key = dtype.lower()
        if key in DTYPE_BYTES:
            return DTYPE_BYTES[key]
        raise ValueError(f"{name} must be one of {sorted(DTYPE_BYTES)} or a torch.dtype, got {dtype!r}")
    raise TypeError(f"{name} must be a dtype name or a torch.dtype, got {type(dtype).__name__} {dtype!r}")


def check_tensor(name: str, value, *, ndim: int | None = None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(
            f"{name} must have {ndim} dimensions (batch, heads, seq, head_dim), "
            f"got shape {tuple(value.shape)}"
        )
    return value


def check_qkv(q, k, v) -> tuple[int, int, int, int, int, int]:
    """Validate attention inputs in ``(batch, heads, seq, head_dim)`` layout.

    K and V share a shape; Q may have more heads than K/V (grouped-query attention) as long as
    ``q_heads`` is a multiple of ``kv_heads``. Dtypes and devices must all agree: a mismatch is an
    error, never a silent cast or broadcast.

    Returns ``(batch, q_heads, kv_heads, q_len, kv_len, head_dim)``.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, t, ndim=4)
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got k {tuple(k.shape)} and v {tuple(v.shape)}")
    if q.dtype != k.dtype or q.dtype != v.dtype:
        raise TypeError(f"q, k and v must share one dtype, got q {q.dtype}, k {k.dtype}, v {v.dtype}")
    if q.device != k.device or q.device != v.device:
        raise ValueError(
            f"q, k and v must be on one device, got q {q.device}, k {k.device}, v {v.device}"
        )
    batch, q_heads, q_len, head_dim = q.shape
    kb, kv_heads, kv_len, kd = k.shape
    if kb != batch:
        raise ValueError(f"k must have batch {batch} like q, got {kb}")
    if kd != head_dim:
        raise ValueError(f"k must have head_dim {head_dim} like q, got {kd}")
    if kv_heads == 0 or q_heads % kv_heads != 0:
        raise ValueError(
            f"q heads ({q_heads}) must be a multiple of k/v heads ({kv_heads}) for grouped-query attention"
        )
    if min(batch, q_heads, q_len, kv_len, head_dim) == 0:
        raise ValueError(f"q, k, v must be non-empty, got q {tuple(q.shape)} and k {tuple(k.shape)}")
    return batch, q_heads, kv_heads, q_len, kv_len, head_dim
