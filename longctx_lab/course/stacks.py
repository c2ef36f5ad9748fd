"""Production long-context stacks side by side, each cell tagged published / inferred / guessed, with its source.

Public API (one line each):

- ``production_stack_table(contexts=(8192, 32768, 131072, 1_000_000), *, kv_dtype="bf16", models=None)
  -> StackTable``: one :class:`StackRow` per model, ``.table()`` text, ``_repr_html_()``, ``.to_dict()``.
- ``STACK_MODELS``: the rows' keys in order (``"llama3-8b"``, ``"llama3.1-8b"``, ..., ``"smollm2-135m"`` (the course's
  runnable model), ``"gemini-1.5-sketch"``,
  ``"claude3-opus-sketch"``); ``stack_entry(key) -> StackEntry`` gives a row's config and hand-written cells.
- ``claude_sketch_config()`` / ``gemini_sketch_config()``: the articles' unsourced sketches as ``ModelConfig``.
- ``attention_share_curve(key, contexts) -> list[float | None]``: attention / (attention + MLP) FLOPs of the
  token at each context (``None`` beyond the model's context or where its MLP is unknown), from ``plan``.
- ``STACK_LAYERS``: the layers of the stack picture (position, attention, KV cache, training, distribution).
- ``Cell``: ``value``, ``text``, ``provenance`` (one of :data:`PROVENANCE`), ``source``.
- ``PROVENANCE``: ``("published", "inferred", "guessed", "not published")``.

Provenance. ``published``: the number or fact is in the maker's paper, model card or ``config.json`` (the
source says which). ``inferred``: computed here from published numbers (KV bytes and FLOPs of an open model,
through :func:`longctx_lab.lm.hf.planner.plan`). ``guessed``: nobody published it; the value is the articles' sketch
(their Gemini and "Claude 3 Opus (estimated)" architectures cite nothing) or a stand-in. ``not published``: no
value is given at all.

Numbers come from :func:`longctx_lab.lm.hf.planner.plan`: KV bytes per sequence at the model's full context
(``Plan.kv_bytes_per_sequence``, each window layer capped at its window) and, per context ``n``, the forward
FLOPs of the token at position ``n`` (``Plan.flops_per_token``: ``attention_proj``, ``attention_scores``,
``mlp``, ``lm_head``). A FLOPs cell is only filled for contexts up to the model's own context.
"""

from __future__ import annotations

import dataclasses
import html
from dataclasses import dataclass, field

from longctx_lab.core.configs import (
    LLAMA3_8B,
    LLAMA31_8B,
    LLAMA31_70B,
    LLAMA31_405B,
    MISTRAL_7B,
    MISTRAL_7B_TRAINING_CONTEXT,
    MIXTRAL_8X7B,
    SMOLLM2_135M,
    ModelConfig,
    n_params,
)
from longctx_lab.core.cost import fmt_bytes
from longctx_lab.core.validate import check_int, dtype_bytes
from longctx_lab.lm.hf.planner import plan
from longctx_lab.lm.pretrained.registry import pretrained_spec

__all__ = [
    "PROVENANCE",
    "STACK_MODELS",
    "Cell",
    "StackEntry",
    "StackRow",
    "StackTable",
    "STACK_LAYERS",
    "attention_share_curve",
    "claude_sketch_config",
    "gemini_sketch_config",
    "production_stack_table",
    "stack_entry",
]

PROVENANCE = ("published", "inferred", "guessed", "not published")
STACK_LAYERS = ("position", "attention", "kv_cache", "training", "distribution")

LLAMA3_PAPER = "Llama Team, 'The Llama 3 Herd of Models' (arXiv 2407.21783)"
MISTRAL_PAPER = "Jiang et al. 2023, 'Mistral 7B' (arXiv 2310.06825)"
MIXTRAL_PAPER = "Jiang et al. 2024, 'Mixtral of Experts' (arXiv 2401.04088)"
GEMINI_REPORT = "Gemini Team 2024, 'Gemini 1.5: Unlocking multimodal understanding across millions of tokens of " \
                "context' (arXiv 2403.05530)"
SMOLLM2_CARD = "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct (model card)"
CLAUDE_CARD = "Anthropic, 'The Claude 3 Model Family: Opus, Sonnet, Haiku' model card (March 2024)"
ARTICLE_SKETCH = "the articles, unsourced"


@dataclass(frozen=True)
class Cell:
    """One table cell: ``value`` (a number, a tuple, a dict or ``None``), its ``text``, ``provenance`` (one of
    :data:`PROVENANCE`) and ``source`` (a paper, a ``config.json``, or "the articles, unsourced")."""

    value: object
    text: str
    provenance: str
    source: str

    def __post_init__(self):
        if self.provenance not in PROVENANCE:
            raise ValueError(f"provenance must be one of {PROVENANCE}, got {self.provenance!r}")
        for name in ("text", "source"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise TypeError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")

    def label(self) -> str:
        return f"{self.text} [{self.provenance}]"


def claude_sketch_config() -> ModelConfig:
    """The "Claude 3 Opus (estimated)" class of How Long-Context Models Work: Technical Architecture as a config:
    80 layers, 64 heads, 8 KV heads,
    d_model 8192, a 4096 window with global attention every 8th layer (10 global, 70 windowed layers), 200K
    context. Its MLP and vocabulary are not given; Llama 3.1 70B's stand in (they change no KV byte)."""
    layers, every = 80, 8
    return dataclasses.replace(
        LLAMA31_70B, name="the article's 'Claude 3 Opus (estimated)' sketch", n_layers=layers, n_heads=64,
        n_kv_heads=8, head_dim=8192 // 64, hidden_size=8192, max_context=200_000, sliding_window=4096,
        sliding_window_layers=layers - layers // every, published_params=None,
        source="How Long-Context Models Work: Technical Architecture, class Claude3Opus (no source given)")


# The article's Gemini FLOP estimate: "d_k = 128 and H = 16 (a conservative configuration)", "64 layers", 10M tokens.
GEMINI_SKETCH_LAYERS, GEMINI_SKETCH_HEADS, GEMINI_SKETCH_HEAD_DIM = 64, 16, 128
GEMINI_RESEARCH_CONTEXT = 10_000_000


def gemini_sketch_config() -> ModelConfig:
    """The production article's Gemini 1.5 numbers as a config: 64 layers of 16 heads of 128 (its "conservative
    configuration"), full attention, 10M tokens. It names no KV-head count, so every head keeps K and V
    (multi-head attention). Everything else is a stand-in (MLP 4 x hidden, a 256K vocabulary, dense): the
    chapter reports no MLP FLOPs and no parameter count for it. Google has published none of these numbers."""
    hidden = GEMINI_SKETCH_HEADS * GEMINI_SKETCH_HEAD_DIM
    return ModelConfig(
        name="the article's Gemini 1.5 sketch", n_layers=GEMINI_SKETCH_LAYERS, n_heads=GEMINI_SKETCH_HEADS,
        n_kv_heads=GEMINI_SKETCH_HEADS, head_dim=GEMINI_SKETCH_HEAD_DIM, hidden_size=hidden,
        intermediate_size=4 * hidden, vocab_size=256_000, max_context=GEMINI_RESEARCH_CONTEXT, rope_theta=10000.0,
        published_params=None,
        source="the production article's attention-FLOP example (H = 16, d_k = 128, 64 layers, 10M tokens); "
        "Gemini's architecture is not published",
    )


@dataclass(frozen=True)
class StackEntry:
    """A row's inputs: the ``config`` behind its numbers, ``guessed`` (True: the architecture is the articles'
    sketch, so every computed cell is guessed, not inferred), ``mlp_known`` (False: report no MLP FLOPs), and the
    hand-written cells (``context``, ``position``, ``attention``, ``kv_heads``, ``moe``, ``training``,
    ``distribution``; a missing one is derived from the config as published)."""

    key: str
    config: ModelConfig
    config_source: str
    guessed: bool = False
    mlp_known: bool = True
    cells: dict[str, Cell] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def _rope_text(config: ModelConfig) -> str:
    text = f"RoPE, base {config.rope_theta:,.0f}"
    s = config.rope_scaling
    if s:
        text += (f"; {s.get('rope_type', '?')} scaling x{s.get('factor', '?'):g} from "
                 f"{s.get('original_max_position_embeddings', 0):,} (low {s.get('low_freq_factor', '?'):g}, "
                 f"high {s.get('high_freq_factor', '?'):g})")
    return text


def _attention_text(config: ModelConfig) -> str:
    if config.sliding_window is None:
        return f"full causal attention in all {config.n_layers} layers"
    full = config.n_layers - config.n_sliding_layers
    text = f"sliding window {config.sliding_window:,} in {config.n_sliding_layers} layers"
    return text + (f", full attention in {full}" if full else " (all)")


def _kv_heads_text(config: ModelConfig) -> str:
    g = config.group_size
    kind = "MHA" if g == 1 else ("MQA" if config.n_kv_heads == 1 else f"GQA, group {g}")
    return f"{config.n_kv_heads} of {config.n_heads} ({kind}), head_dim {config.head_dim}"


def _llama(key: str, config: ModelConfig, hf: str, *, long: bool) -> StackEntry:
    src = f"{hf} config.json"
    training = (Cell(None, "8K pre-training, then continued pre-training in six stages from 8K to 128K "
                           "(about 800B tokens)", "published", f"{LLAMA3_PAPER}, Section 3.4.2")
                if long else Cell(None, "pre-trained at 8K (the 3.1 release extends it to 128K)", "published",
                                  f"{LLAMA3_PAPER}, Section 3.4"))
    return StackEntry(key, config, src, cells={
        "training": training,
        "distribution": Cell(None, "4D parallelism: tensor, pipeline, context (all-gather K/V) and FSDP data "
                                   "parallelism", "published", f"{LLAMA3_PAPER}, Section 3.3.2"),
    })


def _smollm2() -> StackEntry:
    """The course's runnable model (chapter 6 measures it): its registry entry gives the trained context,
    source and licence; its shape is :data:`~longctx_lab.core.configs.SMOLLM2_135M`."""
    spec = pretrained_spec("smollm2-135m")
    src = "HuggingFaceTB/SmolLM2-135M-Instruct config.json"
    total = n_params(SMOLLM2_135M)
    return StackEntry("smollm2-135m", SMOLLM2_135M, src, cells={
        "context": Cell(spec.trained_context, f"{spec.trained_context:,} (trained context, "
                                              "max_position_embeddings)", "published",
                        f"{src}; longctx_lab.lm.pretrained.PRETRAINED_MODELS['smollm2-135m']"),
        "moe": Cell((total, total), f"dense, {total / 1e6:.1f}e6 with tied embeddings", "inferred",
                    f"longctx_lab.core.configs.n_params on {src} ({SMOLLM2_CARD}: 135M)"),
        "training": Cell(None, f"trained at {spec.trained_context:,} tokens", "published", SMOLLM2_CARD),
        "distribution": Cell(None, "none needed here: it runs on one CPU", "inferred",
                             f"longctx_lab.lm.hf.planner.plan on {src}"),
    }, notes=(f"licence {spec.licence}; source {SMOLLM2_CARD}; the course loads it from {spec.source}",))


def _entries() -> dict[str, StackEntry]:
    not_pub = "not published"
    mistral_src = "mistralai/Mistral-7B-v0.1 config.json"
    mixtral_src = "mistralai/Mixtral-8x7B-v0.1 config.json"
    gemini = gemini_sketch_config()
    claude = claude_sketch_config()
    entries = [
        _llama("llama3-8b", LLAMA3_8B, "meta-llama/Meta-Llama-3-8B", long=False),
        _llama("llama3.1-8b", LLAMA31_8B, "meta-llama/Llama-3.1-8B", long=True),
        _llama("llama3.1-70b", LLAMA31_70B, "meta-llama/Llama-3.1-70B", long=True),
        _llama("llama3.1-405b", LLAMA31_405B, "meta-llama/Llama-3.1-405B", long=True),
        StackEntry("mistral-7b", MISTRAL_7B, mistral_src, cells={
            "context": Cell(MISTRAL_7B.max_context,
                            f"{MISTRAL_7B.max_context:,} (max_position_embeddings; trained at "
                            f"{MISTRAL_7B_TRAINING_CONTEXT:,})", "published",
                            f"{mistral_src}; {MISTRAL_PAPER}, Table 1 (context_len 8192)"),
            "training": Cell(None, f"trained at {MISTRAL_7B_TRAINING_CONTEXT:,} tokens; no long-context recipe "
                                   "published", "published", f"{MISTRAL_PAPER}, Table 1"),
            "distribution": Cell(None, not_pub, "not published", MISTRAL_PAPER),
        }, notes=("the rolling buffer keeps 4,096 tokens per layer, so the KV bytes stop growing at the window",)),
        StackEntry("mixtral-8x7b", MIXTRAL_8X7B, mixtral_src, cells={
            "attention": Cell(None, "full causal attention in all 32 layers (sliding_window null; the article's "
                                    "'sliding window (w=4K)' is Mistral 7B's)", "published", mixtral_src),
            "training": Cell(None, "trained with a 32K context", "published", MIXTRAL_PAPER),
            "distribution": Cell(None, not_pub, "not published", MIXTRAL_PAPER),
        }),
        _smollm2(),
        StackEntry("gemini-1.5-sketch", gemini, ARTICLE_SKETCH, guessed=True, mlp_known=False, cells={
            "context": Cell(GEMINI_RESEARCH_CONTEXT, "10,000,000 in research; up to 1M-2M in production",
                            "published", f"{GEMINI_REPORT}"),
            "position": Cell(None, "not published (the article: 'likely RoPE variant')", "guessed",
                             ARTICLE_SKETCH),
            "attention": Cell(None, "not published (the article: 'full + Ring Attention'); computed here as full "
                                    "attention over 64 layers of 16 heads of 128", "guessed", ARTICLE_SKETCH),
            "kv_heads": Cell(GEMINI_SKETCH_HEADS, "not published (the article: 'likely GQA'); computed here with "
                                                  "16 of 16", "guessed", ARTICLE_SKETCH),
            "moe": Cell(None, "a sparse mixture of experts; expert count, sizes and active parameters not "
                              "published", "published", GEMINI_REPORT),
            "training": Cell(None, not_pub, "not published", GEMINI_REPORT),
            "distribution": Cell(None, "not published (the article: Ring Attention across TPU pods)", "guessed",
                                 ARTICLE_SKETCH),
        }, notes=("Gemini's architecture is not published: every computed number of this row is the article's "
                  "guess, and the MLP is unknown (no MLP FLOPs shown)",)),
        StackEntry("claude3-opus-sketch", claude, ARTICLE_SKETCH, guessed=True, cells={
            "context": Cell(200_000, "200,000", "published", CLAUDE_CARD),
            "position": Cell(None, "RoPE base 10,000 with YaRN (the article's sketch)", "guessed", ARTICLE_SKETCH),
            "moe": Cell(None, "dense (the article's sketch: '70B params'); not published", "guessed",
                        ARTICLE_SKETCH),
            "training": Cell(None, not_pub, "not published", CLAUDE_CARD),
            "distribution": Cell(None, not_pub, "not published", CLAUDE_CARD),
        }, notes=("Anthropic has not published Claude 3's architecture: this row is the article's estimate; its "
                  "MLP is Llama 3.1 70B's, a stand-in",)),
    ]
    return {e.key: e for e in entries}


STACK_MODELS: tuple[str, ...] = tuple(_entries())


def stack_entry(key: str) -> StackEntry:
    """The :class:`StackEntry` of ``key`` (one of :data:`STACK_MODELS`)."""
    if not isinstance(key, str):
        raise TypeError(f"key must be a string, got {type(key).__name__}")
    entries = _entries()
    if key not in entries:
        raise ValueError(f"key must be one of {STACK_MODELS}, got {key!r}")
    return entries[key]


@dataclass(frozen=True)
class StackRow:
    """One model: ``cells`` (``context``, ``position``, ``attention``, ``kv_heads``, ``kv_bytes``, ``moe``,
    ``kv_cache``, ``training``, ``distribution``) and ``flops`` (context -> :class:`Cell` whose value is
    ``{"attention_proj", "attention_scores", "mlp", "lm_head", "attention_share"}`` or ``None`` beyond the
    model's context; ``attention_share`` = (projections + scores) / (projections + scores + MLP), ``None``
    when the MLP is unknown)."""

    key: str
    model: str
    cells: dict[str, Cell]
    flops: dict[int, Cell]
    notes: tuple[str, ...] = ()


COLUMNS = ("context", "position", "attention", "kv_heads", "kv_bytes", "moe")


@dataclass(frozen=True, repr=False)
class StackTable:
    """The rows of :func:`production_stack_table`, with the ``contexts`` of their FLOPs cells (prints as
    :meth:`table`; a notebook shows the HTML table)."""

    rows: tuple[StackRow, ...]
    contexts: tuple[int, ...]
    kv_dtype: str

    def row(self, key: str) -> StackRow:
        for r in self.rows:
            if r.key == key:
                return r
        raise ValueError(f"key must be one of {[r.key for r in self.rows]}, got {key!r}")

    def headers(self) -> list[str]:
        return (["model", "context", "position", "attention", "KV heads", f"KV bytes at full context ({self.kv_dtype})",
                 "MoE"] + [f"attention share of attn+MLP FLOPs, token {c:,}" for c in self.contexts])

    def _cells(self, r: StackRow) -> list[Cell | None]:
        return [r.cells[c] for c in COLUMNS] + [r.flops[c] for c in self.contexts]

    def __repr__(self) -> str:
        return self.table()

    def table(self) -> str:
        """One block per model: each cell's text, provenance and source, then the notes."""
        lines = []
        names = ["context", "position", "attention", "KV heads", f"KV bytes ({self.kv_dtype})", "MoE"]
        names += [f"FLOPs, token {c:,}" for c in self.contexts]
        width = max(map(len, names))
        for r in self.rows:
            lines.append(r.model)
            for name, cell in zip(names, self._cells(r)):
                lines.append(f"  {name:<{width}}  {cell.text} [{cell.provenance}; {cell.source}]")
            lines += [f"  note: {n}" for n in r.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        colours = {"published": "#1b7837", "inferred": "#2166ac", "guessed": "#b2182b", "not published": "#777777"}
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers())
        body = []
        for r in self.rows:
            tds = [f"<td><b>{html.escape(r.model)}</b></td>"]
            for cell in self._cells(r):
                tds.append(f"<td title='{html.escape(cell.source, quote=True)}'>{html.escape(cell.text)}<br>"
                           f"<small style='color:{colours[cell.provenance]}'>{cell.provenance}</small></td>")
            body.append("<tr>" + "".join(tds) + "</tr>")
        legend = ("<p><small>published: in the maker's paper, model card or config.json; inferred: computed here "
                  "from published numbers (longctx_lab.lm.hf.planner.plan); guessed: the articles' unsourced sketch "
                  "or a "
                  "stand-in; hover a cell for its source.</small></p>")
        notes = "".join(f"<li>{html.escape(r.model)}: {html.escape(n)}</li>" for r in self.rows for n in r.notes)
        return f"<table><tr>{head}</tr>{''.join(body)}</table>{legend}<ul>{notes}</ul>"

    def to_dict(self) -> dict:
        def cell(c: Cell) -> dict:
            return dataclasses.asdict(c)

        return {"contexts": list(self.contexts), "kv_dtype": self.kv_dtype,
                "rows": [{"key": r.key, "model": r.model, "cells": {k: cell(c) for k, c in r.cells.items()},
                          "flops": {str(n): cell(c) for n, c in r.flops.items()}, "notes": list(r.notes)}
                         for r in self.rows]}


def _row(entry: StackEntry, contexts: tuple[int, ...], kv_dtype: str) -> StackRow:
    cfg = entry.config
    computed = "guessed" if entry.guessed else "inferred"
    shape_tag = "guessed" if entry.guessed else "published"
    computed_src = (f"longctx_lab.lm.hf.planner.plan on {ARTICLE_SKETCH if entry.guessed else entry.config_source}")
    full = plan(cfg, context=cfg.max_context, dtype="bf16", kv_dtype=kv_dtype)
    cells = {
        "context": Cell(cfg.max_context, f"{cfg.max_context:,}", shape_tag, entry.config_source),
        "position": Cell(cfg.rope_theta, _rope_text(cfg), shape_tag, entry.config_source),
        "attention": Cell(cfg.sliding_window, _attention_text(cfg), shape_tag, entry.config_source),
        "kv_heads": Cell(cfg.n_kv_heads, _kv_heads_text(cfg), shape_tag, entry.config_source),
        "kv_bytes": Cell(full.kv_bytes_per_sequence, f"{fmt_bytes(full.kv_bytes_per_sequence)} at "
                                                     f"{cfg.max_context:,} tokens", computed, computed_src),
    }
    if cfg.n_experts > 1:
        cells["moe"] = Cell((full.params_active, full.params_total),
                            f"{cfg.n_experts} experts, top {cfg.experts_per_token}: {full.params_active / 1e9:.1f}e9 "
                            f"active of {full.params_total / 1e9:.1f}e9", computed,
                            f"{computed_src} (longctx_lab.core.configs.n_params); {MIXTRAL_PAPER}: 12.9B active, 46.7B")
    else:
        cells["moe"] = Cell((full.params_total, full.params_total), f"dense, {full.params_total / 1e9:.1f}e9",
                            computed, f"{computed_src} (longctx_lab.core.configs.n_params)")
    cells.update(entry.cells)
    per_token = full.kv_bytes_per_token
    cells["kv_cache"] = Cell(per_token, f"{_kv_heads_text(cfg).split(',')[0]}: {fmt_bytes(per_token)} per token, "
                                        f"{fmt_bytes(full.kv_bytes_per_sequence)} at {cfg.max_context:,}",
                             computed, computed_src)
    flops = {}
    for n in contexts:
        if n > cfg.max_context:
            flops[n] = Cell(None, f"beyond its {cfg.max_context:,}-token context", shape_tag, entry.config_source)
            continue
        f = plan(cfg, context=n, dtype="bf16", kv_dtype=kv_dtype).flops_per_token
        attn = f["attention_proj"] + f["attention_scores"]
        value = {k: f[k] for k in ("attention_proj", "attention_scores", "mlp", "lm_head")}
        if entry.mlp_known:
            value["attention_share"] = _share(f)
            text = (f"{value['attention_share']:.1%} (attention {attn:.3g}: scores {f['attention_scores']:.3g}; "
                    f"MLP {f['mlp']:.3g})")
        else:
            value["mlp"] = None
            value["attention_share"] = None
            text = f"attention {attn:.3g} (scores {f['attention_scores']:.3g}); MLP not published"
        flops[n] = Cell(value, text, computed, computed_src)
    return StackRow(entry.key, cfg.name, cells, flops, entry.notes)


def _share(f: dict) -> float:
    attn = f["attention_proj"] + f["attention_scores"]
    return attn / (attn + f["mlp"])


def attention_share_curve(key: str, contexts, *, kv_dtype="bf16") -> list[float | None]:
    """(attention projections + scores) / (those + MLP) forward FLOPs of the token at each of ``contexts``
    (:func:`longctx_lab.lm.hf.planner.plan`), ``None`` beyond the model's context or when its MLP is not known."""
    entry = stack_entry(key)
    contexts = [check_int("contexts", c, minimum=1) for c in contexts]
    return [None if (n > entry.config.max_context or not entry.mlp_known)
            else _share(plan(entry.config, context=n, kv_dtype=kv_dtype).flops_per_token) for n in contexts]


def production_stack_table(contexts=(8192, 32768, 131072, 1_000_000), *, kv_dtype="bf16",
                           models=None) -> StackTable:
    """The stack table: one row per model in ``models`` (keys of :data:`STACK_MODELS`, default all).

    ``contexts``: token positions (integers >= 1) at which to report the FLOPs of one token;
    ``kv_dtype``: the KV-cache dtype of the bytes column (``"bf16"``, ``"fp8"``...). See the module docstring
    for what each provenance tag means.
    """
    if isinstance(contexts, int | str):
        raise TypeError(f"contexts must be a sequence of integers, got {type(contexts).__name__}")
    contexts = tuple(check_int("contexts", c, minimum=1) for c in contexts)
    if not contexts:
        raise ValueError("contexts must hold at least one context length, got an empty sequence")
    dtype_bytes(kv_dtype, "kv_dtype")
    keys = STACK_MODELS if models is None else tuple(models)
    if not keys:
        raise ValueError("models must name at least one model, got an empty sequence")
    entries = _entries()
    for key in keys:
        if key not in entries:
            raise ValueError(f"models must hold keys of {STACK_MODELS}, got {key!r}")
    name = kv_dtype if isinstance(kv_dtype, str) else str(kv_dtype).removeprefix("torch.")
    return StackTable(tuple(_row(entries[k], contexts, kv_dtype) for k in keys), contexts, name)
