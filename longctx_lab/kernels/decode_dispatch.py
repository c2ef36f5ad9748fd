"""``decode_attention``: one decode step over a KV cache, flash-decoding in Triton on a GPU, PyTorch elsewhere.

The queries of each sequence are its **last** ``q_len`` positions (the token just decoded, or a few
speculative / chunked tokens), whose keys and values are already in the cache; sequence ``b`` holds
``lengths[b]`` tokens. Shapes, GQA mapping (``h // group``), bottom-right alignment, windows, the LSE,
rows that see no key and NaN follow docs/conventions.md. What is particular to decoding:

- ``q`` ``(batch, heads, q_len, head_dim)`` with ``1 <= q_len <=`` :data:`MAX_DECODE_Q_LEN`; query ``i`` of
  sequence ``b`` sits at ``p = lengths[b] - q_len + i``. Attention is always causal (keys ``j <= p``);
  ``window=w`` keeps ``p - w < j <= p`` (a single decode query sees the last ``w`` keys).
- Contiguous cache: ``k``, ``v`` ``(batch, kv_heads, max_len, head_dim)``, sequence ``b``'s keys
  ``k[b, :, :lengths[b]]`` (what :class:`longctx_lab.kvcache.ContiguousKVCache` holds as ``k``/``v``).
- Paged cache (``block_table`` given): ``k``, ``v`` are pools ``(num_blocks, kv_heads, block_size, head_dim)``,
  ``block_table`` ``(batch, max_blocks)`` int32 on the pools' device, key ``j`` of sequence ``b`` at
  ``k[block_table[b, j // block_size], :, j % block_size]`` (:class:`longctx_lab.kvcache.PagedKVCache`'s
  ``k_pool``, ``v_pool``, ``block_table``). Only the first ``ceil(lengths[b] / block_size)`` entries of a row
  are read (they must be block numbers); the rest may be anything (``-1`` padding).
- ``lengths``: ``(batch,)`` integers (a tensor on any device, or a list), ``0 <= lengths[b] <=`` the cache's
  capacity (``max_len``, or ``max_blocks * block_size``). A query with ``p < 0`` (``q_len > lengths[b]``,
  e.g. an empty slot with length 0) sees no key: output zeros, LSE ``-inf``. The values are checked, so
  lengths or a block table on the GPU cost one device synchronisation; pass ``lengths`` on the CPU (as the
  caches keep them) to avoid it for the lengths.
- any ``head_dim >= 1``: up to 256 (:data:`~longctx_lab.kernels.config.MAX_TRITON_HEAD_DIM`) on the Triton path,
  in tiles padded to the next power of two; past it ``backend="auto"`` runs the PyTorch path and ``"triton"``
  raises (the dispatcher's policy). Dtypes float16, bfloat16, float32, and float64 on the PyTorch path.
  ``scale`` defaults to ``1 / sqrt(head_dim)`` (the true head dim).
- ``num_splits``: how many parts each sequence's keys are cut into on the Triton path (default: the
  heuristic :func:`longctx_lab.kernels.decode.choose_num_splits`); the result does not depend on it beyond
  rounding. The PyTorch path ignores it.
- Not differentiable (inference): the outputs carry no autograd graph.

Backends as in :mod:`longctx_lab.kernels.dispatch` (the same :func:`~longctx_lab.kernels.dispatch.select_backend`
and errors): compiled Triton on CUDA, the Triton interpreter on CPU under ``TRITON_INTERPRET=1``, else
(and for float64) the tiled PyTorch path, :func:`longctx_lab.attention.tiled.tiled_attention_forward` per
group of sequences of one length, over the gathered keys.
"""

from __future__ import annotations

import math

import torch

from longctx_lab.attention.tiled import tiled_attention_forward
from longctx_lab.core.validate import check_int, check_number, check_optional_int, check_qkv, check_tensor
from longctx_lab.kernels.dispatch import BACKENDS, SUPPORTED_DTYPES, select_backend

try:  # triton is an optional dependency (extras "gpu" and "dev")
    from longctx_lab.kernels import decode as _decode
except ImportError:  # pragma: no cover - exercised only where triton is missing
    _decode = None

__all__ = ["MAX_DECODE_Q_LEN", "decode_attention", "decode_attention_with_lse"]

#: Most queries per sequence in one decode call: a decode step, or a few speculative / chunked tokens.
#: Longer chunks are prefill: use :func:`longctx_lab.kernels.dispatch.flash_attention`.
MAX_DECODE_Q_LEN = 64
#: Most splits per sequence (:data:`longctx_lab.kernels.decode.MAX_SPLITS`, repeated so this module needs no triton).
MAX_NUM_SPLITS = 128


def _check_lengths(lengths, batch: int, device: torch.device) -> torch.Tensor:
    """``lengths`` as a 1-D int64 tensor on its own device (a list becomes a CPU tensor)."""
    if isinstance(lengths, (list, tuple)):
        lengths = torch.tensor([check_int(f"lengths[{i}]", x) for i, x in enumerate(lengths)], dtype=torch.long)
    if not isinstance(lengths, torch.Tensor):
        raise TypeError(f"lengths must be a 1-D integer tensor or a list of ints, got {type(lengths).__name__}")
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be an integer tensor, got dtype {lengths.dtype}")
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},), one length per sequence of q, "
                         f"got {tuple(lengths.shape)}")
    if lengths.device.type != "cpu" and lengths.device != device:
        raise ValueError(f"lengths must be on the CPU or on q's device {device}, got {lengths.device}")
    return lengths.long()


def _validate(q, k, v, lengths, block_table, window, scale, num_splits, backend):
    """Check everything; returns ``(lengths as a CPU list, window, scale, num_splits)``."""
    check_tensor("q", q, ndim=4)
    if block_table is None:
        check_qkv(q, k, v)  # contiguous: k, v (batch, kv_heads, max_len, head_dim)
        capacity = k.shape[2]
    else:
        for name, t in (("k", k), ("v", v)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
            if t.ndim != 4:
                raise ValueError(f"{name} must have 4 dimensions (num_blocks, kv_heads, block_size, head_dim) with "
                                 f"block_table, got shape {tuple(t.shape)}")
        for name, t in (("q", q), ("k", k), ("v", v)):
            if not t.is_floating_point():
                raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
        if k.shape != v.shape:
            raise ValueError(f"k and v must have the same shape, got k {tuple(k.shape)} and v {tuple(v.shape)}")
        if q.dtype != k.dtype or q.dtype != v.dtype:
            raise TypeError(f"q, k and v must share one dtype, got q {q.dtype}, k {k.dtype}, v {v.dtype}")
        if q.device != k.device or q.device != v.device:
            raise ValueError(f"q, k and v must be on one device, got q {q.device}, k {k.device}, v {v.device}")
        num_blocks, kv_heads, block_size, kd = k.shape
        if kd != q.shape[-1]:
            raise ValueError(f"k must have head_dim {q.shape[-1]} like q, got {kd}")
        if kv_heads == 0 or q.shape[1] % kv_heads:
            raise ValueError(f"q heads ({q.shape[1]}) must be a multiple of k/v heads ({kv_heads}) for grouped-query "
                             "attention")
        if min(*q.shape, num_blocks, block_size) == 0:
            raise ValueError(f"q, k, v must be non-empty, got q {tuple(q.shape)} and k {tuple(k.shape)}")
        if not isinstance(block_table, torch.Tensor):
            raise TypeError(f"block_table must be a torch.Tensor, got {type(block_table).__name__}")
        if block_table.dtype != torch.int32:
            raise TypeError(f"block_table must be an int32 tensor (the layout the kernels read), got dtype "
                            f"{block_table.dtype}")
        if block_table.ndim != 2 or block_table.shape[0] != q.shape[0] or block_table.shape[1] == 0:
            raise ValueError(f"block_table must have shape ({q.shape[0]}, max_blocks >= 1), one row per sequence of q, "
                             f"got {tuple(block_table.shape)}")
        if block_table.device != q.device:
            raise ValueError(f"block_table must be on q's device {q.device}, got {block_table.device}")
        capacity = block_table.shape[1] * block_size
    batch, heads, q_len, head_dim = q.shape
    if q.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"q, k and v must be float16, bfloat16, float32 or float64, got dtype {q.dtype}")
    if q_len > MAX_DECODE_Q_LEN:
        raise ValueError(f"q_len (dimension 2 of q) must be <= {MAX_DECODE_Q_LEN} for decode_attention (a decode step "
                         f"or a few speculative tokens), got {q_len}; use flash_attention for longer chunks")
    lengths = _check_lengths(lengths, batch, q.device)
    values = lengths.tolist()
    low, high = min(values), max(values)
    if low < 0 or high > capacity:
        bad = low if low < 0 else high
        raise ValueError(f"lengths must be in [0, {capacity}] (the cache holds {capacity} tokens per sequence), got "
                         f"{bad} for sequence {values.index(bad)}")
    if block_table is not None:
        _check_block_table(block_table, values, k.shape[0], k.shape[2])
    window = check_optional_int("window", window, minimum=1)
    scale = 1.0 / math.sqrt(head_dim) if scale is None else check_number("scale", scale, exclusive_minimum=0)
    num_splits = check_optional_int("num_splits", num_splits, minimum=1)
    if num_splits is not None and num_splits > MAX_NUM_SPLITS:
        raise ValueError(f"num_splits must be an integer in [1, {MAX_NUM_SPLITS}], got {num_splits}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return values, window, scale, num_splits


def _check_block_table(block_table: torch.Tensor, lengths: list[int], num_blocks: int, block_size: int) -> None:
    """The entries a sequence's tokens occupy must be block numbers; the rest are never read."""
    used = torch.tensor([-(-n // block_size) for n in lengths], device=block_table.device)
    needed = torch.arange(block_table.shape[1], device=block_table.device)[None, :] < used[:, None]
    bad = needed & ((block_table < 0) | (block_table >= num_blocks))
    if bool(bad.any()):
        b, i = (int(x) for x in bad.nonzero()[0])
        raise ValueError(
            f"block_table[{b}, {i}] must be a block number in [0, {num_blocks}) (sequence {b} holds {lengths[b]} "
            f"tokens, in its first {-(-lengths[b] // block_size)} blocks), got {int(block_table[b, i])}"
        )


def _gather(k, v, rows: list[int], length: int, block_table, device):
    """The first ``length`` keys/values of sequences ``rows``: ``(len(rows), kv_heads, length, head_dim)``."""
    if block_table is None:
        return k[rows, :, :length], v[rows, :, :length]
    block_size = k.shape[2]
    blocks = block_table[rows, : -(-length // block_size)].long()

    def pages(pool):  # (n, blocks, kv_heads, block_size, d) -> (n, kv_heads, blocks * block_size, d)
        n, nb = blocks.shape
        return pool[blocks].permute(0, 2, 1, 3, 4).reshape(n, pool.shape[1], nb * block_size, pool.shape[3])[
            :, :, :length]

    return pages(k), pages(v)


def _torch_decode(q, k, v, lengths: list[int], block_table, window, scale):
    """The PyTorch path: tiled attention per group of sequences of one length (zeros / -inf where empty)."""
    batch, heads, q_len, _ = q.shape
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    out = torch.zeros_like(q)
    lse = torch.full((batch, heads, q_len), -math.inf, dtype=acc, device=q.device)
    groups: dict[int, list[int]] = {}
    for b, n in enumerate(lengths):
        if n > 0:  # a sequence with no key at all keeps zeros and -inf
            groups.setdefault(n, []).append(b)
    for n, rows in groups.items():
        kk, vv = _gather(k, v, rows, n, block_table, q.device)
        o, l_ = tiled_attention_forward(q[rows], kk, vv, causal=True, window=window, scale=scale)
        out[rows] = o
        lse[rows] = l_
    return out, lse


def decode_attention_with_lse(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    lengths,
    *,
    block_table: torch.Tensor | None = None,
    window: int | None = None,
    scale: float | None = None,
    num_splits: int | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decode step over a contiguous or paged cache: ``(out, lse)``.

    ``out`` ``(batch, heads, q_len, head_dim)`` in ``q``'s dtype, ``lse`` ``(batch, heads, q_len)`` float32
    (float64 for float64 inputs), natural log. Arguments, layouts and errors: module docstring.
    """
    lengths, window, scale, num_splits = _validate(q, k, v, lengths, block_table, window, scale, num_splits, backend)
    chosen = select_backend(q, backend, decode=True)
    with torch.no_grad():
        if chosen == "torch":
            return _torch_decode(q, k, v, lengths, block_table, window, scale)
        q_len = q.shape[2]
        max_keys = max(lengths) if window is None else min(max(lengths), q_len - 1 + window)
        lengths_dev = torch.tensor(lengths, dtype=torch.int32).to(q.device, non_blocking=True)
        return _decode.forward(q, k, v, lengths_dev, block_table=block_table, window=window, scale=scale,
                               max_keys=max_keys, num_splits=num_splits)


def decode_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    lengths,
    *,
    block_table: torch.Tensor | None = None,
    window: int | None = None,
    scale: float | None = None,
    num_splits: int | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """One decode step over a contiguous or paged cache: ``(batch, heads, q_len, head_dim)`` in ``q``'s dtype.

    Use :func:`decode_attention_with_lse` for the LSE too. Arguments, layouts and errors: module docstring.
    """
    return decode_attention_with_lse(q, k, v, lengths, block_table=block_table, window=window, scale=scale,
                                     num_splits=num_splits, backend=backend)[0]
