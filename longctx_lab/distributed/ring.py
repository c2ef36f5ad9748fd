"""Ring attention: each rank holds a shard of the sequence; K/V shards travel around the ring.

See docs/conventions.md (shapes, GQA, LSE); layouts and the causal chunk rule: :mod:`.layouts`.
Call :func:`ring_attention` inside an initialised default process group (``torch.distributed``, gloo on
CPU), on every rank, with that rank's shard ``q`` ``(batch, heads, s, head_dim)`` and ``k``, ``v``
``(batch, kv_heads, s, head_dim)`` where ``s = seq_len / world_size`` (see :func:`.layouts.shard`).
It returns that rank's output shard ``(batch, heads, s, head_dim)``, differentiable in ``q``, ``k``, ``v``.

Forward: ``world_size`` steps. At step ``t`` the rank holds the K/V shard of rank ``(rank - t) % P``; it
posts a non-blocking ``isend`` of that shard to ``rank + 1`` and an ``irecv`` from ``rank - 1``, then attends
to the shard it holds (through :func:`longctx_lab.kernels.dispatch.flash_attention_with_lse`, chunk pair
by chunk pair with :func:`.layouts.pair_rule`), merges with :func:`.merge.merge_partials`, and only then
waits for the transfer: communication overlaps the local attention. ``P - 1`` K/V messages per rank.

Backward (why this design): the dispatcher's ``lse`` is not differentiable, and the merge weights depend
on it, so autograd through each block's ``out`` alone would miss a term. Instead the backward runs the ring
again with the FlashAttention-2 equations, using the *global* ``lse`` and ``delta = rowsum(dO * O)`` saved by
the forward: per block ``P = exp(S - lse)``, ``dV += P^T dO``, ``dS = P (dO V^T - delta)``,
``dQ += scale dS K``, ``dK += scale dS^T Q``. The block's ``dK``, ``dV`` travel with its ``K``, ``V`` and arrive
home after ``P`` steps. Each block's gradients come from
:func:`longctx_lab.attention.tiled.tiled_attention_backward` (given the global ``out`` and ``lse``, its
per-block result is exactly that block's share). This is exact, keeps memory at one tile's scores, and
needs no collective. The K/V
transfer overlaps the block's gradient; the ``dK``/``dV`` transfer follows it (``P`` messages of each).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from longctx_lab.attention.tiled import tiled_attention_backward
from longctx_lab.distributed.layouts import check_shard_call, chunks_of_rank, chunks_per_rank, pair_rule
from longctx_lab.distributed.merge import merge_partials
from longctx_lab.kernels.dispatch import flash_attention_with_lse

__all__ = ["ring_attention"]


def _count(stats, key: str, value: int) -> None:
    if stats is not None:
        stats[key] = stats.get(key, 0) + value


def _exchange(send: torch.Tensor, rank: int, world: int, stats=None, phase: str = "forward"):
    """Post ``isend(send -> rank + 1)`` and ``irecv(<- rank - 1)``; returns (receive buffer, requests)."""
    _count(stats, f"{phase}_messages", 1)
    _count(stats, f"{phase}_bytes", send.numel() * send.element_size())
    recv = torch.empty_like(send)
    reqs = [dist.isend(send, (rank + 1) % world), dist.irecv(recv, (rank - 1) % world)]
    return recv, reqs


def _chunks(x: torch.Tensor, n: int) -> list[torch.Tensor]:
    return list(x.chunk(n, dim=2))


def _forward(q, k, v, causal, scale, layout, rank, world, stats=None):
    per = chunks_per_rank(layout)
    mine = chunks_of_rank(rank, world, layout)
    qs = _chunks(q, per)
    outs: list = [None] * per
    lses: list = [None] * per
    kv = torch.stack([k, v]).contiguous()
    src = rank
    for t in range(world):
        recv, reqs = _exchange(kv, rank, world, stats) if t < world - 1 else (None, [])
        ks, vs = _chunks(kv[0], per), _chunks(kv[1], per)
        for i, a in enumerate(mine):
            for j, b in enumerate(chunks_of_rank(src, world, layout)):
                rule = pair_rule(a, b, causal)
                if rule == "skip":
                    continue
                c = qs[i].shape[2]
                _count(stats, "pairs", c * (c + 1) // 2 if rule == "causal" else c * c)
                o, lse = flash_attention_with_lse(qs[i], ks[j], vs[j], causal=rule == "causal", scale=scale)
                outs[i], lses[i] = merge_partials(outs[i], lses[i], o, lse)
        for r in reqs:
            r.wait()
        if recv is not None:
            kv = recv
        src = (src - 1) % world
    return torch.cat(outs, dim=2), torch.cat(lses, dim=2)


def _block_backward(q, k, v, out, do, lse, rule, scale):
    """Gradients of one (query chunk, key chunk) pair from the *global* ``out`` and ``lse`` of the query rows:
    the tiled FlashAttention-2 backward (its ``delta = rowsum(dO * O)`` is then the global one). ``k``, ``v``
    have ``kv_heads``; their gradients are summed over each group of query heads."""
    return tiled_attention_backward(q, k, v, out, lse, do, causal=rule == "causal", scale=scale)


def _backward(q, k, v, out, lse, do, causal, scale, layout, rank, world, stats=None):
    acc = lse.dtype
    q, k, v, out, do = (t.to(acc) for t in (q, k, v, out, do))
    per = chunks_per_rank(layout)
    mine = chunks_of_rank(rank, world, layout)
    qs, dos, lses, outs = _chunks(q, per), _chunks(do, per), _chunks(lse, per), _chunks(out, per)
    dqs = [torch.zeros_like(x) for x in qs]
    kv = torch.stack([k, v]).contiguous()
    dkv = torch.zeros_like(kv)
    src = rank
    for t in range(world):
        recv_kv, reqs = _exchange(kv, rank, world, stats, "backward") if t < world - 1 else (None, [])
        ks, vs = _chunks(kv[0], per), _chunks(kv[1], per)
        dks, dvs = _chunks(dkv[0], per), _chunks(dkv[1], per)
        for i, a in enumerate(mine):
            for j, b in enumerate(chunks_of_rank(src, world, layout)):
                rule = pair_rule(a, b, causal)
                if rule == "skip":
                    continue
                dq, dk, dv = _block_backward(qs[i], ks[j], vs[j], outs[i], dos[i], lses[i], rule, scale)
                dqs[i] += dq
                dks[j] += dk  # views into dkv
                dvs[j] += dv
        if world > 1:  # the block's dK/dV follow it; after the last step they reach their owner
            recv_dkv, dreqs = _exchange(dkv.contiguous(), rank, world, stats, "backward")
            for r in reqs + dreqs:
                r.wait()
            dkv = recv_dkv
            if recv_kv is not None:
                kv = recv_kv
        src = (src - 1) % world
    return torch.cat(dqs, dim=2), dkv[0], dkv[1]


class _RingAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal, scale, layout, stats):
        rank, world = dist.get_rank(), dist.get_world_size()
        out, lse = _forward(q, k, v, causal, scale, layout, rank, world, stats)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.args = (causal, scale, layout, rank, world, stats)
        return out.to(q.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _backward(q, k, v, out, lse, grad_out, *ctx.args)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None, None, None


def ring_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    scale: float | None = None,
    layout: str = "plain",
    stats: dict | None = None,
) -> torch.Tensor:
    """This rank's shard of ``softmax(scale q k^T + mask) v`` over the whole sharded sequence.

    ``q``: ``(batch, heads, s, head_dim)``, ``k``/``v``: ``(batch, kv_heads, s, head_dim)``, the rank's shard
    in ``layout`` (``"plain"`` or ``"zigzag"``, :mod:`.layouts`); returns ``(batch, heads, s, head_dim)`` in the
    input dtype (merging in float32, float64 for float64), differentiable. Needs an initialised default
    process group; every rank must call it with the same arguments. No sliding window.

    ``stats``, a dict, is incremented in place with what this rank did: ``"pairs"`` (attended query/key
    pairs per batch and head; forward FLOPs are ``4 * head_dim * batch * heads * pairs``),
    ``"forward_messages"``/``"forward_bytes"`` (``P - 1`` K/V sends) and, after ``backward``,
    ``"backward_messages"``/``"backward_bytes"`` (``P - 1`` K/V sends and ``P`` dK/dV sends).
    """
    if stats is not None and not isinstance(stats, dict):
        raise TypeError(f"stats must be a dict or None, got {type(stats).__name__}")
    scale = check_shard_call("ring_attention", q, k, v, causal, scale, layout)
    return _RingAttention.apply(q, k, v, causal, scale, layout, stats)
