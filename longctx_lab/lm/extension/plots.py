"""Figures of the recorded chapter-6 extension results (matplotlib, course style); each returns a ``Figure``.

- :func:`plot_method_heatmaps`: one depth x length heatmap per method (mean over seeds, cells annotated,
  the min-max over seeds of each length under the column);
- :func:`plot_by_length`: accuracy vs context length per method, mean over seeds with the min-max band;
- :func:`plot_beta_fast`: YaRN accuracy vs ``beta_fast`` per read length (mean, min-max band), beside the
  count of rotary pairs YaRN keeps / blends / interpolates at each ``beta_fast``;
- :func:`plot_window_distance`: accuracy vs needle distance for the sliding-window model, with the window
  ``w - 1`` and the two-layer reach ``2 (w - 1)`` marked;
- :func:`plot_wavelengths`: the tiny model's wavelengths against ``L`` and ``L / beta_fast`` (chapter 2's
  wavelength plot for this model).

Inputs are an experiment's per-seed list from ``ch06-extension.json`` (``results["experiments"][name]["seeds"]``).
"""

from __future__ import annotations

import matplotlib
from matplotlib.figure import Figure

from longctx_lab.core.display import use_course_style
from longctx_lab.lm.extension.summary import method_spread, spread

__all__ = ["plot_beta_fast", "plot_by_length", "plot_method_heatmaps", "plot_wavelengths", "plot_window_distance"]


def _seeds(seed_results, name="seed_results") -> list[dict]:
    if not isinstance(seed_results, list) or not seed_results:
        raise ValueError(f"{name} must be a non-empty list of per-seed results, got {seed_results!r:.200}")
    return seed_results


def _method_spreads(seed_results: list[dict], methods) -> tuple[dict, list[str]]:
    """The per-method spread over seeds, and the methods asked for (default: all, in recorded order)."""
    spreads = method_spread(_seeds(seed_results))
    methods = list(spreads) if methods is None else list(methods)
    missing = [m for m in methods if m not in spreads]
    if missing:
        raise ValueError(f"methods must be among {list(spreads)}, got {missing}")
    return spreads, methods


def plot_method_heatmaps(seed_results: list[dict], *, methods=None, title: str = "") -> Figure:
    """One heatmap per method (default: all, in recorded order): mean accuracy over seeds."""
    spreads, methods = _method_spreads(seed_results, methods)
    with matplotlib.rc_context():
        use_course_style()
        first = spreads[methods[0]]
        fig = Figure(figsize=(2.0 + 0.9 * len(first["lengths"]) * len(methods), 1.6 + 0.45 * len(first["depths"])))
        axes = fig.subplots(1, len(methods), squeeze=False)[0]
        for ax, m in zip(axes, methods, strict=True):
            s = spreads[m]
            ax.imshow(s["mean_accuracy"], cmap="RdYlGn", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
            ax.set_xticks(range(len(s["lengths"])),
                          [f"{n}\n{s['by_length'][n]['min']:.2f}-{s['by_length'][n]['max']:.2f}"
                           for n in s["lengths"]], fontsize=7)
            ax.set_yticks(range(len(s["depths"])), [f"{d:.2f}" for d in s["depths"]], fontsize=7)
            for i, row in enumerate(s["mean_accuracy"]):
                for j, a in enumerate(row):
                    ax.text(j, i, f"{a:.2f}", ha="center", va="center", fontsize=7)
            ax.grid(False)
            ax.set_title(m, fontsize=9)
        axes[0].set_ylabel("needle depth")
        fig.supxlabel("context length (under it: min-max over seeds of the column mean)", fontsize=8)
        n = len(seed_results)
        fig.suptitle(title or f"mean exact-match accuracy over {n} seed{'s' if n != 1 else ''}", fontsize=10)
        fig.tight_layout()
    return fig


def plot_by_length(seed_results: list[dict], *, methods=None, title: str = "", ax=None) -> Figure:
    """Accuracy (mean over depths) vs context length per method: mean over seeds, min-max band."""
    spreads, methods = _method_spreads(seed_results, methods)
    with matplotlib.rc_context():
        use_course_style()
        if ax is None:
            fig = Figure(figsize=(6.0, 3.6))
            ax = fig.add_subplot()
        for m in methods:
            bl = spreads[m]["by_length"]
            xs = sorted(bl)
            line, = ax.plot(xs, [bl[x]["mean"] for x in xs], "o-", label=m)
            ax.fill_between(xs, [bl[x]["min"] for x in xs], [bl[x]["max"] for x in xs], alpha=0.15,
                            color=line.get_color())
        ax.set_xscale("log", base=2)
        ax.set(xlabel="context length (tokens)", ylabel="passkey accuracy", ylim=(-0.03, 1.03),
               title=title or f"mean and min-max over {len(seed_results)} seeds")
        ax.legend(fontsize=8)
    return ax.figure


def plot_beta_fast(seed_results: list[dict], *, title: str = "") -> Figure:
    """Left: YaRN accuracy vs ``beta_fast`` per read length (mean, min-max band). Right: rotary pairs kept /
    blended / interpolated at each ``beta_fast`` (from the recorded ``pairs`` table)."""
    seed_results = _seeds(seed_results)
    spreads = method_spread(seed_results)
    betas = [float(m.split("=", 1)[1]) for m in spreads]
    lengths = spreads[next(iter(spreads))]["lengths"]
    pairs = seed_results[0].get("pairs")
    if not isinstance(pairs, dict):
        raise ValueError("seed_results[0] must hold the 'pairs' table of run_yarn_beta")
    with matplotlib.rc_context():
        use_course_style()
        fig = Figure(figsize=(9.0, 3.4))
        ax, bx = fig.subplots(1, 2)
        for n in lengths:
            st = [spreads[m]["by_length"][n] for m in spreads]
            line, = ax.plot(betas, [x["mean"] for x in st], "o-", label=f"read at {n}")
            ax.fill_between(betas, [x["min"] for x in st], [x["max"] for x in st], alpha=0.15, color=line.get_color())
        ax.set_xscale("log", base=2)
        ax.set(xlabel="beta_fast", ylabel="passkey accuracy", ylim=(-0.03, 1.03),
               title=title or f"YaRN, mean and min-max over {len(seed_results)} seeds")
        ax.legend(fontsize=8)
        keys = [f"{b:g}" for b in betas]
        bottom = [0] * len(keys)
        for label, color in (("kept", "C2"), ("blended", "C1"), ("interpolated", "C3")):
            vals = [pairs[k][label] for k in keys]
            bx.bar(range(len(keys)), vals, bottom=bottom, label=label, color=color)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        bx.set_xticks(range(len(keys)), keys)
        bx.set(xlabel="beta_fast", ylabel="rotary pairs", title=f"YaRN's ramp at L = {pairs[keys[0]]['train_len']}")
        bx.legend(fontsize=8)
        fig.tight_layout()
    return fig


def plot_window_distance(seed_results: list[dict], *, title: str = "") -> Figure:
    """Accuracy vs needle distance (tokens back from the answer) for the sliding-window model: mean over seeds
    with min-max, vertical lines at one layer's reach ``w - 1`` and the stack's ``layers * (w - 1)``."""
    seed_results = _seeds(seed_results)
    first = seed_results[0]
    for k in ("distances", "window", "reach", "one_layer_reach"):
        if k not in first:
            raise ValueError(f"seed_results[0] must hold {k!r} (a run_sliding_window result)")
    dist = first["distances"]
    per_depth = [spread([r["grids"]["window"]["accuracy"][i][0] for r in seed_results]) for i in range(len(dist))]
    order = sorted(range(len(dist)), key=lambda i: dist[i])
    with matplotlib.rc_context():
        use_course_style()
        fig = Figure(figsize=(6.0, 3.4))
        ax = fig.add_subplot()
        xs = [dist[i] for i in order]
        ax.plot(xs, [per_depth[i]["mean"] for i in order], "o-", label="accuracy (mean over seeds)")
        ax.fill_between(xs, [per_depth[i]["min"] for i in order], [per_depth[i]["max"] for i in order], alpha=0.2)
        one = first["one_layer_reach"]
        ax.axvline(one, color="grey", ls=":", label=f"one layer: w - 1 = {one}")
        ax.axvline(first["reach"], color="k", ls="--", label=f"{first['layers']} layers: {first['reach']}")
        ax.set(xlabel="needle distance (tokens back from the answer)", ylabel="passkey accuracy", ylim=(-0.03, 1.03),
               title=title or f"sliding window w = {first['window']}, L = {first['train_len']}")
        ax.legend(fontsize=8)
    return fig


def plot_wavelengths(head_dim: int, base: float, train_len: int, beta_fast=(32.0,), *, ax=None) -> Figure:
    """Each rotary pair's wavelength (log scale) for ``head_dim`` and ``base``, with ``train_len`` and
    ``train_len / beta_fast`` drawn: YaRN keeps only the pairs under ``train_len / beta_fast``."""
    from longctx_lab import rope

    inv, _ = rope.default_rope(head_dim, base)
    wl = rope.wavelengths(inv)
    with matplotlib.rc_context():
        use_course_style()
        if ax is None:
            fig = Figure(figsize=(6.0, 3.4))
            ax = fig.add_subplot()
        ax.semilogy(range(len(wl)), wl.tolist(), "o-", label="wavelength 2 pi / theta_i")
        ax.axhline(train_len, color="k", ls="--", label=f"L = {train_len}")
        for k, b in enumerate(beta_fast):
            ax.axhline(train_len / b, color=f"C{k + 1}", ls=":", label=f"L / beta_fast = {train_len / b:g}")
        ax.set(xlabel="pair index i", ylabel="tokens per turn", title=f"head_dim {head_dim}, base {base:g}")
        ax.legend(fontsize=8)
    return ax.figure
