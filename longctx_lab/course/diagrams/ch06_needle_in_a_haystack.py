"""Chapter 6's explanatory diagrams: a needle-in-a-haystack prompt's anatomy, and data plots made legible at book
width.

Public API (one line each):

- ``token_roles(sample) -> list[str]``: the role of each prompt token of a :class:`longctx_lab.lm.tasks.Sample`
  (``"bos"``, ``"filler"``, ``"needle"``, ``"question"``), then ``"answer"`` for each answer token.
- ``draw_prompt_anatomy(sample, *, per_row=12) -> Figure``: the prompt's tokens as boxes, coloured by role, wrapped
  in rows, the needle's start index and depth in the title, the answer the model must generate in dashed boxes.
- ``legible(fig, min_points=9, max_width=7.5) -> Figure``: raise every text of ``fig`` smaller than ``min_points``
  to it, and narrow a figure wider than ``max_width`` inches (the book's width), for the package's data plots.

Everything drawn comes from the objects passed in (a generated sample, a figure), so the pictures show the numbers
the chapter's cells print.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from longctx_lab.lm.tasks import VOCAB

__all__ = ["draw_prompt_anatomy", "legible", "token_roles"]

ROLE_COLOURS = {"bos": "#bbbbbb", "filler": "#f2f2f2", "needle": "#f4a261", "question": "#8ecae6",
                "answer": "#ffffff"}


def token_roles(sample) -> list[str]:
    """Role of each prompt token, then ``"answer"`` per answer token. The needle spans come from the sample's
    ``needle_positions`` and ``needle_lens``; everything after the context (``<q>`` onwards) is the question."""
    n_prompt = len(sample.prompt)
    question_start = 1 + int(sample.context_len)
    if question_start > n_prompt:
        raise ValueError(f"sample's context_len {sample.context_len} does not fit its {n_prompt}-token prompt")
    roles = ["bos"] + ["filler"] * (question_start - 1) + ["question"] * (n_prompt - question_start)
    for start, length in zip(sample.needle_positions, sample.needle_lens, strict=True):
        for i in range(start, start + length):
            roles[i] = "needle"
    return roles + ["answer"] * len(sample.answer)


def draw_prompt_anatomy(sample, *, per_row: int = 12):
    """The prompt of ``sample`` as a strip of labelled token boxes (``per_row`` a row), coloured by role."""
    if per_row < 1:
        raise ValueError(f"per_row must be >= 1, got {per_row}")
    roles = token_roles(sample)
    words = VOCAB.decode(list(sample.prompt) + list(sample.answer)).split()
    rows = (len(words) + per_row - 1) // per_row
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * rows + 1.3))
    for k, (word, role) in enumerate(zip(words, roles, strict=True)):
        r, c = divmod(k, per_row)
        dashed = role == "answer"
        ax.add_patch(Rectangle((c, -r), 0.94, 0.8, facecolor=ROLE_COLOURS[role], edgecolor="#555555",
                               lw=1.0, ls="--" if dashed else "-"))
        ax.text(c + 0.47, -r + 0.4, word, ha="center", va="center", fontsize=9,
                style="italic" if dashed else "normal")
    for i, role in enumerate(("filler", "needle", "question", "answer")):
        ax.add_patch(Rectangle((i * 3, -rows - 0.1), 0.5, 0.5, facecolor=ROLE_COLOURS[role],
                               edgecolor="#555555", ls="--" if role == "answer" else "-"))
        label = "answer (the model generates it)" if role == "answer" else role
        ax.text(i * 3 + 0.65, -rows + 0.15, label, va="center", fontsize=9)
    start = sample.needle_positions[0] - 1  # context index: the prompt's first token is <bos>
    ax.set_title(f"{sample.task}: context of {sample.context_len} tokens, needle at depth {sample.depth:g} "
                 f"starts at context index {start}", fontsize=10)
    ax.set_xlim(-0.1, per_row + 0.1)
    ax.set_ylim(-rows - 0.3, 1.0)
    ax.set_axis_off()
    fig.tight_layout()
    return fig


def legible(fig, min_points: float = 9, max_width: float = 7.5):
    """Raise every text of ``fig`` smaller than ``min_points`` (tick labels, legends) to ``min_points``; a figure
    wider than ``max_width`` inches is narrowed to it (height kept) and laid out again."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        if text.get_text() and text.get_fontsize() < min_points:
            text.set_fontsize(min_points)
    width, height = fig.get_size_inches()
    if width > max_width:
        fig.set_size_inches(max_width, height)
    fig.tight_layout()
    return fig
