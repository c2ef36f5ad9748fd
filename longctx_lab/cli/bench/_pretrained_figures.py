"""Figures of ``longctx-lab bench pretrained``: the NIAH heatmap and depth curve, the cliff past the trained context
per RoPE schedule, the perplexity curve with and without sinks. Each writes one PNG and returns its path."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_figures"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from longctx_lab.core.display import use_course_style

    use_course_style()
    return plt


def _axes(width: float):
    fig, ax = _plt().subplots(figsize=(width, 3.2))
    return fig, ax


def _save(fig, ax, path: Path, **labels) -> Path:
    ax.set(**labels)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    _plt().close(fig)
    return path


def _depth_curve(niah: dict, path: Path) -> Path:
    fig, ax = _axes(5)
    for j, length in enumerate(niah["lengths"]):
        ax.plot(niah["depths"], [row[j] for row in niah["accuracy"]], marker="o", label=f"{length} tokens")
    ax.plot(niah["depths"], niah["by_depth"], color="black", linewidth=2.5, label="mean")
    return _save(fig, ax, path, xlabel="needle depth (0 = start of the filler)", ylabel="passkey accuracy",
                 ylim=(-0.05, 1.05), title="SmolLM2-135M: accuracy by needle depth")


def _extension(ext: dict, path: Path) -> Path:
    fig, ax = _axes(5.5)
    schemes = list(ext)
    lengths = ext[schemes[0]]["lengths"]
    width = 0.8 / len(lengths)
    for j, length in enumerate(lengths):
        ax.bar([i + j * width for i in range(len(schemes))], [ext[s]["by_length"][str(length)] for s in schemes],
               width=width, label=f"{length} tokens")
    ax.set_xticks([i + width * (len(lengths) - 1) / 2 for i in range(len(schemes))], schemes)
    return _save(fig, ax, path, ylabel="passkey accuracy", ylim=(0, 1.05),
                 title="past the trained context: RoPE schedules at inference")


def _sinks(sinks: dict, path: Path) -> Path:
    fig, ax = _axes(5.5)
    for name, run in sinks["runs"].items():
        ax.plot([seg["stop"] for seg in run["segments"]], [seg["perplexity"] for seg in run["segments"]], marker=".",
                label=name)
    if sinks["trained_context"] < sinks["tokens"]:
        ax.axvline(sinks["trained_context"], color="grey", linestyle=":", label="trained context")
    return _save(fig, ax, path, xlabel="token position", ylabel=f"perplexity per {sinks['segment']} tokens",
                 yscale="log", title="Python's docs: sliding window with and without sinks")


def write_figures(sections: dict, prefix: Path) -> list[str]:
    """The figures of the recorded ``sections`` next to ``prefix`` (``prefix-niah-heatmap.png``...)."""
    from longctx_lab.lm.niah import NIAHResult, plot_heatmap

    written = []
    if "niah" in sections:
        niah = sections["niah"]
        fields = ("task", "lengths", "depths", "trials", "seed", "options", "accuracy", "records")
        result = NIAHResult(**{k: niah[k] for k in fields})
        path = Path(f"{prefix}-niah-heatmap.png")
        ax = plot_heatmap(result, path, title="SmolLM2-135M: passkey in natural filler")
        _plt().close(ax.figure)
        written.append(path)
        written.append(_depth_curve(niah, Path(f"{prefix}-niah-depth.png")))
    if "extension" in sections:
        written.append(_extension(sections["extension"], Path(f"{prefix}-extension.png")))
    if "sinks" in sections:
        written.append(_sinks(sections["sinks"], Path(f"{prefix}-sinks.png")))
    return [str(p) for p in written]
