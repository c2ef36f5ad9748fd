"""How a sequence is split over ``world_size`` ranks, and which chunk pairs a causal ring computes.

See docs/conventions.md. The sequence (dimension 2 of ``(batch, heads, seq, head_dim)``) is cut into
equal chunks:

- ``"plain"``: ``world_size`` contiguous chunks, rank ``r`` holds chunk ``r``. Under a causal mask the
  last rank attends to every earlier chunk and rank 0 only to its own: unbalanced work.
- ``"zigzag"``: ``2 * world_size`` chunks, rank ``r`` holds chunks ``r`` and ``2 * world_size - 1 - r``
  (an early and a late one), so every rank does the same causal work.

Between a query chunk ``a`` and a key chunk ``b`` of equal length (:func:`pair_rule`): without
``causal`` every pair is ``"full"``; with ``causal`` a later key chunk (``b > a``) is ``"skip"``, the
diagonal (``b == a``) is ``"causal"`` and an earlier one (``b < a``) is ``"full"``.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from longctx_lab.core.validate import check_bool, check_int, check_number, check_qkv, check_tensor

__all__ = ["LAYOUTS", "check_layout", "check_shard_call", "chunks_of_rank", "chunks_per_rank", "pair_rule", "shard",
           "unshard", "work_per_rank"]

LAYOUTS = ("plain", "zigzag")


def check_layout(layout) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return layout


def chunks_per_rank(layout: str) -> int:
    """1 for ``"plain"``, 2 for ``"zigzag"``."""
    return 1 if check_layout(layout) == "plain" else 2


def chunks_of_rank(rank: int, world_size: int, layout: str) -> tuple[int, ...]:
    """The chunk indices rank ``rank`` holds, in the order they are stored locally."""
    world_size = check_int("world_size", world_size, minimum=1)
    rank = check_int("rank", rank, minimum=0)
    if rank >= world_size:
        raise ValueError(f"rank must be < world_size ({world_size}), got {rank}")
    if check_layout(layout) == "plain":
        return (rank,)
    return (rank, 2 * world_size - 1 - rank)


def pair_rule(q_chunk: int, k_chunk: int, causal: bool) -> str:
    """``"full"``, ``"causal"`` (diagonal) or ``"skip"``: query chunk ``q_chunk`` over key chunk ``k_chunk``."""
    if not check_bool("causal", causal):
        return "full"
    if k_chunk > q_chunk:
        return "skip"
    return "causal" if k_chunk == q_chunk else "full"


def check_divisible(seq_len: int, world_size: int, layout: str) -> int:
    """Chunk length, or ``ValueError`` naming ``seq_len`` when it does not split into equal chunks."""
    seq_len = check_int("seq_len", seq_len, minimum=1)
    world_size = check_int("world_size", world_size, minimum=1)
    n = world_size * chunks_per_rank(layout)
    if seq_len % n:
        raise ValueError(
            f"seq_len must be divisible by {n} (world_size={world_size} ranks x {chunks_per_rank(layout)} chunk(s) "
            f"per rank for layout {layout!r}), got {seq_len}"
        )
    return seq_len // n


def shard(x: torch.Tensor, rank: int, world_size: int, layout: str) -> torch.Tensor:
    """Rank ``rank``'s part of ``x`` ``(batch, heads, seq, head_dim)``: its chunks along ``seq``, concatenated."""
    check_tensor("x", x, ndim=4)
    c = check_divisible(x.shape[2], world_size, layout)
    parts = [x[:, :, i * c:(i + 1) * c] for i in chunks_of_rank(rank, world_size, layout)]
    return torch.cat(parts, dim=2).contiguous()


def unshard(shards: list[torch.Tensor], layout: str) -> torch.Tensor:
    """Inverse of :func:`shard`: the full tensor from the list of every rank's shard (rank order)."""
    world_size = len(shards)
    if world_size == 0:
        raise ValueError("shards must hold one tensor per rank, got an empty list")
    per = chunks_per_rank(layout)
    c = check_divisible(shards[0].shape[2], 1, layout) if per == 2 else shards[0].shape[2]
    chunks: dict[int, torch.Tensor] = {}
    for rank, s in enumerate(shards):
        for j, idx in enumerate(chunks_of_rank(rank, world_size, layout)):
            chunks[idx] = s[:, :, j * c:(j + 1) * c]
    return torch.cat([chunks[i] for i in range(world_size * per)], dim=2)


def work_per_rank(seq_len: int, world_size: int, layout: str, *, causal: bool) -> list[int]:
    """Attended (query, key) pairs each rank computes in ring attention, per batch and head.

    A ``"causal"`` diagonal chunk of length ``c`` counts ``c (c + 1) / 2`` pairs, ``"full"`` counts ``c^2``.
    Multiply by ``4 * head_dim`` for forward FLOPs (``q k^T`` and ``p v``, 2 FLOPs per multiply-add).
    """
    c = check_divisible(seq_len, world_size, layout)
    check_bool("causal", causal)
    n_chunks = world_size * chunks_per_rank(layout)
    out = []
    for rank in range(world_size):
        pairs = 0
        for a in chunks_of_rank(rank, world_size, layout):
            for b in range(n_chunks):
                rule = pair_rule(a, b, causal)
                pairs += 0 if rule == "skip" else (c * (c + 1) // 2 if rule == "causal" else c * c)
        out.append(pairs)
    return out


def check_shard_call(name: str, q, k, v, causal, scale, layout) -> float:
    """Validate one rank's call of a sequence-parallel attention (``name``: the function, for the errors):
    ``q`` ``(batch, heads, s, head_dim)`` and ``k``/``v`` ``(batch, kv_heads, s, head_dim)`` with the same shard
    length ``s``, divisible into the layout's chunks, and an initialised default process group. Returns the
    scale (default ``1 / sqrt(head_dim)``)."""
    _, _, _, q_len, kv_len, head_dim = check_qkv(q, k, v)
    check_bool("causal", causal)
    check_layout(layout)
    scale = 1.0 / math.sqrt(head_dim) if scale is None else check_number("scale", scale, exclusive_minimum=0)
    if q_len != kv_len:
        raise ValueError(f"q and k must hold the same sequence shard length, got q {q_len} and k {kv_len}")
    per = chunks_per_rank(layout)
    if q_len % per:
        raise ValueError(f"the shard length (q.shape[2]) must be divisible by {per} for layout {layout!r}, got {q_len}")
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(f"{name} needs an initialised torch.distributed process group (see launcher.launch)")
    return scale
