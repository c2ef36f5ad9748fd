"""The ring-attention cost model against hand arithmetic, and its bytes against ring_attention's own counts."""

from __future__ import annotations

import math

import pytest

from longctx_lab.core.configs import TPU_V5P
from longctx_lab.distributed import run_ring_demo
from longctx_lab.distributed.cost_model import (
    LINKS,
    article_example,
    block_flops,
    min_block_tokens,
    overlap,
    ring_communication,
    ring_memory,
    sweep,
)


def test_memory_by_hand():
    n, p, h, hk, d = 1024, 4, 8, 2, 64
    s = n // p
    m = ring_memory(n, p, heads=h, kv_heads=hk, head_dim=d, dtype="bf16")
    assert (m.q, m.k, m.v, m.o) == (h * s * d * 2, hk * s * d * 2, hk * s * d * 2, h * s * d * 2)
    assert m.kv_buffers == 2 * (2 * hk * s * d * 2)  # two K/V blocks in flight
    assert m.lse == h * s * 4
    assert m.tiled_workspace == h * s * (d + 2) * 4  # float32 accumulator + running max and sum
    assert m.score_block == h * s * s * 4  # one step's float32 scores: (n/P)^2 per head
    assert m.scores_all_steps == h * s * n * 4  # n^2/P per head over the P steps
    assert m.total == m.q + m.k + m.v + m.o + m.kv_buffers + m.lse + m.tiled_workspace
    untiled = ring_memory(n, p, heads=h, kv_heads=hk, head_dim=d, dtype="bf16", tiled=False)
    assert untiled.total - m.total == m.score_block - m.tiled_workspace
    assert ring_memory(n, p, heads=h, kv_heads=hk, head_dim=d, batch=3).q == 3 * m.q


def test_memory_shrinks_with_p_and_pads_uneven_splits():
    shape = dict(heads=4, kv_heads=4, head_dim=32)
    totals = [ring_memory(4096, p, **shape).total for p in (1, 2, 4, 8)]
    assert totals == sorted(totals, reverse=True)
    assert totals[0] / totals[-1] == pytest.approx(8)  # every term is O(n/P) when tiled
    blocks = [ring_memory(4096, p, **shape).score_block for p in (1, 2, 4, 8)]
    assert blocks[0] / blocks[-1] == 64  # the untiled block is O((n/P)^2)
    m = ring_memory(10, 4, **shape)
    assert (m.tokens_per_device, m.shard_tokens) == (2.5, 3)


def test_communication_by_hand():
    hk, d, s = 2, 64, 128
    block = 2 * hk * s * d * 2  # K and V of one shard, bf16
    for p in (1, 2, 4, 8):
        c = ring_communication(s * p, p, kv_heads=hk, head_dim=d, dtype="bf16", backward=True)
        assert c.block_bytes == block
        assert (c.forward_bytes, c.forward_messages) == ((p - 1) * block, p - 1)
        expected_back = (2 * p - 1) * block if p > 1 else 0  # P - 1 K/V and P dK/dV blocks
        assert (c.backward_bytes, c.backward_messages) == (expected_back, 2 * p - 1 if p > 1 else 0)
    fp32_back = ring_communication(s * 4, 4, kv_heads=hk, head_dim=d, dtype="bf16", backward=True,
                                   backward_dtype="fp32")
    assert fp32_back.backward_bytes == 7 * 2 * block and fp32_back.forward_bytes == 3 * block


def test_c_star_is_f_over_b_for_mha_bf16():
    f, b = 459e12, 100e9
    assert min_block_tokens(flops_per_s=f, bandwidth=b, heads=16, kv_heads=16) == pytest.approx(f / b)
    assert min_block_tokens(flops_per_s=f, bandwidth=b, heads=32, kv_heads=8) == pytest.approx(f / b / 4)  # GQA
    assert min_block_tokens(flops_per_s=f, bandwidth=b, heads=16, kv_heads=16, causal=True) == pytest.approx(2 * f / b)
    assert min_block_tokens(flops_per_s=f, bandwidth=b, heads=16, kv_heads=16, dtype="fp32") == pytest.approx(2 * f / b)
    # backward: K/V + dK/dV (2 + 2 bytes) against 2.5x the FLOPs
    back = min_block_tokens(flops_per_s=f, bandwidth=b, heads=16, kv_heads=16, backward=True)
    assert back == pytest.approx(4 * f / (5 * b))


def test_c_star_monotonic():
    kw = dict(heads=8, kv_heads=8)
    by_f = [min_block_tokens(flops_per_s=f, bandwidth=50e9, **kw) for f in (1e14, 2e14, 4e14)]
    by_b = [min_block_tokens(flops_per_s=4e14, bandwidth=b, **kw) for b in (25e9, 50e9, 100e9)]
    assert by_f == sorted(by_f) and by_b == sorted(by_b, reverse=True)


def test_overlap_matches_the_threshold():
    kw = dict(heads=8, kv_heads=2, head_dim=64, flops_per_s=3e14, bandwidth=70e9)
    c_star = min_block_tokens(flops_per_s=3e14, bandwidth=70e9, heads=8, kv_heads=2)
    assert not c_star.is_integer()
    above, below = overlap(math.ceil(c_star), **kw), overlap(math.floor(c_star), **kw)
    assert above.hidden and not below.hidden
    s = math.ceil(c_star)
    assert above.t_comm == pytest.approx(2 * 2 * s * 64 * 2 / 70e9)
    assert above.t_compute == pytest.approx(4 * 8 * 64 * s * s / 3e14)
    assert above.flops == block_flops(s, heads=8, head_dim=64)
    ratios = [overlap(s, **kw).t_compute / overlap(s, **kw).t_comm for s in (128, 1024, 8192)]
    assert ratios == sorted(ratios)  # compute grows as s^2, bytes as s


def test_article_example():
    e = article_example()
    n, p = 10_000_000, 256
    assert e["tokens_per_device"] == n / p == 39_062.5
    assert round(e["tokens_per_device"] / 1000) == 39  # the article's "39K"
    assert not e["divisible"] and e["shard_tokens"] == 39_063
    assert e["score_block_elements"] == (n / p) ** 2
    assert e["n2_over_p_elements"] == n**2 / p
    assert e["n2_over_p_elements"] / e["score_block_elements"] == pytest.approx(p)  # n^2/P is P times (n/P)^2
    assert e["memory_untiled"].score_block == 16 * 39_063**2 * 4  # 16 heads, float32 scores
    assert e["memory_untiled"].score_block > TPU_V5P.hbm_bytes * 0.9  # about a whole v5p's HBM per layer step
    assert e["memory_tiled"].total < 2 * 2**30
    link = LINKS["ici-v5p-link"]
    assert link.bandwidth == 1200e9 / 6 / 2
    assert e["min_block_tokens"] == pytest.approx(459e12 / link.bandwidth)  # MHA, bf16: F/B = 4,590 tokens
    assert e["min_block_tokens_causal"] == pytest.approx(2 * 459e12 / link.bandwidth)
    assert e["overlap"].hidden
    assert e["communication"].forward_bytes == 255 * 2 * 16 * 39_063 * 128 * 2


def test_sweep():
    rows = sweep(4096, [1, 2, 4, 8], heads=4, kv_heads=2, head_dim=32, backward=True)
    assert [r["world_size"] for r in rows] == [1, 2, 4, 8]
    assert [r["messages"] for r in rows] == [0, 1 + 3, 3 + 7, 7 + 15]
    sent = [r["bytes_sent"] for r in rows]
    block_full = 2 * 2 * 4096 * 32 * 2  # K and V of the whole sequence
    assert sent == [(p - 1 + 2 * p - 1) * block_full // p if p > 1 else 0 for p in (1, 2, 4, 8)]


@pytest.mark.parametrize("call, error", [
    (lambda: ring_memory(8, 16, heads=2, kv_heads=2, head_dim=16), ValueError),
    (lambda: ring_memory(8, 2, heads=3, kv_heads=2, head_dim=16), ValueError),
    (lambda: ring_memory(8, 2, heads=2, kv_heads=2, head_dim=16, dtype="fp7"), ValueError),
    (lambda: ring_memory(8.0, 2, heads=2, kv_heads=2, head_dim=16), TypeError),
    (lambda: ring_communication(10, 4, kv_heads=2, head_dim=16), ValueError),
    (lambda: min_block_tokens(flops_per_s=0, bandwidth=1e9, heads=2, kv_heads=2), ValueError),
    (lambda: overlap(0, heads=2, kv_heads=2, head_dim=16, flops_per_s=1e12, bandwidth=1e9), ValueError),
    (lambda: sweep(16, [], heads=2, kv_heads=2, head_dim=16), ValueError),
    (lambda: article_example(link="nvlink"), TypeError),
])
def test_bad_arguments(call, error):
    with pytest.raises(error):
        call()


@pytest.mark.distributed
def test_model_bytes_equal_counted_bytes_on_4_ranks():
    """The model's bytes per rank equal what ring_attention(stats=) counted on 4 spawned ranks (forward and
    backward, float32: the backward ring moves float32 too). The 2-rank case is in test_ring_command.py."""
    report = run_ring_demo(procs=4, seq_len=32, heads=2, kv_heads=1, head_dim=16, backward=True, timeout=60)
    model = ring_communication(32, 4, kv_heads=1, head_dim=16, dtype="fp32", backward=True)
    assert report.ok
    for r in report.records:
        assert r.counted
        assert r.forward_bytes == model.forward_bytes
        assert r.backward_bytes == model.backward_bytes
        assert r.messages == model.forward_messages + model.backward_messages
