"""Exact pair counts per mask: closed forms against dense counts. Full, causal and window pairs have one
definition, ``cost.attended_pairs``; the closed forms below are written out here, not imported."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

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
    pairs_dilated_window,
    pairs_documents,
    pairs_prefix_lm,
    window_reduction,
)
from longctx_lab.core import cost

ns = st.integers(1, 80)
ws = st.integers(1, 30)


@given(n=ns, w=ws, causal=st.booleans())
def test_window_count_equals_dense_count(n, w, causal):
    pred = sliding_window_predicate(w, causal=causal)
    dense = int(pred.dense(n).sum())
    assert cost.attended_pairs(n, causal=causal, window=w) == dense
    assert count_pairs(pred, n, chunk=7) == dense
    assert count_pairs(pred.dense(n)) == dense


@given(n=st.integers(1, 10_000), w=st.integers(1, 10_000), causal=st.booleans())
def test_window_closed_forms(n, w, causal):
    got = cost.attended_pairs(n, causal=causal, window=w)
    if causal:  # the first w - 1 queries see fewer than w keys
        assert got == (n * w - w * (w - 1) // 2 if n >= w else n * (n + 1) // 2)
    else:
        assert got == (n * (2 * w - 1) - w * (w - 1) if n >= w else n * n)


@given(n=ns)
def test_full_and_causal(n):
    assert cost.attended_pairs(n) == int(full_predicate().dense(n).sum()) == n * n
    assert cost.attended_pairs(n, causal=True) == int(causal_predicate().dense(n).sum()) == n * (n + 1) // 2
    # a window as long as the sequence is causal
    assert cost.attended_pairs(n, causal=True, window=n) == cost.attended_pairs(n, causal=True)


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
    assert flops_from_pairs(cost.attended_pairs(100, causal=True), 64) == cost.attention_flops(100, 64, causal=True)
    n, w = 200_000, 512
    assert window_reduction(n, w, causal=False) == pytest.approx(n * n / (n * (2 * w - 1) - w * (w - 1)))
    assert window_reduction(n, w) == pytest.approx((n * (n + 1) / 2) / (n * w - w * (w - 1) / 2))
    # the causal-aware saving is about half the naive n^2 / (n w)
    assert window_reduction(n, w) < 0.51 * (n * n) / (n * w)


def test_bad_inputs():
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        cost.attended_pairs(10, causal=True, window=0)
    with pytest.raises(TypeError, match="n must be an integer"):
        window_reduction(10.0, 2)
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
