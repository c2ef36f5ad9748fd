"""Execute every course notebook on this machine and record its wall time and peak memory.

Each notebook runs in a fresh kernel (nbclient). While it runs, the resident memory of the whole
process tree (the kernel and anything it starts) is sampled every 50 ms with psutil; the largest
sum is the notebook's peak RSS. Results go to ``benchmarks/results/notebooks-cpu.json`` with the
command, machine, versions and date. The course budget (docs/conventions.md, "Notebooks") is 120 s and 2 GiB per
notebook; the run fails if a notebook errors or exceeds it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

BUDGET_SECONDS = 120.0
BUDGET_BYTES = 2 * 2**30


def add_arguments(parser) -> None:
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: notebooks/*.ipynb)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/notebooks-cpu.json"))
    parser.add_argument("--executed-dir", type=Path, default=None,
                        help="also save the executed notebooks here (e.g. for the HTML book)")
    parser.add_argument("--no-budget", action="store_true", help="record only, do not fail over budget")


class _TreeSampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak, self._stop_event = pid, interval, 0, threading.Event()

    def run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self._stop_event.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def execute(path: Path, executed_dir: Path | None = None) -> dict:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    start = time.monotonic()
    error = None
    with client.setup_kernel():
        sampler = _TreeSampler(client.km.provisioner.process.pid)
        sampler.start()
        try:
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
        except Exception as exc:  # a cell error is recorded, not raised: the report lists every notebook
            error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        finally:
            peak = sampler.stop()
    seconds = time.monotonic() - start
    if executed_dir is not None:
        executed_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, executed_dir / path.name)
    return {"notebook": str(path), "seconds": round(seconds, 2), "peak_rss_bytes": peak,
            "peak_rss_gib": round(peak / 2**30, 3), "error": error}


def run(args) -> int:
    import psutil
    import torch

    paths = args.paths or sorted(Path("notebooks").glob("ch*.ipynb"))
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 2
    rows = []
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        def tqdm(x, **_):
            return x
    for path in tqdm(paths, desc="notebooks"):
        row = execute(Path(path), args.executed_dir)
        over = []
        if row["seconds"] > BUDGET_SECONDS:
            over.append(f"time {row['seconds']} s > {BUDGET_SECONDS:.0f} s")
        if row["peak_rss_bytes"] > BUDGET_BYTES:
            over.append(f"memory {row['peak_rss_gib']} GiB > 2 GiB")
        row["over_budget"] = over
        rows.append(row)
        print(f"{path}: {row['seconds']:.1f} s, peak RSS {row['peak_rss_gib']:.2f} GiB"
              f"{' ERROR ' + row['error'] if row['error'] else ''}{' OVER BUDGET: ' + '; '.join(over) if over else ''}")
    total = sum(r["seconds"] for r in rows)
    result = {
        "benchmark": "notebooks-cpu",
        "command": "longctx-lab bench notebooks " + " ".join(sys.argv[3:]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "budget": {"seconds_per_notebook": BUDGET_SECONDS, "bytes_per_notebook": BUDGET_BYTES,
                   "seconds_all_chapters": 600},
        "total_seconds": round(total, 1),
        "notebooks": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"total {total:.1f} s for {len(rows)} notebooks; wrote {args.out}")
    failed = [r for r in rows if r["error"]]
    over = [r for r in rows if r["over_budget"]] if not args.no_budget else []
    if total > 600 and not args.no_budget:
        print("all chapters together exceed the 10-minute budget", file=sys.stderr)
        return 1
    return 1 if failed or over else 0
