"""Spawn ``world_size`` CPU processes in one gloo process group and gather what each returns.

Usable from a notebook and from tests: the start method is ``spawn`` (never fork: a forked child would
inherit the parent's threads and torch state), the rendezvous is ``tcp://127.0.0.1`` on a free port
(loopback only), and every wait is bounded by ``timeout`` seconds: the process group's own timeout (gloo
sends and receives) and the parent's deadline. A rank that raises (or dies) makes :func:`launch` stop
the other ranks and raise ``RuntimeError`` naming the rank and its traceback, without waiting for the
deadline; a run past the deadline raises ``TimeoutError``.

``fn`` must be importable by name (a module-level function), as ``spawn`` pickles it.
"""

from __future__ import annotations

import io
import queue as queue_module
import socket
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from longctx_lab.core.validate import check_bool, check_int, check_number, check_qkv, check_tensor
from longctx_lab.distributed.layouts import check_divisible, check_layout, shard, unshard

__all__ = ["ALGORITHMS", "RingCase", "free_port", "launch", "ring_attention_gathered", "run_ring_cases"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dumps(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _worker(rank, world_size, port, fn, args, timeout, results):
    try:
        torch.set_num_threads(1)
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
            timeout=timedelta(seconds=timeout),
        )
        value = fn(*args)
        results.put((rank, "ok", _dumps(value)))
    except BaseException:  # noqa: BLE001 - everything is reported to the parent
        results.put((rank, "error", traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _stop(procs) -> None:
    procs = [p for p in procs if p.pid is not None]  # a process that never started cannot be joined
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(2)
        if p.is_alive():
            p.kill()
            p.join(2)


def _dead(procs, done) -> list[int]:
    """Ranks that exited with a non-zero code before reporting."""
    return [r for r, p in enumerate(procs) if r not in done and p.exitcode not in (None, 0)]


def launch(fn, world_size: int, *, args: tuple = (), timeout: float = 60.0) -> list:
    """Run ``fn(*args)`` on ``world_size`` spawned ranks in one gloo group; returns their results by rank.

    Inside ``fn``, ``torch.distributed`` is initialised (``dist.get_rank()``, ``dist.get_world_size()``).
    Raises ``RuntimeError`` (with the rank's traceback) when a rank raises or exits without a result, and
    ``TimeoutError`` when not every rank finished within ``timeout`` seconds; the other ranks are stopped.
    """
    world_size = check_int("world_size", world_size, minimum=1)
    timeout = check_number("timeout", timeout, exclusive_minimum=0)
    if not isinstance(args, tuple):
        raise TypeError(f"args must be a tuple, got {type(args).__name__}")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = free_port()
    procs = [
        ctx.Process(target=_worker, args=(r, world_size, port, fn, args, timeout, results), daemon=True)
        for r in range(world_size)
    ]
    deadline = time.monotonic() + timeout
    done: dict[int, object] = {}
    try:
        for p in procs:
            p.start()
        while len(done) < world_size:
            try:
                rank, status, payload = results.get(timeout=0.1)
            except queue_module.Empty:
                dead = _dead(procs, done)
                if dead:
                    raise RuntimeError(
                        f"rank {dead[0]} of {world_size} exited with code {procs[dead[0]].exitcode} without a result"
                    ) from None
                if time.monotonic() > deadline:
                    missing = [r for r in range(world_size) if r not in done]
                    raise TimeoutError(
                        f"ranks {missing} of {world_size} did not finish within timeout={timeout} s"
                    ) from None
                continue
            if status == "error":  # a peer that died makes this rank raise too: name the dead one first
                grace = time.monotonic() + 1.0
                while time.monotonic() < grace and not _dead(procs, done):
                    time.sleep(0.05)
                dead = "".join(f"rank {r} of {world_size} exited with code {procs[r].exitcode} without a result; "
                               for r in _dead(procs, done))
                raise RuntimeError(f"{dead}rank {rank} of {world_size} raised:\n{payload}")
            done[rank] = torch.load(io.BytesIO(payload), weights_only=False)
    finally:
        _stop(procs)
        results.close()
    return [done[r] for r in range(world_size)]


@dataclass
class RingCase:
    """One ring-attention run on full tensors: ``q`` ``(batch, heads, seq, head_dim)``, ``k``/``v``
    ``(batch, kv_heads, seq, head_dim)``; ``grad_out`` (like ``q``, optional) is back-propagated."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    causal: bool = False
    layout: str = "plain"
    scale: float | None = None
    grad_out: torch.Tensor | None = None
    algorithm: str = "ring"  # or "allgather" (Llama 3's context parallelism, :mod:`.allgather`)


ALGORITHMS = ("ring", "allgather")


def _check_case(case: RingCase, world_size: int) -> None:
    if not isinstance(case, RingCase):
        raise TypeError(f"cases must hold RingCase objects, got {type(case).__name__}")
    _, _, _, q_len, kv_len, _ = check_qkv(case.q, case.k, case.v)
    check_bool("causal", case.causal)
    check_layout(case.layout)
    if case.algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {case.algorithm!r}")
    if q_len != kv_len:
        raise ValueError(f"q and k must have the same sequence length, got q {q_len} and k {kv_len}")
    check_divisible(q_len, world_size, case.layout)
    if case.grad_out is not None:
        check_tensor("grad_out", case.grad_out, ndim=4)
        if case.grad_out.shape != case.q.shape:
            raise ValueError(f"grad_out must have q's shape {tuple(case.q.shape)}, got {tuple(case.grad_out.shape)}")


def _run_cases_rank(cases: list[RingCase], fail_rank: int | None = None) -> list[dict]:
    from longctx_lab.distributed.allgather import all_gather_attention
    from longctx_lab.distributed.ring import ring_attention

    rank, world = dist.get_rank(), dist.get_world_size()
    if fail_rank == rank:
        raise ValueError(f"rank {rank} was asked to fail (fail_rank={fail_rank})")
    out = []
    for case in cases:
        q, k, v = (shard(t, rank, world, case.layout).requires_grad_(case.grad_out is not None)
                   for t in (case.q, case.k, case.v))
        stats: dict = {}
        if case.algorithm == "ring":
            o = ring_attention(q, k, v, causal=case.causal, scale=case.scale, layout=case.layout, stats=stats)
        else:
            o = all_gather_attention(q, k, v, causal=case.causal, scale=case.scale, layout=case.layout)
        res = {"out": o.detach(), "stats": stats}
        if case.grad_out is not None:
            o.backward(shard(case.grad_out, rank, world, case.layout))
            res.update(dq=q.grad, dk=k.grad, dv=v.grad)
        out.append(res)
    return out


def run_ring_cases(cases: list[RingCase], world_size: int, *, timeout: float = 60.0,
                   fail_rank: int | None = None) -> list[dict]:
    """Run every case in one launch of ``world_size`` ranks; per case the gathered full tensors.

    Returns one dict per case: ``"out"`` ``(batch, heads, seq, head_dim)``, and ``"dq"``, ``"dk"``, ``"dv"``
    (shapes of ``q``, ``k``, ``v``) when the case has ``grad_out``, and ``"stats"``: one dict per rank
    (see :func:`.ring.ring_attention`: attended pairs, messages and bytes sent). ``seq`` must divide into the layout's
    chunks (``ValueError`` naming ``seq_len``). ``fail_rank`` makes that rank raise (to test failures).
    """
    world_size = check_int("world_size", world_size, minimum=1)
    cases = list(cases)
    for case in cases:
        _check_case(case, world_size)
    per_rank = launch(_run_cases_rank, world_size, args=(cases, fail_rank), timeout=timeout)
    gathered = []
    for i, case in enumerate(cases):
        one = {key: unshard([per_rank[r][i][key] for r in range(world_size)], case.layout)
               for key in per_rank[0][i] if key != "stats"}
        one["stats"] = [per_rank[r][i]["stats"] for r in range(world_size)]
        gathered.append(one)
    return gathered


def ring_attention_gathered(q, k, v, *, world_size: int, causal: bool = False, layout: str = "plain",
                            scale: float | None = None, grad_out=None, algorithm: str = "ring",
                            timeout: float = 60.0) -> dict:
    """One :class:`RingCase` over ``world_size`` spawned ranks (see :func:`run_ring_cases`)."""
    case = RingCase(q, k, v, causal, layout, scale, grad_out, algorithm)
    return run_ring_cases([case], world_size, timeout=timeout)[0]

