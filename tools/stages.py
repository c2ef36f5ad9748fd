"""Run every check `make test` promises, stage by stage, and print a timing summary.

Each stage is a command; stages run in order and all run even if one fails, so one red stage
does not hide the others. Exit status is non-zero if any stage failed. Tests are chosen by
pytest marker, so adding a test file never requires editing this list.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PYTEST = [str(BIN / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
SPECIAL = "lint or book or triton or aot or distributed or notebooks or grading or slow or browser or packaging"

#: Where ``import triton`` fails (``tests/no_triton/triton``), as on macOS and Windows, which have no triton wheels.
NO_TRITON_PATH = os.pathsep.join([str(ROOT / "tests" / "no_triton"), *filter(None, [os.environ.get("PYTHONPATH")])])
#: The chapters and exercise sources that touch Triton: each must still run, saying so, where it is missing.
TRITON_NOTEBOOKS = ["notebooks/ch04_flash_attention.ipynb", "notebooks/ch05_kv_cache_gqa.ipynb",
                    "solutions/ch04_flash_attention", "solutions/ch05_kv_cache_gqa"]

# (stage name, command, command...): a stage runs its commands in order.
STAGES: list[tuple] = [
    # ruff, then the source checks (each notebook paired with its text source, and the two agree)
    ("lint", [str(BIN / "ruff"), "check", "."], PYTEST + ["-m", "lint", "tests"]),
    ("unit", PYTEST + ["-n", "2", "-m", f"not ({SPECIAL})", "tests"]),
    # the product (issue 21): sdist + wheel built, installed alone in a fresh venv, the CLI and every chapter run on it
    ("wheel", [str(BIN / "python"), "tools/wheel_check.py"]),
    ("triton", PYTEST + ["-n", "2", "-m", "triton", "tests"]),
    ("aot", PYTEST + ["-n", "2", "-m", "aot", "tests"]),
    ("distributed", PYTEST + ["-m", "distributed", "tests"]),
    ("slow", PYTEST + ["-n", "2", "-m", f"slow and not ({SPECIAL.replace('or slow ', '')})", "tests"]),
    # every notebook executed as a test; --dist loadfile keeps a notebook's cells on one kernel
    ("notebooks", PYTEST + ["-n", "2", "--dist", "loadfile", "--nbval-lax", "notebooks", "solutions"]),
    # the kernel chapters again with triton unimportable (PYTHONPATH reaches the kernels nbval starts)
    ("notebooks-no-triton", ["env", f"PYTHONPATH={NO_TRITON_PATH}"] + PYTEST
     + ["-n", "2", "--dist", "loadfile", "--nbval-lax", *TRITON_NOTEBOOKS]),
    ("grading", PYTEST + ["-n", "2", "-m", "grading", "tests"]),
    # wall time and peak RSS of each chapter on this machine, against the course budget
    ("budget", [str(BIN / "longctx-lab"), "bench", "notebooks", "--executed-dir", "build/executed"]),
    # the static HTML course (make book) rendered from the notebooks `budget` just executed, then checked
    ("book", ["env", "LONGCTX_BOOK_NOTEBOOKS=build/executed", str(BIN / "sphinx-build"), "-q", "-W", "--keep-going",
              "-b", "html", "docs", "build/book"], PYTEST + ["-m", "book", "tests"]),
    ("browser", PYTEST + ["-m", "browser", "tests"]),
    # the install plan resolved from PyPI alone for every platform x Python (one process: it runs its own
    # threads; pip's resolver is CPU bound, so -n would only compete with them)
    ("packaging", PYTEST + ["-m", "packaging", "tests"]),
]

#: Stages that run in a thread from the start, beside the others (they wait on the network, not the CPU).
BACKGROUND = {"packaging"}

COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected)")


def run_command(cmd: list[str]) -> tuple[int, str]:
    # Two pytest workers on two cores: one intra-op thread each, or torch's thread pools fight.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, env=env)
    rc = proc.returncode
    if cmd[:3] == PYTEST[:3] and rc == 5:  # pytest: no test selected by this marker yet
        rc = 0
    return rc, proc.stdout + proc.stderr


def run_stage(name: str, cmds: tuple[list[str], ...], write=None) -> tuple[int, float, dict[str, int]]:
    """Run the stage's commands in order (stopping at the first that fails); status, seconds, test counts.
    What it prints goes to ``write`` (default: standard output, as it happens)."""
    write = write or (lambda text: (sys.stdout.write(text), sys.stdout.flush()))
    start = time.monotonic()
    rc, counts = 0, {}
    for cmd in cmds:
        write(f"\n=== stage {name}: {' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))}\n")
        rc, out = run_command(cmd)
        write(out[-6000:] if rc else "\n".join(out.strip().splitlines()[-3:]) + "\n")
        tail = "\n".join(out.strip().splitlines()[-3:])
        for num, kind in COUNT.findall(tail):
            kind = "errors" if kind.startswith("error") else kind
            counts[kind] = counts.get(kind, 0) + int(num)
        if rc:
            break
    return rc, time.monotonic() - start, counts


def aot_summary() -> str:
    """Largest shared memory per (architecture, kernel) from the AOT compile report, against the limit."""
    report_path = ROOT / "benchmarks" / "results" / "aot-compile.json"
    if not report_path.exists():
        return ""
    report = json.loads(report_path.read_text())
    worst: dict[tuple[int, str], int] = {}
    for entry in report.get("entries", {}).values():
        key = (entry["cc"], entry["kernel"])
        worst[key] = max(worst.get(key, 0), entry.get("shared") or 0)
    lines = ["shared memory per block (largest variant) vs the architecture limit:"]
    for (cc, kernel), shared in sorted(worst.items()):
        limit = report["limits_bytes"][f"sm_{cc}"]
        lines.append(f"  sm_{cc} {kernel:<15} {shared / 1024:6.1f} KiB of {limit / 1024:.0f} KiB")
    return "\n".join(lines) + "\n"


def main() -> int:
    only = set(sys.argv[1:])
    results = []
    total_start = time.monotonic()
    install = ROOT / ".venv" / ".install-seconds"
    if install.exists() and not only:
        results.append(("install", 0, float(install.read_text().strip() or 0), {}))
    # Background stages wait on the network, not the CPU: they start first, run beside the others, and are
    # reported (output and all) in their place in the list.
    pool = ThreadPoolExecutor(max_workers=max(1, len(BACKGROUND)))
    started = {}
    for name, *cmds in STAGES:
        if name in BACKGROUND and (not only or name in only):
            buffer: list[str] = []
            started[name] = (pool.submit(run_stage, name, tuple(cmds), buffer.append), buffer)
    for name, *cmds in STAGES:
        if only and name not in only:
            continue
        if name in started:
            future, buffer = started[name]
            rc, elapsed, counts = future.result()
            sys.stdout.write("".join(buffer) + f"(ran in the background beside the stages above: {elapsed:.0f} s)\n")
            results.append((name, rc, elapsed, counts))
            continue
        results.append((name, *run_stage(name, tuple(cmds))))
        if name == "aot":
            sys.stdout.write(aot_summary())
    pool.shutdown()
    total = time.monotonic() - total_start
    print("\n=== timing summary")
    width = max([12, *(len(name) for name, *_ in results)])
    print(f"{'stage':<{width}} {'status':<6} {'seconds':>8}  tests")
    totals: dict[str, int] = {}
    for name, rc, elapsed, counts in results:
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
        desc = ", ".join(f"{v} {k}" for k, v in counts.items()) or ("(make setup)" if name == "install" else "-")
        print(f"{name:<{width}} {'ok' if rc == 0 else 'FAIL':<6} {elapsed:8.1f}  {desc}")
    print(f"{'total':<{width}} {'':<6} {total:8.1f}")
    failed_stages = [name for name, rc, *_ in results if rc != 0]
    if failed_stages:
        print(f"failed stages: {', '.join(failed_stages)}")
    print(f"{totals.get('passed', 0)} passed, {totals.get('failed', 0) + totals.get('errors', 0)} failed, "
          f"{totals.get('skipped', 0)} skipped")
    return 1 if failed_stages else 0


if __name__ == "__main__":
    sys.exit(main())
