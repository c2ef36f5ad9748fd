"""A Hugging Face twin of a :class:`~longctx_lab.lm.model.TinyLM`: same config, same weights
(``transformers`` optional), both ways.

:func:`hf_config` maps an :class:`~longctx_lab.lm.model.LMConfig` to a ``LlamaConfig`` (every layer global) or a
``MistralConfig`` (every layer with one sliding window ``w``: Hugging Face's ``sliding_window=w`` is the
course's window, keys ``p - w < j <= p``); :func:`to_hf` builds that model and copies the weights (module names
are Llama's, so the state dict maps one to one, under ``model.``). Only ``mlp="swiglu"``, the ``"halves"``
layout and the schemes Hugging Face has (not ``"ntk"``) map; anything else is a ``ValueError``. Nothing is
downloaded. Hugging Face recomputes ``"dynamic"`` frequencies per call, :class:`TinyLM` freezes them: compare
them at the frozen length only.

The reverse: :func:`config_from_hf` maps a ``LlamaConfig``/``MistralConfig`` (or its ``config.json`` as a
dict, so a cached model loads without importing ``transformers``) to an :class:`LMConfig`; :func:`from_hf`
builds the :class:`TinyLM` and copies the weights (a ``LlamaForCausalLM``/``MistralForCausalLM``, or a state
dict under Hugging Face's names with that config). Hugging Face's Llama applies RoPE in the ``"halves"``
layout (``rotate_half``), TinyLM's default, so Q/K weights copy unpermuted (a GGUF file stores them
interleaved; ``transformers``' GGUF loader undoes that on load).
"""

from __future__ import annotations

import torch

from longctx_lab.lm.model.config import LMConfig
from longctx_lab.lm.model.transformer import TinyLM

__all__ = ["config_from_hf", "from_hf", "hf_config", "to_hf"]

_HF_SCHEMES = ("default", "linear", "dynamic", "yarn", "llama3", "longrope")
_HF_MODEL_TYPES = ("llama", "mistral")
# rope_parameters keys that are not a scheme's keyword argument (HF spellings of the type and the base).
_HF_ROPE_META = ("rope_type", "type", "rope_theta")


def hf_config(config: LMConfig, *, attn_implementation: str = "eager"):
    """``transformers.LlamaConfig`` (or ``MistralConfig`` for one shared window) equivalent to ``config``."""
    import transformers

    if not isinstance(config, LMConfig):
        raise TypeError(f"config must be an LMConfig, got {type(config).__name__}")
    if config.mlp != "swiglu" or config.rope_layout != "halves" or config.rope_scheme not in _HF_SCHEMES:
        raise ValueError(f"config must use mlp='swiglu', rope_layout='halves' and a rope_scheme in {_HF_SCHEMES} "
                         f"to have a Hugging Face twin, got {config.mlp!r}, {config.rope_layout!r}, "
                         f"{config.rope_scheme!r}")
    if not config.all_attention or config.attention_conv:
        raise ValueError(f"config must be all attention with no attention_conv to have a Hugging Face twin, got "
                         f"mixers {list(config.mixers)} and attention_conv {config.attention_conv}")
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


def _as_dict(config) -> dict:
    if isinstance(config, dict):
        return dict(config)
    to_dict = getattr(config, "to_dict", None)
    if not callable(to_dict):
        raise TypeError(f"config must be a transformers PretrainedConfig or its config.json as a dict, got "
                        f"{type(config).__name__}")
    return to_dict()


def _rope_fields(cfg: dict) -> tuple[str, float, dict]:
    """``(scheme, base, params)`` from ``rope_parameters`` (transformers 5) or ``rope_theta``/``rope_scaling`` (4)."""
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    if not isinstance(rope, dict):
        raise ValueError(f"config's rope_parameters must be a dict, got {rope!r}")
    scheme = rope.get("rope_type", rope.get("type", "default"))
    if scheme not in _HF_SCHEMES:
        raise ValueError(f"config's rope_type must be one of {_HF_SCHEMES}, got {scheme!r}")
    base = rope.get("rope_theta", cfg.get("rope_theta", 10_000.0))
    params = {k: v for k, v in rope.items() if k not in _HF_ROPE_META and v is not None}
    if scheme == "dynamic":
        params.setdefault("max_position_embeddings", cfg["max_position_embeddings"])
    return scheme, float(base), params


def config_from_hf(config, *, name: str | None = None) -> LMConfig:
    """The :class:`LMConfig` of a Hugging Face Llama or Mistral config (a ``PretrainedConfig`` or its
    ``config.json`` dict): widths, heads, ``head_dim``, RoPE scheme and base, window, norm epsilon, tied
    embeddings, ``max_position_embeddings`` as ``max_positions``. A bias, an activation other than SiLU or
    another architecture is a ``ValueError`` naming the field."""
    cfg = _as_dict(config)
    model_type = cfg.get("model_type")
    if model_type not in _HF_MODEL_TYPES:
        raise ValueError(f"config's model_type must be one of {_HF_MODEL_TYPES}, got {model_type!r}")
    for key in ("attention_bias", "mlp_bias"):
        if cfg.get(key):
            raise ValueError(f"config's {key} must be False (TinyLM has no biases), got {cfg[key]!r}")
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"config's hidden_act must be 'silu' (SwiGLU), got {act!r}")
    scheme, base, params = _rope_fields(cfg)
    window = cfg.get("sliding_window") if model_type == "mistral" else None
    n_heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_heads
    return LMConfig(
        vocab_size=cfg["vocab_size"], d_model=cfg["hidden_size"], n_layers=cfg["num_hidden_layers"],
        n_heads=n_heads, n_kv_heads=cfg.get("num_key_value_heads") or n_heads, head_dim=head_dim,
        mlp_hidden=cfg["intermediate_size"], mlp="swiglu", rope_scheme=scheme, rope_base=base, rope_params=params,
        rope_layout="halves", sliding_window=window, max_positions=cfg["max_position_embeddings"],
        norm_eps=float(cfg.get("rms_norm_eps", 1e-6)), tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        name=name if name is not None else str(cfg.get("_name_or_path") or model_type),
    )


def from_hf(model_or_config, state_dict: dict | None = None, *, dtype: torch.dtype | None = None,
            name: str | None = None) -> TinyLM:
    """A :class:`TinyLM` with a Hugging Face Llama/Mistral model's config and weights, in eval mode.

    ``model_or_config``: a ``LlamaForCausalLM``/``MistralForCausalLM`` (its own weights), or its config (a
    ``PretrainedConfig`` or ``config.json`` dict) together with ``state_dict`` under Hugging Face's names
    (``model.layers.0.self_attn.q_proj.weight``...; ``lm_head.weight`` may be absent when embeddings are
    tied). ``dtype``: the model's (default: the weights'). Where the weights already have that dtype the TinyLM
    uses the same tensors (no copy: half the memory; changing one model's weights in place changes the
    other's). A missing or extra weight, or one of the wrong shape, is a ``ValueError`` naming it.
    """
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating-point torch.dtype or None, got {dtype!r}")
    if state_dict is None:
        if not hasattr(model_or_config, "config") or not callable(getattr(model_or_config, "state_dict", None)):
            raise TypeError(f"model_or_config must be a transformers model when state_dict is None, got "
                            f"{type(model_or_config).__name__}")
        config = model_or_config.config
        state_dict = model_or_config.state_dict()
    else:
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict of tensors, got {type(state_dict).__name__}")
        config = model_or_config
    lm_config = config_from_hf(config, name=name)
    ours = {}
    for key, value in state_dict.items():
        if key == "lm_head.weight":
            if lm_config.tied_embeddings:
                continue
            ours[key] = value
        elif key.startswith("model.") and not key.endswith("rotary_emb.inv_freq"):
            ours[key[len("model."):]] = value
        elif not key.endswith("rotary_emb.inv_freq"):
            ours[key] = value
    first = next(iter(ours.values()), None)
    if first is None:
        raise ValueError("state_dict must hold the model's weights, got none")
    dtype = first.dtype if dtype is None else dtype
    model = _empty_tinylm(lm_config)
    expected = model.state_dict()
    if lm_config.tied_embeddings:
        expected.pop("lm_head.weight", None)
    missing = sorted(set(expected) - set(ours))
    unexpected = sorted(set(ours) - set(expected))
    if missing or unexpected:
        raise ValueError(f"state_dict must hold TinyLM's weights under Hugging Face's names: missing {missing}, "
                         f"unexpected {unexpected}")
    for key, value in ours.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ValueError(f"state_dict[{key!r}] must have shape {tuple(expected[key].shape)}, got "
                             f"{tuple(value.shape)}")
    model.load_state_dict({k: v.to(dtype) for k, v in ours.items()}, strict=False, assign=True)
    if lm_config.tied_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    return model.eval()


def _empty_tinylm(config: LMConfig) -> TinyLM:
    """A TinyLM whose parameters are on the meta device (no memory, no init): ``load_state_dict(assign=True)``
    then gives it real tensors."""
    with torch.device("meta"):
        model = TinyLM(config)
    model.set_rope(config)  # the schedule was computed on the meta device too: recompute it on the CPU
    return model
