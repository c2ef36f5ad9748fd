"""The depth x length heatmap of a :class:`~longctx_lab.lm.niah.NIAHResult`, in the course style."""

from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from longctx_lab.core.display import use_course_style
from longctx_lab.lm.niah.harness import RULER_THRESHOLD, NIAHResult

__all__ = ["plot_heatmap"]


def plot_heatmap(result: NIAHResult, path=None, *, ax=None, threshold: float = RULER_THRESHOLD,
                 title: str | None = None):
    """Accuracy as an image: rows = needle depths (0 at the top), columns = context lengths, each cell
    annotated; the title gives the effective length at ``threshold``. Saves a PNG to ``path`` when given.
    Returns the axes (a new figure when ``ax`` is None)."""
    if not isinstance(result, NIAHResult):
        raise TypeError(f"result must be a NIAHResult, got {type(result).__name__}")
    with matplotlib.rc_context():
        use_course_style()
        if ax is None:
            fig = Figure(figsize=(1.2 * len(result.lengths) + 2.5, 0.55 * len(result.depths) + 2.0))
            ax = fig.add_subplot()
        image = ax.imshow(result.accuracy, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(len(result.lengths)), [str(n) for n in result.lengths])
        ax.set_yticks(range(len(result.depths)), ["-" if d is None else f"{d:.2f}" for d in result.depths])
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel("needle depth")
        for i, row in enumerate(result.accuracy):
            for j, acc in enumerate(row):
                ax.text(j, i, f"{acc:.2f}", ha="center", va="center", fontsize=9)
        ax.grid(False)
        eff = result.effective_length(threshold)
        ax.set_title(title or f"{result.task}: {result.trials} trials/cell, effective length "
                     f"{eff if eff is not None else 'none'} at {threshold:.1%}")
        ax.figure.colorbar(image, ax=ax, label="exact-match accuracy")
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            ax.figure.savefig(path, bbox_inches="tight")
    return ax
