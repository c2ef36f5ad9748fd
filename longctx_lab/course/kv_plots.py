"""Pictures of KV caches for chapter 5, in the course style (:mod:`longctx_lab.course.plots`).

:func:`draw_paged_cache` draws a :class:`~longctx_lab.kvcache.PagedKVCache`: its block pool (one box per block,
one cell per token slot, coloured by the sequence that owns it, hatched when several sequences share it) beside
its block tables, from :func:`longctx_lab.course.kv_experiments.block_layout`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from longctx_lab.core.display import PALETTE
from longctx_lab.course.kv_experiments import block_layout
from longctx_lab.kvcache import PagedKVCache

__all__ = ["draw_paged_cache"]


def draw_paged_cache(cache: PagedKVCache, *, per_row: int = 8, title: str = "", ax_pool=None, ax_tables=None):
    """Draw ``cache``'s pool (``per_row`` blocks a row) and its block tables; returns ``(ax_pool, ax_tables)``."""
    if not isinstance(cache, PagedKVCache):
        raise TypeError(f"cache must be a PagedKVCache, got {type(cache).__name__}")
    if ax_pool is None or ax_tables is None:
        _, (ax_pool, ax_tables) = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    layout = block_layout(cache)
    b = cache.block_size
    rows = -(-cache.num_blocks // per_row)
    for block in range(cache.num_blocks):
        r, c = divmod(block, per_row)
        x0, y0 = c * (b + 1), (rows - 1 - r) * 3.0
        entry = layout.get(block)
        for slot in range(b):
            filled = entry is not None and slot < entry["filled"]
            owners = entry["owners"] if entry else ()
            colour = PALETTE[owners[0] % len(PALETTE)] if filled else "#f2f2f2"
            ax_pool.add_patch(Rectangle((x0 + slot, y0), 1, 1, facecolor=colour, edgecolor="white",
                                        hatch="///" if filled and len(owners) > 1 else None))
        ax_pool.add_patch(Rectangle((x0, y0), b, 1, fill=False, edgecolor="#5c5c5c", lw=1.2))
        ax_pool.text(x0 + b / 2, y0 + 1.15, f"block {block}", ha="center", va="bottom", fontsize=8,
                     color="#5c5c5c" if entry is None else "black")
    ax_pool.set_xlim(-0.5, per_row * (b + 1))
    ax_pool.set_ylim(-0.3, rows * 3.0)
    ax_pool.set_aspect("equal")
    ax_pool.axis("off")
    default = f"block pool: {cache.num_blocks} blocks of {b} token slots (grey: empty, hatched: shared)"
    ax_pool.set_title(title or default, fontsize=10)
    lengths = cache.lengths.tolist()
    lines = [f"seq {s} ({lengths[s]} tokens): blocks {cache.blocks_of(s)}" for s in cache.held()]
    ax_tables.axis("off")
    for i, line in enumerate(lines):
        ax_tables.text(0, 1 - 0.14 * (i + 1), line, fontsize=10, family="monospace",
                       color=PALETTE[cache.held()[i] % len(PALETTE)], transform=ax_tables.transAxes)
    ax_tables.set_title("block tables: position p is in block table[p // block_size]", fontsize=10)
    return ax_pool, ax_tables
