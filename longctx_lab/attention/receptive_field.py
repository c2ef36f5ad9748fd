"""Receptive field through depth: which input positions can influence output ``i`` after ``L`` layers.

One attention layer with mask ``M`` lets output ``i`` read inputs ``j`` with ``M[i, j]``. Stacking
layers composes the masks: after ``L`` layers, ``i`` depends on ``j`` exactly when there is a chain
``i = p_L -> p_{L-1} -> ... -> p_0 = j`` with every hop allowed, i.e. ``(M^L)[i, j] > 0`` in
boolean matrix algebra. Residual connections add the identity hop ``i -> i``; masks that keep the
diagonal (causal, windows) already contain it.

For the causal window ``p - w < j <= p`` each hop moves back at most ``w - 1`` positions, so after
``L`` layers output ``p`` depends on inputs ``max(0, p - L (w - 1)) .. p``: a span of
``L (w - 1) + 1`` positions (not ``L w``). Mistral's paper writes its window as "positions
``i - W`` to ``i``" (``W + 1`` keys), for which the same argument gives ``L W + 1``.

The span is where influence is *possible*. How much a distant input actually matters is measured
here by gradients through a random-weight stack (:func:`gradient_influence`): influence is exactly
zero outside the span and, inside it, concentrated near the query, so the effective range
(:func:`effective_range`) is much shorter than the span.
"""

from __future__ import annotations

import math

import torch

from longctx_lab.attention.reference import naive_attention
from longctx_lab.core.validate import check_int, check_number

__all__ = [
    "effective_range",
    "gradient_influence",
    "reachability",
    "receptive_field_bounds",
    "receptive_field_size",
]


def receptive_field_size(window: int, layers: int) -> int:
    """Inputs one output can depend on after ``layers`` causal-window layers, far from the start of
    the sequence: ``layers * (window - 1) + 1`` (window convention ``p - window < j <= p``)."""
    window = check_int("window", window, minimum=1)
    layers = check_int("layers", layers, minimum=1)
    return layers * (window - 1) + 1


def receptive_field_bounds(position: int, window: int, layers: int) -> tuple[int, int]:
    """First and last input position (inclusive) that output ``position`` depends on after
    ``layers`` causal-window layers: ``(max(0, position - layers * (window - 1)), position)``."""
    position = check_int("position", position, minimum=0)
    window = check_int("window", window, minimum=1)
    layers = check_int("layers", layers, minimum=1)
    return max(0, position - layers * (window - 1)), position


def _check_square_mask(mask) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"mask must be a boolean torch.Tensor, got {getattr(mask, 'dtype', type(mask).__name__)}")
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1] or mask.shape[0] == 0:
        raise ValueError(f"mask must be a square non-empty (n, n) self-attention mask, got shape {tuple(mask.shape)}")
    return mask


def reachability(mask: torch.Tensor, layers: int, *, residual: bool = True) -> torch.Tensor:
    """Exact dependence after each depth: boolean ``(layers, n, n)``; entry ``[l, i, j]`` says output
    ``i`` of layer ``l + 1`` can depend on input ``j``.

    ``mask`` is the square ``(n, n)`` boolean mask used by every layer; ``residual=True`` adds the
    identity hop of a residual connection. Computed by repeated boolean matrix products.
    """
    mask = _check_square_mask(mask)
    layers = check_int("layers", layers, minimum=1)
    if not isinstance(residual, bool):
        raise TypeError(f"residual must be a bool, got {type(residual).__name__} {residual!r}")
    hop = mask | torch.eye(mask.shape[0], dtype=torch.bool, device=mask.device) if residual else mask
    hop_f = hop.to(torch.float64)
    out = torch.empty((layers, *mask.shape), dtype=torch.bool, device=mask.device)
    cur = hop_f
    out[0] = hop
    for layer in range(1, layers):
        cur = ((cur @ hop_f) > 0).to(torch.float64)
        out[layer] = cur > 0
    return out


def _rms_norm(x: torch.Tensor) -> torch.Tensor:
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + 1e-6)


def gradient_influence(
    mask: torch.Tensor,
    layers: int,
    query: int,
    *,
    d_model: int = 16,
    heads: int = 2,
    seed: int = 0,
) -> torch.Tensor:
    """Measured influence of every input position on output ``query``, after each depth.

    Builds a pre-norm transformer stack with random float64 weights (``layers`` blocks of masked
    multi-head attention + a tanh MLP, each with a residual connection; every layer uses ``mask``)
    and feeds it random inputs ``x`` of shape ``(n, d_model)``. For each depth ``l`` it returns the
    norm over features of ``d (r . h_l[query]) / d x[j]`` for a fixed random direction ``r``.

    Returns float64 ``(layers, n)``. An entry is exactly 0 when no path connects ``j`` to
    ``query`` (masked weights are exact zeros), and non-zero (with probability 1) otherwise.
    """
    mask = _check_square_mask(mask)
    layers = check_int("layers", layers, minimum=1)
    n = mask.shape[0]
    query = check_int("query", query, minimum=0)
    if query >= n:
        raise ValueError(f"query must be a position < n={n}, got {query}")
    d_model = check_int("d_model", d_model, minimum=1)
    heads = check_int("heads", heads, minimum=1)
    if d_model % heads:
        raise ValueError(f"d_model must be a multiple of heads={heads}, got {d_model}")
    seed = check_int("seed", seed)
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64) / math.sqrt(shape[0])

    x = torch.randn(n, d_model, generator=gen, dtype=torch.float64, requires_grad=True)
    direction = torch.randn(d_model, generator=gen, dtype=torch.float64)
    hd = d_model // heads
    h = x
    readouts = []
    for _ in range(layers):
        wq, wk, wv, wo = (rand(d_model, d_model) for _ in range(4))
        w1, w2 = rand(d_model, 4 * d_model), rand(4 * d_model, d_model)
        a = _rms_norm(h)

        def split(t):
            return t.view(n, heads, hd).transpose(0, 1)[None]  # (1, heads, n, hd)

        att = naive_attention(split(a @ wq), split(a @ wk), split(a @ wv), mask=mask)
        h = h + att[0].transpose(0, 1).reshape(n, d_model) @ wo
        h = h + torch.tanh(_rms_norm(h) @ w1) @ w2
        readouts.append(h[query] @ direction)
    out = torch.empty(layers, n, dtype=torch.float64)
    for layer, r in enumerate(readouts):
        (g,) = torch.autograd.grad(r, x, retain_graph=layer < layers - 1)
        out[layer] = g.norm(dim=-1)
    return out


def effective_range(influence: torch.Tensor, query: int, *, mass: float = 0.9) -> int:
    """Smallest ``r`` such that inputs at distance ``|query - j| < r`` hold at least ``mass`` of the
    total influence (``influence`` is one row ``(n,)`` of :func:`gradient_influence`)."""
    if not isinstance(influence, torch.Tensor) or influence.ndim != 1 or not influence.is_floating_point():
        raise TypeError("influence must be a 1-D floating-point tensor (one row of gradient_influence)")
    n = influence.shape[0]
    query = check_int("query", query, minimum=0)
    if query >= n:
        raise ValueError(f"query must be a position < n={n}, got {query}")
    mass = check_number("mass", mass, exclusive_minimum=0, maximum=1)
    if bool((influence < 0).any()) or not bool(torch.isfinite(influence).all()):
        raise ValueError("influence must be finite and >= 0")
    total = float(influence.sum())
    if total == 0:
        raise ValueError("influence must not be all zeros")
    dist = (torch.arange(n) - query).abs()
    by_dist = torch.zeros(n, dtype=torch.float64).index_add_(0, dist, influence.to(torch.float64))
    cum = torch.cumsum(by_dist, 0)
    return int((cum >= mass * total * (1 - 1e-12)).nonzero()[0]) + 1
