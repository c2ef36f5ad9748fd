"""Pictures of the production stacks for chapter 7 (matplotlib; each function returns its figure).

Public API (one line each):

- ``plot_attention_share(models=None, *, contexts=None, ax=None) -> Figure``: attention's share of the
  attention + MLP forward FLOPs of one token vs context, one line per model (:func:`.stacks.attention_share_curve`).
- ``plot_stack_layers(table=None) -> Figure``: per model, the five layers of the stack (position, attention,
  KV cache, training recipe, distribution), each box coloured by its provenance.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from longctx_lab.core.display import PALETTE
from longctx_lab.course.stacks import (
    STACK_LAYERS,
    STACK_MODELS,
    StackTable,
    attention_share_curve,
    production_stack_table,
    stack_entry,
)

__all__ = ["PROVENANCE_COLOURS", "plot_attention_share", "plot_stack_layers"]

PROVENANCE_COLOURS = {"published": "#c7e9c0", "inferred": "#c6dbef", "guessed": "#fcbba1", "not published": "#e0e0e0"}
LAYER_TITLES = {"position": "position", "attention": "attention", "kv_cache": "KV cache", "training": "training recipe",
                "distribution": "distribution"}


def _grid(lo: int, hi: int, per_octave: int = 2) -> list[int]:
    out, n = [], float(lo)
    while n < hi:
        out.append(int(n))
        n *= 2 ** (1 / per_octave)
    return out + [hi]


def plot_attention_share(models=None, *, contexts=None, ax=None):
    """Attention (projections + scores) / (attention + MLP) forward FLOPs of the token at each context.

    ``models``: keys of :data:`longctx_lab.course.stacks.STACK_MODELS` (default: every model whose MLP is known);
    each line stops at the model's own context. ``contexts``: the x values (default 1K up to the largest context).
    """
    keys = [k for k in STACK_MODELS if stack_entry(k).mlp_known] if models is None else list(models)
    if not keys:
        raise ValueError("models must name at least one model, got an empty sequence")
    entries = [stack_entry(k) for k in keys]
    if contexts is None:
        contexts = _grid(1024, max(e.config.max_context for e in entries))
    contexts = list(contexts)
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4.2))
    for i, (key, entry) in enumerate(zip(keys, entries)):
        share = attention_share_curve(key, contexts)
        xs = [c for c, s in zip(contexts, share) if s is not None]
        ys = [s for s in share if s is not None]
        if not xs:
            continue
        style = "--" if entry.guessed else "-"
        ax.plot(xs, ys, style, color=PALETTE[i % len(PALETTE)], label=entry.config.name + (" (guessed)"
                                                                                         if entry.guessed else ""))
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1)
    ax.axhline(0.5, color="#999999", lw=0.8)
    ax.set_xlabel("context (tokens): the token at this position")
    ax.set_ylabel("attention / (attention + MLP) FLOPs")
    ax.set_title("Where one token's forward FLOPs go as the context grows (longctx_lab.lm.hf.planner.plan)",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    return ax.figure


def plot_stack_layers(table: StackTable | None = None):
    """One column per model, one box per stack layer (:data:`longctx_lab.course.stacks.STACK_LAYERS`), coloured by
    provenance (green published, blue inferred, red guessed, grey not published), with the cell's text."""
    table = production_stack_table() if table is None else table
    if not isinstance(table, StackTable):
        raise TypeError(f"table must be a StackTable, got {type(table).__name__}")
    n = len(table.rows)
    fig, ax = plt.subplots(figsize=(2.2 * n + 1.2, 7.0))
    width, height = 2.0, 1.25
    for j, row in enumerate(table.rows):
        x = 1.2 + j * 2.2
        for i, layer in enumerate(STACK_LAYERS):
            cell = row.cells[layer]
            y = (len(STACK_LAYERS) - 1 - i) * (height + 0.1)
            ax.add_patch(Rectangle((x, y), width, height, facecolor=PROVENANCE_COLOURS[cell.provenance],
                                   edgecolor="#555555", lw=0.8))
            text = "\n".join(textwrap.wrap(cell.text, 30)[:6])
            ax.text(x + width / 2, y + height / 2, text, ha="center", va="center", fontsize=5.5)
        ax.text(x + width / 2, len(STACK_LAYERS) * (height + 0.1) + 0.05, "\n".join(textwrap.wrap(row.model, 24)),
                ha="center", va="bottom", fontsize=7, weight="bold")
    for i, layer in enumerate(STACK_LAYERS):
        y = (len(STACK_LAYERS) - 1 - i) * (height + 0.1)
        ax.text(1.1, y + height / 2, LAYER_TITLES[layer], ha="right", va="center", fontsize=8)
    for k, (name, colour) in enumerate(PROVENANCE_COLOURS.items()):
        ax.add_patch(Rectangle((1.2 + k * 2.2, -0.75), 0.3, 0.3, facecolor=colour, edgecolor="#555555", lw=0.6))
        ax.text(1.6 + k * 2.2, -0.6, name, va="center", fontsize=7)
    ax.set_xlim(0, 1.2 + n * 2.2)
    ax.set_ylim(-0.9, len(STACK_LAYERS) * (height + 0.1) + 0.8)
    ax.axis("off")
    ax.set_title("The long-context stack per model, by provenance", fontsize=10)
    return fig
