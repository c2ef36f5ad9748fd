"""The blocks of :class:`longctx_lab.lm.model.TinyLM`: RMSNorm, the MLP, grouped-query attention with RoPE, a layer.

Shapes: activations are ``(batch, seq, d_model)``; inside attention, ``(batch, heads, seq, head_dim)`` for the
queries and ``(batch, kv_heads, seq, head_dim)`` for keys and values (docs/conventions.md). Module names follow
Hugging Face's Llama (``self_attn.q_proj``, ``mlp.gate_proj``, ``input_layernorm``...), so a state dict maps
one to one (:mod:`longctx_lab.lm.model.hf`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from longctx_lab.kvcache import KVCache, cached_attention
from longctx_lab.lm.model.config import LMConfig
from longctx_lab.rope import apply_rope

__all__ = ["MLP", "Attention", "DecoderLayer", "RMSNorm"]


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


class DecoderLayer(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))``, then ``h + mlp(norm(h))``; ``(batch, seq, d_model)`` in and out."""

    def __init__(self, config: LMConfig, layer: int):
        super().__init__()
        self.input_layernorm = RMSNorm(config.d_model, config.norm_eps)
        self.self_attn = Attention(config, layer)
        self.post_attention_layernorm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = MLP(config)

    def forward(self, x, positions, rope, *, cache=None, seq_ids=None):
        h = x + self.self_attn(self.input_layernorm(x), positions, rope, cache=cache, seq_ids=seq_ids)
        return h + self.mlp(self.post_attention_layernorm(h))
