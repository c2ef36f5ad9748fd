"""Block allocator with reference counts: the memory manager behind a paged KV cache.

A pool of ``num_blocks`` fixed-size blocks, numbered ``0 .. num_blocks - 1``. :meth:`BlockAllocator.allocate`
hands out a free block with reference count 1; :meth:`BlockAllocator.share` adds a reference (a forked
sequence pointing at the same block: prefix sharing, vLLM's copy-on-write); :meth:`BlockAllocator.release`
drops one, and a block whose count reaches 0 goes back to the free list and is handed out again later.
Releasing or sharing a free block is an error, so a double free cannot corrupt the pool.
"""

from __future__ import annotations

from longctx_lab.core.validate import check_int

__all__ = ["BlockAllocator"]


class BlockAllocator:
    """Hands out block numbers from ``0 .. num_blocks - 1``, counting references to each."""

    def __init__(self, num_blocks: int):
        self.num_blocks = check_int("num_blocks", num_blocks, minimum=1)
        self._refcount = [0] * self.num_blocks
        # A stack: the most recently released block is reused first; blocks 0, 1, 2... come out first.
        self._free = list(range(self.num_blocks - 1, -1, -1))

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def num_used(self) -> int:
        return self.num_blocks - len(self._free)

    def free_blocks(self) -> list[int]:
        """Block numbers not in use, ascending."""
        return sorted(self._free)

    def refcount(self, block: int) -> int:
        """References to ``block`` (0: free)."""
        return self._refcount[self._check_block(block)]

    def allocate(self) -> int:
        """A free block, now with reference count 1. ``ValueError`` when none is left."""
        if not self._free:
            raise ValueError(f"no free block: all num_blocks={self.num_blocks} blocks are in use")
        block = self._free.pop()
        self._refcount[block] = 1
        return block

    def share(self, block: int) -> None:
        """Add a reference to an allocated ``block``."""
        block = self._check_in_use(block)
        self._refcount[block] += 1

    def release(self, block: int) -> None:
        """Drop one reference to ``block``; at 0 it returns to the free list."""
        block = self._check_in_use(block)
        self._refcount[block] -= 1
        if self._refcount[block] == 0:
            self._free.append(block)

    def _check_block(self, block) -> int:
        block = check_int("block", block, minimum=0)
        if block >= self.num_blocks:
            raise ValueError(f"block must be a block number in [0, {self.num_blocks}), got {block}")
        return block

    def _check_in_use(self, block) -> int:
        block = self._check_block(block)
        if self._refcount[block] == 0:
            raise ValueError(f"block must be allocated (reference count > 0), got block {block}, which is free")
        return block
