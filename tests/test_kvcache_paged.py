"""Paged KV cache and its block allocator: no leaked, doubly used or freed block is ever read; prefix
sharing by reference count with copy-on-write of a shared partial block; refused appends change nothing."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from kvcache_driver import drive, exact_check, poison_paged

from longctx_lab.kvcache import BlockAllocator, PagedKVCache


def check_allocator(cache: PagedKVCache, history=None):
    """Reference counts equal the references held by block tables; free = unreferenced; tables sized to lengths."""
    refs = Counter()
    for s, n in enumerate(cache.lengths.tolist()):
        table = cache.blocks_of(s)
        assert len(table) == math.ceil(n / cache.block_size), f"sequence {s}: {len(table)} blocks for {n} tokens"
        assert len(set(table)) == len(table), f"sequence {s} uses a block twice: {table}"
        refs.update(table)
    alloc = cache.allocator
    assert [alloc.refcount(b) for b in range(cache.num_blocks)] == [refs[b] for b in range(cache.num_blocks)]
    assert alloc.free_blocks() == [b for b in range(cache.num_blocks) if refs[b] == 0]
    assert alloc.num_free + alloc.num_used == cache.num_blocks
    assert cache.used_bytes == len(refs) * cache.nbytes // cache.num_blocks
    table = cache.block_table
    for s in range(cache.batch):
        row = table[s].tolist()
        n = len(cache.blocks_of(s))
        assert row[:n] == cache.blocks_of(s) and all(b == -1 for b in row[n:])


def inspect(cache, history):
    check_allocator(cache)
    poison_paged(cache)  # every free block and unused slot is NaN: reading one shows in the next attend


def refused_fairly(cache, ids, t, error):
    """A refused append must really lack blocks: it needs at most one copy-on-write block per sequence beyond
    the fresh ones, so with that many free it must have succeeded."""
    b = cache.block_size
    upper = sum(math.ceil((n + t) / b) - math.ceil(n / b) + 1 for n in (cache.lengths[s].item() for s in ids))
    assert cache.allocator.num_free < upper, f"append refused with {cache.allocator.num_free} free blocks: {error}"
    check_allocator(cache)


@given(data=st.data(), batch=st.integers(1, 4), kv_heads=st.integers(1, 2), block_size=st.integers(1, 4),
       num_blocks=st.integers(1, 12))
def test_tight_pool_random_programs(data, batch, kv_heads, block_size, num_blocks):
    """A pool smaller than the sequences could use: appends get refused (nothing changes); everything held
    still attends like full attention, and freeing every sequence returns every block."""
    cache = PagedKVCache(block_size, num_blocks, batch=batch, kv_heads=kv_heads, head_dim=16)
    drive(data, cache, heads=2 * kv_heads, capacity=cache.capacity, max_new=6, max_q=4, windows=[None, 2],
          check=exact_check, inspect=inspect, on_full=refused_fairly, max_ops=14)
    for s in cache.held():
        cache.free(s)
    assert cache.allocator.num_free == num_blocks and cache.used_bytes == 0  # nothing leaked


def test_fork_shares_blocks_and_copies_a_shared_partial_block_on_write():
    g = torch.Generator().manual_seed(0)
    cache = PagedKVCache(4, 8, batch=3, kv_heads=1, head_dim=16)
    k, v = torch.randn(1, 1, 6, 16, generator=g), torch.randn(1, 1, 6, 16, generator=g)
    cache.append(k, v, [0])  # blocks 0 (full) and 1 (2 of 4 slots)
    cache.fork(0, 1)
    cache.fork(0, 2)
    assert cache.blocks_of(1) == cache.blocks_of(0) == cache.blocks_of(2)
    assert [cache.allocator.refcount(b) for b in cache.blocks_of(0)] == [3, 3]
    assert cache.allocator.num_used == 2  # the prompt is stored once
    partial = cache.blocks_of(0)[1]
    before = cache.k_pool[partial].clone()
    k1, v1 = torch.randn(1, 1, 1, 16, generator=g), torch.randn(1, 1, 1, 16, generator=g)
    cache.append(k1, v1, [1])  # copy-on-write: sequence 1 gets its own copy of the partial block
    assert cache.blocks_of(1)[0] == cache.blocks_of(0)[0] and cache.blocks_of(1)[1] != partial
    assert torch.equal(cache.k_pool[partial], before)  # the shared block was not written
    assert cache.allocator.refcount(partial) == 2 and cache.allocator.refcount(cache.blocks_of(0)[0]) == 3
    got_k, got_v = cache.gather([1])
    torch.testing.assert_close(got_k, torch.cat([k, k1], dim=2), rtol=0, atol=0)
    torch.testing.assert_close(got_v, torch.cat([v, v1], dim=2), rtol=0, atol=0)
    # sequences 0 and 2 append together: one copy for the first, the last sharer then writes in place
    free_before = cache.allocator.num_free
    k2 = torch.randn(2, 1, 1, 16, generator=g)
    cache.append(k2, k2, [0, 2])
    assert cache.allocator.num_free == free_before - 1 and cache.allocator.refcount(partial) == 1
    for i, s in enumerate([0, 2]):
        torch.testing.assert_close(cache.gather([s])[0], torch.cat([k, k2[i:i + 1]], dim=2), rtol=0, atol=0)
    check_allocator(cache)


def test_exact_copy_on_write_count_lets_a_full_pool_append():
    """Two sharers of a partial block appending together need one copy, not two: with a single free block
    the append fits (a count of two would refuse it)."""
    cache = PagedKVCache(4, 3, batch=2, kv_heads=1, head_dim=16)
    x = torch.randn(1, 1, 6, 16)
    cache.append(x, x, [0])
    cache.fork(0, 1)
    assert cache.allocator.num_free == 1
    y = torch.randn(2, 1, 1, 16)
    cache.append(y, y, [0, 1])
    assert cache.allocator.num_free == 0 and cache.lengths.tolist() == [7, 7]
    check_allocator(cache)


def test_freed_blocks_are_reused_and_refused_appends_change_nothing():
    cache = PagedKVCache(2, 4, batch=2, kv_heads=1, head_dim=16)
    x = torch.randn(1, 1, 8, 16)
    cache.append(x[:, :, :5], x[:, :, :5], [0])  # 3 blocks
    snapshot = (cache.k_pool.clone(), cache.blocks_of(0), cache.allocator.free_blocks())
    y = torch.randn(2, 1, 2, 16)
    with pytest.raises(ValueError, match=r"need 2 new blocks of block_size=2, but only 1 of num_blocks=4 are free; "
                                         "nothing was appended"):
        cache.append(y, y, [0, 1])  # sequence 0 needs 1 block (fits alone), sequence 1 another: refused whole
    assert cache.lengths.tolist() == [5, 0]
    assert torch.equal(cache.k_pool, snapshot[0]) and cache.blocks_of(0) == snapshot[1]
    assert cache.allocator.free_blocks() == snapshot[2]
    used = set(cache.blocks_of(0))
    cache.free(0)
    cache.append(x, x, [1])  # 4 blocks: all of the pool, including the 3 just freed
    assert set(cache.blocks_of(1)) >= used and cache.allocator.num_free == 0
    torch.testing.assert_close(cache.gather([1])[0], x, rtol=0, atol=0)
    with pytest.raises(ValueError, match="k_new holds t=1 new tokens, but sequence 1 already has 8 and capacity is 8"):
        cache.append(x[:, :, :1], x[:, :, :1], [1])
    limited = PagedKVCache(2, 8, batch=1, kv_heads=1, head_dim=16, max_blocks_per_seq=2)
    with pytest.raises(ValueError, match="capacity is 4 tokens per sequence"):
        limited.append(x[:, :, :5], x[:, :, :5])
    assert limited.allocator.num_free == 8


def test_allocator():
    alloc = BlockAllocator(3)
    blocks = [alloc.allocate() for _ in range(3)]
    assert sorted(blocks) == [0, 1, 2] and alloc.num_free == 0
    with pytest.raises(ValueError, match="no free block: all num_blocks=3 blocks are in use"):
        alloc.allocate()
    alloc.share(1)
    alloc.release(1)
    assert alloc.refcount(1) == 1
    alloc.release(1)
    assert alloc.free_blocks() == [1] and alloc.allocate() == 1
    alloc.release(2)
    with pytest.raises(ValueError, match="block must be allocated .*got block 2, which is free"):
        alloc.release(2)  # double free
    with pytest.raises(ValueError, match="block must be allocated .*got block 2, which is free"):
        alloc.share(2)
    with pytest.raises(ValueError, match=r"block must be a block number in \[0, 3\), got 3"):
        alloc.refcount(3)
    with pytest.raises(TypeError, match="block must be an integer, got float 1.0"):
        alloc.release(1.0)
    with pytest.raises(TypeError, match="num_blocks must be an integer, got float 2.0"):
        BlockAllocator(2.0)
