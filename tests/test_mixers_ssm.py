"""The selective scan (Mamba-style): sequential == chunked == the float64 closed form; the block's errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab.mixers.ssm import (
    SelectiveSSMMixer,
    SSMState,
    selective_scan_chunked,
    selective_scan_reference,
    selective_scan_sequential,
)


def _inputs(seed, batch=2, seq=9, channels=3, d_state=4, dtype=torch.float64, delta_scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, seq, channels, generator=gen, dtype=dtype)
    delta = F.softplus(torch.randn(batch, seq, channels, generator=gen, dtype=dtype)) * delta_scale
    a = -torch.rand(channels, d_state, generator=gen, dtype=dtype) * 3 - 0.01
    b = torch.randn(batch, seq, d_state, generator=gen, dtype=dtype)
    c = torch.randn(batch, seq, d_state, generator=gen, dtype=dtype)
    return x, delta, a, b, c


@given(seq=st.integers(1, 24), chunk=st.integers(1, 30), channels=st.integers(1, 4), d_state=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_sequential_chunked_and_reference_agree(seq, chunk, channels, d_state, seed):
    args = _inputs(seed, seq=seq, channels=channels, d_state=d_state)
    y_ref, h_ref = selective_scan_reference(*args)
    y_seq, h_seq = selective_scan_sequential(*args)
    y_chk, h_chk = selective_scan_chunked(*args, chunk_size=chunk)
    for y, h in ((y_seq, h_seq), (y_chk, h_chk)):
        torch.testing.assert_close(y, y_ref, rtol=1e-11, atol=1e-12)
        torch.testing.assert_close(h, h_ref, rtol=1e-11, atol=1e-12)


@given(seq=st.integers(2, 20), split=st.integers(1, 19), chunk=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_a_carried_state_continues_the_scan(seq, split, chunk, seed):
    split = min(split, seq - 1)
    x, delta, a, b, c = _inputs(seed, seq=seq)
    whole, h_whole = selective_scan_chunked(x, delta, a, b, c, chunk_size=chunk)
    first, h = selective_scan_sequential(x[:, :split], delta[:, :split], a, b[:, :split], c[:, :split])
    second, h_end = selective_scan_chunked(x[:, split:], delta[:, split:], a, b[:, split:], c[:, split:],
                                           chunk_size=chunk, state=h)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_end, h_whole, rtol=1e-12, atol=1e-12)
    y_ref, _ = selective_scan_reference(x[:, split:], delta[:, split:], a, b[:, split:], c[:, split:], state=h)
    torch.testing.assert_close(second, y_ref, rtol=1e-11, atol=1e-12)


def test_one_channel_by_hand():
    # h_1 = dt1*b1*x1; h_2 = exp(dt2*a) h_1 + dt2*b2*x2; y_t = c_t h_t  (one channel, one state)
    x = torch.tensor([[[2.0], [-1.0]]], dtype=torch.float64)
    delta = torch.tensor([[[0.5], [0.25]]], dtype=torch.float64)
    a = torch.tensor([[-2.0]], dtype=torch.float64)
    b = torch.tensor([[[3.0], [1.0]]], dtype=torch.float64)
    c = torch.tensor([[[1.0], [4.0]]], dtype=torch.float64)
    h1 = 0.5 * 3.0 * 2.0
    h2 = math.exp(0.25 * -2.0) * h1 + 0.25 * 1.0 * -1.0
    for scan in (selective_scan_sequential, selective_scan_chunked, selective_scan_reference):
        y, h = scan(x, delta, a, b, c)
        assert y.flatten().tolist() == pytest.approx([h1, 4.0 * h2], rel=1e-14)
        assert float(h) == pytest.approx(h2, rel=1e-14)


@pytest.mark.parametrize(("dtype", "delta_scale", "tol"), [(torch.float32, 20.0, 1e-4), (torch.float64, 20.0, 1e-11),
                                                      (torch.float64, 400.0, 1e-11)])
def test_long_chunks_with_strong_decay_stay_finite(dtype, delta_scale, tol):
    # a chunk's decay reaches exp(-1000) and beyond (exp(+1000) overflows): such chunks are halved, down to
    # single steps (delta_scale 400: one step alone can decay by exp(-1000))
    args = _inputs(7, seq=64, delta_scale=delta_scale)
    y_ref, _ = selective_scan_reference(*args)
    y, h = selective_scan_chunked(*(t.to(dtype) for t in args), chunk_size=64)
    assert torch.isfinite(y).all() and torch.isfinite(h).all()
    torch.testing.assert_close(y.double(), y_ref, rtol=tol, atol=tol)


def test_causal_a_future_input_does_not_change_earlier_outputs():
    x, delta, a, b, c = _inputs(8, seq=10)
    y0, _ = selective_scan_chunked(x, delta, a, b, c, chunk_size=4)
    x2, b2 = x.clone(), b.clone()
    x2[:, 6] += 1.0
    b2[:, 6] -= 1.0
    y1, _ = selective_scan_chunked(x2, delta, a, b2, c, chunk_size=4)
    torch.testing.assert_close(y1[:, :6], y0[:, :6], rtol=0, atol=0)
    assert not torch.allclose(y1[:, 6:], y0[:, 6:])


def test_bad_scan_inputs_name_the_argument():
    x, delta, a, b, c = _inputs(9)
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1, got 0"):
        selective_scan_chunked(x, delta, a, b, c, chunk_size=0)
    with pytest.raises(ValueError, match="delta must have x's shape"):
        selective_scan_sequential(x, delta[:, :3], a, b, c)
    with pytest.raises(ValueError, match=r"a must have shape \(channels, d_state\)"):
        selective_scan_sequential(x, delta, a[:2], b, c)
    with pytest.raises(ValueError, match=r"c must have shape \(batch, seq, d_state\)"):
        selective_scan_sequential(x, delta, a, b, c[..., :2])
    with pytest.raises(ValueError, match="x must have 3 dimensions"):
        selective_scan_sequential(x[0], delta, a, b, c)
    with pytest.raises(TypeError, match="must have x's dtype"):
        selective_scan_sequential(x, delta.float(), a, b, c)
    with pytest.raises(ValueError, match="delta must be >= 0 everywhere"):
        selective_scan_sequential(x, -delta, a, b, c)
    with pytest.raises(ValueError, match="a must be <= 0 everywhere"):
        selective_scan_chunked(x, delta, -a, b, c)
    with pytest.raises(ValueError, match=r"state must have shape \(2, 3, 4\)"):
        selective_scan_sequential(x, delta, a, b, c, state=torch.zeros(2, 3, 5, dtype=torch.float64))


def test_the_block_rejects_bad_arguments_and_states():
    with pytest.raises(ValueError, match="d_state must be an integer >= 1, got 0"):
        SelectiveSSMMixer(8, 1, d_state=0)
    with pytest.raises(ValueError, match="dt_max must be >= "):
        SelectiveSSMMixer(8, 1, dt_min=0.1, dt_max=0.01)
    m = SelectiveSSMMixer(8, 1, d_state=3, d_conv=3).double()
    state = m.init_state(2)
    assert state.h.shape == (2, 16, 3) and state.conv.shape == (2, 16, 2)
    with pytest.raises(TypeError, match="state must be an SSMState"):
        m.step(torch.zeros(2, 8, dtype=torch.float64), (state.h, state.conv))
    with pytest.raises(ValueError, match=r"state must have shape \(2, 16, 3\)"):
        m.step(torch.zeros(2, 8, dtype=torch.float64), SSMState(state.h[:, :, :2], state.conv))
    with pytest.raises(ValueError, match=r"state.conv must have shape \(2, 16, 2\)"):
        m.step(torch.zeros(2, 8, dtype=torch.float64), SSMState(state.h, state.conv[:, :, :1]))
    with pytest.raises(ValueError, match=r"state.conv must have shape \(3, 16, 2\)"):
        m.prefill(torch.zeros(3, 4, 8, dtype=torch.float64), state)


def test_the_step_size_starts_in_its_range():
    m = SelectiveSSMMixer(16, 1, dt_min=1e-3, dt_max=1e-1)
    dt = F.softplus(m.dt_proj.bias.detach())
    assert float(dt.min()) == pytest.approx(1e-3, rel=1e-4) and float(dt.max()) == pytest.approx(1e-1, rel=1e-4)


def test_the_block_gives_the_same_output_with_either_scan():
    torch.manual_seed(0)
    chunked = SelectiveSSMMixer(8, 1, d_state=3, chunk_size=4).double()
    sequential = SelectiveSSMMixer(8, 1, d_state=3, scan="sequential").double()
    sequential.load_state_dict(chunked.state_dict())
    x = torch.randn(2, 11, 8, dtype=torch.float64)
    torch.testing.assert_close(sequential(x), chunked(x), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="scan must be 'chunked' or 'sequential', got 'parallel'"):
        SelectiveSSMMixer(8, 1, scan="parallel")
