"""Random programs of appends, forks, frees and attends for the KV-cache tests, beside a float64 record.

The record (:class:`History`) is plain concatenation of everything appended to each slot, in float64:
the independent reference. After every operation the driver checks the cache's lengths against it,
lets the caller inspect the cache (allocator invariants, poisoning of unused memory), then attends with
random queries for a random subset of sequences and hands the output to the caller's check.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from longctx_lab.attention.reference import naive_attention
from longctx_lab.kvcache import ContiguousKVCache, PagedKVCache, RollingKVCache

# float32 runs the dispatcher (tiled online softmax in float32) against float64: chapter 4's float32 tolerance.
# float64 runs the reference path: exact up to float64 rounding.
TOL = {torch.float32: {"rtol": 1e-4, "atol": 2e-5}, torch.float64: {"rtol": 1e-12, "atol": 1e-12}}


class History:
    """What each slot should hold: float64 keys/values ``(kv_heads, L, head_dim)`` per held sequence."""

    def __init__(self):
        self.k: dict[int, torch.Tensor] = {}
        self.v: dict[int, torch.Tensor] = {}

    def length(self, s: int) -> int:
        return self.k[s].shape[1] if s in self.k else 0

    def append(self, ids, k, v):
        for i, s in enumerate(ids):
            old_k = self.k.get(s, k.new_zeros(k.shape[1], 0, k.shape[3]).double())
            old_v = self.v.get(s, v.new_zeros(v.shape[1], 0, v.shape[3]).double())
            self.k[s] = torch.cat([old_k, k[i].double()], dim=1)
            self.v[s] = torch.cat([old_v, v[i].double()], dim=1)

    def fork(self, src, dst):
        self.k[dst], self.v[dst] = self.k[src].clone(), self.v[src].clone()

    def free(self, s):
        del self.k[s], self.v[s]


def reference_attention(history: History, q: torch.Tensor, ids, window):
    """float64 naive attention of each row of ``q`` over its sequence's whole recorded history."""
    return torch.cat([
        naive_attention(q[i:i + 1].double(), history.k[s][None], history.v[s][None], causal=True, window=window)
        for i, s in enumerate(ids)
    ])


def drive(data, cache, *, heads: int, capacity: int | None, max_new: int, max_q: int, windows, check, inspect=None,
          max_ops: int = 10, on_full=None):
    """Run a random program on ``cache``; ``check(cache, history, q, ids, window, out)`` after every attend.

    ``capacity`` bounds each sequence's length (``None``: unbounded); ``max_q`` bounds ``q_len``;
    ``windows`` are the ``window`` arguments to draw from; ``inspect(cache, history)`` runs after every
    mutation, before the attend. ``on_full(cache, ids, t, error)``, when given, judges an append refused with
    ``ValueError`` ("nothing was appended"): the driver then checks that the lengths did not change.
    """
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    gen = torch.Generator().manual_seed(seed)
    history = History()
    batch, kv_heads, d, dtype = cache.batch, cache.kv_heads, cache.head_dim, cache.dtype

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)

    for _ in range(data.draw(st.integers(1, max_ops), label="n_ops")):
        held = cache.held()
        empty = [s for s in range(batch) if s not in held]
        ops = ["append"] + (["fork"] if held and empty else []) + (["free"] if held else [])
        op = data.draw(st.sampled_from(ops), label="op")
        if op == "append":
            ids = data.draw(st.lists(st.sampled_from(range(batch)), min_size=1, max_size=batch, unique=True),
                            label="append ids")
            room = max_new if capacity is None else min(max_new, min(capacity - history.length(s) for s in ids))
            if room >= 1:
                t = data.draw(st.integers(1, room), label="t")
                k, v = randn(len(ids), kv_heads, t, d), randn(len(ids), kv_heads, t, d)
                try:
                    cache.append(k, v, ids)
                except ValueError as error:
                    if on_full is None or "nothing was appended" not in str(error):
                        raise
                    on_full(cache, ids, t, error)
                else:
                    history.append(ids, k, v)
        elif op == "fork":
            src = data.draw(st.sampled_from(held), label="src")
            dst = data.draw(st.sampled_from(empty), label="dst")
            cache.fork(src, dst)
            history.fork(src, dst)
        else:
            s = data.draw(st.sampled_from(held), label="free")
            cache.free(s)
            history.free(s)
        assert cache.lengths.tolist() == [history.length(s) for s in range(batch)]
        if inspect is not None:
            inspect(cache, history)
        held = cache.held()
        if not held:
            continue
        order = data.draw(st.permutations(held), label="attend order")
        ids = order[:data.draw(st.integers(1, len(order)), label="n attend")]
        q_len = data.draw(st.integers(1, min(max_q, min(history.length(s) for s in ids))), label="q_len")
        window = data.draw(st.sampled_from(windows), label="window")
        q = randn(len(ids), heads, q_len, d)
        out = cache.attend(q, ids, window=window)
        assert out.shape == q.shape and out.dtype == q.dtype
        check(cache, history, q, ids, window, out)
    return history


def exact_check(cache, history, q, ids, window, out):
    if isinstance(cache, RollingKVCache) and window is None:
        window = cache.window
    ref = reference_attention(history, q, ids, window)
    torch.testing.assert_close(out.double(), ref, **TOL[cache.dtype])


def poison_unused(cache, history):
    """Fill every slot that holds no token of a held sequence with NaN: reading one would show in the output."""
    nan = float("nan")
    if isinstance(cache, ContiguousKVCache):
        for s, n in enumerate(cache.lengths.tolist()):
            cache.k[s, :, n:] = nan
            cache.v[s, :, n:] = nan
    elif isinstance(cache, RollingKVCache):
        for s in range(cache.batch):
            empty = cache.positions_of(s) < 0
            cache.k[s, :, empty] = nan
            cache.v[s, :, empty] = nan
    elif isinstance(cache, PagedKVCache):
        poison_paged(cache)


def poison_paged(cache):
    nan = float("nan")
    for b in cache.allocator.free_blocks():
        cache.k_pool[b] = nan
        cache.v_pool[b] = nan
    for s, n in enumerate(cache.lengths.tolist()):
        blocks = cache.blocks_of(s)
        if n % cache.block_size:
            cache.k_pool[blocks[-1], :, n % cache.block_size:] = nan
            cache.v_pool[blocks[-1], :, n % cache.block_size:] = nan
