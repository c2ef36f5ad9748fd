"""`make gpu-check`: verify the Triton kernels natively on this machine's CUDA GPU, then benchmark them.

Run it after changing anything under ``longctx_lab/kernels/`` or ``longctx_lab/attention/``, and on each new
GPU model (CI has no GPU: there the kernels run only under the Triton interpreter and compile ahead of time).
``.venv/bin/python benchmarks/gpu_check.py [--budget-s 480] [--out-dir benchmarks/results]``.

On a CUDA machine, in order, within one time budget (8 minutes by default):

1. the kernel tests, ``pytest -m triton tests/kernels`` with ``LONGCTX_LAB_KERNEL_DEVICE=cuda`` and
   ``TRITON_INTERPRET`` removed: the kernels compiled for this GPU (not interpreted), checked against SDPA and
   float64 references computed on the CPU, NaN propagation included, plus head dims 64/128, 80/96 (padded to
   128-wide tiles) and 256, and bfloat16, at the GPU's own tile configurations (tests that exist only natively);
2. the attention benchmark, ``longctx-lab bench attention --part gpu`` (its own record,
   ``attention-gpu-<device>.json``); a ``triton`` row that errors or runs out of memory is a failure;
3. a record, ``gpu-check-<device>.json`` under ``--out-dir``: command, date, GPU, compute capability, driver,
   CUDA runtime, Python/torch/triton versions, each step's exit code, seconds and test counts, the verdict.

Exit status: 0 when every test passed and the benchmark finished within the budget; 1 on any test failure
(a kernel result that does not match its reference), benchmark failure or overrun.

Without CUDA: when no NVIDIA GPU is visible either (no ``nvidia-smi``, or it lists none), one line says that
nothing was checked, nothing is recorded, and the exit status is 0: a CPU machine has no GPU result to get
wrong, and ``make test`` is its check. When ``nvidia-smi`` does list a GPU but this torch cannot use it (a
CPU-only build, such as the pinned wheel ``make setup`` installs, or a driver mismatch), one line says so and
the exit status is 2: the GPU machine was not verified, and that must not read as a pass.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BUDGET_S = 480
EXIT_PASS, EXIT_FAIL, EXIT_UNUSABLE_GPU = 0, 1, 2
KERNEL_DEVICE_ENV = "LONGCTX_LAB_KERNEL_DEVICE"  # read by tests/kernels/kernel_env.py


@dataclass
class Step:
    """One command of the check: what ran, how it ended, and how long it took."""

    name: str
    command: list[str]
    returncode: int | None = None  # None: killed at the budget
    seconds: float = 0.0
    timed_out: bool = False
    details: dict = field(default_factory=dict)


def nvidia_smi_gpus() -> list[dict] | None:
    """GPUs that ``nvidia-smi`` lists, ``[{"name", "driver"}]``; ``None`` when there is no working nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        res = subprocess.run([exe, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    gpus = []
    for line in res.stdout.strip().splitlines():
        name, _, driver = line.rpartition(",")
        if name.strip():
            gpus.append({"name": name.strip(), "driver": driver.strip()})
    return gpus


def no_cuda_message(gpus: list[dict] | None) -> tuple[int, str]:
    """Exit status and the one line to print when torch sees no CUDA device (see the module docstring)."""
    if gpus:
        names = ", ".join(sorted({g["name"] for g in gpus}))
        return EXIT_UNUSABLE_GPU, (
            f"gpu-check: FAILED to start: nvidia-smi lists {names} but torch.cuda.is_available() is False "
            "(a CPU-only torch build or a driver mismatch): install a CUDA build of torch into .venv "
            "(`make setup` keeps it) and run `make gpu-check` again; nothing was checked"
        )
    return EXIT_PASS, (
        "gpu-check: no CUDA GPU on this machine (torch.cuda.is_available() is False): nothing checked, nothing "
        "recorded; run `make gpu-check` on a CUDA machine (see README), `make test` checks everything else"
    )


def run_step(step: Step, *, timeout: float, env: dict | None = None, cwd: Path = REPO) -> Step:
    """Run ``step.command`` (output streamed), killing its whole process group after ``timeout`` seconds."""
    start = time.monotonic()
    if timeout <= 0:
        step.timed_out = True
        step.details["not_run"] = "no time left in the budget"
        return step
    proc = subprocess.Popen(step.command, cwd=cwd, env=env, start_new_session=True)
    try:
        step.returncode = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        step.timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    step.seconds = round(time.monotonic() - start, 1)
    return step


def junit_summary(path: Path) -> dict:
    """Counts (tests, failures, errors, skipped, passed) and up to 20 failed test ids from a pytest JUnit XML."""
    if not path.exists():
        return {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "passed": 0, "failed_tests": []}
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    failed = []
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname', '')}::{case.get('name', '')}")
    counts["failed_tests"] = failed[:20]
    return counts


def benchmark_summary(path: Path | None) -> dict:
    """Rows of the attention benchmark's record by implementation and status; the triton rows that did not run."""
    if path is None or not path.exists():
        return {"record": None, "rows_by_status": {}, "triton_failures": []}
    rows = json.loads(path.read_text()).get("rows", [])
    by_status: dict[str, int] = {}
    for row in rows:
        key = f"{row.get('impl')}:{row.get('status')}"
        by_status[key] = by_status.get(key, 0) + 1
    bad = [
        {k: row.get(k) for k in ("dtype", "causal", "n", "status", "reason")}
        for row in rows
        if row.get("impl") == "triton" and row.get("status") != "ok"
    ]
    return {"record": str(path), "rows_by_status": by_status, "triton_failures": bad}


def verdict(tests: Step, bench: Step | None) -> list[str]:
    """Why the check failed (empty: it passed)."""
    reasons = []
    summary = tests.details.get("summary", {})
    if tests.timed_out:
        reasons.append("kernel tests ran past the time budget")
    elif tests.returncode != 0:
        failed = summary.get("failures", 0) + summary.get("errors", 0)
        reasons.append(f"kernel tests failed (pytest exit {tests.returncode}, {failed} failed or errored)")
    elif summary.get("passed", 0) == 0:
        reasons.append("no kernel test ran")
    if bench is None:
        reasons.append("benchmark not run")
    elif bench.timed_out:
        reasons.append("benchmark not run: no time left in the budget" if "not_run" in bench.details
                       else "benchmark ran past the time budget")
    elif bench.returncode != 0:
        reasons.append(f"benchmark failed (exit {bench.returncode})")
    else:
        bad = bench.details.get("summary", {}).get("triton_failures", [])
        if bench.details.get("summary", {}).get("record") is None:
            reasons.append("benchmark wrote no record")
        if bad:
            reasons.append(f"{len(bad)} triton benchmark rows did not run (first: {bad[0]})")
    return reasons


def kernel_test_command(junit: Path, workers: int) -> list[str]:
    """The native kernel tests (run with ``LONGCTX_LAB_KERNEL_DEVICE=cuda``), results to ``junit``."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "triton", "tests/kernels",
           f"--junitxml={junit}"]
    return cmd + (["-n", str(workers)] if workers > 1 else [])


def bench_command(out_dir: Path) -> list[str]:
    """``longctx-lab bench attention --part gpu``, recording under ``out_dir``."""
    return [sys.executable, "-m", "longctx_lab", "bench", "attention", "--part", "gpu", "--out-dir", str(out_dir)]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def _versions() -> dict:
    import torch

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    return {"python": platform.python_version(), "torch": torch.__version__, "triton": triton_version,
            "cuda_runtime": torch.version.cuda}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                        help="time for the tests and the benchmark together (default 480 s)")
    parser.add_argument("--out-dir", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--workers", type=int, default=max(1, min(8, (os.cpu_count() or 2) // 2)),
                        help="pytest-xdist workers for the kernel tests (compiles run in parallel)")
    args = parser.parse_args(argv)
    if args.budget_s <= 0:
        parser.error(f"--budget-s must be > 0, got {args.budget_s}")
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")

    import torch

    if not torch.cuda.is_available():
        code, line = no_cuda_message(nvidia_smi_gpus())
        print(line)
        return code

    start = time.monotonic()
    name = torch.cuda.get_device_name()
    major, minor = torch.cuda.get_device_capability()
    gpus = nvidia_smi_gpus() or []
    driver = next((g["driver"] for g in gpus if g["name"] == name), gpus[0]["driver"] if gpus else None)
    print(f"gpu-check on {name} (sm_{major}{minor}, driver {driver}), budget {args.budget_s:.0f} s")

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env[KERNEL_DEVICE_ENV] = "cuda"
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "kernel-tests.xml"
        cmd = kernel_test_command(junit, args.workers)
        print(f"[1/2] kernel tests, native: {KERNEL_DEVICE_ENV}=cuda {' '.join(cmd[1:])}", flush=True)
        tests = run_step(Step("kernel tests", cmd), timeout=args.budget_s - (time.monotonic() - start), env=env)
        tests.details["summary"] = junit_summary(junit)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    record = args.out_dir / f"attention-gpu-{_slug(name)}.json"
    before = record.stat().st_mtime_ns if record.exists() else None
    bench_cmd = bench_command(args.out_dir)
    print(f"[2/2] benchmark: longctx-lab {' '.join(bench_cmd[3:])}", flush=True)
    bench = run_step(Step("attention benchmark", bench_cmd), timeout=args.budget_s - (time.monotonic() - start),
                     env=env)
    fresh = record.exists() and record.stat().st_mtime_ns != before  # written by this run, not an old record
    bench.details["summary"] = benchmark_summary(record if fresh else None)

    reasons = verdict(tests, bench)
    total = round(time.monotonic() - start, 1)
    payload = {
        "command": " ".join(["benchmarks/gpu_check.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": name,
        "compute_capability": f"{major}.{minor}",
        "driver": driver,
        **_versions(),
        "budget_s": args.budget_s,
        "seconds": total,
        "steps": [asdict(tests), asdict(bench)],
        "verdict": "fail" if reasons else "pass",
        "reasons": reasons,
    }
    out = args.out_dir / f"gpu-check-{_slug(name)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1) + "\n")
    summary = tests.details["summary"]
    print(f"kernel tests: {summary['passed']} passed, {summary['failures'] + summary['errors']} failed, "
          f"{summary['skipped']} skipped in {tests.seconds:.0f} s; benchmark {bench.seconds:.0f} s; "
          f"total {total:.0f} s")
    print(f"wrote {out}")
    if reasons:
        print("gpu-check: FAILED: " + "; ".join(reasons))
        return EXIT_FAIL
    print("gpu-check: passed")
    return EXIT_PASS


if __name__ == "__main__":
    sys.exit(main())
