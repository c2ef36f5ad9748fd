"""Paged KV cache (vLLM's PagedAttention layout): fixed-size blocks, a block table per sequence.

Keys and values live in a pool of ``num_blocks`` blocks, ``k_pool``/``v_pool`` of shape
``(num_blocks, kv_heads, block_size, head_dim)``. Sequence ``s`` owns the blocks listed in its block
table, in order: its token at position ``p`` is slot ``p % block_size`` of block ``table[p // block_size]``.
A sequence takes a new block only when its last one is full, so at most ``block_size - 1`` slots per
sequence are unused, instead of a contiguous cache's whole unused reservation.

Blocks come from a :class:`longctx_lab.kvcache.blocks.BlockAllocator`. :meth:`PagedKVCache.fork` shares
every block of the source (reference count + 1: a shared prompt is stored once, for parallel sampling or
a common system prompt). A shared block is never written: a sequence about to append into a shared,
partly filled last block first copies it to a block of its own (copy-on-write). :meth:`PagedKVCache.free`
releases a sequence's references; blocks nobody references return to the pool and are reused.
"""

from __future__ import annotations

import math

import torch

from longctx_lab.core.validate import check_int, check_optional_int
from longctx_lab.kvcache.base import KVCache
from longctx_lab.kvcache.blocks import BlockAllocator

__all__ = ["PagedKVCache"]


class PagedKVCache(KVCache):
    """``batch`` sequence slots over a shared pool of ``num_blocks`` blocks of ``block_size`` tokens.

    ``max_blocks_per_seq`` (default ``num_blocks``) bounds one sequence's table, so its capacity is
    ``max_blocks_per_seq * block_size`` tokens. An append that needs more blocks than are free, or more
    than a table holds, raises ``ValueError`` and changes nothing. ``nbytes`` is the whole pool (allocated
    once); :attr:`used_bytes` the blocks currently referenced. Interface and conventions:
    :class:`longctx_lab.kvcache.base.KVCache`.
    """

    def __init__(
        self,
        block_size: int,
        num_blocks: int,
        *,
        batch: int,
        kv_heads: int,
        head_dim: int,
        dtype=torch.float32,
        device=None,
        max_blocks_per_seq: int | None = None,
    ):
        self.block_size = check_int("block_size", block_size, minimum=1)
        super().__init__(batch=batch, kv_heads=kv_heads, head_dim=head_dim, dtype=dtype, device=device)
        self.allocator = BlockAllocator(num_blocks)
        self.num_blocks = self.allocator.num_blocks
        limit = check_optional_int("max_blocks_per_seq", max_blocks_per_seq, minimum=1)
        self.max_blocks_per_seq = self.num_blocks if limit is None else limit
        shape = (self.num_blocks, self.kv_heads, self.block_size, self.head_dim)
        self.k_pool = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.v_pool = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self._tables: list[list[int]] = [[] for _ in range(self.batch)]

    @property
    def capacity(self) -> int:
        """Most tokens one sequence can hold: ``max_blocks_per_seq * block_size``."""
        return self.max_blocks_per_seq * self.block_size

    @property
    def nbytes(self) -> int:
        """Bytes of the block pool (``k_pool`` and ``v_pool``), allocated at construction."""
        return self.k_pool.nbytes + self.v_pool.nbytes

    @property
    def used_bytes(self) -> int:
        """Bytes of the blocks in use (a block shared by several sequences counts once)."""
        return self.allocator.num_used * self.nbytes // self.num_blocks

    def blocks_of(self, seq_id: int) -> list[int]:
        """Block table of sequence ``seq_id``: its block numbers in position order (a copy)."""
        return list(self._tables[self._check_seq_id(seq_id)])

    @property
    def block_table(self) -> torch.Tensor:
        """All block tables, ``(batch, max_blocks_per_seq)`` int32, padded with -1 (the layout kernels read)."""
        table = torch.full((self.batch, self.max_blocks_per_seq), -1, dtype=torch.int32)
        for s, blocks in enumerate(self._tables):
            table[s, :len(blocks)] = torch.tensor(blocks, dtype=torch.int32)
        return table.to(self.device)

    def _blocks_needed(self, ids: list[int], t: int) -> int:
        """New blocks an append of ``t`` tokens to ``ids`` takes: fresh blocks plus copy-on-write copies.

        A shared partial block referenced by ``m`` of the appending sequences and ``r`` sequences in all is
        copied ``m`` times, or ``m - 1`` when ``m == r`` (the last one left writes in place)."""
        fresh = sum(math.ceil((self._lengths[s] + t) / self.block_size) - len(self._tables[s]) for s in ids)
        writers: dict[int, int] = {}
        for s in ids:
            if self._lengths[s] % self.block_size:
                last = self._tables[s][-1]
                if self.allocator.refcount(last) > 1:
                    writers[last] = writers.get(last, 0) + 1
        copies = sum(m - (m == self.allocator.refcount(b)) for b, m in writers.items())
        return fresh + copies

    def append(self, k_new: torch.Tensor, v_new: torch.Tensor, seq_ids=None) -> None:
        ids, t = self._check_new(k_new, v_new, seq_ids)
        self._check_capacity(ids, t, self.capacity)
        need = self._blocks_needed(ids, t)
        if need > self.allocator.num_free:
            raise ValueError(
                f"k_new holds t={t} new tokens for {len(ids)} sequences, which need {need} new blocks of "
                f"block_size={self.block_size}, but only {self.allocator.num_free} of num_blocks={self.num_blocks} "
                "are free; nothing was appended (free sequences, or build the cache with more blocks)"
            )
        b = self.block_size
        for i, s in enumerate(ids):
            table, pos, done = self._tables[s], self._lengths[s], 0
            while done < t:
                index, offset = divmod(pos, b)
                if index == len(table):
                    table.append(self.allocator.allocate())
                elif self.allocator.refcount(table[index]) > 1:  # copy-on-write of a shared partial block
                    old, new = table[index], self.allocator.allocate()
                    self.k_pool[new, :, :offset] = self.k_pool[old, :, :offset]
                    self.v_pool[new, :, :offset] = self.v_pool[old, :, :offset]
                    self.allocator.release(old)
                    table[index] = new
                n = min(b - offset, t - done)
                self.k_pool[table[index], :, offset:offset + n] = k_new[i, :, done:done + n]
                self.v_pool[table[index], :, offset:offset + n] = v_new[i, :, done:done + n]
                pos, done = pos + n, done + n
            self._lengths[s] = pos

    def fork(self, src: int, dst: int) -> None:
        """Make empty slot ``dst`` share every block of ``src`` (no copy; copy-on-write on the next append
        into a shared partial block)."""
        src, dst = self._check_fork(src, dst)
        for block in self._tables[src]:
            self.allocator.share(block)
        self._tables[dst] = list(self._tables[src])
        self._lengths[dst] = self._lengths[src]

    def free(self, seq_id: int) -> None:
        seq_id = self._check_held(seq_id)
        for block in self._tables[seq_id]:
            self.allocator.release(block)
        self._tables[seq_id] = []
        self._lengths[seq_id] = 0

    def _gather(self, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        n = self._lengths[ids[0]]
        blocks = torch.tensor([self._tables[s] for s in ids], dtype=torch.long, device=self.device)
        shape = (len(ids), self.kv_heads, blocks.shape[1] * self.block_size, self.head_dim)

        def pages(pool):  # (n, blocks, kv_heads, block_size, d) -> (n, kv_heads, blocks * block_size, d)
            return pool[blocks].permute(0, 2, 1, 3, 4).reshape(shape)[:, :, :n]

        return pages(self.k_pool), pages(self.v_pool)
