"""Exact pair counts per mask: closed forms against dense counts and against longctx_lab.cost."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab import cost
from longctx_lab.attention.mask_predicates import (
    axial_predicate,
    causal_predicate,
    dilated_window_predicate,
    document_predicate,
    full_predicate,
    longformer_predicate,
    prefix_lm_predicate,
    sliding_window_predicate,
)
from longctx_lab.attention.sparse_cost import (
    axial_pairs,
    count_pairs,
    flops_from_pairs,
    pairs_causal,
    pairs_dilated_window,
    pairs_documents,
    pairs_full,
    pairs_prefix_lm,
    pairs_sliding_window,
    window_reduction,
)

ns = st.integers(1, 80)
ws = st.integers(1, 30)


@given(n=ns, w=ws, causal=st.booleans())
def test_window_closed_form_equals_dense_count(n, w, causal):
    pred = sliding_window_predicate(w, causal=causal)
    dense = int(pred.dense(n).sum())
    assert pairs_sliding_window(n, w, causal=causal) == dense
    assert count_pairs(pred, n, chunk=7) == dense
    assert count_pairs(pred.dense(n)) == dense
    # an independent implementation: the course's cost model
    assert cost.attended_pairs(n, causal=causal, window=w) == dense


@given(n=st.integers(1, 10_000), w=st.integers(1, 10_000))
def test_causal_window_formula_for_n_at_least_w(n, w):
    if n >= w:
        assert pairs_sliding_window(n, w) == n * w - w * (w - 1) // 2
    else:
        assert pairs_sliding_window(n, w) == pairs_causal(n)
    assert pairs_sliding_window(n, w) == cost.attended_pairs(n, causal=True, window=w)


@given(n=ns)
def test_full_and_causal(n):
    assert pairs_full(n) == int(full_predicate().dense(n).sum()) == n * n
    assert pairs_causal(n) == int(causal_predicate().dense(n).sum())
    assert pairs_sliding_window(n, n) == pairs_causal(n)  # a window as long as the sequence is causal


@given(n=ns, w=st.integers(1, 12), d=st.integers(1, 6), causal=st.booleans())
def test_dilated(n, w, d, causal):
    pred = dilated_window_predicate(w, d, causal=causal)
    assert pairs_dilated_window(n, w, d, causal=causal) == int(pred.dense(n).sum()) == count_pairs(pred, n)


@given(n=ns, p=st.integers(0, 90))
def test_prefix_lm(n, p):
    assert pairs_prefix_lm(n, p) == int(prefix_lm_predicate(p).dense(n).sum())


@given(lengths=st.lists(st.integers(1, 12), min_size=1, max_size=6), causal=st.booleans())
def test_documents(lengths, causal):
    pred = document_predicate(lengths, causal=causal)
    assert pairs_documents(lengths, causal=causal) == int(pred.dense(sum(lengths)).sum())


@given(r=st.integers(1, 9), c=st.integers(1, 9))
def test_axial(r, c):
    n = r * c
    both = int(axial_predicate(c, "row").dense(n).sum()) + int(axial_predicate(c, "col").dense(n).sum())
    assert axial_pairs(r, c) == both


@given(n=st.integers(1, 60), w=st.integers(1, 10), k=st.integers(0, 4))
def test_count_pairs_for_masks_without_closed_form(n, w, k):
    pred = longformer_predicate(w, list(range(min(k, n))), n)
    assert count_pairs(pred, n, chunk=5) == int(pred.dense(n).sum())


@given(q_len=st.integers(1, 40), extra=st.integers(0, 40), w=ws)
def test_count_pairs_rectangular_matches_cost_model(q_len, extra, w):
    kv_len = q_len + extra
    assert count_pairs(sliding_window_predicate(w), q_len, kv_len, chunk=6) == cost.attended_pairs(
        q_len, kv_len, causal=True, window=w
    )


def test_long_window_count_uses_the_band():
    # 50,000 positions: the dense mask would hold 2.5e9 entries; the band evaluates about 1% of them
    n, w = 50_000, 300
    assert count_pairs(sliding_window_predicate(w), n, chunk=128) == n * w - w * (w - 1) // 2


def test_flops_and_reduction():
    assert flops_from_pairs(10, 64, heads=2, batch=3) == 4 * 64 * 10 * 2 * 3
    assert flops_from_pairs(pairs_causal(100), 64) == cost.attention_flops(100, 64, causal=True)
    n, w = 200_000, 512
    assert window_reduction(n, w, causal=False) == pytest.approx(n * n / (n * (2 * w - 1) - w * (w - 1)))
    assert window_reduction(n, w) == pytest.approx((n * (n + 1) / 2) / (n * w - w * (w - 1) / 2))
    # the causal-aware saving is about half the naive n^2 / (n w)
    assert window_reduction(n, w) < 0.51 * (n * n) / (n * w)


def test_bad_inputs():
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        pairs_sliding_window(10, 0)
    with pytest.raises(TypeError, match="n must be an integer"):
        pairs_causal(10.0)
    with pytest.raises(ValueError, match="dilation must be an integer >= 1, got 0"):
        pairs_dilated_window(10, 2, 0)
    with pytest.raises(TypeError, match="mask must be a boolean tensor"):
        count_pairs(torch.ones(3, 3))
    with pytest.raises(TypeError, match="mask must be a boolean torch.Tensor or a MaskPredicate"):
        count_pairs("causal", 4)
    with pytest.raises(ValueError, match="q_len must be given"):
        count_pairs(causal_predicate())
    with pytest.raises(ValueError, match="pairs must be an integer >= 0, got -1"):
        flops_from_pairs(-1, 64)
    with pytest.raises(ValueError, match="prefix_len must be an integer >= 0, got -2"):
        pairs_prefix_lm(5, -2)
    with pytest.raises(TypeError, match="causal must be a bool"):
        window_reduction(100, 8, causal="yes")
