"""longctx_lab.rope: float64 properties, layouts, scheme shapes, analysis helpers and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab import rope

head_dims = st.sampled_from([4, 8, 16, 32, 64, 128])
bases = st.floats(2.0, 7.0).map(lambda e: 10**e)
factors = st.floats(1.0, 64.0)


def all_scheme_freqs(head_dim, base, factor, original=2048):
    """Every registered scheme at one setting (longrope with factors growing along the pairs)."""
    n = head_dim // 2
    ramp = [1.0 + (factor - 1.0) * i / max(n - 1, 1) for i in range(n)]
    out = dict(rope.compare_schemes(head_dim, base, factor=factor, original_max_position_embeddings=original))
    out["longrope"] = rope.longrope_rope(head_dim, base, short_factor=[1.0] * n, long_factor=ramp,
                                         original_max_position_embeddings=original, factor=factor,
                                         seq_len=int(original * factor) + 1)
    assert set(out) == set(rope.ROPE_SCHEMES)
    return out


def rand(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- float64 properties -----------------------------------------------------------------------


@given(head_dims.filter(lambda d: d >= 4), bases, factors, st.sampled_from(rope.LAYOUTS),
       st.integers(0, 10**5), st.integers(0, 10**5), st.integers(-10**4, 10**4), st.integers(0, 10**6))
def test_score_depends_only_on_offset(head_dim, base, factor, layout, m, n, shift, seed):
    """<R(m) q, R(n) k> == <R(m+t) q, R(n+t) k> for every scheme and both layouts."""
    q, k = rand((1, 1, 1, head_dim), seed), rand((1, 1, 1, head_dim), seed + 1)
    t = shift if min(m, n) + shift >= 0 else -min(m, n)
    for name, (inv, att) in all_scheme_freqs(head_dim, base, factor).items():
        def score(a, b, inv=inv, att=att):
            qa = rope.apply_rope(q, [a], inv, layout=layout, attention_factor=att)
            kb = rope.apply_rope(k, [b], inv, layout=layout, attention_factor=att)
            return float((qa * kb).sum())

        s0, s1 = score(m, n), score(m + t, n + t)
        assert s1 == pytest.approx(s0, rel=1e-7, abs=1e-7 * head_dim), name


@given(head_dims, bases, st.sampled_from(rope.LAYOUTS), st.integers(0, 10**6))
def test_rotation_preserves_norm_and_shape(head_dim, base, layout, seed):
    x = rand((2, 3, 5, head_dim), seed)
    positions = torch.randint(0, 10**6, (2, 5), generator=torch.Generator().manual_seed(seed))
    inv, _ = rope.default_rope(head_dim, base)
    y = rope.apply_rope(x, positions, inv, layout=layout)
    assert y.shape == x.shape and y.dtype == torch.float64
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1), rtol=1e-12, atol=0)
    # each rotated pair keeps its own norm, too
    pairs = rope.interleaved_to_halves(y) if layout == "interleaved" else y
    xs = rope.interleaved_to_halves(x) if layout == "interleaved" else x
    h = head_dim // 2
    torch.testing.assert_close(pairs[..., :h] ** 2 + pairs[..., h:] ** 2, xs[..., :h] ** 2 + xs[..., h:] ** 2,
                               rtol=1e-10, atol=1e-12)


@given(head_dims, bases, factors, st.integers(0, 10**6))
def test_pi_equals_default_at_scaled_positions(head_dim, base, factor, seed):
    x = rand((1, 2, 7, head_dim), seed)
    positions = torch.randint(0, 200_000, (7,), generator=torch.Generator().manual_seed(seed))
    pi, _ = rope.linear_rope(head_dim, base, factor=factor)
    default, _ = rope.default_rope(head_dim, base)
    torch.testing.assert_close(
        rope.apply_rope(x, positions, pi),
        rope.apply_rope(x, positions.double() / factor, default),
        rtol=1e-10,
        atol=1e-10,
    )


def test_position_zero_is_identity_and_one_step_is_a_rotation():
    x = rand((1, 1, 2, 4), 3)
    inv = torch.tensor([1.0, 0.01], dtype=torch.float64)
    out = rope.apply_rope(x, [0, 1], inv)
    torch.testing.assert_close(out[..., 0, :], x[..., 0, :])
    # halves layout: pair 0 is (x0, x2), turned by 1 rad; pair 1 is (x1, x3), turned by 0.01 rad
    x0, x1, x2, x3 = x[0, 0, 1].tolist()
    c0, s0, c1, s1 = math.cos(1), math.sin(1), math.cos(0.01), math.sin(0.01)
    expected = [x0 * c0 - x2 * s0, x1 * c1 - x3 * s1, x2 * c0 + x0 * s0, x3 * c1 + x1 * s1]
    torch.testing.assert_close(out[0, 0, 1], torch.tensor(expected, dtype=torch.float64))
    inter = rope.apply_rope(x, [0, 1], inv, layout="interleaved")
    x0, x1, x2, x3 = x[0, 0, 1].tolist()
    expected = [x0 * c0 - x1 * s0, x1 * c0 + x0 * s0, x2 * c1 - x3 * s1, x3 * c1 + x2 * s1]
    torch.testing.assert_close(inter[0, 0, 1], torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_input_keeps_dtype_and_is_close(dtype):
    x = rand((1, 2, 16, 32), 0)
    inv, _ = rope.default_rope(32)
    ref = rope.apply_rope(x, torch.arange(16), inv)
    out = rope.apply_rope(x.to(dtype), torch.arange(16), inv)
    assert out.dtype == dtype
    tol = {torch.float16: 2e-3, torch.bfloat16: 2e-2, torch.float32: 1e-6}[dtype]
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol * 4)


# --- layouts and weight conversion ------------------------------------------------------------


@given(head_dims, st.data())
def test_layout_conversions_are_inverse_and_commute_with_rope(head_dim, data):
    rotary_dim = data.draw(st.sampled_from([r for r in range(2, head_dim + 1, 2)]))
    x = rand((2, 2, 5, head_dim), head_dim)
    back = rope.halves_to_interleaved(rope.interleaved_to_halves(x, rotary_dim), rotary_dim)
    torch.testing.assert_close(back, x, rtol=0, atol=0)
    inv, _ = rope.default_rope(rotary_dim)
    pos = torch.arange(5) * 37
    via_halves = rope.halves_to_interleaved(rope.apply_rope(rope.interleaved_to_halves(x, rotary_dim), pos, inv),
                                            rotary_dim)
    torch.testing.assert_close(rope.apply_rope(x, pos, inv, layout="interleaved"), via_halves,
                               rtol=1e-12, atol=1e-12)


def meta_to_hf_permute(w, n_heads):
    """The row permutation of HF's convert_llama_weights_to_hf.py, written out independently."""
    dim1, dim2 = w.shape
    return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)


@given(st.sampled_from([1, 2, 4]), st.sampled_from([4, 8, 16]), st.integers(0, 1000))
def test_convert_qk_weight_matches_llama_conversion_and_preserves_scores(n_heads, head_dim, seed):
    hidden = 12
    wq, wk = rand((n_heads * head_dim, hidden), seed), rand((n_heads * head_dim, hidden), seed + 1)
    wq_hf = rope.convert_qk_weight(wq, n_heads, to="halves")
    torch.testing.assert_close(wq_hf, meta_to_hf_permute(wq, n_heads), rtol=0, atol=0)
    torch.testing.assert_close(rope.convert_qk_weight(wq_hf, n_heads, to="interleaved"), wq, rtol=0, atol=0)
    wk_hf = rope.convert_qk_weight(wk, n_heads, to="halves")

    x = rand((2, 9, hidden), seed + 2)
    inv, _ = rope.default_rope(head_dim)
    pos = torch.arange(9) * 101

    def scores(wq_, wk_, layout):
        q = (x @ wq_.T).view(2, 9, n_heads, head_dim).transpose(1, 2)
        k = (x @ wk_.T).view(2, 9, n_heads, head_dim).transpose(1, 2)
        q, k = rope.apply_rope(q, pos, inv, layout=layout), rope.apply_rope(k, pos, inv, layout=layout)
        return q @ k.transpose(-1, -2)

    torch.testing.assert_close(scores(wq, wk, "interleaved"), scores(wq_hf, wk_hf, "halves"), rtol=1e-10, atol=1e-10)
    bias = rand((n_heads * head_dim,), seed)
    torch.testing.assert_close(rope.convert_qk_weight(bias, n_heads), meta_to_hf_permute(bias[:, None], n_heads)[:, 0])


def test_partial_rotary_passes_the_rest_through():
    x = rand((1, 2, 6, 32), 1)
    inv, _ = rope.default_rope(32, partial_rotary_factor=0.25)
    assert inv.numel() == 4
    for layout in rope.LAYOUTS:
        y = rope.apply_rope(x, torch.arange(6) + 5, inv, layout=layout)
        torch.testing.assert_close(y[..., 8:], x[..., 8:], rtol=0, atol=0)
        assert not torch.allclose(y[..., :8], x[..., :8])


# --- the schemes' shapes ------------------------------------------------------------------------


@given(head_dims.filter(lambda d: d >= 4), bases, factors)
def test_ntk_keeps_pair_zero_and_divides_the_last_by_factor(head_dim, base, factor):
    inv, _ = rope.ntk_rope(head_dim, base, factor=factor)
    ref, _ = rope.default_rope(head_dim, base)
    ratio = rope.interpolation_ratio(inv, ref)
    assert ratio[0] == pytest.approx(1.0)
    assert ratio[-1] == pytest.approx(factor, rel=1e-9)
    assert bool((ratio[1:] >= ratio[:-1] - 1e-12).all())
    assert rope.ntk_base(base, factor, head_dim) == pytest.approx(base * factor ** (head_dim / (head_dim - 2)))


@given(head_dims.filter(lambda d: d >= 4), bases, factors, st.integers(64, 8192), st.integers(1, 100_000))
def test_dynamic_is_default_up_to_trained_length_then_ntk(head_dim, base, factor, max_pos, seq_len):
    inv, _ = rope.dynamic_ntk_rope(head_dim, base, factor=factor, max_position_embeddings=max_pos, seq_len=seq_len)
    if seq_len <= max_pos:
        torch.testing.assert_close(inv, rope.default_rope(head_dim, base)[0], rtol=1e-12, atol=0)
    else:
        effective = factor * seq_len / max_pos - (factor - 1)
        torch.testing.assert_close(inv, rope.ntk_rope(head_dim, base, factor=effective)[0], rtol=1e-12, atol=0)


@given(st.sampled_from([32, 64, 128]), bases, factors, st.sampled_from([1024, 4096, 8192]))
def test_yarn_keeps_fast_pairs_interpolates_slow_pairs(head_dim, base, factor, original):
    inv, att = rope.yarn_rope(head_dim, base, factor=factor, original_max_position_embeddings=original)
    ref, _ = rope.default_rope(head_dim, base)
    low, high = rope.yarn_correction_range(head_dim, base, original)
    ratio = rope.interpolation_ratio(inv, ref)
    turns = rope.turns_in_context(ref, original)
    for i in range(head_dim // 2):
        if i <= low:
            assert ratio[i] == pytest.approx(1.0)
        if i >= high:
            assert ratio[i] == pytest.approx(factor)
    assert bool((ratio[1:] >= ratio[:-1] - 1e-12).all())
    # untruncated boundaries: pair "low" turns beta_fast=32 times in the original context, "high" once
    lo, hi = rope.yarn_correction_range(head_dim, base, original, truncate=False)
    if 0 < lo < head_dim - 1:
        assert original * base ** (-2 * lo / head_dim) / (2 * math.pi) == pytest.approx(32.0)
    if 0 < hi < head_dim - 1:
        assert original * base ** (-2 * hi / head_dim) / (2 * math.pi) == pytest.approx(1.0)
    # pairs turning >= beta_fast times in the original context are kept, < beta_slow times interpolated
    torch.testing.assert_close(ratio[turns >= 32], torch.ones_like(ratio[turns >= 32]))
    torch.testing.assert_close(ratio[turns < 1], torch.full_like(ratio[turns < 1], factor))
    assert att == pytest.approx(0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0)


def test_yarn_ramp_values():
    torch.testing.assert_close(rope.yarn_ramp(2, 6, 9),
                               torch.tensor([0, 0, 0, 0.25, 0.5, 0.75, 1, 1, 1], dtype=torch.float64))
    step = rope.yarn_ramp(3, 3, 6)
    assert step.tolist()[:4] == [0, 0, 0, 0] and step.tolist()[4:] == [1, 1]


@given(st.sampled_from([64, 128]), factors, st.sampled_from([2048, 8192]))
def test_llama3_bands(head_dim, factor, original):
    inv, _ = rope.llama3_rope(head_dim, 500_000.0, factor=factor, original_max_position_embeddings=original)
    ref, _ = rope.default_rope(head_dim, 500_000.0)
    wl = rope.wavelengths(ref)
    ratio = rope.interpolation_ratio(inv, ref)
    torch.testing.assert_close(ratio[wl < original / 4], torch.ones_like(ratio[wl < original / 4]))
    torch.testing.assert_close(ratio[wl > original], torch.full_like(ratio[wl > original], factor))
    assert bool(((ratio >= 1 - 1e-12) & (ratio <= factor * (1 + 1e-12))).all())


def test_longrope_short_and_long_factors():
    inv_s, att = rope.longrope_rope(8, 10_000.0, short_factor=[1, 1, 2, 2], long_factor=[1, 2, 4, 8],
                                    original_max_position_embeddings=4096, max_position_embeddings=32768)
    ref, _ = rope.default_rope(8)
    torch.testing.assert_close(rope.interpolation_ratio(inv_s, ref), torch.tensor([1, 1, 2, 2.0], dtype=torch.float64))
    assert att == pytest.approx(math.sqrt(1 + math.log(8) / math.log(4096)))
    inv_l, _ = rope.longrope_rope(8, 10_000.0, short_factor=[1, 1, 2, 2], long_factor=[1, 2, 4, 8],
                                  original_max_position_embeddings=4096, factor=8.0, seq_len=5000)
    torch.testing.assert_close(rope.interpolation_ratio(inv_l, ref), torch.tensor([1, 2, 4, 8.0], dtype=torch.float64))


def test_registry_and_dispatch():
    assert list(rope.ROPE_SCHEMES) == ["default", "linear", "ntk", "dynamic", "yarn", "llama3", "longrope"]
    for name, fn in rope.ROPE_SCHEMES.items():
        assert fn.__doc__ and "Returns" in fn.__doc__, name
    inv, att = rope.rope_frequencies("linear", 16, 10_000.0, factor=2.0)
    torch.testing.assert_close(inv, rope.default_rope(16)[0] / 2)
    # base=None takes the scheme's default: 500,000 for llama3
    torch.testing.assert_close(rope.rope_frequencies("llama3", 128)[0], rope.llama3_rope(128, 500_000.0)[0])


# --- analysis helpers ---------------------------------------------------------------------------


def test_wavelengths_and_turns():
    inv, _ = rope.default_rope(128, 10_000.0)
    wl = rope.wavelengths(inv)
    assert wl[0] == pytest.approx(2 * math.pi)
    assert wl[-1] == pytest.approx(2 * math.pi * 10_000 ** (126 / 128))
    torch.testing.assert_close(rope.turns_in_context(inv, 4096), 4096 / wl)


@given(head_dims, bases, st.integers(1, 50_000))
def test_expected_score_is_the_all_ones_score(head_dim, base, distance):
    inv, _ = rope.default_rope(head_dim, base)
    ones = torch.ones(1, 1, 1, head_dim, dtype=torch.float64)
    q = rope.apply_rope(ones, [distance], inv)
    k = rope.apply_rope(ones, [0], inv)
    actual = float((q * k).sum()) / head_dim
    assert float(rope.expected_score(inv, [distance])[0]) == pytest.approx(actual, abs=1e-12)


def test_expected_score_matches_random_average():
    inv, _ = rope.default_rope(64)
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(20_000, 1, 1, 64, generator=gen, dtype=torch.float64)
    d = torch.tensor([0, 3, 50, 700])
    scores = [float((rope.apply_rope(q, [int(t)], inv) * rope.apply_rope(q, [0], inv)).sum(-1).mean()) / 64 for t in d]
    np.testing.assert_allclose(scores, rope.expected_score(inv, d).numpy(), atol=0.03)


def test_roformer_bound_against_a_loop():
    inv, _ = rope.default_rope(16, 10_000.0)
    d = [0, 1, 10, 1000]
    ours = rope.roformer_decay_bound(inv, d)
    theta = inv.numpy()
    for j, dist in enumerate(d):
        s, total = 0j, 0.0
        for t in theta:
            s += complex(math.cos(dist * t), math.sin(dist * t))
            total += abs(s)
        assert float(ours[j]) == pytest.approx(total / len(theta), rel=1e-12)
    assert float(ours[0]) == pytest.approx((8 + 1) / 2)


def test_classify_and_unseen_pairs():
    ref, _ = rope.default_rope(128, 10_000.0)
    pi, _ = rope.linear_rope(128, factor=8.0)
    assert set(rope.classify_pairs(pi, ref, 8.0)) == {"interpolate"}
    assert set(rope.classify_pairs(ref, ref, 8.0)) == {"extrapolate"}
    ntk, _ = rope.ntk_rope(128, factor=8.0)
    labels = rope.classify_pairs(ntk, ref, 8.0)
    assert labels[0] == "extrapolate" and labels[-1] == "interpolate" and set(labels[1:-1]) == {"blend"}
    unseen = rope.unseen_angle_pairs(ref, ref, 4096, 32768)
    torch.testing.assert_close(unseen, rope.wavelengths(ref) > 4096)
    assert not rope.unseen_angle_pairs(pi, ref, 4096, 32768).any()
    assert not rope.unseen_angle_pairs(ref, ref, 4096, 4096).any()


def test_relative_score_table_is_toeplitz_for_rope():
    q, k = rand((16,), 0), rand((16,), 1)
    inv, _ = rope.default_rope(16)
    table = rope.relative_score_table(q, k, inv, 12)
    for off in range(-11, 12):
        diag = torch.diagonal(table, offset=off)
        torch.testing.assert_close(diag, diag[:1].expand_as(diag), rtol=1e-10, atol=1e-10)


def test_sinusoidal_and_learned_tables():
    pe = rope.sinusoidal_position_embedding(torch.arange(50), 16)
    assert pe.shape == (50, 16)
    assert pe[3, 0] == pytest.approx(math.sin(3)) and pe[3, 1] == pytest.approx(math.cos(3))
    assert pe[7, 2] == pytest.approx(math.sin(7 * 10_000 ** (-2 / 16)))
    # PE(m) . PE(n) depends on m - n only (sum of cos((m-n) w_i)), but PE + content does not
    assert float(pe[10] @ pe[4]) == pytest.approx(float(pe[30] @ pe[24]))
    table = rope.learned_position_table(8, 4, seed=1)
    assert table.shape == (8, 4)
    torch.testing.assert_close(table, rope.learned_position_table(8, 4, seed=1))


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: rope.default_rope(7), ValueError, "head_dim must be even.*got 7"),
        (lambda: rope.default_rope(8.0), TypeError, "head_dim must be an integer"),
        (lambda: rope.default_rope(12, partial_rotary_factor=0.25), ValueError, r"int\(12 \* 0.25\) = 3"),
        (lambda: rope.default_rope(8, partial_rotary_factor=1.5), ValueError, "partial_rotary_factor must be <= 1"),
        (lambda: rope.default_rope(8, -1.0), ValueError, "base must be > 0"),
        (lambda: rope.linear_rope(8, factor=0.5), ValueError, r"factor must be >= 1.0, got 0.5"),
        (lambda: rope.linear_rope(8), TypeError, "factor"),
        (lambda: rope.ntk_rope(8, factor=float("nan")), ValueError, "factor must be finite"),
        (lambda: rope.ntk_rope(2, factor=2.0), ValueError, "rotary_dim must be an integer >= 4"),
        (lambda: rope.dynamic_ntk_rope(8, factor=2.0, max_position_embeddings=0), ValueError,
         "max_position_embeddings must be an integer >= 1, got 0"),
        (lambda: rope.dynamic_ntk_rope(8, factor=2.0, max_position_embeddings=64, seq_len=0), ValueError,
         "seq_len must be an integer >= 1, got 0"),
        (lambda: rope.yarn_rope(8, factor=4.0, original_max_position_embeddings=None), ValueError,
         "original_max_position_embeddings is required for YaRN"),
        (lambda: rope.yarn_rope(8, factor=4.0), TypeError, "original_max_position_embeddings"),
        (lambda: rope.yarn_rope(8, factor=4.0, original_max_position_embeddings=512, beta_fast=1, beta_slow=2),
         ValueError, "beta_fast must be > beta_slow"),
        (lambda: rope.yarn_rope(8, factor=4.0, original_max_position_embeddings=512, attention_factor=0.0),
         ValueError, "attention_factor must be > 0"),
        (lambda: rope.llama3_rope(128, low_freq_factor=4.0, high_freq_factor=1.0), ValueError,
         "high_freq_factor must be > low_freq_factor"),
        (lambda: rope.llama3_rope(128, factor=0.9), ValueError, "factor must be >= 1.0, got 0.9"),
        (lambda: rope.longrope_rope(8, short_factor=[1, 1], long_factor=[1, 1, 1, 1],
                                    original_max_position_embeddings=64, factor=2.0),
         ValueError, "short_factor must have rotary_dim // 2 = 4 entries, got 2"),
        (lambda: rope.longrope_rope(8, short_factor=[1, 1, 1, 0], long_factor=[1, 1, 1, 1],
                                    original_max_position_embeddings=64, factor=2.0),
         ValueError, "short_factor entries must be finite and > 0"),
        (lambda: rope.longrope_rope(8, short_factor=[1] * 4, long_factor=[1] * 4, original_max_position_embeddings=64),
         ValueError, "factor or max_position_embeddings"),
        (lambda: rope.rope_frequencies("ntk-by-parts", 8), ValueError, "scheme must be one of"),
        (lambda: rope.rope_frequencies("linear", 8, factor=2.0, beta_fast=3), TypeError, "beta_fast"),
        (lambda: rope.yarn_ramp(5, 2, 8), ValueError, "high must be >= low"),
        (lambda: rope.from_hf_rope_parameters({"rope_type": "dynamic", "factor": 2.0}, 8), ValueError,
         "max_position_embeddings is required"),
        (lambda: rope.from_hf_rope_parameters({"rope_type": "su"}, 8), ValueError, "rope_type"),
    ],
)
def test_bad_scheme_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"x": torch.zeros(2, 4, 8)}, ValueError, "x must have 4 dimensions"),
        ({"x": torch.zeros(1, 1, 3, 8, dtype=torch.int64)}, TypeError, "x must be a floating-point tensor"),
        ({"positions": torch.arange(4)}, ValueError, r"positions must have shape \(seq,\) = \(3,\)"),
        ({"inv_freq": torch.ones(5)}, ValueError, "rotary_dim 10 exceeds head_dim 8"),
        ({"inv_freq": torch.ones(2, 2)}, ValueError, "inv_freq must be a non-empty 1-D tensor"),
        ({"inv_freq": torch.tensor([1.0, float("inf")])}, ValueError, "inv_freq must be finite"),
        ({"layout": "gptj"}, ValueError, "layout must be one of"),
        ({"attention_factor": -1.0}, ValueError, "attention_factor must be > 0"),
    ],
)
def test_bad_apply_rope_arguments(kwargs, exc, match):
    args = {"x": torch.zeros(1, 1, 3, 8), "positions": torch.arange(3), "inv_freq": torch.ones(4)}
    args.update(kwargs)
    x, positions, inv_freq = args.pop("x"), args.pop("positions"), args.pop("inv_freq")
    with pytest.raises(exc, match=match):
        rope.apply_rope(x, positions, inv_freq, **args)


def test_bad_conversion_arguments():
    with pytest.raises(ValueError, match=r"weight rows \(12\) must be a multiple of n_heads \(5\)"):
        rope.convert_qk_weight(torch.zeros(12, 3), 5)
    with pytest.raises(ValueError, match="to must be one of"):
        rope.convert_qk_weight(torch.zeros(12, 3), 3, to="meta")
    with pytest.raises(ValueError, match="rotary_dim must be even"):
        rope.interleaved_to_halves(torch.zeros(2, 8), rotary_dim=3)
    with pytest.raises(ValueError, match="positions must be finite"):
        rope.rope_angles(torch.tensor([0.0, float("nan")]), torch.ones(2))
    with pytest.raises(ValueError, match="factor must be >= 1.0"):
        rope.classify_pairs(torch.ones(2), torch.ones(2), 0.5)
    with pytest.raises(ValueError, match="one shape"):
        rope.interpolation_ratio(torch.ones(2), torch.ones(3))
    with pytest.raises(ValueError, match="d_model must be even"):
        rope.sinusoidal_position_embedding(torch.arange(3), 5)
    with pytest.raises(ValueError, match=r"x must have an even last dimension.*\(2, 5\)"):
        rope.rotate_half(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="x must have an even last dimension"):
        rope.rotate_pairs(torch.zeros(3))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        rope.rotate_half([1.0, 2.0])


def test_rope_package_stands_alone():
    """longctx_lab.rope imports only torch, numpy and longctx_lab.core.validate (checked in a fresh process)."""
    import subprocess
    import sys

    code = (
        "import sys, longctx_lab.rope\n"
        "bad = sorted(m for m in sys.modules if m.startswith('longctx_lab')"
        " and m not in ('longctx_lab.core', 'longctx_lab.core.validate')"
        " and not m.startswith('longctx_lab.rope') and m != 'longctx_lab')\n"
        "bad += [m for m in ('transformers', 'matplotlib', 'ipywidgets') if m in sys.modules]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
