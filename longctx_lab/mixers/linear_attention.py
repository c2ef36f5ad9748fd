"""Causal linear attention (Katharopoulos et al. 2020, "Transformers are RNNs"), in three equal forms.

Softmax attention weighs value ``j`` by ``exp(q_i . k_j)``; linear attention replaces that kernel with a dot
product of features, ``phi(q_i) . phi(k_j)``, with ``phi(x) = elu(x) + 1`` (positive, so the weights are too).
The causal output is then

    y_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps),   S_i = sum_{j <= i} phi(k_j) v_j^T,   z_i = sum_{j <= i} phi(k_j)

and ``S`` (``(batch, heads, d_f, d_v)``) and ``z`` (``(batch, heads, d_f)``) are a fixed-size state: decoding
costs the same at every position. Three forms compute it:

- :func:`linear_attention_recurrent`: the RNN, one position at a time (the decode step);
- :func:`linear_attention_chunked`: the parallel form over chunks of ``chunk_size`` positions, a masked
  quadratic product inside each chunk plus the state carried from the chunks before it;
- :func:`linear_attention_quadratic`: the reference, the full ``(seq, seq)`` weight matrix masked causally
  (run it in float64).

Shapes follow docs/conventions.md: ``q`` and ``k`` are ``(batch, heads, seq, d_k)``, ``v`` is
``(batch, heads, seq, d_v)``, the output ``(batch, heads, seq, d_v)``. ``eps`` (default ``1e-6``) is added to
every normaliser in all three forms, so they stay equal to each other; it keeps the output finite where the
features underflow to 0. ``feature_map=None`` means ``q`` and ``k`` are features already (they must then be
non-negative); :mod:`longctx_lab.mixers.performer` passes its random features that way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from longctx_lab.core.validate import check_int, check_number, check_tensor
from longctx_lab.mixers.base import TokenMixer, check_heads, check_mixer_input, check_state_tensor

__all__ = [
    "LinearAttentionMixer",
    "LinearAttentionState",
    "elu_plus_one",
    "linear_attention_chunked",
    "linear_attention_quadratic",
    "linear_attention_recurrent",
]


@dataclass(frozen=True)
class LinearAttentionState:
    """The recurrent state: ``s = sum_j phi(k_j) v_j^T`` ``(batch, heads, d_f, d_v)`` and the normaliser
    ``z = sum_j phi(k_j)`` ``(batch, heads, d_f)``."""

    s: torch.Tensor
    z: torch.Tensor


def elu_plus_one(x: torch.Tensor) -> torch.Tensor:
    """Katharopoulos et al.'s feature map ``elu(x) + 1`` (elementwise, > 0, same shape)."""
    return F.elu(x) + 1.0


def _prepare(q, k, v, state, feature_map, eps):
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, t, ndim=4)
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if q.dtype != k.dtype or q.dtype != v.dtype:
        raise TypeError(f"q, k and v must share one dtype, got q {q.dtype}, k {k.dtype}, v {v.dtype}")
    if q.device != k.device or q.device != v.device:
        raise ValueError(f"q, k and v must be on one device, got q {q.device}, k {k.device}, v {v.device}")
    if q.shape != k.shape:
        raise ValueError(f"q and k must have the same shape (batch, heads, seq, d_k), got q {tuple(q.shape)} "
                         f"and k {tuple(k.shape)}")
    if v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v must have q's (batch, heads, seq) = {tuple(q.shape[:3])}, got {tuple(v.shape)}")
    if q.numel() == 0 or v.numel() == 0:
        raise ValueError(f"q, k, v must be non-empty, got q {tuple(q.shape)} and v {tuple(v.shape)}")
    eps = check_number("eps", eps, minimum=0.0)
    if feature_map is None:
        fq, fk = q, k
        if bool((fq < 0).any()) or bool((fk < 0).any()):
            raise ValueError("with feature_map=None, q and k are features and must be non-negative, "
                             "got negative entries")
    elif callable(feature_map):
        fq, fk = feature_map(q), feature_map(k)
        if fq.shape[:3] != q.shape[:3] or fk.shape != fq.shape:
            raise ValueError(f"feature_map must map (batch, heads, seq, d_k) to (batch, heads, seq, d_f), "
                             f"got {tuple(fq.shape)} from {tuple(q.shape)}")
    else:
        raise TypeError(f"feature_map must be callable or None, got {type(feature_map).__name__}")
    batch, heads, _, d_f = fq.shape
    d_v = v.shape[-1]
    if state is None:
        s = fq.new_zeros(batch, heads, d_f, d_v)
        z = fq.new_zeros(batch, heads, d_f)
    else:
        if not isinstance(state, LinearAttentionState):
            raise TypeError(f"state must be a LinearAttentionState or None, got {type(state).__name__}")
        s = check_state_tensor("state.s", state.s, (batch, heads, d_f, d_v), fq)
        z = check_state_tensor("state.z", state.z, (batch, heads, d_f), fq)
    return fq, fk, s, z, eps


def linear_attention_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    state: LinearAttentionState | None = None,
    feature_map: Callable | None = elu_plus_one,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, LinearAttentionState]:
    """Causal linear attention as an RNN: for each position, ``S += phi(k) v^T``, ``z += phi(k)``, then
    ``y = phi(q)^T S / (phi(q)^T z + eps)``.

    ``q``, ``k``: ``(batch, heads, seq, d_k)``; ``v``: ``(batch, heads, seq, d_v)``; ``state``: the state after
    the positions before these (empty when ``None``). Returns ``(y (batch, heads, seq, d_v), state after)``.
    """
    fq, fk, s, z, eps = _prepare(q, k, v, state, feature_map, eps)
    outs = []
    for q_t, k_t, v_t in zip(fq.unbind(2), fk.unbind(2), v.unbind(2)):  # unbind: one backward for all the steps
        s = s + k_t[..., :, None] * v_t[..., None, :]
        z = z + k_t
        num = torch.einsum("bhf,bhfv->bhv", q_t, s)
        den = torch.einsum("bhf,bhf->bh", q_t, z)
        outs.append(num / (den[..., None] + eps))
    return torch.stack(outs, dim=2), LinearAttentionState(s, z)


def linear_attention_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    chunk_size: int = 64,
    state: LinearAttentionState | None = None,
    feature_map: Callable | None = elu_plus_one,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, LinearAttentionState]:
    """Causal linear attention in parallel over chunks of ``chunk_size`` positions (the last chunk may be
    shorter): inside a chunk, the causally masked ``(c, c)`` product ``phi(Q) phi(K)^T``; from the chunks
    before, the carried state (``phi(Q) S``, ``phi(Q) z``); after the chunk, ``S += phi(K)^T V``,
    ``z += sum phi(K)``. Same arguments and result as :func:`linear_attention_recurrent`.
    """
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    fq, fk, s, z, eps = _prepare(q, k, v, state, feature_map, eps)
    seq = fq.shape[2]
    outs = []
    for start in range(0, seq, chunk_size):
        end = min(start + chunk_size, seq)
        cq, ck, cv = fq[:, :, start:end], fk[:, :, start:end], v[:, :, start:end]
        weights = torch.tril(cq @ ck.transpose(-2, -1))  # (b, h, c, c), j <= i
        num = cq @ s + weights @ cv
        den = torch.einsum("bhcf,bhf->bhc", cq, z) + weights.sum(-1)
        outs.append(num / (den[..., None] + eps))
        s = s + ck.transpose(-2, -1) @ cv
        z = z + ck.sum(dim=2)
    return torch.cat(outs, dim=2), LinearAttentionState(s, z)


def linear_attention_quadratic(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    feature_map: Callable | None = elu_plus_one,
    eps: float = 1e-6,
) -> torch.Tensor:
    """The reference: the full causal weight matrix ``A = tril(phi(Q) phi(K)^T)``, ``y = A V / (A 1 + eps)``.

    ``(batch, heads, seq, d_k)`` ``q``, ``k`` and ``(batch, heads, seq, d_v)`` ``v`` -> ``(batch, heads, seq,
    d_v)``. Quadratic in ``seq``; run it in float64 to check the other forms.
    """
    fq, fk, _, _, eps = _prepare(q, k, v, None, feature_map, eps)
    weights = torch.tril(fq @ fk.transpose(-2, -1))
    return (weights @ v) / (weights.sum(-1, keepdim=True) + eps)


class LinearAttentionMixer(TokenMixer):
    """Multi-head causal linear attention as a token mixer (Katharopoulos et al. 2020).

    ``q_proj``, ``k_proj``, ``v_proj``: ``d_model -> d_model`` (``n_heads`` heads of ``d_model // n_heads``),
    then the kernel (chunked for ``forward``/``prefill``, recurrent for ``step``), then ``o_proj``; no biases.
    The decode state is a :class:`LinearAttentionState` of ``(batch, heads, d_f, head_dim)`` and
    ``(batch, heads, d_f)``, with ``d_f = head_dim`` for ``elu + 1``: constant in the sequence length.
    """

    def __init__(self, d_model: int, n_heads: int, *, chunk_size: int = 64, eps: float = 1e-6):
        d_model, n_heads, head_dim = check_heads(d_model, n_heads)
        super().__init__(d_model)
        self.n_heads, self.head_dim = n_heads, head_dim
        self.chunk_size = check_int("chunk_size", chunk_size, minimum=1)
        self.eps = check_number("eps", eps, minimum=0.0)
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)

    @property
    def feature_dim(self) -> int:
        """``d_f``, the size of ``phi``'s output per head."""
        return self.head_dim

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``phi``: ``(batch, heads, seq, head_dim) -> (batch, heads, seq, d_f)``; here ``elu + 1``."""
        return elu_plus_one(x)

    def _heads(self, x: torch.Tensor):
        b, n, _ = x.shape
        split = [p(x).view(b, n, self.n_heads, self.head_dim).transpose(1, 2)
                 for p in (self.q_proj, self.k_proj, self.v_proj)]
        return [t.to(torch.promote_types(t.dtype, torch.float32)) for t in split]

    def _merge(self, y: torch.Tensor, dtype) -> torch.Tensor:
        b, _, n, _ = y.shape
        return self.o_proj(y.transpose(1, 2).reshape(b, n, self.d_model).to(dtype))

    def prefill(self, x: torch.Tensor, state: LinearAttentionState | None = None):
        check_mixer_input(x, self.d_model)
        q, k, v = self._heads(x)
        y, state = linear_attention_chunked(self.feature_map(q), self.feature_map(k), v, chunk_size=self.chunk_size,
                                            state=state, feature_map=None, eps=self.eps)
        return self._merge(y, x.dtype), state

    def init_state(self, batch: int, *, dtype=None, device=None) -> LinearAttentionState:
        batch = check_int("batch", batch, minimum=1)
        dtype, device = self._dtype_device(dtype, device)
        dtype = torch.promote_types(dtype, torch.float32)
        shape = (batch, self.n_heads, self.feature_dim)
        return LinearAttentionState(torch.zeros(*shape, self.head_dim, dtype=dtype, device=device),
                                    torch.zeros(*shape, dtype=dtype, device=device))

    def step(self, x_t: torch.Tensor, state: LinearAttentionState):
        check_mixer_input(x_t, self.d_model, name="x_t", ndim=2)
        q, k, v = self._heads(x_t[:, None])
        y, state = linear_attention_recurrent(self.feature_map(q), self.feature_map(k), v, state=state,
                                              feature_map=None, eps=self.eps)
        return self._merge(y, x_t.dtype)[:, 0], state
