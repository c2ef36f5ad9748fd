"""The block view of a mask: what a tiled kernel (FlashAttention, chapter 4) actually computes.

A tiled kernel walks ``(query block, key block)`` tiles of ``block_q x block_k`` pairs. For each
tile the mask decides one of three things:

* ``EMPTY`` (0): no pair of the tile is attended. The kernel skips the tile: no loads, no FLOPs.
* ``FULL`` (2): every pair is attended. The kernel computes the tile without evaluating the mask.
* ``PARTIAL`` (1): some pairs are. The kernel computes the whole tile *and* applies the mask.

So the work a kernel does is set by the number of non-empty tiles, not by the number of attended
pairs: a window of 64 keys with 128-wide tiles still pays for whole 128 x 128 tiles along the
diagonal band. Boundary tiles (when a length is not a multiple of the block size) are classified
on their valid pairs only; the kernel still computes them padded to the full block size.

Masks are given as a dense boolean ``(q_len, kv_len)`` tensor or as a
:class:`~longctx_lab.attention.mask_predicates.MaskPredicate` (evaluated one query block at a time,
so long sequences never need the dense mask). Query alignment is bottom-right as everywhere in
:mod:`longctx_lab.attention.masks`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from longctx_lab.attention.mask_predicates import MaskPredicate
from longctx_lab.core.validate import check_bool, check_int

EMPTY, PARTIAL, FULL = 0, 1, 2
TILE_NAMES = {EMPTY: "empty", PARTIAL: "partial", FULL: "full"}

__all__ = ["EMPTY", "FULL", "PARTIAL", "TILE_NAMES", "BlockStats", "block_stats", "classify_blocks", "tile_counts"]


def _mask_and_lengths(mask, q_len, kv_len) -> tuple[object, int, int]:
    if isinstance(mask, torch.Tensor):
        if mask.dtype != torch.bool or mask.ndim != 2:
            raise TypeError(f"mask must be a 2-D boolean tensor (q_len, kv_len), got {mask.dtype} {tuple(mask.shape)}")
        if q_len is not None or kv_len is not None:
            raise ValueError("q_len and kv_len come from a dense mask's shape; pass them only with a MaskPredicate")
        q_len, kv_len = mask.shape
        if q_len == 0 or kv_len == 0:
            raise ValueError(f"mask must be non-empty, got shape {tuple(mask.shape)}")
        return mask, q_len, kv_len
    if isinstance(mask, MaskPredicate):
        if q_len is None:
            raise ValueError("q_len must be given with a MaskPredicate, got None")
        q_len, kv_len = mask.check_lengths(q_len, kv_len)
        return mask, q_len, kv_len
    raise TypeError(f"mask must be a boolean torch.Tensor or a MaskPredicate, got {type(mask).__name__}")


_EVAL_BUDGET = 1 << 22  # mask entries evaluated per batch of query blocks


def _predicate_tile_counts(mask: MaskPredicate, block_q, block_k, q_len, kv_len, nqb, nkb) -> torch.Tensor:
    """Evaluate the predicate only on the key blocks its band can reach (a kernel's loop bounds),
    many query blocks per batch, and sum each tile."""
    offset = kv_len - q_len
    kb0 = torch.empty(nqb, dtype=torch.int64)
    kb1 = torch.empty(nqb, dtype=torch.int64)
    for qb in range(nqb):
        k0, k1 = mask.key_range(qb * block_q + offset, min((qb + 1) * block_q, q_len) + offset, kv_len)
        kb0[qb], kb1[qb] = k0 // block_k, -(-k1 // block_k) if k1 > k0 else k0 // block_k
    width = max(1, int((kb1 - kb0).max()))  # key blocks visited per query block
    group = max(1, _EVAL_BUDGET // (block_q * width * block_k))
    attended = torch.zeros(nqb * nkb, dtype=torch.int64)
    k_local = torch.arange(width * block_k)
    q_local = torch.arange(block_q)
    for g0 in range(0, nqb, group):
        g1 = min(g0 + group, nqb)
        qbs = torch.arange(g0, g1)
        q_pos = (qbs[:, None] * block_q + q_local[None, :])[:, :, None]  # (G, block_q, 1) row index
        k_pos = (kb0[g0:g1, None] * block_k + k_local[None, :])[:, None, :]  # (G, 1, width * block_k)
        valid = (q_pos < q_len) & (k_pos < kv_len) & (k_pos < kb1[g0:g1, None, None] * block_k)
        q_abs = (q_pos + offset).clamp(max=kv_len - 1).to(torch.int32)  # int32 halves the memory traffic
        keep = mask.evaluate(q_abs, k_pos.clamp(max=kv_len - 1).to(torch.int32)) & valid
        counts = keep.view(g1 - g0, block_q, width, block_k).sum(dim=(1, 3))  # (G, width)
        kbs = kb0[g0:g1, None] + torch.arange(width)[None, :]
        flat = qbs[:, None] * nkb + kbs.clamp(max=nkb - 1)
        attended.index_add_(0, flat.flatten(), counts.flatten())  # out-of-range blocks add 0
    return attended.view(nqb, nkb)


def tile_counts(
    mask, block_q: int, block_k: int | None = None, *, q_len: int | None = None, kv_len: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attended pairs and valid pairs per tile, both int64 ``(n_q_blocks, n_k_blocks)``.

    ``n_q_blocks = ceil(q_len / block_q)``; ``block_k`` defaults to ``block_q``.
    """
    block_q = check_int("block_q", block_q, minimum=1)
    block_k = block_q if block_k is None else check_int("block_k", block_k, minimum=1)
    mask, q_len, kv_len = _mask_and_lengths(mask, q_len, kv_len)
    nqb, nkb = -(-q_len // block_q), -(-kv_len // block_k)
    if isinstance(mask, torch.Tensor):
        padded = torch.nn.functional.pad(mask, (0, nkb * block_k - kv_len, 0, nqb * block_q - q_len))
        attended = padded.view(nqb, block_q, nkb, block_k).sum(dim=(1, 3))
    else:
        attended = _predicate_tile_counts(mask, block_q, block_k, q_len, kv_len, nqb, nkb)
    q_sizes = torch.full((nqb,), block_q, dtype=torch.int64)
    q_sizes[-1] = q_len - (nqb - 1) * block_q
    k_sizes = torch.full((nkb,), block_k, dtype=torch.int64)
    k_sizes[-1] = kv_len - (nkb - 1) * block_k
    return attended, q_sizes[:, None] * k_sizes[None, :]


def classify_blocks(
    mask, block_q: int, block_k: int | None = None, *, q_len: int | None = None, kv_len: int | None = None
) -> torch.Tensor:
    """Tile classes, int8 ``(n_q_blocks, n_k_blocks)``: ``EMPTY`` 0, ``PARTIAL`` 1, ``FULL`` 2.

    A tile is ``FULL`` when all its valid pairs (those inside ``q_len x kv_len``) are attended.
    """
    attended, valid = tile_counts(mask, block_q, block_k, q_len=q_len, kv_len=kv_len)
    out = torch.full(attended.shape, PARTIAL, dtype=torch.int8)
    out[attended == 0] = EMPTY
    out[attended == valid] = FULL
    return out


@dataclass(frozen=True)
class BlockStats:
    """What a tiled kernel does for one mask (forward pass, one batch element and head).

    FLOPs count a multiply-add as 2 and include ``q k^T`` and ``P v`` only: ``4 * head_dim`` per
    computed pair (softmax and masking are O(pairs) and left out).
    """

    block_q: int
    block_k: int
    n_empty: int
    n_partial: int
    n_full: int
    attended_pairs: int  # pairs the mask keeps: the work an ideal sparse kernel would do
    computed_pairs: int  # pairs inside non-empty tiles, padded to whole tiles: what the kernel does
    dense_pairs: int  # q_len * kv_len: what a kernel without block skipping does
    head_dim: int

    @property
    def n_tiles(self) -> int:
        return self.n_empty + self.n_partial + self.n_full

    @property
    def flops_exact(self) -> int:
        return 4 * self.head_dim * self.attended_pairs

    @property
    def flops_tiled(self) -> int:
        return 4 * self.head_dim * self.computed_pairs

    @property
    def flops_dense(self) -> int:
        return 4 * self.head_dim * self.dense_pairs

    @property
    def tile_efficiency(self) -> float:
        """attended / computed pairs: the fraction of the kernel's work that the mask keeps."""
        return self.attended_pairs / self.computed_pairs if self.computed_pairs else 1.0


def block_stats(
    mask,
    block_q: int,
    block_k: int | None = None,
    *,
    head_dim: int = 128,
    q_len: int | None = None,
    kv_len: int | None = None,
    padded: bool = True,
) -> BlockStats:
    """Count tiles by class and the pairs/FLOPs of exact, tiled and dense computation.

    ``padded=True`` counts every non-empty tile as ``block_q * block_k`` pairs (what a kernel with
    fixed block sizes computes); ``padded=False`` counts boundary tiles by their valid size.
    """
    head_dim = check_int("head_dim", head_dim, minimum=1)
    check_bool("padded", padded)
    block_q = check_int("block_q", block_q, minimum=1)
    block_k = block_q if block_k is None else check_int("block_k", block_k, minimum=1)
    attended, valid = tile_counts(mask, block_q, block_k, q_len=q_len, kv_len=kv_len)
    nonempty = attended > 0
    full = attended == valid
    area = torch.full_like(valid, block_q * block_k) if padded else valid
    return BlockStats(
        block_q=block_q,
        block_k=block_k,
        n_empty=int((~nonempty).sum()),
        n_partial=int((nonempty & ~full).sum()),
        n_full=int(full.sum()),
        attended_pairs=int(attended.sum()),
        computed_pairs=int(area[nonempty].sum()),
        dense_pairs=int(valid.sum()),
        head_dim=head_dim,
    )
