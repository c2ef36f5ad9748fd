"""Contiguous preallocated KV cache: one ``capacity``-token row per sequence slot.

The simplest cache (Hugging Face's ``StaticCache``): buffers ``k`` and ``v`` of shape
``(batch, kv_heads, capacity, head_dim)`` allocated once, and a length per slot, so one batch can hold
sequences of different lengths (ragged). Sequence ``s``'s tokens are ``k[s, :, :L_s]``. The price is
the reservation: every slot holds ``capacity`` tokens of memory whatever its length, the waste
paged caches avoid.
"""

from __future__ import annotations

import torch

from longctx_lab.core.validate import check_int
from longctx_lab.kvcache.base import KVCache

__all__ = ["ContiguousKVCache"]


class ContiguousKVCache(KVCache):
    """``batch`` slots of ``capacity`` tokens each: ``k``, ``v`` ``(batch, kv_heads, capacity, head_dim)``.

    Appending past ``capacity`` raises ``ValueError`` (nothing is written). See
    :class:`longctx_lab.kvcache.base.KVCache` for the interface and conventions.
    """

    def __init__(self, capacity: int, *, batch: int, kv_heads: int, head_dim: int, dtype=torch.float32, device=None):
        super().__init__(batch=batch, kv_heads=kv_heads, head_dim=head_dim, dtype=dtype, device=device)
        self.capacity = check_int("capacity", capacity, minimum=1)
        shape = (self.batch, self.kv_heads, self.capacity, self.head_dim)
        self.k = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.v = torch.zeros(shape, dtype=self.dtype, device=self.device)

    @property
    def nbytes(self) -> int:
        """Bytes of ``k`` and ``v``: ``batch * capacity`` tokens reserved at construction, whatever the lengths."""
        return self.k.nbytes + self.v.nbytes

    def append(self, k_new: torch.Tensor, v_new: torch.Tensor, seq_ids=None) -> None:
        ids, t = self._check_new(k_new, v_new, seq_ids)
        self._check_capacity(ids, t, self.capacity)
        for i, s in enumerate(ids):
            start = self._lengths[s]
            self.k[s, :, start:start + t] = k_new[i]
            self.v[s, :, start:start + t] = v_new[i]
            self._lengths[s] = start + t

    def fork(self, src: int, dst: int) -> None:
        src, dst = self._check_fork(src, dst)
        n = self._lengths[src]
        self.k[dst, :, :n] = self.k[src, :, :n]
        self.v[dst, :, :n] = self.v[src, :, :n]
        self._lengths[dst] = n

    def free(self, seq_id: int) -> None:
        seq_id = self._check_held(seq_id)
        self.k[seq_id].zero_()
        self.v[seq_id].zero_()
        self._lengths[seq_id] = 0

    def _gather(self, seq_ids) -> tuple[torch.Tensor, torch.Tensor]:
        n = self._lengths[seq_ids[0]]
        return self.k[seq_ids, :, :n], self.v[seq_ids, :, :n]
