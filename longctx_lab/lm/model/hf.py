"""A Hugging Face twin of a :class:`~longctx_lab.lm.model.TinyLM`: same config, same weights
(``transformers`` optional).

:func:`hf_config` maps an :class:`~longctx_lab.lm.model.LMConfig` to a ``LlamaConfig`` (every layer global) or a
``MistralConfig`` (every layer with one sliding window ``w``: Hugging Face's ``sliding_window=w`` is the
course's window, keys ``p - w < j <= p``); :func:`to_hf` builds that model and copies the weights (module names
are Llama's, so the state dict maps one to one, under ``model.``). Only ``mlp="swiglu"``, the ``"halves"``
layout and the schemes Hugging Face has (not ``"ntk"``) map; anything else is a ``ValueError``. Nothing is
downloaded. Hugging Face recomputes ``"dynamic"`` frequencies per call, :class:`TinyLM` freezes them: compare
them at the frozen length only.
"""

from __future__ import annotations

from longctx_lab.lm.model.config import LMConfig
from longctx_lab.lm.model.transformer import TinyLM

__all__ = ["hf_config", "to_hf"]

_HF_SCHEMES = ("default", "linear", "dynamic", "yarn", "llama3", "longrope")


def hf_config(config: LMConfig, *, attn_implementation: str = "eager"):
    """``transformers.LlamaConfig`` (or ``MistralConfig`` for one shared window) equivalent to ``config``."""
    import transformers

    if not isinstance(config, LMConfig):
        raise TypeError(f"config must be an LMConfig, got {type(config).__name__}")
    if config.mlp != "swiglu" or config.rope_layout != "halves" or config.rope_scheme not in _HF_SCHEMES:
        raise ValueError(f"config must use mlp='swiglu', rope_layout='halves' and a rope_scheme in {_HF_SCHEMES} "
                         f"to have a Hugging Face twin, got {config.mlp!r}, {config.rope_layout!r}, "
                         f"{config.rope_scheme!r}")
    windows = set(config.sliding_window)
    if len(windows) > 1:
        raise ValueError(f"config must use one window for every layer (Llama: none; Mistral: one), got "
                         f"{list(config.sliding_window)}")
    window = windows.pop()
    rope = {"rope_type": config.rope_scheme, **config.rope_params}
    if config.rope_base is not None:
        rope["rope_theta"] = config.rope_base
    rope.pop("seq_len", None)
    common = dict(vocab_size=config.vocab_size, hidden_size=config.d_model, intermediate_size=config.mlp_hidden,
                  num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
                  num_key_value_heads=config.n_kv_heads, head_dim=config.head_dim, hidden_act="silu",
                  max_position_embeddings=config.max_positions, rms_norm_eps=config.norm_eps,
                  tie_word_embeddings=config.tied_embeddings, rope_parameters=rope)
    if window is None:
        hf = transformers.LlamaConfig(**common, attention_bias=False, mlp_bias=False)
    else:
        hf = transformers.MistralConfig(**common, sliding_window=window)
    hf._attn_implementation = attn_implementation
    return hf


def to_hf(model: TinyLM, *, attn_implementation: str = "eager"):
    """A ``LlamaForCausalLM``/``MistralForCausalLM`` with ``model``'s weights and dtype, in eval mode."""
    import transformers

    if not isinstance(model, TinyLM):
        raise TypeError(f"model must be a TinyLM, got {type(model).__name__}")
    cfg = hf_config(model.config, attn_implementation=attn_implementation)
    llama = isinstance(cfg, transformers.LlamaConfig)
    cls = transformers.LlamaForCausalLM if llama else transformers.MistralForCausalLM
    hf = cls(cfg).to(model.dtype)
    state = {("lm_head.weight" if k == "lm_head.weight" else f"model.{k}"): v for k, v in model.state_dict().items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("rotary_emb.inv_freq")]
    if missing or unexpected:
        raise RuntimeError(f"state dicts do not map one to one: missing {missing}, unexpected {unexpected}")
    return hf.eval()
