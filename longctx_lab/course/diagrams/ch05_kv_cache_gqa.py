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


def draw_block_table(cache: PagedKVCache, ax=None, *, example: tuple[int, int] | None = None):
    """A paged cache as two pictures linked by colour: its block table (one row per sequence, entry ``i`` the pool
    block holding its tokens ``i * B`` to ``i * B + B - 1``) and its pool (filled slots coloured by the sequence
    that wrote them, hatched where a block is shared). ``example=(seq, position)`` spells out one lookup."""
    from matplotlib.patches import Rectangle

    if not isinstance(cache, PagedKVCache):
        raise TypeError(f"cache must be a PagedKVCache, got {type(cache).__name__}")
    b, seqs = cache.block_size, cache.held()
    tables = {s: cache.blocks_of(s) for s in seqs}
    lengths = cache.lengths.tolist()
    owners: dict[int, list[int]] = {}
    filled: dict[int, int] = {}
    for s in seqs:
        for i, blk in enumerate(tables[s]):
            owners.setdefault(blk, []).append(s)
            filled[blk] = max(filled.get(blk, 0), min(b, lengths[s] - i * b))
    ax = _axes(ax, (7.5, 0.55 * len(seqs) + 2.4))
    width = max(len(t) for t in tables.values())
    # the block table, top left
    for r, s in enumerate(seqs):
        y = 1.9 + (len(seqs) - 1 - r) * 0.8
        ax.text(-0.2, y + 0.3, f"seq {s} ({lengths[s]} tok)", ha="right", va="center", fontsize=_TEXT)
        for i, blk in enumerate(tables[s]):
            ax.add_patch(Rectangle((i * 1.1, y), 1.0, 0.6, facecolor=PALETTE[s % len(PALETTE)], alpha=0.3,
                                   edgecolor=PALETTE[s % len(PALETTE)]))
            ax.text(i * 1.1 + 0.5, y + 0.3, str(blk), ha="center", va="center", fontsize=_TEXT + 1,
                    fontweight="bold")
    ax.text(width * 1.1 / 2, 1.9 + len(seqs) * 0.8, "block table: entry i = pool block of tokens "
            f"{b}i..{b}i+{b - 1}", ha="center", va="bottom", fontsize=_TEXT)
    # the pool, bottom
    scale = min(1.0, 15.5 / (cache.num_blocks * (b + 1)))
    for blk in range(cache.num_blocks):
        x0 = blk * (b + 1) * scale
        who = owners.get(blk, [])
        for slot in range(b):
            used = slot < filled.get(blk, 0)
            colour = PALETTE[who[0] % len(PALETTE)] if used else _EMPTY
            ax.add_patch(Rectangle((x0 + slot * scale, 0.2), scale * 0.95, 0.7, facecolor=colour,
                                   edgecolor="white", hatch="///" if used and len(who) > 1 else None))
        ax.add_patch(Rectangle((x0, 0.2), b * scale, 0.7, fill=False, edgecolor="#5c5c5c", lw=1.0))
        ax.text(x0 + b * scale / 2, 0.05, str(blk), ha="center", va="top", fontsize=_TEXT,
                color=_INK if who else "#9a9a9a")
    ax.text(-0.2, 0.55, "pool", ha="right", va="center", fontsize=_TEXT)
    if example is not None:
        s, p = example
        blk = tables[s][p // b]
        ax.text(cache.num_blocks * (b + 1) * scale / 2, -0.55,
                f"seq {s}, token {p}: block table[{p} // {b}] = block {blk}, slot {p} % {b} = {p % b}",
                ha="center", va="top", fontsize=_TEXT)
    ax.set_xlim(-3.2, max(cache.num_blocks * (b + 1) * scale, width * 1.1) + 0.2)
    ax.set_ylim(-1.0 if example else -0.5, 2.4 + len(seqs) * 0.8)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"Paged cache: {cache.num_blocks} blocks of {b} slots (grey: free, hatched: shared)",
                 fontsize=10)
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
