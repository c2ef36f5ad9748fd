"""Chapter 5's explanatory diagrams: a KV cache growing during decoding, grouped-query heads sharing KV heads,
a paged cache's block table pointing into its pool, and the outlier channels of keys that motivate KIVI.

Each function draws from numbers the chapter's cell computes (cache lengths, head counts, a real
:class:`~longctx_lab.kvcache.PagedKVCache`, a key tensor), on a figure at most 7.5 inches wide with text of
9 pt or more, and returns the matplotlib ``Figure``.
"""

from __future__ import annotations

import torch

from longctx_lab.core.display import PALETTE
from longctx_lab.core.validate import check_int
from longctx_lab.kvcache import PagedKVCache

__all__ = ["draw_block_table", "draw_cache_growth", "draw_channel_outliers", "draw_gqa_groups"]

_CACHED, _NEW, _EMPTY, _INK = "#1f5aa6", "#e9a03b", "#f2f2f2", "#222222"
_TEXT = 9  # the smallest font size the diagrams use


def _axes(ax, size):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def draw_cache_growth(lengths, ax=None):
    """The cache as it grows: row ``s`` is step ``s`` of generation, ``lengths[s]`` the tokens cached after it.

    Step 0 is the prefill (all its keys and values are written, orange); each later step reads the keys and
    values already cached (blue) and writes one new row (orange). ``lengths`` is what the chapter's loop
    printed (the length of its list of cached tensors after each step).
    """
    from matplotlib.patches import Rectangle

    lengths = [check_int("lengths[i]", n, minimum=1) for n in lengths]
    if not lengths or any(b <= a for a, b in zip(lengths, lengths[1:])):
        raise ValueError(f"lengths must be a non-empty increasing list of cache lengths, got {lengths}")
    ax = _axes(ax, (7.5, 0.45 * len(lengths) + 1.3))
    top = len(lengths) - 1
    for s, n in enumerate(lengths):
        y = top - s
        before = 0 if s == 0 else lengths[s - 1]
        for p in range(lengths[-1]):
            colour = _CACHED if p < before else _NEW if p < n else _EMPTY
            ax.add_patch(Rectangle((p, y), 0.92, 0.8, facecolor=colour, edgecolor="white"))
        label = f"prefill: write {n}" if s == 0 else f"step {s}: read {before}, write 1"
        ax.text(-0.4, y + 0.4, label, ha="right", va="center", fontsize=_TEXT)
    ax.set_xlim(-6.5, lengths[-1] + 0.2)
    ax.set_ylim(-0.9, len(lengths))
    ax.text(lengths[-1] / 2, -0.5, "token position in the cache (blue: read from the cache, orange: new K and V)",
            ha="center", va="center", fontsize=_TEXT, color="#5c5c5c")
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("A KV cache grows by one row per generated token", fontsize=11)
    return ax.figure


def draw_gqa_groups(heads: int, kv_heads: int, ax=None):
    """Query heads (top) and the KV heads they read (bottom): head ``h`` reads KV head ``h // (heads // kv_heads)``,
    the mapping of ``repeat_interleave(k, heads // kv_heads, dim=1)``."""
    from matplotlib.patches import FancyBboxPatch

    heads = check_int("heads", heads, minimum=1)
    kv_heads = check_int("kv_heads", kv_heads, minimum=1)
    if heads % kv_heads:
        raise ValueError(f"heads ({heads}) must be a multiple of kv_heads ({kv_heads})")
    group = heads // kv_heads
    ax = _axes(ax, (7.5, 2.6))
    q_x = [i * 1.0 for i in range(heads)]
    kv_x = [(j + 0.5) * group - 0.5 for j in range(kv_heads)]
    for h, x in enumerate(q_x):
        colour = PALETTE[(h // group) % len(PALETTE)]
        ax.add_patch(FancyBboxPatch((x - 0.4, 2.0), 0.8, 0.6, boxstyle="round,pad=0.02", facecolor=colour,
                                    alpha=0.35, edgecolor=colour))
        ax.text(x, 2.3, f"q{h}", ha="center", va="center", fontsize=_TEXT)
        ax.plot([x, kv_x[h // group]], [2.0, 0.9], color=colour, lw=1.2)
    for j, x in enumerate(kv_x):
        colour = PALETTE[j % len(PALETTE)]
        ax.add_patch(FancyBboxPatch((x - 0.9, 0.3), 1.8, 0.6, boxstyle="round,pad=0.02", facecolor=colour,
                                    edgecolor=colour))
        ax.text(x, 0.6, f"K,V head {j}", ha="center", va="center", fontsize=_TEXT, color="white")
    ax.text(-0.6, 2.3, "query\nheads", ha="right", va="center", fontsize=_TEXT)
    ax.text(-0.6, 0.6, "cached\nheads", ha="right", va="center", fontsize=_TEXT)
    ax.set_xlim(-2.2, heads)
    ax.set_ylim(0.1, 2.9)
    ax.axis("off")
    ax.set_title(f"GQA: {heads} query heads share {kv_heads} KV heads (group of {group}); "
                 f"the cache stores {kv_heads}, not {heads}", fontsize=10)
    return ax.figure


def draw_block_table(cache: PagedKVCache, ax=None, *, example: tuple[int, int] | None = None,
                     per_row: int = 6):
    """A paged cache as two pictures linked by colour: its block table (one row per sequence, entry ``i`` the pool
    block holding its tokens ``i * B`` to ``i * B + B - 1``) and its pool (``per_row`` blocks a row; filled slots
    coloured by the sequence that wrote them, hatched where a block is shared). ``example=(seq, position)`` draws
    one lookup as an arrow from the table entry to the slot."""
    from matplotlib.patches import FancyArrowPatch, Rectangle

    if not isinstance(cache, PagedKVCache):
        raise TypeError(f"cache must be a PagedKVCache, got {type(cache).__name__}")
    per_row = check_int("per_row", per_row, minimum=1)
    b, seqs = cache.block_size, cache.held()
    tables = {s: cache.blocks_of(s) for s in seqs}
    lengths = cache.lengths.tolist()
    owners: dict[int, list[int]] = {}
    filled: dict[int, int] = {}
    for s in seqs:
        for i, blk in enumerate(tables[s]):
            owners.setdefault(blk, []).append(s)
            filled[blk] = max(filled.get(blk, 0), min(b, lengths[s] - i * b))
    pool_rows = -(-cache.num_blocks // per_row)
    slot, gap = 0.5, 0.35  # pool geometry: a slot's width, the gap between blocks
    block_w = b * slot
    pool_x0 = 0.0
    table_x0 = pool_x0 + per_row * (block_w + gap) + 1.6
    height = max(len(seqs) * 0.95, pool_rows * 1.6)
    ax = _axes(ax, (7.5, 0.75 * height + 1.6))
    # the pool, left: rows of blocks, numbered underneath
    where = {}
    for blk in range(cache.num_blocks):
        r, c = divmod(blk, per_row)
        x0, y0 = pool_x0 + c * (block_w + gap), height - 1.0 - r * 1.6
        where[blk] = (x0, y0)
        who = owners.get(blk, [])
        for k in range(b):
            used = k < filled.get(blk, 0)
            colour = PALETTE[who[0] % len(PALETTE)] if used else _EMPTY
            ax.add_patch(Rectangle((x0 + k * slot, y0), slot * 0.92, 0.8, facecolor=colour, edgecolor="white",
                                   hatch="///" if used and len(who) > 1 else None))
        ax.add_patch(Rectangle((x0, y0), block_w, 0.8, fill=False, edgecolor="#5c5c5c", lw=1.0))
        ax.text(x0 + block_w / 2, y0 - 0.12, f"block {blk}", ha="center", va="top", fontsize=_TEXT,
                color=_INK if who else "#9a9a9a")
    bottom = min(height - 1.0 - (pool_rows - 1) * 1.6 - 0.6, height - 1.0 - (len(seqs) - 1) * 0.95 - 0.2)
    ax.text(pool_x0 + per_row * (block_w + gap) / 2, bottom, f"pool: {cache.num_blocks} blocks of {b} token "
            "slots", ha="center", va="top", fontsize=_TEXT, fontweight="bold")
    # the block tables, right: one row per sequence
    cells = {}
    for r, s in enumerate(seqs):
        y = height - 1.0 - r * 0.95
        colour = PALETTE[s % len(PALETTE)]
        ax.text(table_x0 - 0.15, y + 0.4, f"seq {s}", ha="right", va="center", fontsize=_TEXT)
        for i, blk in enumerate(tables[s]):
            cells[(s, i)] = (table_x0 + i * 0.9, y)
            ax.add_patch(Rectangle((table_x0 + i * 0.9, y), 0.8, 0.8, facecolor=colour, alpha=0.3,
                                   edgecolor=colour))
            ax.text(table_x0 + i * 0.9 + 0.4, y + 0.4, str(blk), ha="center", va="center", fontsize=_TEXT + 1,
                    fontweight="bold")
        ax.text(table_x0 + len(tables[s]) * 0.9 + 0.1, y + 0.4, f"{lengths[s]} tokens", ha="left",
                va="center", fontsize=_TEXT, color="#5c5c5c")
    ax.text(table_x0 + 1.6, bottom, "block tables", ha="center", va="top", fontsize=_TEXT, fontweight="bold")
    width = table_x0 + max(len(t) for t in tables.values()) * 0.9 + 1.6
    if example is not None:
        s, pos = example
        i, k = divmod(pos, b)
        blk = tables[s][i]
        (cx, cy), (bx, by) = cells[(s, i)], where[blk]
        ax.add_patch(Rectangle((bx + k * slot, by), slot * 0.92, 0.8, fill=False, edgecolor="black", lw=2))
        ax.add_patch(FancyArrowPatch((cx + 0.4, cy + 0.85), (bx + (k + 0.5) * slot, by + 0.85),
                                     arrowstyle="-|>", mutation_scale=12, color="black", lw=1.2,
                                     connectionstyle="arc3,rad=0.12"))
        ax.text(width / 2, bottom - 0.7, f"seq {s}, token {pos}: table[{pos} // {b}] = block {blk}, "
                f"slot {pos} % {b} = {k}", ha="center", va="top", fontsize=_TEXT + 1)
    ax.set_xlim(-0.2, width)
    ax.set_ylim(bottom - (1.5 if example else 0.7), height + (1.2 if example else 0.2))
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("Paged KV cache (grey: free slots, hatched: shared blocks)", fontsize=10)
    return ax.figure


def draw_channel_outliers(keys: torch.Tensor, *, outliers=(), ax=None):
    """``|keys|`` as a heatmap (tokens down, channels across) beside each channel's largest magnitude.

    ``keys``: ``(tokens, head_dim)``. A per-token scale is set by the row's largest value, which sits in the
    outlier ``channels``; a per-channel scale is set by the column's, so ordinary channels keep their range.
    """
    import matplotlib.pyplot as plt

    if not isinstance(keys, torch.Tensor) or keys.ndim != 2:
        raise TypeError(f"keys must be a (tokens, head_dim) tensor, got {type(keys).__name__}")
    k = keys.detach().abs().float()
    if ax is None:
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7.5, 4.4), height_ratios=[2.2, 1], sharex=True)
    else:
        fig, ax2 = ax.figure, None
    image = ax.imshow(k.numpy(), aspect="auto", cmap="magma", interpolation="nearest")
    ax.set_ylabel("token")
    ax.set_title(f"|K| of {k.shape[0]} tokens x {k.shape[1]} channels: outlier channels "
                 f"{list(outliers)}", fontsize=10)
    ax.grid(False)
    if ax2 is not None:
        peak = k.amax(dim=0).numpy()
        colours = ["#d1495b" if c in set(outliers) else "#1f5aa6" for c in range(k.shape[1])]
        ax2.bar(range(k.shape[1]), peak, color=colours, width=0.9)
        ax2.set_xlabel("channel")
        ax2.set_ylabel("max |key|")
    fig.colorbar(image, ax=[ax] if ax2 is None else [ax, ax2], label="|key|", pad=0.01)
    return fig
