"""Infini-attention-style compressive memory against a float64 loop written from the paper's equations."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab.mixers.compressive import CompressiveMemoryMixer, CompressiveState, infini_attention


def _qkv(seed, batch=2, heads=2, seq=13, d=3):
    gen = torch.Generator().manual_seed(seed)
    qkv = [torch.randn(batch, heads, seq, d, generator=gen, dtype=torch.float64) for _ in range(3)]
    gate = torch.randn(heads, generator=gen, dtype=torch.float64)
    return (*qkv, gate)


def _reference(q, k, v, gate, segment_len, update, eps=1e-6):
    """Position by position: softmax over the segment's keys so far, plus sigma(q) M / (sigma(q) z + eps) from
    the memory of the finished segments, mixed by sigmoid(gate); the memory is written once a segment ends."""
    batch, heads, seq, d = q.shape
    sig = lambda x: F.elu(x) + 1  # noqa: E731
    g = torch.sigmoid(gate)
    out = torch.zeros_like(q)
    for b in range(batch):
        for h in range(heads):
            memory = torch.zeros(d, d, dtype=torch.float64)
            z = torch.zeros(d, dtype=torch.float64)
            for start in range(0, seq, segment_len):
                end = min(start + segment_len, seq)
                for i in range(start, end):
                    w = torch.softmax(k[b, h, start:i + 1] @ q[b, h, i] / math.sqrt(d), 0)
                    local = w @ v[b, h, start:i + 1]
                    sq = sig(q[b, h, i])
                    remembered = (sq @ memory) / (sq @ z + eps)
                    out[b, h, i] = g[h] * remembered + (1 - g[h]) * local
                if end - start == segment_len:
                    sk, vs = sig(k[b, h, start:end]), v[b, h, start:end]
                    if update == "delta":
                        vs = vs - (sk @ memory) / ((sk @ z)[:, None] + eps)
                    memory = memory + sk.T @ vs
                    z = z + sk.sum(0)
    return out


@pytest.mark.parametrize("update", ["linear", "delta"])
@pytest.mark.parametrize("segment_len", [1, 4, 13, 20])
def test_matches_the_papers_equations(update, segment_len):
    q, k, v, gate = _qkv(segment_len)
    out, state = infini_attention(q, k, v, gate, segment_len=segment_len, update=update)
    torch.testing.assert_close(out, _reference(q, k, v, gate, segment_len, update), rtol=1e-12, atol=1e-12)
    assert state.filled == 13 % segment_len


@given(seq=st.integers(2, 24), split=st.integers(1, 23), segment_len=st.integers(1, 7),
       update=st.sampled_from(["linear", "delta"]), seed=st.integers(0, 2**16))
def test_a_carried_state_continues_the_stream(seq, split, segment_len, update, seed):
    split = min(split, seq - 1)
    q, k, v, gate = _qkv(seed, seq=seq)
    whole, end_state = infini_attention(q, k, v, gate, segment_len=segment_len, update=update)
    first, state = infini_attention(q[:, :, :split], k[:, :, :split], v[:, :, :split], gate,
                                    segment_len=segment_len, update=update)
    second, state = infini_attention(q[:, :, split:], k[:, :, split:], v[:, :, split:], gate,
                                     segment_len=segment_len, update=update, state=state)
    torch.testing.assert_close(torch.cat([first, second], 2), whole, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state.memory, end_state.memory, rtol=1e-12, atol=1e-12)
    assert state.filled == end_state.filled


def test_the_gate_chooses_between_local_and_memory():
    q, k, v, _ = _qkv(1, seq=8)
    local_only, _ = infini_attention(q, k, v, torch.full((2,), -50.0, dtype=torch.float64), segment_len=4)
    later = torch.ones(4, 4, dtype=torch.bool).triu(1)
    expected = torch.cat([torch.softmax((q[:, :, s:s + 4] @ k[:, :, s:s + 4].transpose(-2, -1) / math.sqrt(3))
                                        .masked_fill(later, float("-inf")), -1) @ v[:, :, s:s + 4]
                          for s in (0, 4)], 2)
    torch.testing.assert_close(local_only, expected, rtol=1e-12, atol=1e-12)
    memory_only, _ = infini_attention(q, k, v, torch.full((2,), 50.0, dtype=torch.float64), segment_len=4)
    assert memory_only[:, :, :4].abs().max() < 1e-12  # nothing stored before the first segment ends
    assert memory_only[:, :, 4:].abs().min() > 0


def test_the_decode_state_is_bounded_by_the_segment():
    m = CompressiveMemoryMixer(12, 3, segment_len=5).double()
    x = torch.randn(2, 23, 12, dtype=torch.float64)
    sizes = {m.state_bytes(m.prefill(x[:, :n])[1]) for n in (1, 5, 9, 23)}
    head_dim = 4
    assert sizes == {2 * 3 * (head_dim * (head_dim + 1) + 2 * 5 * head_dim) * 8}


def test_bad_arguments_and_states_name_themselves():
    q, k, v, gate = _qkv(2)
    with pytest.raises(ValueError, match="segment_len must be an integer >= 1, got 0"):
        infini_attention(q, k, v, gate, segment_len=0)
    with pytest.raises(ValueError, match="update must be one of"):
        infini_attention(q, k, v, gate, segment_len=2, update="gated")
    with pytest.raises(ValueError, match=r"gate must have shape \(heads,\) = \(2,\)"):
        infini_attention(q, k, v, gate[:1], segment_len=2)
    _, state = infini_attention(q, k, v, gate, segment_len=4)
    with pytest.raises(ValueError, match=r"state.keys must have shape \(2, 2, 5, 3\)"):
        infini_attention(q, k, v, gate, segment_len=5, state=state)
    bad = CompressiveState(state.memory, state.normaliser, state.keys, state.values, 4)
    with pytest.raises(ValueError, match="state.filled must be < segment_len = 4, got 4"):
        infini_attention(q, k, v, gate, segment_len=4, state=bad)
    with pytest.raises(TypeError, match="state must be a CompressiveState"):
        infini_attention(q, k, v, gate, segment_len=4, state=(state.memory,))
    with pytest.raises(ValueError, match="update must be one of"):
        CompressiveMemoryMixer(8, 2, update="gated")
