"""Chapter 8's explanatory diagrams: the recurrent state as a fixed-size matrix beside a growing KV cache, a
sequential scan against a chunked one, and a hybrid stack with what each layer keeps for decoding.

Each function draws from numbers the chapter's cells compute (a real state matrix, the measured bytes of each
layer), on a figure at most 7.5 inches wide with text of 9 pt or more, and returns the matplotlib ``Figure``.
"""

from __future__ import annotations

import torch

from longctx_lab.core.validate import check_int

__all__ = ["draw_hybrid_stack", "draw_recurrent_state", "draw_scan"]

_KV, _STATE, _NEW, _EMPTY, _INK = "#1f5aa6", "#e9a03b", "#b5454b", "#f2f2f2", "#222222"
_TEXT = 9


def draw_recurrent_state(states, kv_lengths, *, head_dim: int):
    """Top row: the linear-attention state ``S`` (``head_dim x head_dim``) after each step, as a heat map (same
    size every time). Bottom row: the KV cache of softmax attention after the same steps, one column per cached
    token (``kv_lengths[i]`` of them). ``states``: tensors ``(head_dim, head_dim)`` the chapter's loop kept."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    head_dim = check_int("head_dim", head_dim, minimum=1)
    states = [torch.as_tensor(s, dtype=torch.float64) for s in states]
    if not states or len(states) != len(kv_lengths) or any(s.shape != (head_dim, head_dim) for s in states):
        raise ValueError(f"states must be a non-empty list of ({head_dim}, {head_dim}) tensors, one per entry of "
                         f"kv_lengths, got {len(states)} states for {len(kv_lengths)} lengths")
    lengths = [check_int("kv_lengths[i]", n, minimum=1) for n in kv_lengths]
    fig, axes = plt.subplots(2, len(states), figsize=(7.5, 3.6),
                             gridspec_kw={"height_ratios": [1, 1.1]})
    top = max(float(s.abs().max()) for s in states) or 1.0
    for i, (s, n) in enumerate(zip(states, lengths, strict=True)):
        ax = axes[0, i]
        ax.imshow(s.numpy(), cmap="RdBu_r", vmin=-top, vmax=top)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"after token {n}", fontsize=_TEXT)
        kv = axes[1, i]
        longest = max(lengths)
        for p in range(longest):
            colour = (_NEW if p == n - 1 else _KV) if p < n else _EMPTY
            for row in range(2):
                kv.add_patch(Rectangle((p, row * 1.1), 0.9, 1.0, facecolor=colour, edgecolor="white"))
        kv.set_xlim(-0.2, longest)
        kv.set_ylim(-0.2, 2.3)
        kv.axis("off")
        kv.set_title(f"{n} keys + {n} values", fontsize=_TEXT)
    axes[0, 0].set_ylabel(f"state S\n{head_dim} x {head_dim}", fontsize=_TEXT)
    fig.text(0.01, 0.27, "KV cache", fontsize=_TEXT, rotation=90, va="center")
    fig.suptitle("linear attention keeps one fixed matrix (top); softmax attention keeps every key and value "
                 "(bottom)", fontsize=_TEXT)
    fig.tight_layout(rect=(0.02, 0, 1, 0.95))
    return fig


def draw_scan(n: int, chunk: int):
    """Two timelines of ``n`` positions: the sequential scan (one state hand-off per position, ``n`` dependent
    steps) and the chunked scan (parallel inside chunks of ``chunk``, a hand-off per chunk: ``ceil(n / chunk)``
    dependent steps)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, Rectangle

    n = check_int("n", n, minimum=2)
    chunk = check_int("chunk", chunk, minimum=1)
    fig, ax = plt.subplots(figsize=(7.5, 2.6))
    for row, (y, label) in enumerate(((1.6, "sequential"), (0.0, f"chunked ({chunk})"))):
        for p in range(n):
            colour = _STATE if row == 0 else ("#dfe8f5" if (p // chunk) % 2 == 0 else "#c6d6ee")
            ax.add_patch(Rectangle((p, y), 0.85, 0.8, facecolor=colour, edgecolor="#5c5c5c", lw=0.6))
            ax.text(p + 0.42, y + 0.4, str(p), ha="center", va="center", fontsize=_TEXT)
        ax.text(-0.4, y + 0.4, label, ha="right", va="center", fontsize=_TEXT)
        hops = range(1, n) if row == 0 else range(chunk, n, chunk)
        for p in hops:
            ax.add_patch(FancyArrowPatch((p - 0.2, y + 1.0), (p + 0.4, y + 1.0), connectionstyle="arc3,rad=-0.6",
                                         arrowstyle="-|>", mutation_scale=8, color=_NEW, lw=1.0))
    steps_chunked = -(-n // chunk)
    ax.set_title(f"{n - 1} dependent state hand-offs (top) vs {steps_chunked - 1} (bottom); inside a chunk: "
                 "matrix products", fontsize=_TEXT)
    ax.set_xlim(-3.2, n + 0.2)
    ax.set_ylim(-0.3, 3.1)
    ax.axis("off")
    fig.tight_layout()
    return fig


def draw_hybrid_stack(layers):
    """A layer stack, bottom to top: ``layers`` is a list of ``(kind, bytes_short, bytes_long, short, long)``,
    the decode state each layer held after ``short`` and ``long`` tokens (measured by the chapter's cell)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    if not layers:
        raise ValueError("layers must list at least one (kind, bytes_short, bytes_long, short, long), got none")
    fig, ax = plt.subplots(figsize=(7.5, 0.9 * len(layers) + 1.2))
    for i, (kind, small, big, short, long) in enumerate(layers):
        grows = big > small
        colour = _KV if kind == "attention" else _STATE
        ax.add_patch(FancyBboxPatch((0, i), 3.2, 0.75, boxstyle="round,pad=0.02", facecolor=colour,
                                    edgecolor="white"))
        ax.text(1.6, i + 0.37, f"layer {i}: {kind}", ha="center", va="center", fontsize=_TEXT + 1,
                color="white", fontweight="bold")
        what = "KV cache, grows with the context" if grows else "fixed-size state"
        ax.text(3.5, i + 0.37, f"{what}: {small:,} B at {short:,} tokens, {big:,} B at {long:,}", va="center",
                fontsize=_TEXT, color=_INK)
    ax.annotate("", xy=(-0.3, len(layers) - 0.2), xytext=(-0.3, 0.1),
                arrowprops={"arrowstyle": "-|>", "color": "#777777"})
    ax.text(-0.45, len(layers) / 2, "residual stream", rotation=90, ha="right", va="center", fontsize=_TEXT)
    ax.set_xlim(-0.9, 10.5)
    ax.set_ylim(-0.2, len(layers))
    ax.axis("off")
    fig.tight_layout()
    return fig
