"""Exact cost of masked attention: attended (query, key) pairs and FLOPs, per mask, versus ``n``.

Full, causal and sliding-window pairs are counted by :func:`longctx_lab.core.cost.attended_pairs` (one
definition, exact for any ``q_len``/``kv_len``); this module adds the patterns ``cost`` does not
cover (dilated windows, prefix LM, packed documents, axial). Its closed forms are for
self-attention over ``n`` positions (``q_len = kv_len = n``) and follow the conventions of
:mod:`longctx_lab.attention.mask_predicates`. :func:`count_pairs` counts any mask exactly by
evaluating it, one block of query rows at a time; the tests check every closed form against it.

FLOPs: one multiply-add is 2 FLOPs; ``q k^T`` and ``P v`` each cost ``2 * head_dim`` per attended
pair, so a forward pass costs ``4 * head_dim`` FLOPs per pair and head (softmax left out), the
convention of :mod:`longctx_lab.core.cost` (whose ``attended_pairs`` the tests also check against).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from longctx_lab.attention.block_sparsity import tile_counts
from longctx_lab.attention.mask_predicates import MaskPredicate, document_ids
from longctx_lab.core.cost import attended_pairs
from longctx_lab.core.validate import check_bool, check_int

__all__ = [
    "axial_pairs",
    "count_pairs",
    "flops_from_pairs",
    "pairs_dilated_window",
    "pairs_documents",
    "pairs_prefix_lm",
    "window_reduction",
]


def pairs_dilated_window(n: int, window: int, dilation: int, *, causal: bool = True) -> int:
    """Pairs of a dilated window (keys ``p - m * dilation``, ``m = 0 .. window - 1``).

    Offset ``m * dilation`` is kept by ``n - m * dilation`` queries while that is positive, so with
    ``M = min(window - 1, (n - 1) // dilation)`` the causal count is
    ``(M + 1) n - dilation M (M + 1) / 2``; the bidirectional count doubles it and removes the
    diagonal counted twice.
    """
    n = check_int("n", n, minimum=1)
    w = check_int("window", window, minimum=1)
    d = check_int("dilation", dilation, minimum=1)
    check_bool("causal", causal)
    m = min(w - 1, (n - 1) // d)
    one_side = (m + 1) * n - d * m * (m + 1) // 2
    return one_side if causal else 2 * one_side - n


def pairs_prefix_lm(n: int, prefix_len: int) -> int:
    """Prefix LM: the first ``P = min(prefix_len, n)`` rows see ``P`` keys each, later rows are
    causal: ``P^2 + (n (n + 1) - P (P + 1)) / 2``."""
    n = check_int("n", n, minimum=1)
    p = min(check_int("prefix_len", prefix_len, minimum=0), n)
    return p * p + (n * (n + 1) - p * (p + 1)) // 2


def pairs_documents(doc_lengths: Sequence[int], *, causal: bool = True) -> int:
    """Packed documents: ``sum L (L + 1) / 2`` (causal) or ``sum L^2`` (bidirectional)."""
    check_bool("causal", causal)
    lengths = torch.bincount(document_ids(doc_lengths)).tolist()
    return sum(n * (n + 1) // 2 if causal else n * n for n in lengths)


def axial_pairs(grid_rows: int, grid_cols: int) -> int:
    """Axial attention over ``n = grid_rows * grid_cols`` positions: a row pass (``grid_cols`` keys
    per query) plus a column pass (``grid_rows`` keys per query), ``n (grid_rows + grid_cols)``."""
    r = check_int("grid_rows", grid_rows, minimum=1)
    c = check_int("grid_cols", grid_cols, minimum=1)
    return r * c * (r + c)


def count_pairs(mask, q_len: int | None = None, kv_len: int | None = None, *, chunk: int = 256) -> int:
    """Exact number of ``True`` entries of a mask.

    ``mask`` is a dense boolean tensor, or a :class:`MaskPredicate` evaluated for ``q_len`` query
    rows (bottom-right aligned) against ``kv_len`` keys in ``chunk x chunk`` tiles; only the tiles
    inside the predicate's ``band`` are evaluated, so a window over a million positions is cheap.
    """
    if isinstance(mask, torch.Tensor):
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be a boolean tensor, got dtype {mask.dtype}")
        return int(mask.sum())
    if not isinstance(mask, MaskPredicate):
        raise TypeError(f"mask must be a boolean torch.Tensor or a MaskPredicate, got {type(mask).__name__}")
    if q_len is None:
        raise ValueError("q_len must be given with a MaskPredicate, got None")
    chunk = check_int("chunk", chunk, minimum=1)
    attended, _ = tile_counts(mask, chunk, chunk, q_len=q_len, kv_len=kv_len)
    return int(attended.sum())


def flops_from_pairs(pairs: int, head_dim: int, *, heads: int = 1, batch: int = 1) -> int:
    """Forward FLOPs of attention over ``pairs`` attended pairs: ``4 * head_dim * pairs * heads * batch``."""
    pairs = check_int("pairs", pairs, minimum=0)
    head_dim = check_int("head_dim", head_dim, minimum=1)
    heads = check_int("heads", heads, minimum=1)
    batch = check_int("batch", batch, minimum=1)
    return 4 * head_dim * pairs * heads * batch


def window_reduction(n: int, window: int, *, causal: bool = True) -> float:
    """How many times fewer pairs a sliding window computes than the attention it replaces:
    causal window vs causal attention (``causal=True``, what a decoder LM does), or bidirectional
    window vs full ``n^2`` attention (pairs from :func:`longctx_lab.core.cost.attended_pairs`)."""
    n = check_int("n", n, minimum=1)
    window = check_int("window", window, minimum=1)
    check_bool("causal", causal)
    return attended_pairs(n, causal=causal) / attended_pairs(n, causal=causal, window=window)
