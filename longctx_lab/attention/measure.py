"""Measure, on this machine, how the time and peak memory of attention grow with sequence length.

Peak memory is read from the operating system, not computed: each measurement runs in a fresh
Python process (``python -m longctx_lab.attention.measure``): the peak extra memory of a call is the
kernel's resident-set high-water mark (``VmHWM``, reset just before the call through
``/proc/self/clear_refs``) minus the resident set just before it. glibc is told to return large
blocks to the OS at once (``MALLOC_MMAP_THRESHOLD_``) so memory freed by one size is not silently
reused by the next. Where the reset is unavailable (not Linux), ``ru_maxrss`` is used and the
increasing order of sizes keeps each new high-water mark attributable to the current size.
Time is the fastest of ``repeats`` wall-clock runs after one warm-up (the least disturbed by other work).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from longctx_lab.core.validate import check_int

IMPLEMENTATIONS = ("naive", "sdpa", "tiled")


@dataclass(frozen=True)
class Measurement:
    impl: str
    seq_len: int
    seconds: float
    peak_bytes: int


def _attention_fn(impl: str):
    import torch.nn.functional as F

    if impl == "naive":
        from longctx_lab.attention.reference import naive_attention

        return lambda q, k, v, causal: naive_attention(q, k, v, causal=causal)
    if impl == "sdpa":
        return lambda q, k, v, causal: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    if impl == "tiled":
        from longctx_lab.attention.tiled import tiled_attention

        return lambda q, k, v, causal: tiled_attention(q, k, v, causal=causal)
    raise ValueError(f"impl must be one of {IMPLEMENTATIONS}, got {impl!r}")


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _reset_peak() -> bool:
    """Reset the kernel's resident-set high-water mark (VmHWM); Linux >= 4.0."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB


def _peak_probe():
    """Return (start, stop) callables measuring the peak extra resident memory between them."""
    if sys.platform.startswith("linux") and _reset_peak():
        def start():
            _reset_peak()
            return _status_bytes("VmRSS")

        def stop(base):
            return _status_bytes("VmHWM") - base
    else:  # high-water mark since process start: valid because sizes increase
        def start():
            return _maxrss_bytes()

        def stop(base):
            return _maxrss_bytes() - base
    return start, stop


def _measure_in_process(impl, seq_lens, head_dim, n_heads, causal, repeats, dtype_name) -> list[Measurement]:
    import torch

    torch.manual_seed(0)
    dtype = getattr(torch, dtype_name)
    fn = _attention_fn(impl)
    start_probe, stop_probe = _peak_probe()
    # Warm up at the smallest size so one-time allocations (thread pools, caches) are not charged to it.
    warm = torch.randn(1, n_heads, seq_lens[0], head_dim, dtype=dtype)
    with torch.no_grad():
        fn(warm, warm, warm, causal)
    del warm
    results = []
    for n in seq_lens:
        q, k, v = (torch.randn(1, n_heads, n, head_dim, dtype=dtype) for _ in range(3))
        base = start_probe()
        with torch.no_grad():
            fn(q, k, v, causal)  # warm-up, and the memory high-water mark for this size
            peak = stop_probe(base)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn(q, k, v, causal)
                times.append(time.perf_counter() - start)
        results.append(Measurement(impl, n, min(times), max(peak, 0)))
        del q, k, v
    return results


def measure_attention(
    seq_lens,
    *,
    impl: str = "naive",
    head_dim: int = 64,
    n_heads: int = 1,
    causal: bool = False,
    repeats: int = 3,
    dtype: str = "float32",
    timeout: float = 300,
    threads: int | None = None,
) -> list[Measurement]:
    """Time and peak extra memory of one attention call per sequence length, measured in a fresh process.

    ``seq_lens`` must be strictly increasing (the high-water-mark method needs it). ``threads`` pins
    the child's torch thread count (``None``: torch's default there), so timings can say what ran them.
    """
    seq_lens = [check_int("seq_lens[i]", n, minimum=1) for n in seq_lens]
    if not seq_lens or any(b <= a for a, b in zip(seq_lens, seq_lens[1:], strict=False)):
        raise ValueError(f"seq_lens must be a non-empty strictly increasing sequence, got {seq_lens}")
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"impl must be one of {IMPLEMENTATIONS}, got {impl!r}")
    check_int("head_dim", head_dim, minimum=1)
    check_int("n_heads", n_heads, minimum=1)
    check_int("repeats", repeats, minimum=1)
    if threads is not None:
        check_int("threads", threads, minimum=1)
    if dtype not in ("float32", "float64", "bfloat16", "float16"):
        raise ValueError(f"dtype must be float32, float64, bfloat16 or float16, got {dtype!r}")
    cmd = [sys.executable, "-m", "longctx_lab.attention.measure", "--impl", impl, "--head-dim", str(head_dim),
           "--heads", str(n_heads), "--repeats", str(repeats), "--dtype", dtype,
           *(["--causal"] if causal else []), *(["--threads", str(threads)] if threads else []), *map(str, seq_lens)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"measurement process failed:\n{proc.stderr[-2000:]}")
    return [Measurement(**row) for row in json.loads(proc.stdout.strip().splitlines()[-1])]


def fit_power_law(x, y) -> tuple[float, float, float]:
    """Least-squares fit of ``y = c * x**p`` on log-log axes. Returns ``(p, c, r_squared)``."""
    xs, ys = list(map(float, x)), list(map(float, y))
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"x and y must have the same length >= 2, got {len(xs)} and {len(ys)}")
    if min(xs) <= 0 or min(ys) <= 0:
        raise ValueError("x and y must be positive for a log-log fit")
    lx, ly = [math.log(v) for v in xs], [math.log(v) for v in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    if sxx == 0:
        raise ValueError("x must hold at least two distinct values")
    p = sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sxx
    c = math.exp(my - p * mx)
    ss_res = sum((b - (math.log(c) + p * a)) ** 2 for a, b in zip(lx, ly, strict=True))
    ss_tot = sum((b - my) ** 2 for b in ly)
    return p, c, 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0


def machine_description() -> dict:
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "device": "cuda" if torch.cuda.is_available() else "cpu"}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("seq_lens", type=int, nargs="+")
    parser.add_argument("--impl", default="naive", choices=IMPLEMENTATIONS)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--causal", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    rows = _measure_in_process(args.impl, args.seq_lens, args.head_dim, args.heads, args.causal,
                               args.repeats, args.dtype)
    print(json.dumps([asdict(r) for r in rows]))


if __name__ == "__main__":
    main()


def recorded_benchmark(name: str = "attention-cpu.json") -> dict:
    """The course's recorded benchmark ``name`` (written by ``longctx-lab bench`` into ``benchmarks/results/``,
    shipped with the package: :mod:`longctx_lab.core.recorded`), reduced to its ``device``, ``date`` and
    ``command``; ``ValueError`` naming the shipped files for any other name."""
    from longctx_lab.core.recorded import recorded_result

    data = recorded_result(name)
    return {key: data[key] for key in ("device", "date", "command") if key in data}
