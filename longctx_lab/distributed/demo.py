"""Ring (or all-gather) attention run over P processes, per-rank time, memory and bytes sent (``longctx-lab ring``).

Public API (one line each):

- ``run_ring_demo(procs=4, seq_len=256, heads=4, kv_heads=2, head_dim=32, *, batch=1, causal=True,
  layout="zigzag", algorithm="ring", dtype="float32", backward=False, seed=0, warmup=1, reference=True,
  timeout=120.0)
  -> RingReport``: spawns ``procs`` gloo processes (:func:`.launcher.launch`), one per rank; their records.
- ``RingReport``: ``.records`` (one :class:`RankRecord` per rank), ``.max_error`` / ``.max_grad_error`` against
  float64 attention, ``.table()``, ``_repr_html_()``, ``.to_dict()``.
- ``RankRecord``: one rank's forward/backward wall time, memory, bytes and messages sent, attended pairs.
- ``RingSettings``: the validated arguments (``RingSettings(...).check()``).
- ``under_torchrun()``, ``run_under_torchrun(settings, timeout)``: this process as one rank of a torchrun group.

The command ``longctx-lab ring`` (:mod:`longctx_lab.cli.ring`) parses its flags and calls these.

Two ways to run the same command. On one machine, ``longctx-lab ring --procs 4 ...`` spawns the ranks itself
(gloo over loopback). Under ``torchrun`` (``RANK``, ``WORLD_SIZE`` and ``MASTER_ADDR`` set), each process is one
rank: it joins ``init_process_group(backend="nccl" if CUDA else "gloo", init_method="env://")``, builds the same
seeded full tensors, takes its shard, runs, and rank 0 gathers the records (``all_gather_object``) and prints::

    torchrun --nproc-per-node 4 -m longctx_lab ring --seq-len 4096 --heads 8 --kv-heads 2 --head-dim 64

Either way every rank builds the full ``q``, ``k``, ``v`` (float64, seeded, then cast to ``dtype``) and keeps
its shard (:func:`.layouts.shard`); the gathered output (and gradients, with ``backward``) is compared with
:func:`longctx_lab.attention.reference.naive_attention` in float64 over the whole sequence, on the same
(cast) inputs. Memory is reported two ways: ``peak_rss_bytes`` is the process's resident-set high-water mark
(``resource.getrusage``: the interpreter, torch, and the full tensors every rank builds, so mostly overhead at
small sizes) and ``rss_growth_bytes`` its growth during the attention calls; ``shard_bytes`` counts the bytes
of the tensors this rank holds for the computation (its q, k, v shards and output, plus their gradients);
on CUDA ``cuda_peak_bytes`` is ``torch.cuda.max_memory_allocated``. Bytes and messages are the ones
:func:`.ring.ring_attention`'s ``stats`` count; for ``allgather`` (a collective whose internal schedule is
gloo's or NCCL's) the forward's logical volume is reported instead, ``(P - 1)`` times this rank's K and V shards.
"""

from __future__ import annotations

import html
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

from longctx_lab.core.validate import check_bool, check_int, check_number
from longctx_lab.distributed.launcher import ALGORITHMS, launch
from longctx_lab.distributed.layouts import check_divisible, check_layout, chunks_of_rank, shard, unshard, work_per_rank

__all__ = ["DTYPES", "RankRecord", "RingReport", "RingSettings", "run_ring_demo", "run_under_torchrun",
           "under_torchrun"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}
# Largest accepted |ring - float64 reference| per dtype (what the distributed tests use for small sizes).
TOLERANCE = {"float32": 1e-4, "float64": 1e-10}


@dataclass(frozen=True)
class RingSettings:
    """What to run: ``procs`` ranks, one sequence batch ``(batch, heads, seq_len, head_dim)`` for q and
    ``(batch, kv_heads, seq_len, head_dim)`` for k and v. :meth:`check` validates and returns ``self``."""

    procs: int = 4
    seq_len: int = 256
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 32
    batch: int = 1
    causal: bool = True
    layout: str = "zigzag"
    algorithm: str = "ring"
    dtype: str = "float32"
    backward: bool = False
    seed: int = 0
    warmup: int = 1
    reference: bool = True  # gather the output and compare with float64 attention (O(seq_len^2) memory)

    def check(self) -> RingSettings:
        for name in ("procs", "seq_len", "heads", "kv_heads", "head_dim", "batch"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("seed", self.seed, minimum=0)
        check_int("warmup", self.warmup, minimum=0)
        check_bool("causal", self.causal)
        check_bool("backward", self.backward)
        check_bool("reference", self.reference)
        check_layout(self.layout)
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        if self.heads % self.kv_heads:
            raise ValueError(f"heads must be a multiple of kv_heads (grouped-query attention), got heads "
                             f"{self.heads} and kv_heads {self.kv_heads}")
        check_divisible(self.seq_len, self.procs, self.layout)
        return self


@dataclass(frozen=True)
class RankRecord:
    """One rank: ``chunks`` it holds, ``forward_s``/``backward_s`` wall seconds (``None`` without backward),
    ``peak_rss_bytes``, ``rss_growth_bytes``, ``shard_bytes``, ``cuda_peak_bytes`` (``None`` on CPU),
    ``bytes_sent`` and ``messages`` (forward + backward; ``forward_bytes`` and ``backward_bytes`` apart),
    ``pairs`` (attended (query, key) pairs per batch and head, forward), ``counted`` (False: the logical
    all-gather volume, not counted sends)."""

    rank: int
    chunks: tuple[int, ...]
    forward_s: float
    backward_s: float | None
    peak_rss_bytes: int
    rss_growth_bytes: int
    shard_bytes: int
    cuda_peak_bytes: int | None
    bytes_sent: int | None
    messages: int | None
    pairs: int
    counted: bool
    forward_bytes: int | None = None
    backward_bytes: int | None = None


@dataclass(repr=False)
class RingReport:
    """Every rank's :class:`RankRecord` and the error of the gathered result against float64 attention (prints
    as :meth:`table`; a notebook shows the HTML table)."""

    settings: RingSettings
    mode: str
    device: str
    records: list[RankRecord]
    max_error: float | None
    max_grad_error: float | None = None
    reference: str = "float64 naive attention over the whole sequence (longctx_lab.attention.reference)"
    notes: list[str] = field(default_factory=list)

    @property
    def tolerance(self) -> float:
        return TOLERANCE[self.settings.dtype]

    @property
    def ok(self) -> bool:
        """Every error within :data:`TOLERANCE` for the dtype (True when no reference was computed)."""
        if self.max_error is None:
            return True
        errors = [self.max_error] + ([] if self.max_grad_error is None else [self.max_grad_error])
        return all(e <= self.tolerance for e in errors)

    def to_dict(self) -> dict:
        return {"settings": asdict(self.settings), "mode": self.mode, "device": self.device,
                "records": [asdict(r) for r in self.records], "max_error": self.max_error,
                "max_grad_error": self.max_grad_error, "tolerance": self.tolerance, "ok": self.ok,
                "reference": self.reference, "notes": self.notes}

    def header(self) -> str:
        s = self.settings
        per = s.seq_len // s.procs
        return (f"{s.algorithm} attention on {s.procs} ranks ({self.mode}, {self.device}): seq_len {s.seq_len:,} "
                f"({per:,} per rank, layout {s.layout}), batch {s.batch}, {s.heads} heads / {s.kv_heads} KV heads "
                f"of {s.head_dim}, {'causal' if s.causal else 'no mask'}, {s.dtype}, "
                f"{'forward + backward' if s.backward else 'forward'}, seed {s.seed}")

    _COLUMNS = ("rank", "chunks", "forward ms", "backward ms", "peak RSS MiB", "RSS growth MiB", "shard KiB",
                "CUDA peak MiB", "sent KiB", "messages", "pairs")

    def rows(self) -> list[tuple[str, ...]]:
        def opt(x, fmt):
            return "-" if x is None else fmt(x)

        out = []
        for r in self.records:
            sent = opt(r.bytes_sent, lambda b: f"{b / 1024:,.1f}") + ("" if r.counted else " (logical)")
            out.append((str(r.rank), ",".join(map(str, r.chunks)), f"{r.forward_s * 1e3:.2f}",
                        opt(r.backward_s, lambda t: f"{t * 1e3:.2f}"), f"{r.peak_rss_bytes / 2**20:,.1f}",
                        f"{r.rss_growth_bytes / 2**20:,.1f}", f"{r.shard_bytes / 1024:,.1f}",
                        opt(r.cuda_peak_bytes, lambda b: f"{b / 2**20:,.1f}"), sent, opt(r.messages, str),
                        f"{r.pairs:,}"))
        return out

    def footer(self) -> list[str]:
        if self.max_error is None:
            return ["no reference check (--no-check): the output was not gathered", *self._memory_note(),
                    *self.notes]
        lines = [f"max |out - reference| = {self.max_error:.3g}"
                 + ("" if self.max_grad_error is None else f", max |grad - reference| = {self.max_grad_error:.3g}")
                 + f" (tolerance {self.tolerance:g} for {self.settings.dtype}: {'ok' if self.ok else 'FAILED'})",
                 f"reference: {self.reference}"]
        return lines + self._memory_note() + self.notes

    @staticmethod
    def _memory_note() -> list[str]:
        return ["memory: peak RSS = the process's high-water mark (ru_maxrss: interpreter, torch and the full seeded "
                "tensors each rank builds); RSS growth = its rise during the attention calls; shard = bytes of "
                "this rank's q, k, v shards, output and gradients"]

    def __repr__(self) -> str:
        return self.table()

    def table(self) -> str:
        rows = [self._COLUMNS, *self.rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self._COLUMNS))]
        body = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
        return "\n".join([self.header(), *body, *self.footer()])

    def __str__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self._COLUMNS)
        body = "".join("<tr>" + "".join(f"<td style='text-align:right'>{html.escape(c)}</td>" for c in r) + "</tr>"
                       for r in self.rows())
        foot = "".join(f"<p>{html.escape(line)}</p>" for line in self.footer())
        return f"<p>{html.escape(self.header())}</p><table><tr>{head}</tr>{body}</table>{foot}"


def _full_tensors(st: RingSettings) -> dict[str, torch.Tensor]:
    """The seeded full q, k, v (and, with ``backward``, grad_out ``"do"``) every rank builds identically: float64
    draws, in that order, cast to ``dtype``."""
    g = torch.Generator().manual_seed(st.seed)
    qs, kvs = (st.batch, st.heads, st.seq_len, st.head_dim), (st.batch, st.kv_heads, st.seq_len, st.head_dim)
    shapes = {"q": qs, "k": kvs, "v": kvs, "do": qs} if st.backward else {"q": qs, "k": kvs, "v": kvs}
    return {name: torch.randn(*shape, generator=g, dtype=torch.float64).to(DTYPES[st.dtype])
            for name, shape in shapes.items()}


def _max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # bytes on macOS, KiB on Linux


def _device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rank_run(st: RingSettings) -> dict:
    """One rank's run inside an initialised process group; returns its record (a dict) and its shards (CPU)."""
    from longctx_lab.distributed.allgather import all_gather_attention
    from longctx_lab.distributed.ring import ring_attention

    rank, world = dist.get_rank(), dist.get_world_size()
    device = _device()
    full = _full_tensors(st)
    rss_before = _max_rss_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    q, k, v = (shard(full[n], rank, world, st.layout).to(device).requires_grad_(st.backward) for n in "qkv")
    do = shard(full["do"], rank, world, st.layout).to(device) if st.backward else None
    del full

    def attend(stats):
        if st.algorithm == "ring":
            return ring_attention(q, k, v, causal=st.causal, layout=st.layout, stats=stats)
        return all_gather_attention(q, k, v, causal=st.causal, layout=st.layout)

    for _ in range(st.warmup):  # the first call pays one-time costs (a first autograd backward: ~2 s on CPU)
        o = attend({})
        if st.backward:
            o.backward(do)
            q.grad = k.grad = v.grad = None
    stats: dict = {}
    dist.barrier()
    t0 = time.perf_counter()
    out = attend(stats)
    _sync(device)
    forward_s = time.perf_counter() - t0
    backward_s = None
    if st.backward:
        dist.barrier()
        t0 = time.perf_counter()
        out.backward(do)
        _sync(device)
        backward_s = time.perf_counter() - t0
    held = [q, k, v, out] + ([q.grad, k.grad, v.grad] if st.backward else [])
    if st.algorithm == "ring":
        bytes_sent = stats.get("forward_bytes", 0) + stats.get("backward_bytes", 0)
        messages = stats.get("forward_messages", 0) + stats.get("backward_messages", 0)
        pairs, counted = stats.get("pairs", 0), True
        forward_bytes = stats.get("forward_bytes", 0)
        backward_bytes = stats.get("backward_bytes", 0) if st.backward else None
    else:
        bytes_sent = (world - 1) * (k.numel() * k.element_size() + v.numel() * v.element_size())
        forward_bytes, backward_bytes = bytes_sent, None
        messages, counted = None, False
        pairs = work_per_rank(st.seq_len, world, st.layout, causal=st.causal)[rank]
    rss_after = _max_rss_bytes()
    record = RankRecord(
        rank=rank, chunks=chunks_of_rank(rank, world, st.layout), forward_s=forward_s, backward_s=backward_s,
        peak_rss_bytes=rss_after, rss_growth_bytes=rss_after - rss_before,
        shard_bytes=sum(t.numel() * t.element_size() for t in held),
        cuda_peak_bytes=torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        bytes_sent=bytes_sent, messages=messages, pairs=pairs, counted=counted, forward_bytes=forward_bytes,
        backward_bytes=backward_bytes,
    )
    result = {"record": asdict(record)}
    if st.reference:
        result["out"] = out.detach().cpu()
    if st.backward and st.reference:
        result.update(dq=q.grad.cpu(), dk=k.grad.cpu(), dv=v.grad.cpu())
    return result


def _reference(st: RingSettings) -> dict[str, torch.Tensor]:
    from longctx_lab.attention.reference import naive_attention

    full = {n: t.to(torch.float64) for n, t in _full_tensors(st).items()}
    q, k, v = (full[n].requires_grad_(st.backward) for n in "qkv")
    out = naive_attention(q, k, v, causal=st.causal)
    ref = {"out": out.detach()}
    if st.backward:
        out.backward(full["do"])
        ref.update(dq=q.grad, dk=k.grad, dv=v.grad)
    return ref


def _report(st: RingSettings, per_rank: list[dict], mode: str, device: str) -> RingReport:
    err: dict = {"out": None}
    if st.reference:
        ref = _reference(st)
        got = {key: unshard([r[key] for r in per_rank], st.layout).to(torch.float64) for key in ref}
        err = {key: float((got[key] - ref[key]).abs().max()) for key in ref}
    records = []
    for r in per_rank:
        rec = dict(r["record"])
        rec["chunks"] = tuple(rec["chunks"])
        records.append(RankRecord(**rec))
    notes = []
    if st.algorithm == "allgather":
        notes.append("allgather: bytes are the forward's logical volume, (P - 1) x this rank's K and V shards; "
                     "gloo/NCCL choose how the collective moves them")
    return RingReport(settings=st, mode=mode, device=device, records=records, max_error=err["out"],
                      max_grad_error=max((err[k] for k in ("dq", "dk", "dv") if k in err), default=None),
                      notes=notes)


def run_ring_demo(procs: int = 4, seq_len: int = 256, heads: int = 4, kv_heads: int = 2, head_dim: int = 32, *,
                  batch: int = 1, causal: bool = True, layout: str = "zigzag", algorithm: str = "ring",
                  dtype: str = "float32", backward: bool = False, seed: int = 0, warmup: int = 1,
                  reference: bool = True, timeout: float = 120.0) -> RingReport:
    """Run ring (or all-gather) attention on ``procs`` spawned CPU processes (gloo) and report every rank.

    Shapes: q ``(batch, heads, seq_len, head_dim)``, k/v ``(batch, kv_heads, seq_len, head_dim)``; ``seq_len``
    must split into ``procs`` (``"plain"``) or ``2 * procs`` (``"zigzag"``) equal chunks. ``timeout`` bounds the
    whole launch in seconds (``TimeoutError`` past it; ``RuntimeError`` with the traceback if a rank fails).
    ``warmup`` untimed runs come first on every rank (their sends are not counted). From a script, call it
    under ``if __name__ == "__main__":`` (the ranks are started with ``spawn``, which re-imports the script).
    Returns a :class:`RingReport` (``.table()``, ``.max_error``). Bad arguments raise ``ValueError``/``TypeError``.
    """
    st = RingSettings(procs=procs, seq_len=seq_len, heads=heads, kv_heads=kv_heads, head_dim=head_dim, batch=batch,
                      causal=causal, layout=layout, algorithm=algorithm, dtype=dtype, backward=backward,
                      seed=seed, warmup=warmup, reference=reference).check()
    timeout = check_number("timeout", timeout, exclusive_minimum=0)
    per_rank = launch(_rank_run, st.procs, args=(st,), timeout=timeout)
    return _report(st, per_rank, mode="spawned processes, gloo over loopback", device="cpu")


def under_torchrun() -> bool:
    """True when ``RANK``, ``WORLD_SIZE`` and ``MASTER_ADDR`` are set (torchrun, or a launcher like it)."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR"))


def run_under_torchrun(st_args: dict, timeout: float) -> RingReport | None:
    """This process as one rank of an ``env://`` group; rank 0 returns the report, the others ``None``."""
    world = int(os.environ["WORLD_SIZE"])
    procs = st_args.pop("procs")
    if procs is not None and procs != world:
        raise ValueError(f"--procs must equal torchrun's WORLD_SIZE ({world}) or be left out, got {procs}")
    st = RingSettings(procs=world, **st_args).check()
    cuda = torch.cuda.is_available()
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend, init_method="env://", timeout=timedelta(seconds=timeout))
    try:
        result = _rank_run(st)
        gathered: list = [None] * world
        dist.all_gather_object(gathered, result)
        if dist.get_rank() != 0:
            return None
        device = torch.cuda.get_device_name() if cuda else "cpu"
        nodes = os.environ.get("GROUP_WORLD_SIZE") or os.environ.get("NNODES") or "?"
        return _report(st, gathered, mode=f"torchrun env://, {backend}, {world} ranks, nodes {nodes}", device=device)
    finally:
        dist.destroy_process_group()
