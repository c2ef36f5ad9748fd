"""A compressive memory in the style of Infini-attention (Munkhdalai et al. 2024, "Leave No Context Behind").

The sequence is cut into segments of ``segment_len`` positions. Inside a segment, each query attends causally
with softmax to the keys of its own segment (local attention, ``A_local``). The segments before it are kept only
in a linear-attention memory (:mod:`longctx_lab.mixers.linear_attention`) with ``sigma = elu + 1``:

    A_mem = sigma(Q) M / (sigma(Q) z + eps)           (zeros while the memory is empty)
    out   = g A_mem + (1 - g) A_local,                g = sigmoid(beta), one learned beta per head

and after each segment, the paper's linear update ``M += sigma(K)^T V``, ``z += sum_t sigma(K_t)``, or its
delta rule ``M += sigma(K)^T (V - sigma(K) M / (sigma(K) z + eps))`` (``update="delta"``: it writes only
what the memory does not already return). ``M`` is ``(batch, heads, head_dim, head_dim)`` and ``z``
``(batch, heads, head_dim)`` whatever the length; decoding also keeps the current segment's keys and values,
``(batch, heads, segment_len, head_dim)`` each, so the state is bounded by ``segment_len``, not by the sequence.

Simplifications, said here: no positional encoding inside the segment, one gate per head (as the paper), the
memory is not retrieved by a segment's own keys until the segment ends (as the paper). Shapes follow
docs/conventions.md: ``q``, ``k``, ``v`` ``(batch, heads, seq, head_dim)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from longctx_lab.attention.reference import naive_attention
from longctx_lab.core.validate import check_int, check_number, check_qkv, check_tensor
from longctx_lab.mixers.base import TokenMixer, check_heads, check_mixer_input, check_state_tensor
from longctx_lab.mixers.linear_attention import elu_plus_one

__all__ = ["CompressiveMemoryMixer", "CompressiveState", "infini_attention"]

_UPDATES = ("linear", "delta")


@dataclass(frozen=True)
class CompressiveState:
    """The memory ``memory`` ``(batch, heads, head_dim, head_dim)`` and its normaliser ``normaliser``
    ``(batch, heads, head_dim)``; the current segment's first ``filled`` keys and values in ``keys``,
    ``values`` ``(batch, heads, segment_len, head_dim)`` (the rest zeros); ``filled`` in ``[0, segment_len)``."""

    memory: torch.Tensor
    normaliser: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor
    filled: int = 0


def empty_compressive_state(batch: int, heads: int, head_dim: int, segment_len: int, *, dtype, device):
    """The state before any token: zero memory, normaliser and buffers, ``filled = 0``."""
    z = torch.zeros(batch, heads, head_dim, dtype=dtype, device=device)
    buf = torch.zeros(batch, heads, segment_len, head_dim, dtype=dtype, device=device)
    return CompressiveState(z[..., None].expand(-1, -1, -1, head_dim).clone(), z, buf, buf.clone(), 0)


def _retrieve(sq: torch.Tensor, memory: torch.Tensor, normaliser: torch.Tensor, eps: float) -> torch.Tensor:
    return (sq @ memory) / ((sq @ normaliser[..., None]) + eps)


def infini_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gate: torch.Tensor, *, segment_len: int,
                     state: CompressiveState | None = None, update: str = "linear", eps: float = 1e-6,
                     scale: float | None = None):
    """Infini-attention over ``q``, ``k``, ``v`` ``(batch, heads, seq, head_dim)`` (equal heads) in segments of
    ``segment_len`` positions counted from the start of the stream (a ``state`` with ``filled`` positions
    continues its segment). ``gate``: ``(heads,)`` logits ``beta``. ``scale`` (local softmax) defaults to
    ``1/sqrt(head_dim)``. Returns ``(out (batch, heads, seq, head_dim), state after)``.
    """
    batch, heads, kv_heads, q_len, kv_len, head_dim = check_qkv(q, k, v)
    if heads != kv_heads or q_len != kv_len:
        raise ValueError(f"q, k and v must have the same shape, got q {tuple(q.shape)} and k {tuple(k.shape)}")
    segment_len = check_int("segment_len", segment_len, minimum=1)
    eps = check_number("eps", eps, minimum=0.0)
    if update not in _UPDATES:
        raise ValueError(f"update must be one of {_UPDATES}, got {update!r}")
    check_tensor("gate", gate, ndim=1)
    if gate.shape[0] != heads:
        raise ValueError(f"gate must have shape (heads,) = ({heads},), got {tuple(gate.shape)}")
    if state is None:
        state = empty_compressive_state(batch, heads, head_dim, segment_len, dtype=q.dtype, device=q.device)
    elif not isinstance(state, CompressiveState):
        raise TypeError(f"state must be a CompressiveState or None, got {type(state).__name__}")
    else:
        check_state_tensor("state.memory", state.memory, (batch, heads, head_dim, head_dim), q)
        check_state_tensor("state.normaliser", state.normaliser, (batch, heads, head_dim), q)
        check_state_tensor("state.keys", state.keys, (batch, heads, segment_len, head_dim), q)
        check_state_tensor("state.values", state.values, (batch, heads, segment_len, head_dim), q)
        filled = check_int("state.filled", state.filled, minimum=0)
        if filled >= segment_len:
            raise ValueError(f"state.filled must be < segment_len = {segment_len}, got {filled}")
    g = torch.sigmoid(gate.to(q.dtype))[None, :, None, None]
    memory, normaliser, filled = state.memory, state.normaliser, state.filled
    keys, values = state.keys, state.values
    outs, pos = [], 0
    while pos < q_len:
        take = min(segment_len - filled, q_len - pos)
        cq = q[:, :, pos:pos + take]
        seg_k = torch.cat([keys[:, :, :filled], k[:, :, pos:pos + take]], dim=2)
        seg_v = torch.cat([values[:, :, :filled], v[:, :, pos:pos + take]], dim=2)
        local = naive_attention(cq, seg_k, seg_v, causal=True, scale=scale)  # bottom-right aligned
        remembered = _retrieve(elu_plus_one(cq), memory, normaliser, eps)
        outs.append(g * remembered + (1 - g) * local)
        filled += take
        pos += take
        if filled == segment_len:
            sk = elu_plus_one(seg_k)
            written = seg_v if update == "linear" else seg_v - _retrieve(sk, memory, normaliser, eps)
            memory = memory + sk.transpose(-2, -1) @ written
            normaliser = normaliser + sk.sum(dim=2)
            keys, values, filled = torch.zeros_like(keys), torch.zeros_like(values), 0
        else:
            pad = keys.new_zeros(batch, heads, segment_len - filled, head_dim)
            keys, values = torch.cat([seg_k, pad], dim=2), torch.cat([seg_v, pad], dim=2)
    return torch.cat(outs, dim=2), replace(state, memory=memory, normaliser=normaliser, keys=keys, values=values,
                                           filled=filled)


class CompressiveMemoryMixer(TokenMixer):
    """Multi-head Infini-attention as a token mixer: ``q_proj``/``k_proj``/``v_proj``/``o_proj``
    ``d_model -> d_model`` (no biases), :func:`infini_attention` in segments of ``segment_len``, a learned gate
    logit per head (``gate``, initialised 0: half memory, half local). The decode state is a
    :class:`CompressiveState` of ``head_dim * (head_dim + 1) + 2 * segment_len * head_dim`` numbers per
    head and sequence: constant in the sequence length.
    """

    def __init__(self, d_model: int, n_heads: int, *, segment_len: int = 64, update: str = "linear",
                 eps: float = 1e-6):
        d_model, n_heads, head_dim = check_heads(d_model, n_heads)
        super().__init__(d_model)
        self.n_heads, self.head_dim = n_heads, head_dim
        self.segment_len = check_int("segment_len", segment_len, minimum=1)
        if update not in _UPDATES:
            raise ValueError(f"update must be one of {_UPDATES}, got {update!r}")
        self.update = update
        self.eps = check_number("eps", eps, minimum=0.0)
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.gate = nn.Parameter(torch.zeros(n_heads))

    def prefill(self, x: torch.Tensor, state: CompressiveState | None = None):
        check_mixer_input(x, self.d_model)
        b, n, _ = x.shape
        compute = torch.promote_types(x.dtype, torch.float32)
        q, k, v = (p(x).view(b, n, self.n_heads, self.head_dim).transpose(1, 2).to(compute)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        y, state = infini_attention(q, k, v, self.gate, segment_len=self.segment_len, state=state,
                                    update=self.update, eps=self.eps)
        return self.o_proj(y.transpose(1, 2).reshape(b, n, self.d_model).to(x.dtype)), state

    def init_state(self, batch: int, *, dtype=None, device=None) -> CompressiveState:
        batch = check_int("batch", batch, minimum=1)
        dtype, device = self._dtype_device(dtype, device)
        return empty_compressive_state(batch, self.n_heads, self.head_dim, self.segment_len,
                                       dtype=torch.promote_types(dtype, torch.float32), device=device)

    def step(self, x_t: torch.Tensor, state: CompressiveState):
        check_mixer_input(x_t, self.d_model, name="x_t", ndim=2)
        if not isinstance(state, CompressiveState):
            raise TypeError(f"state must be a CompressiveState, got {type(state).__name__}")
        y, state = self.prefill(x_t[:, None], state)
        return y[:, 0], state
