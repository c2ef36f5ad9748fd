"""Launchers for the flash-decoding kernels (the heuristic that picks the number of splits,
:func:`~longctx_lab.kernels.config.choose_num_splits`, lives in :mod:`.config`, which needs no triton).

Call :func:`longctx_lab.kernels.decode_dispatch.decode_attention` rather than this module: the dispatcher
validates the arguments and picks Triton or the PyTorch path. :func:`forward` assumes valid inputs and
CUDA tensors, or CPU tensors when the kernels run under the Triton interpreter.

Shapes (conventions: docs/conventions.md; the decode specifics: :mod:`.decode_kernels`): ``q``
``(batch, heads, q_len, head_dim)``, ``head_dim`` 1 to 256 (tiles padded to a power of two); contiguous
``k``/``v`` ``(batch, kv_heads, max_len, head_dim)``, or
paged pools ``(num_blocks, kv_heads, block_size, head_dim)`` with ``block_table`` ``(batch, max_blocks)``
int32; ``lengths`` ``(batch,)`` int32 on ``q``'s device. Returns ``out`` like ``q`` and ``lse``
``(batch, heads, q_len)`` float32.
"""

from __future__ import annotations

import torch
import triton

from longctx_lab.kernels import decode_kernels as dk
from longctx_lab.kernels.config import (  # noqa: F401 - the split heuristic, defined where triton is not needed
    MAX_SPLITS,
    MIN_TILES_PER_SPLIT,
    KernelConfig,
    choose_num_splits,
    decode_kernel_config,
    padded_head_dim,
)

#: The streaming multiprocessors assumed under the Triton interpreter (no device to ask): small enough that
#: the default heuristic splits the tiny inputs of the tests.
INTERPRETER_SMS = 4


def device_cc(device: torch.device) -> int | None:
    """Compute capability as an int (90 for sm_90), or ``None`` under the interpreter / on CPU."""
    if dk.is_interpreted() or device.type != "cuda":
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return 10 * major + minor


def num_sms(device: torch.device) -> int:
    """Streaming multiprocessors of ``device`` (:data:`INTERPRETER_SMS` under the interpreter / on CPU)."""
    if device_cc(device) is None:
        return INTERPRETER_SMS
    return torch.cuda.get_device_properties(device).multi_processor_count


def _dot_precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"  # fp32 inputs: full-precision products (not TF32)


def _last_dim_contiguous(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def split_config(q: torch.Tensor, kv_heads: int, config: dict | None = None) -> KernelConfig:
    """The split kernel's configuration for ``q`` (``config`` overrides fields, for tests)."""
    batch, heads, q_len, head_dim = q.shape
    cfg = decode_kernel_config("decode_split", device_cc(q.device), head_dim, q.element_size(),
                               rows=heads // kv_heads * q_len)
    if config:
        cfg = KernelConfig(**{**cfg.as_dict(), **config})
    return cfg


def forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    lengths: torch.Tensor,
    *,
    block_table: torch.Tensor | None,
    window: int | None,
    scale: float,
    max_keys: int,
    num_splits: int | None = None,
    config: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the split and merge kernels. Returns ``(out, lse)``.

    ``max_keys`` bounds the keys a sequence's queries see (for the heuristic; any upper bound is correct,
    a loose one only wastes empty splits); ``num_splits`` forces the split count; ``config`` overrides the
    split kernel's tiles (``block_m``, ``block_n``...).
    """
    q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
    batch, heads, q_len, head_dim = q.shape
    kv_heads = k.shape[1]
    group = heads // kv_heads
    cfg = split_config(q, kv_heads, config)
    row_blocks = triton.cdiv(group * q_len, cfg.block_m)
    if num_splits is None:
        num_splits = choose_num_splits(batch * kv_heads * row_blocks, max_keys, cfg.block_n, num_sms(q.device))
    paged = block_table is not None
    table = block_table if paged else lengths  # never read when not paged
    o_part = torch.empty((batch, heads, q_len, num_splits, head_dim), dtype=torch.float32, device=q.device)
    lse_part = torch.empty((batch, heads, q_len, num_splits), dtype=torch.float32, device=q.device)
    dk.decode_split_kernel[(num_splits, batch * kv_heads, row_blocks)](
        q, k, v, lengths, table, o_part, lse_part,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        table.stride(0),
        heads, group, q_len, window or 0, k.shape[2] if paged else 1, num_splits, scale,
        HEAD_DIM=head_dim, BLOCK_D=padded_head_dim(head_dim), BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n,
        HAS_WINDOW=window is not None, PAGED=paged, DOT_PRECISION=_dot_precision(q.dtype),
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    out = torch.empty((batch, heads, q_len, head_dim), dtype=q.dtype, device=q.device)
    lse = torch.empty((batch, heads, q_len), dtype=torch.float32, device=q.device)
    merge = decode_kernel_config("decode_merge", device_cc(q.device), head_dim, q.element_size())
    dk.decode_merge_kernel[(q_len, batch * heads)](
        o_part, lse_part, out, lse,
        out.stride(0), out.stride(1), out.stride(2),
        heads, q_len, num_splits,
        HEAD_DIM=head_dim, BLOCK_D=padded_head_dim(head_dim), num_warps=merge.num_warps, num_stages=merge.num_stages,
    )
    return out, lse
