"""Needle-in-a-haystack harness (issue 15): a grid of lengths x depths, exact match, RULER's effective length.

- :mod:`.harness`: :func:`run_niah` -> :class:`NIAHResult` (accuracy table, records, :meth:`~NIAHResult.by_depth`
  "lost in the middle" curve, :meth:`~NIAHResult.by_length`), :func:`effective_length`, :func:`write_json` /
  :func:`load_json`.
- :mod:`.adapters`: the ``predict(prompt_ids, max_new_tokens) -> ids`` interface; :class:`TinyLMAdapter`,
  :class:`OracleAdapter`, :class:`ConstantAdapter`.
- :mod:`.hf`: :class:`~longctx_lab.lm.niah.hf.HFCausalLMAdapter` (any ``transformers`` causal LM, with or without
  its tokenizer) and :func:`~longctx_lab.lm.niah.hf.load_hf_adapter` (a name or path; imported from ``.hf``).
- :mod:`.natural`: the passkey in natural filler text for a real tokenizer (:func:`~.natural.run_natural_niah`);
  :mod:`.decoding`: greedy decoding and RoPE schedules at inference for a TinyLM or a ``transformers`` model;
  :mod:`.pretrained`: the grid on a pretrained model with a RoPE schedule, a window, attention sinks.
- :mod:`.plot`: :func:`plot_heatmap` (depth x length PNG, course style; imports matplotlib when called).

Example::

    from longctx_lab.lm.niah import OracleAdapter, run_niah, write_json
    result = run_niah(OracleAdapter("passkey"), "passkey", lengths=[64, 128], depths=[0, 0.5, 1], trials=3)
    result.effective_length()      # 128
    write_json(result, "niah.json")

Conventions and errors: docs/conventions.md.
"""

from longctx_lab.lm.niah.adapters import Adapter, ConstantAdapter, OracleAdapter, TinyLMAdapter
from longctx_lab.lm.niah.harness import (
    RULER_THRESHOLD,
    NIAHResult,
    effective_length,
    load_json,
    run_niah,
    trial_seed,
    write_json,
)


def plot_heatmap(*args, **kwargs):
    """:func:`longctx_lab.lm.niah.plot.plot_heatmap` (imported on first call, so the harness loads without it)."""
    from longctx_lab.lm.niah.plot import plot_heatmap as draw

    return draw(*args, **kwargs)


__all__ = ["RULER_THRESHOLD", "Adapter", "ConstantAdapter", "NIAHResult", "OracleAdapter", "TinyLMAdapter",
           "effective_length", "load_json", "plot_heatmap", "run_niah", "trial_seed", "write_json"]
