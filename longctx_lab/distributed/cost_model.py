"""A cost model of ring attention: per-device memory, bytes sent per layer, and when a transfer hides.

Public API (one line each):

- ``ring_memory(seq_len, world_size, *, heads, kv_heads, head_dim, batch=1, dtype="bf16", score_dtype="fp32",
  tiled=True) -> RingMemory``: bytes one device holds for one attention layer.
- ``ring_communication(seq_len, world_size, *, kv_heads, head_dim, batch=1, dtype="bf16", backward=False,
  backward_dtype=None) -> RingCommunication``: bytes and messages one device sends per layer.
- ``block_flops(block_len, *, heads, head_dim, batch=1, causal=False, backward=False) -> float``: FLOPs of one
  ring step on one device.
- ``min_block_tokens(*, flops_per_s, bandwidth, heads, kv_heads, dtype="bf16", causal=False, backward=False,
  backward_dtype=None) -> float``: c*, the fewest tokens per device for which a K/V transfer hides.
- ``overlap(block_len, *, heads, kv_heads, head_dim, flops_per_s, bandwidth, ...) -> Overlap``: both times.
- ``sweep(seq_len, world_sizes, **shape) -> list[dict]``: memory and communication vs P.
- ``article_example(...) -> dict``: the articles' 10M tokens on 256 devices.
- ``LINKS``: link bandwidth assumptions (:class:`Link`, bytes/s per direction, with provenance and source).

Conventions (see docs/conventions.md): bytes as integers, seconds, FLOPs with a multiply-add = 2, per layer and
per device. The ring is the one of :mod:`.ring`: ``P`` devices, each holding ``s = n / P`` tokens of Q, K, V and
O; in ``P`` steps each device attends its queries to one K/V block of ``s`` tokens while the next block travels
from its neighbour. A sequence that does not split evenly is padded to ``ceil(n / P)`` tokens per device
(``shard_tokens``), while ``tokens_per_device`` keeps the exact quotient.

The overlap condition. One step sends one K/V block, ``2 * batch * kv_heads * s * head_dim * b`` bytes
(``b`` bytes per element), over a link of ``bandwidth`` bytes/s, and computes attention on it,
``4 * batch * heads * head_dim * s^2 * w`` FLOPs at ``flops_per_s`` (``w`` = 1 without a mask, 1/2 for a causal
ring in the zigzag layout, where each off-diagonal step computes exactly half of the block's pairs). The transfer
hides when ``t_comm <= t_comp``, i.e.

    s >= c* = kv_heads * b * flops_per_s / (2 * heads * w * bandwidth)

``head_dim`` and ``batch`` cancel. With multi-head attention (``kv_heads = heads``), 2-byte elements and no mask,
``c* = flops_per_s / bandwidth``: the condition "block size c >= F / B" of the Ring Attention paper (Liu, Zaharia
and Abbeel 2023, "Ring Attention with Blockwise Transformers for Near-Infinite Context", arXiv 2310.01889), whose
per-step count is the same, ``4 d c^2`` FLOPs against ``4 c d`` bytes of 16-bit K and V, per head. GQA shrinks
c* by the group size, a causal mask doubles it. The backward sends K/V and dK/dV
(``2 * batch * kv_heads * s * head_dim * (b + b_grad)`` bytes) against 2.5x the forward FLOPs
(:mod:`longctx_lab.core.cost`'s convention), so ``c*_backward = kv_heads * (b + b_grad) * F / (5 * heads * w * B)``.
(:mod:`.ring` sends the dK/dV block after the step's compute, so its own backward does not hide it; the model
gives the ideal.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from longctx_lab.core.configs import H100_SXM, TPU_V5P
from longctx_lab.core.validate import check_bool, check_int, check_number, dtype_bytes

__all__ = [
    "LINKS",
    "Link",
    "Overlap",
    "RingCommunication",
    "RingMemory",
    "article_example",
    "block_flops",
    "min_block_tokens",
    "overlap",
    "ring_communication",
    "ring_memory",
    "sweep",
]


@dataclass(frozen=True)
class Link:
    """A device-to-device link as the ring uses it: ``bandwidth`` in bytes/s in one direction (a ring device
    sends to one neighbour while it receives from the other). ``provenance`` is ``"published"`` when the number
    is the vendor's, ``"inferred"`` when derived from a published one (``source`` says how)."""

    name: str
    bandwidth: float
    provenance: str
    source: str


LINKS: dict[str, Link] = {
    "nvlink-h100": Link(
        "NVLink 4 (H100 SXM), one direction", H100_SXM.nvlink_bandwidth / 2, "inferred",
        "NVIDIA H100 datasheet: 900 GB/s NVLink per GPU, both directions together; half of it each way"),
    "ici-v5p-link": Link(
        "TPU v5p ICI, one of 6 links, one direction", TPU_V5P.ici_bandwidth_bidirectional / TPU_V5P.ici_links / 2,
        "inferred",
        "Google Cloud TPU v5p documentation: 1,200 GBps bidirectional ICI per chip over a 3D torus (6 links), "
        "assumed split evenly: 1,200 / 6 / 2 = 100 GB/s per link and direction (a 1-D ring uses one link each way)"),
    "ici-v5p-chip": Link(
        "TPU v5p ICI, the whole chip, one direction", TPU_V5P.ici_bandwidth_bidirectional / 2, "inferred",
        "Google Cloud TPU v5p documentation: 1,200 GBps bidirectional per chip, half each way: an upper bound "
        "that a ring reaches only by striping each block over every link"),
    "infiniband-ndr": Link(
        "InfiniBand NDR, 400 Gb/s per GPU, one direction", 400e9 / 8, "published",
        "NVIDIA ConnectX-7 / DGX H100: one 400 Gb/s NDR port per GPU (50 GB/s each way), between nodes"),
}

_ACC_BYTES = 4  # float32: the LSE and FlashAttention's running output accumulator, max and sum


def _shape(heads, kv_heads, head_dim, batch):
    heads = check_int("heads", heads, minimum=1)
    kv_heads = check_int("kv_heads", kv_heads, minimum=1)
    if heads % kv_heads:
        raise ValueError(f"heads must be a multiple of kv_heads (grouped-query attention), got heads {heads} and "
                         f"kv_heads {kv_heads}")
    return heads, kv_heads, check_int("head_dim", head_dim, minimum=1), check_int("batch", batch, minimum=1)


def _split(seq_len, world_size):
    seq_len = check_int("seq_len", seq_len, minimum=1)
    world_size = check_int("world_size", world_size, minimum=1)
    if world_size > seq_len:
        raise ValueError(f"world_size must be <= seq_len ({seq_len}): a device needs at least one token, got "
                         f"{world_size}")
    return seq_len, world_size, -(-seq_len // world_size)


@dataclass(frozen=True)
class RingMemory:
    """Bytes one device holds for one attention layer of ring attention (forward).

    ``q``, ``o``: ``batch * heads * shard_tokens * head_dim * b``; ``k``, ``v``: the same with ``kv_heads``;
    ``kv_buffers``: two K/V blocks in flight (the one being attended and the one arriving), ``2 * (k + v)``;
    ``lse``: ``batch * heads * shard_tokens`` float32. The attention workspace, either way:
    ``tiled_workspace`` (FlashAttention-style: a float32 output accumulator plus running max and sum per query
    row, ``batch * heads * s * (head_dim + 2) * 4``, O(n/P)) or ``score_block`` (one step's scores materialised,
    ``batch * heads * s^2`` elements of ``score_dtype``, O((n/P)^2)). ``scores_all_steps``:
    ``batch * heads * s * n`` elements, every score the device computes over the P steps (n^2/P per head): a
    count of work, which no ring holds at once. ``total`` uses the tiled workspace when ``tiled``.
    """

    seq_len: int
    world_size: int
    tokens_per_device: float
    shard_tokens: int
    q: int
    k: int
    v: int
    o: int
    kv_buffers: int
    lse: int
    tiled_workspace: int
    score_block: int
    scores_all_steps: int
    tiled: bool

    @property
    def total(self) -> int:
        """Q, K, V, O, the in-flight K/V blocks, the LSE and the workspace (tiled or the score block)."""
        work = self.tiled_workspace if self.tiled else self.score_block
        return self.q + self.k + self.v + self.o + self.kv_buffers + self.lse + work

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def ring_memory(seq_len: int, world_size: int, *, heads: int, kv_heads: int, head_dim: int, batch: int = 1,
                dtype="bf16", score_dtype="fp32", tiled: bool = True) -> RingMemory:
    """Per-device bytes of one ring-attention layer with ``seq_len`` tokens over ``world_size`` devices.

    ``dtype``: Q/K/V/O elements; ``score_dtype``: the untiled score block's elements (float32 by default, as
    softmax is computed in float32). Activations of other layers, weights and gradients are not included.
    """
    seq_len, world_size, s = _split(seq_len, world_size)
    heads, kv_heads, head_dim, batch = _shape(heads, kv_heads, head_dim, batch)
    b, sb = dtype_bytes(dtype), dtype_bytes(score_dtype, "score_dtype")
    check_bool("tiled", tiled)
    q = int(batch * heads * s * head_dim * b)
    k = int(batch * kv_heads * s * head_dim * b)
    return RingMemory(
        seq_len=seq_len, world_size=world_size, tokens_per_device=seq_len / world_size, shard_tokens=s,
        q=q, k=k, v=k, o=q, kv_buffers=2 * 2 * k, lse=batch * heads * s * _ACC_BYTES,
        tiled_workspace=batch * heads * s * (head_dim + 2) * _ACC_BYTES,
        score_block=int(batch * heads * s * s * sb), scores_all_steps=int(batch * heads * s * seq_len * sb),
        tiled=tiled,
    )


@dataclass(frozen=True)
class RingCommunication:
    """Bytes and messages one device sends for one layer. ``block_bytes``: one K/V block
    (``2 * batch * kv_heads * s * head_dim * b``). Forward: ``P - 1`` blocks. Backward (zero without
    ``backward``): ``P - 1`` K/V blocks and ``P`` dK/dV blocks (they travel with the block and the last hop
    brings them home), in ``backward_dtype``, as :func:`.ring.ring_attention`'s ``stats`` count them."""

    block_bytes: int
    forward_bytes: int
    forward_messages: int
    backward_bytes: int
    backward_messages: int

    @property
    def total_bytes(self) -> int:
        return self.forward_bytes + self.backward_bytes

    def to_dict(self) -> dict:
        return {**asdict(self), "total_bytes": self.total_bytes}


def ring_communication(seq_len: int, world_size: int, *, kv_heads: int, head_dim: int, batch: int = 1,
                       dtype="bf16", backward: bool = False, backward_dtype=None) -> RingCommunication:
    """Bytes one device sends per layer; ``seq_len`` must divide by ``world_size`` (a real ring's shards).

    ``backward_dtype`` (default ``dtype``): the dtype of the K/V and dK/dV the backward ring moves;
    :mod:`.ring` runs its backward in the accumulation dtype, so pass ``"fp32"`` for its 16-bit runs.
    """
    seq_len, world_size, s = _split(seq_len, world_size)
    if seq_len % world_size:
        raise ValueError(f"seq_len must be divisible by world_size ({world_size}) for a ring's equal shards, got "
                         f"{seq_len}")
    _, kv_heads, head_dim, batch = _shape(kv_heads, kv_heads, head_dim, batch)
    check_bool("backward", backward)
    b = dtype_bytes(dtype)
    bb = b if backward_dtype is None else dtype_bytes(backward_dtype, "backward_dtype")
    block = int(2 * batch * kv_heads * s * head_dim * b)
    back_block = int(2 * batch * kv_heads * s * head_dim * bb)
    p = world_size
    return RingCommunication(
        block_bytes=block, forward_bytes=(p - 1) * block, forward_messages=p - 1,
        backward_bytes=((p - 1) + p) * back_block if backward and p > 1 else 0,
        backward_messages=(2 * p - 1) if backward and p > 1 else 0,
    )


def _work_fraction(causal: bool) -> float:
    return 0.5 if check_bool("causal", causal) else 1.0


def block_flops(block_len: int, *, heads: int, head_dim: int, batch: int = 1, causal: bool = False,
                backward: bool = False) -> float:
    """FLOPs one device spends on one ring step: ``4 * batch * heads * head_dim * block_len^2 * w`` forward
    (``w`` = 1/2 with ``causal``: a zigzag off-diagonal step), 2.5x that for the backward alone."""
    block_len = check_int("block_len", block_len, minimum=1)
    heads, _, head_dim, batch = _shape(heads, 1, head_dim, batch)
    check_bool("backward", backward)
    forward = 4 * batch * heads * head_dim * block_len**2 * _work_fraction(causal)
    return forward * 2.5 if backward else forward


def min_block_tokens(*, flops_per_s: float, bandwidth: float, heads: int, kv_heads: int, dtype="bf16",
                     causal: bool = False, backward: bool = False, backward_dtype=None) -> float:
    """c*: the fewest tokens per device (block length) for which sending a block takes no longer than its
    attention. ``flops_per_s``: achieved FLOP/s of the attention kernel; ``bandwidth``: bytes/s one way.

    Forward: ``kv_heads * b * F / (2 * heads * w * B)``; backward: ``kv_heads * (b + b_grad) * F /
    (5 * heads * w * B)`` (module docstring). A float: a block of ``ceil(c*)`` tokens hides its transfer.
    """
    f = check_number("flops_per_s", flops_per_s, exclusive_minimum=0)
    bw = check_number("bandwidth", bandwidth, exclusive_minimum=0)
    heads, kv_heads, _, _ = _shape(heads, kv_heads, 1, 1)
    check_bool("backward", backward)
    w = _work_fraction(causal)
    b = dtype_bytes(dtype)
    if not backward:
        return kv_heads * b * f / (2 * heads * w * bw)
    bb = b if backward_dtype is None else dtype_bytes(backward_dtype, "backward_dtype")
    return kv_heads * (b + bb) * f / (5 * heads * w * bw)


@dataclass(frozen=True)
class Overlap:
    """One ring step: ``t_comm`` (s) to send the block's bytes, ``t_compute`` (s) for its attention FLOPs,
    ``hidden`` when ``t_comm <= t_compute``, and ``min_block_tokens`` (c*); ``step_time`` = the larger."""

    block_len: int
    bytes_sent: int
    flops: float
    t_comm: float
    t_compute: float
    min_block_tokens: float

    @property
    def hidden(self) -> bool:
        return self.t_comm <= self.t_compute

    @property
    def step_time(self) -> float:
        return max(self.t_comm, self.t_compute)


def overlap(block_len: int, *, heads: int, kv_heads: int, head_dim: int, flops_per_s: float, bandwidth: float,
            batch: int = 1, dtype="bf16", causal: bool = False, backward: bool = False,
            backward_dtype=None) -> Overlap:
    """Times of one ring step with ``block_len`` tokens per device (see :func:`min_block_tokens`)."""
    block_len = check_int("block_len", block_len, minimum=1)
    heads, kv_heads, head_dim, batch = _shape(heads, kv_heads, head_dim, batch)
    f = check_number("flops_per_s", flops_per_s, exclusive_minimum=0)
    bw = check_number("bandwidth", bandwidth, exclusive_minimum=0)
    b = dtype_bytes(dtype)
    bb = b if backward_dtype is None else dtype_bytes(backward_dtype, "backward_dtype")
    per_elem = (b + bb) if backward else b
    sent = int(2 * batch * kv_heads * block_len * head_dim * per_elem)
    flops = block_flops(block_len, heads=heads, head_dim=head_dim, batch=batch, causal=causal, backward=backward)
    c_star = min_block_tokens(flops_per_s=f, bandwidth=bw, heads=heads, kv_heads=kv_heads, dtype=dtype,
                              causal=causal, backward=backward, backward_dtype=backward_dtype)
    return Overlap(block_len=block_len, bytes_sent=sent, flops=flops, t_comm=sent / bw, t_compute=flops / f,
                   min_block_tokens=c_star)


def sweep(seq_len: int, world_sizes, *, heads: int, kv_heads: int, head_dim: int, batch: int = 1, dtype="bf16",
          backward: bool = False) -> list[dict]:
    """Per-device memory (tiled and untiled) and bytes sent per layer for each ``P`` in ``world_sizes``.

    One dict per ``P``: ``world_size``, ``tokens_per_device``, ``memory_tiled``, ``memory_untiled``,
    ``score_block``, ``bytes_sent`` (forward, plus backward when ``backward``), ``messages``. ``P`` values that
    do not divide ``seq_len`` are an error (the ring's shards are equal).
    """
    world_sizes = list(world_sizes)
    if not world_sizes:
        raise ValueError("world_sizes must hold at least one world size, got an empty sequence")
    rows = []
    for p in world_sizes:
        shape = dict(heads=heads, kv_heads=kv_heads, head_dim=head_dim, batch=batch, dtype=dtype)
        tiled = ring_memory(seq_len, p, **shape, tiled=True)
        untiled = ring_memory(seq_len, p, **shape, tiled=False)
        comm = ring_communication(seq_len, p, kv_heads=kv_heads, head_dim=head_dim, batch=batch, dtype=dtype,
                                  backward=backward)
        rows.append({"world_size": p, "tokens_per_device": tiled.tokens_per_device, "memory_tiled": tiled.total,
                     "memory_untiled": untiled.total, "score_block": tiled.score_block,
                     "bytes_sent": comm.total_bytes,
                     "messages": comm.forward_messages + comm.backward_messages})
    return rows


ARTICLE_SEQ_LEN = 10_000_000
ARTICLE_DEVICES = 256
ARTICLE_HEADS, ARTICLE_HEAD_DIM = 16, 128  # the article's "conservative configuration" (d_k = 128, H = 16)


def article_example(*, seq_len: int = ARTICLE_SEQ_LEN, world_size: int = ARTICLE_DEVICES,
                    heads: int = ARTICLE_HEADS, kv_heads: int = ARTICLE_HEADS, head_dim: int = ARTICLE_HEAD_DIM,
                    dtype="bf16", flops_per_s: float = TPU_V5P.peak_flops_16bit,
                    link: Link = LINKS["ici-v5p-link"]) -> dict:
    """The Gemini example of How Do Production Models Handle Long Context?: 10M tokens over 256 devices, one
    layer, one sequence.

    Heads and head dim are the article's own FLOP example (16 heads of 128; it gives no KV-head count, so
    multi-head attention); the device is a TPU v5p at its published peak and ``link`` (default: one ICI link,
    one direction, :data:`LINKS`). Returns ``tokens_per_device`` (exact quotient), ``divisible``, the
    per-head element counts ``score_block_elements`` ((n/P)^2) and ``n2_over_p_elements`` (n^2/P), the
    :class:`RingMemory` tiled and untiled, :class:`RingCommunication`, c* without and with a causal mask, and
    the :class:`Overlap` of one step.
    """
    if not isinstance(link, Link):
        raise TypeError(f"link must be a Link, got {type(link).__name__}")
    seq_len, world_size, s = _split(seq_len, world_size)
    shape = dict(heads=heads, kv_heads=kv_heads, head_dim=head_dim, dtype=dtype)
    comm_len = s * world_size  # padded to equal shards
    c_star = {causal: min_block_tokens(flops_per_s=flops_per_s, bandwidth=link.bandwidth, heads=heads,
                                       kv_heads=kv_heads, dtype=dtype, causal=causal) for causal in (False, True)}
    return {
        "seq_len": seq_len, "world_size": world_size, "tokens_per_device": seq_len / world_size,
        "divisible": seq_len % world_size == 0, "shard_tokens": s,
        "score_block_elements": (seq_len / world_size) ** 2, "n2_over_p_elements": seq_len**2 / world_size,
        "memory_tiled": ring_memory(seq_len, world_size, **shape, tiled=True),
        "memory_untiled": ring_memory(seq_len, world_size, **shape, tiled=False),
        "communication": ring_communication(comm_len, world_size, kv_heads=kv_heads, head_dim=head_dim,
                                            dtype=dtype),
        "min_block_tokens": c_star[False], "min_block_tokens_causal": c_star[True],
        "overlap": overlap(s, **shape, flops_per_s=flops_per_s, bandwidth=link.bandwidth),
        "link": link, "flops_per_s": flops_per_s, "hbm_bytes": TPU_V5P.hbm_bytes,
    }
