"""Chapter 7's explanatory diagrams: the ring of ranks, and who holds which K/V block at each step.

Public API (one line each):

- ``draw_ring_schedule(schedule, work, *, title=None) -> Figure``: left, ``P`` ranks on a ring passing their K/V
  block to the right neighbour; right, the rank x step grid, each cell the K/V block(s) a rank holds at that step,
  shaded by the (query, key) pairs it computes there (white: a step the rank waits).
- ``draw_layout_grids(grids) -> Figure``: the same grid for several layouts side by side (naive plain beside
  zigzag), each with its per-rank total.

``schedule[s][r]`` is the label of what rank ``r`` holds at step ``s`` (an int, or a tuple of chunk numbers);
``work[s][r]`` the pairs it computes there. Both come from the chapter's cells, so the picture shows the numbers
the cell printed.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyArrowPatch, Rectangle

from longctx_lab.core.display import PALETTE

__all__ = ["draw_layout_grids", "draw_ring_schedule"]

_FULL = "#1f5aa6"


def _label(held) -> str:
    return ",".join(str(h) for h in held) if isinstance(held, tuple | list) else str(held)


def _check(schedule, work) -> tuple[int, int]:
    steps = len(schedule)
    if steps == 0 or any(len(row) != len(schedule[0]) for row in schedule):
        raise ValueError("schedule must be a non-empty list of equal-length rows (one per step)")
    if len(work) != steps or any(len(w) != len(s) for w, s in zip(work, schedule)):
        raise ValueError("work must have the shape of schedule (steps x ranks)")
    return steps, len(schedule[0])


def _grid(ax, schedule, work, peak, title):
    steps, ranks = _check(schedule, work)
    for s in range(steps):
        for r in range(ranks):
            share = work[s][r] / peak if peak else 0.0
            face = (1, 1, 1) if share == 0 else _blend(share)
            ax.add_patch(Rectangle((s, ranks - 1 - r), 0.96, 0.92, facecolor=face, edgecolor="#777777", lw=0.6))
            text = _label(schedule[s][r]) if share else f"{_label(schedule[s][r])}: skip"
            ax.text(s + 0.48, ranks - 1 - r + 0.46, text, ha="center", va="center", fontsize=9,
                    color="white" if share > 0.55 else "black")
    totals = [sum(work[s][r] for s in range(steps)) for r in range(ranks)]
    for r, total in enumerate(totals):
        ax.text(steps + 0.1, ranks - 1 - r + 0.46, f"{total:,}", va="center", fontsize=9)
    ax.text(steps + 0.1, ranks + 0.05, "pairs", va="bottom", fontsize=9)
    ax.set_xlim(-0.05, steps + 1.0)
    ax.set_ylim(-0.1, ranks + 0.5)
    ax.set_xticks([s + 0.48 for s in range(steps)], [str(s) for s in range(steps)])
    ax.set_yticks([ranks - 1 - r + 0.46 for r in range(ranks)], [f"rank {r}" for r in range(ranks)])
    ax.set_xlabel("ring step")
    ax.tick_params(length=0, labelsize=9)
    ax.grid(False)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    return totals


def _blend(share: float):
    """White to the course blue, by the share of the busiest cell's work."""
    base = tuple(int(_FULL[i:i + 2], 16) / 255 for i in (1, 3, 5))
    t = 0.25 + 0.75 * share
    return tuple(1 - t * (1 - c) for c in base)


def draw_ring_schedule(schedule, work, *, title=None):
    """The ring (left) and its rank x step grid (right); see the module docstring."""
    steps, ranks = _check(schedule, work)
    fig, (ring, grid) = plt.subplots(1, 2, figsize=(7.5, 3.3), gridspec_kw={"width_ratios": [1, 1.45]})
    radius = 1.0
    angles = [math.pi / 2 - 2 * math.pi * r / ranks for r in range(ranks)]
    points = [(radius * math.cos(a), radius * math.sin(a)) for a in angles]
    for r, (x, y) in enumerate(points):
        ring.add_patch(Circle((x, y), 0.27, facecolor=PALETTE[0], edgecolor="none"))
        ring.text(x, y, f"rank\n{r}", ha="center", va="center", color="white", fontsize=9, weight="bold")
        x2, y2 = points[(r + 1) % ranks]
        ring.add_patch(FancyArrowPatch((x, y), (x2, y2), connectionstyle="arc3,rad=-0.25", arrowstyle="-|>",
                                       mutation_scale=12, shrinkA=17, shrinkB=17, color=PALETTE[1], lw=1.4))
    ring.text(0, 0, "each step:\nsend my K/V\nblock right,\nreceive one\nfrom the left", ha="center",
              va="center", fontsize=9)
    ring.set_xlim(-1.45, 1.45)
    ring.set_ylim(-1.45, 1.45)
    ring.set_aspect("equal")
    ring.axis("off")
    ring.set_title(f"{ranks} ranks on a ring", fontsize=10)
    peak = max(max(row) for row in work)
    _grid(grid, schedule, work, peak, title or "K/V block held (shade: pairs computed)")
    fig.tight_layout()
    return fig


def draw_layout_grids(grids):
    """``grids``: ``{name: (schedule, work)}``, drawn side by side with one shading scale (the busiest cell)."""
    if not grids:
        raise ValueError("grids must hold at least one (schedule, work) pair")
    fig, axes = plt.subplots(1, len(grids), figsize=(7.5, 3.0), squeeze=False)
    peak = max(max(max(row) for row in work) for _, work in grids.values())
    for ax, (name, (schedule, work)) in zip(axes[0], grids.items()):
        totals = _grid(ax, schedule, work, peak, None)
        ax.set_title(f"{name}: busiest / least {max(totals) / max(min(totals), 1):.2f}x", fontsize=10)
    fig.tight_layout()
    return fig
