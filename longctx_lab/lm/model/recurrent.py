"""Decoding a TinyLM whose layers mix tokens with attention, recurrent mixers, or both (chapter 8).

:func:`init_decode_state` makes one :class:`DecodeState` for ``batch`` sequences: an attention layer gets a
:class:`~longctx_lab.kvcache.ContiguousKVCache` of ``capacity`` tokens (it grows with the context: the
capacity is what it reserves), a :class:`~longctx_lab.lm.model.mixer_layers.MixerLayer` its ``(conv state, mixer
state)``, whose size the layer's shape fixes. :func:`forward_with_state` reads any number of tokens into it
(prefill: the mixers' parallel form; one token: their recurrent step) and returns the logits; every row of the
batch continues its own sequence and all rows move together. The state is updated in place.

Bytes are measured from the tensors each layer holds (:meth:`DecodeState.layer_bytes`), not computed from a
formula. The decode path agrees with ``model(tokens)`` on the whole sequence (``tests/test_model_mixers.py``).
Conventions: docs/conventions.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from longctx_lab.core.validate import check_int, check_tensor
from longctx_lab.kvcache import ContiguousKVCache
from longctx_lab.lm.model.mixer_layers import MixerLayer
from longctx_lab.lm.model.transformer import TinyLM
from longctx_lab.mixers import state_bytes

__all__ = ["DecodeState", "forward_with_state", "init_decode_state"]


@dataclass
class DecodeState:
    """Per layer: a KV cache (attention) or a ``(conv, mixer)`` state (mixer layers); ``length`` tokens read.
    ``attention_convs``: per layer, the convolution state of an attention layer with ``attention_conv > 0``
    (``(batch, kernel - 1, d_model)``), else ``None``."""

    layers: list
    kinds: tuple[str, ...]
    batch: int
    length: int = 0
    attention_convs: list | None = None

    def layer_bytes(self) -> list[int]:
        """Bytes each layer holds, measured: the cache's tensors (reserved capacity, plus the convolution's
        state where the layer has one) or the mixer layer's tensors."""
        out = []
        convs = self.attention_convs or [None] * len(self.layers)
        for layer, conv in zip(self.layers, convs, strict=True):
            if isinstance(layer, ContiguousKVCache):
                out.append(int(layer.nbytes) + (0 if conv is None else state_bytes(conv)))
            else:
                conv, mixer = layer
                out.append(state_bytes(conv) + state_bytes(mixer))
        return out

    def nbytes(self) -> int:
        """Bytes of the whole decode state (every layer)."""
        return sum(self.layer_bytes())


def init_decode_state(model: TinyLM, batch: int = 1, *, capacity: int | None = None) -> DecodeState:
    """The empty :class:`DecodeState` of ``model`` for ``batch`` sequences; attention layers reserve
    ``capacity`` tokens (default ``config.max_positions``)."""
    if not isinstance(model, TinyLM):
        raise TypeError(f"model must be a TinyLM, got {type(model).__name__}")
    batch = check_int("batch", batch, minimum=1)
    config = model.config
    capacity = config.max_positions if capacity is None else check_int("capacity", capacity, minimum=1)
    layers, convs = [], []
    for layer in model.layers:
        if isinstance(layer, MixerLayer):
            layers.append(layer.init_state(batch, dtype=model.dtype, device=model.device))
            convs.append(None)
        else:
            layers.append(ContiguousKVCache(capacity, batch=batch, kv_heads=config.n_kv_heads,
                                            head_dim=config.head_dim, dtype=model.dtype, device=model.device))
            conv = getattr(layer, "conv", None)
            convs.append(None if conv is None else conv.init_state(batch, dtype=model.dtype, device=model.device))
    return DecodeState(layers, tuple(config.mixers), batch, attention_convs=convs)


@torch.no_grad()
def forward_with_state(model: TinyLM, tokens: torch.Tensor, state: DecodeState) -> torch.Tensor:
    """Logits ``(batch, seq, vocab_size)`` of ``tokens`` ``(batch, seq)`` continuing ``state`` (updated in
    place). ``ValueError`` when the batch differs from the state's or an attention cache would overflow."""
    if not isinstance(model, TinyLM):
        raise TypeError(f"model must be a TinyLM, got {type(model).__name__}")
    if not isinstance(state, DecodeState):
        raise TypeError(f"state must be a DecodeState from init_decode_state, got {type(state).__name__}")
    check_tensor("tokens", tokens)
    if tokens.ndim != 2 or tokens.shape[1] == 0 or tokens.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"tokens must be a (batch, seq>=1) int64 tensor of token ids, got {tokens.dtype} "
                         f"{tuple(tokens.shape)}")
    batch, seq = tokens.shape
    if batch != state.batch or len(state.layers) != len(model.layers):
        raise ValueError(f"state must be made for this model and batch={batch} rows, got a state of "
                         f"{len(state.layers)} layers and batch={state.batch}")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= model.config.vocab_size):
        raise ValueError(f"tokens must be ids in [0, {model.config.vocab_size}), got values in "
                         f"[{int(tokens.min())}, {int(tokens.max())}]")
    positions = state.length + torch.arange(seq, device=model.device).expand(batch, seq)
    seq_ids = list(range(batch))
    x = model.embed_tokens(tokens)
    for i, layer in enumerate(model.layers):
        if isinstance(layer, MixerLayer):
            x, state.layers[i] = layer.prefill(x, state.layers[i])
        elif state.attention_convs is not None and state.attention_convs[i] is not None:
            x, state.attention_convs[i] = layer(x, positions, model.rope, cache=state.layers[i], seq_ids=seq_ids,
                                                conv_state=state.attention_convs[i], return_conv_state=True)
        else:
            x = layer(x, positions, model.rope, cache=state.layers[i], seq_ids=seq_ids)
    state.length += seq
    return model.lm_head(model.norm(x))
