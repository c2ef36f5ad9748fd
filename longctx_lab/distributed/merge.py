"""Merging two partial attention results ``(out, lse)`` computed over disjoint key sets.

See docs/conventions.md. With ``m = max(lse_a, lse_b)`` (max-shifted, so nothing overflows)::

    lse = m + log(exp(lse_a - m) + exp(lse_b - m))
    out = exp(lse_a - lse) * out_a + exp(lse_b - lse) * out_b

A finished partial ``(out, lse)`` is the online-softmax state ``(m=lse, l=1, acc=out)`` (its weights sum
to 1 relative to ``lse``), so this is :func:`longctx_lab.attention.online_softmax.merge_states` followed by
``finalize``; a row with ``lse = -inf`` (no key) is the identity, and two such rows give zeros and ``-inf``.
The naive ``lse_a + log(1 + exp(lse_b - lse_a))`` overflows to ``inf`` when ``lse_b - lse_a`` is large.
"""

from __future__ import annotations

import torch

from longctx_lab.attention.online_softmax import SoftmaxState, finalize, merge_states

__all__ = ["merge_partials"]


def _state(out: torch.Tensor, lse: torch.Tensor) -> SoftmaxState:
    l = torch.where(torch.isneginf(lse), torch.zeros_like(lse), torch.ones_like(lse))
    return SoftmaxState(lse, l, out.to(lse.dtype))


def merge_partials(
    out_a: torch.Tensor | None, lse_a: torch.Tensor | None, out_b: torch.Tensor, lse_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge ``(out_b, lse_b)`` into ``(out_a, lse_a)``; ``out_a is None`` means nothing seen yet.

    ``out``: ``(batch, heads, q_len, head_dim)``, ``lse``: ``(batch, heads, q_len)`` float32 or float64.
    Returns ``(out, lse)`` with ``out`` in the dtype of ``lse`` (the accumulation dtype).
    """
    if out_a is None:
        return out_b.to(lse_b.dtype), lse_b
    if lse_a.shape != lse_b.shape or out_a.shape != out_b.shape:
        raise ValueError(
            f"out_a/lse_a and out_b/lse_b must cover the same rows, got out {tuple(out_a.shape)} and "
            f"{tuple(out_b.shape)}, lse {tuple(lse_a.shape)} and {tuple(lse_b.shape)}"
        )
    out, lse = finalize(merge_states(_state(out_a, lse_a), _state(out_b, lse_b.to(lse_a.dtype))))
    return out, lse
