"""Online softmax: streaming max/sum, rescaling, and the merge of partial states."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab.attention.online_softmax import (
    SoftmaxState,
    empty_state,
    finalize,
    merge_states,
    online_logsumexp,
    online_softmax,
    update_state,
)


def _rows(seed: int, rows: int, n: int, spread: float, neg_inf_frac: float = 0.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, n, generator=gen, dtype=torch.float64) * spread
    if neg_inf_frac:
        drop = torch.rand(rows, n, generator=gen) < neg_inf_frac
        x = x.masked_fill(drop, float("-inf"))
    return x


@given(
    n=st.integers(1, 70),
    block=st.integers(1, 40),
    spread=st.sampled_from([0.1, 1.0, 30.0, 300.0]),
    neg_inf_frac=st.sampled_from([0.0, 0.3]),
    seed=st.integers(0, 2**16),
)
def test_online_softmax_matches_torch(n, block, spread, neg_inf_frac, seed):
    x = _rows(seed, 5, n, spread, neg_inf_frac)
    # keep every row with at least one finite entry, so torch.softmax is defined
    x[:, 0] = x[:, 0].nan_to_num(neginf=0.0)
    torch.testing.assert_close(online_softmax(x, block), torch.softmax(x, dim=-1), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(online_logsumexp(x, block), torch.logsumexp(x, dim=-1), rtol=1e-12, atol=1e-12)


def test_online_softmax_float32_and_dtype():
    x = _rows(1, 4, 33, 5.0).float()
    y = online_softmax(x, 8)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, torch.softmax(x, -1))
    assert online_logsumexp(x.half(), 8).dtype == torch.float32  # accumulates in float32


def test_large_scores_do_not_overflow():
    # exp(1000) overflows float64; the running max keeps every exponent <= 0.
    x = torch.tensor([[1000.0, 999.0, 998.0, -1000.0]], dtype=torch.float64)
    assert torch.isinf(torch.exp(x).sum())
    lse = online_logsumexp(x, 1)
    expected = 1000.0 + math.log(1 + math.exp(-1) + math.exp(-2))
    assert abs(float(lse) - expected) < 1e-12
    assert torch.isfinite(online_softmax(x, 1)).all()


def test_fully_masked_row_gives_zeros_and_neg_inf():
    x = torch.full((2, 6), float("-inf"))
    x[1, 3] = 0.5
    lse = online_logsumexp(x, 2)
    assert torch.isneginf(lse[0]) and abs(float(lse[1]) - 0.5) < 1e-6
    p = online_softmax(x, 2)
    assert not torch.isnan(p).any()
    assert torch.equal(p[0], torch.zeros(6))
    assert float(p[1, 3]) == pytest.approx(1.0)


def _state_over(scores, values, start, end):
    s = empty_state(tuple(scores.shape[:-1]), values.shape[-1], dtype=scores.dtype)
    return update_state(s, scores[..., start:end], values[..., start:end, :])


@given(n=st.integers(2, 40), data=st.data(), seed=st.integers(0, 2**16))
def test_merge_of_any_partition_is_exact(n, data, seed):
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(3, n, generator=gen, dtype=torch.float64) * 4
    values = torch.randn(n, 5, generator=gen, dtype=torch.float64)
    cuts = sorted(data.draw(st.lists(st.integers(1, n - 1), max_size=4, unique=True)))
    bounds = [0, *cuts, n]
    parts = [_state_over(scores, values, a, b) for a, b in zip(bounds, bounds[1:])]
    order = data.draw(st.permutations(range(len(parts))))
    merged = parts[order[0]]
    for i in order[1:]:
        merged = merge_states(merged, parts[i])
    out, lse = finalize(merged)
    expected = torch.softmax(scores, -1) @ values
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(lse, torch.logsumexp(scores, -1), rtol=1e-12, atol=1e-12)


def test_merge_is_associative_and_empty_is_identity():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 30, generator=gen, dtype=torch.float64)
    values = torch.randn(30, 3, generator=gen, dtype=torch.float64)
    a, b, c = (_state_over(scores, values, i, i + 10) for i in (0, 10, 20))
    left = finalize(merge_states(merge_states(a, b), c))
    right = finalize(merge_states(a, merge_states(c, b)))
    torch.testing.assert_close(left[0], right[0], rtol=1e-13, atol=1e-14)
    empty = empty_state((4,), 3, dtype=torch.float64)
    for x, y in zip(merge_states(empty, a), a):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    out, lse = finalize(merge_states(empty, empty))
    assert torch.equal(out, torch.zeros(4, 3, dtype=torch.float64)) and torch.isneginf(lse).all()


def test_update_state_rescales_running_sum():
    # Second block raises the max from 1 to 3: old sum exp(0) = 1 must become exp(1 - 3).
    state = update_state(empty_state((1,)), torch.tensor([[1.0]]))
    assert float(state.m) == 1.0 and float(state.l) == 1.0
    state = update_state(state, torch.tensor([[3.0]]))
    assert float(state.m) == 3.0
    assert float(state.l) == pytest.approx(1.0 + math.exp(-2.0))


def test_normaliser_only_state():
    x = _rows(3, 2, 12, 2.0)
    s = empty_state((2,), dtype=torch.float64)
    s = update_state(update_state(s, x[:, :5]), x[:, 5:])
    out, lse = finalize(s)
    assert out is None
    torch.testing.assert_close(lse, torch.logsumexp(x, -1))


def test_bad_inputs():
    with pytest.raises(ValueError, match="block_size must be an integer >= 1, got 0"):
        online_softmax(torch.randn(2, 3), 0)
    with pytest.raises(TypeError, match="block_size must be an integer"):
        online_softmax(torch.randn(2, 3), 2.0)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        online_softmax([1.0, 2.0])
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        online_logsumexp(torch.arange(4))
    with pytest.raises(ValueError, match="non-empty last dimension"):
        online_softmax(torch.empty(3, 0))
    a = empty_state((2,), 3)
    with pytest.raises(ValueError, match="same rows"):
        merge_states(a, empty_state((3,), 3))
    with pytest.raises(ValueError, match="both track an output"):
        merge_states(a, empty_state((2,)))
    with pytest.raises(TypeError, match="SoftmaxState"):
        merge_states(a, (a.m, a.l, a.acc))
    with pytest.raises(ValueError, match="values must be given"):
        update_state(a, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="values were given"):
        update_state(empty_state((2,)), torch.zeros(2, 4), torch.zeros(4, 3))
    assert isinstance(a, SoftmaxState)
