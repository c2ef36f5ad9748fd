"""Chapter 1's explanatory pictures: attention on a tiny input, the n x n grid of pairs, the GPU memory
hierarchy, the roofline with its ridge point, and recomputing keys and values vs caching them.

Each function draws from numbers it is given (or counts itself from the same rule the chapter's cell uses),
sized for the book (7.5 inches wide, text at least 9 pt), and returns the matplotlib ``Figure``.
"""

from __future__ import annotations

import math

import numpy as np

from longctx_lab.core.display import PALETTE

WIDTH = 7.5  # inches: the book's content width
TEXT = 9  # points: the smallest text these diagrams draw


def _matrix(ax, values, title: str, *, highlight_row: int | None = None, cmap: str = "Blues",
            row_labels=None, col_labels=None):
    """One small matrix drawn as coloured cells with its values written in them (2 decimals)."""
    from matplotlib.patches import Rectangle

    values = np.asarray(values, dtype=float)
    rows, cols = values.shape
    span = float(np.ptp(values)) or 1.0
    ax.imshow(values, cmap=cmap, vmin=values.min() - 0.15 * span, vmax=values.max() + 0.6 * span)
    for i in range(rows):
        for j in range(cols):
            ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=TEXT)
    if highlight_row is not None:
        ax.add_patch(Rectangle((-0.5, highlight_row - 0.5), cols, 1, fill=False, lw=2, ec=PALETTE[1]))
    ax.set_xticks(range(cols), col_labels if col_labels is not None else [str(j) for j in range(cols)])
    ax.set_yticks(range(rows), row_labels if row_labels is not None else [str(i) for i in range(rows)])
    ax.tick_params(length=0, labelsize=TEXT)
    ax.grid(False)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, fontsize=TEXT + 1)


def draw_attention_steps(scores, weights, v, out, *, row: int = 0):
    """Attention on a tiny input in four panels: the scaled scores ``S = Q K^T / sqrt(d)``, the weights
    ``P = softmax(S)`` (each row sums to 1), the values ``V`` and the output ``O = P V``. Row ``row`` (the
    query the chapter works by hand) is outlined in every panel where it appears."""
    import matplotlib.pyplot as plt

    scores, weights, v, out = (np.asarray(x, dtype=float) for x in (scores, weights, v, out))
    n, d = v.shape
    if scores.shape != (n, n) or weights.shape != (n, n) or out.shape != (n, d):
        raise ValueError(f"shapes must be (n, n), (n, n), (n, d), (n, d); got {scores.shape}, {weights.shape}, "
                         f"{v.shape}, {out.shape}")
    fig, axes = plt.subplots(1, 4, figsize=(WIDTH, 2.6), gridspec_kw={"width_ratios": [n, n, d, d]})
    keys = [f"k{j}" for j in range(n)]
    queries = [f"q{i}" for i in range(n)]
    _matrix(axes[0], scores, "scores S", highlight_row=row, row_labels=queries, col_labels=keys)
    _matrix(axes[1], weights, "P = softmax(S)", highlight_row=row, cmap="Oranges", row_labels=queries,
            col_labels=keys)
    _matrix(axes[2], v, "values V", cmap="Greens", row_labels=[f"v{j}" for j in range(n)])
    _matrix(axes[3], out, "O = P V", highlight_row=row, cmap="Purples", row_labels=queries)
    fig.text(0.5, 0.02, f"{n} tokens, head dim {d}: {n * n} scores, one per (query, key) pair; "
             f"row {row} of O is V's rows mixed by row {row} of P", ha="center", fontsize=TEXT)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def draw_pair_grids(sizes=(4, 8)):
    """The (query, key) pairs of attention as an n x n grid for each n in ``sizes``: every cell is one score
    to compute and store; the cells a causal mask keeps (key <= query) are dark, the ones it drops light."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    sizes = [int(s) for s in sizes]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes must be positive integers, got {sizes}")
    # One scale for every grid, so a cell is the same size in each, and each panel's axes hug its own
    # grid, so the ticks and labels sit with the grid they number: the axes are placed by hand, in inches,
    # on a shared baseline, each centred in its share of the width.
    height, bottom = 3.3, 0.6  # inches: the figure, and the space under the grids for the labels
    cell = min((height - bottom - 1.0) / max(sizes), 0.8 * WIDTH / len(sizes) / max(sizes))
    fig = plt.figure(figsize=(WIDTH, height))
    axes = []
    for k, n in enumerate(sizes):
        side = n * cell
        centre = (k + 0.5) * WIDTH / len(sizes)
        axes.append(fig.add_axes(((centre - side / 2) / WIDTH, bottom / height, side / WIDTH, side / height)))
    cmap = ListedColormap(["#dbe7f3", PALETTE[0]])
    for ax, n in zip(axes, sizes, strict=True):
        keep = np.tril(np.ones((n, n)))
        ax.imshow(keep, cmap=cmap, vmin=0, vmax=1, aspect="equal")
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_xticks(np.arange(-0.5, n), minor=True)
        ax.set_yticks(np.arange(-0.5, n), minor=True)
        ax.grid(which="minor", color="white", lw=1.5)
        ax.grid(which="major", visible=False)
        ax.tick_params(which="both", length=0, labelsize=TEXT)
        ax.set_xticks([0, n - 1])
        ax.set_yticks([0, n - 1])
        ax.set_xlabel("key j", fontsize=TEXT)
        ax.set_ylabel("query i", fontsize=TEXT)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_title(f"n = {n}: {n * n} pairs,\ncausal keeps {n * (n + 1) // 2}", fontsize=TEXT + 1)
    fig.suptitle("Doubling n quadruples the grid", fontsize=TEXT + 2)
    return fig


def hierarchy_rows(gpu):
    """``(name, capacity bytes, bandwidth bytes/s or None, on chip)`` for each level of ``gpu`` drawn by
    :func:`draw_memory_hierarchy`, fastest first (the NVLink link, which holds no data, left out)."""
    from longctx_lab.core.configs import memory_hierarchy

    on_chip = {"registers", "SRAM (shared memory / L1)", "L2 cache"}
    return [(lvl.name, lvl.capacity_bytes, lvl.bandwidth, lvl.name in on_chip)
            for lvl in memory_hierarchy(gpu) if math.isfinite(lvl.capacity_bytes)]


def _size(n: float) -> str:
    """A capacity in binary units, short: ``27 MiB``, ``74.5 GiB``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            value = n / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{n:.0f} B"


def draw_memory_hierarchy(gpu):
    """The memory a GPU's cores read from, as a pyramid: fastest at the top, each box's width growing with
    the log of its capacity (not always smallest at the top: the register file outsizes shared memory), its
    capacity and bandwidth written beside it; a bracket marks what sits on the chip and what is off it."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    rows = hierarchy_rows(gpu)
    fig, ax = plt.subplots(figsize=(WIDTH, 3.6))
    logs = [math.log10(cap) for _, cap, _, _ in rows]
    lo, hi = min(logs), max(logs)
    for i, (name, cap, bw, chip) in enumerate(rows):
        width = 0.5 + 0.6 * (math.log10(cap) - lo) / (hi - lo)
        y = len(rows) - 1 - i
        colour = PALETTE[0] if chip else PALETTE[2]
        ax.add_patch(FancyBboxPatch((-width / 2, y - 0.38), width, 0.76, boxstyle="round,pad=0,rounding_size=0.08",
                                    fc=colour, ec="white", alpha=0.35 if chip else 0.3))
        label = name.replace(" (shared memory / L1)", " (shared mem.)")
        ax.text(0, y, label, ha="center", va="center", fontsize=TEXT + 1, weight="bold")
        speed = f"{bw / 1e12:,.2f} TB/s" if bw else "not published"
        ax.text(0.62, y, f"{_size(cap):>9}  {speed:>13}", ha="left", va="center", fontsize=TEXT + 1,
                family="monospace")
    top = len(rows) - 1
    n_chip = sum(chip for *_, chip in rows)
    for (y0, y1), text in (((top - n_chip + 1, top), "on the chip"), ((0, top - n_chip), "off the chip")):
        ax.plot([-0.62, -0.65, -0.65, -0.62], [y0 - 0.35, y0 - 0.35, y1 + 0.35, y1 + 0.35], color="grey", lw=1)
        ax.text(-0.68, (y0 + y1) / 2, text, ha="right", va="center", fontsize=TEXT + 1, color="grey")
    ax.text(0.62, top + 0.75, " capacity      bandwidth", ha="left", va="center", fontsize=TEXT,
            family="monospace", color="grey")
    ax.set_xlim(-1.1, 1.45)
    ax.set_ylim(-0.6, top + 1.0)
    ax.axis("off")
    ax.set_title(f"{gpu.name}: faster towards the top", fontsize=TEXT + 2)
    fig.tight_layout()
    return fig


def draw_roofline(gpu, points: dict[str, float] | None = None):
    """The roofline of ``gpu``: attainable FLOP/s = min(peak, intensity x HBM bandwidth) on log-log axes, the
    ridge point (peak / bandwidth) marked, the memory-bound side shaded, and each ``{label: intensity}`` of
    ``points`` placed on the roof."""
    import matplotlib.pyplot as plt

    from longctx_lab.core.cost import roofline

    points = dict(points or {})
    ridge = gpu.ridge_intensity
    xs = np.logspace(-1, 4, 200)
    roof = np.array([roofline(x, peak_flops=gpu.peak_flops_16bit, bandwidth=gpu.hbm_bandwidth) for x in xs])
    fig, ax = plt.subplots(figsize=(WIDTH, 3.8))
    ax.loglog(xs, roof, color="black", lw=2)
    ax.axvspan(xs[0], ridge, color=PALETTE[0], alpha=0.08)
    ax.axvspan(ridge, xs[-1], color=PALETTE[1], alpha=0.08)
    ax.text(0.3, gpu.peak_flops_16bit * 1.6, "memory-bound:\ntime = bytes / bandwidth", fontsize=TEXT + 1,
            va="bottom", color=PALETTE[0])
    ax.text(ridge * 2.5, gpu.peak_flops_16bit * 1.6, "compute-bound:\ntime = FLOPs / peak",
            fontsize=TEXT + 1, va="bottom", color=PALETTE[1])
    ax.plot([ridge], [gpu.peak_flops_16bit], "o", color="black")
    ax.annotate(f"ridge point\n{ridge:.0f} FLOPs/byte", (ridge, gpu.peak_flops_16bit),
                xytext=(ridge * 1.5, gpu.peak_flops_16bit / 12), fontsize=TEXT + 1,
                arrowprops={"arrowstyle": "->", "color": "black"})
    for i, (label, x) in enumerate(points.items()):
        y = roofline(x, peak_flops=gpu.peak_flops_16bit, bandwidth=gpu.hbm_bandwidth)
        ax.plot([x], [y], "s", color=PALETTE[(i + 2) % len(PALETTE)], ms=8, label=f"{label}: {x:,.1f} FLOPs/byte")
    ax.set_ylim(roof.min() / 2, gpu.peak_flops_16bit * 8)
    ax.set_xlabel("arithmetic intensity (FLOPs per byte read from HBM)")
    ax.set_ylabel("attainable FLOP/s")
    ax.set_title(f"Roofline of one {gpu.name}", fontsize=TEXT + 2)
    if points:
        ax.legend(loc="lower right", fontsize=TEXT + 1)
    fig.tight_layout()
    return fig


def projection_counts(n: int) -> tuple[int, int]:
    """Key/value projections done while generating ``n`` tokens: ``(recomputed, cached)``. Recomputing does
    step t's t + 1 tokens again at every step; a cache projects each token once."""
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    n = int(n)
    return n * (n + 1) // 2, n


def draw_kv_cache(n: int = 6):
    """Generating ``n`` tokens, as a grid of steps (rows) x tokens (columns). Left: with no cache, step t
    projects the keys and values of all t + 1 tokens again. Right: with a cache, step t projects only token t
    and reads the others back from memory. The titles count the projections (:func:`projection_counts`)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    recomputed, cached = projection_counts(n)
    no_cache = np.tril(np.full((n, n), 2))
    with_cache = np.tril(np.ones((n, n))) + np.eye(n)
    cmap = ListedColormap(["white", "#c9dcee", PALETTE[0]])
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.4))
    for ax, grid, title in ((axes[0], no_cache, f"no cache: {recomputed} projections"),
                            (axes[1], with_cache, f"KV cache: {cached} projections")):
        ax.imshow(grid, cmap=cmap, vmin=0, vmax=2)
        ax.set_xticks(np.arange(-0.5, n), minor=True)
        ax.set_yticks(np.arange(-0.5, n), minor=True)
        ax.grid(which="minor", color="grey", lw=0.5)
        ax.grid(which="major", visible=False)
        ax.tick_params(which="both", length=0, labelsize=TEXT)
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xlabel("token whose k, v the step needs", fontsize=TEXT)
        ax.set_ylabel("decode step", fontsize=TEXT)
        ax.set_title(title, fontsize=TEXT + 1)
    fig.text(0.5, 0.02, "dark: k, v projected at this step     light: k, v read back from the cache",
             ha="center", fontsize=TEXT)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


__all__ = [
    "draw_attention_steps",
    "draw_kv_cache",
    "draw_memory_hierarchy",
    "draw_pair_grids",
    "draw_roofline",
    "hierarchy_rows",
    "projection_counts",
]
