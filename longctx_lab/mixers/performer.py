"""Performer's FAVOR+ (Choromanski et al. 2021): positive orthogonal random features for softmax attention.

The softmax kernel ``exp(q . k / sqrt(d))`` is an expectation over Gaussian ``w``:
``exp(x . y) = E_w[exp(w . x - |x|^2 / 2) exp(w . y - |y|^2 / 2)]`` with ``x = q / d^(1/4)``,
``y = k / d^(1/4)``. With ``m`` samples ``w_1..w_m`` (rows of :func:`orthogonal_random_features`),
``phi(x) = exp(W x - |x|^2 / 2) / sqrt(m)`` (:func:`favor_features`) gives ``phi(q) . phi(k)`` an unbiased
estimate of the kernel that is always positive, so attention becomes linear attention over these features:
non-causal ``phi(Q) (phi(K)^T V)``, or causal by prefix sums (:mod:`longctx_lab.mixers.linear_attention`).
The rows of ``W`` are drawn in orthogonal blocks of ``d`` (QR of a Gaussian matrix) and rescaled to the norms
of Gaussian vectors, the paper's "orthogonal random features", which lowers the estimate's variance.

Shapes follow docs/conventions.md: ``q``, ``k``, ``v`` ``(batch, heads, seq, head_dim)``; ``W`` is
``(n_features, head_dim)``; features ``(batch, heads, seq, n_features)``.
"""

from __future__ import annotations

import math

import torch

from longctx_lab.attention.reference import naive_attention
from longctx_lab.core.validate import check_bool, check_int, check_qkv, check_tensor
from longctx_lab.mixers.linear_attention import LinearAttentionMixer, linear_attention_chunked

__all__ = [
    "PerformerMixer",
    "favor_features",
    "orthogonal_random_features",
    "performer_attention",
    "performer_error_vs_features",
]

_STABILISERS = ("none", "row", "tensor")


def orthogonal_random_features(n_features: int, head_dim: int, *, seed: int = 0, dtype=torch.float64,
                               device=None) -> torch.Tensor:
    """``W`` of shape ``(n_features, head_dim)``: blocks of ``head_dim`` orthogonal directions (QR of a seeded
    Gaussian matrix, signs fixed so that the directions are uniform), each row rescaled to the norm of an
    independent ``N(0, I)`` vector, so every row is marginally Gaussian while rows within a block are exactly
    orthogonal."""
    n_features = check_int("n_features", n_features, minimum=1)
    head_dim = check_int("head_dim", head_dim, minimum=1)
    seed = check_int("seed", seed)
    gen = torch.Generator().manual_seed(seed)
    blocks = []
    for _ in range(math.ceil(n_features / head_dim)):
        gaussian = torch.randn(head_dim, head_dim, generator=gen, dtype=torch.float64)
        ortho, upper = torch.linalg.qr(gaussian)
        # QR alone leaves a sign convention in Q (its rows' mean is not 0); fixing the signs of R's
        # diagonal makes Q uniformly distributed over orthogonal matrices (Mezzadri 2007)
        ortho = ortho * torch.sign(torch.diagonal(upper))
        blocks.append(ortho.T)
    w = torch.cat(blocks, dim=0)[:n_features]
    norms = torch.randn(n_features, head_dim, generator=gen, dtype=torch.float64).norm(dim=1, keepdim=True)
    return (w * norms).to(dtype=dtype, device=device)


def favor_features(x: torch.Tensor, w: torch.Tensor, *, stabiliser: str = "none") -> torch.Tensor:
    """FAVOR+ positive features ``exp(W x' - |x'|^2 / 2 - c) / sqrt(m)`` of ``x' = x / head_dim^(1/4)``.

    ``x``: ``(..., seq, head_dim)``; ``w``: ``(m, head_dim)``; returns ``(..., seq, m)``. ``c`` keeps ``exp``
    in range and cancels in attention's ratio when applied alike to a row's numerator and denominator:
    ``"row"`` subtracts each position's max (for queries only), ``"tensor"`` one max over every position of
    each leading index (for keys: one constant for all of them), ``"none"`` nothing (decode, where the keys to
    come are unknown).
    """
    check_tensor("x", x)
    check_tensor("w", w, ndim=2)
    if x.ndim < 2 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"x must end in head_dim = {w.shape[1]} (w's columns), got shape {tuple(x.shape)}")
    if stabiliser not in _STABILISERS:
        raise ValueError(f"stabiliser must be one of {_STABILISERS}, got {stabiliser!r}")
    x = x * x.shape[-1] ** -0.25
    proj = x @ w.to(x.dtype).T - (x * x).sum(-1, keepdim=True) / 2
    if stabiliser == "row":
        proj = proj - proj.amax(dim=-1, keepdim=True).detach()
    elif stabiliser == "tensor":
        proj = proj - proj.amax(dim=(-2, -1), keepdim=True).detach()
    return torch.exp(proj) / math.sqrt(w.shape[0])


def performer_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor, *,
                        causal: bool = False, chunk_size: int = 64, eps: float = 1e-6) -> torch.Tensor:
    """Softmax attention (scale ``1/sqrt(head_dim)``) estimated with FAVOR+ features of ``w``.

    ``q``, ``k``, ``v``: ``(batch, heads, seq, head_dim)`` (equal heads, no GQA); ``w``: ``(m, head_dim)``
    (:func:`orthogonal_random_features`). Non-causal: ``phi(Q) (phi(K)^T V) / (phi(Q) phi(K)^T 1 + eps)``;
    causal: the prefix-sum form, :func:`~longctx_lab.mixers.linear_attention.linear_attention_chunked` over
    the features. Returns ``(batch, heads, seq, head_dim)``.
    """
    _, heads, kv_heads, q_len, kv_len, _ = check_qkv(q, k, v)
    if heads != kv_heads or q_len != kv_len:
        raise ValueError(f"q, k and v must have the same shape, got q {tuple(q.shape)} and k {tuple(k.shape)}")
    check_bool("causal", causal)
    fq = favor_features(q, w, stabiliser="row")
    fk = favor_features(k, w, stabiliser="tensor")
    if causal:
        return linear_attention_chunked(fq, fk, v, chunk_size=chunk_size, feature_map=None, eps=eps)[0]
    kv = fk.transpose(-2, -1) @ v  # (b, h, m, d_v)
    den = fq @ fk.sum(dim=2).unsqueeze(-1)  # (b, h, seq, 1)
    return (fq @ kv) / (den + eps)


def performer_error_vs_features(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, feature_counts, *,
                                seeds=(0, 1, 2), causal: bool = False) -> list[dict]:
    """The relative error ``|Y_favor - Y_softmax|_F / |Y_softmax|_F`` of Performer's estimate against exact
    softmax attention (:func:`~longctx_lab.attention.reference.naive_attention`), both in float64, for each
    number of features in ``feature_counts`` and each seed in ``seeds``.

    ``q``, ``k``, ``v``: ``(batch, heads, seq, head_dim)``. Returns one dict per count, in the order given:
    ``{"n_features", "errors" (one per seed), "mean_error", "std_error"}`` (population std over seeds).
    """
    check_qkv(q, k, v)
    counts = [check_int("feature_counts[]", m, minimum=1) for m in feature_counts]
    seeds = [check_int("seeds[]", s) for s in seeds]
    if not counts:
        raise ValueError("feature_counts must name at least one count, got none")
    if not seeds:
        raise ValueError("seeds must name at least one seed, got none")
    q, k, v = (t.to(torch.float64) for t in (q, k, v))
    exact = naive_attention(q, k, v, causal=causal)
    norm = exact.norm()
    rows = []
    for m in counts:
        errors = []
        for seed in seeds:
            w = orthogonal_random_features(m, q.shape[-1], seed=seed, device=q.device)
            approx = performer_attention(q, k, v, w, causal=causal)
            errors.append(float((approx - exact).norm() / norm))
        mean = sum(errors) / len(errors)
        std = math.sqrt(sum((e - mean) ** 2 for e in errors) / len(errors))
        rows.append({"n_features": m, "errors": errors, "mean_error": mean, "std_error": std})
    return rows


class PerformerMixer(LinearAttentionMixer):
    """Causal multi-head Performer attention as a token mixer: :class:`LinearAttentionMixer`'s projections and
    kernels with FAVOR+ features in place of ``elu + 1``.

    ``W`` (``(n_features, head_dim)``, seeded by ``seed``, shared by the heads) is a fixed buffer, not trained.
    Keys get no stabiliser (decode cannot know the keys to come), so ``forward`` and ``step`` agree exactly.
    The decode state is ``(batch, heads, n_features, head_dim)`` plus ``(batch, heads, n_features)``.
    """

    def __init__(self, d_model: int, n_heads: int, *, n_features: int = 64, seed: int = 0, chunk_size: int = 64,
                 eps: float = 1e-6):
        super().__init__(d_model, n_heads, chunk_size=chunk_size, eps=eps)
        self.n_features = check_int("n_features", n_features, minimum=1)
        self.register_buffer("features", orthogonal_random_features(self.n_features, self.head_dim, seed=seed,
                                                                    dtype=torch.float32))

    @property
    def feature_dim(self) -> int:
        return self.n_features

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return favor_features(x, self.features, stabiliser="none")
