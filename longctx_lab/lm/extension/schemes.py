"""The RoPE schedule a model trained at ``train_len`` uses when it reads ``eval_len`` tokens, per method.

Methods (:data:`INFERENCE_METHODS`), all applied at inference to the same weights (:meth:`LMConfig.with_rope`):

- ``"none"``: the trained frequencies (plain extrapolation);
- ``"pi"``: position interpolation, every frequency divided by ``factor``;
- ``"ntk"``: static NTK-aware scaling (the base raised so the slowest pair slows by ``factor``);
- ``"dynamic"``: dynamic NTK, the NTK base change recomputed for the length read (``factor`` 1,
  ``max_position_embeddings = train_len``, ``seq_len = eval_len``): nothing changes up to ``train_len``,
  beyond it the effective factor is ``eval_len / train_len``;
- ``"yarn"``: YaRN's NTK-by-parts ramp (``beta_fast``/``beta_slow``, defaults 32 and 1) and its attention
  temperature, ``original_max_position_embeddings = train_len``.

The static methods (``pi``, ``ntk``, ``yarn``) take one ``factor`` for every length, as a deployed model
configured for a target context ``factor * train_len`` does; ``dynamic`` adapts to each length by design.
A ``factor`` of 1 leaves PI and NTK unchanged.
"""

from __future__ import annotations

from longctx_lab.core.validate import check_int, check_number
from longctx_lab.lm.model import LMConfig

__all__ = ["INFERENCE_METHODS", "scheme_config"]

INFERENCE_METHODS = ("none", "pi", "ntk", "dynamic", "yarn")


def scheme_config(config: LMConfig, method: str, *, train_len: int, eval_len: int, factor: float,
                  beta_fast: float = 32.0, beta_slow: float = 1.0) -> LMConfig:
    """``config`` with ``method``'s schedule for reading ``eval_len`` tokens after training at ``train_len``
    (module docstring). Only the rope fields change, so the trained weights load unchanged."""
    if not isinstance(config, LMConfig):
        raise TypeError(f"config must be an LMConfig, got {type(config).__name__}")
    if method not in INFERENCE_METHODS:
        raise ValueError(f"method must be one of {INFERENCE_METHODS}, got {method!r}")
    train_len = check_int("train_len", train_len, minimum=1)
    eval_len = check_int("eval_len", eval_len, minimum=1)
    factor = check_number("factor", factor, minimum=1.0)
    if method == "none":
        return config.with_rope("default")
    if method == "pi":
        return config.with_rope("linear", factor=factor)
    if method == "ntk":
        return config.with_rope("ntk", factor=factor)
    if method == "dynamic":
        return config.with_rope("dynamic", factor=1.0, max_position_embeddings=train_len, seq_len=eval_len)
    return config.with_rope("yarn", factor=factor, original_max_position_embeddings=train_len,
                            beta_fast=beta_fast, beta_slow=beta_slow)
