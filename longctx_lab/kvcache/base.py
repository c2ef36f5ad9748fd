"""The interface every KV cache implements: append, attend, lengths, bytes, fork and free.

A cache holds the keys and values of one attention layer for ``batch`` sequence slots, numbered
``0 .. batch - 1`` (``seq_ids``). A slot holds a sequence once something was appended to it (or it
was forked into); :meth:`KVCache.free` empties it again. Its length is the number of tokens appended
so far, i.e. the position the next token will get (a rolling buffer keeps only the last ones).

Conventions (see docs/conventions.md):

- Tensors are ``(batch, heads, seq, head_dim)``. The cache stores ``kv_heads`` heads only; queries may
  have ``heads = kv_heads * group`` heads, query head ``h`` reading KV head ``h // group`` (GQA).
- :meth:`KVCache.attend` is causal and bottom-right aligned per sequence: the ``q_len`` queries of
  sequence ``s`` are its last ``q_len`` positions ``L_s - q_len .. L_s - 1`` (append their keys and values
  first). With ``window=w`` the query at position ``p`` sees keys ``p - w < j <= p`` (flash-attn
  ``window_size=(w - 1, 0)``, Hugging Face ``sliding_window=w``).
- Attention runs through :func:`longctx_lab.kernels.dispatch.flash_attention` (Triton on a GPU; on CPU
  PyTorch's fused SDPA where it computes the same thing, else the tiled PyTorch path; see the dispatcher) for
  the dtypes it supports, at any head dim; other dtypes go to the reference
  :func:`longctx_lab.attention.reference.naive_attention` with the same mask.
- Errors name the argument, the expectation and the value given; nothing is truncated or overwritten
  silently: a call that cannot be carried out whole changes nothing.
"""

from __future__ import annotations

import abc
import numbers

import torch

from longctx_lab.attention.reference import naive_attention
from longctx_lab.core.validate import check_int, check_optional_int, check_tensor
from longctx_lab.kernels.dispatch import SUPPORTED_DTYPES, flash_attention

__all__ = ["KVCache", "cached_attention"]


def cached_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    window: int | None = None,
    scale: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Causal attention of ``q`` ``(n, heads, q_len, head_dim)`` over ``k``, ``v`` ``(n, kv_heads, kv_len, head_dim)``.

    Bottom-right aligned (query ``i`` at position ``i + kv_len - q_len``), optional ``window``. Runs the
    dispatcher when it supports the dtype (any head dim), else the reference (module docstring).
    """
    if q.dtype in SUPPORTED_DTYPES:
        return flash_attention(q, k, v, causal=True, window=window, scale=scale, backend=backend)
    return naive_attention(q, k, v, causal=True, window=window, scale=scale)


class KVCache(abc.ABC):
    """Keys and values of one layer for ``batch`` sequence slots (interface; see the module docstring).

    Subclasses implement :meth:`append`, :meth:`fork`, :meth:`free`, ``_gather`` and :attr:`nbytes`;
    :meth:`attend` and :meth:`gather` are shared. ``lengths`` is ``(batch,)`` int64, 0 for an empty slot.
    """

    def __init__(self, *, batch: int, kv_heads: int, head_dim: int, dtype=torch.float32, device=None):
        self.batch = check_int("batch", batch, minimum=1)
        self.kv_heads = check_int("kv_heads", kv_heads, minimum=1)
        self.head_dim = check_int("head_dim", head_dim, minimum=1)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
        self.dtype = dtype
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self._lengths = [0] * self.batch

    # ------------------------------------------------------------------ state
    @property
    def lengths(self) -> torch.Tensor:
        """Tokens appended to each slot, ``(batch,)`` int64 (0: empty). A copy."""
        return torch.tensor(self._lengths, dtype=torch.long)

    def held(self) -> list[int]:
        """The slots that hold a sequence (length > 0), ascending."""
        return [s for s, n in enumerate(self._lengths) if n > 0]

    @property
    @abc.abstractmethod
    def nbytes(self) -> int:
        """Bytes of the key/value storage the cache holds (codes and scales for a quantized cache)."""

    # ------------------------------------------------------------------ subclass hooks
    @abc.abstractmethod
    def append(self, k_new: torch.Tensor, v_new: torch.Tensor, seq_ids=None) -> None:
        """Append ``t`` tokens to each sequence of ``seq_ids`` (default: all ``batch`` slots).

        ``k_new``, ``v_new``: ``(len(seq_ids), kv_heads, t, head_dim)``, the cache's dtype and device; row ``i``
        goes to sequence ``seq_ids[i]`` at positions ``L .. L + t - 1``.
        """

    @abc.abstractmethod
    def fork(self, src: int, dst: int) -> None:
        """Make empty slot ``dst`` a copy of sequence ``src`` (same history); both then grow independently."""

    @abc.abstractmethod
    def free(self, seq_id: int) -> None:
        """Drop sequence ``seq_id``: its slot becomes empty (length 0) and its memory reusable."""

    @abc.abstractmethod
    def _gather(self, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`gather` for validated ``ids``."""

    def _check_attend_window(self, window: int | None, q_len: int, seq_id: int) -> int | None:
        """Window actually applied (subclasses restrict it); raise if the queries need keys no longer kept."""
        return window

    # ------------------------------------------------------------------ shared
    def attend(
        self,
        q: torch.Tensor,
        seq_ids=None,
        *,
        window: int | None = None,
        scale: float | None = None,
        backend: str = "auto",
    ) -> torch.Tensor:
        """Causal attention of new queries over the cached history.

        ``q``: ``(len(seq_ids), heads, q_len, head_dim)``, ``heads`` a multiple of ``kv_heads``, the cache's
        dtype. Row ``i`` holds the last ``q_len`` positions of sequence ``seq_ids[i]`` (default: all slots),
        whose keys and values must already be appended. ``window``: sliding window ``p - w < j <= p``.
        ``scale`` defaults to ``1 / sqrt(head_dim)``; ``backend`` goes to the dispatcher.
        Returns ``(len(seq_ids), heads, q_len, head_dim)`` in ``q``'s dtype.
        """
        ids = self._check_seq_ids(seq_ids)
        check_tensor("q", q, ndim=4)
        n, heads, q_len, d = q.shape
        if n != len(ids) or d != self.head_dim or heads == 0 or heads % self.kv_heads or q_len == 0:
            raise ValueError(
                f"q must have shape ({len(ids)}, heads, q_len>=1, {self.head_dim}) with heads a multiple of "
                f"kv_heads={self.kv_heads}, got {tuple(q.shape)}"
            )
        if q.dtype != self.dtype or q.device != self.device:
            raise TypeError(f"q must be {self.dtype} on {self.device} like the cache, got {q.dtype} on {q.device}")
        window = check_optional_int("window", window, minimum=1)
        empty = [s for s in ids if self._lengths[s] == 0]
        if empty:
            raise ValueError(
                f"the cache is empty for seq_ids {empty}: append the tokens' keys and values before attend"
            )
        windows = {}
        for s in ids:
            length = self._lengths[s]
            if q_len > length:
                raise ValueError(
                    f"q holds q_len={q_len} queries, but sequence {s} has only {length} tokens: the queries are the "
                    "last q_len positions of each sequence, so q_len must be <= its length (append first)"
                )
            windows[s] = self._check_attend_window(window, q_len, s)
        out = torch.empty_like(q)
        groups: dict[tuple[int, int | None], list[int]] = {}
        for i, s in enumerate(ids):
            groups.setdefault((self._lengths[s], windows[s]), []).append(i)
        for (_, w), rows in groups.items():
            out[rows] = self._attend_rows(q[rows], [ids[i] for i in rows], w, scale, backend)
        return out

    def _attend_rows(self, q: torch.Tensor, ids: list[int], window: int | None, scale, backend: str) -> torch.Tensor:
        """:meth:`attend` for validated sequences ``ids`` of one length and one window (a subclass with another
        mask rule, such as attention sinks, overrides this)."""
        k, v = self._gather(ids)
        return cached_attention(q, k, v, window=window, scale=scale, backend=backend)

    def gather(self, seq_ids) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values the cache holds for ``seq_ids`` (held sequences of one length), chronological.

        Two tensors ``(len(seq_ids), kv_heads, n, head_dim)`` in the cache's dtype, ``n`` the tokens kept (the
        whole length ``L``, or the last ones for a rolling buffer), the last at position ``L - 1``. A quantized
        cache returns its dequantized values. Copies or views: do not write into them.
        """
        ids = self._check_seq_ids(seq_ids)
        for i, s in enumerate(ids):
            self._check_held(s, f"seq_ids[{i}]")
        lengths = sorted({self._lengths[s] for s in ids})
        if len(lengths) > 1:
            raise ValueError(f"seq_ids must name sequences of one length, got lengths {lengths} for {ids}")
        return self._gather(ids)

    # ------------------------------------------------------------------ validation helpers
    def _check_seq_ids(self, seq_ids, name: str = "seq_ids") -> list[int]:
        if seq_ids is None:
            return list(range(self.batch))
        if isinstance(seq_ids, torch.Tensor):
            if seq_ids.ndim != 1 or seq_ids.is_floating_point() or seq_ids.dtype == torch.bool:
                raise TypeError(f"{name} must be a 1-D integer tensor or a list of ints, got {seq_ids!r}")
            seq_ids = seq_ids.tolist()
        if isinstance(seq_ids, (str, bytes, numbers.Number)) or not hasattr(seq_ids, "__iter__"):
            raise TypeError(f"{name} must be a sequence of slot numbers, got {type(seq_ids).__name__} {seq_ids!r}")
        ids = [self._check_seq_id(s, f"{name}[{i}]") for i, s in enumerate(seq_ids)]
        if not ids:
            raise ValueError(f"{name} must name at least one sequence, got {list(seq_ids)!r}")
        if len(set(ids)) != len(ids):
            raise ValueError(f"{name} must not repeat a sequence, got {ids}")
        return ids

    def _check_seq_id(self, seq_id, name: str = "seq_id") -> int:
        seq_id = check_int(name, seq_id, minimum=0)
        if seq_id >= self.batch:
            raise ValueError(f"{name} must be a slot number in [0, {self.batch}), got {seq_id}")
        return seq_id

    def _check_held(self, seq_id, name: str = "seq_id") -> int:
        seq_id = self._check_seq_id(seq_id, name)
        if self._lengths[seq_id] == 0:
            raise ValueError(
                f"{name} must name a sequence the cache holds (one of {self.held()}), got {seq_id}, an empty slot"
            )
        return seq_id

    def _check_fork(self, src, dst) -> tuple[int, int]:
        src = self._check_held(src, "src")
        dst = self._check_seq_id(dst, "dst")
        if self._lengths[dst] != 0:
            raise ValueError(
                f"dst must be an empty slot (free it first; nothing is overwritten), got {dst}, which holds "
                f"{self._lengths[dst]} tokens"
            )
        return src, dst

    def _check_new(self, k_new, v_new, seq_ids) -> tuple[list[int], int]:
        """Validate an append; returns ``(seq_ids, t)``."""
        ids = self._check_seq_ids(seq_ids)
        for name, t in (("k_new", k_new), ("v_new", v_new)):
            check_tensor(name, t, ndim=4)
            n, h, length, d = t.shape
            if n != len(ids) or h != self.kv_heads or d != self.head_dim or length == 0:
                raise ValueError(
                    f"{name} must have shape ({len(ids)}, {self.kv_heads}, t>=1, {self.head_dim}) "
                    f"(one row per seq_id, kv_heads={self.kv_heads} KV heads: the cache holds no query heads), "
                    f"got {tuple(t.shape)}"
                )
            if t.dtype != self.dtype or t.device != self.device:
                raise TypeError(f"{name} must be {self.dtype} on {self.device}, got {t.dtype} on {t.device}")
        if k_new.shape != v_new.shape:
            raise ValueError(f"k_new and v_new must have one shape, got {tuple(k_new.shape)} and {tuple(v_new.shape)}")
        return ids, k_new.shape[2]

    def _check_capacity(self, ids: list[int], t: int, capacity: int) -> None:
        over = [s for s in ids if self._lengths[s] + t > capacity]
        if over:
            s = over[0]
            raise ValueError(
                f"k_new holds t={t} new tokens, but sequence {s} already has {self._lengths[s]} and capacity is "
                f"{capacity} tokens per sequence (sequences over it: {over}); nothing was appended"
            )
