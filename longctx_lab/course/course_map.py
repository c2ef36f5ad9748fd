"""The course map that opens every chapter: the chapters as a path, the current one highlighted.

:func:`draw_course_map` draws it with matplotlib (so it regenerates offline and in the book), sized for the
book's content width; :data:`CHAPTERS` is the one list of the chapters' numbers, titles and one-line ideas.
"""

from __future__ import annotations

from dataclasses import dataclass

from longctx_lab.core.validate import check_int


@dataclass(frozen=True)
class Chapter:
    number: int
    title: str
    idea: str  # what the chapter adds, in a few words


CHAPTERS: tuple[Chapter, ...] = (
    Chapter(1, "The quadratic\nwall", "n² scores, KV cache,\nthe roofline"),
    Chapter(2, "RoPE and its\nscaling", "positions as turns;\nPI, NTK, YaRN"),
    Chapter(3, "Sliding windows\nand sparsity", "masks, rolling buffers,\nattention sinks"),
    Chapter(4, "Flash-\nAttention", "online softmax, tiles,\nTriton kernels"),
    Chapter(5, "KV cache\nand GQA", "cache layouts, GQA,\nquantized caches"),
    Chapter(6, "Needle in a\nhaystack", "a tiny LM trained\nhere; NIAH grids"),
    Chapter(7, "Production\nstacks", "the layers combined;\nring attention"),
    Chapter(8, "Beyond\nattention", "linear attention,\nSSMs, MQAR"),
)


def draw_course_map(current: int, ax=None):
    """Draw :data:`CHAPTERS` as a path of boxes (left to right, then back along a second row), chapter
    ``current`` highlighted and the ones before it ticked. Returns the matplotlib ``Figure``."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    numbers = [c.number for c in CHAPTERS]
    current = check_int("current", current, minimum=1)
    if current not in numbers:
        raise ValueError(f"current must be a chapter number {numbers}, got {current}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 3.5))
    per_row = (len(CHAPTERS) + 1) // 2
    w, h, gap_x, gap_y = 1.15, 0.9, 0.22, 0.35
    boxes = {}
    for i, ch in enumerate(CHAPTERS):
        row, col = divmod(i, per_row)
        col = col if row % 2 == 0 else per_row - 1 - col  # the second row runs back: a snake
        x, y = col * (w + gap_x), -row * (h + gap_y)
        boxes[ch.number] = (x, y)
        here, done = ch.number == current, ch.number < current
        face = "#1f5aa6" if here else ("#dfe8f5" if done else "#f4f4f4")
        edge = "#1f5aa6" if (here or done) else "#9a9a9a"
        ink = "white" if here else "#222222"
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.06",
                                    facecolor=face, edgecolor=edge, linewidth=1.8 if here else 1.0))
        ax.text(x + 0.07, y + h - 0.08, f"{ch.number}" + (" ✓" if done else ""), ha="left", va="top",
                fontsize=9, color=ink, fontweight="bold")
        ax.text(x + w / 2, y + h * 0.6, ch.title, ha="center", va="center", fontsize=9.5, fontweight="bold",
                color=ink, linespacing=1.1)
        ax.text(x + w / 2, y + h * 0.2, ch.idea, ha="center", va="center", fontsize=8, color=ink,
                linespacing=1.1)
    for a, b in zip(numbers, numbers[1:]):
        (xa, ya), (xb, yb) = boxes[a], boxes[b]
        if ya == yb:
            left_to_right = xb > xa
            start = (xa + (w if left_to_right else 0) + (0.02 if left_to_right else -0.02), ya + h / 2)
            end = (xb + (0 if left_to_right else w) + (-0.02 if left_to_right else 0.02), yb + h / 2)
        else:  # down to the next row
            start, end = (xa + w / 2, ya - 0.03), (xb + w / 2, yb + h + 0.03)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color="#777777",
                                     linewidth=1.1))
    ax.set_xlim(-0.05, per_row * (w + gap_x) - gap_x + 0.05)
    ax.set_ylim(-(h + gap_y) - 0.05, h + 0.05)
    ax.axis("off")
    ax.set_title(f"Course map: chapter {current} of {len(CHAPTERS)}", fontsize=10.5, loc="left")
    return ax.figure


__all__ = ["CHAPTERS", "Chapter", "draw_course_map"]
