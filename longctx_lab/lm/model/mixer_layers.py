"""A TinyLM layer whose token mixer is not attention (chapter 8): ``x + mixer(conv(norm(x)))``, then the MLP.

:class:`MixerLayer` is :class:`~longctx_lab.lm.model.layers.DecoderLayer` with ``self_attn`` replaced by a short
causal depthwise convolution (:class:`ShortConv`, kernel ``config.mixer_conv``; Mamba's ``conv1d`` and the short
convolutions of Zoology's baselines: it lets a position see the few tokens before it, e.g. a value its key)
followed by a causal mixer of :func:`longctx_lab.mixers.build_mixer`; a mixer with its own short convolution
(the SSM's Mamba block: ``d_conv``) gets none here. The mixers use no positions (RoPE is for
the attention layers). Shapes: ``(batch, seq, d_model)`` in and out; a decode step ``(batch, d_model)``.

Decoding keeps, per mixer layer, the convolution's last ``kernel - 1`` inputs and the mixer's state: both of a
size fixed by the layer's shape, never by the sequence (:mod:`longctx_lab.lm.model.recurrent` drives it).
Conventions: docs/conventions.md.
"""

from __future__ import annotations

import torch
from torch import nn

from longctx_lab.core.validate import check_tensor
from longctx_lab.lm.model.config import LMConfig
from longctx_lab.lm.model.layers import MLP, RMSNorm, ShortConv
from longctx_lab.mixers import build_mixer

__all__ = ["MixerLayer", "ShortConv"]  # ShortConv lives in layers (attention layers use it too)


class MixerLayer(nn.Module):
    """Pre-norm block with a non-attention token mixer (module docstring): ``input_layernorm``, ``conv``,
    ``mixer``, ``post_attention_layernorm``, ``mlp``; ``(batch, seq, d_model)`` in and out."""

    def __init__(self, config: LMConfig, layer: int):
        super().__init__()
        self.kind = config.mixer(layer)
        if self.kind == "attention":
            raise ValueError(f"layer {layer} of this config is attention: build a DecoderLayer for it")
        self.input_layernorm = RMSNorm(config.d_model, config.norm_eps)
        self.mixer = build_mixer(self.kind, config.d_model, config.n_heads, **config.mixer_options)
        own = getattr(self.mixer, "d_conv", 0)  # the SSM's Mamba block has its own short convolution
        self.conv = ShortConv(config.d_model, 0 if own else config.mixer_conv)
        self.post_attention_layernorm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = MLP(config)

    def forward(self, x, positions=None, rope=None, *, cache=None, seq_ids=None):
        """Same call as :class:`DecoderLayer` (positions and rope unused); a KV ``cache`` is refused: decode a
        mixer model with :mod:`longctx_lab.lm.model.recurrent`."""
        if cache is not None or seq_ids is not None:
            raise ValueError(f"a {self.kind!r} layer keeps a state, not a KV cache: decode with "
                             "longctx_lab.lm.model.recurrent (init_decode_state, forward_with_state)")
        return self.prefill(x)[0]

    def init_state(self, batch: int, *, dtype=torch.float32, device=None) -> tuple:
        """``(conv state, mixer state)`` of ``batch`` empty sequences."""
        return (self.conv.init_state(batch, dtype=dtype, device=device),
                self.mixer.init_state(batch, dtype=dtype, device=device))

    def prefill(self, x: torch.Tensor, state: tuple | None = None) -> tuple[torch.Tensor, tuple]:
        """``x`` ``(batch, seq, d_model)`` continuing ``state`` (empty when ``None``) -> ``(out, new state)``."""
        check_tensor("x", x)
        conv_state, mixer_state = (None, None) if state is None else state
        c, conv_state = self.conv(self.input_layernorm(x), conv_state)
        if x.shape[1] == 1 and mixer_state is not None:  # one decode step: the recurrent path
            y, mixer_state = self.mixer.step(c[:, 0], mixer_state)
            y = y[:, None]
        else:
            y, mixer_state = self.mixer.prefill(c, mixer_state)
        h = x + y
        return h + self.mlp(self.post_attention_layernorm(h)), (conv_state, mixer_state)

    def state_bytes(self, state: tuple) -> int:
        """Bytes of ``(conv state, mixer state)``, measured from their tensors."""
        return int(state[0].numel() * state[0].element_size()) + self.mixer.state_bytes(state[1])
