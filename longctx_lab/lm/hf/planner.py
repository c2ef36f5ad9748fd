"""Plan a model on a GPU: weights, KV cache, FLOPs per token, and the longest context / largest batch that fit.

:func:`plan` puts the formulas of :mod:`longctx_lab.core.cost` and :mod:`longctx_lab.core.configs` behind one
call that takes a Hugging Face ``config.json`` (:mod:`longctx_lab.lm.hf.config`), and returns a
:class:`Plan` that prints as a table (``table()``, ``_repr_html_`` in a notebook) or a dict
(``to_dict()``, what ``longctx-lab plan --json`` prints). Conventions (see docs/conventions.md):

* Bytes are bytes; tables print GiB (2**30) and GB (1e9). ``gpu_mem_gib`` is in GiB.
* KV bytes per token: K and V of one token in every layer. Per sequence at ``context`` tokens: a
  sliding-window layer keeps at most ``w`` tokens (its rolling buffer), a full layer all of them.
* FLOPs per token: the forward pass of the token at position ``context`` (1-based), 2 FLOPs per
  multiply-add: the weight matmuls (active experts only) plus ``S = QK^T`` and ``O = PV`` over the
  ``context`` keys it attends to (``min(context, w)`` in a window layer).
* What fits counts weights (all experts) and the KV cache only: activations, the CUDA context and
  allocator fragmentation need more, so treat the limits as upper bounds.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from longctx_lab.core.configs import ModelConfig, n_params
from longctx_lab.core.cost import (
    GiB,
    attention_score_flops_for,
    fmt_bytes,
    kv_cache_bytes_for,
    matmul_flops_per_token,
    max_seq_len_within,
    weights_bytes,
)
from longctx_lab.core.validate import check_int, check_number, dtype_bytes
from longctx_lab.lm.hf.config import from_hf_config

__all__ = ["Plan", "plan"]


@dataclass(frozen=True)
class Plan:
    """One model at one context, batch and precision, and what fits in ``gpu_mem_bytes``.

    ``flops_per_token`` has ``attention_proj``, ``attention_scores``, ``mlp``, ``lm_head`` and
    ``total``. Without a GPU size the fit fields are ``None``. When the weights alone do not fit,
    ``fits`` is False and ``max_context``/``max_batch`` are ``None`` (never a negative number);
    ``max_context`` is also ``None`` with ``max_context_unbounded`` True when every layer has a
    window whose cache fits, so memory never limits the context. ``verdict`` says it in words.
    """

    model: str
    source: str
    context: int
    batch: int
    dtype: str
    kv_dtype: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    sliding_window: int | None
    n_sliding_layers: int
    max_position_embeddings: int
    params_total: int
    params_active: int
    weights_bytes: int
    kv_bytes_per_token: int
    kv_bytes_per_sequence: int
    kv_bytes_batch: int
    flops_per_token: dict[str, int]
    gpu_mem_bytes: int | None = None
    fits: bool | None = None
    max_context: int | None = None
    max_context_unbounded: bool = False
    max_batch: int | None = None
    verdict: str = ""
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        """Every field, JSON-ready (``notes`` as a list)."""
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d

    def rows(self) -> list[tuple[str, str]]:
        """``(label, text)`` rows, the content of :meth:`table` and :meth:`_repr_html_`."""
        full = self.n_layers - self.n_sliding_layers
        attn = f"full attention in {full} layers" if full else "no full-attention layer"
        if self.n_sliding_layers:
            attn += f", a {self.sliding_window:,}-token window in {self.n_sliding_layers}"
        params = f"{self.params_total:,} ({self.params_total / 1e9:.2f}e9)"
        if self.params_active != self.params_total:
            params += f"; {self.params_active:,} ({self.params_active / 1e9:.2f}e9) active per token"
        f = self.flops_per_token
        rows = [
            ("model", f"{self.model}, {self.source}"),
            ("shape", f"{self.n_layers} layers, {self.n_heads} query / {self.n_kv_heads} KV heads "
                      f"(group {self.n_heads // self.n_kv_heads}), head_dim {self.head_dim}; {attn}"),
            ("parameters", params),
            (f"weights ({self.dtype})", fmt_bytes(self.weights_bytes)),
            (f"KV cache ({self.kv_dtype})", f"{fmt_bytes(self.kv_bytes_per_token)} per token"),
            (f"KV at {self.context:,} tokens", f"{fmt_bytes(self.kv_bytes_per_sequence)} per sequence, "
                                               f"{fmt_bytes(self.kv_bytes_batch)} for batch {self.batch}"),
            (f"FLOPs, token {self.context:,}", f"{f['total']:.4g} forward, attending to {self.context:,} keys"
                                              + (f" ({self.sliding_window:,} in window layers)"
                                                 if self.n_sliding_layers and self.sliding_window < self.context
                                                 else "")),
            ("  attention", f"{f['attention_proj']:.4g} projections + {f['attention_scores']:.4g} scores"),
            ("  MLP, LM head", f"{f['mlp']:.4g}, {f['lm_head']:.4g}"),
        ]
        if self.gpu_mem_bytes is not None:
            rows.append((f"GPU {self.gpu_mem_bytes / GiB:g} GiB", self.verdict))
            if self.max_context_unbounded:
                rows.append((f"longest context, batch {self.batch}", "not limited by memory (every layer windowed)"))
            elif self.max_context is not None:
                rows.append((f"longest context, batch {self.batch}", f"{self.max_context:,} tokens"))
            if self.max_batch is not None:
                rows.append((f"largest batch, {self.context:,} tokens", f"{self.max_batch:,}"))
        rows += [("note", n) for n in self.notes]
        return rows

    def table(self) -> str:
        """The plan as aligned text, one row per line."""
        rows = self.rows()
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}}  {text}" for label, text in rows)

    def __str__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(a)}</th><td style='text-align:left'>"
                       f"{html.escape(b)}</td></tr>" for a, b in self.rows())
        return f"<table>{body}</table>"


def _dtype_name(dtype, name: str) -> str:
    """``dtype``'s name, after :func:`dtype_bytes` has checked it (the error names ``name``)."""
    dtype_bytes(dtype, name)
    return dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")


def _fit(config: ModelConfig, context: int, batch: int, kv_dtype, weights: int, kv_batch: int, gpu: int) -> dict:
    """The fit fields of :class:`Plan` for a GPU of ``gpu`` bytes."""
    if weights > gpu:
        return {"fits": False, "verdict": f"does not fit: the weights alone need {fmt_bytes(weights)}, more than "
                                          f"the GPU's {fmt_bytes(gpu)}"}
    budget = gpu - weights

    def kv_at(n: int) -> int:
        return kv_cache_bytes_for(config, n, dtype=kv_dtype, batch=batch)

    unbounded = config.n_sliding_layers == config.n_layers and kv_at(config.sliding_window) <= budget
    max_context = None if unbounded else max_seq_len_within(budget, kv_at)
    per_sequence = kv_cache_bytes_for(config, context, dtype=kv_dtype)
    max_batch = budget // per_sequence
    used = weights + kv_batch
    if used <= gpu:
        verdict = (f"fits: weights {fmt_bytes(weights)} + KV cache {fmt_bytes(kv_batch)} = {fmt_bytes(used)}, "
                   f"{fmt_bytes(gpu - used)} left")
    else:
        largest = (f"the largest batch at {context:,} tokens is {max_batch:,}" if max_batch
                   else f"not one sequence of {context:,} tokens fits")
        verdict = (f"does not fit: weights {fmt_bytes(weights)} + KV cache {fmt_bytes(kv_batch)} = "
                   f"{fmt_bytes(used)}, more than the GPU's {fmt_bytes(gpu)}; {largest}")
    return {"fits": used <= gpu, "verdict": verdict, "max_context": max_context,
            "max_context_unbounded": unbounded, "max_batch": max_batch}


def plan(
    config: ModelConfig | Mapping | str | os.PathLike,
    *,
    context: int | None = None,
    batch: int = 1,
    dtype="bf16",
    kv_dtype=None,
    gpu_mem_gib: float | None = None,
) -> Plan:
    """Weights, KV cache and FLOPs per token of ``config`` at ``context`` tokens, and what fits on a GPU.

    ``config``: a :class:`ModelConfig`, a ``config.json`` dict or path, or a shipped config's name
    (:func:`longctx_lab.lm.hf.config.shipped_configs`). ``context`` defaults to the model's
    ``max_position_embeddings``; ``dtype`` is the weights' (``"bf16"``, ``"fp8"``, ``"int4"``...),
    ``kv_dtype`` the cache's (default: ``dtype``). ``gpu_mem_gib`` (GiB) adds the longest context at
    ``batch`` and the largest batch at ``context`` that fit beside the weights, or says "does not fit".
    """
    if not isinstance(config, ModelConfig):
        config = from_hf_config(config)
    context = config.max_context if context is None else check_int("context", context, minimum=1)
    batch = check_int("batch", batch, minimum=1)
    dtype_name = _dtype_name(dtype, "dtype")
    kv_dtype = dtype if kv_dtype is None else kv_dtype
    kv_name = _dtype_name(kv_dtype, "kv_dtype")
    gpu = None if gpu_mem_gib is None else int(check_number("gpu_mem_gib", gpu_mem_gib, exclusive_minimum=0) * GiB)

    weights = weights_bytes(config, dtype=dtype)
    kv_sequence = kv_cache_bytes_for(config, context, dtype=kv_dtype)
    kv_batch = kv_cache_bytes_for(config, context, dtype=kv_dtype, batch=batch)
    flops = dict(matmul_flops_per_token(config))
    flops["attention_scores"] = attention_score_flops_for(config, 1, context)
    flops["total"] = sum(flops.values())
    notes = []
    if context > config.max_context:
        notes.append(f"context {context:,} is beyond the model's max_position_embeddings {config.max_context:,}")
    fit = {} if gpu is None else _fit(config, context, batch, kv_dtype, weights, kv_batch, gpu)
    if fit.get("max_context") and fit["max_context"] > config.max_context:
        notes.append(f"memory allows {fit['max_context']:,} tokens, beyond max_position_embeddings "
                     f"{config.max_context:,}")
    if gpu is not None:
        notes.append("weights and KV cache only: activations, the CUDA context and fragmentation need more")
    return Plan(
        model=config.name, source=config.source, context=context, batch=batch, dtype=dtype_name, kv_dtype=kv_name,
        n_layers=config.n_layers, n_heads=config.n_heads, n_kv_heads=config.n_kv_heads, head_dim=config.head_dim,
        sliding_window=config.sliding_window, n_sliding_layers=config.n_sliding_layers,
        max_position_embeddings=config.max_context, params_total=n_params(config),
        params_active=n_params(config, active=True), weights_bytes=weights,
        kv_bytes_per_token=kv_cache_bytes_for(config, 1, dtype=kv_dtype), kv_bytes_per_sequence=kv_sequence,
        kv_bytes_batch=kv_batch, flops_per_token=flops, gpu_mem_bytes=gpu, notes=tuple(notes), **fit,
    )
