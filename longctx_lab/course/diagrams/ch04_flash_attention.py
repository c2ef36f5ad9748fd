"""Chapter 4's explanatory pictures: the online-softmax rescale, the tile walk between HBM and SRAM, the tile
classes a mask produces, and the backward pass's ``delta = rowsum(dO * O)`` shortcut.

Each function takes the numbers the chapter's cell computed (so the picture and the printed output agree),
draws on a figure about 7.5 inches wide with text of at least 9 pt, and returns the ``Figure``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["draw_delta_shortcut", "draw_online_softmax", "draw_tile_classes", "draw_tile_walk"]

_OLD, _NEW, _MAX = "#9bb7d4", "#e9a03b", "#d1495b"
_SKIP, _EDGE, _FULL = "#f2f2f2", "#e9a03b", "#1f5aa6"


def draw_online_softmax(scores: Sequence[float], block: int, steps: Sequence[tuple]):
    """The running max and the rescaled running sum of a streamed row.

    ``scores``: the row; ``block``: keys per step; ``steps``: one ``(keys_seen, m, alpha, l)`` per block, as
    the chapter's streaming loop records them. Top: the scores and the running max after each block. Bottom:
    the running sum after each block, split into the old sum *after* its rescale by ``alpha`` and the new
    block's terms, with the old sum before the rescale drawn as an outline, so the shrink is visible.
    """
    import matplotlib.pyplot as plt

    scores = [float(s) for s in scores]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 5.2), gridspec_kw={"height_ratios": [1, 1.1]})
    top.bar(range(len(scores)), scores, color=_OLD, label="scores $s_j$")
    xs, ms = [-0.5], [steps[0][1]]
    for seen, m, _, _ in steps:
        xs.append(seen - 0.5)
        ms.append(m)
    top.step(xs, ms, where="pre", color=_MAX, lw=2, label="running max $m$")
    for seen, *_ in steps[:-1]:
        top.axvline(seen - 0.5, color="gray", ls=":", lw=1)
    top.set_xticks(range(len(scores)))
    top.set_xlabel(f"key j (blocks of {block})", fontsize=10)
    top.set_ylabel("score", fontsize=10)
    top.legend(loc="upper left", fontsize=9, ncols=2)
    top.set_ylim(min(0.0, min(scores)) - 0.3, max(scores) * 1.35 + 0.5)

    from matplotlib.patches import Patch

    previous = 0.0
    for b, (_seen, m, alpha, l_now) in enumerate(steps):
        kept = alpha * previous
        new = l_now - kept
        if previous > 0:
            bottom.bar(b, previous, width=0.6, facecolor="none", edgecolor="gray", ls="--", lw=1.2)
        bottom.bar(b, kept, width=0.6, color=_OLD)
        bottom.bar(b, new, width=0.6, bottom=kept, color=_NEW)
        label = f"m = {m:g}\nα = {alpha:.3g}" if previous > 0 else f"m = {m:g}\nfirst block"
        bottom.text(b + 0.33, max(l_now, previous) * 0.5, label, fontsize=9, va="center")
        bottom.text(b, max(l_now, previous) + 0.03, f"l = {l_now:.3f}", ha="center", va="bottom", fontsize=9)
        previous = l_now
    bottom.legend(handles=[Patch(color=_OLD, label="old sum × α"), Patch(color=_NEW, label="this block's terms"),
                           Patch(facecolor="none", edgecolor="gray", ls="--", label="old sum before rescale")],
                  loc="upper left", fontsize=9, ncols=3)
    bottom.set_xticks(range(len(steps)), [f"after block {b + 1}" for b in range(len(steps))])
    bottom.set_xlim(-0.5, len(steps) - 0.1)
    bottom.set_ylim(0, max(s[3] for s in steps) * 1.55)
    bottom.set_ylabel("running sum l", fontsize=10)
    bottom.grid(False)
    fig.tight_layout()
    return fig


def _tile_strip(ax, x, y, n_tiles, w, h, color, label, highlight=None, hatch_color="#333333"):
    from matplotlib.patches import Rectangle

    for t in range(n_tiles):
        face = color if t != highlight else hatch_color
        ax.add_patch(Rectangle((x, y - (t + 1) * h), w, h, facecolor=face, edgecolor="white", lw=1.5))
    ax.text(x + w / 2, y + 0.15, label, ha="center", va="bottom", fontsize=10)


def draw_tile_walk(n_q: int, n_k: int, block_q: int, block_k: int, walk: Sequence[tuple[int, int]],
                   query_tile: int = 1):
    """Where the tiles live while the tiled forward runs, and the order it visits them.

    Left: HBM holds Q, K, V and O as tiles; the on-chip SRAM holds one query tile, one key/value tile, one
    score tile and the running ``(m, l, acc)`` of the tile's rows. Arrows say what moves and how often, from
    ``walk`` (the ``(query tile, key tile)`` pairs the chapter's loop recorded). Right: the grid of score
    tiles, numbered in visiting order; the row of ``query_tile`` is the one the left half shows.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

    tq, tk = math.ceil(n_q / block_q), math.ceil(n_k / block_k)
    q_loads = len({i for i, _ in walk})
    kv_loads = len(walk)
    key_tile = tk - 1
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.5, 3.9), gridspec_kw={"width_ratios": [1.45, 1]})
    h, w = 0.5, 0.5
    top = 3.0
    bottom_y = top - max(tq, tk) * h
    left.add_patch(FancyBboxPatch((-0.1, bottom_y - 0.15), 2.65, top - bottom_y + 0.75,
                                  boxstyle="round,pad=0.05", facecolor="#fafafa", edgecolor="#999999"))
    left.text(1.22, top + 0.75, "HBM (large, slow)", ha="center", fontsize=10, fontweight="bold")
    _tile_strip(left, 0.0, top, tq, w, h, "#c9d7ea", "Q", highlight=query_tile, hatch_color=_FULL)
    _tile_strip(left, 0.65, top, tk, w, h, "#f3d9b1", "K", highlight=key_tile, hatch_color=_EDGE)
    _tile_strip(left, 1.3, top, tk, w, h, "#f3d9b1", "V", highlight=key_tile, hatch_color=_EDGE)
    _tile_strip(left, 1.95, top, tq, w, h, "#d5ead0", "O", highlight=query_tile, hatch_color="#3a8d3a")

    sx, gap = 3.65, 0.62
    left.add_patch(FancyBboxPatch((sx - 0.12, top - 4 * gap - 0.05), 2.04, 4 * gap + 0.6,
                                  boxstyle="round,pad=0.05", facecolor="#eef3fb", edgecolor=_FULL, lw=1.5))
    left.text(sx + 0.9, top + 0.75, "SRAM (small, fast)", ha="center", fontsize=10, fontweight="bold")
    items = [(f"Q tile {query_tile}", _FULL, "white", f"{q_loads} loads", _FULL, True),
             (f"K, V tile {key_tile}", _EDGE, "black", f"{kv_loads} loads", "#b06f00", True),
             (f"S tile {block_q}×{block_k}", "#dddddd", "black", "", "#555555", None),
             (f"m, l, acc → O {query_tile}", "#3a8d3a", "white", f"{q_loads} writes", "#3a8d3a", False)]
    for r, (text, face, ink, note, color, inbound) in enumerate(items):
        y = top - r * gap
        left.add_patch(Rectangle((sx, y - 0.45), 1.8, 0.42, facecolor=face, edgecolor="#555555"))
        left.text(sx + 0.9, y - 0.24, text, ha="center", va="center", fontsize=9.5, color=ink)
        if inbound is not None:
            a, b = ((2.62, y - 0.24), (sx - 0.04, y - 0.24)) if inbound else ((sx - 0.04, y - 0.24), (2.62, y - 0.24))
            left.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12, color=color, lw=1.5))
        left.text((2.62 + sx) / 2, y - 0.2, note, ha="center", va="bottom", fontsize=9, color=color)
    left.text(sx + 0.9, top - 4 * gap - 0.3, "scores never go to HBM", ha="center", va="top", fontsize=9)
    left.set_xlim(-0.2, 5.75)
    left.set_ylim(min(bottom_y, top - 4 * gap) - 0.75, top + 1.0)
    left.axis("off")

    order = {pair: k + 1 for k, pair in enumerate(walk)}
    for i in range(tq):
        for j in range(tk):
            face = "#c9d7ea" if i == query_tile else "#f4f4f4"
            face = _EDGE if (i, j) == (query_tile, key_tile) else face
            right.add_patch(Rectangle((j, tq - 1 - i), 1, 1, facecolor=face, edgecolor="white", lw=2))
            if (i, j) in order:
                right.text(j + 0.5, tq - 0.5 - i, str(order[(i, j)]), ha="center", va="center", fontsize=10)
    right.set_xlim(0, tk)
    right.set_ylim(0, tq)
    right.set_aspect("equal")
    right.set_xticks([j + 0.5 for j in range(tk)], [str(j) for j in range(tk)])
    right.set_yticks([tq - 0.5 - i for i in range(tq)], [str(i) for i in range(tq)])
    right.set_xlabel(f"key tile ({block_k} keys)", fontsize=10)
    right.set_ylabel(f"query tile ({block_q} rows)", fontsize=10)
    right.set_title(f"visit order, n = {n_q} × {n_k}", fontsize=10)
    right.grid(False)
    for side in ("top", "right", "left", "bottom"):
        right.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def draw_tile_classes(panels: dict, block: int, *, n: int | None = None):
    """Tile grids of a few masks: ``panels`` maps a title to a 2-D tensor of ``EMPTY``/``PARTIAL``/``FULL``
    (0/1/2) from :func:`longctx_lab.attention.block_sparsity.classify_blocks`; one panel each, side by side.

    The title gives the score matrix (``n`` queries and keys; by default tiles x ``block``), the tile size
    and the tile grid, all read from the arguments."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    cmap = ListedColormap([_SKIP, _EDGE, _FULL])
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5, 3.3))
    for ax, (title, tiles) in zip(axes, panels.items(), strict=True):
        grid = tiles.numpy() if hasattr(tiles, "numpy") else tiles
        ax.imshow(grid, cmap=cmap, vmin=0, vmax=2, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("key tile", fontsize=10)
        ax.set_xticks(range(0, tiles.shape[1], 4))
        ax.set_yticks(range(0, tiles.shape[0], 4))
        ax.tick_params(labelsize=9)
        ax.grid(False)
    axes[0].set_ylabel("query tile", fontsize=10)
    fig.legend(handles=[Patch(facecolor=_SKIP, edgecolor="#bbbbbb", label="skipped"),
                        Patch(facecolor=_EDGE, label="loaded, masked"),
                        Patch(facecolor=_FULL, label="loaded, no mask")],
               loc="lower center", ncols=3, fontsize=9.5, frameon=False)
    n_q_tiles, n_k_tiles = next(iter(panels.values())).shape
    n_q, n_k = (n, n) if n is not None else (n_q_tiles * block, n_k_tiles * block)
    fig.suptitle(f"{n_q} × {n_k} scores in {block} × {block}-element tiles "
                 f"({n_q_tiles} × {n_k_tiles} tiles)", fontsize=10.5)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def draw_delta_shortcut(p_row: Sequence[float], dp_row: Sequence[float], d_out: Sequence[float],
                        out: Sequence[float]):
    """One query row's softmax-backward term computed two ways.

    Left, the long way: ``P_ij * dP_ij`` for every key ``j`` (needs the whole probability row). Right, the
    shortcut: ``dO_c * O_c`` for every feature ``c`` (needs only the row's output and its gradient). The two
    sums are equal; the titles print them.
    """
    import matplotlib.pyplot as plt

    long_terms = [float(p) * float(g) for p, g in zip(p_row, dp_row, strict=True)]
    short_terms = [float(g) * float(o) for g, o in zip(d_out, out, strict=True)]
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.5, 3.0), gridspec_kw={"width_ratios": [len(long_terms) + 2,
                                                                                       len(short_terms) + 2]})
    for ax, terms, color, title, xlabel in (
        (a, long_terms, _OLD, "long way: Σ_j P_ij · dP_ij", "key j (a whole row of P)"),
        (b, short_terms, _NEW, "shortcut: Σ_c dO_ic · O_ic", "feature c (one row of O)"),
    ):
        ax.bar(range(len(terms)), terms, color=color)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_title(f"{title} = {sum(terms):.4f}", fontsize=10)
        ax.set_xticks(range(len(terms)))
        ax.set_xlabel(xlabel, fontsize=10)
        ax.tick_params(labelsize=9)
    a.set_ylabel("term", fontsize=10)
    fig.tight_layout()
    return fig
