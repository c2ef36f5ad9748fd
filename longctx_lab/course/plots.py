"""One plotting style for the course: matplotlib with readable defaults and a few shared helpers."""

from __future__ import annotations

import matplotlib.pyplot as plt

from longctx_lab.core.display import PALETTE


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


def attention_scaling_demo(sizes=(512, 1024, 2048, 4096), *, impls=("naive", "sdpa", "tiled"), head_dim: int = 64,
                           repeats: int = 2, threads: int = 1) -> dict:
    """Chapter 4's measurement: time and peak extra memory of each attention implementation at ``sizes``
    (:func:`longctx_lab.attention.measure.measure_attention`, a fresh process each, ``threads`` torch threads),
    drawn on two log-log panels and summarised in print, with the recorded CPU benchmark's device and
    date where the repository has one. Returns ``{"runs": {impl: [Measurement]}, "p_naive", "sizes"}``.
    """
    import datetime

    from longctx_lab.attention.measure import fit_power_law, machine_description, measure_attention, recorded_benchmark
    from longctx_lab.core.cost import fmt_bytes
    from longctx_lab.core.display import progress

    sizes = list(sizes)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    runs = {impl: measure_attention(sizes, impl=impl, head_dim=head_dim, repeats=repeats, threads=threads)
            for impl in progress(list(impls), desc="measuring")}
    print(f"measured {when} with {threads} torch thread(s) on {machine_description()}")

    fig, (a_t, a_m) = plt.subplots(1, 2, figsize=(12, 4))
    for impl, rs in runs.items():
        a_t.plot(sizes, [r.seconds for r in rs], "o-", label=impl)
        a_m.plot(sizes, [max(r.peak_bytes, 4096) for r in rs], "o-", label=impl)
    for ax, label in ((a_t, "seconds per call"), (a_m, "peak extra memory (bytes, < 4 KiB drawn at 4 KiB)")):
        loglog_axes(ax, xlabel="sequence length n", ylabel=label)
        ax.legend()
    for impl, rs in runs.items():
        peaks = ", ".join(fmt_bytes(r.peak_bytes).split(" (")[0] for r in rs)
        print(f"{impl:>5}: peak extra memory {peaks}; {rs[-1].seconds * 1e3:.1f} ms at n = {sizes[-1]}")
    p_naive = None
    if "naive" in runs and len(sizes) > 1 and all(r.peak_bytes > 0 for r in runs["naive"]):
        p_naive = fit_power_law(sizes, [r.peak_bytes for r in runs["naive"]])[0]
        print(f"naive attention's peak forward memory (measured) grows as n^{p_naive:.2f}")
    if "tiled" in runs:
        tiled_peak = max(r.peak_bytes for r in runs["tiled"])
        print(f"the tiled loop never needs more than {fmt_bytes(tiled_peak).split(' (')[0]} extra "
              "(tile-sized buffers, near the method's resolution)")
    if "naive" in runs and "tiled" in runs:
        naive, tiled = runs["naive"][-1], runs["tiled"][-1]
        print(f"tiled / naive at n = {sizes[-1]}: memory {tiled.peak_bytes / naive.peak_bytes:.2f}x, "
              f"time {tiled.seconds / naive.seconds:.2f}x")
    print(f"recorded benchmark (shipped with the package): {recorded_benchmark('attention-cpu.json')}")
    return {"runs": runs, "p_naive": p_naive, "sizes": sizes}



def draw_rope_scheme(axes, scheme: str = "yarn", factor: float = 8.0, original: int = 4096, *,
                     head_dim: int = 128, base: float = 10_000.0) -> dict:
    """Chapter 2's explorer panels on two axes: each pair's slow-down under ``scheme`` (left), and the
    largest angle each pair reaches at ``factor * original`` positions against what it saw in training
    (right, out-of-range pairs marked). Returns ``{"attention_factor", "unseen"}`` for the caption."""
    import math

    import torch

    from longctx_lab import rope

    params = rope.compare_schemes(head_dim, base, factor=factor, original_max_position_embeddings=original,
                                  schemes=("default", scheme))
    ref, _ = params["default"]
    inv, att = params[scheme]
    new = int(factor * original)
    unseen = rope.unseen_angle_pairs(inv, ref, original, new)
    axes[0].plot(rope.interpolation_ratio(inv, ref), ".-")
    axes[0].set(xlabel="pair index", ylabel="slow-down", ylim=(0.8, max(2.0, factor * 1.1)))
    axes[0].set_title(f"{scheme}, factor {factor:g}, cos/sin x{att:.3f}", fontsize=10)
    axes[1].semilogy(original * ref, color="grey", lw=5, alpha=0.45, label="seen in training")
    axes[1].axhline(2 * math.pi, color="grey", ls=":", lw=1)
    axes[1].semilogy(new * inv, "o", ms=3, mfc="none", label="at new length")
    axes[1].semilogy(torch.nonzero(unseen).flatten(), (new * inv)[unseen], "x", color="C1", label="unseen")
    axes[1].set(xlabel="pair index", ylabel="largest angle (rad)")
    axes[1].set_title(f"{int(unseen.sum())} pairs out of range", fontsize=10)
    axes[1].legend(fontsize=9)
    return {"attention_factor": att, "unseen": int(unseen.sum())}


def rope_explorer(static=(("linear", 8.0), ("ntk", 8.0), ("yarn", 8.0)), *, original: int = 4096) -> bool:
    """Chapter 2's explorer: sliders for scheme, factor and trained context where a live front end renders
    widgets (:func:`longctx_lab.core.display.show_widgets`), then, everywhere, the static figure of
    :func:`draw_rope_scheme` for each ``(scheme, factor)`` of ``static``. Returns whether sliders showed."""
    import ipywidgets as widgets

    from longctx_lab import rope
    from longctx_lab.core.display import show_widgets

    def show(scheme, factor, original):
        fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.2))
        draw_rope_scheme(axes, scheme, factor, original)
        plt.tight_layout()
        plt.show()

    live = show_widgets(
        show,
        scheme=widgets.Dropdown(options=list(rope.COMPARED_SCHEMES), value="yarn"),
        factor=widgets.FloatLogSlider(value=8, base=2, min=0, max=6, step=0.5),
        original=widgets.Dropdown(options=[2048, 4096, 8192, 32768], value=original),
    )
    fig, axes = plt.subplots(len(static), 2, figsize=(7.5, 2.9 * len(static)), squeeze=False)
    for row, (scheme, f) in enumerate(static):
        info = draw_rope_scheme(axes[row], scheme, f, original)
        print(f"{scheme}, factor {f:g}: cos/sin x{info['attention_factor']:.3f}, {info['unseen']} pairs out of range")
    plt.tight_layout()
    plt.show()
    return live


def memory_hierarchy_chart(gpus, ax=None):
    """Chapter 1's hierarchy chart: one row per level of :func:`longctx_lab.core.configs.memory_hierarchy`, fastest
    first, a bar per GPU where a bandwidth is published and a note where it is not (registers, L2), with
    each level's capacity printed beside its name. Returns the axes."""
    import math

    from longctx_lab.core.configs import memory_hierarchy
    from longctx_lab.core.cost import fmt_bytes

    gpus = list(gpus)
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4.4))
    names = [lvl.name for lvl in memory_hierarchy(gpus[0])]
    height = 0.8 / len(gpus)
    known = [lvl.bandwidth for g in gpus for lvl in memory_hierarchy(g) if lvl.bandwidth]
    for i, gpu in enumerate(gpus):
        for lvl in memory_hierarchy(gpu):
            j = names.index(lvl.name)
            size = fmt_bytes(lvl.capacity_bytes) if math.isfinite(lvl.capacity_bytes) else "-"
            shown = f"{lvl.bandwidth / 1e9:>9,.0f} GB/s" if lvl.bandwidth else "  bandwidth not published"
            print(f"{gpu.name:>14} {lvl.name:<27} {shown}  capacity {size}")
            if lvl.bandwidth:
                ax.barh(j + height * i, lvl.bandwidth, height=height * 0.9, color=PALETTE[i % len(PALETTE)],
                        label=gpu.name if j == names.index("HBM") else None)
    for j, name in enumerate(names):
        if not any(lvl.bandwidth for g in gpus for lvl in memory_hierarchy(g) if lvl.name == name):
            note = "faster than SRAM; no single published bandwidth" if name == "registers" else \
                "between SRAM and HBM; no single published bandwidth"
            ax.text(min(known) * 1.1, j + height * (len(gpus) - 1) / 2, note, va="center", fontsize=9, color="grey")
    ax.set_yticks([j + height * (len(gpus) - 1) / 2 for j in range(len(names))], names)
    ax.set_xscale("log")
    ax.set_xlabel("bandwidth (bytes/s)")
    ax.set_ylim(len(names) - 0.1, -0.6)  # fastest at the top, with room above the first row
    ax.grid(axis="y", visible=False)
    ax.legend()
    ax.set_title("Fastest at the top: each level away from the cores is slower")
    return ax
