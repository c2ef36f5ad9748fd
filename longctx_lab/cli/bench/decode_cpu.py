"""Decoding on this CPU: per-token time with a KV cache vs recomputation, prefill time, and cache bytes.

``longctx-lab bench decode-cpu`` (or ``.venv/bin/python benchmarks/bench_decode_cpu.py``) measures a small
:class:`longctx_lab.lm.model.TinyLM` with random weights (default: 2 layers, d_model 128, 4 query heads over 2 KV
heads of 32, float32) and records ``benchmarks/results/decode-cpu.json`` (command, device, machine, versions,
date, the machine's load average, model config, rows, fits). Parts:

- ``decode``: for each context ``L`` (default 1K-16K): prefill ``L`` tokens into one cache per layer, then time
  ``decode_steps`` single-token steps (``cached_s``: the fastest step, ``cached_median_s``: the median) for the
  contiguous cache and the other kinds named by ``--kinds`` (their caches filled from the contiguous one's keys
  and values through the public ``gather``/``append``, so every kind decodes the same history); and one forward
  over ``L + 1`` tokens without a cache (``recompute_s``: what a generator without a cache pays per token).
  ``speedup = recompute_s / cached_s``.
- ``prefill``: time of the prefill forward (prompt into the cache) for each prompt length: the time to first token.
- Every time is the fastest over ``--repeats`` rounds, each round running every length once (a burst of other
  work slows one round of all lengths rather than every run of one length).
- ``fits``: ``time ~ c * n**p`` (:func:`longctx_lab.attention.measure.fit_power_law`) for prefill, cached decode and
  recomputation, over all lengths and over the longest three: these test the articles' "time-to-first-token
  scales linearly" (``p`` near 1?) and "generation speed is constant regardless of context" (``p`` near 0?).
- ``bytes``: bytes of every layer's cache read from its tensors (``nbytes``) for MHA / GQA / MQA variants of one
  shape, fp32/fp16 and int8/int4/KIVI, beside the formula (:func:`longctx_lab.core.cost.kv_cache_bytes`,
  :func:`longctx_lab.kvcache.quantized_kv_cache_bytes`).
- ``paging``: contiguous max-length slots vs paged blocks on a seeded request mix
  (:func:`longctx_lab.course.kv_experiments.request_mix`, :func:`~longctx_lab.course.kv_experiments.allocation_waste`):
  reserved-but-unused slots (future tokens and slack past the final length) vs the last partial block, per
  block size, as the vLLM paper measures waste.

Timing is wall clock (``time.perf_counter``) under ``torch.no_grad()`` with the process's torch threads; other
work on the machine slows it (the load average is recorded). For the chapter-5 notebook:
:func:`load_decode_results`, :func:`plot_decode_times`, :func:`plot_prefill_times`, :func:`plot_cache_bytes`,
:func:`plot_paging_waste`, :func:`claim_inputs` (the exponents for
``longctx_lab.course.claim_sets.ch05_kv_cache_gqa.claims``) and :func:`summary_lines`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

DEFAULT_CONTEXTS = (1024, 2048, 4096, 8192, 16384)
DEFAULT_PREFILL = (256, 512, 1024, 2048, 4096, 8192, 16384)
RESULT_NAME = "decode-cpu.json"
SPEEDUP_TARGET = 20.0
SPEEDUP_CONTEXT = 4096

__all__ = [
    "DEFAULT_CONTEXTS",
    "DEFAULT_PREFILL",
    "add_arguments",
    "bench_model_config",
    "cache_bytes_rows",
    "claim_inputs",
    "fit_rows",
    "load_decode_results",
    "measure_decode",
    "paging_rows",
    "plot_cache_bytes",
    "plot_decode_times",
    "plot_paging_waste",
    "plot_prefill_times",
    "recorded_path",
    "run",
    "summary_lines",
]


def add_arguments(parser) -> None:
    parser.add_argument("--contexts", type=int, nargs="+", default=list(DEFAULT_CONTEXTS),
                        help="cached contexts for the decode comparison (default 1K-16K)")
    parser.add_argument("--prefill-lens", type=int, nargs="+", default=list(DEFAULT_PREFILL),
                        help="prompt lengths for the prefill times")
    parser.add_argument("--decode-steps", type=int, default=16, help="timed decode steps per context")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over every length (fastest run kept)")
    parser.add_argument("--kinds", nargs="+", default=["contiguous", "paged", "quantized-int8"],
                        help="cache kinds timed in the decode part (contiguous is always included)")
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--requests", type=int, default=256, help="requests in the paging mix")
    parser.add_argument("--max-len", type=int, default=2048, help="contiguous slot length in the paging mix")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for the timing (default: torch's; 1 is steadier on a busy machine)")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"), help="where the JSON goes")
    parser.add_argument("--no-write", action="store_true", help="print only, record nothing")


# ------------------------------------------------------------------------------------------------ measuring

def bench_model_config(*, d_model=128, layers=2, heads=4, kv_heads=2, head_dim=32, max_positions=16384):
    """The :class:`~longctx_lab.lm.model.LMConfig` of the timed model (SwiGLU, default RoPE, no window)."""
    from longctx_lab.lm.model import LMConfig

    return LMConfig(vocab_size=512, d_model=d_model, n_layers=layers, n_heads=heads, n_kv_heads=kv_heads,
                    head_dim=head_dim, mlp_hidden=4 * d_model, max_positions=max_positions, name="decode-bench")


def _fill_from(source, kind, config, capacity):
    """Caches of ``kind`` holding exactly what ``source`` (one cache per layer, slot 0) holds."""
    from longctx_lab.lm.model import make_caches

    caches = make_caches(config, kind, capacity=capacity)
    for src, dst in zip(source, caches, strict=True):
        k, v = src.gather([0])
        dst.append(k.contiguous(), v.contiguous(), [0])
    return caches


def measure_decode(model, *, contexts, prefill_lens, decode_steps=16, repeats=2, kinds=("contiguous",),
                   seed=0, show_progress=True) -> tuple[list[dict], list[dict]]:
    """Decode rows (one per context and kind) and prefill rows (one per prompt length); see the module docstring.

    ``repeats`` rounds, each over every length (so a burst of other work on the machine slows one round of all
    lengths, not every run of one length): per round and length, one prefill; at the contexts also one
    recomputation and ``decode_steps`` cached steps per kind. Kept: the fastest prefill, recomputation and step
    over the rounds, and the median step."""
    import torch

    from longctx_lab.core.display import progress
    from longctx_lab.lm.model import make_caches

    kinds = ["contiguous"] + [k for k in kinds if k != "contiguous"]
    contexts, prefill_lens = sorted(set(contexts)), sorted(set(prefill_lens))
    lengths = sorted(set(contexts) | set(prefill_lens))
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, model.config.vocab_size, (1, max(lengths) + decode_steps), generator=gen)
    prefill = {n: [] for n in lengths}
    recompute = {n: [] for n in contexts}
    steps = {(n, kind): [] for n in contexts for kind in kinds}
    cache_bytes = {}
    plan = [(r, n) for r in range(repeats) for n in lengths]
    with torch.no_grad():
        model(tokens[:, :64])  # warm-up
        for _, n in (progress(plan, desc="decode-cpu") if show_progress else plan):
            capacity = n + decode_steps
            caches = make_caches(model.config, "contiguous", capacity=capacity)
            start = time.perf_counter()
            model(tokens[:, :n], caches=caches)
            prefill[n].append(time.perf_counter() - start)
            if n not in recompute:
                continue
            start = time.perf_counter()
            model(tokens[:, :n + 1])
            recompute[n].append(time.perf_counter() - start)
            filled = {kind: caches if kind == "contiguous" else _fill_from(caches, kind, model.config, capacity)
                      for kind in kinds}  # before any decoding: every kind starts from the same n tokens
            del caches
            for kind in kinds:
                run_caches = filled.pop(kind)
                cache_bytes[(n, kind)] = sum(c.nbytes for c in run_caches)
                for t in range(decode_steps):
                    start = time.perf_counter()
                    model(tokens[:, n + t:n + t + 1], caches=run_caches)
                    steps[(n, kind)].append(time.perf_counter() - start)
                del run_caches
    prefill_rows = [{"prompt_len": n, "seconds": min(ts), "runs": ts} for n, ts in prefill.items()]
    decode_rows = []
    for (n, kind), ts in steps.items():
        row = {"context": n, "kind": kind, "cached_s": min(ts), "cached_median_s": statistics.median(ts),
               "recompute_s": min(recompute[n]), "recompute_runs": recompute[n], "cache_bytes": cache_bytes[(n, kind)],
               "steps_timed": len(ts)}
        row["speedup"] = row["recompute_s"] / row["cached_s"]
        row["speedup_median"] = row["recompute_s"] / row["cached_median_s"]
        decode_rows.append(row)
    return decode_rows, prefill_rows


def fit_rows(decode_rows: list[dict], prefill_rows: list[dict]) -> dict:
    """Fitted exponents ``p`` of ``time ~ n**p``: prefill, cached decode (contiguous) and recomputation, over all
    lengths (``*_exponent``) and over the longest three (``*_exponent_top3``), with ``r2``."""
    from longctx_lab.attention.measure import fit_power_law

    def fit(xs, ys):
        p, c, r2 = fit_power_law(xs, ys)
        out = {"exponent": p, "coefficient": c, "r2": r2}
        if len(xs) > 3:
            out["exponent_top3"] = fit_power_law(xs[-3:], ys[-3:])[0]
        return out

    contiguous = sorted((r for r in decode_rows if r["kind"] == "contiguous"), key=lambda r: r["context"])
    ctx = [r["context"] for r in contiguous]
    prefill = sorted(prefill_rows, key=lambda r: r["prompt_len"])
    fits = {
        "prefill": fit([r["prompt_len"] for r in prefill], [r["seconds"] for r in prefill]),
        "cached_decode": fit(ctx, [r["cached_s"] for r in contiguous]),
        "cached_decode_median": fit(ctx, [r["cached_median_s"] for r in contiguous]),
        "recompute": fit(ctx, [r["recompute_s"] for r in contiguous]),
    }
    for kind in sorted({r["kind"] for r in decode_rows} - {"contiguous"}):
        rows = sorted((r for r in decode_rows if r["kind"] == kind), key=lambda r: r["context"])
        fits[f"cached_decode_{kind}"] = fit([r["context"] for r in rows], [r["cached_s"] for r in rows])
    return fits


def cache_bytes_rows(*, n_layers=2, n_heads=16, head_dim=64, capacity=2048) -> list[dict]:
    """Bytes of the caches of one model shape (``n_heads`` query heads), MHA/GQA/MQA x storage kinds, read from
    the tensors (``measured_bytes``: sum of ``nbytes`` over layers) and from the formula (``formula_bytes``)."""
    import torch

    from longctx_lab.core.cost import kv_cache_bytes
    from longctx_lab.kvcache import quantized_kv_cache_bytes
    from longctx_lab.lm.model import LMConfig, make_caches

    variants = {"MHA": n_heads, "GQA": max(1, n_heads // 4), "MQA": 1}
    storages = [  # label, make_caches kind, dtype, formula
        ("fp32", "contiguous", torch.float32, None),
        ("fp16", "contiguous", torch.float16, None),
        ("int8", "quantized-int8", torch.float16, {"bits": 8}),
        ("int4", "quantized-int4", torch.float16, {"bits": 4}),
        ("kivi-int4", "kivi", torch.float16, {"bits": 4, "key_axis": "channel", "group_size": 32, "residual": 128}),
    ]
    rows = []
    for attention, kv in variants.items():
        config = LMConfig(vocab_size=8, d_model=n_heads * head_dim, n_layers=n_layers, n_heads=n_heads, n_kv_heads=kv,
                          head_dim=head_dim, max_positions=capacity)
        for label, kind, dtype, q in storages:
            caches = make_caches(config, kind, capacity=capacity, dtype=dtype)
            measured = sum(c.nbytes for c in caches)
            if q is None:
                formula = kv_cache_bytes(capacity, n_layers=n_layers, n_kv_heads=kv, head_dim=head_dim, dtype=dtype)
            else:
                formula = quantized_kv_cache_bytes(capacity, n_kv_heads=kv, head_dim=head_dim, dtype="fp16",
                                                   n_layers=n_layers, **q)
            rows.append({"attention": attention, "n_heads": n_heads, "kv_heads": kv, "storage": label, "kind": kind,
                         "capacity": capacity, "n_layers": n_layers, "head_dim": head_dim,
                         "measured_bytes": measured, "formula_bytes": formula,
                         "bytes_per_token": measured / capacity})
            del caches
    base = next(r["measured_bytes"] for r in rows if r["attention"] == "MHA" and r["storage"] == "fp16")
    for r in rows:
        r["fraction_of_mha_fp16"] = r["measured_bytes"] / base
    return rows


def paging_rows(*, requests=256, max_len=2048, block_sizes=(8, 16, 32, 64, 128), seed=0) -> list[dict]:
    """:func:`longctx_lab.course.kv_experiments.allocation_waste` of one seeded request mix, per block size, with the
    fractions of each cache's memory that hold tokens, are reserved for future tokens, lie past the final length
    (internal) or are the paged last-block slack."""
    from longctx_lab.course.kv_experiments import allocation_waste, request_mix

    mix = request_mix(requests, max_len=max_len, seed=seed)
    rows = []
    for bs in block_sizes:
        w = allocation_waste(mix, max_len=max_len, block_size=bs, seed=seed)
        slots = w["requests"] * max_len
        w.update(block_size=bs, seed=seed,
                 contiguous_used_fraction=w["tokens"] / slots,
                 contiguous_reserved_fraction=w["reserved"] / slots,
                 contiguous_internal_fraction=w["internal"] / slots,
                 paged_slack_fraction=w["paged_slack"] / (w["tokens"] + w["paged_slack"]))
        rows.append(w)
    return rows


# ------------------------------------------------------------------------------------------------ recording

def _versions() -> dict:
    import torch

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    return {"python": platform.python_version(), "torch": torch.__version__, "triton": triton_version}


def run(args) -> int:
    import torch

    from longctx_lab.attention.measure import machine_description
    from longctx_lab.core.validate import check_int
    from longctx_lab.lm.model import CACHE_KINDS, TinyLM

    for name in ("contexts", "prefill_lens"):
        for n in getattr(args, name):
            check_int(f"--{name.replace('_', '-')}", n, minimum=1)
    for name in ("decode_steps", "repeats", "d_model", "layers", "heads", "kv_heads", "head_dim", "requests",
                 "max_len"):
        check_int(f"--{name.replace('_', '-')}", getattr(args, name), minimum=1)
    bad = [k for k in args.kinds if k not in CACHE_KINDS or k == "rolling"]
    if bad:
        raise ValueError(f"--kinds must be among {[k for k in CACHE_KINDS if k != 'rolling']}, got {bad}")
    if args.threads is not None:
        torch.set_num_threads(check_int("--threads", args.threads, minimum=1))
    load_before = os.getloadavg()
    config = bench_model_config(d_model=args.d_model, layers=args.layers, heads=args.heads, kv_heads=args.kv_heads,
                                head_dim=args.head_dim, max_positions=max(args.contexts + args.prefill_lens))
    model = TinyLM(config, seed=0).eval()
    print(f"decode-cpu: {config.n_params():,}-parameter model ({config.n_layers} layers, d_model {config.d_model}, "
          f"{config.n_heads} heads / {config.n_kv_heads} KV heads of {config.head_dim}), float32, "
          f"{torch.get_num_threads()} torch threads, load average {load_before[0]:.1f}")
    started = time.perf_counter()
    decode_rows, prefill_rows = measure_decode(model, contexts=args.contexts, prefill_lens=args.prefill_lens,
                                               decode_steps=args.decode_steps, repeats=args.repeats,
                                               kinds=args.kinds)
    fits = fit_rows(decode_rows, prefill_rows)
    bytes_rows = cache_bytes_rows()
    paging = paging_rows(requests=args.requests, max_len=args.max_len)
    at = [r for r in decode_rows if r["kind"] == "contiguous" and r["context"] == SPEEDUP_CONTEXT]
    check = {"context": SPEEDUP_CONTEXT, "target": SPEEDUP_TARGET,
             "speedup": at[0]["speedup"] if at else None,
             "passed": bool(at and at[0]["speedup"] >= SPEEDUP_TARGET)}
    payload = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **_versions(),
        "device": "cpu",
        "machine": machine_description(),
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "wall_seconds": time.perf_counter() - started,
        "model": {**config.to_dict(), "n_params": config.n_params(), "dtype": "float32", "weights": "random, seed 0"},
        "params": {"decode_steps": args.decode_steps, "repeats": args.repeats, "kinds": list(args.kinds)},
        "time_convention": "wall clock under torch.no_grad(); prefill and recomputation: fastest of `repeats` runs; "
                           "cached decode: fastest (cached_s) and median (cached_median_s) of `decode_steps` steps "
                           "after a prefill of `context` tokens; recomputation: one forward over context + 1 tokens",
        "bytes_convention": "sum over layers of each cache's nbytes (the K/V tensors, codes, scales and recent windows "
                            "it allocated); formula: cost.kv_cache_bytes / kvcache.quantized_kv_cache_bytes",
        "paging_convention": "kv_experiments.allocation_waste on kv_experiments.request_mix(requests, max_len, "
                             "seed=0): contiguous = one max_len slot per request (reserved = future tokens of the "
                             "answer, internal = past its final length); paged = blocks in use, slack = unused tail "
                             "of each last block",
        "decode": decode_rows,
        "prefill": prefill_rows,
        "fits": fits,
        "speedup_check": check,
        "bytes": bytes_rows,
        "paging": paging,
    }
    for line in summary_lines(payload):
        print(line)
    if not args.no_write:
        path = args.out_dir / RESULT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=1) + "\n")
        print(f"wrote {path}")
    return 0


# ------------------------------------------------------------------------------------------------ reading

def recorded_path():
    """The shipped copy of ``benchmarks/results/decode-cpu.json`` (:mod:`longctx_lab.core.recorded`; a path on
    disk in an ordinary install)."""
    from longctx_lab.core.recorded import recorded_file

    return recorded_file(RESULT_NAME)


def load_decode_results(path=None) -> dict:
    """The JSON recorded by ``longctx-lab bench decode-cpu``: ``path``, or by default the copy shipped with the
    package (:func:`recorded_path`)."""
    path = recorded_path() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path must be a decode-cpu.json written by `longctx-lab bench decode-cpu`, got "
                                f"{path} (no such file)")
    data = json.loads(path.read_text(encoding="utf-8"))
    missing = [k for k in ("decode", "prefill", "fits", "bytes", "paging", "command", "date") if k not in data]
    if missing:
        raise ValueError(f"{path} must hold the decode-cpu keys, missing {missing}")
    return data


def claim_inputs(results: dict) -> dict:
    """``prefill_exponent``, ``decode_exponent`` (cached, contiguous) and ``measured_on`` for
    ``longctx_lab.course.claim_sets.ch05_kv_cache_gqa.claims(**claim_inputs(results))``."""
    m = results.get("machine", {})
    return {"prefill_exponent": results["fits"]["prefill"]["exponent"],
            "decode_exponent": results["fits"]["cached_decode"]["exponent"],
            "measured_on": f"{results['model']['n_params']:,}-parameter TinyLM, {m.get('threads', '?')} torch "
                           f"thread(s) on CPU, {results['date'][:10]}"}


def summary_lines(results: dict) -> list[str]:
    """The numbers as text: per-context times and speedups, the fits, the speed-up pass mark (cached decode at least
    :data:`SPEEDUP_TARGET` times faster than recomputation at :data:`SPEEDUP_CONTEXT` tokens), bytes and paging
    waste."""
    lines = [f"{'context':>8} {'kind':<15} {'cached ms':>10} {'median ms':>10} {'recompute ms':>13} {'speedup':>8}"]
    for r in results["decode"]:
        lines.append(f"{r['context']:>8} {r['kind']:<15} {r['cached_s'] * 1e3:10.2f} "
                     f"{r['cached_median_s'] * 1e3:10.2f} {r['recompute_s'] * 1e3:13.1f} {r['speedup']:7.1f}x")
    lines.append("prefill: " + ", ".join(f"{r['prompt_len']}: {r['seconds'] * 1e3:.0f} ms" for r in results["prefill"]))
    for name, f in results["fits"].items():
        top = (f" (fitted over the three longest contexts only: n^{f['exponent_top3']:.2f})"
               if "exponent_top3" in f else "")
        lines.append(f"fit {name}: time ~ n^{f['exponent']:.2f}, r2 {f['r2']:.3f}{top}")
    c = results["speedup_check"]
    if c["speedup"] is not None:
        lines.append(f"cached decode vs recomputation at {c['context']} tokens: {c['speedup']:.1f}x faster "
                     f"(the benchmark's pass mark, at least {c['target']:.0f}x: {'met' if c['passed'] else 'MISSED'})")
    for r in results["bytes"]:
        lines.append(f"bytes {r['attention']} (kv_heads {r['kv_heads']}) {r['storage']:<9}: {r['measured_bytes']:>11,} "
                     f"(formula {r['formula_bytes']:,}), {r['fraction_of_mha_fp16']:.3f} of MHA fp16")
    for r in results["paging"]:
        lines.append(f"paging block {r['block_size']:>3}: contiguous waste {r['contiguous_waste']:.1%} (reserved "
                     f"{r['contiguous_reserved_fraction']:.1%}, internal {r['contiguous_internal_fraction']:.1%}), "
                     f"paged waste {r['paged_waste']:.1%}, {r['capacity_ratio']:.1f}x more sequences fit")
    return lines


# ------------------------------------------------------------------------------------------------ plotting

def _axes(ax):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    return ax


def plot_decode_times(results: dict, ax=None):
    """Per-token time vs context, log-log: cached decode per kind and recomputation, with fitted exponents."""
    ax = _axes(ax)
    rows = results["decode"]
    fits = results["fits"]
    contiguous = sorted((r for r in rows if r["kind"] == "contiguous"), key=lambda r: r["context"])
    xs = [r["context"] for r in contiguous]
    ax.plot(xs, [r["recompute_s"] for r in contiguous], "o-",
            label=f"recompute (no cache), ~n^{fits['recompute']['exponent']:.2f}")
    for kind in dict.fromkeys(r["kind"] for r in rows):
        rs = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["context"])
        key = "cached_decode" if kind == "contiguous" else f"cached_decode_{kind}"
        p = f", ~n^{fits[key]['exponent']:.2f}" if key in fits else ""
        ax.plot([r["context"] for r in rs], [r["cached_s"] for r in rs], "s-", label=f"cached: {kind}{p}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("tokens in context")
    ax.set_ylabel("seconds per generated token")
    ax.set_title("Decoding one token on this CPU")
    ax.legend()
    return ax


def plot_prefill_times(results: dict, ax=None):
    """Prefill time (time to first token) vs prompt length, log-log, with the fitted exponent and a slope-1 guide."""
    ax = _axes(ax)
    rows = sorted(results["prefill"], key=lambda r: r["prompt_len"])
    xs, ys = [r["prompt_len"] for r in rows], [r["seconds"] for r in rows]
    f = results["fits"]["prefill"]
    ax.plot(xs, ys, "o-", label=f"measured, ~n^{f['exponent']:.2f}")
    ax.plot(xs, [ys[0] * x / xs[0] for x in xs], "--", color="grey", label="linear (slope 1) from the first point")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("prompt tokens")
    ax.set_ylabel("prefill seconds")
    ax.set_title("Time to first token on this CPU")
    ax.legend()
    return ax


def plot_cache_bytes(results: dict, ax=None):
    """Grouped bars: bytes per cached token (all layers) for MHA/GQA/MQA x fp32/fp16/int8/int4/KIVI, measured."""
    ax = _axes(ax)
    rows = results["bytes"]
    attentions = list(dict.fromkeys(r["attention"] for r in rows))
    storages = list(dict.fromkeys(r["storage"] for r in rows))
    width = 0.8 / len(storages)
    for j, s in enumerate(storages):
        vals = [next(r["bytes_per_token"] for r in rows if r["attention"] == a and r["storage"] == s)
                for a in attentions]
        ax.bar([i + j * width for i in range(len(attentions))], vals, width, label=s)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(attentions))])
    ax.set_xticklabels([f"{a}\n({next(r['kv_heads'] for r in rows if r['attention'] == a)} KV heads)"
                        for a in attentions])
    ax.set_yscale("log")
    ax.set_ylabel("bytes per cached token (measured)")
    ax.set_title("KV-cache bytes from the tensors")
    ax.legend()
    return ax


def plot_paging_waste(results: dict, ax=None):
    """Fraction of cache memory holding no token, contiguous (reserved + internal) vs paged, per block size."""
    ax = _axes(ax)
    rows = sorted(results["paging"], key=lambda r: r["block_size"])
    labels = [str(r["block_size"]) for r in rows]
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["contiguous_reserved_fraction"] for r in rows], 0.4,
           label="contiguous: reserved for future tokens")
    ax.bar([x - 0.2 for x in xs], [r["contiguous_internal_fraction"] for r in rows], 0.4,
           bottom=[r["contiguous_reserved_fraction"] for r in rows], label="contiguous: past the final length")
    ax.bar([x + 0.2 for x in xs], [r["paged_waste"] for r in rows], 0.4, label="paged: last block's free slots")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels)
    ax.set_xlabel("block size (tokens)")
    ax.set_ylabel("fraction of cache memory unused")
    ax.set_ylim(0, 1)
    ax.set_title(f"{rows[0]['requests']} requests, max_len {rows[0]['max_len']}")
    ax.legend()
    return ax


if __name__ == "__main__":  # python -m longctx_lab.cli.bench.decode_cpu [...]
    import argparse

    _parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
