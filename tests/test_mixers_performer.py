"""Performer's FAVOR+: the features estimate the softmax kernel, the error falls with more features."""

import math

import pytest
import torch

from longctx_lab.mixers.linear_attention import linear_attention_quadratic
from longctx_lab.mixers.performer import (
    favor_features,
    orthogonal_random_features,
    performer_attention,
    performer_error_vs_features,
)


def _qkv(seed, batch=1, heads=2, seq=16, d=8, spread=0.5):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, seq, d, generator=gen, dtype=torch.float64) * spread for _ in range(3)]


def _softmax_attention(q, k, v, causal):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(scores, -1) @ v


def test_rows_are_orthogonal_within_a_block_and_seeded():
    w = orthogonal_random_features(20, 8, seed=3)
    assert w.shape == (20, 8) and w.dtype == torch.float64
    block = w[:8] / w[:8].norm(dim=1, keepdim=True)
    torch.testing.assert_close(block @ block.T, torch.eye(8, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(orthogonal_random_features(20, 8, seed=3), w, rtol=0, atol=0)
    assert not torch.equal(orthogonal_random_features(20, 8, seed=4), w)


def test_the_features_estimate_the_softmax_kernel():
    # E[phi(q) . phi(k)] = exp(q . k / sqrt(d)); with many features the estimate is within a few percent
    q, k, _ = _qkv(0, seq=5, d=4)
    w = orthogonal_random_features(40000, 4, seed=1)
    estimate = favor_features(q, w) @ favor_features(k, w).transpose(-2, -1)
    exact = torch.exp(q @ k.transpose(-2, -1) / 2.0)
    assert (estimate > 0).all()
    torch.testing.assert_close(estimate, exact, rtol=0.05, atol=0)


def test_stabilisers_cancel_in_attention():
    q, k, v = _qkv(2)
    w = orthogonal_random_features(32, 8, seed=0)
    plain = favor_features(q, w) @ favor_features(k, w).transpose(-2, -1)
    stable = favor_features(q, w, stabiliser="row") @ favor_features(k, w, stabiliser="tensor").transpose(-2, -1)
    torch.testing.assert_close(stable / stable.sum(-1, keepdim=True), plain / plain.sum(-1, keepdim=True))


@pytest.mark.parametrize("causal", [False, True])
def test_performer_attention_is_linear_attention_over_its_features(causal):
    q, k, v = _qkv(3)
    w = orthogonal_random_features(64, 8, seed=0)
    fq, fk = favor_features(q, w, stabiliser="row"), favor_features(k, w, stabiliser="tensor")
    weights = fq @ fk.transpose(-2, -1)
    if causal:
        expected = linear_attention_quadratic(fq, fk, v, feature_map=None)
    else:
        expected = (weights @ v) / (weights.sum(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(performer_attention(q, k, v, w, causal=causal, chunk_size=5), expected)


@pytest.mark.parametrize("causal", [False, True])
def test_the_error_falls_with_the_number_of_features(causal):
    q, k, v = _qkv(4, seq=24)
    rows = performer_error_vs_features(q, k, v, [8, 512], seeds=(0, 1, 2), causal=causal)
    assert [r["n_features"] for r in rows] == [8, 512]
    assert all(len(r["errors"]) == 3 for r in rows)
    # Monte Carlo error shrinks like 1/sqrt(m): 512/8 = 64 features more should give ~8x less; ask for 3x
    assert rows[1]["mean_error"] < rows[0]["mean_error"] / 3
    exact = _softmax_attention(q, k, v, causal)
    w = orthogonal_random_features(512, 8, seed=0)
    err = float((performer_attention(q, k, v, w, causal=causal) - exact).norm() / exact.norm())
    assert err == pytest.approx(rows[1]["errors"][0], rel=1e-9)


def test_bad_arguments_name_themselves():
    q, k, v = _qkv(5)
    w = orthogonal_random_features(16, 8)
    with pytest.raises(ValueError, match="n_features must be an integer >= 1, got 0"):
        orthogonal_random_features(0, 8)
    with pytest.raises(ValueError, match="x must end in head_dim = 4"):
        favor_features(q, w[:, :4])
    with pytest.raises(ValueError, match="stabiliser must be one of"):
        favor_features(q, w, stabiliser="max")
    with pytest.raises(TypeError, match="causal must be a bool"):
        performer_attention(q, k, v, w, causal=1)
    with pytest.raises(ValueError, match="feature_counts must name at least one"):
        performer_error_vs_features(q, k, v, [])
    with pytest.raises(ValueError, match=r"feature_counts\[\] must be an integer >= 1, got 0"):
        performer_error_vs_features(q, k, v, [0])
