"""Rolling-buffer (circular) KV cache for sliding-window decoding.

With a causal window of ``w`` keys (query at ``p`` sees ``p - w < j <= p``), decoding token ``t``
never reads a key older than ``t - w + 1``. So the cache needs only ``w`` slots per layer and
head: token ``t`` is written to slot ``t mod w``, overwriting token ``t - w``, which no later query
can see. Memory stays ``2 * w * kv_heads * head_dim`` elements per layer however long the sequence
grows (Mistral 7B's rolling buffer).

The slots are not in chronological order once the buffer has wrapped, and they need not be:
attention is a weighted sum over keys, so permuting keys and values together leaves the output
unchanged, provided positions were applied to the keys (RoPE) *before* caching, as they are in
Mistral-style models. (:meth:`RollingKVCache.attend` still orders them chronologically, so that several
queries at once get the right window mask.)

:class:`RollingKVCache` implements the :class:`longctx_lab.kvcache.base.KVCache` interface (per-sequence
lengths, fork, free); with ``chunk > 1`` it keeps ``window + chunk - 1`` slots, so that ``chunk`` queries at
a time (a chunked prefill) still find every key their window needs.

With ``sinks=s`` (StreamingLLM's attention sinks, Xiao et al. 2023) it also keeps the first ``s`` tokens of each
sequence for good, in ``s`` more slots: query ``p`` then sees keys ``p - w < j <= p`` and ``j < s``
(:func:`longctx_lab.attention.mask_predicates.sink_window_predicate`). Keys keep the positions they were rotated
at when appended (RoPE before caching), so a sink sits ``p`` positions behind query ``p``.
"""

from __future__ import annotations

import torch

from longctx_lab.attention.mask_predicates import sink_window_predicate
from longctx_lab.core.cost import kv_cache_bytes
from longctx_lab.core.validate import check_int, check_optional_int, check_qkv, check_tensor
from longctx_lab.kvcache.base import KVCache

__all__ = ["RollingKVCache", "decode_with_rolling_cache", "rolling_memory_table", "rolling_slot"]


def rolling_slot(position: int, window: int) -> int:
    """Buffer slot of the token at ``position``: ``position mod window``."""
    position = check_int("position", position, minimum=0)
    window = check_int("window", window, minimum=1)
    return position % window


class RollingKVCache(KVCache):
    """Keys and values of the last ``window + chunk - 1`` tokens of each sequence, in a circular buffer.

    Buffers ``k`` and ``v`` have shape ``(batch, kv_heads, slots, head_dim)`` with ``slots = window + chunk - 1``;
    token ``p`` of a sequence lives in slot ``p mod slots``. ``chunk`` is the most queries one
    :meth:`attend` may bring (1: token-by-token decoding, the classic ``window``-slot buffer; a prefill of
    ``c`` tokens at a time needs ``chunk=c``, since its first query still sees ``window - 1`` older keys).

    Sequences may have different lengths (:attr:`lengths`). For a batch whose sequences all have one
    length, the original single-sequence view still works: ``length`` (tokens appended, the next
    position), ``filled`` (slots in use), ``positions`` (``(slots,)``, the absolute position in each slot,
    -1 while empty) and :meth:`contents`. The interface (append, attend, fork, free, gather, nbytes) is
    :class:`longctx_lab.kvcache.base.KVCache`'s; :meth:`attend` defaults to ``window`` and refuses
    queries that need a key the buffer has already dropped.

    ``sinks`` (default 0) keeps the first ``sinks`` tokens of each sequence as well, in buffers ``sink_k``,
    ``sink_v`` ``(batch, kv_heads, sinks, head_dim)``; :meth:`attend` then adds them to every query's window
    (module docstring) and :meth:`gather` returns them first (positions ``0 .. sinks - 1`` not in the window,
    then the window's, chronologically).
    """

    def __init__(
        self,
        window: int,
        *,
        batch: int,
        kv_heads: int,
        head_dim: int,
        dtype=torch.float32,
        device=None,
        chunk: int = 1,
        sinks: int = 0,
    ):
        self.window = check_int("window", window, minimum=1)
        super().__init__(batch=batch, kv_heads=kv_heads, head_dim=head_dim, dtype=dtype, device=device)
        self.chunk = check_int("chunk", chunk, minimum=1)
        self.slots = self.window + self.chunk - 1
        shape = (self.batch, self.kv_heads, self.slots, self.head_dim)
        self.k = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.v = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self._positions = torch.full((self.batch, self.slots), -1, dtype=torch.long)
        self.sinks = check_int("sinks", sinks, minimum=0)
        sink_shape = (self.batch, self.kv_heads, self.sinks, self.head_dim)
        self.sink_k = torch.zeros(sink_shape, dtype=self.dtype, device=self.device)
        self.sink_v = torch.zeros(sink_shape, dtype=self.dtype, device=self.device)

    @property
    def nbytes(self) -> int:
        """Bytes held by the K and V buffers (sinks included): fixed at construction, independent of the lengths."""
        return self.k.nbytes + self.v.nbytes + self.sink_k.nbytes + self.sink_v.nbytes

    def _uniform_length(self, what: str) -> int:
        if len(set(self._lengths)) > 1:
            raise ValueError(
                f"{what} is defined when every sequence has one length, got lengths {self._lengths}; "
                "use lengths, positions_of(seq_id) or gather(seq_ids)"
            )
        return self._lengths[0]

    @property
    def length(self) -> int:
        """Tokens appended to every sequence (they must agree), i.e. the position the next token will have."""
        return self._uniform_length("length")

    @property
    def filled(self) -> int:
        """Slots holding a token: ``min(length, slots)``."""
        return min(self.length, self.slots)

    @property
    def positions(self) -> torch.Tensor:
        """``(slots,)``: absolute position held in each slot (-1: empty), shared by sequences of one length."""
        self._uniform_length("positions")
        return self._positions[0]

    def positions_of(self, seq_id: int) -> torch.Tensor:
        """``(slots,)``: absolute position held in each slot of sequence ``seq_id`` (-1: empty)."""
        return self._positions[self._check_seq_id(seq_id)]

    def append(self, k_new: torch.Tensor, v_new: torch.Tensor, seq_ids=None) -> None:
        """Write ``t`` new tokens, shape ``(len(seq_ids), kv_heads, t, head_dim)``, at positions
        ``L .. L + t - 1`` of each sequence; token ``p`` goes to slot ``p mod slots``, overwriting token
        ``p - slots``, which no later query can see. When ``t > slots`` only the last ``slots`` are kept,
        as they would be one at a time (their own queries would need the dropped ones: attend refuses)."""
        ids, t = self._check_new(k_new, v_new, seq_ids)
        keep = min(t, self.slots)
        for i, s in enumerate(ids):
            length = self._lengths[s]
            if length < self.sinks:  # the first tokens also go to the sink slots, kept for good
                n = min(self.sinks, length + t) - length
                self.sink_k[s, :, length:length + n] = k_new[i, :, :n]
                self.sink_v[s, :, length:length + n] = v_new[i, :, :n]
            pos = torch.arange(length + t - keep, length + t)
            slots = pos % self.slots
            self.k[s, :, slots] = k_new[i, :, t - keep:]
            self.v[s, :, slots] = v_new[i, :, t - keep:]
            self._positions[s, slots] = pos
            self._lengths[s] = length + t

    def fork(self, src: int, dst: int) -> None:
        src, dst = self._check_fork(src, dst)
        self.k[dst] = self.k[src]
        self.v[dst] = self.v[src]
        self._positions[dst] = self._positions[src]
        self.sink_k[dst] = self.sink_k[src]
        self.sink_v[dst] = self.sink_v[src]
        self._lengths[dst] = self._lengths[src]

    def free(self, seq_id: int) -> None:
        seq_id = self._check_held(seq_id)
        self.k[seq_id].zero_()
        self.v[seq_id].zero_()
        self._positions[seq_id] = -1
        self.sink_k[seq_id].zero_()
        self.sink_v[seq_id].zero_()
        self._lengths[seq_id] = 0

    def contents(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The filled slots in slot order: ``k``, ``v`` ``(batch, kv_heads, filled, head_dim)`` and
        their absolute positions ``(filled,)``. Slot order is chronological until the buffer wraps."""
        n = self.filled
        return self.k[:, :, :n], self.v[:, :, :n], self.positions[:n]

    def _gather(self, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        k, v, _ = self._gather_with_positions(ids)
        return k, v

    def _gather_with_positions(self, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keys, values (chronological) and their positions ``(n,)``: the sinks not in the buffer, then the buffer."""
        length = self._lengths[ids[0]]
        kept = min(length, self.slots)
        positions = torch.arange(length - kept, length)
        slots = positions % self.slots
        k, v = self.k[ids][:, :, slots], self.v[ids][:, :, slots]
        n_sinks = min(self.sinks, length - kept)  # sinks the buffer no longer holds
        if n_sinks:
            k = torch.cat([self.sink_k[ids][:, :, :n_sinks], k], dim=2)
            v = torch.cat([self.sink_v[ids][:, :, :n_sinks], v], dim=2)
            positions = torch.cat([torch.arange(n_sinks), positions])
        return k, v, positions

    def attend(self, q: torch.Tensor, seq_ids=None, *, window: int | None = None, scale: float | None = None,
               backend: str = "auto") -> torch.Tensor:
        """:meth:`KVCache.attend <longctx_lab.kvcache.base.KVCache.attend>`; with sinks, every query also sees the
        first ``sinks`` positions (masked PyTorch SDPA: the dispatcher has no sink rule, so ``backend`` is unused)."""
        if not self.sinks:
            return super().attend(q, seq_ids, window=window, scale=scale, backend=backend)
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
        for s in ids:
            if q_len > self._lengths[s]:
                raise ValueError(
                    f"q holds q_len={q_len} queries, but sequence {s} has only {self._lengths[s]} tokens: append the "
                    "queries' keys and values first (q_len must be <= each sequence's length)"
                )
        out = torch.empty_like(q)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, s in enumerate(ids):
            groups.setdefault((self._lengths[s], self._check_attend_window(window, q_len, s)), []).append(i)
        for (length, w), rows in groups.items():
            k, v, kv_pos = self._gather_with_positions([ids[i] for i in rows])
            q_pos = torch.arange(length - q_len, length)
            mask = sink_window_predicate(w, self.sinks).evaluate(q_pos[:, None], kv_pos[None, :]).to(self.device)
            out[rows] = torch.nn.functional.scaled_dot_product_attention(
                q[rows], k, v, attn_mask=mask, scale=scale, enable_gqa=heads != self.kv_heads)
        return out

    def _check_attend_window(self, window: int | None, q_len: int, seq_id: int) -> int:
        if window is None:
            window = self.window
        elif window > self.window:
            raise ValueError(
                f"window must be <= the buffer's window={self.window} (it keeps no older keys), got {window}"
            )
        length = self._lengths[seq_id]
        kept_from = max(0, length - self.slots)
        needed_from = max(0, length - q_len - window + 1)
        if needed_from < kept_from:
            raise ValueError(
                f"q holds q_len={q_len} queries, but sequence {seq_id} (length {length}) keeps only positions "
                f"{kept_from}..{length - 1} in its {self.slots} slots and its first query needs keys from position "
                f"{needed_from}: attend after every append of at most chunk={self.chunk} tokens, or build the cache "
                "with a larger chunk"
            )
        return window


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
    all layers, K and V, from :func:`longctx_lab.core.cost.kv_cache_bytes`.
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
