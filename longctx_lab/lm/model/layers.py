"""The blocks of :class:`longctx_lab.lm.model.TinyLM`: RMSNorm, the MLP, grouped-query attention with RoPE, a short
causal convolution (chapter 8), a layer.

Shapes: activations are ``(batch, seq, d_model)``; inside attention, ``(batch, heads, seq, head_dim)`` for the
queries and ``(batch, kv_heads, seq, head_dim)`` for keys and values (docs/conventions.md). Module names follow
Hugging Face's Llama (``self_attn.q_proj``, ``mlp.gate_proj``, ``input_layernorm``...), so a state dict maps
one to one (:mod:`longctx_lab.lm.model.hf`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from longctx_lab.core.validate import check_int
from longctx_lab.kvcache import KVCache, cached_attention
from longctx_lab.lm.model.config import LMConfig
from longctx_lab.rope import apply_rope

__all__ = ["MLP", "Attention", "DecoderLayer", "RMSNorm", "ShortConv"]


class RMSNorm(nn.Module):
    """``weight * x / sqrt(mean(x**2) + eps)`` over the last dimension, computed in float32 (or float64)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        compute = torch.promote_types(x.dtype, torch.float32)
        h = x.to(compute)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


class MLP(nn.Module):
    """SwiGLU ``down(silu(gate(x)) * up(x))`` or GELU ``down(gelu(up(x)))``; ``(..., d_model)`` to the same."""

    def __init__(self, config: LMConfig):
        super().__init__()
        self.kind = config.mlp
        d, f = config.d_model, config.mlp_hidden
        if self.kind == "swiglu":
            self.gate_proj = nn.Linear(d, f, bias=False)
        self.up_proj = nn.Linear(d, f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "swiglu":
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        return self.down_proj(F.gelu(self.up_proj(x)))


class Attention(nn.Module):
    """Causal grouped-query self-attention with RoPE and an optional sliding window (one layer).

    ``q_proj`` ``d_model -> n_heads * head_dim``, ``k_proj``/``v_proj`` ``d_model -> n_kv_heads * head_dim``,
    ``o_proj`` back to ``d_model``; no biases. RoPE rotates queries and keys at their absolute positions before
    attention (and before caching), with ``inv_freq`` and ``attention_factor`` from the config's schedule.
    """

    def __init__(self, config: LMConfig, layer: int):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        self.window = config.window(layer)
        self.layout = config.rope_layout
        d = config.d_model
        self.q_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, d, bias=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, rope: tuple, *, cache: KVCache | None = None,
                seq_ids: list[int] | None = None) -> torch.Tensor:
        """``x`` ``(batch, seq, d_model)``; ``positions`` ``(seq,)`` or ``(batch, seq)``; ``rope`` ``(inv_freq,
        attention_factor)``. Without ``cache``: causal attention over ``x`` itself. With ``cache``: append this
        call's keys/values for ``seq_ids`` (one per row), then attend over each sequence's whole history."""
        batch, seq, _ = x.shape
        inv_freq, factor = rope
        q = self.q_proj(x).view(batch, seq, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(batch, seq, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, seq, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q = apply_rope(q, positions, inv_freq, layout=self.layout, attention_factor=factor)
        k = apply_rope(k, positions, inv_freq, layout=self.layout, attention_factor=factor)
        if cache is None:
            out = cached_attention(q, k.contiguous(), v.contiguous(), window=self.window)
        else:
            cache.append(k, v, seq_ids)
            out = cache.attend(q, seq_ids, window=self.window)
        return self.o_proj(out.transpose(1, 2).reshape(batch, seq, self.n_heads * self.head_dim))


class ShortConv(nn.Module):
    """Causal depthwise convolution over the sequence: ``y[t, c] = sum_j weight[c, j] * x[t - kernel + 1 + j, c]``
    (zeros before the start). ``kernel = 0`` is the identity. Decode state: the last ``kernel - 1`` inputs,
    ``(batch, kernel - 1, d_model)``."""

    def __init__(self, d_model: int, kernel: int):
        super().__init__()
        self.d_model = check_int("d_model", d_model, minimum=1)
        self.kernel = check_int("kernel", kernel, minimum=0)
        if self.kernel:
            self.weight = nn.Parameter(torch.empty(d_model, 1, kernel))
            nn.init.uniform_(self.weight, -kernel ** -0.5, kernel ** -0.5)  # nn.Conv1d's default bound

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(batch, seq, d_model)`` after ``state`` (the inputs before it; zeros when ``None``) ->
        ``(y, new state)``."""
        batch = x.shape[0]
        if state is None:
            state = self.init_state(batch, dtype=x.dtype, device=x.device)
        if not self.kernel:
            return x, state
        if state.shape != (batch, self.kernel - 1, self.d_model):
            raise ValueError(f"state must have shape {(batch, self.kernel - 1, self.d_model)}, got "
                             f"{tuple(state.shape)}")
        full = torch.cat([state, x], dim=1)
        y = F.conv1d(full.transpose(1, 2), self.weight, groups=self.d_model).transpose(1, 2)
        return y, full[:, full.shape[1] - (self.kernel - 1):]

    def init_state(self, batch: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
        return torch.zeros(batch, max(self.kernel - 1, 0), self.d_model, dtype=dtype, device=device)


class DecoderLayer(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))``, then ``h + mlp(norm(h))``; ``(batch, seq, d_model)`` in and out.

    With ``config.attention_conv > 0`` (chapter 8) a short causal convolution runs between the norm and the
    attention, ``x + attn(conv(norm(x)))``; its decode state is passed as ``conv_state`` and the new one
    returned (``return_conv_state=True``): only :mod:`longctx_lab.lm.model.recurrent` decodes such a layer."""

    def __init__(self, config: LMConfig, layer: int):
        super().__init__()
        self.input_layernorm = RMSNorm(config.d_model, config.norm_eps)
        if config.attention_conv:
            self.conv = ShortConv(config.d_model, config.attention_conv)
        self.self_attn = Attention(config, layer)
        self.post_attention_layernorm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = MLP(config)

    def forward(self, x, positions, rope, *, cache=None, seq_ids=None, conv_state=None, return_conv_state=False):
        a = self.input_layernorm(x)
        if hasattr(self, "conv"):
            if cache is not None and not return_conv_state:
                raise ValueError("a layer with attention_conv > 0 keeps a convolution state beside its KV cache: "
                                 "decode it with longctx_lab.lm.model.recurrent (init_decode_state, "
                                 "forward_with_state)")
            a, conv_state = self.conv(a, conv_state)
        h = x + self.self_attn(a, positions, rope, cache=cache, seq_ids=seq_ids)
        out = h + self.mlp(self.post_attention_layernorm(h))
        return (out, conv_state) if return_conv_state else out
