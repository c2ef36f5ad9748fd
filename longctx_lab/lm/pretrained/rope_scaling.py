"""A RoPE scaling applied at inference to a loaded model: chapter 2's schedules on real weights.

A pretrained model's weights do not depend on its RoPE schedule, so a scheme of
:data:`longctx_lab.rope.ROPE_SCHEMES` (``"linear"`` (PI), ``"ntk"``, ``"dynamic"``, ``"yarn"``...) can be swapped
in after loading. :func:`rope_params_for` fills the lengths a scheme needs from the model's trained context (YaRN's
``original_max_position_embeddings``, dynamic NTK's ``max_position_embeddings``), so a call needs only the
scheme's own knobs (``factor=2.0``). :func:`apply_rope_scaling` sets the schedule of a
:class:`~longctx_lab.lm.model.TinyLM` in place; :func:`hf_rope_parameters` is the same schedule as a Hugging
Face ``rope_parameters`` dict (Hugging Face has no static ``"ntk"``: a ``ValueError``).

Dynamic NTK: TinyLM freezes the schedule at ``seq_len`` (default: the trained length, where it changes nothing),
so pass the length you run at; Hugging Face recomputes it per call from the longest position.
"""

from __future__ import annotations

from longctx_lab.lm.model import LMConfig, TinyLM
from longctx_lab.rope import ROPE_SCHEMES

__all__ = ["apply_rope_scaling", "hf_rope_parameters", "rope_params_for"]

_NEEDS_ORIGINAL = ("yarn", "llama3", "longrope")
_HF_HAS = ("default", "linear", "dynamic", "yarn", "llama3", "longrope")


def rope_params_for(config: LMConfig, scheme: str, **params) -> dict:
    """``params`` for ``scheme`` with the trained length filled in from ``config.max_positions`` where the scheme
    needs it and it is not given. An unknown scheme is a ``ValueError`` naming the known ones."""
    if not isinstance(config, LMConfig):
        raise TypeError(f"config must be an LMConfig, got {type(config).__name__}")
    if not isinstance(scheme, str) or scheme not in ROPE_SCHEMES:
        raise ValueError(f"rope_scheme must be one of {sorted(ROPE_SCHEMES)}, got {scheme!r}")
    params = dict(params)
    if scheme in _NEEDS_ORIGINAL:
        params.setdefault("original_max_position_embeddings", config.max_positions)
    elif scheme == "dynamic":
        params.setdefault("max_position_embeddings", config.max_positions)
    return params


def apply_rope_scaling(model: TinyLM, scheme: str, *, trained: LMConfig | None = None, **params) -> TinyLM:
    """Give ``model`` the RoPE schedule ``scheme`` with ``params`` (e.g. ``"yarn", factor=2.0``), in place (the
    weights are shared, nothing is copied); returns ``model``. The base stays the trained one; ``"default"``
    restores the trained schedule. ``trained``: the config whose ``max_positions`` fills the lengths (default:
    the model's). The scheme's own checks raise ``ValueError``/``TypeError`` naming the parameter."""
    if not isinstance(model, TinyLM):
        raise TypeError(f"model must be a TinyLM, got {type(model).__name__}")
    config = model.config if trained is None else trained
    filled = rope_params_for(config, scheme, **params)
    model.set_rope(model.config.with_rope(scheme, **filled))
    return model


def hf_rope_parameters(config: LMConfig, scheme: str, **params) -> dict:
    """A Hugging Face ``rope_parameters`` dict (``rope_type``, ``rope_theta`` and the scheme's keys) for
    ``scheme`` on ``config``'s base; dynamic NTK's lengths come from the Hugging Face config itself."""
    filled = rope_params_for(config, scheme, **params)
    if scheme not in _HF_HAS:
        raise ValueError(f"rope_scheme must be one of {_HF_HAS} for the Hugging Face back end (it has no static "
                         f"NTK; use backend='tinylm'), got {scheme!r}")
    config.with_rope(scheme, **filled).rope_frequencies()  # the scheme's own checks, before transformers sees it
    filled.pop("max_position_embeddings", None)
    filled.pop("seq_len", None)
    return {"rope_type": scheme, "rope_theta": config.rope_base, **filled}
