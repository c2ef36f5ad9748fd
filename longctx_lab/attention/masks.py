"""Attention masks as dense boolean tensors (``True`` = the query may attend to the key).

Alignment (bottom-right) and the sliding window (``p - w < j <= p``) are those of docs/conventions.md.

The same masks (and Longformer, BigBird, dilated, prefix-LM, document and axial masks, with ``&``/``|``
combinators) also exist as predicates ``mask(q_idx, kv_idx)``, the form kernels evaluate tile by tile:
they live in :mod:`longctx_lab.attention.mask_predicates` and are re-exported here, and each one's
``.dense(q_len, kv_len)`` gives the boolean tensor with this module's alignment.
"""

from __future__ import annotations

import torch

from longctx_lab._validate import check_bool, check_int, check_optional_int
from longctx_lab.attention.mask_predicates import (
    MaskPredicate,
    and_masks,
    axial_predicate,
    bigbird_block_layout,
    bigbird_predicate,
    causal_predicate,
    dilated_window_predicate,
    document_ids,
    document_predicate,
    full_predicate,
    longformer_predicate,
    or_masks,
    prefix_lm_predicate,
    sliding_window_predicate,
)

__all__ = [
    "MaskPredicate",
    "and_masks",
    "axial_predicate",
    "bigbird_block_layout",
    "bigbird_predicate",
    "build_mask",
    "causal_mask",
    "causal_predicate",
    "dilated_window_predicate",
    "document_ids",
    "document_predicate",
    "full_predicate",
    "longformer_predicate",
    "or_masks",
    "prefix_lm_predicate",
    "sliding_window_mask",
    "sliding_window_predicate",
]


def _positions(q_len: int, kv_len: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    q_pos = torch.arange(q_len, device=device) + (kv_len - q_len)
    k_pos = torch.arange(kv_len, device=device)
    return q_pos[:, None], k_pos[None, :]


def causal_mask(q_len: int, kv_len: int | None = None, *, device=None) -> torch.Tensor:
    """Boolean ``(q_len, kv_len)`` mask: query at position ``p`` sees keys ``j <= p``."""
    q_len = check_int("q_len", q_len, minimum=1)
    kv_len = q_len if kv_len is None else check_int("kv_len", kv_len, minimum=1)
    q_pos, k_pos = _positions(q_len, kv_len, device)
    return k_pos <= q_pos


def sliding_window_mask(
    q_len: int,
    window: int,
    kv_len: int | None = None,
    *,
    causal: bool = True,
    device=None,
) -> torch.Tensor:
    """Boolean ``(q_len, kv_len)`` sliding-window mask.

    Causal (default): query at position ``p`` sees keys ``p - window < j <= p`` (``window`` keys,
    itself included). Bidirectional (``causal=False``): keys with ``|p - j| < window``.
    """
    q_len = check_int("q_len", q_len, minimum=1)
    window = check_int("window", window, minimum=1)
    kv_len = q_len if kv_len is None else check_int("kv_len", kv_len, minimum=1)
    check_bool("causal", causal)
    q_pos, k_pos = _positions(q_len, kv_len, device)
    near = (q_pos - k_pos).abs() < window
    return near & (k_pos <= q_pos) if causal else near


def build_mask(
    q_len: int,
    kv_len: int,
    *,
    causal: bool = False,
    window: int | None = None,
    device=None,
) -> torch.Tensor | None:
    """The mask for the ``causal``/``window`` arguments every attention function takes.

    Returns ``None`` when nothing is masked. A window without ``causal`` is bidirectional.
    """
    check_bool("causal", causal)
    window = check_optional_int("window", window, minimum=1)
    if window is not None:
        return sliding_window_mask(q_len, window, kv_len, causal=causal, device=device)
    if causal:
        return causal_mask(q_len, kv_len, device=device)
    return None
