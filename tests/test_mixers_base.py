"""The token-mixer interface, for every mixer build_mixer makes: causal, step == forward, constant state bytes."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from longctx_lab.mixers import MIXER_KINDS, LinearAttentionState, build_mixer, state_bytes

D_MODEL, HEADS = 16, 2
SMALL = {"linear": {"chunk_size": 4}, "performer": {"chunk_size": 4, "n_features": 12},
         "ssm": {"chunk_size": 4, "d_state": 3, "expand": 2}, "compressive": {"segment_len": 5}}


def _mixer(kind, seed=0):
    torch.manual_seed(seed)
    return build_mixer(kind, D_MODEL, HEADS, **SMALL[kind]).double()


def _x(seed, batch=2, seq=13):
    return torch.randn(batch, seq, D_MODEL, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _expected_state_bytes(kind, batch):
    """Each state's size from its definition, in float64 numbers; independent of the sequence length."""
    hd = D_MODEL // HEADS
    per_head = {"linear": hd * hd + hd,
                "performer": 12 * hd + 12,
                "compressive": hd * hd + hd + 2 * 5 * hd}
    if kind == "ssm":
        d_inner = 2 * D_MODEL
        return batch * (d_inner * 3 + d_inner * 3) * 8  # h (d_inner, d_state) and conv (d_inner, d_conv - 1)
    return batch * HEADS * per_head[kind] * 8


@pytest.mark.parametrize("kind", MIXER_KINDS)
def test_step_by_step_decoding_equals_forward(kind):
    m = _mixer(kind)
    x = _x(1)
    y = m(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    state = m.init_state(2)
    steps = []
    for t in range(x.shape[1]):
        y_t, state = m.step(x[:, t], state)
        steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, 1), y, rtol=1e-10, atol=1e-12)


@settings(max_examples=12)
@given(kind=st.sampled_from(MIXER_KINDS), seq=st.integers(2, 17), split=st.integers(1, 16))
def test_prefill_then_decode_equals_forward(kind, seq, split):
    split = min(split, seq - 1)
    m, x = _mixer(kind), _x(2, seq=seq)
    y = m(x)
    head, state = m.prefill(x[:, :split])
    tail = []
    for t in range(split, seq):
        y_t, state = m.step(x[:, t], state)
        tail.append(y_t)
    torch.testing.assert_close(torch.cat([head, torch.stack(tail, 1)], 1), y, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", MIXER_KINDS)
def test_a_future_token_does_not_change_earlier_outputs(kind):
    m, x = _mixer(kind), _x(3)
    y = m(x)
    x2 = x.clone()
    x2[:, 8] += 1.0
    y2 = m(x2)
    torch.testing.assert_close(y2[:, :8], y[:, :8], rtol=0, atol=0)
    assert not torch.allclose(y2[:, 8:], y[:, 8:])


@pytest.mark.parametrize("kind", MIXER_KINDS)
def test_state_bytes_are_measured_and_constant_in_the_sequence_length(kind):
    m = _mixer(kind)
    sizes = {m.state_bytes(m.init_state(2))}
    for seq in (1, 7, 40):
        sizes.add(m.state_bytes(m.prefill(_x(4, seq=seq))[1]))
    assert sizes == {_expected_state_bytes(kind, 2)}
    assert m.state_bytes(m.init_state(2, dtype=torch.float32)) == _expected_state_bytes(kind, 2) // 2


@pytest.mark.parametrize("kind", MIXER_KINDS)
def test_the_step_does_not_modify_the_state_it_was_given(kind):
    m, x = _mixer(kind), _x(5)
    _, state = m.prefill(x[:, :6])
    before = [t.clone() for t in _tensors(state)]
    m.step(x[:, 6], state)
    assert all(torch.equal(a, b) for a, b in zip(before, _tensors(state)))


def _tensors(state):
    return [getattr(state, f) for f in state.__dataclass_fields__ if isinstance(getattr(state, f), torch.Tensor)]


@pytest.mark.parametrize("kind", MIXER_KINDS)
def test_float32_training_runs_and_gradients_are_finite(kind):
    torch.manual_seed(0)
    m = build_mixer(kind, D_MODEL, HEADS, **SMALL[kind])
    x = torch.randn(2, 21, D_MODEL, requires_grad=True)
    m(x).pow(2).mean().backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert torch.isfinite(x.grad).all()


def test_state_bytes_counts_nested_tensors_only():
    s = LinearAttentionState(torch.zeros(2, 3, dtype=torch.float16), torch.zeros(4, dtype=torch.float64))
    assert state_bytes(s) == 2 * 3 * 2 + 4 * 8
    assert state_bytes({"a": (torch.zeros(5, dtype=torch.int8), 7), "b": [torch.zeros(2)]}) == 5 + 8


@pytest.mark.parametrize("kind", MIXER_KINDS)
def test_bad_inputs_and_states_get_named_errors(kind):
    m = _mixer(kind)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, seq, d_model\)"):
        m(torch.zeros(3, D_MODEL, dtype=torch.float64))
    with pytest.raises(ValueError, match="x must have last dimension d_model = 16"):
        m(torch.zeros(1, 3, 8, dtype=torch.float64))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        m(torch.zeros(1, 3, D_MODEL, dtype=torch.long))
    with pytest.raises(ValueError, match="x must be non-empty"):
        m(torch.zeros(1, 0, D_MODEL, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"x_t must have shape \(batch, d_model\)"):
        m.step(torch.zeros(2, 1, D_MODEL, dtype=torch.float64), m.init_state(2))
    with pytest.raises(ValueError, match="batch must be an integer >= 1, got 0"):
        m.init_state(0)
    with pytest.raises(TypeError, match="must be a"):
        m.step(torch.zeros(2, D_MODEL, dtype=torch.float64), {"h": torch.zeros(1)})
    with pytest.raises(ValueError, match="must have shape"):  # a state for 3 sequences, a step for 2
        m.step(torch.zeros(2, D_MODEL, dtype=torch.float64), m.init_state(3))
    with pytest.raises(TypeError, match="must have dtype"):
        m.step(torch.zeros(2, D_MODEL, dtype=torch.float64), m.init_state(2, dtype=torch.float32))


def test_build_mixer_names_its_kinds():
    with pytest.raises(ValueError, match=r"kind must be one of \('linear', 'performer', 'ssm', 'compressive'\), "
                                         r"got 'attention'"):
        build_mixer("attention", 16, 2)
    with pytest.raises(TypeError, match="kind must be a string"):
        build_mixer(None, 16, 2)
    with pytest.raises(ValueError, match="d_model must be a multiple of n_heads = 3, got 16"):
        build_mixer("linear", 16, 3)
    with pytest.raises(ValueError, match="n_heads must be an integer >= 1, got 0"):
        build_mixer("ssm", 16, 0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'segment_len'"):
        build_mixer("linear", 16, 2, segment_len=4)
