"""A selective state-space layer in the style of Mamba (Gu and Dao 2023), with three equal scans.

Per channel ``d`` (of ``channels``) and state index ``n`` (of ``d_state``), with a diagonal ``A`` (``a[d, n] <
0``) and an input-dependent step ``delta_t[d] > 0``, input matrix ``B_t`` and output matrix ``C_t``:

    h_t[d, n] = exp(delta_t[d] a[d, n]) h_{t-1}[d, n] + delta_t[d] B_t[n] x_t[d]
    y_t[d]    = sum_n C_t[n] h_t[d, n]

``exp(delta a)`` is the zero-order-hold (ZOH) discretisation of ``A`` as in the paper; ``delta B`` is the
simplified (Euler) discretisation of ``B`` that Mamba's own code uses in place of ZOH's
``(delta A)^-1 (exp(delta A) - 1) delta B``. "Selective" means ``delta``, ``B`` and ``C`` are computed from the
input at each position, so the layer can choose what to keep. The state ``h`` is ``(batch, channels,
d_state)`` whatever the sequence length.

- :func:`selective_scan_sequential`: the recurrence, one position at a time (the decode step);
- :func:`selective_scan_chunked`: parallel inside chunks of ``chunk_size`` positions (a cumulative sum of the
  inputs rescaled by ``exp(-L)``, ``L`` the cumulative ``delta a``), carrying ``h`` between chunks;
- :func:`selective_scan_reference`: the closed form ``h_t = sum_{s <= t} (prod_{s < r <= t} exp(delta_r a))
  delta_s B_s x_s`` with explicit products, for checking in float64.

Shapes: ``x`` and ``delta`` ``(batch, seq, channels)``, ``a`` ``(channels, d_state)``, ``b`` and ``c``
``(batch, seq, d_state)``; ``y`` ``(batch, seq, channels)``. :class:`SelectiveSSMMixer` wraps the scan in
Mamba's block (input projection, short causal convolution, gate, output projection; no hardware-aware kernel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from longctx_lab.core.validate import check_int, check_number, check_tensor
from longctx_lab.mixers.base import TokenMixer, check_mixer_input, check_state_tensor

__all__ = [
    "SSMState",
    "SelectiveSSMMixer",
    "selective_scan_chunked",
    "selective_scan_reference",
    "selective_scan_sequential",
]


def _check_scan(x, delta, a, b, c, state):
    for name, t, ndim in (("x", x, 3), ("delta", delta, 3), ("a", a, 2), ("b", b, 3), ("c", c, 3)):
        check_tensor(name, t)
        if t.ndim != ndim:
            raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
        if t.dtype != x.dtype or t.device != x.device:
            raise TypeError(f"{name} must have x's dtype {x.dtype} and device {x.device}, got {t.dtype} on {t.device}")
    batch, seq, channels = x.shape
    if x.numel() == 0:
        raise ValueError(f"x must be non-empty (batch, seq, channels), got {tuple(x.shape)}")
    if delta.shape != x.shape:
        raise ValueError(f"delta must have x's shape {tuple(x.shape)}, got {tuple(delta.shape)}")
    if a.shape[0] != channels or a.shape[1] == 0:
        raise ValueError(f"a must have shape (channels, d_state) with channels = {channels}, got {tuple(a.shape)}")
    d_state = a.shape[1]
    if bool((delta < 0).any()):
        raise ValueError("delta must be >= 0 everywhere (a step size, e.g. softplus of a projection), got "
                         f"minimum {float(delta.min())}")
    if bool((a > 0).any()):
        raise ValueError(f"a must be <= 0 everywhere (a stable diagonal A), got maximum {float(a.max())}")
    for name, t in (("b", b), ("c", c)):
        if t.shape != (batch, seq, d_state):
            raise ValueError(f"{name} must have shape (batch, seq, d_state) = {(batch, seq, d_state)}, "
                             f"got {tuple(t.shape)}")
    if state is None:
        return x.new_zeros(batch, channels, d_state)
    return check_state_tensor("state", state, (batch, channels, d_state), x)


def selective_scan_sequential(x: torch.Tensor, delta: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                              c: torch.Tensor, *, state: torch.Tensor | None = None):
    """The recurrence one position at a time. ``state``: ``h`` ``(batch, channels, d_state)`` before ``x``
    (zeros when ``None``). Returns ``(y (batch, seq, channels), h after the last position)``."""
    h = _check_scan(x, delta, a, b, c, state)
    step_decay = torch.exp(delta[..., None] * a)  # (b, seq, d, n)
    u = (delta * x)[..., None] * b[:, :, None, :]
    hs = []
    for decay_t, u_t in zip(step_decay.unbind(1), u.unbind(1)):  # unbind: one backward for all the steps
        h = decay_t * h + u_t
        hs.append(h)
    hs = torch.stack(hs, dim=1)
    return torch.einsum("btdn,btn->btd", hs, c), h


#: The largest exponent a chunk may reach in the prefix-sum form, per compute dtype (exp(88) overflows float32).
_EXP_LIMIT = {torch.float16: 8.0, torch.bfloat16: 60.0, torch.float32: 60.0, torch.float64: 600.0}


def _chunk_states(h: torch.Tensor, log_step: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The states ``h_1..h_T`` of one chunk from ``h_0`` ``(b, d, n)``, per-step log decays ``delta a`` and inputs
    ``u = delta B x`` ``(b, T, d, n)``: ``h_t = exp(L_t) (h_0 + sum_{s <= t} exp(-L_s) u_s)``, ``L`` the cumulative
    log decay. ``exp(-L_s)`` grows along the chunk; a chunk whose total decay would overflow is halved."""
    steps = log_step.shape[1]
    if steps == 1:
        return (torch.exp(log_step[:, 0]) * h + u[:, 0])[:, None]
    log_decay = torch.cumsum(log_step, dim=1)  # L_t <= 0, non-increasing
    if float(-log_decay[:, -1].detach().min()) <= _EXP_LIMIT.get(log_step.dtype, 60.0):
        return torch.exp(log_decay) * (h[:, None] + torch.cumsum(torch.exp(-log_decay) * u, dim=1))
    half = steps // 2
    first = _chunk_states(h, log_step[:, :half], u[:, :half])
    return torch.cat([first, _chunk_states(first[:, -1], log_step[:, half:], u[:, half:])], dim=1)


def selective_scan_chunked(x: torch.Tensor, delta: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                           c: torch.Tensor, *, chunk_size: int = 64, state: torch.Tensor | None = None):
    """The scan in parallel within chunks of ``chunk_size`` positions (the last may be shorter), carrying ``h``
    between chunks. Inside a chunk, with ``L_t = sum_{s <= t} delta_s a`` counted from the chunk's start,
    ``h_t = exp(L_t) (h_0 + sum_{s <= t} exp(-L_s) delta_s B_s x_s)``: one cumulative sum, memory linear in
    the chunk. ``exp(-L_s)`` grows along the chunk, so a chunk whose decay ``-L`` would pass the dtype's limit
    (60 in float32, 600 in float64) is computed as two halves, down to single steps if need be: no overflow,
    whatever ``delta``. Same arguments and result as :func:`selective_scan_sequential`."""
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    h = _check_scan(x, delta, a, b, c, state)
    log_step = delta[..., None] * a  # (b, seq, d, n)
    u = (delta * x)[..., None] * b[:, :, None, :]
    ys = []
    for start in range(0, x.shape[1], chunk_size):
        end = min(start + chunk_size, x.shape[1])
        hs = _chunk_states(h, log_step[:, start:end], u[:, start:end])
        ys.append(torch.einsum("btdn,btn->btd", hs, c[:, start:end]))
        h = hs[:, -1]
    return torch.cat(ys, dim=1), h


def selective_scan_reference(x: torch.Tensor, delta: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                             c: torch.Tensor, *, state: torch.Tensor | None = None):
    """The closed form with explicit products of the per-step decays ``exp(delta_r a)``, computed in float64
    (quadratic in ``seq``; for tests). Returns ``(y, h)`` like :func:`selective_scan_sequential`, in float64."""
    h0 = _check_scan(x, delta, a, b, c, state)
    x, delta, a, b, c, h0 = (t.to(torch.float64) for t in (x, delta, a, b, c, h0))
    seq = x.shape[1]
    step_decay = torch.exp(delta[..., None] * a)  # (b, seq, d, n)
    u = delta[..., None] * x[..., None] * b[:, :, None, :]
    ys, h = [], h0
    for t in range(seq):
        h = torch.prod(step_decay[:, : t + 1], dim=1) * h0
        for s in range(t + 1):
            h = h + torch.prod(step_decay[:, s + 1: t + 1], dim=1) * u[:, s]
        ys.append((h * c[:, t, None, :]).sum(-1))
    return torch.stack(ys, dim=1), h


@dataclass(frozen=True)
class SSMState:
    """Decode state of :class:`SelectiveSSMMixer`: the scan's ``h`` ``(batch, d_inner, d_state)`` and the
    convolution's last ``d_conv - 1`` inputs ``(batch, d_inner, d_conv - 1)``."""

    h: torch.Tensor
    conv: torch.Tensor


class SelectiveSSMMixer(TokenMixer):
    """Mamba's block around the selective scan (Gu and Dao 2023), simplified: no fused kernel.

    ``in_proj`` ``d_model -> 2 d_inner`` (``d_inner = expand * d_model``) gives ``x`` and the gate ``z``;
    ``x`` goes through a causal depthwise convolution of width ``d_conv`` and SiLU; ``x_proj`` gives
    ``dt`` (``dt_rank``), ``B`` and ``C`` (``d_state`` each); ``delta = softplus(dt_proj(dt))``;
    ``A = -exp(A_log)`` with ``A_log`` initialised to ``log(1..d_state)`` (S4D-real); then
    ``y = scan(x) + D x``, ``y * silu(z)``, ``out_proj`` back to ``d_model``. ``n_heads`` is accepted for
    :func:`~longctx_lab.mixers.base.build_mixer`'s signature and not used: the state is per channel.
    ``forward`` and ``prefill`` use the chunked scan (``scan="chunked"``, chunks of ``chunk_size``) or the
    sequential one (``scan="sequential"``, often faster on a CPU); ``step`` the sequential one.
    """

    def __init__(self, d_model: int, n_heads: int = 1, *, d_state: int = 16, expand: int = 2, d_conv: int = 4,
                 dt_rank: int | None = None, chunk_size: int = 64, scan: str = "chunked", dt_min: float = 1e-3,
                 dt_max: float = 1e-1):
        super().__init__(d_model)
        check_int("n_heads", n_heads, minimum=1)
        self.d_state = check_int("d_state", d_state, minimum=1)
        self.d_inner = check_int("expand", expand, minimum=1) * self.d_model
        self.d_conv = check_int("d_conv", d_conv, minimum=1)
        self.dt_rank = math.ceil(self.d_model / 16) if dt_rank is None else check_int("dt_rank", dt_rank, minimum=1)
        self.chunk_size = check_int("chunk_size", chunk_size, minimum=1)
        if scan not in ("chunked", "sequential"):
            raise ValueError(f"scan must be 'chunked' or 'sequential', got {scan!r}")
        self.scan = scan
        dt_min = check_number("dt_min", dt_min, exclusive_minimum=0)
        dt_max = check_number("dt_max", dt_max, minimum=dt_min)
        self.in_proj = nn.Linear(self.d_model, 2 * self.d_inner, bias=False)
        self.conv = nn.Conv1d(self.d_inner, self.d_inner, self.d_conv, groups=self.d_inner)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * self.d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner)
        with torch.no_grad():  # softplus(bias) spread log-uniformly over [dt_min, dt_max], as in Mamba
            dt = torch.exp(torch.linspace(math.log(dt_min), math.log(dt_max), self.d_inner))
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        a = torch.arange(1, self.d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, self.d_model, bias=False)

    def _mix(self, x: torch.Tensor, state: SSMState | None, scan):
        b, n, _ = x.shape
        compute = torch.promote_types(x.dtype, torch.float32)
        if state is None:
            state = self.init_state(b, dtype=x.dtype, device=x.device)
        elif not isinstance(state, SSMState):
            raise TypeError(f"state must be an SSMState or None, got {type(state).__name__}")
        check_state_tensor("state.conv", state.conv, (b, self.d_inner, self.d_conv - 1),
                           torch.empty(0, dtype=compute, device=x.device))
        xi, z = self.in_proj(x).to(compute).chunk(2, dim=-1)
        window = torch.cat([state.conv, xi.transpose(1, 2)], dim=2)  # (b, d_inner, d_conv - 1 + n)
        xc = F.silu(F.conv1d(window, self.conv.weight.to(compute), self.conv.bias.to(compute),
                             groups=self.d_inner).transpose(1, 2))  # (b, n, d_inner)
        new_conv = window[:, :, window.shape[2] - (self.d_conv - 1):]
        dt, bm, cm = self.x_proj(xc.to(x.dtype)).to(compute).split([self.dt_rank, self.d_state, self.d_state], -1)
        delta = F.softplus(self.dt_proj(dt.to(x.dtype)).to(compute))
        a = -torch.exp(self.A_log.to(compute))
        y, h = scan(xc, delta, a, bm, cm, state.h)
        y = (y + xc * self.D.to(compute)) * F.silu(z)
        return self.out_proj(y.to(x.dtype)), SSMState(h, new_conv)

    def prefill(self, x: torch.Tensor, state: SSMState | None = None):
        check_mixer_input(x, self.d_model)
        if self.scan == "sequential":
            return self._mix(x, state, lambda *args: selective_scan_sequential(*args[:5], state=args[5]))
        return self._mix(x, state, lambda *args: selective_scan_chunked(*args[:5], chunk_size=self.chunk_size,
                                                                         state=args[5]))

    def init_state(self, batch: int, *, dtype=None, device=None) -> SSMState:
        batch = check_int("batch", batch, minimum=1)
        dtype, device = self._dtype_device(dtype, device)
        dtype = torch.promote_types(dtype, torch.float32)
        return SSMState(torch.zeros(batch, self.d_inner, self.d_state, dtype=dtype, device=device),
                        torch.zeros(batch, self.d_inner, self.d_conv - 1, dtype=dtype, device=device))

    def step(self, x_t: torch.Tensor, state: SSMState):
        check_mixer_input(x_t, self.d_model, name="x_t", ndim=2)
        if not isinstance(state, SSMState):
            raise TypeError(f"state must be an SSMState, got {type(state).__name__}")
        y, state = self._mix(x_t[:, None], state, lambda *args: selective_scan_sequential(*args[:5], state=args[5]))
        return y[:, 0], state
