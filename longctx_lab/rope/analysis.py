"""Numbers behind the chapter-2 plots: wavelengths, which pairs each scheme interpolates, score decay.

All functions take an ``inv_freq`` tensor as returned by :mod:`longctx_lab.rope.scaling`
(``(rotary_dim // 2,)``, radians per position for each pair) and return float64 tensors or plain
Python values, ready for matplotlib. Nothing here plots.
"""

from __future__ import annotations

import math

import torch

from longctx_lab.core.validate import check_int, check_number, check_tensor
from longctx_lab.rope.rope import _check_inv_freq, apply_rope
from longctx_lab.rope.scaling import rope_frequencies

__all__ = [
    "COMPARED_SCHEMES",
    "classify_pairs",
    "compare_schemes",
    "expected_score",
    "interpolation_ratio",
    "relative_score_table",
    "roformer_decay_bound",
    "turns_in_context",
    "unseen_angle_pairs",
    "wavelengths",
]

# The schemes drawn side by side in the chapter, in reading order.
COMPARED_SCHEMES = ("default", "linear", "ntk", "dynamic", "yarn", "llama3")


def wavelengths(inv_freq: torch.Tensor) -> torch.Tensor:
    """Tokens per full turn of each pair: ``2 pi / inv_freq``."""
    return 2 * math.pi / _check_inv_freq(inv_freq).to(torch.float64)


def turns_in_context(inv_freq: torch.Tensor, context: int) -> torch.Tensor:
    """Full turns each pair makes over ``context`` positions: ``context / wavelength``.

    Pairs with fewer than one turn never showed the model a full circle during training.
    """
    context = check_int("context", context, minimum=1)
    return context / wavelengths(inv_freq)


def interpolation_ratio(inv_freq: torch.Tensor, reference_inv_freq: torch.Tensor) -> torch.Tensor:
    """How many times slower each pair turns than in ``reference_inv_freq``: ``reference / inv_freq``.

    1 means the pair is unchanged (it will *extrapolate* to new positions); ``factor`` means it is
    fully interpolated (PI-style); values between are blends.
    """
    inv_freq, reference_inv_freq = _check_inv_freq(inv_freq), _check_inv_freq(reference_inv_freq)
    if inv_freq.shape != reference_inv_freq.shape:
        raise ValueError(
            f"inv_freq and reference_inv_freq must have one shape, got {tuple(inv_freq.shape)} "
            f"and {tuple(reference_inv_freq.shape)}"
        )
    return reference_inv_freq.to(torch.float64) / inv_freq.to(torch.float64)


def classify_pairs(
    inv_freq: torch.Tensor, reference_inv_freq: torch.Tensor, factor: float, *, rtol: float = 1e-6
) -> list[str]:
    """Label each pair ``"extrapolate"`` (ratio 1), ``"interpolate"`` (ratio ``factor``) or ``"blend"``.

    The ratio is :func:`interpolation_ratio`; comparisons use relative tolerance ``rtol``. Any
    other ratio (e.g. NTK's, which is between 1 and ``factor`` for all but the first and last pair)
    is ``"blend"``.
    """
    factor = check_number("factor", factor, minimum=1.0)
    rtol = check_number("rtol", rtol, exclusive_minimum=0.0)
    ratio = interpolation_ratio(inv_freq, reference_inv_freq)
    labels = []
    for r in ratio.tolist():
        if abs(r - 1.0) <= rtol:
            labels.append("extrapolate")
        elif abs(r - factor) <= rtol * factor:
            labels.append("interpolate")
        else:
            labels.append("blend")
    return labels


def unseen_angle_pairs(
    inv_freq: torch.Tensor, reference_inv_freq: torch.Tensor, train_len: int, new_len: int
) -> torch.Tensor:
    """Boolean mask of pairs that meet rotation angles at ``new_len`` never met in training.

    In training (``reference_inv_freq``, positions ``0 .. train_len``) pair ``i`` swept the angles
    ``[0, train_len * ref_i]``. If that is a full turn or more, every angle mod ``2 pi`` was seen.
    Otherwise the pair is *unseen* when the scheme's largest angle ``new_len * inv_freq_i`` goes
    beyond the trained range (relative slack 1e-9). Plain extrapolation flags the slow pairs; PI at
    ``factor >= new_len / train_len`` flags none.
    """
    train_len = check_int("train_len", train_len, minimum=1)
    new_len = check_int("new_len", new_len, minimum=1)
    ratio = interpolation_ratio(inv_freq, reference_inv_freq)  # validates shapes
    ref = reference_inv_freq.to(torch.float64)
    trained_span = train_len * ref
    new_span = new_len * ref / ratio
    full_turn = trained_span >= 2 * math.pi
    return (~full_turn) & (new_span > trained_span * (1 + 1e-9))


def expected_score(inv_freq: torch.Tensor, distances) -> torch.Tensor:
    """Mean over pairs of ``cos(distance * inv_freq_i)``: the normalised score ``<R(m) q, R(n) q> / |q|^2``.

    For a query equal to its key, with equal energy in every pair (e.g. all ones, or the expectation
    over an isotropic random vector), the RoPE score at relative distance ``m - n`` is exactly this.
    It is 1 at distance 0 and decays (with oscillation) as the distance grows: the "long-term
    decay" of RoPE. ``distances`` has shape ``(n,)``; returns ``(n,)``.
    """
    inv_freq = _check_inv_freq(inv_freq).to(torch.float64)
    d = torch.as_tensor(distances, dtype=torch.float64)
    if d.ndim != 1:
        raise ValueError(f"distances must have shape (n,), got {tuple(d.shape)}")
    return torch.cos(d[:, None] * inv_freq).mean(dim=-1)


def roformer_decay_bound(inv_freq: torch.Tensor, distances) -> torch.Tensor:
    """RoFormer's relative upper bound on the score at each distance (Su et al., section 3.4.3).

    ``(2 / d) * sum_{j=1}^{d/2} |S_j|`` with ``S_j = sum_{k<j} exp(i * distance * theta_k)``. It
    bounds how large the score of any query/key pair (with slowly varying pair products) can be.
    ``distances`` has shape ``(n,)``; returns ``(n,)``.
    """
    inv_freq = _check_inv_freq(inv_freq).to(torch.float64)
    d = torch.as_tensor(distances, dtype=torch.float64)
    if d.ndim != 1:
        raise ValueError(f"distances must have shape (n,), got {tuple(d.shape)}")
    phases = torch.polar(torch.ones(d.numel(), inv_freq.numel(), dtype=torch.float64), d[:, None] * inv_freq)
    partial_sums = torch.cumsum(phases, dim=-1)
    return partial_sums.abs().mean(dim=-1)


def relative_score_table(q: torch.Tensor, k: torch.Tensor, inv_freq: torch.Tensor, length: int) -> torch.Tensor:
    """Scores ``<R(m) q, R(n) k>`` for all ``m, n < length``: a ``(length, length)`` float64 matrix.

    ``q`` and ``k`` are ``(head_dim,)`` vectors (halves layout). With RoPE every diagonal
    (``m - n`` fixed) is constant; the chapter contrasts this with absolute encodings.
    """
    check_tensor("q", q, ndim=1)
    check_tensor("k", k, ndim=1)
    if q.shape != k.shape:
        raise ValueError(f"q and k must have one shape, got {tuple(q.shape)} and {tuple(k.shape)}")
    length = check_int("length", length, minimum=1)
    pos = torch.arange(length)
    rq = apply_rope(q.to(torch.float64).expand(1, 1, length, -1), pos, inv_freq)[0, 0]
    rk = apply_rope(k.to(torch.float64).expand(1, 1, length, -1), pos, inv_freq)[0, 0]
    return rq @ rk.T


def compare_schemes(
    head_dim: int = 128,
    base: float = 10_000.0,
    *,
    factor: float = 8.0,
    original_max_position_embeddings: int = 4096,
    schemes=COMPARED_SCHEMES,
    seq_len: int | None = None,
) -> dict[str, tuple[torch.Tensor, float]]:
    """``{scheme: (inv_freq, attention_factor)}`` for one model and one extension, side by side.

    Every scheme targets ``factor * original_max_position_embeddings`` tokens with its usual
    parameters: PI/NTK/YaRN at ``factor``; YaRN with beta_fast 32, beta_slow 1; Llama 3 with
    low/high frequency factors 1 and 4. Dynamic NTK is evaluated at ``seq_len`` (default: the
    target length) with its own ``factor`` set to 1, so that its effective factor is
    ``seq_len / original`` (Hugging Face's dynamic ``factor`` is an extra multiplier: at the target
    length ``factor=s`` would give ``s * s - (s - 1)``, far more than ``s``). ``"longrope"`` is not
    included (it needs searched per-pair factors).
    """
    factor = check_number("factor", factor, minimum=1.0)
    original = check_int("original_max_position_embeddings", original_max_position_embeddings, minimum=1)
    target = int(round(factor * original))
    params = {
        "default": {},
        "linear": {"factor": factor},
        "ntk": {"factor": factor},
        "dynamic": {"factor": 1.0, "max_position_embeddings": original, "seq_len": seq_len or target},
        "yarn": {"factor": factor, "original_max_position_embeddings": original},
        "llama3": {
            "factor": factor, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": original,
        },
    }
    out = {}
    for name in schemes:
        if name not in params:
            raise ValueError(f"schemes entries must be among {sorted(params)}, got {name!r}")
        out[name] = rope_frequencies(name, head_dim, base, **params[name])
    return out
