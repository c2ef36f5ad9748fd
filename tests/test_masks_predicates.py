"""Chapter 3 masks: every predicate against a brute-force rule written independently here, the
dense masks of attention/masks.py, SDPA in float64 and FlexAttention's kernel-side mask_mod."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab.attention.mask_predicates import (
    MaskPredicate,
    and_masks,
    axial_predicate,
    bigbird_block_layout,
    bigbird_predicate,
    causal_predicate,
    dilated_window_predicate,
    document_ids,
    document_predicate,
    full_predicate,
    longformer_predicate,
    or_masks,
    prefix_lm_predicate,
    sliding_window_predicate,
)
from longctx_lab.attention.masks import build_mask, causal_mask, sliding_window_mask
from longctx_lab.attention.reference import naive_attention


def brute(rule, q_len, kv_len=None):
    """Dense mask from a plain Python rule(p, j) over absolute positions, bottom-right aligned."""
    kv_len = q_len if kv_len is None else kv_len
    off = kv_len - q_len
    return torch.tensor([[bool(rule(r + off, j)) for j in range(kv_len)] for r in range(q_len)], dtype=torch.bool)


sizes = st.integers(1, 40)
windows = st.integers(1, 12)


@given(n=sizes, w=windows, causal=st.booleans())
def test_sliding_window_predicate_matches_rule_and_masks_module(n, w, causal):
    pred = sliding_window_predicate(w, causal=causal)
    if causal:
        expected = brute(lambda p, j: p - w < j <= p, n)
    else:
        expected = brute(lambda p, j: abs(p - j) < w, n)
    assert torch.equal(pred.dense(n), expected)
    assert torch.equal(pred.dense(n), sliding_window_mask(n, w, causal=causal))
    assert torch.equal(pred.dense(n), build_mask(n, n, causal=causal, window=w))


@given(q_len=sizes, extra=st.integers(0, 20), w=windows)
def test_bottom_right_alignment_matches_masks_module(q_len, extra, w):
    kv_len = q_len + extra
    assert torch.equal(causal_predicate().dense(q_len, kv_len), causal_mask(q_len, kv_len))
    assert torch.equal(sliding_window_predicate(w).dense(q_len, kv_len), sliding_window_mask(q_len, w, kv_len))
    # last query row is the last position: it sees exactly min(w, kv_len) keys
    assert int(sliding_window_predicate(w).dense(q_len, kv_len)[-1].sum()) == min(w, kv_len)


@given(n=sizes, w=windows, d=st.integers(1, 5), causal=st.booleans())
def test_dilated_window(n, w, d, causal):
    offsets = {m * d for m in range(w)}
    if causal:
        expected = brute(lambda p, j: (p - j) in offsets, n)
    else:
        expected = brute(lambda p, j: abs(p - j) in offsets, n)
    assert torch.equal(dilated_window_predicate(w, d, causal=causal).dense(n), expected)
    if d == 1:
        assert torch.equal(dilated_window_predicate(w, 1, causal=causal).dense(n),
                           sliding_window_predicate(w, causal=causal).dense(n))


@given(n=sizes, prefix=st.integers(0, 45))
def test_prefix_lm(n, prefix):
    expected = brute(lambda p, j: (p < prefix and j < prefix) or j <= p, n)
    assert torch.equal(prefix_lm_predicate(prefix).dense(n), expected)
    # rows inside the prefix see the whole prefix, bidirectionally
    P = min(prefix, n)
    assert bool(prefix_lm_predicate(prefix).dense(n)[:P, :P].all())


@given(data=st.data(), n=st.integers(1, 40), w=windows, causal=st.booleans())
def test_longformer(data, n, w, causal):
    glob = data.draw(st.lists(st.integers(0, n - 1), max_size=4, unique=True))

    def rule(p, j):
        local = (p - w < j <= p) if causal else abs(p - j) < w
        g = (p in glob or j in glob) and (j <= p or not causal)
        return local or g

    assert torch.equal(longformer_predicate(w, glob, n, causal=causal).dense(n), brute(rule, n))


@given(data=st.data())
def test_document_mask(data):
    lengths = data.draw(st.lists(st.integers(1, 8), min_size=1, max_size=6))
    causal = data.draw(st.booleans())
    starts = [sum(lengths[:i]) for i in range(len(lengths))]

    def doc(p):
        return max(i for i, s in enumerate(starts) if s <= p)

    n = sum(lengths)
    expected = brute(lambda p, j: doc(p) == doc(j) and (j <= p or not causal), n)
    assert torch.equal(document_predicate(lengths, causal=causal).dense(n), expected)
    assert document_ids(lengths).tolist() == [doc(p) for p in range(n)]
    # packed causal = causal & same-document, built with the combinator
    combo = causal_predicate() & document_predicate(lengths, causal=False)
    assert torch.equal(combo.dense(n), document_predicate(lengths, causal=True).dense(n))


@given(n=st.integers(1, 60), bs=st.integers(1, 8), wb=st.sampled_from([1, 3, 5]), g=st.integers(0, 2),
       r=st.integers(0, 3), seed=st.integers(0, 3))
def test_bigbird(n, bs, wb, g, r, seed):
    pred = bigbird_predicate(n, bs, window_blocks=wb, global_blocks=g, random_blocks=r, seed=seed)
    layout = bigbird_block_layout(n, bs, window_blocks=wb, global_blocks=g, random_blocks=r, seed=seed)
    nb = -(-n // bs)
    assert layout.shape == (nb, nb)
    assert torch.equal(pred.dense(n), brute(lambda p, j: bool(layout[p // bs, j // bs]), n))
    # window and global parts are always present; each non-global row has its random blocks
    for a in range(nb):
        for b in range(nb):
            if abs(a - b) <= wb // 2 or a < g or b < g:
                assert layout[a, b]
        if a >= g:
            base = sum(1 for b in range(nb) if abs(a - b) <= wb // 2 or b < g)
            assert int(layout[a].sum()) == base + min(r, nb - base)
    # seeded: the same seed gives the same pattern
    again = bigbird_block_layout(n, bs, window_blocks=wb, global_blocks=g, random_blocks=r, seed=seed)
    assert torch.equal(layout, again)


def test_bigbird_seed_changes_random_blocks():
    a = bigbird_block_layout(256, 8, seed=0)
    b = bigbird_block_layout(256, 8, seed=1)
    assert not torch.equal(a, b)
    assert int(a.sum()) == int(b.sum())


@given(rows=st.integers(1, 6), cols=st.integers(1, 6))
def test_axial(rows, cols):
    n = rows * cols
    row = axial_predicate(cols, "row").dense(n)
    col = axial_predicate(cols, "col").dense(n)
    assert torch.equal(row, brute(lambda p, j: p // cols == j // cols, n))
    assert torch.equal(col, brute(lambda p, j: p % cols == j % cols, n))
    # a row pass then a column pass connects every pair
    two_hops = (col.double() @ row.double()) > 0
    assert bool(two_hops.all())


@given(n=sizes, w=windows, prefix=st.integers(0, 10))
def test_combinators(n, w, prefix):
    a, b = sliding_window_predicate(w), prefix_lm_predicate(prefix)
    assert torch.equal((a & b).dense(n), a.dense(n) & b.dense(n))
    assert torch.equal((a | b).dense(n), a.dense(n) | b.dense(n))
    assert torch.equal(and_masks(a, b, causal_predicate()).dense(n), a.dense(n) & b.dense(n) & causal_mask(n))
    assert torch.equal(or_masks(a).dense(n), a.dense(n))
    assert bool(full_predicate().dense(n).all())


def _all_masks(n):
    return [
        causal_predicate(),
        sliding_window_predicate(3),
        sliding_window_predicate(4, causal=False),
        dilated_window_predicate(3, 2),
        prefix_lm_predicate(min(5, n)),
        longformer_predicate(2, [0], n),
        bigbird_predicate(n, 4, random_blocks=1),
        document_predicate([n // 2, n - n // 2]) if n >= 2 else document_predicate([n]),
        causal_predicate() & sliding_window_predicate(5, causal=False),
        axial_predicate(4, "row"),
    ]


@given(n=st.integers(1, 24), heads=st.sampled_from([1, 2]), seed=st.integers(0, 1000))
def test_attention_with_every_mask_matches_sdpa_float64(n, heads, seed):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, heads, n, 8, generator=gen, dtype=torch.float64) for _ in range(3))
    for pred in _all_masks(n):
        dense = pred.dense(n)
        ours = naive_attention(q, k, v, mask=dense)
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=dense)
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12, msg=pred.name)


@given(n=st.integers(1, 30), w=windows, d=st.integers(1, 4))
def test_band_is_a_true_promise(n, w, d):
    """Every kept pair lies within the band a kernel would use as loop bounds."""
    preds = [causal_predicate(), sliding_window_predicate(w), sliding_window_predicate(w, causal=False),
             dilated_window_predicate(w, d), dilated_window_predicate(w, d, causal=False),
             axial_predicate(d, "row"), sliding_window_predicate(w) & causal_predicate(),
             sliding_window_predicate(w) | dilated_window_predicate(w, d)]
    diff = torch.arange(n)[:, None] - torch.arange(n)[None, :]
    for pred in preds:
        lo, hi = pred.band
        dense = pred.dense(n)
        inside = torch.ones_like(dense)
        if lo is not None:
            inside &= diff >= lo
        if hi is not None:
            inside &= diff <= hi
        assert not bool((dense & ~inside).any()), pred.name


def test_masks_module_offers_both_forms():
    """longctx_lab.attention.masks (the module the course names) serves dense builders and predicates alike."""
    from longctx_lab.attention import mask_predicates, masks

    for name in mask_predicates.__all__:
        assert getattr(masks, name) is getattr(mask_predicates, name), name
    assert torch.equal(masks.sliding_window_predicate(3).dense(6), masks.sliding_window_mask(6, 3))


def test_predicate_accepts_ints_and_broadcast_tensors():
    pred = sliding_window_predicate(3)
    assert bool(pred(5, 3)) and not bool(pred(5, 2)) and not bool(pred(2, 5))
    out = pred(torch.arange(4)[:, None], torch.arange(6)[None, :])
    assert out.shape == (4, 6) and out.dtype == torch.bool


@pytest.mark.slow  # importing FlexAttention pulls in torch._dynamo: several seconds
def test_flex_attention_runs_our_predicates_as_mask_mods():
    """The same rule drives a real kernel-side block mask: FlexAttention (eager on CPU)."""
    fa = pytest.importorskip("torch.nn.attention.flex_attention")
    n = 64
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, n, 8, generator=gen, dtype=torch.float64) for _ in range(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for pred in [sliding_window_predicate(5), longformer_predicate(3, [0, 17], n) & causal_predicate(),
                     bigbird_predicate(n, 8, random_blocks=1), document_predicate([20, 30, 14])]:
            bm = fa.create_block_mask(pred.as_mask_mod(), None, None, n, n, device="cpu", BLOCK_SIZE=16,
                                      _compile=False)
            out = fa.flex_attention(q, k, v, block_mask=bm)
            torch.testing.assert_close(out, naive_attention(q, k, v, mask=pred.dense(n)), rtol=1e-12, atol=1e-12)


# ---- bad inputs ---------------------------------------------------------------------------------

def test_window_below_one_is_rejected_with_the_argument_named():
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        sliding_window_predicate(0)
    with pytest.raises(ValueError, match="dilation must be an integer >= 1, got 0"):
        dilated_window_predicate(2, 0)
    with pytest.raises(ValueError, match="window must be an integer >= 1, got -1"):
        longformer_predicate(-1, [0], 4)


def test_wrong_types_are_rejected():
    with pytest.raises(TypeError, match="window must be an integer"):
        sliding_window_predicate(2.0)
    with pytest.raises(TypeError, match="window must be an integer"):
        sliding_window_predicate(True)
    with pytest.raises(TypeError, match="causal must be a bool"):
        sliding_window_predicate(2, causal=1)
    with pytest.raises(TypeError, match="q_idx must hold integer positions"):
        causal_predicate()(torch.tensor([1.0]), 0)
    with pytest.raises(TypeError, match="kv_idx must be an int"):
        causal_predicate()(1, "0")
    with pytest.raises(TypeError, match="masks must be MaskPredicate"):
        and_masks(causal_predicate(), torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="global_tokens must be a sequence"):
        longformer_predicate(2, 3, 8)
    with pytest.raises(TypeError, match="doc_lengths must be a sequence"):
        document_predicate(5)
    with pytest.raises(TypeError, match="fn must be callable"):
        MaskPredicate(3, "x")


def test_bad_values_are_rejected():
    with pytest.raises(ValueError, match="global_tokens must be positions < seq_len=8, got 8"):
        longformer_predicate(2, [8], 8)
    with pytest.raises(ValueError, match="kv_len must be <= 8"):
        longformer_predicate(2, [0], 8).dense(9)
    with pytest.raises(ValueError, match="q_len must be <= kv_len for mask 'documents2-causal'"):
        document_predicate([2, 3]).dense(6, 5)
    with pytest.raises(ValueError, match="q_len must be an integer >= 1, got 0"):
        causal_predicate().dense(0)
    with pytest.raises(ValueError, match="window_blocks must be an odd integer"):
        bigbird_predicate(16, 4, window_blocks=2)
    with pytest.raises(ValueError, match="doc_lengths must hold at least one"):
        document_predicate([])
    with pytest.raises(ValueError, match=r"doc_lengths\[i\] must be an integer >= 1, got 0"):
        document_predicate([3, 0])
    with pytest.raises(ValueError, match="axis must be 'row' or 'col'"):
        axial_predicate(4, "diag")
    with pytest.raises(ValueError, match="q_idx must hold positions >= 0"):
        causal_predicate()(-1, 0)
    with pytest.raises(ValueError, match="kv_idx must hold positions < 8"):
        document_predicate([4, 4])(0, 8)
    with pytest.raises(ValueError, match="at least one MaskPredicate"):
        or_masks()


@given(n=st.integers(1, 30), w=st.integers(1, 10), lengths=st.lists(st.integers(1, 6), min_size=1, max_size=5))
def test_matches_hugging_face_mask_functions(n, w, lengths):
    """transformers' masking_utils: same causal window; its bidirectional window counts |q - k| <= w."""
    mu = pytest.importorskip("transformers.masking_utils")
    q = torch.arange(n)[:, None]
    k = torch.arange(n)[None, :]
    hf_causal = mu.sliding_window_causal_mask_function(w)(0, 0, q, k)
    assert torch.equal(hf_causal.expand(n, n), sliding_window_predicate(w).dense(n))
    hf_bidir = mu.sliding_window_bidirectional_mask_function(w - 1)(0, 0, q, k) if w > 1 else None
    if hf_bidir is not None:
        assert torch.equal(hf_bidir.expand(n, n), sliding_window_predicate(w, causal=False).dense(n))
    ids = document_ids(lengths)[None, :]
    m = len(ids[0])
    qq, kk = torch.arange(m)[:, None], torch.arange(m)[None, :]
    hf_packed = mu.packed_sequence_mask_function(ids)(0, 0, qq, kk)
    assert torch.equal(hf_packed, document_predicate(lengths, causal=False).dense(m))


@given(q_len=st.integers(1, 30), kv_len=st.integers(1, 30), w=st.integers(1, 12), causal=st.booleans())
def test_dense_masks_are_the_predicates_evaluated(q_len, kv_len, w, causal):
    """One rule: build_mask and the band predicates agree everywhere, queries before position 0 included
    (q_len > kv_len), and the rule is the convention written out here: causal ``p - w < j <= p``,
    bidirectional ``|p - j| < w``."""
    p = torch.arange(q_len)[:, None] + (kv_len - q_len)
    j = torch.arange(kv_len)[None, :]
    window = (p - w < j) & (j <= p) if causal else (p - j).abs() < w
    assert torch.equal(build_mask(q_len, kv_len, causal=causal, window=w), window)
    assert torch.equal(sliding_window_predicate(w, causal=causal).dense(q_len, kv_len), window)
    assert torch.equal(build_mask(q_len, kv_len, causal=True), j <= p)
    assert torch.equal(causal_mask(q_len, kv_len), j <= p)
    assert build_mask(q_len, kv_len) is None
    assert bool(full_predicate().dense(q_len, kv_len).all())


def test_band_predicate_covers_only_what_it_keeps():
    pred = sliding_window_predicate(4)  # keeps 0 <= q - k <= 3
    assert pred.band_exact and pred.covers(10, 12, 8, 11)  # q - k in [0, 3]
    assert not pred.covers(10, 12, 9, 12)  # q - k = -1 at (10, 11)
    assert not pred.covers(10, 14, 9, 10)  # q - k = 4 at (13, 9)
    assert not (pred & causal_predicate()).band_exact  # a combination evaluates its mask
    with pytest.raises(TypeError, match="band_exact must be a bool"):
        MaskPredicate(lambda q, k: k <= q, "x", band=(0, None), band_exact=1)
