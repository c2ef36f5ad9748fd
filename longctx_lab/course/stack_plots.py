"""Pictures of the production stacks for chapter 7 (matplotlib; each function returns its figure).

Public API (one line each):

- ``plot_attention_share(models=None, *, contexts=None, ax=None) -> Figure``: attention's share of the
  attention + MLP forward FLOPs of one token vs context, one line per model (:func:`.stacks.attention_share_curve`).
- ``plot_stack_layers(table=None) -> Figure``: per model, the five layers of the stack (position, attention,
  KV cache, training recipe, distribution), each box coloured by its provenance.
"""

from __future__ import annotations

import re
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
LAYER_TITLES = {"position": "position", "attention": "attention", "kv_cache": "KV heads", "training": "training recipe",
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
    ax.set_title("Where one token's forward FLOPs go as the context grows", fontsize=10)
    ax.legend(fontsize=9, loc="upper left")
    return ax.figure


def _short(text: str, width: int = 15, lines: int = 5) -> str:
    """A cell's text for the picture: up to its first ' (' (the detail stays in the table), wrapped."""
    head = re.split(r" \(", text.replace("; ", ", "), maxsplit=1)[0].strip() or text
    wrapped = textwrap.wrap(head, width)
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: width - 1] + "\u2026"
    return "\n".join(wrapped)


def plot_stack_layers(table: StackTable | None = None):
    """One row per model, one box per stack layer (:data:`longctx_lab.course.stacks.STACK_LAYERS`), coloured by
    provenance (green published, blue inferred, red guessed, grey not published), with the cell's text cut at its
    first detail. Sized for the book's width (7.5 in, text 8 pt or more)."""
    table = production_stack_table() if table is None else table
    if not isinstance(table, StackTable):
        raise TypeError(f"table must be a StackTable, got {type(table).__name__}")
    n = len(table.rows)
    label_w, width, height, gap = 1.35, 1.2, 0.95, 0.04
    fig, ax = plt.subplots(figsize=(7.5, 0.95 + n * (height + gap)))
    top = n * (height + gap)
    for j, layer in enumerate(STACK_LAYERS):
        ax.text(label_w + j * width + width / 2, top + 0.05, LAYER_TITLES[layer], ha="center", va="bottom",
                fontsize=9, weight="bold")
    for i, row in enumerate(table.rows):
        y = top - (i + 1) * (height + gap)
        ax.text(label_w - 0.05, y + height / 2, "\n".join(textwrap.wrap(row.model, 17)[:3]), ha="right",
                va="center", fontsize=9, weight="bold")
        for j, layer in enumerate(STACK_LAYERS):
            cell = row.cells[layer]
            x = label_w + j * width
            ax.add_patch(Rectangle((x + 0.02, y), width - 0.04, height, facecolor=PROVENANCE_COLOURS[cell.provenance],
                                   edgecolor="#555555", lw=0.6))
            ax.text(x + width / 2, y + height / 2, _short(cell.text), ha="center", va="center", fontsize=9,
                    linespacing=1.05)
    for k, (name, colour) in enumerate(PROVENANCE_COLOURS.items()):
        x = label_w + k * 1.5
        ax.add_patch(Rectangle((x, -0.42), 0.22, 0.22, facecolor=colour, edgecolor="#555555", lw=0.6))
        ax.text(x + 0.3, -0.31, name, va="center", fontsize=9)
    ax.set_xlim(0, label_w + len(STACK_LAYERS) * width)
    ax.set_ylim(-0.5, top + 0.35)
    ax.axis("off")
    fig.subplots_adjust(left=0.01, right=0.99, top=0.99, bottom=0.01)
    return fig
