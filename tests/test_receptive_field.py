"""Receptive field through depth: exact reachability against a breadth-first search, the closed
form L (w - 1) + 1, and gradients through a random-weight stack."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from longctx_lab.attention.mask_predicates import (
    bigbird_predicate,
    dilated_window_predicate,
    longformer_predicate,
    sliding_window_predicate,
)
from longctx_lab.attention.receptive_field import (
    effective_range,
    gradient_influence,
    reachability,
    receptive_field_bounds,
    receptive_field_size,
)


def bfs_reach(mask, layers, i):
    """Inputs reachable from output i in `layers` hops of the mask (plus the residual self-hop)."""
    frontier = {i}
    for _ in range(layers):
        frontier = frontier | {j for p in frontier for j in range(mask.shape[1]) if mask[p, j]}
    return frontier


@given(n=st.integers(1, 30), w=st.integers(1, 6), layers=st.integers(1, 5), kind=st.sampled_from(
    ["window", "bidir", "dilated", "longformer", "bigbird"]))
def test_reachability_matches_bfs(n, w, layers, kind):
    pred = {
        "window": sliding_window_predicate(w),
        "bidir": sliding_window_predicate(w, causal=False),
        "dilated": dilated_window_predicate(w, 2),
        "longformer": longformer_predicate(w, [n // 2], n, causal=True),
        "bigbird": bigbird_predicate(n, 3, random_blocks=1),
    }[kind]
    mask = pred.dense(n)
    reach = reachability(mask, layers)
    assert reach.shape == (layers, n, n)
    for i in range(n):
        for depth in range(1, layers + 1):
            got = set(reach[depth - 1, i].nonzero().flatten().tolist())
            assert got == bfs_reach(mask, depth, i)


@given(n=st.integers(1, 60), w=st.integers(1, 8), layers=st.integers(1, 8))
def test_causal_window_reach_is_l_times_w_minus_1_plus_1(n, w, layers):
    reach = reachability(sliding_window_predicate(w).dense(n), layers)
    for depth in range(1, layers + 1):
        for p in range(n):
            lo, hi = receptive_field_bounds(p, w, depth)
            row = reach[depth - 1, p]
            assert row.nonzero().flatten().tolist() == list(range(lo, hi + 1))
        if n - 1 >= depth * (w - 1):  # far enough from the start: the full span
            assert int(reach[depth - 1, n - 1].sum()) == receptive_field_size(w, depth) == depth * (w - 1) + 1


def test_span_is_not_l_times_w():
    # the article's L * w overcounts by L - 1 for this window convention
    assert receptive_field_size(4096, 32) == 32 * 4096 - 31 == 131_041
    assert receptive_field_bounds(50_000, 4096, 1) == (45_905, 50_000)
    assert receptive_field_bounds(50_000, 4096, 2) == (41_810, 50_000)


@settings(max_examples=6)
@given(w=st.integers(2, 6), layers=st.integers(1, 4), seed=st.integers(0, 100))
def test_gradients_vanish_exactly_outside_the_reachable_set(w, layers, seed):
    n = layers * (w - 1) + 8
    mask = sliding_window_predicate(w).dense(n)
    query = n - 1
    influence = gradient_influence(mask, layers, query, d_model=8, heads=2, seed=seed)
    reach = reachability(mask, layers)[:, query]
    assert influence.shape == (layers, n)
    assert torch.equal(influence > 0, reach)  # measured support == exact reachability, layer by layer
    assert int((influence[-1] > 0).sum()) == receptive_field_size(w, layers)


def test_gradients_agree_for_a_sparse_mask():
    n = 48
    mask = (longformer_predicate(3, [5], n, causal=True)).dense(n)
    influence = gradient_influence(mask, 3, 40, seed=1)
    assert torch.equal(influence > 0, reachability(mask, 3)[:, 40])


def test_effective_range_is_shorter_than_the_span():
    w, layers = 8, 6
    n = layers * (w - 1) + 1
    mask = sliding_window_predicate(w).dense(n)
    influence = gradient_influence(mask, layers, n - 1, seed=0)
    span = receptive_field_size(w, layers)
    eff = effective_range(influence[-1], n - 1, mass=0.9)
    assert 1 <= eff < span
    assert effective_range(influence[-1], n - 1, mass=1.0) <= span


def test_effective_range_by_hand():
    infl = torch.tensor([0.0, 1.0, 1.0, 8.0], dtype=torch.float64)
    assert effective_range(infl, 3, mass=0.8) == 1
    assert effective_range(infl, 3, mass=0.9) == 2
    assert effective_range(infl, 3, mass=1.0) == 3


def test_bad_inputs():
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        receptive_field_size(0, 3)
    with pytest.raises(ValueError, match="layers must be an integer >= 1, got 0"):
        receptive_field_size(3, 0)
    with pytest.raises(TypeError, match="mask must be a boolean torch.Tensor"):
        reachability(torch.ones(3, 3), 2)
    with pytest.raises(ValueError, match="mask must be a square"):
        reachability(torch.ones(3, 4, dtype=torch.bool), 2)
    with pytest.raises(ValueError, match="query must be a position < n=4, got 4"):
        gradient_influence(torch.ones(4, 4, dtype=torch.bool), 1, 4)
    with pytest.raises(ValueError, match="d_model must be a multiple of heads=3"):
        gradient_influence(torch.ones(4, 4, dtype=torch.bool), 1, 0, d_model=8, heads=3)
    with pytest.raises(ValueError, match="influence must not be all zeros"):
        effective_range(torch.zeros(4, dtype=torch.float64), 0)
    with pytest.raises(ValueError, match="mass must be > 0"):
        effective_range(torch.ones(4, dtype=torch.float64), 0, mass=0)
