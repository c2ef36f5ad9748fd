"""Chapter 8's helpers: the compressive memory's recall experiment and the figures of ``bench ch08``'s results.

- :func:`compressive_recall`: store ``segments x segment_len`` random key-value pairs in an Infini-attention
  memory (:func:`longctx_lab.mixers.infini_attention`, gate fully open so that only the memory answers), then
  query the first segment's keys: the fraction whose read-out is nearest to the right value. The memory is
  ``head_dim x head_dim`` numbers whatever the number of pairs: recall falls as they grow.
- :func:`load_ch08` reads the recorded ``ch08-beyond-attention.json`` (shipped, :mod:`longctx_lab.core.recorded`).
- :func:`load_retrieval` reads the recorded ``retrieval.json`` (``longctx-lab bench retrieval``: SmolLM2-135M
  answering questions about a long document with the whole of it, a truncation or BM25-retrieved chunks) and
  :func:`retrieval_table` summarises it per setting and strategy from its per-question records.
- :func:`plot_mqar`, :func:`plot_passkey`, :func:`plot_decode`, :func:`plot_performer`,
  :func:`plot_compressive`: one standard figure per question, the spread over seeds as error bars.
"""

from __future__ import annotations

import statistics

import torch

from longctx_lab.core.validate import check_int
from longctx_lab.mixers import infini_attention

__all__ = ["LABELS", "RESULT_NAME", "RETRIEVAL_NAME", "compressive_recall", "load_ch08", "load_retrieval",
           "mean_and_spread", "mqar_table", "retrieval_table",
           "plot_compressive", "plot_decode", "plot_mqar", "plot_passkey", "plot_performer"]

RESULT_NAME = "ch08-beyond-attention.json"
LABELS = {"attention": "attention", "linear": "linear attention", "ssm": "selective SSM",
          "hybrid": "hybrid (SSM + 1 attention)"}
_COLOURS = {"attention": "#1f5aa6", "linear": "#e9a03b", "ssm": "#3a9d5d", "hybrid": "#b5454b"}


@torch.no_grad()
def compressive_recall(segments: int, *, head_dim: int = 32, segment_len: int = 16, update: str = "linear",
                       key_scale: float = 4.0, seed: int = 0, rewrite: bool = False) -> float:
    """Fraction of the first segment's keys whose memory read-out is nearest (cosine) to their own value among
    all stored values, after ``segments`` segments of ``segment_len`` random pairs were written (float64).

    Keys: Gaussian with standard deviation ``key_scale`` (``elu + 1`` of small keys is nearly the same vector
    for every key; a trained model learns large, sparse keys); values: random signs. The queries come as one
    more segment; the gate is open (``sigmoid(30)``): the answer is the memory's alone, the local attention
    over the query segment does not contribute.

    ``rewrite=True`` repeats keys: the last of the ``segments`` (at least 2) writes the first segment's keys
    again with new values, and the right answer is the new value. The linear update adds the new outer products
    to the old ones (the read-out blends both values); the delta rule first subtracts what the memory already
    returns for the key, so it overwrites. Without repeated keys the delta rule has nothing to overwrite, and
    its subtractions of overlapping keys' read-outs erase old pairs sooner than the linear sum blurs them.
    """
    segments = check_int("segments", segments, minimum=1)
    head_dim = check_int("head_dim", head_dim, minimum=1)
    segment_len = check_int("segment_len", segment_len, minimum=1)
    gen = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    n = segments * segment_len
    keys = key_scale * torch.randn(1, 1, n, head_dim, generator=gen, dtype=torch.float64)
    values = torch.randint(0, 2, (1, 1, n, head_dim), generator=gen).to(torch.float64) * 2 - 1
    queries = keys[:, :, :segment_len]
    if rewrite:
        if segments < 2:
            raise ValueError(f"segments must be >= 2 when rewrite=True (the last one rewrites the first), got "
                             f"{segments}")
        keys[:, :, n - segment_len:] = queries
    q = torch.cat([keys, queries], dim=2)
    k = torch.cat([keys, queries], dim=2)
    v = torch.cat([values, torch.zeros_like(queries)], dim=2)
    out, _ = infini_attention(q, k, v, torch.tensor([30.0], dtype=torch.float64), segment_len=segment_len,
                              update=update)
    read = out[0, 0, n:]                                   # (segment_len, head_dim)
    sims = torch.nn.functional.normalize(read, dim=-1) @ torch.nn.functional.normalize(values[0, 0], dim=-1).T
    right = torch.arange(segment_len) + (n - segment_len if rewrite else 0)
    return float((sims.argmax(-1) == right).double().mean())


def load_ch08() -> dict:
    """The recorded results of ``longctx-lab bench ch08`` shipped with the package."""
    from longctx_lab.core.recorded import recorded_result

    return recorded_result(RESULT_NAME)


#: The recorded file of ``longctx-lab bench retrieval``, shipped in :mod:`longctx_lab.core.recorded`.
RETRIEVAL_NAME = "retrieval.json"


def load_retrieval() -> dict:
    """The recorded results of ``longctx-lab bench retrieval`` shipped with the package."""
    from longctx_lab.core.recorded import recorded_result

    return recorded_result(RETRIEVAL_NAME)


def retrieval_table(results: dict) -> list[dict]:
    """One row per (setting, strategy) of a ``bench retrieval`` record, computed from its per-question
    ``records``: ``accuracy`` mean over all questions and ``min``/``max`` over seeds (each seed's fraction
    right), ``prompt_tokens`` (mean per question: the cost), ``in_context`` (fraction of questions whose fact
    was in the prompt), ``trials`` and ``seeds``. Rows in the order the records first name them."""
    records = results.get("records") if isinstance(results, dict) else None
    if not records:
        raise ValueError("results must be a bench retrieval record with a non-empty 'records' list, got "
                         f"{type(results).__name__} without one")
    keys = list(dict.fromkeys((r["setting"], r["strategy"]) for r in records))
    rows = []
    for setting, strategy in keys:
        group = [r for r in records if r["setting"] == setting and r["strategy"] == strategy]
        seeds = sorted({r["seed"] for r in group})
        per_seed = [statistics.fmean(float(r["correct"]) for r in group if r["seed"] == s) for s in seeds]
        rows.append({"setting": setting, "strategy": strategy,
                     "accuracy": statistics.fmean(float(r["correct"]) for r in group),
                     "min": min(per_seed), "max": max(per_seed),
                     "prompt_tokens": statistics.fmean(r["prompt_tokens"] for r in group),
                     "in_context": statistics.fmean(float(r["in_context"]) for r in group),
                     "trials": len(group), "seeds": len(seeds)})
    return rows


def mean_and_spread(values) -> tuple[float, float, float]:
    """``(mean, min, max)`` of a list of numbers."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("values must hold at least one number, got none")
    return statistics.fmean(values), min(values), max(values)


def _by(runs, setup, key_name, key):
    """The runs of ``setup`` with ``key_name == key`` (a run that diverged, recorded with ``error``, is left out)."""
    return [r for r in runs if r["setup"] == setup and r[key_name] == key and "error" not in r]


def mqar_table(results: dict) -> list[dict]:
    """One row per (setup, width, pairs): mean, min and max accuracy over seeds, and the mixer state's bytes."""
    runs = results["experiments"]["mqar"]["runs"]
    s = results["settings"]["mqar"]
    rows = []
    for setup in s["setups"]:
        for width in s["widths"]:
            group = _by(runs, setup, "d_model", width)
            for p in s["pairs"]:
                mean, lo, hi = mean_and_spread(r["accuracy"][str(p)] for r in group)
                rows.append({"setup": setup, "d_model": width, "pairs": p, "mean": mean, "min": lo, "max": hi,
                             "seeds": len(group), "mixer_state_bytes": group[0]["mixer_state_bytes"]})
    return rows


def _errorbar(ax, xs, groups, setup, *, label=None, **kw):
    stats = [mean_and_spread(g) for g in groups]
    means = [m for m, _, _ in stats]
    low = [m - lo for m, lo, _ in stats]
    high = [hi - m for m, _, hi in stats]
    ax.errorbar(xs, means, yerr=[low, high], marker="o", capsize=3, color=_COLOURS.get(setup),
                label=label or LABELS.get(setup, setup), **kw)


def _plain_log_axis(axis, ticks=None):
    """Log scale with plain numbers as tick labels (``16``, not ``2^4``): ``ticks`` only where given, else the
    log locator's, minor ones labelled too when the axis spans less than a decade."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    if ticks is not None:
        axis.set_ticks(ticks)
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(NullFormatter())
        return
    axis.set_major_formatter(plain)
    low, high = sorted(axis.get_view_interval())
    axis.set_minor_formatter(plain if low > 0 and high / low < 10 else NullFormatter())


def plot_mqar(results: dict):
    """Zoology's figure in miniature: MQAR accuracy vs pairs (one panel per width) and vs width at the most
    pairs; mean over seeds, bars from the lowest to the highest seed. Returns the ``Figure``."""
    import matplotlib.pyplot as plt

    runs = results["experiments"]["mqar"]["runs"]
    s = results["settings"]["mqar"]
    widths, pairs = s["widths"], s["pairs"]
    fig, axes = plt.subplots(1, len(widths) + 1, figsize=(7.5, 2.9), sharey=True)
    for ax, width in zip(axes, widths, strict=False):
        for setup in s["setups"]:
            group = _by(runs, setup, "d_model", width)
            _errorbar(ax, pairs, [[r["accuracy"][str(p)] for r in group] for p in pairs], setup)
        ax.set_title(f"d_model {width}", fontsize=9)
        ax.set_xlabel("key-value pairs", fontsize=9)
        ax.set_xticks(pairs)
    last = axes[-1]
    for setup in s["setups"]:
        groups = [[r["accuracy"][str(pairs[-1])] for r in _by(runs, setup, "d_model", w)] for w in widths]
        _errorbar(last, widths, groups, setup)
    last.set_xscale("log", base=2)
    _plain_log_axis(last.xaxis, widths)
    last.set_title(f"{pairs[-1]} pairs", fontsize=9)
    last.set_xlabel("d_model", fontsize=9)
    axes[0].set_ylabel("MQAR accuracy (per query)", fontsize=9)
    axes[0].set_ylim(0, 1.05)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def plot_passkey(results: dict):
    """Passkey exact match vs context length per stack (trained at short lengths)."""
    import matplotlib.pyplot as plt

    e = results["experiments"]["passkey"]
    s = results["settings"]["passkey"]
    fig, ax = plt.subplots(figsize=(6, 3))
    lengths = s["eval_lengths"]
    for setup in s["setups"]:
        group = [r for r in e["runs"] if r["setup"] == setup and "error" not in r]
        _errorbar(ax, lengths, [[r["accuracy"][str(n)] for r in group] for n in lengths], setup)
    ax.axvspan(min(lengths) * 0.9, s["train_len"][1], color="#eeeeee", zorder=0, label="trained lengths")
    ax.set_xscale("log", base=2)
    _plain_log_axis(ax.xaxis, lengths)
    ax.set_xlabel("context tokens", fontsize=9)
    ax.set_ylabel("passkey exact match", fontsize=9)
    ax.set_ylim(-0.02, 1.05)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_decode(results: dict):
    """Decode state bytes and seconds per token vs context, per stack (log-log)."""
    import matplotlib.pyplot as plt

    e = results["experiments"]["decode"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.5, 3.3))
    for setup, rows in e["by_setup"].items():
        xs = [r["context"] for r in rows]
        a.plot(xs, [r["state_bytes"] / 2**10 for r in rows], marker="o", color=_COLOURS.get(setup),
               label=LABELS.get(setup, setup))
        b.plot(xs, [r["seconds_per_token"] * 1e3 for r in rows], marker="o", color=_COLOURS.get(setup))
    for ax, label in ((a, "decode state (KiB)"), (b, "ms per token")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        _plain_log_axis(ax.xaxis, xs)
        _plain_log_axis(ax.yaxis)
        ax.set_xlabel("context tokens", fontsize=9)
        ax.set_ylabel(label, fontsize=9)
    handles, labels = a.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.suptitle(f"two-layer models, d_model {results['settings']['decode']['d_model']}, batch 1, float32",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def plot_performer(results: dict):
    """Performer's relative error against exact softmax attention vs the number of random features."""
    import matplotlib.pyplot as plt

    rows = results["experiments"]["performer"]["rows"]
    fig, ax = plt.subplots(figsize=(5.5, 3))
    xs = [r["n_features"] for r in rows]
    ax.errorbar(xs, [r["mean_error"] for r in rows], yerr=[r["std_error"] for r in rows], marker="o",
                capsize=3, color=_COLOURS["linear"], label="FAVOR+ (mean and std over seeds)")
    ax.plot(xs, [rows[0]["mean_error"] * (xs[0] / x) ** 0.5 for x in xs], "--", color="#888888",
            label="1/sqrt(features) from the first point")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    _plain_log_axis(ax.xaxis, xs)
    _plain_log_axis(ax.yaxis)
    ax.set_xlabel("random features m", fontsize=9)
    ax.set_ylabel("relative error", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_compressive(results: dict):
    """Recall of the oldest segment vs the number of segments stored, linear and delta updates."""
    import matplotlib.pyplot as plt

    e = results["experiments"]["compressive"]
    fig, ax = plt.subplots(figsize=(5.5, 3))
    for i, (update, rows) in enumerate(e["by_update"].items()):
        xs = [r["segments"] for r in rows]
        _errorbar(ax, xs, [r["recall"] for r in rows], ("linear", "attention")[i % 2],
                  label=f"update = {update}", linestyle="-" if i == 0 else "--")
    ax.set_xscale("log", base=2)
    _plain_log_axis(ax.xaxis, xs)
    s = results["settings"]["compressive"]
    ax.set_xlabel(f"segments of {s['segment_len']} pairs stored", fontsize=9)
    ax.set_ylabel("recall of the first segment", fontsize=9)
    ax.set_title(f"memory of {s['head_dim']} x {s['head_dim']} numbers", fontsize=9)
    ax.set_ylim(-0.02, 1.05)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
