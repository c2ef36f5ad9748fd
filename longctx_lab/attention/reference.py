"""Naive attention: the reference every faster path in the course is checked against.

It materialises the full ``(q_len, kv_len)`` score matrix on purpose (chapter 1 measures what
that costs). Run it in float64 for a reference that is exact to ~1e-15.
"""

from __future__ import annotations

import math

import torch

from longctx_lab.attention.masks import build_mask
from longctx_lab.core.validate import check_bool, check_number, check_optional_int, check_qkv


def naive_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    window: int | None = None,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
    fully_masked: str = "error",
    return_weights: bool = False,
):
    """softmax(q k^T * scale + mask) v, computed the textbook way.

    Shapes: ``q`` is ``(batch, heads, q_len, head_dim)``; ``k`` and ``v`` are
    ``(batch, kv_heads, kv_len, head_dim)`` with ``heads`` a multiple of ``kv_heads`` (query head
    ``h`` reads KV head ``h // (heads // kv_heads)``). ``causal``/``window`` follow
    :mod:`longctx_lab.attention.masks` (bottom-right aligned when ``q_len != kv_len``); ``mask`` is
    an extra boolean mask broadcastable to ``(batch, heads, q_len, kv_len)``, ``True`` = keep.
    ``scale`` defaults to ``1/sqrt(head_dim)``.

    A query row that may see no key at all has no defined softmax. ``fully_masked="error"``
    (default) raises ``ValueError``; ``"zero"`` returns zeros for such rows (what flash-attn does).

    Returns the output ``(batch, heads, q_len, head_dim)``, and the attention weights
    ``(batch, heads, q_len, kv_len)`` too when ``return_weights=True``.
    """
    batch, heads, kv_heads, q_len, kv_len, head_dim = check_qkv(q, k, v)
    check_optional_int("window", window, minimum=1)
    check_bool("causal", causal)
    check_bool("return_weights", return_weights)
    if fully_masked not in ("error", "zero"):
        raise ValueError(f"fully_masked must be 'error' or 'zero', got {fully_masked!r}")
    scale = 1.0 / math.sqrt(head_dim) if scale is None else check_number("scale", scale, exclusive_minimum=0)

    if heads != kv_heads:
        group = heads // kv_heads
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)

    keep = build_mask(q_len, kv_len, causal=causal, window=window, device=q.device)
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"mask must be a boolean torch.Tensor, got {getattr(mask, 'dtype', type(mask))}")
        try:
            torch.broadcast_shapes(mask.shape, (batch, heads, q_len, kv_len))
        except RuntimeError:
            raise ValueError(
                f"mask must broadcast to {(batch, heads, q_len, kv_len)}, got {tuple(mask.shape)}"
            ) from None
        keep = mask if keep is None else keep & mask

    scores = torch.matmul(q, k.transpose(-2, -1)) * scale
    if keep is not None:
        keep = keep.expand(batch, heads, q_len, kv_len)
        empty_rows = ~keep.any(dim=-1)
        if bool(empty_rows.any()):
            if fully_masked == "error":
                first = tuple(int(i) for i in empty_rows.nonzero()[0])
                raise ValueError(
                    f"mask leaves {int(empty_rows.sum())} query rows with no key to attend to "
                    f"(first at batch, head, row = {first}); pass fully_masked='zero' to get zeros"
                )
        scores = scores.masked_fill(~keep, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        weights = weights.masked_fill(empty_rows[..., None], 0.0)
    else:
        weights = torch.softmax(scores, dim=-1)
    out = torch.matmul(weights, v)
    return (out, weights) if return_weights else out
