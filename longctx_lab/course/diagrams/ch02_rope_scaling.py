"""Chapter 2's explanatory diagrams: a RoPE pair turning on a circle, the arc of angles a slow pair saw in
training against the arcs it meets when extended, and YaRN's ramp over the pairs.

Every function draws the numbers the chapter's cell computed (rotated vectors, a frequency, a ramp) and
returns the ``Figure``; sizes fit the book (7.5 inches wide, text at least 9 pt).
"""

from __future__ import annotations

import math

__all__ = ["draw_pair_cosine", "draw_pair_rotation", "draw_trained_arcs", "draw_yarn_ramp"]

_Q, _K, _SEEN, _NEW = "#1f5aa6", "#d1495b", "#5c5c5c", "#e9a03b"


def _circle_axes(ax, title: str):
    import numpy as np

    t = np.linspace(0, 2 * math.pi, 200)
    ax.plot(np.cos(t), np.sin(t), color="#bbbbbb", lw=1)
    ax.axhline(0, color="#dddddd", lw=0.8)
    ax.axvline(0, color="#dddddd", lw=0.8)
    ax.set(xlim=(-1.45, 1.45), ylim=(-1.45, 1.45), aspect="equal", title=title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for side in ("left", "bottom", "top", "right"):
        ax.spines[side].set_visible(False)


def _arc(ax, start: float, stop: float, radius: float, **style):
    """An arc from angle ``start`` to ``stop`` (radians, counter-clockwise, may exceed one turn)."""
    import numpy as np

    t = np.linspace(start, stop, max(8, int(abs(stop - start) * 40)))
    r = radius + 0.025 * (t - start) / (2 * math.pi)  # a slow spiral, so a second turn stays visible
    return ax.plot(r * np.cos(t), r * np.sin(t), **style)


def draw_pair_rotation(panels, *, figsize=(7.5, 3.6)):
    """One panel per ``(title, q_xy, k_xy)``: the query's and the key's feature pair after RoPE, as arrows
    on the unit circle, with the angle between them written under the panel.

    ``q_xy`` and ``k_xy`` are the rotated 2-vectors the chapter's cell printed (one RoPE pair each). Two
    panels whose positions differ by the same shift show the same angle: the score sees only ``m - n``.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=figsize, squeeze=False)
    for ax, (title, q_xy, k_xy) in zip(axes[0], panels, strict=True):
        _circle_axes(ax, title)
        aq, ak = (math.atan2(float(v[1]), float(v[0])) for v in (q_xy, k_xy))
        for (x, y), colour, name in ((q_xy, _Q, "query"), (k_xy, _K, "key")):
            ax.annotate("", xy=(float(x), float(y)), xytext=(0, 0),
                        arrowprops={"arrowstyle": "-|>", "color": colour, "lw": 2})
            ax.text(1.22 * float(x), 1.22 * float(y), name, color=colour, ha="center", va="center",
                    fontsize=10, fontweight="bold")
        between = (aq - ak + math.pi) % (2 * math.pi) - math.pi  # query angle minus key angle
        _arc(ax, ak, ak + between, 0.35, color="black", lw=1.2)
        ax.set_xlabel(f"angle key→query: {between:+.2f} rad", fontsize=10)
    fig.tight_layout()
    return fig


def draw_trained_arcs(theta: float, trained: int, new: int, factor: float, *, figsize=(7.5, 3.2)):
    """Three circles for one slow pair of frequency ``theta`` (radians per token): the arc of angles swept
    in training (positions ``0 .. trained``), the arc at ``new`` positions with plain extrapolation (its
    part beyond the trained arc marked unseen), and the arc after position interpolation by ``factor``."""
    import matplotlib.pyplot as plt

    seen = trained * theta
    panels = (
        (f"training: 0..{trained:,}", seen, 0.0),
        (f"plain RoPE: 0..{new:,}", seen, new * theta - seen),
        (f"PI (÷{factor:g}): 0..{new:,}", new * theta / factor, 0.0),
    )
    fig, axes = plt.subplots(1, 3, figsize=figsize)
    for ax, (title, green, extra) in zip(axes, panels, strict=True):
        _circle_axes(ax, title)
        _arc(ax, 0.0, green, 1.0, color=_SEEN, lw=5, solid_capstyle="butt")
        if extra > 0:
            _arc(ax, green, green + extra, 1.0, color=_NEW, lw=5, solid_capstyle="butt")
        ax.set_xlabel(f"swept {green + extra:.2f} rad" + (f"\n({extra:.2f} unseen)" if extra > 0 else "\n "),
                      fontsize=10)
    axes[0].plot([], [], color=_SEEN, lw=5, label="angles seen in training")
    axes[0].plot([], [], color=_NEW, lw=5, label="angles never seen")
    fig.legend(loc="lower center", ncol=2, fontsize=10, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def draw_pair_cosine(theta: float, trained: int, new: int, *, pair: int | None = None, figsize=(7.5, 3.0)):
    """``cos(distance * theta)`` for distances ``0 .. new``: the factor by which one pair's rotation scales
    its contribution to the score. The distances seen in training (``0 .. trained``) are shaded, and the
    distance where the cosine first turns negative, ``pi / (2 theta)``, is marked when it lies in range."""
    import matplotlib.pyplot as plt
    import numpy as np

    dist = np.linspace(0, new, 600)
    fig, ax = plt.subplots(figsize=figsize)
    ax.axvspan(0, trained, color=_SEEN, alpha=0.18, label=f"distances seen in training (0..{trained:,})")
    ax.plot(dist, np.cos(dist * theta), color=_Q, lw=2)
    ax.axhline(0, color="grey", lw=0.8)
    flip = math.pi / (2 * theta)
    if flip <= new:
        ax.axvline(flip, color=_NEW, ls="--", lw=1.5, label=f"cosine turns negative at {flip:,.0f}")
    name = f"pair {pair}" if pair is not None else "the pair"
    ax.set(xlim=(0, new), ylim=(-1.1, 1.1), xlabel="distance m - n (tokens)",
           ylabel=f"cos(distance x θ), {name}")
    ax.legend(loc="lower left", fontsize=10)
    fig.tight_layout()
    return fig


def draw_yarn_ramp(turns, ramp, *, beta_fast: float, beta_slow: float, low: float, high: float,
                   figsize=(7.5, 3.8)):
    """YaRN's ramp: for each pair (x: pair index) the share of interpolation ``ramp`` (0 = keep the pair,
    1 = divide it by the factor), the bands it splits the pairs into, and on top each band's turns in the
    trained context (``turns``: one value per pair), with ``beta_fast`` and ``beta_slow`` marked."""
    import matplotlib.pyplot as plt

    n = len(ramp)
    fig, ax = plt.subplots(figsize=figsize)
    ax.axvspan(-0.5, low, color="#dfe8f5")
    ax.axvspan(high, n - 0.5, color="#f6dde0")
    ax.plot(range(n), [float(g) for g in ramp], "o-", color="black", ms=3.5, lw=1.2)
    ax.set(xlim=(-0.5, n - 0.5), ylim=(-0.08, 1.25), xlabel="pair index i",
           ylabel="share interpolated γ_i")
    ax.grid(False)
    mid = (low + high) / 2
    ax.text(low / 2, 1.12, f"keep\n(> {beta_fast:g} turns)", ha="center", va="center", fontsize=10)
    ax.text(mid, 1.12, "blend", ha="center", va="center", fontsize=10)
    ax.text((high + n) / 2, 1.12, f"divide by s\n(< {beta_slow:g} turn)", ha="center", va="center",
            fontsize=10)
    for i, label in ((low, f"low = {low:g}\n{float(turns[int(low)]):.1f} turns"),
                     (high, f"high = {high:g}\n{float(turns[min(int(high), n - 1)]):.2f} turns")):
        ax.axvline(i, color="grey", ls=":", lw=1)
        ax.text(i + 0.6, 0.45 if i == low else 0.2, label, fontsize=9, color="#333333")
    fig.tight_layout()
    return fig
