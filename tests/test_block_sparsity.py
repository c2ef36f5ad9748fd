"""Tile classification (empty / partial / full) and tiled-kernel FLOPs, against brute-force tile
loops and against FlexAttention's own block mask."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab.attention.block_sparsity import EMPTY, FULL, PARTIAL, block_stats, classify_blocks, tile_counts
from longctx_lab.attention.mask_predicates import (
    bigbird_predicate,
    causal_predicate,
    dilated_window_predicate,
    document_predicate,
    longformer_predicate,
    prefix_lm_predicate,
    sliding_window_predicate,
)
from longctx_lab.attention.masks import sliding_window_mask


def brute_classes(dense, bq, bk):
    q_len, kv_len = dense.shape
    out = []
    for r0 in range(0, q_len, bq):
        row = []
        for c0 in range(0, kv_len, bk):
            tile = dense[r0:r0 + bq, c0:c0 + bk]
            row.append(EMPTY if not tile.any() else FULL if tile.all() else PARTIAL)
        out.append(row)
    return torch.tensor(out, dtype=torch.int8)


def mask_for(kind, n, w):
    return {
        "causal": causal_predicate(),
        "window": sliding_window_predicate(w),
        "bidir": sliding_window_predicate(w, causal=False),
        "dilated": dilated_window_predicate(w, 2),
        "prefix": prefix_lm_predicate(w),
        "longformer": longformer_predicate(w, [0], n),
        "bigbird": bigbird_predicate(n, 3, random_blocks=1),
        "documents": document_predicate([n // 2, n - n // 2]) if n > 1 else document_predicate([1]),
    }[kind]


kinds = st.sampled_from(["causal", "window", "bidir", "dilated", "prefix", "longformer", "bigbird", "documents"])


@given(kind=kinds, n=st.integers(1, 50), w=st.integers(1, 10), bq=st.integers(1, 12), bk=st.integers(1, 12))
def test_classification_matches_brute_force_tiles(kind, n, w, bq, bk):
    pred = mask_for(kind, n, w)
    dense = pred.dense(n)
    expected = brute_classes(dense, bq, bk)
    assert torch.equal(classify_blocks(dense, bq, bk), expected)
    # the predicate path (evaluated block row by block row, band-limited) agrees with the dense path
    assert torch.equal(classify_blocks(pred, bq, bk, q_len=n), expected)


@given(q_len=st.integers(1, 30), extra=st.integers(0, 30), w=st.integers(1, 10), b=st.integers(1, 9))
def test_rectangular_bottom_right(q_len, extra, w, b):
    kv_len = q_len + extra
    dense = sliding_window_mask(q_len, w, kv_len)
    got = classify_blocks(sliding_window_predicate(w), b, q_len=q_len, kv_len=kv_len)
    assert torch.equal(got, brute_classes(dense, b, b))


@given(kind=kinds, n=st.integers(1, 50), w=st.integers(1, 10), bq=st.integers(1, 12), bk=st.integers(1, 12),
       padded=st.booleans())
def test_block_stats_counts(kind, n, w, bq, bk, padded):
    pred = mask_for(kind, n, w)
    dense = pred.dense(n)
    s = block_stats(pred, bq, bk, q_len=n, head_dim=8, padded=padded)
    classes = brute_classes(dense, bq, bk)
    assert (s.n_empty, s.n_partial, s.n_full) == tuple(int((classes == c).sum()) for c in (EMPTY, PARTIAL, FULL))
    assert s.attended_pairs == int(dense.sum())
    assert s.dense_pairs == n * n
    # brute force: the pairs inside non-empty tiles, padded to whole tiles or not
    computed = 0
    for r0 in range(0, n, bq):
        for c0 in range(0, n, bk):
            tile = dense[r0:r0 + bq, c0:c0 + bk]
            if tile.any():
                computed += bq * bk if padded else tile.numel()
    assert s.computed_pairs == computed
    assert s.attended_pairs <= s.computed_pairs
    assert s.flops_exact == 4 * 8 * s.attended_pairs and s.flops_tiled == 4 * 8 * s.computed_pairs
    assert s.flops_dense == 4 * 8 * n * n
    assert 0 < s.tile_efficiency <= 1


@given(kind=kinds, n=st.integers(1, 30), w=st.integers(1, 8))
def test_unit_tiles_do_exactly_the_attended_work(kind, n, w):
    s = block_stats(mask_for(kind, n, w), 1, q_len=n)
    assert s.n_partial == 0
    assert s.computed_pairs == s.attended_pairs


def test_small_causal_example():
    classes = classify_blocks(causal_predicate(), 2, q_len=8)
    assert classes.tolist() == [
        [PARTIAL, EMPTY, EMPTY, EMPTY],
        [FULL, PARTIAL, EMPTY, EMPTY],
        [FULL, FULL, PARTIAL, EMPTY],
        [FULL, FULL, FULL, PARTIAL],
    ]


def test_tile_counts_shapes():
    attended, valid = tile_counts(causal_predicate(), 4, 3, q_len=10)
    assert attended.shape == valid.shape == (3, 4)
    assert valid[-1, -1] == 2 * 1 and valid[0, 0] == 12
    assert int(valid.sum()) == 100


@pytest.mark.slow  # importing FlexAttention pulls in torch._dynamo: several seconds
@pytest.mark.parametrize("block", [16, 32])
def test_matches_flex_attention_block_mask(block):
    """FlexAttention's create_block_mask counts partial and full key blocks per query block."""
    fa = pytest.importorskip("torch.nn.attention.flex_attention")
    n = 128  # a multiple of the block size: flex counts padded rows as masked, we count valid pairs only
    for pred in [causal_predicate(), sliding_window_predicate(20), longformer_predicate(8, [0, 50], n),
                 bigbird_predicate(n, block, random_blocks=1), dilated_window_predicate(6, 3)]:
        bm = fa.create_block_mask(pred.as_mask_mod(), None, None, n, n, device="cpu", BLOCK_SIZE=block,
                                  _compile=False)
        classes = classify_blocks(pred, block, q_len=n)
        assert (classes == PARTIAL).sum(1).tolist() == bm.kv_num_blocks[0, 0].tolist(), pred.name
        assert (classes == FULL).sum(1).tolist() == bm.full_kv_num_blocks[0, 0].tolist(), pred.name


def test_long_window_uses_band_and_stays_cheap():
    # 65,536 positions: a dense mask would be 4 GiB; the band keeps this to a few thin strips
    s = block_stats(sliding_window_predicate(256), 128, q_len=65_536)
    n, w = 65_536, 256
    assert s.attended_pairs == n * w - w * (w - 1) // 2
    # each query block touches its own diagonal tile plus two tiles behind it (w = 2 blocks)
    assert s.n_empty + s.n_partial + s.n_full == 512 * 512
    assert s.n_partial + s.n_full == 512 * 3 - 2 - 1


def test_bad_inputs():
    with pytest.raises(ValueError, match="block_q must be an integer >= 1, got 0"):
        classify_blocks(causal_predicate(), 0, q_len=4)
    with pytest.raises(TypeError, match="block_k must be an integer"):
        classify_blocks(causal_predicate(), 2, 2.5, q_len=4)
    with pytest.raises(ValueError, match="q_len must be given"):
        classify_blocks(causal_predicate(), 2)
    with pytest.raises(TypeError, match="mask must be a 2-D boolean tensor"):
        classify_blocks(torch.ones(4, 4), 2)
    with pytest.raises(TypeError, match="mask must be a boolean torch.Tensor or a MaskPredicate"):
        classify_blocks([[True]], 2)
    with pytest.raises(ValueError, match="pass them only with a MaskPredicate"):
        classify_blocks(torch.ones(4, 4, dtype=torch.bool), 2, q_len=4)
    with pytest.raises(ValueError, match="head_dim must be an integer >= 1, got 0"):
        block_stats(causal_predicate(), 2, q_len=4, head_dim=0)
    with pytest.raises(TypeError, match="padded must be a bool"):
        block_stats(causal_predicate(), 2, q_len=4, padded="yes")


@given(kv_len=st.integers(1, 40), extra=st.integers(1, 20), w=st.integers(1, 20), causal=st.booleans(),
       bq=st.integers(1, 16), bk=st.integers(1, 16))
def test_more_queries_than_keys(kv_len, extra, w, causal, bq, bk):
    """q_len > kv_len puts the first queries before position 0 (a causal row there sees no key): the
    classes still match the dense mask. The tiled kernel's schedule is checked against these classes
    in tests/test_tiled.py."""
    q_len = kv_len + extra
    dense = sliding_window_mask(q_len, w, kv_len, causal=causal)
    got = classify_blocks(sliding_window_predicate(w, causal=causal), bq, bk, q_len=q_len, kv_len=kv_len)
    assert torch.equal(got, brute_classes(dense, bq, bk))
