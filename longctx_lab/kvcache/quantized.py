"""Quantized KV cache: int8 or int4 codes with per-token or per-channel scales (and KIVI's layout).

Quantization is symmetric absmax: a group of values ``x`` gets the scale ``s = max |x| / qmax``
(``qmax = 127`` for int8, ``7`` for int4) and the codes ``clamp(round(x / s), -qmax, qmax)``; it is read
back as ``code * s``, so every value is off by at most ``s / 2`` (half a quantization step). The group:

- ``axis="token"``: one scale per (token, KV head), over the ``head_dim`` channels of that token.
  Quantized as soon as the token leaves the full-precision recent window.
- ``axis="channel"``: one scale per (group of ``group_size`` tokens, KV head, channel). Key outliers sit
  in a few channels, so per-channel scales suit keys (KIVI, Liu et al. 2024). A group is quantized when
  all its ``group_size`` tokens have left the recent window; until then they stay in full precision.

``residual=R`` keeps the most recent ``R`` tokens (and the tokens of a not yet complete channel group)
in full precision: with ``L`` tokens, the first ``Q`` are quantized, ``Q = max(0, L - R)`` for
``axis="token"`` and ``Q = group_size * floor(max(0, L - R) / group_size)`` for ``axis="channel"``.
KIVI is ``key_axis="channel", value_axis="token"`` with a residual window (:meth:`QuantizedKVCache.kivi`).

int4 codes are stored two per byte (``code + 8`` in each nibble, even channel in the low nibble), so
``head_dim`` must be even. Scales and the recent window are stored in the cache's dtype.
"""

from __future__ import annotations

import torch

from longctx_lab.core.cost import kv_cache_bytes
from longctx_lab.core.validate import check_int, check_tensor, dtype_bytes
from longctx_lab.kvcache.base import KVCache

__all__ = ["QUANT_AXES", "QUANT_BITS", "QuantizedKVCache", "dequantize", "qmax", "quantize", "quantized_kv_cache_bytes"]

QUANT_BITS = (8, 4)
QUANT_AXES = ("token", "channel")


def _check_bits(bits) -> int:
    bits = check_int("bits", bits)
    if bits not in QUANT_BITS:
        raise ValueError(f"bits must be one of {QUANT_BITS}, got {bits}")
    return bits


def _check_axis(name: str, axis) -> str:
    if axis not in QUANT_AXES:
        raise ValueError(f"{name} must be one of {QUANT_AXES}, got {axis!r}")
    return axis


def qmax(bits: int) -> int:
    """Largest code of symmetric ``bits``-bit quantization: ``2**(bits - 1) - 1`` (127 for int8, 7 for int4)."""
    return 2 ** (_check_bits(bits) - 1) - 1


def quantize(x: torch.Tensor, *, bits: int = 8, axis: str = "token", group_size: int = 1):
    """Symmetric absmax quantization of ``x`` ``(..., n, head_dim)`` (tokens, then channels).

    ``axis="token"``: scales ``(..., n)``, one per token. ``axis="channel"``: ``n`` a multiple of
    ``group_size``, scales ``(..., n // group_size, head_dim)``, one per channel of each group of tokens.
    Returns ``(codes, scales)``: codes ``int8`` ``(..., n, head_dim)`` for 8 bits, ``uint8``
    ``(..., n, head_dim // 2)`` for 4 bits (two per byte); scales in ``x``'s dtype.
    """
    check_tensor("x", x)
    bits = _check_bits(bits)
    axis = _check_axis("axis", axis)
    group_size = check_int("group_size", group_size, minimum=1)
    if x.ndim < 2 or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor (..., n, head_dim), got {x.dtype} {tuple(x.shape)}")
    n, d = x.shape[-2:]
    if bits == 4 and d % 2:
        raise ValueError(f"head_dim (the last dimension of x) must be even for bits=4 (two codes per byte), got {d}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"x must be finite to be quantized (an inf or NaN would spoil its whole group's scale), "
                         f"got {int((~torch.isfinite(x)).sum())} non-finite values")
    top = qmax(bits)
    if axis == "token":
        scales = (x.abs().amax(dim=-1) / top).to(x.dtype)
        per_value = scales.float()[..., None]
    else:
        if n % group_size:
            raise ValueError(f"x must hold a multiple of group_size={group_size} tokens for axis='channel', got {n}")
        grouped = x.reshape(*x.shape[:-2], n // group_size, group_size, d)
        scales = (grouped.abs().amax(dim=-2) / top).to(x.dtype)
        per_value = scales.float().repeat_interleave(group_size, dim=-2)
    safe = torch.where(per_value > 0, per_value, torch.ones_like(per_value))
    codes = torch.clamp(torch.round(x.float() / safe), -top, top).to(torch.int8)
    if bits == 4:
        nibbles = (codes + 8).to(torch.uint8)
        codes = nibbles[..., 0::2] | (nibbles[..., 1::2] << 4)
    return codes, scales


def dequantize(codes: torch.Tensor, scales: torch.Tensor, *, bits: int = 8, axis: str = "token", group_size: int = 1):
    """Inverse of :func:`quantize`: ``code * scale``, shape ``(..., n, head_dim)`` in ``scales``' dtype."""
    check_tensor("codes", codes)
    check_tensor("scales", scales)
    bits = _check_bits(bits)
    axis = _check_axis("axis", axis)
    group_size = check_int("group_size", group_size, minimum=1)
    if bits == 4:
        low = (codes & 0xF).to(torch.int8) - 8
        high = (codes >> 4).to(torch.int8) - 8
        codes = torch.stack([low, high], dim=-1).reshape(*codes.shape[:-1], 2 * codes.shape[-1])
    if axis == "token":
        per_value = scales.float()[..., None]
    else:
        per_value = scales.float().repeat_interleave(group_size, dim=-2)
    return (codes.float() * per_value).to(scales.dtype)


def quantized_kv_cache_bytes(
    capacity: int,
    *,
    n_kv_heads: int,
    head_dim: int,
    bits: int = 8,
    key_axis: str = "token",
    value_axis: str = "token",
    group_size: int = 32,
    residual: int = 0,
    dtype="fp16",
    n_layers: int = 1,
    batch: int = 1,
) -> int:
    """Bytes of a :class:`QuantizedKVCache` of ``capacity`` tokens per sequence, from
    :func:`longctx_lab.core.cost.kv_cache_bytes` (which counts K and V; each stream below is half of it).

    Per stream (K, V): codes for ``capacity`` tokens at ``bits / 8`` bytes per value; scales in ``dtype``,
    ``capacity`` per KV head for ``axis="token"`` (a cache of head dim 1) or ``capacity // group_size`` groups
    of ``head_dim`` for ``axis="channel"``; a full-precision recent window of ``residual`` tokens
    (``residual + group_size - 1`` for ``axis="channel"``, whose last group waits to be complete) in ``dtype``.
    """
    capacity = check_int("capacity", capacity, minimum=1)
    bits = _check_bits(bits)
    group_size = check_int("group_size", group_size, minimum=1)
    residual = check_int("residual", residual, minimum=0)
    head_dim = check_int("head_dim", head_dim, minimum=1)
    if bits == 4 and head_dim % 2:
        raise ValueError(f"head_dim must be even for bits=4 (two codes per byte), got {head_dim}")
    dtype_bytes(dtype)
    shape = {"n_layers": n_layers, "n_kv_heads": n_kv_heads, "batch": batch}
    total = 0
    for name, axis in (("key_axis", key_axis), ("value_axis", value_axis)):
        channel = _check_axis(name, axis) == "channel"
        codes = kv_cache_bytes(capacity, head_dim=head_dim, dtype=f"int{bits}", **shape)
        if channel:
            scales = kv_cache_bytes(capacity // group_size, head_dim=head_dim, dtype=dtype, **shape)
        else:
            scales = kv_cache_bytes(capacity, head_dim=1, dtype=dtype, **shape)
        recent = kv_cache_bytes(residual + (group_size - 1 if channel else 0), head_dim=head_dim, dtype=dtype, **shape)
        total += (codes + scales + recent) // 2
    return total


class _Stream:
    """Codes, scales and full-precision recent window of one of K or V, for every slot."""

    def __init__(self, cache: QuantizedKVCache, axis: str):
        self.axis = axis
        self.bits = cache.bits
        self.group = cache.group_size if axis == "channel" else 1
        self.residual = cache.residual
        b, h, d, n = cache.batch, cache.kv_heads, cache.head_dim, cache.capacity
        code_dtype, code_dim = (torch.int8, d) if self.bits == 8 else (torch.uint8, d // 2)
        self.codes = torch.zeros((b, h, n, code_dim), dtype=code_dtype, device=cache.device)
        scale_shape = (b, h, n) if axis == "token" else (b, h, n // self.group, d)
        self.scales = torch.zeros(scale_shape, dtype=cache.dtype, device=cache.device)
        slots = self.residual + self.group - 1
        self.recent = torch.zeros((b, h, slots, d), dtype=cache.dtype, device=cache.device)

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes + self.scales.nbytes + self.recent.nbytes

    def quantized(self, length: int) -> int:
        """Tokens held as codes when a sequence has ``length`` tokens."""
        return self.group * (max(0, length - self.residual) // self.group)

    def _scale_range(self, start: int, stop: int) -> slice:
        return slice(start, stop) if self.axis == "token" else slice(start // self.group, stop // self.group)

    def write(self, s: int, length: int, new: torch.Tensor) -> None:
        q, q_after = self.quantized(length), self.quantized(length + new.shape[1])
        window = torch.cat([self.recent[s, :, :length - q], new], dim=1)  # positions q .. length + t - 1
        if q_after > q:
            codes, scales = quantize(window[:, :q_after - q], bits=self.bits, axis=self.axis, group_size=self.group)
            self.codes[s, :, q:q_after] = codes
            self.scales[s, :, self._scale_range(q, q_after)] = scales
        rest = window[:, q_after - q:]
        self.recent[s, :, :rest.shape[1]] = rest

    def read(self, s: int, length: int) -> torch.Tensor:
        q = self.quantized(length)
        old = dequantize(self.codes[s, :, :q], self.scales[s, :, self._scale_range(0, q)], bits=self.bits,
                         axis=self.axis, group_size=self.group)
        return torch.cat([old, self.recent[s, :, :length - q]], dim=1)

    def copy(self, src: int, dst: int) -> None:
        for t in (self.codes, self.scales, self.recent):
            t[dst] = t[src]

    def clear(self, s: int) -> None:
        for t in (self.codes, self.scales, self.recent):
            t[s].zero_()


class QuantizedKVCache(KVCache):
    """``batch`` slots of ``capacity`` tokens, keys and values stored as ``bits``-bit codes plus scales.

    ``key_axis``/``value_axis``: ``"token"`` or ``"channel"`` scales (module docstring), ``group_size``
    tokens per channel group, ``residual`` recent tokens kept in ``dtype`` (full precision). ``dtype`` is
    also the dtype :meth:`gather` and :meth:`attend` work in. ``keys``/``values`` hold the tensors:
    ``codes`` ``(batch, kv_heads, capacity, head_dim or head_dim // 2)``, ``scales`` ``(batch, kv_heads,
    capacity)`` or ``(batch, kv_heads, capacity // group_size, head_dim)``, ``recent`` ``(batch, kv_heads,
    slots, head_dim)``. Interface and conventions: :class:`longctx_lab.kvcache.base.KVCache`.
    """

    def __init__(
        self,
        capacity: int,
        *,
        batch: int,
        kv_heads: int,
        head_dim: int,
        bits: int = 8,
        key_axis: str = "token",
        value_axis: str = "token",
        group_size: int = 32,
        residual: int = 0,
        dtype=torch.float32,
        device=None,
    ):
        super().__init__(batch=batch, kv_heads=kv_heads, head_dim=head_dim, dtype=dtype, device=device)
        self.capacity = check_int("capacity", capacity, minimum=1)
        self.bits = _check_bits(bits)
        if self.bits == 4 and self.head_dim % 2:
            raise ValueError(f"head_dim must be even for bits=4 (two codes per byte), got {self.head_dim}")
        self.key_axis = _check_axis("key_axis", key_axis)
        self.value_axis = _check_axis("value_axis", value_axis)
        self.group_size = check_int("group_size", group_size, minimum=1)
        self.residual = check_int("residual", residual, minimum=0)
        self.keys = _Stream(self, self.key_axis)
        self.values = _Stream(self, self.value_axis)

    @classmethod
    def kivi(cls, capacity: int, *, batch: int, kv_heads: int, head_dim: int, bits: int = 4, group_size: int = 32,
             residual: int = 128, dtype=torch.float32, device=None) -> QuantizedKVCache:
        """KIVI's layout: keys per channel (groups of ``group_size`` tokens), values per token, the last
        ``residual`` tokens in full precision (KIVI quantizes to 2 bits; this cache offers 4 and 8)."""
        return cls(capacity, batch=batch, kv_heads=kv_heads, head_dim=head_dim, bits=bits, key_axis="channel",
                   value_axis="token", group_size=group_size, residual=residual, dtype=dtype, device=device)

    @property
    def nbytes(self) -> int:
        """Bytes of codes, scales and recent windows of K and V (:func:`quantized_kv_cache_bytes`)."""
        return self.keys.nbytes + self.values.nbytes

    def append(self, k_new: torch.Tensor, v_new: torch.Tensor, seq_ids=None) -> None:
        ids, t = self._check_new(k_new, v_new, seq_ids)
        self._check_capacity(ids, t, self.capacity)
        for name, x in (("k_new", k_new), ("v_new", v_new)):
            if not bool(torch.isfinite(x).all()):
                raise ValueError(f"{name} must be finite to be quantized, got {int((~torch.isfinite(x)).sum())} "
                                 "non-finite values; nothing was appended")
        for i, s in enumerate(ids):
            self.keys.write(s, self._lengths[s], k_new[i])
            self.values.write(s, self._lengths[s], v_new[i])
            self._lengths[s] += t

    def fork(self, src: int, dst: int) -> None:
        src, dst = self._check_fork(src, dst)
        self.keys.copy(src, dst)
        self.values.copy(src, dst)
        self._lengths[dst] = self._lengths[src]

    def free(self, seq_id: int) -> None:
        seq_id = self._check_held(seq_id)
        self.keys.clear(seq_id)
        self.values.clear(seq_id)
        self._lengths[seq_id] = 0

    def _gather(self, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        n = self._lengths[ids[0]]
        k = torch.stack([self.keys.read(s, n) for s in ids])
        v = torch.stack([self.values.read(s, n) for s in ids])
        return k, v
