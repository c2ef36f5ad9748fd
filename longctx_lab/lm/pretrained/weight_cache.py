"""The weight cache: a pretrained model's dequantized float32 weights, its config and its tokenizer on disk.

Parsing and dequantizing a GGUF file takes ``transformers`` about 15-20 s on two cores; reading the same
weights back from a safetensors file takes under a second. The cache lives under :func:`cache_root`
(``$LONGCTX_LAB_CACHE``, else ``~/.cache/longctx-lab``), one directory per model and package version
(:func:`cache_dir`: ``<root>/<name>/<distribution>-<version>/``), in Hugging Face's own layout, so both
back ends read it:

- ``config.json`` and ``model.safetensors``: the float32 ``transformers`` model as ``save_pretrained`` would
  write it (tied embeddings stored once, the GGUF ``quantization_config`` dropped);
- ``tokenizer/``: ``save_pretrained`` of its tokenizer (``tokenizer.json`` and its config);
- ``longctx_lab.json``: written last, naming the model, the package version and the weight file's size; a
  directory without it (an interrupted write) does not count as a cache and is rewritten.

A cache is written into a temporary sibling directory and renamed into place, so readers never see half of
one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from longctx_lab.lm.pretrained.registry import PretrainedModel

__all__ = ["CACHE_ENV", "MARKER", "cache_dir", "cache_root", "is_cached", "read_weights", "tokenizer_dir",
           "write_cache"]

CACHE_ENV = "LONGCTX_LAB_CACHE"
MARKER = "longctx_lab.json"
TOKENIZER_DIR = "tokenizer"


def cache_root() -> Path:
    """``$LONGCTX_LAB_CACHE`` when set (an empty value is a ``ValueError``), else ``~/.cache/longctx-lab``."""
    value = os.environ.get(CACHE_ENV)
    if value is None:
        return Path.home() / ".cache" / "longctx-lab"
    if not value.strip():
        raise ValueError(f"{CACHE_ENV} must name a directory when set, got {value!r}")
    return Path(value).expanduser()


def cache_dir(spec: PretrainedModel) -> Path:
    """This model's cache directory: ``<cache_root>/<name>/<distribution>-<version>``."""
    if not isinstance(spec, PretrainedModel):
        raise TypeError(f"spec must be a PretrainedModel, got {type(spec).__name__}")
    return cache_root() / spec.name / f"{spec.distribution}-{spec.version}"


def _marker(spec: PretrainedModel, weights: Path) -> dict:
    return {"name": spec.name, "distribution": spec.distribution, "version": spec.version,
            "weights_file": weights.name, "weights_bytes": weights.stat().st_size}


def is_cached(spec: PretrainedModel, weights: Path) -> bool:
    """Whether :func:`cache_dir` holds a complete cache made from ``weights`` (its marker agrees)."""
    path = cache_dir(spec) / MARKER
    try:
        return json.loads(path.read_text()) == _marker(spec, weights)
    except (OSError, ValueError):
        return False


def write_cache(spec: PretrainedModel, weights: Path, hf_model, tokenizer) -> Path:
    """Save ``hf_model`` (float32) and ``tokenizer`` as the cache of
    ``spec``; return the directory. An existing incomplete directory is replaced."""
    target = cache_dir(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _save_hf_weights(hf_model, tmp)
        tokenizer.save_pretrained(tmp / TOKENIZER_DIR)
        (tmp / MARKER).write_text(json.dumps(_marker(spec, weights), indent=1) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _save_hf_weights(hf_model, directory: Path) -> None:
    """``config.json`` and ``model.safetensors`` as ``save_pretrained`` writes them (which refuses a model loaded
    from GGUF): the config without its ``quantization_config``, the weights contiguous, a tied ``lm_head`` once."""
    from safetensors.torch import save_file

    config = hf_model.config.to_dict()
    config.pop("quantization_config", None)
    config["dtype"] = "float32"
    state = {k: v.detach().to("cpu").contiguous() for k, v in hf_model.state_dict().items()
             if not k.endswith("rotary_emb.inv_freq")}
    if config.get("tie_word_embeddings"):
        state.pop("lm_head.weight", None)
    (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    save_file(state, directory / "model.safetensors", metadata={"format": "pt"})


def read_weights(spec: PretrainedModel) -> tuple[dict, dict]:
    """``(config, state_dict)`` from the cache: the ``config.json`` dict and the float32 tensors under Hugging
    Face's names (``model.layers.0.self_attn.q_proj.weight``...). Imports ``safetensors``, not ``transformers``."""
    from safetensors.torch import load_file

    root = cache_dir(spec)
    config = json.loads((root / "config.json").read_text())
    return config, load_file(root / "model.safetensors")


def tokenizer_dir(spec: PretrainedModel) -> Path:
    """Where the cached tokenizer is (``save_pretrained``'s directory)."""
    return cache_dir(spec) / TOKENIZER_DIR
