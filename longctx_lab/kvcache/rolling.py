"""Rolling-buffer (circular) KV cache for sliding-window decoding.

With a causal window of ``w`` keys (query at ``p`` sees ``p - w < j <= p``), decoding token ``t``
never reads a key older than ``t - w + 1``. So the cache needs only ``w`` slots per layer and
head: token ``t`` is written to slot ``t mod w``, overwriting token ``t - w``, which no later query
can see. Memory stays ``2 * w * kv_heads * head_dim`` elements per layer however long the sequence
grows (Mistral 7B's rolling buffer).

The slots are not in chronological order once the buffer has wrapped, and they need not be:
attention is a weighted sum over keys, so permuting keys and values together leaves the output
unchanged, provided positions were applied to the keys (RoPE) *before* caching, as they are in
Mistral-style models.
"""

from __future__ import annotations

import torch

from longctx_lab._validate import check_int, check_qkv, check_tensor
from longctx_lab.attention.reference import naive_attention
from longctx_lab.cost import kv_cache_bytes

__all__ = ["RollingKVCache", "decode_with_rolling_cache", "rolling_memory_table", "rolling_slot"]


def rolling_slot(position: int, window: int) -> int:
    """Buffer slot of the token at ``position``: ``position mod window``."""
    position = check_int("position", position, minimum=0)
    window = check_int("window", window, minimum=1)
    return position % window


class RollingKVCache:
    """Keys and values of the last ``window`` tokens of one layer, in a circular buffer.

    Buffers ``k`` and ``v`` have shape ``(batch, kv_heads, window, head_dim)``; ``positions[s]`` is
    the absolute position stored in slot ``s`` (-1 while empty). ``length`` counts the tokens
    appended so far, i.e. the position the next token will have.
    """

    def __init__(self, window: int, *, batch: int, kv_heads: int, head_dim: int, dtype=torch.float32, device=None):
        self.window = check_int("window", window, minimum=1)
        batch = check_int("batch", batch, minimum=1)
        kv_heads = check_int("kv_heads", kv_heads, minimum=1)
        head_dim = check_int("head_dim", head_dim, minimum=1)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
        shape = (batch, kv_heads, self.window, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.positions = torch.full((self.window,), -1, dtype=torch.long)
        self.length = 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the K and V buffers: fixed at construction, independent of ``length``."""
        return self.k.nbytes + self.v.nbytes

    @property
    def filled(self) -> int:
        """Slots holding a token: ``min(length, window)``."""
        return min(self.length, self.window)

    def append(self, k_new: torch.Tensor, v_new: torch.Tensor) -> None:
        """Write ``t`` new tokens, shape ``(batch, kv_heads, t, head_dim)``, at positions
        ``length .. length + t - 1``; token ``p`` goes to slot ``p mod window`` (when ``t > window``
        only the last ``window`` survive, as they would one at a time)."""
        for name, t in (("k_new", k_new), ("v_new", v_new)):
            check_tensor(name, t, ndim=4)
            if t.shape[:2] != self.k.shape[:2] or t.shape[3] != self.k.shape[3] or t.shape[2] == 0:
                b, h, _, d = self.k.shape
                raise ValueError(f"{name} must have shape ({b}, {h}, t>=1, {d}), got {tuple(t.shape)}")
            if t.dtype != self.k.dtype or t.device != self.k.device:
                raise TypeError(f"{name} must be {self.k.dtype} on {self.k.device}, got {t.dtype} on {t.device}")
        if k_new.shape != v_new.shape:
            raise ValueError(f"k_new and v_new must have one shape, got {tuple(k_new.shape)} and {tuple(v_new.shape)}")
        t = k_new.shape[2]
        keep = min(t, self.window)
        pos = torch.arange(self.length + t - keep, self.length + t)
        slots = pos % self.window
        self.k[:, :, slots] = k_new[:, :, t - keep:]
        self.v[:, :, slots] = v_new[:, :, t - keep:]
        self.positions[slots] = pos
        self.length += t

    def contents(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The filled slots in slot order: ``k``, ``v`` ``(batch, kv_heads, filled, head_dim)`` and
        their absolute positions ``(filled,)``. Slot order is chronological until the buffer wraps."""
        n = self.filled
        return self.k[:, :, :n], self.v[:, :, :n], self.positions[:n]

    def attend(self, q: torch.Tensor, *, scale: float | None = None) -> torch.Tensor:
        """Attention of the newest token's query ``(batch, heads, 1, head_dim)`` over the cache.

        Call after appending that token's key and value; it then sees exactly the keys
        ``length - window .. length - 1``, the causal window. ``heads`` may be a multiple of
        ``kv_heads`` (GQA). Returns ``(batch, heads, 1, head_dim)``.
        """
        if self.length == 0:
            raise ValueError("the cache is empty: append the token's key and value before attend")
        check_tensor("q", q, ndim=4)
        if q.shape[2] != 1:
            raise ValueError(
                f"q must hold one query (decode step), shape (batch, heads, 1, head_dim), got {tuple(q.shape)}"
            )
        k, v, _ = self.contents()
        check_qkv(q, k, v)
        return naive_attention(q, k, v, scale=scale)


def decode_with_rolling_cache(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, *, scale: float | None = None
) -> torch.Tensor:
    """Decode ``seq`` tokens one at a time through a :class:`RollingKVCache` of ``window`` slots.

    ``q`` is ``(batch, heads, seq, head_dim)``, ``k``/``v`` ``(batch, kv_heads, seq, head_dim)``.
    Step ``t`` appends ``k[:, :, t]``, ``v[:, :, t]`` and attends with ``q[:, :, t]``. The result
    equals ``naive_attention(q, k, v, causal=True, window=window)`` (the chapter's tests check it)
    while never holding more than ``window`` keys.
    """
    batch, _, kv_heads, seq, kv_len, head_dim = check_qkv(q, k, v)
    window = check_int("window", window, minimum=1)
    if seq != kv_len:
        raise ValueError(f"q and k must have the same sequence length for decoding, got {seq} and {kv_len}")
    cache = RollingKVCache(window, batch=batch, kv_heads=kv_heads, head_dim=head_dim, dtype=q.dtype, device=q.device)
    out = torch.empty_like(q)
    for t in range(seq):
        cache.append(k[:, :, t:t + 1], v[:, :, t:t + 1])
        out[:, :, t:t + 1] = cache.attend(q[:, :, t:t + 1], scale=scale)
    return out


def rolling_memory_table(
    seq_lens, *, window: int, n_layers: int, n_kv_heads: int, head_dim: int, dtype="fp16", batch: int = 1
) -> list[dict]:
    """KV-cache bytes of a full cache and of a rolling buffer of ``window`` slots, per sequence length.

    Each row: ``seq_len``, ``full_bytes`` (all ``seq_len`` tokens), ``rolling_bytes``
    (``min(seq_len, window)`` tokens) and ``saved`` (the fraction of the full cache the buffer saves),
    all layers, K and V, from :func:`longctx_lab.cost.kv_cache_bytes`.
    """
    window = check_int("window", window, minimum=1)
    if isinstance(seq_lens, (str, bytes)) or not hasattr(seq_lens, "__iter__"):
        raise TypeError(f"seq_lens must be a sequence of integers, got {type(seq_lens).__name__}")
    shape = {"n_layers": n_layers, "n_kv_heads": n_kv_heads, "head_dim": head_dim, "dtype": dtype, "batch": batch}
    rows = []
    for n in seq_lens:
        n = check_int("seq_lens[i]", n, minimum=1)
        full = kv_cache_bytes(n, **shape)
        rolling = kv_cache_bytes(min(n, window), **shape)
        rows.append({"seq_len": n, "full_bytes": full, "rolling_bytes": rolling, "saved": 1 - rolling / full})
    return rows
