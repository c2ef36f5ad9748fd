"""Llama 3's context parallelism: all-gather the K/V shards, then attend locally (no ring).

See docs/conventions.md; layouts: :mod:`.layouts`. Every rank gathers the whole K and V (in sequence
order) with one ``all_gather``, then each of its query chunks ``a`` attends, through the dispatcher's
:func:`longctx_lab.kernels.dispatch.flash_attention`, to the keys up to the chunk's end (``causal``: keys
``[0, (a + 1) c)`` with bottom-right alignment, which is exactly the causal rule for the chunk's
positions) or to all keys. One attention call per query chunk, so no LSE merge is needed and autograd
runs through the dispatcher. The backward of the gather sums every rank's ``dK``/``dV`` (``all_reduce``:
gloo has no ``reduce_scatter``) and keeps this rank's shard. Simpler than the ring, but each rank holds
the full K/V, and the gather does not overlap the attention.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from longctx_lab.distributed.layouts import check_shard_call, chunks_of_rank, chunks_per_rank, shard, unshard
from longctx_lab.kernels.dispatch import flash_attention

__all__ = ["all_gather_attention"]


class _GatherSequence(torch.autograd.Function):
    """Forward: every rank's shard, all-gathered and put in sequence order. Backward: summed, then sharded."""

    @staticmethod
    def forward(ctx, x, layout):
        world = dist.get_world_size()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.layout = layout
        return unshard(parts, layout)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return shard(grad, dist.get_rank(), dist.get_world_size(), ctx.layout), None


def all_gather_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    scale: float | None = None,
    layout: str = "plain",
) -> torch.Tensor:
    """This rank's output shard, as :func:`.ring.ring_attention` (same shapes, layouts and result), by all-gather.

    ``q``: ``(batch, heads, s, head_dim)``, ``k``/``v``: ``(batch, kv_heads, s, head_dim)``; returns
    ``(batch, heads, s, head_dim)`` in the input dtype, differentiable. Needs an initialised process group.
    """
    scale = check_shard_call("all_gather_attention", q, k, v, causal, scale, layout)
    per = chunks_per_rank(layout)
    k_all = _GatherSequence.apply(k, layout)
    v_all = _GatherSequence.apply(v, layout)
    c = q.shape[2] // per
    outs = []
    for qa, a in zip(q.chunk(per, dim=2), chunks_of_rank(dist.get_rank(), dist.get_world_size(), layout)):
        end = (a + 1) * c if causal else k_all.shape[2]
        outs.append(flash_attention(qa, k_all[:, :, :end], v_all[:, :, :end], causal=causal, scale=scale))
    return torch.cat(outs, dim=2)
