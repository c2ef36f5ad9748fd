"""Measuring attention growth on this machine, and the power-law fit."""

import pytest

from longctx_lab.attention.measure import fit_power_law, measure_attention


def test_fit_recovers_exact_power_law():
    xs = [2, 4, 8, 16]
    p, c, r2 = fit_power_law(xs, [3 * x**2 for x in xs])
    assert p == pytest.approx(2) and c == pytest.approx(3) and r2 == pytest.approx(1)


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1, 2], [0, 1])
    with pytest.raises(ValueError, match="same length"):
        fit_power_law([1, 2, 3], [1, 2])


def test_measure_rejects_unsorted_sizes_and_unknown_impl():
    with pytest.raises(ValueError, match="strictly increasing"):
        measure_attention([512, 256])
    with pytest.raises(ValueError, match="impl must be one of"):
        measure_attention([256], impl="magic")


@pytest.mark.slow
def test_naive_memory_grows_quadratically_and_sdpa_does_not():
    sizes = [1024, 2048, 4096]
    naive = measure_attention(sizes, impl="naive", repeats=1)
    p, _, _ = fit_power_law(sizes, [m.peak_bytes for m in naive])
    assert 1.8 < p < 2.2, [m.peak_bytes for m in naive]
    # two float32 n x n matrices (scores and weights) dominate
    assert naive[-1].peak_bytes == pytest.approx(2 * 4096**2 * 4, rel=0.15)
    sdpa = measure_attention(sizes, impl="sdpa", repeats=1)
    assert sdpa[-1].peak_bytes < naive[-1].peak_bytes / 10
