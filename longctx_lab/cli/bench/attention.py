"""Attention speed and memory: Triton FlashAttention vs SDPA vs naive (GPU), tiled torch vs naive vs SDPA (CPU).

``longctx-lab bench attention`` runs two parts and records each as JSON under ``benchmarks/results/``:

GPU (CUDA only; on a machine without one it says so and records nothing): for ``n`` from 1K to 64K,
causal and not, fp16 and bf16, forward and forward+backward of

- ``triton``: :func:`longctx_lab.kernels.flash_attention` with ``backend="triton"``,
- ``sdpa-flash`` / ``sdpa-math``: ``torch.nn.functional.scaled_dot_product_attention`` pinned to one
  backend with ``torch.nn.attention.sdpa_kernel``,
- ``naive``: :func:`longctx_lab.attention.reference.naive_attention` (materialises the scores).

Time is Triton's ``do_bench`` (median of repeated runs, L2 flushed between them). Throughput counts
``4 * batch * heads * n^2 * head_dim`` FLOPs for the forward pass (two matmuls), 2.5x that for the
backward pass (five matmuls), halved under ``causal``, and is printed as a percentage of the device's
datasheet 16-bit tensor-core peak (:data:`longctx_lab.core.configs.GPUS`) when the device is one of those.
Peak memory is ``torch.cuda.max_memory_allocated`` during one call minus the memory allocated before
it (inputs excluded). Implementations that would not fit (the naive/math paths at long ``n``) are
recorded as skipped with the bytes they would need, or as ``oom`` if the allocation failed.
File: ``attention-gpu-<device>.json``.

CPU (always): time and peak extra memory of the tiled PyTorch path (what ``flash_attention`` runs on
CPU) vs naive vs SDPA as ``n`` grows to 16K (batch 1, 1 head, head dim 64, float32), causal and not,
with the naive/tiled and SDPA/tiled ratios. Each implementation runs in a fresh Python process
(:func:`longctx_lab.attention.measure.measure_attention`): its peak extra memory is the process's resident-set
high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs`` right before the call) minus the
resident set just before the call, so it counts every byte the call touched (including the
allocator's and the thread pool's) and nothing the inputs already held; a fresh process keeps one
implementation's freed memory from hiding another's peak. File: ``attention-cpu.json``.

The same file's ``sdpa_vs_tiled`` section times SDPA (``scaled_dot_product_attention(is_causal=True)``) against
the tiled path (:func:`~longctx_lab.attention.tiled.tiled_attention`, default tiles) where training runs them:
forward and forward+backward, causal, float32, at n = 8192 with 4 heads of 64 (the issue's target: the tiled
path within 2x of SDPA) and at the tiny LM's training shapes (batch 32, 4 heads of 16, n = 128 and 512). The two
run in one process, interleaved (alternating which goes first), with the process's default torch threads and
again with one (the per-core comparison); the medians and their ratio are recorded, so load from other processes
slows both alike. ``dispatcher`` names what
:func:`~longctx_lab.kernels.dispatch.flash_attention` runs for that shape by default (``"torch-sdpa"``: SDPA).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

GPU_IMPLS = ("triton", "sdpa-flash", "sdpa-math", "naive")
CPU_IMPLS = ("tiled", "naive", "sdpa")
DEFAULT_GPU_LENS = (1024, 2048, 4096, 8192, 16384, 32768, 65536)
DEFAULT_CPU_LENS = (512, 1024, 2048, 4096, 8192, 16384)
#: (label, batch, heads, n, head_dim) of the SDPA vs tiled comparison: the issue's target, then the passkey
#: model's training shapes (PASSKEY_MODEL: d_model 64, 4 heads, so head_dim 16; batch 32).
CPU_COMPARE_SHAPES = (("target", 1, 4, 8192, 64), ("tiny-lm", 32, 4, 128, 16), ("tiny-lm", 32, 4, 512, 16))


#: Largest head dim of the Triton kernels, ``longctx_lab.kernels.config.MAX_TRITON_HEAD_DIM`` (repeated so that
#: ``--help`` imports no torch; tests/kernels/test_bench_decode.py checks that the two agree).
TRITON_HEAD_DIM_MAX = 256


def triton_head_dim(text: str) -> int:
    """argparse type of ``--gpu-head-dim`` here and ``--head-dim`` of ``bench decode``: an int in 1..256."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= TRITON_HEAD_DIM_MAX:
        raise argparse.ArgumentTypeError(
            f"must be an integer in [1, {TRITON_HEAD_DIM_MAX}] (the head dims of the Triton kernels), got {text!r}")
    return value


def add_arguments(parser) -> None:
    parser.add_argument("--part", choices=("all", "gpu", "cpu"), default="all", help="which part to run")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"), help="where the JSON goes")
    parser.add_argument("--gpu-lens", type=int, nargs="+", default=list(DEFAULT_GPU_LENS))
    parser.add_argument("--gpu-tokens", type=int, default=16384,
                        help="batch = max(1, tokens // n), so every length processes about as many tokens")
    parser.add_argument("--gpu-heads", type=int, default=16)
    parser.add_argument("--gpu-head-dim", type=triton_head_dim, default=128)
    parser.add_argument("--gpu-dtypes", nargs="+", default=["float16", "bfloat16"], choices=("float16", "bfloat16"))
    parser.add_argument("--gpu-impls", nargs="+", default=list(GPU_IMPLS), choices=GPU_IMPLS)
    parser.add_argument("--cpu-lens", type=int, nargs="+", default=list(DEFAULT_CPU_LENS))
    parser.add_argument("--cpu-heads", type=int, default=1)
    parser.add_argument("--cpu-head-dim", type=int, default=64)
    parser.add_argument("--cpu-repeats", type=int, default=2, help="timed runs per size (fastest is kept)")
    parser.add_argument("--cpu-impls", nargs="+", default=list(CPU_IMPLS), choices=CPU_IMPLS)
    parser.add_argument("--cpu-compare-repeats", type=int, default=5,
                        help="interleaved runs per shape in the SDPA vs tiled comparison (median kept); 0 skips it")


def attention_flops(batch: int, heads: int, n_q: int, n_kv: int, head_dim: int, *, causal: bool,
                    backward: bool = False) -> float:
    """FLOPs of attention: ``4 * batch * heads * n_q * n_kv * head_dim`` forward (QK^T and PV, 2 FLOPs per
    multiply-add), x2.5 for the backward pass alone, halved when causal (the FlashAttention papers' count)."""
    flops = 4.0 * batch * heads * n_q * n_kv * head_dim
    if backward:
        flops *= 2.5
    return flops / 2 if causal else flops


def _versions() -> dict:
    import torch

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    return {"python": platform.python_version(), "torch": torch.__version__, "triton": triton_version}


def _header(args) -> dict:
    return {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **_versions(),
    }


def _write(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {path}")


# ------------------------------------------------------------------------------------------------ GPU


def _driver_version() -> str | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def _peak_spec(device_name: str):
    """The datasheet entry for this device, or None when it is not one the course lists."""
    from longctx_lab.core.configs import GPUS

    name = device_name.upper()
    if "H100" in name:
        return GPUS["h100-sxm"] if "PCIE" not in name else None  # H100 PCIe has a lower peak: not listed
    if "A100" in name:
        return GPUS["a100-pcie"] if "PCIE" in name else GPUS["a100-sxm"]
    if "T4" in name:
        return GPUS["t4"]
    return None


def _gpu_fn(impl: str, causal: bool):
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if impl == "triton":
        from longctx_lab.kernels.dispatch import flash_attention

        return lambda q, k, v: flash_attention(q, k, v, causal=causal, backend="triton")
    if impl in ("sdpa-flash", "sdpa-math"):
        backend = SDPBackend.FLASH_ATTENTION if impl == "sdpa-flash" else SDPBackend.MATH

        def run(q, k, v):
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

        return run
    from longctx_lab.attention.reference import naive_attention

    return lambda q, k, v: naive_attention(q, k, v, causal=causal)


def _materialises_scores(impl: str) -> bool:
    return impl in ("sdpa-math", "naive")


def _measure_gpu_case(impl, batch, heads, n, head_dim, dtype, causal) -> dict:
    import torch
    from triton.testing import do_bench

    row = {"impl": impl, "n": n, "batch": batch, "heads": heads, "head_dim": head_dim,
           "dtype": str(dtype).replace("torch.", ""), "causal": causal}
    if _materialises_scores(impl):
        # scores + probabilities (+ their gradients in backward), fp32 softmax in the math path
        need = batch * heads * n * n * (4 + 2 + 2)
        free, _ = torch.cuda.mem_get_info()
        if need > 0.8 * free:
            row.update(status="skipped", reason=f"needs about {need / 2**30:.1f} GiB for the score matrices, "
                       f"{free / 2**30:.1f} GiB free")
            return row
    fn = _gpu_fn(impl, causal)
    try:
        q, k, v = (torch.randn(batch, heads, n, head_dim, device="cuda", dtype=dtype, requires_grad=True)
                   for _ in range(3))
        do = torch.randn_like(q)
        for phase in ("fwd", "fwd_bwd"):
            def call(phase=phase):
                if phase == "fwd":
                    with torch.no_grad():
                        return fn(q, k, v)
                q.grad = k.grad = v.grad = None
                fn(q, k, v).backward(do)

            call()  # compile / warm up
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            call()
            torch.cuda.synchronize()
            row[f"{phase}_peak_bytes"] = torch.cuda.max_memory_allocated() - base
            row[f"{phase}_ms"] = do_bench(call, warmup=25, rep=100, return_mode="median")
        fwd = attention_flops(batch, heads, n, n, head_dim, causal=causal)
        bwd = attention_flops(batch, heads, n, n, head_dim, causal=causal, backward=True)
        row["fwd_tflops"] = fwd / (row["fwd_ms"] * 1e-3) / 1e12
        row["fwd_bwd_tflops"] = (fwd + bwd) / (row["fwd_bwd_ms"] * 1e-3) / 1e12
        row["status"] = "ok"
    except torch.cuda.OutOfMemoryError:
        row.update(status="oom")
    except RuntimeError as exc:  # e.g. SDPA's flash backend has no kernel for this GPU or dtype
        row.update(status="error", reason=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    finally:
        q = k = v = do = None
        torch.cuda.empty_cache()
    return row


def run_gpu(args) -> dict | None:
    """Run the GPU part; returns the payload, or None (and says why) when there is no CUDA GPU."""
    import torch

    if not torch.cuda.is_available():
        print("GPU part: no CUDA GPU on this machine (torch.cuda.is_available() is False): skipped, "
              "no GPU numbers measured or recorded.")
        return None
    from longctx_lab.kernels.dispatch import triton_available

    impls = list(args.gpu_impls)
    if "triton" in impls and not triton_available():
        print("GPU part: triton is not importable: the 'triton' rows are skipped.")
        impls.remove("triton")
    name = torch.cuda.get_device_name()
    major, minor = torch.cuda.get_device_capability()
    spec = _peak_spec(name)
    rows = []
    print(f"GPU part on {name} (sm_{major}{minor}); peak 16-bit: "
          + (f"{spec.peak_flops_16bit / 1e12:.0f} TFLOP/s ({spec.name} datasheet)" if spec else "unknown"))
    print(f"{'impl':<11} {'dtype':<9} {'causal':<6} {'n':>6} {'fwd ms':>9} {'TFLOP/s':>8} {'%peak':>6} "
          f"{'f+b ms':>9} {'TFLOP/s':>8} {'%peak':>6} {'fwd MiB':>9} {'f+b MiB':>9}")
    for dtype_name in args.gpu_dtypes:
        dtype = getattr(torch, dtype_name)
        if dtype == torch.bfloat16 and major < 8:
            print(f"bfloat16 skipped: sm_{major}{minor} has no bf16 tensor cores")
            continue
        for causal in (False, True):
            for n in args.gpu_lens:
                batch = max(1, args.gpu_tokens // n)
                for impl in impls:
                    row = _measure_gpu_case(impl, batch, args.gpu_heads, n, args.gpu_head_dim, dtype, causal)
                    if row["status"] == "ok" and spec:
                        row["fwd_pct_peak"] = 100 * row["fwd_tflops"] * 1e12 / spec.peak_flops_16bit
                        row["fwd_bwd_pct_peak"] = 100 * row["fwd_bwd_tflops"] * 1e12 / spec.peak_flops_16bit
                    rows.append(row)
                    _print_gpu_row(row)
    payload = {
        **_header(args),
        "device": name,
        "compute_capability": f"{major}.{minor}",
        "driver": _driver_version(),
        "cuda_runtime": torch.version.cuda,
        "peak_flops_16bit": spec.peak_flops_16bit if spec else None,
        "peak_source": spec.source if spec else None,
        "flops_convention": "fwd 4*B*H*n^2*d, bwd 2.5x fwd, halved for causal",
        "memory_convention": "torch.cuda.max_memory_allocated during one call minus memory allocated before it",
        "rows": rows,
    }
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    _write(args.out_dir / f"attention-gpu-{slug}.json", payload)
    return payload


def _print_gpu_row(row: dict) -> None:
    head = f"{row['impl']:<11} {row['dtype']:<9} {row['causal']!s:<6} {row['n']:>6}"
    if row["status"] != "ok":
        print(f"{head} {row['status']}: {row.get('reason', '')}")
        return

    def pct(key):
        return f"{row[key]:6.1f}" if key in row else f"{'-':>6}"

    print(f"{head} {row['fwd_ms']:9.3f} {row['fwd_tflops']:8.1f} {pct('fwd_pct_peak')} "
          f"{row['fwd_bwd_ms']:9.3f} {row['fwd_bwd_tflops']:8.1f} {pct('fwd_bwd_pct_peak')} "
          f"{row['fwd_peak_bytes'] / 2**20:9.1f} {row['fwd_bwd_peak_bytes'] / 2**20:9.1f}")


# ------------------------------------------------------------------------------------------------ CPU


def cpu_ratios(rows: list[dict]) -> list[dict]:
    """Per (causal, n): memory and time of naive and SDPA divided by those of the tiled path."""
    by = {(r["impl"], r["causal"], r["seq_len"]): r for r in rows}
    out = []
    for (impl, causal, n), tiled in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        if impl != "tiled":
            continue
        entry = {"causal": causal, "seq_len": n}
        for other in ("naive", "sdpa"):
            r = by.get((other, causal, n))
            if r is None:
                continue
            entry[f"{other}_over_tiled_memory"] = r["peak_bytes"] / tiled["peak_bytes"] if tiled["peak_bytes"] else None
            entry[f"{other}_over_tiled_time"] = r["seconds"] / tiled["seconds"]
        out.append(entry)
    return out


def _load_average():
    try:
        return list(os.getloadavg())
    except OSError:  # pragma: no cover - not on Linux
        return None


def compare_sdpa_tiled(batch: int, heads: int, n: int, head_dim: int, *, repeats: int, seed: int = 0) -> list[dict]:
    """Forward and forward+backward seconds of SDPA and the tiled path, interleaved; one row per phase."""
    import statistics
    import time

    import torch
    import torch.nn.functional as F

    from longctx_lab.attention.tiled import tiled_attention
    from longctx_lab.kernels.dispatch import select_backend

    gen = torch.Generator().manual_seed(seed)
    q, k, v, do = (torch.randn(batch, heads, n, head_dim, generator=gen) for _ in range(4))
    fns = {"sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
           "tiled": lambda q, k, v: tiled_attention(q, k, v, causal=True)}
    rows = []
    for phase in ("fwd", "fwd_bwd"):
        leaves = [t.clone().requires_grad_(phase == "fwd_bwd") for t in (q, k, v)]

        def call(name, leaves=leaves, phase=phase):
            if phase == "fwd":
                with torch.no_grad():
                    fns[name](*leaves)
                return
            for t in leaves:
                t.grad = None
            fns[name](*leaves).backward(do)

        times = {"sdpa": [], "tiled": []}
        for name in times:
            call(name)  # warm-up
        for r in range(repeats):
            for name in (("sdpa", "tiled") if r % 2 == 0 else ("tiled", "sdpa")):
                start = time.perf_counter()
                call(name)
                times[name].append(time.perf_counter() - start)
        sdpa, tiled = statistics.median(times["sdpa"]), statistics.median(times["tiled"])
        rows.append({"phase": phase, "batch": batch, "heads": heads, "seq_len": n, "head_dim": head_dim,
                     "causal": True, "dtype": "float32", "repeats": repeats, "sdpa_median_s": sdpa,
                     "tiled_median_s": tiled, "tiled_over_sdpa": tiled / sdpa,
                     "sdpa_s": times["sdpa"], "tiled_s": times["tiled"],
                     "dispatcher": select_backend(q, k=k, v=v, causal=True)})
    return rows


def run_cpu_comparison(args) -> dict:
    """The ``sdpa_vs_tiled`` section of ``attention-cpu.json`` (module docstring)."""
    import torch

    from longctx_lab.attention.tiled import default_block_sizes

    before = _load_average()
    rows = []
    default_threads = torch.get_num_threads()
    thread_counts = [default_threads] if default_threads == 1 else [default_threads, 1]
    print(f"SDPA vs tiled (interleaved, median of {args.cpu_compare_repeats}), causal float32:")
    print(f"{'shape':<8} {'batch':>5} {'heads':>5} {'n':>6} {'d':>4} {'thr':>3} {'phase':<8} {'sdpa s':>9} "
          f"{'tiled s':>9} {'tiled/sdpa':>10}  dispatcher")
    try:
        for threads in thread_counts:
            torch.set_num_threads(threads)
            for label, batch, heads, n, head_dim in CPU_COMPARE_SHAPES:
                for row in compare_sdpa_tiled(batch, heads, n, head_dim, repeats=args.cpu_compare_repeats):
                    row.update(shape=label, threads=threads,
                               tiled_blocks=list(default_block_sizes(n, n, batch * heads)))
                    rows.append(row)
                    print(f"{label:<8} {batch:>5} {heads:>5} {n:>6} {head_dim:>4} {threads:>3} {row['phase']:<8} "
                          f"{row['sdpa_median_s']:9.4f} {row['tiled_median_s']:9.4f} {row['tiled_over_sdpa']:9.2f}x  "
                          f"{row['dispatcher']}")
    finally:
        torch.set_num_threads(default_threads)
    return {"threads": thread_counts, "load_average_before": before, "load_average_after": _load_average(),
            "convention": "one process; SDPA and the tiled path alternate (which runs first alternates too) after "
                          "one warm-up call each; median wall-clock seconds; tiled_over_sdpa = tiled median / "
                          "SDPA median; fwd under no_grad, fwd_bwd = forward + out.backward(dout)",
            "target": "tiled_over_sdpa <= 2 at n = 8192, 4 heads, d = 64, causal, float32 (issue 15)",
            "rows": rows}


def run_cpu(args) -> dict:
    """Run the CPU part (fresh process per implementation and causal flag) and write ``attention-cpu.json``."""
    from longctx_lab.attention.measure import machine_description, measure_attention

    lens = sorted(set(args.cpu_lens))
    rows = []
    print(f"CPU part: batch 1, {args.cpu_heads} head(s), head_dim {args.cpu_head_dim}, float32, n = {lens}")
    for causal in (False, True):
        for impl in args.cpu_impls:
            for m in measure_attention(lens, impl=impl, head_dim=args.cpu_head_dim, n_heads=args.cpu_heads,
                                       causal=causal, repeats=args.cpu_repeats, timeout=1800):
                rows.append({"impl": m.impl, "causal": causal, "seq_len": m.seq_len, "seconds": m.seconds,
                             "peak_bytes": m.peak_bytes})
    ratios = cpu_ratios(rows)
    by = {(r["impl"], r["causal"], r["seq_len"]): r for r in rows}
    print(f"{'causal':<6} {'n':>6} " + " ".join(f"{i + ' s':>9} {i + ' MiB':>10}" for i in args.cpu_impls)
          + "   naive/tiled mem  time")
    for ratio in ratios:
        causal, n = ratio["causal"], ratio["seq_len"]
        cells = " ".join(f"{by[(i, causal, n)]['seconds']:9.4f} {by[(i, causal, n)]['peak_bytes'] / 2**20:10.2f}"
                         for i in args.cpu_impls)
        mem, tim = ratio.get("naive_over_tiled_memory"), ratio.get("naive_over_tiled_time")
        tail = f"   {mem:14.1f}x {tim:5.2f}x" if mem is not None and tim is not None else ""
        print(f"{causal!s:<6} {n:>6} {cells}{tail}")
    payload = {
        **_header(args),
        "device": "cpu",
        "machine": machine_description(),
        "params": {"batch": 1, "heads": args.cpu_heads, "head_dim": args.cpu_head_dim, "dtype": "float32",
                   "repeats": args.cpu_repeats, "tiled_blocks": "tiled_attention defaults"},
        "memory_convention": "peak extra resident memory of one call, in a fresh process per implementation: "
                             "VmHWM (reset via /proc/self/clear_refs before the call) minus VmRSS before it; "
                             "resolution is a page, and 0 means the call fit in memory the process already held "
                             "(ratio then null)",
        "time_convention": "fastest of `repeats` wall-clock runs after one warm-up run",
        "rows": rows,
        "ratios": ratios,
    }
    if args.cpu_compare_repeats:
        payload["sdpa_vs_tiled"] = run_cpu_comparison(args)
    _write(args.out_dir / "attention-cpu.json", payload)
    return payload


def run(args) -> int:
    for name in ("gpu_lens", "cpu_lens"):
        bad = [n for n in getattr(args, name) if n < 1]
        if bad:
            raise ValueError(f"--{name.replace('_', '-')} must be positive integers, got {bad}")
    for name in ("gpu_tokens", "gpu_heads", "cpu_heads", "cpu_head_dim", "cpu_repeats"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.cpu_compare_repeats < 0:
        raise ValueError(f"--cpu-compare-repeats must be >= 0, got {args.cpu_compare_repeats}")
    if args.part in ("all", "gpu"):
        run_gpu(args)
    if args.part in ("all", "cpu"):
        run_cpu(args)
    return 0


if __name__ == "__main__":  # python -m longctx_lab.cli.bench.attention [...]
    import argparse

    _parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))


