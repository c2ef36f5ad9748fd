"""Attention masks as dense boolean tensors (``True`` = the query may attend to the key).

Alignment (bottom-right) and the sliding window (``p - w < j <= p``) are those of docs/conventions.md.

Each mask here is a predicate ``mask(q_idx, kv_idx)`` of :mod:`longctx_lab.attention.mask_predicates`
evaluated on every pair: the rule is written once there (full, causal and window attention in
:func:`~longctx_lab.attention.mask_predicates.band_predicate`), and the kernels evaluate the same
rule tile by tile. The predicates (also Longformer, BigBird, dilated, prefix-LM, document and axial
masks, with ``&``/``|`` combinators) are re-exported here; each one's ``.dense(q_len, kv_len)``
gives the boolean tensor with this module's alignment.
"""

from __future__ import annotations

import torch

from longctx_lab.attention.mask_predicates import (
    MaskPredicate,
    and_masks,
    attention_predicate,
    axial_predicate,
    band_predicate,
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
    sink_window_predicate,
    sliding_window_predicate,
)
from longctx_lab.core.validate import check_bool, check_int, check_optional_int

__all__ = [
    "MaskPredicate",
    "and_masks",
    "attention_predicate",
    "axial_predicate",
    "band_predicate",
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
    "sink_window_predicate",
    "sliding_window_predicate",
]


def _dense(pred: MaskPredicate, q_len: int, kv_len: int, device) -> torch.Tensor:
    """``pred`` evaluated on every (query row, key) pair: rows sit at positions ``row + kv_len - q_len``."""
    return pred.rows(kv_len - q_len, kv_len, 0, kv_len, device=device)


def causal_mask(q_len: int, kv_len: int | None = None, *, device=None) -> torch.Tensor:
    """Boolean ``(q_len, kv_len)`` mask of :func:`causal_predicate`: query at position ``p`` sees keys ``j <= p``."""
    q_len = check_int("q_len", q_len, minimum=1)
    kv_len = q_len if kv_len is None else check_int("kv_len", kv_len, minimum=1)
    return _dense(causal_predicate(), q_len, kv_len, device)


def sliding_window_mask(
    q_len: int,
    window: int,
    kv_len: int | None = None,
    *,
    causal: bool = True,
    device=None,
) -> torch.Tensor:
    """Boolean ``(q_len, kv_len)`` mask of :func:`sliding_window_predicate`.

    Causal (default): query at position ``p`` sees keys ``p - window < j <= p`` (``window`` keys,
    itself included). Bidirectional (``causal=False``): keys with ``|p - j| < window``.
    """
    q_len = check_int("q_len", q_len, minimum=1)
    kv_len = q_len if kv_len is None else check_int("kv_len", kv_len, minimum=1)
    return _dense(sliding_window_predicate(window, causal=causal), q_len, kv_len, device)


def build_mask(
    q_len: int,
    kv_len: int,
    *,
    causal: bool = False,
    window: int | None = None,
    device=None,
) -> torch.Tensor | None:
    """The dense mask of :func:`attention_predicate` for the ``causal``/``window`` arguments every
    attention function takes.

    Returns ``None`` when nothing is masked. A window without ``causal`` is bidirectional.
    """
    q_len = check_int("q_len", q_len, minimum=1)
    kv_len = check_int("kv_len", kv_len, minimum=1)
    check_bool("causal", causal)
    window = check_optional_int("window", window, minimum=1)
    if window is None and not causal:
        return None
    return _dense(attention_predicate(causal=causal, window=window), q_len, kv_len, device)
