"""Read a Hugging Face ``config.json`` into a :class:`~longctx_lab.core.configs.ModelConfig`.

Supported ``model_type`` values: ``llama``, ``mistral``, ``mixtral``, ``qwen2``, ``gemma2`` (the decoder
families whose costs :mod:`longctx_lab.core.cost` models exactly: RMSNorm, rotary positions, a gated MLP,
optional GQA, sliding windows and top-k experts). What is read, per key:

* sizes (required): ``num_hidden_layers``, ``num_attention_heads``, ``hidden_size``,
  ``intermediate_size``, ``vocab_size``, ``max_position_embeddings``; Mixtral also
  ``num_local_experts`` and ``num_experts_per_tok``.
* optional, with the default of the ``transformers`` config class: ``num_key_value_heads``
  (= heads), ``head_dim`` (``hidden_size / num_attention_heads``; 256 for Gemma 2),
  ``tie_word_embeddings`` (true only for Gemma 2), ``attention_bias``, ``rope_theta`` (or
  ``rope_parameters.rope_theta``), ``rope_scaling``.
* windows: Mistral/Mixtral ``sliding_window`` on every layer (Mistral's default 4096, Mixtral's
  none); Qwen2 ``use_sliding_window``/``sliding_window``/``max_window_layers`` (layers from
  ``max_window_layers`` on use the window); Gemma 2 ``sliding_window`` on alternate layers (0, 2, ...);
  an explicit ``layer_types`` list wins for Qwen2 and Gemma 2. The window ``w`` follows the course
  convention, which is Hugging Face's: query ``p`` sees keys ``p - w < j <= p`` (see docs/conventions.md).

A missing required key, a value of the wrong type or range, or a feature whose cost is not modelled
(``quantization_config``, ``mlp_bias``, another ``model_type``) raises ``ValueError``/``TypeError``
naming the key. Published configs ship in ``longctx_lab/lm/hf/shipped_configs/`` with their sources in
``index.json``: :func:`shipped_configs` lists them, and their names work wherever a path does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib import resources

from longctx_lab.core.configs import ModelConfig
from longctx_lab.core.validate import check_bool, check_int, check_number

__all__ = ["SUPPORTED_MODEL_TYPES", "from_hf_config", "read_hf_config", "shipped_configs"]

SUPPORTED_MODEL_TYPES = ("gemma2", "llama", "mistral", "mixtral", "qwen2")
_TIED_BY_DEFAULT = {"gemma2"}
_UNSUPPORTED_KEYS = {
    "quantization_config": "quantized weights are not sized here (pass a weight dtype such as int4 or fp8 instead)",
    "text_config": "a multimodal wrapper: pass the decoder's own config",
}
_REQUIRED = object()


def _assets():
    return resources.files("longctx_lab.lm.hf") / "shipped_configs"


def shipped_configs() -> dict[str, dict]:
    """The shipped configs, ``{name: {"file", "name", "model_id", "url", "published_params", ...}}``."""
    index = json.loads((_assets() / "index.json").read_text(encoding="utf-8"))
    return {k: v for k, v in index.items() if not k.startswith("_")}


def read_hf_config(config: str | os.PathLike) -> dict:
    """The JSON object of a shipped config's name (see :func:`shipped_configs`) or of a ``config.json`` path."""
    if not isinstance(config, str | os.PathLike):
        raise TypeError(f"config must be a path or a shipped config name, got {type(config).__name__} {config!r}")
    shipped = shipped_configs()
    if isinstance(config, str) and config in shipped:
        text = (_assets() / shipped[config]["file"]).read_text(encoding="utf-8")
        where = f"shipped config {config!r}"
    elif os.path.isfile(config):
        with open(config, encoding="utf-8") as f:
            text = f.read()
        where = os.fspath(config)
    else:
        raise ValueError(
            f"config must be a path to a config.json or one of the shipped configs {sorted(shipped)}, got {config!r}"
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"config {where} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise TypeError(f"config {where} must hold a JSON object, got {type(data).__name__}")
    return data


def _get(cfg: Mapping, key: str, kind: str, default=_REQUIRED, *, minimum: int = 1):
    """``cfg[key]`` checked as ``kind`` ("int", "bool", "number"); a missing key or a null gives
    ``default``, or an error naming the key when it is required."""
    value = cfg.get(key)
    if value is None:
        if default is _REQUIRED:
            model_type = cfg.get("model_type")
            raise ValueError(f"config.json must have key {key!r} ({kind}) for model_type {model_type!r}, got none")
        return default
    name = f"config.json key {key!r}"
    if kind == "int":
        return check_int(name, value, minimum=minimum)
    if kind == "bool":
        return check_bool(name, value)
    return check_number(name, value, exclusive_minimum=0)


def _n_sliding(cfg: Mapping, model_type: str, n_layers: int, window: int | None) -> int | None:
    """How many layers use ``window``, as ``transformers`` decides it for this model type."""
    if window is None:
        return None
    layer_types = cfg.get("layer_types")
    if layer_types is not None:
        allowed = {"full_attention", "sliding_attention"}
        if not isinstance(layer_types, list) or len(layer_types) != n_layers or not set(layer_types) <= allowed:
            raise ValueError(
                f"config.json key 'layer_types' must be a list of {n_layers} (num_hidden_layers) entries from "
                f"{sorted(allowed)}, got {layer_types!r}"
            )
        return layer_types.count("sliding_attention")
    if model_type == "gemma2":
        return (n_layers + 1) // 2  # layers 0, 2, 4, ... slide; the others attend globally
    if model_type == "qwen2":
        first = _get(cfg, "max_window_layers", "int", 28, minimum=0)
        return max(0, n_layers - first)
    return None  # every layer


def _window(cfg: Mapping, model_type: str) -> int | None:
    if model_type == "llama":
        return None
    if model_type == "qwen2" and not _get(cfg, "use_sliding_window", "bool", False):
        return None
    default = None if model_type == "mixtral" else 4096
    if "sliding_window" in cfg and cfg["sliding_window"] is None:
        return None
    return _get(cfg, "sliding_window", "int", default)


def _rope(cfg: Mapping) -> tuple[float, dict | None]:
    params = cfg.get("rope_parameters")
    if params is not None and not isinstance(params, dict):
        raise TypeError(f"config.json key 'rope_parameters' must be an object, got {params!r}")
    theta = cfg.get("rope_theta", (params or {}).get("rope_theta"))
    theta = 10000.0 if theta is None else check_number("config.json key 'rope_theta'", theta, exclusive_minimum=0)
    scaling = cfg.get("rope_scaling")
    if scaling is None and params and params.get("rope_type", "default") != "default":
        scaling = {k: v for k, v in params.items() if k != "rope_theta"}
    if scaling is not None and not isinstance(scaling, dict):
        raise TypeError(f"config.json key 'rope_scaling' must be an object or null, got {scaling!r}")
    return theta, scaling


def from_hf_config(
    config: Mapping | str | os.PathLike, *, name: str | None = None, source: str | None = None
) -> ModelConfig:
    """A :class:`ModelConfig` from a ``config.json``: a dict, a path, or a shipped config's name.

    ``name`` and ``source`` default to the shipped index's entry, else to the file's
    ``_name_or_path``/path. ``published_params`` is the index's count for a shipped config, ``None``
    otherwise. See the module docstring for the keys read and their defaults.
    """
    entry = shipped_configs().get(config) if isinstance(config, str) else None
    if isinstance(config, Mapping):
        cfg, where = config, "config dict"
    else:
        cfg, where = read_hf_config(config), os.fspath(config)
    model_type = cfg.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"config.json key 'model_type' must be one of {list(SUPPORTED_MODEL_TYPES)}, got {model_type!r}"
        )
    for key, why in _UNSUPPORTED_KEYS.items():
        if cfg.get(key) is not None:
            raise ValueError(f"config.json key {key!r} is not supported: {why}")
    if cfg.get("layer_types") is not None and model_type not in ("qwen2", "gemma2"):
        raise ValueError(f"config.json key 'layer_types' is not supported for model_type {model_type!r}")
    if model_type == "llama" and _get(cfg, "mlp_bias", "bool", False):
        raise ValueError("config.json key 'mlp_bias' true is not supported: the MLP is sized without biases")

    n_layers = _get(cfg, "num_hidden_layers", "int")
    n_heads = _get(cfg, "num_attention_heads", "int")
    hidden = _get(cfg, "hidden_size", "int")
    n_kv = _get(cfg, "num_key_value_heads", "int", n_heads)
    if n_heads % n_kv:
        raise ValueError(
            f"config.json key 'num_attention_heads' ({n_heads}) must be a multiple of 'num_key_value_heads' "
            f"({n_kv}) for grouped-query attention"
        )
    head_dim = _get(cfg, "head_dim", "int", 256 if model_type == "gemma2" else None)
    if head_dim is None:
        if hidden % n_heads:
            raise ValueError(
                f"config.json key 'head_dim' is missing and hidden_size {hidden} is not a multiple of "
                f"num_attention_heads {n_heads}"
            )
        head_dim = hidden // n_heads
    bias = _get(cfg, "attention_bias", "bool", False) if model_type in ("llama", "gemma2") else False
    experts = (_get(cfg, "num_local_experts", "int"), _get(cfg, "num_experts_per_tok", "int")) \
        if model_type == "mixtral" else (1, 1)
    if experts[1] > experts[0]:
        raise ValueError(
            f"config.json key 'num_experts_per_tok' must be <= num_local_experts ({experts[0]}), got {experts[1]}"
        )
    window = _window(cfg, model_type)
    theta, scaling = _rope(cfg)
    if name is None:
        name = entry["name"] if entry else str(cfg.get("_name_or_path") or f"{model_type} ({where})")
    if source is None:
        source = entry["url"] if entry else where
    return ModelConfig(
        name=name, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv, head_dim=head_dim, hidden_size=hidden,
        intermediate_size=_get(cfg, "intermediate_size", "int"), vocab_size=_get(cfg, "vocab_size", "int"),
        max_context=_get(cfg, "max_position_embeddings", "int"), rope_theta=theta,
        published_params=entry.get("published_params") if entry else None, source=source,
        sliding_window=window, sliding_window_layers=_n_sliding(cfg, model_type, n_layers, window),
        tied_embeddings=_get(cfg, "tie_word_embeddings", "bool", model_type in _TIED_BY_DEFAULT),
        n_experts=experts[0], experts_per_token=experts[1], rope_scaling=scaling,
        qkv_bias=bias or model_type == "qwen2", o_bias=bias, norms_per_layer=4 if model_type == "gemma2" else 2,
    )
