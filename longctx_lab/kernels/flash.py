"""Launchers for the Triton FlashAttention kernels, and the autograd Function that ties them together.

Call :func:`longctx_lab.kernels.dispatch.flash_attention` rather than this module: the dispatcher
validates the arguments and picks Triton or the PyTorch path. The functions here assume valid
inputs (checked by the dispatcher) and CUDA tensors, or CPU tensors when the kernels run under the
Triton interpreter (``TRITON_INTERPRET=1`` set before ``triton`` was imported).

Shapes: ``q`` ``(batch, heads, q_len, head_dim)`` (any ``head_dim`` from 1 to
:data:`~longctx_lab.kernels.config.MAX_TRITON_HEAD_DIM`, run in tiles
:func:`~longctx_lab.kernels.config.padded_head_dim` wide), ``k``/``v`` ``(batch, kv_heads, kv_len, head_dim)``;
output like ``q``; LSE ``(batch, heads, q_len)`` float32, natural log, ``-inf`` on rows that see no key
(their output is 0). ``window`` follows the course convention (query at ``p`` sees ``p - w < j <= p``;
without ``causal`` ``|p - j| < w``); ``q_len != kv_len`` is bottom-right aligned.
"""

from __future__ import annotations

import torch
import triton

from longctx_lab.kernels import flash_kernels as fk
from longctx_lab.kernels.config import KernelConfig, kernel_config, padded_head_dim


def device_cc(device: torch.device) -> int | None:
    """Compute capability as an int (80 for sm_80), or ``None`` under the interpreter / on CPU."""
    if fk.is_interpreted() or device.type != "cuda":
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return 10 * major + minor


def _config(kernel: str, q: torch.Tensor, override: dict | None) -> KernelConfig:
    cfg = kernel_config(kernel, device_cc(q.device), q.shape[-1], q.element_size())
    if override:
        cfg = KernelConfig(**{**cfg.as_dict(), **override})
    return cfg


def _dot_precision(dtype: torch.dtype) -> str:
    # fp32 inputs: full-precision products, like a PyTorch fp32 matmul (not TF32).
    return "ieee" if dtype == torch.float32 else "tf32"


def _last_dim_contiguous(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def forward(q, k, v, *, causal: bool, window: int | None, scale: float, config: dict | None = None):
    """Run the forward kernel. Returns ``(out, lse)``; ``config`` overrides tile sizes (tests)."""
    q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
    batch, heads, q_len, head_dim = q.shape
    kv_heads, kv_len = k.shape[1], k.shape[2]
    out = torch.empty((batch, heads, q_len, head_dim), dtype=q.dtype, device=q.device)
    lse = torch.empty((batch, heads, q_len), dtype=torch.float32, device=q.device)
    cfg = _config("fwd", q, config)
    grid = (triton.cdiv(q_len, cfg.block_m), batch * heads)
    fk.attn_fwd_kernel[grid](
        q, k, v, out, lse,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        out.stride(0), out.stride(1), out.stride(2),
        heads, heads // kv_heads, q_len, kv_len, window or 0, scale,
        HEAD_DIM=head_dim, BLOCK_D=padded_head_dim(head_dim), BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n,
        IS_CAUSAL=causal, HAS_WINDOW=window is not None, DOT_PRECISION=_dot_precision(q.dtype),
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    return out, lse


def backward(do, q, k, v, out, lse, *, causal: bool, window: int | None, scale: float,
             config: dict | None = None):
    """Run the three backward kernels (delta pre-pass, dK/dV, dQ). Returns ``(dq, dk, dv)``."""
    q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
    do = do.contiguous()
    out = out.contiguous()
    batch, heads, q_len, head_dim = q.shape
    kv_heads, kv_len = k.shape[1], k.shape[2]
    group = heads // kv_heads
    has_window = window is not None
    prec = _dot_precision(q.dtype)

    delta = torch.empty((batch, heads, q_len), dtype=torch.float32, device=q.device)
    cfg = _config("bwd_preprocess", q, None)
    fk.attn_bwd_preprocess_kernel[(triton.cdiv(q_len, cfg.block_m), batch * heads)](
        out, do, delta, q_len, HEAD_DIM=head_dim, BLOCK_D=padded_head_dim(head_dim), BLOCK_M=cfg.block_m,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )

    dk = torch.empty((batch, kv_heads, kv_len, head_dim), dtype=k.dtype, device=k.device)
    dv = torch.empty((batch, kv_heads, kv_len, head_dim), dtype=v.dtype, device=v.device)
    cfg = _config("bwd_dkdv", q, config)
    fk.attn_bwd_dkdv_kernel[(triton.cdiv(kv_len, cfg.block_n), batch * kv_heads)](
        q, k, v, do, lse, delta, dk, dv,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        heads, group, q_len, kv_len, window or 0, scale,
        HEAD_DIM=head_dim, BLOCK_D=padded_head_dim(head_dim), BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n,
        IS_CAUSAL=causal, HAS_WINDOW=has_window, DOT_PRECISION=prec,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )

    dq = torch.empty((batch, heads, q_len, head_dim), dtype=q.dtype, device=q.device)
    cfg = _config("bwd_dq", q, config)
    fk.attn_bwd_dq_kernel[(triton.cdiv(q_len, cfg.block_m), batch * heads)](
        q, k, v, do, lse, delta, dq,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        heads, group, q_len, kv_len, window or 0, scale,
        HEAD_DIM=head_dim, BLOCK_D=padded_head_dim(head_dim), BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n,
        IS_CAUSAL=causal, HAS_WINDOW=has_window, DOT_PRECISION=prec,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    return dq, dk, dv


class FlashAttentionFunction(torch.autograd.Function):
    """Autograd wrapper: forward kernel, then the backward kernels from the saved LSE (FlashAttention-2).

    Saves q, k, v, the output and the LSE (O(n) extra memory), never the attention matrix.
    The LSE output is not differentiable (its gradient is ignored); double backward is not supported.
    """

    @staticmethod
    def forward(ctx, q, k, v, causal, window, scale, config):
        out, lse = forward(q, k, v, causal=causal, window=window, scale=scale, config=config)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.window, ctx.scale, ctx.config = causal, window, scale, config
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, do, _dlse):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = backward(do, q, k, v, out, lse, causal=ctx.causal, window=ctx.window, scale=ctx.scale,
                              config=ctx.config)
        return dq, dk, dv, None, None, None, None


def attention(q, k, v, *, causal: bool, window: int | None, scale: float, config: dict | None = None):
    """Differentiable Triton attention: ``(out, lse)``. Inputs must already be validated (see dispatch)."""
    return FlashAttentionFunction.apply(q, k, v, causal, window, scale, config)
