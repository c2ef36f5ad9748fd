"""Chapter 3's explanatory diagrams: a window mask read row by row, tiles a kernel skips or computes, the
receptive field growing through layers, and the slots of a rolling-buffer KV cache (with attention sinks).

Every function draws what the chapter's cell computed (a mask tensor, a reachability tensor, a list of slot
contents), so the picture and the printed numbers are one computation. Sized for the book (at most 7.5 inches
wide, text at least 9 pt); each returns the matplotlib ``Figure``.
"""

from __future__ import annotations

import torch

__all__ = ["TILE_COLOURS", "draw_mask_rule", "draw_receptive_field", "draw_rolling_buffer", "draw_tiles",
           "draw_tiles_gallery"]

TILE_COLOURS = {1: "#e9a03b", 2: "#2a9d8f"}  # block_sparsity.PARTIAL, block_sparsity.FULL
_KEPT, _SINK, _ROW = "#1f5aa6", "#c0392b", "#f2c14e"


def _new_ax(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def draw_mask_rule(mask: torch.Tensor, query: int, *, sinks: int = 0, title: str = "", ax=None):
    """A small boolean ``(n, n)`` mask as a grid of squares (filled = attended), row ``query`` outlined and
    the keys it sees listed beside it. Columns ``< sinks`` are drawn in the sink colour."""
    from matplotlib.patches import Rectangle

    mask = mask.to(torch.bool).cpu()
    n = mask.shape[0]
    ax = _new_ax(ax, (5.2, 4.2))
    for p in range(n):
        for j in range(n):
            kept = bool(mask[p, j])
            face = (_SINK if j < sinks else _KEPT) if kept else "#f1f1f1"
            ax.add_patch(Rectangle((j, p), 0.92, 0.92, facecolor=face, edgecolor="#cccccc", lw=0.5))
    ax.add_patch(Rectangle((-0.08, query - 0.08), n + 0.08, 1.08, fill=False, edgecolor=_ROW, lw=2.5))
    seen = [j for j in range(n) if mask[query, j]]
    ax.text(n + 0.3, query + 0.46, f"query {query} sees\nkeys {', '.join(map(str, seen))}", va="center",
            fontsize=10)
    ax.set_xlim(-0.2, n + 4.2)
    ax.set_ylim(n + 0.1, -0.2)
    ax.set_xticks([j + 0.46 for j in range(n)], [str(j) for j in range(n)])
    ax.set_yticks([p + 0.46 for p in range(n)], [str(p) for p in range(n)])
    ax.tick_params(length=0, labelsize=9)
    ax.set_xlabel("key position j")
    ax.set_ylabel("query position p")
    ax.grid(False)
    for side in ("left", "bottom", "top", "right"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=11)
    return ax.figure


def draw_tiles(pred, n: int, block: int, *, title: str = "", ax=None):
    """The dense mask of ``pred`` over ``n`` positions with a frame on every tile of ``block x block``
    pairs that a tiled kernel computes: orange = partial (computed, then masked), green = full; tiles
    without a frame are skipped."""
    from matplotlib.patches import Rectangle

    from longctx_lab.attention import block_sparsity as bs
    from longctx_lab.course.plots import mask_image

    ax = _new_ax(ax, (4.2, 4.2))
    mask_image(ax, pred.dense(n), title=title, xlabel="key j", ylabel="query p")
    classes = bs.classify_blocks(pred, block, q_len=n)
    for qb, row in enumerate(classes.tolist()):
        for kb, cls in enumerate(row):
            if cls != bs.EMPTY:
                ax.add_patch(Rectangle((kb * block - 0.5, qb * block - 0.5), block, block, fill=False,
                                       edgecolor=TILE_COLOURS[cls], lw=1.8))
    return ax.figure


def draw_tiles_gallery(patterns: dict, n: int, block: int, *, cols: int = 3):
    """:func:`draw_tiles` for each ``{name: predicate}``, ``cols`` panels a row, 7.5 inches wide; each
    title gives the share of computed pairs the mask keeps."""
    import math

    import matplotlib.pyplot as plt

    from longctx_lab.attention import block_sparsity as bs

    rows = math.ceil(len(patterns) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7.5, 2.75 * rows))
    for ax, (name, pred) in zip(axes.flat, patterns.items(), strict=False):
        s = bs.block_stats(pred, block, q_len=n)
        draw_tiles(pred, n, block, title=f"{name}\n{s.tile_efficiency:.0%} useful", ax=ax)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(labelsize=9)
        ax.title.set_fontsize(10)
    for ax in list(axes.flat)[len(patterns):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def draw_receptive_field(reach: torch.Tensor, window: int, *, ax=None):
    """How output ``n - 1`` of the top layer depends on the layers below: ``reach`` is the
    ``(layers, n, n)`` boolean reachability (``reach[l, i, j]``: output ``i`` of layer ``l + 1`` depends
    on input ``j``). Row ``L - l`` of dots lights the positions of layer ``l`` that the top output reads,
    and arrows show one query's window at each hop."""
    from matplotlib.patches import FancyArrowPatch

    reach = reach.to(torch.bool).cpu()
    layers, n, _ = reach.shape
    out = n - 1
    ax = _new_ax(ax, (7.5, 3.2))
    for level in range(layers + 1):  # level 0 = the inputs, level `layers` = the top output
        depth = layers - level  # hops between this level and the top output
        if depth == 0:
            lit = {out}
        else:
            lit = {j for j in range(n) if reach[depth - 1, out, j]}
        for j in range(n):
            on = j in lit
            ax.scatter(j, level, s=110 if on else 40, color=_KEPT if on else "#d0d0d0", zorder=3)
        label = "inputs" if level == 0 else f"layer {level}"
        ax.text(-0.8, level, label, ha="right", va="center", fontsize=10)
        if depth > 0:
            ax.text(n - 0.2, level, f"{len(lit)} positions", ha="left", va="center", fontsize=10,
                    color=_KEPT)
    # one chain of windows: from the top output down, always through the leftmost position it reads
    pos = out
    for level in range(layers, 0, -1):
        for j in range(max(0, pos - window + 1), pos + 1):
            ax.add_patch(FancyArrowPatch((pos, level - 0.08), (j, level - 0.92), arrowstyle="-|>",
                                         mutation_scale=8, color="#888888", lw=0.8, zorder=2))
        pos = max(0, pos - window + 1)
    ax.set_xlim(-3.2, n + 2.6)
    ax.set_ylim(-0.6, layers + 0.5)
    ax.set_xticks(range(0, n, 2))
    ax.set_yticks([])
    ax.set_xlabel("position")
    ax.grid(False)
    for side in ("left", "top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"window {window}: each layer reaches {window - 1} further back", fontsize=11)
    return ax.figure


def draw_rolling_buffer(history: list[list[int]], *, sinks: int = 0, ax=None):
    """The slots of a rolling buffer after each decoding step: ``history[t][s]`` is the position held by
    slot ``s`` after token ``t`` was written (-1: empty). The slot written at step ``t`` is outlined, the
    first ``sinks`` slots (pinned, never overwritten) are drawn in the sink colour."""
    from matplotlib.patches import Rectangle

    steps, slots = len(history), max(len(h) for h in history)
    ax = _new_ax(ax, (5.6, 0.36 * steps + 1.2))
    for t, row in enumerate(history):
        before = history[t - 1] if t else [-1] * slots
        for s in range(slots):
            pos = row[s] if s < len(row) else -1
            face = "#f1f1f1" if pos < 0 else ("#f6d5d1" if s < sinks else "#dfe8f5")
            written = pos == t
            ax.add_patch(Rectangle((s, t), 0.94, 0.9, facecolor=face,
                                   edgecolor=_KEPT if written else "#bbbbbb", lw=2.2 if written else 0.6))
            if pos >= 0:
                ax.text(s + 0.47, t + 0.45, str(pos), ha="center", va="center", fontsize=9.5,
                        fontweight="bold" if written else "normal")
        evicted = [p for p in before if p >= 0 and p not in row]
        if evicted:
            ax.text(slots + 0.2, t + 0.45, f"evicts {evicted[0]}", va="center", fontsize=9, color="#777777")
    ax.set_xlim(-0.1, slots + 2.0)
    ax.set_ylim(steps, -0.1)
    labels = [("sink " if s < sinks else "") + f"slot {s}" for s in range(slots)]
    ax.set_xticks([s + 0.47 for s in range(slots)], labels, fontsize=9)
    ax.xaxis.tick_top()
    ax.set_yticks([t + 0.45 for t in range(steps)], [f"t = {t}" for t in range(steps)], fontsize=9)
    ax.tick_params(length=0)
    ax.grid(False)
    for side in ("left", "bottom", "top", "right"):
        ax.spines[side].set_visible(False)
    return ax.figure
