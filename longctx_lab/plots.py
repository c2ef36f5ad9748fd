"""One plotting style for the course: matplotlib with readable defaults and a few shared helpers."""

from __future__ import annotations

import matplotlib.pyplot as plt

PALETTE = ["#1f5aa6", "#d1495b", "#2a9d8f", "#e9a03b", "#6b4c9a", "#5c5c5c"]


def use_course_style() -> None:
    """Apply the course's matplotlib defaults (call once at the top of a notebook)."""
    plt.rcParams.update({
        "figure.figsize": (7.5, 4.2),
        "figure.dpi": 100,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.prop_cycle": plt.cycler(color=PALETTE),
        "font.size": 11,
        "legend.frameon": False,
    })


def loglog_axes(ax=None, *, xlabel: str, ylabel: str, title: str | None = None):
    """Log-log axes with labels, returning the axes."""
    if ax is None:
        _, ax = plt.subplots()
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return ax


def mask_image(ax, mask, *, title: str = "", xlabel: str = "key position j", ylabel: str = "query position i"):
    """Draw a boolean (q_len, kv_len) mask: dark = attended."""
    ax.imshow(mask, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(False)
    return ax
