"""Greedy decoding and RoPE schedules at inference for the two kinds of model the NIAH probes run on.

- a :class:`longctx_lab.lm.model.TinyLM` (the course's model, also holding a pretrained model's weights):
  :func:`longctx_lab.lm.model.generate` with any cache kind (``cache="rolling"`` and ``sinks=`` for a sliding
  window with attention sinks), prefilled ``prefill_chunk`` tokens at a time;
- a Hugging Face ``transformers`` causal LM: ``model.generate(do_sample=False)``.

:func:`set_inference_rope` swaps the RoPE frequencies of either for one of chapter 2's schedules
(:mod:`longctx_lab.rope.scaling`): on a TinyLM through ``set_rope``, on a ``transformers`` Llama-style model by
overwriting its rotary embedding's ``inv_freq`` and ``attention_scaling`` (what its ``rope_parameters`` would
give; the tests check the two agree). It returns a function that restores the model's schedule.

Conventions and errors: docs/conventions.md.
"""

from __future__ import annotations

import torch

from longctx_lab.core.validate import check_int, check_number, check_optional_int

__all__ = ["INFERENCE_SCHEMES", "greedy_tokens", "is_tinylm", "set_inference_rope"]

#: RoPE schedules applied at inference to stretch a model past its trained context (``none`` = unchanged).
INFERENCE_SCHEMES = ("none", "linear", "ntk", "dynamic", "yarn")


def is_tinylm(model) -> bool:
    from longctx_lab.lm.model import TinyLM

    return isinstance(model, TinyLM)


def _check_model(model) -> None:
    if not is_tinylm(model) and not callable(getattr(model, "generate", None)):
        raise TypeError(f"model must be a TinyLM or a transformers causal LM, got {type(model).__name__}")


@torch.no_grad()
def greedy_tokens(model, prompt_ids, max_new_tokens: int, *, cache: str = "contiguous",
                  prefill_chunk: int | None = None, **cache_options) -> list[int]:
    """``max_new_tokens`` greedy token ids after ``prompt_ids`` (a list of ids) from ``model`` (module docstring).

    ``cache``, ``prefill_chunk`` and ``cache_options`` (e.g. ``sinks=4``) apply to a TinyLM only; a
    ``transformers`` model refuses anything but the defaults (``ValueError`` naming the argument).
    """
    _check_model(model)
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=1)
    prefill_chunk = check_optional_int("prefill_chunk", prefill_chunk, minimum=1)
    ids = [int(i) for i in prompt_ids]
    if not ids:
        raise ValueError("prompt_ids must hold at least one token id, got none")
    if is_tinylm(model):
        from longctx_lab.lm.model import generate

        out = generate(model, [ids], max_new_tokens, cache=cache, prefill_chunk=prefill_chunk, keep_logits=False,
                       **cache_options)
        return [int(t) for t in out.new_tokens[0]]
    if cache != "contiguous" or prefill_chunk is not None or cache_options:
        given = "cache" if cache != "contiguous" else "prefill_chunk" if prefill_chunk is not None else \
            next(iter(cache_options))
        raise ValueError(f"{given} applies to a TinyLM only (a transformers model decodes with its own cache), "
                         f"got {type(model).__name__}")
    device = next(model.parameters()).device
    tokens = torch.tensor([ids], dtype=torch.long, device=device)
    out = model.generate(tokens, attention_mask=torch.ones_like(tokens), max_new_tokens=max_new_tokens,
                         min_new_tokens=max_new_tokens, do_sample=False, pad_token_id=0)
    return [int(t) for t in out[0, len(ids):]]


def _schedule_params(scheme: str, factor: float | None, original_length: int, seq_len: int | None) -> dict:
    if scheme in ("none", "default"):
        return {}
    factor = check_number("factor", factor, exclusive_minimum=0)
    if scheme in ("linear", "ntk"):
        return {"factor": factor}
    if scheme == "dynamic":
        return {"factor": factor, "max_position_embeddings": original_length,
                "seq_len": check_optional_int("seq_len", seq_len, minimum=1)}
    return {"factor": factor, "original_max_position_embeddings": original_length}


def set_inference_rope(model, scheme: str, *, factor: float | None = None, original_length: int | None = None,
                       seq_len: int | None = None):
    """Give ``model`` RoPE schedule ``scheme`` of :data:`INFERENCE_SCHEMES` (``factor`` for all but ``none``;
    ``original_length``: the trained context, default the model's; ``seq_len``: the length ``dynamic`` is frozen
    at). Returns a no-argument function that restores the previous schedule."""
    _check_model(model)
    if scheme not in INFERENCE_SCHEMES:
        raise ValueError(f"scheme must be one of {INFERENCE_SCHEMES}, got {scheme!r}")
    if is_tinylm(model):
        config = before = model.config
        original_length = check_int("original_length", original_length or config.max_positions, minimum=1)
        params = _schedule_params(scheme, factor, original_length, seq_len)
        model.set_rope(config.with_rope("default" if scheme == "none" else scheme, **params))
        return lambda: model.set_rope(before)
    from longctx_lab.rope.scaling import rope_frequencies

    rotary = model.model.rotary_emb
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    base = (getattr(config, "rope_parameters", None) or {}).get("rope_theta") or config.rope_theta
    original_length = check_int("original_length", original_length or config.max_position_embeddings, minimum=1)
    params = _schedule_params(scheme, factor, original_length, seq_len)
    saved = (rotary.inv_freq.clone(), rotary.attention_scaling)
    inv_freq, attention_factor = rope_frequencies("default" if scheme == "none" else scheme, head_dim, base, **params)
    rotary.inv_freq = inv_freq.to(saved[0].dtype)
    rotary.attention_scaling = float(attention_factor)

    def restore():
        rotary.inv_freq, rotary.attention_scaling = saved

    return restore
