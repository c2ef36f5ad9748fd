"""The natural-filler passkey grid on a pretrained model held by a :class:`~longctx_lab.lm.model.TinyLM`, with the
inference-time changes the command line offers: a RoPE schedule of chapter 2, a sliding window, attention sinks.

:func:`run_pretrained_niah` wraps :func:`longctx_lab.lm.niah.natural.run_natural_niah`:

- ``rope``: a scheme of :data:`longctx_lab.rope.ROPE_SCHEMES` with ``rope_params`` (the trained length filled in
  by :func:`longctx_lab.lm.pretrained.rope_params_for`); ``"dynamic"`` is frozen at each length's longest prompt;
  the model's own schedule is restored afterwards.
- ``window``: every layer attends to its last ``window`` keys, through rolling caches
  (:class:`longctx_lab.kvcache.RollingKVCache`), on a copy of the model that shares no state with it;
  ``sinks``: the first ``sinks`` tokens stay visible too (StreamingLLM). The prompt is prefilled
  ``prefill_chunk`` tokens at a time.

:data:`MAX_PROMPT_LENGTH` is the longest prompt accepted (32,768 tokens: four times SmolLM2-135M's trained
context, and about 15 minutes per trial on 2 CPU cores). Conventions and errors: docs/conventions.md.
"""

from __future__ import annotations

import dataclasses

from longctx_lab.core.validate import check_int, check_optional_int
from longctx_lab.lm.niah.harness import NIAHResult, _lengths

__all__ = ["MAX_PROMPT_LENGTH", "run_pretrained_niah", "windowed_copy"]

MAX_PROMPT_LENGTH = 32_768


def windowed_copy(model, window: int):
    """A new TinyLM with ``model``'s weights whose every layer has a sliding window of ``window`` keys."""
    from longctx_lab.lm.model import TinyLM

    if not isinstance(model, TinyLM):
        raise TypeError(f"model must be a TinyLM, got {type(model).__name__}")
    window = check_int("window", window, minimum=1)
    copy = TinyLM(dataclasses.replace(model.config, sliding_window=window)).to(device=model.device, dtype=model.dtype)
    copy.load_state_dict(model.state_dict())
    copy.rope = model.rope
    return copy.eval()


def check_prompt_lengths(lengths) -> list[int]:
    """``lengths`` as a sorted list of distinct integers in ``[1, MAX_PROMPT_LENGTH]`` (``ValueError`` naming it)."""
    lengths = _lengths(lengths)
    if lengths[-1] > MAX_PROMPT_LENGTH:
        raise ValueError(f"lengths must be at most {MAX_PROMPT_LENGTH} tokens (MAX_PROMPT_LENGTH), got {lengths[-1]}")
    return lengths


def run_pretrained_niah(model, tokenizer, *, lengths, depths=(0.0, 0.25, 0.5, 0.75, 1.0), trials: int = 3,
                        seed: int = 0, rope: str | None = None, rope_params: dict | None = None,
                        window: int | None = None, sinks: int = 0, prefill_chunk: int = 512,
                        show_progress: bool = True) -> NIAHResult:
    """The passkey grid on ``model`` (a TinyLM) with a RoPE schedule, a window and sinks (module docstring)."""
    from longctx_lab.lm.model import TinyLM
    from longctx_lab.lm.niah.natural import run_natural_niah
    from longctx_lab.lm.pretrained import rope_params_for

    if not isinstance(model, TinyLM):
        raise TypeError(f"model must be a TinyLM (load_pretrained(..., backend='tinylm')), got {type(model).__name__}")
    lengths = check_prompt_lengths(lengths)
    window = check_optional_int("window", window, minimum=1)
    sinks = check_int("sinks", sinks, minimum=0)
    prefill_chunk = check_int("prefill_chunk", prefill_chunk, minimum=1)
    if sinks and window is None:
        raise ValueError(f"sinks needs a window (sinks are kept beside a sliding window), got sinks={sinks}, "
                         "window=None")
    trained = model.config
    params = rope_params_for(trained, rope, **(rope_params or {})) if rope is not None else {}
    runner = model if window is None else windowed_copy(model, window)
    if rope is not None:
        runner.set_rope(trained.with_rope(rope, **params))

    def freeze_dynamic(prompt_len: int) -> None:
        runner.set_rope(trained.with_rope("dynamic", **params, seq_len=prompt_len))

    options = {"rope": rope, "rope_params": params, "window": window, "sinks": sinks}
    decode = {"cache": "rolling", "prefill_chunk": prefill_chunk, "sinks": sinks} if window is not None else {}
    try:
        return run_natural_niah(runner, tokenizer, lengths=lengths, depths=depths, trials=trials, seed=seed,
                                show_progress=show_progress, options=options, decode_options=decode,
                                before_length=freeze_dynamic if rope == "dynamic" else None)
    finally:
        if runner is model:
            model.set_rope(trained)
