"""Layouts, work balance and the LSE merge of ring attention: no processes, unit stage."""

from __future__ import annotations

import pytest
import torch

from longctx_lab.attention.reference import naive_attention
from longctx_lab.distributed import chunks_of_rank, merge_partials, shard, unshard, work_per_rank
from longctx_lab.kernels.dispatch import flash_attention_with_lse


@pytest.mark.parametrize("layout", ["plain", "zigzag"])
@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_shard_unshard_round_trip(layout, world_size):
    x = torch.arange(2 * 3 * 16 * 2).reshape(2, 3, 16, 2)
    shards = [shard(x, r, world_size, layout) for r in range(world_size)]
    assert all(s.shape[2] == 16 // world_size for s in shards)
    torch.testing.assert_close(unshard(shards, layout), x)


def test_zigzag_chunks():
    assert [chunks_of_rank(r, 4, "zigzag") for r in range(4)] == [(0, 7), (1, 6), (2, 5), (3, 4)]
    assert [chunks_of_rank(r, 4, "plain") for r in range(4)] == [(0,), (1,), (2,), (3,)]


def _brute_force_work(seq, world_size, layout, causal):
    """Attended pairs per rank from the positions each rank holds: a query at p sees p + 1 keys (causal)."""
    pos = torch.arange(seq)[None, None, :, None].float()
    return [int(((shard(pos, r, world_size, layout) + 1) if causal else torch.full_like(
        shard(pos, r, world_size, layout), seq)).sum()) for r in range(world_size)]


@pytest.mark.parametrize("layout", ["plain", "zigzag"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("world_size", [2, 4, 8])
def test_work_per_rank_counts_attended_pairs(layout, causal, world_size):
    assert work_per_rank(64, world_size, layout, causal=causal) == _brute_force_work(64, world_size, layout, causal)


@pytest.mark.parametrize("world_size", [2, 4, 8])
def test_zigzag_balances_causal_work_plain_does_not(world_size):
    """Stated ratio: zigzag's busiest/idlest rank = 1 exactly; plain's >= world_size (about 2P - 1)."""
    seq = 1024
    zig = work_per_rank(seq, world_size, "zigzag", causal=True)
    plain = work_per_rank(seq, world_size, "plain", causal=True)
    assert max(zig) / min(zig) == 1.0
    assert max(plain) / min(plain) >= world_size
    assert sum(zig) == sum(plain) == seq * (seq + 1) // 2


def test_merge_equals_attention_over_all_keys():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, 5, 16, generator=g, dtype=torch.float64)
    k = torch.randn(1, 2, 12, 16, generator=g, dtype=torch.float64)
    v = torch.randn(1, 2, 12, 16, generator=g, dtype=torch.float64)
    out, lse = None, None
    for part in (slice(0, 4), slice(4, 9), slice(9, 12)):
        o, l_ = flash_attention_with_lse(q, k[:, :, part], v[:, :, part])
        out, lse = merge_partials(out, lse, o, l_)
    torch.testing.assert_close(out, naive_attention(q, k, v), atol=1e-12, rtol=1e-10)
    scores = q @ k.transpose(-2, -1) / 4.0
    torch.testing.assert_close(lse, torch.logsumexp(scores, dim=-1), atol=1e-12, rtol=1e-10)


def test_merge_is_stable_for_far_apart_lse():
    """lse differing by 1e4 (float32): the naive log(1 + exp(d)) overflows to inf; the max-shifted merge does not."""
    out_a, out_b = torch.ones(1, 1, 2, 16), 2 * torch.ones(1, 1, 2, 16)
    lse_a = torch.tensor([[[0.0, 1e4]]])
    lse_b = torch.tensor([[[1e4, 0.0]]])
    assert torch.isinf(lse_a + torch.log1p(torch.exp(lse_b - lse_a))).any()
    out, lse = merge_partials(out_a, lse_a, out_b, lse_b)
    torch.testing.assert_close(lse, torch.tensor([[[1e4, 1e4]]]))
    torch.testing.assert_close(out[0, 0, :, 0], torch.tensor([2.0, 1.0]))


def test_merge_with_a_row_that_saw_no_key():
    out_a, lse_a = torch.zeros(1, 1, 2, 16), torch.tensor([[[float("-inf"), float("-inf")]]])
    out_b, lse_b = torch.ones(1, 1, 2, 16), torch.tensor([[[0.5, float("-inf")]]])
    out, lse = merge_partials(out_a, lse_a, out_b, lse_b)
    assert not out.isnan().any()
    torch.testing.assert_close(out[0, 0, :, 0], torch.tensor([1.0, 0.0]))
    assert lse[0, 0, 0] == 0.5 and torch.isneginf(lse[0, 0, 1])


def test_merge_rejects_mismatched_rows():
    with pytest.raises(ValueError, match="must cover the same rows"):
        merge_partials(torch.zeros(1, 1, 2, 16), torch.zeros(1, 1, 2), torch.zeros(1, 1, 3, 16), torch.zeros(1, 1, 3))
