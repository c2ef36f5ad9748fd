"""Chapter 6's context-extension experiments on the tiny passkey model; records benchmarks/results/ch06-extension.json.

``longctx-lab bench ch06-extension [--seeds 3] [--quick]`` runs, for each seed, the experiments of
:mod:`longctx_lab.lm.extension.experiments`: (a) RoPE scaling at inference and progressive extension against
training from scratch, (b) fixed- vs variable-length training, (c) YaRN's ``beta_fast``, (d) a sliding-window
model's accuracy vs needle distance. One fixed-length model per seed serves (a), (b) and (c). The JSON
(format: :mod:`longctx_lab.lm.extension`) holds the command, device, versions, date, the settings, the seconds,
every seed's grids and the spread over seeds. ``--quick`` is a seconds-long smoke run with tiny steps and
trials (its numbers mean nothing); it writes ``ch06-extension-quick.json`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

EXPERIMENTS = ("scaling", "variable_length", "yarn_beta", "sliding_window")

__all__ = ["EXPERIMENTS", "add_arguments", "run", "run_all"]


def add_arguments(parser) -> None:
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 (default 3)")
    parser.add_argument("--quick", action="store_true", help="tiny steps and trials: a smoke run")
    parser.add_argument("--only", nargs="+", choices=EXPERIMENTS, default=list(EXPERIMENTS),
                        help="run only these experiments; an existing JSON keeps the others (its 'runs' list "
                             "records every invocation)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for training (default 2)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default benchmarks/results/ch06-extension.json, -quick with --quick)")
    parser.add_argument("--no-write", action="store_true", help="print only, record nothing")


def _spread_of(seed_results: list[dict]) -> dict:
    from longctx_lab.lm.extension.summary import method_spread

    return {m: {"by_length": {str(k): v for k, v in s["by_length"].items()}, "mean_accuracy": s["mean_accuracy"],
                "lengths": s["lengths"], "depths": s["depths"]}
            for m, s in method_spread(seed_results).items()}


def run_all(seeds, settings: dict, *, only=EXPERIMENTS, show_progress: bool = True, on_seed=None) -> dict:
    """Every experiment in ``only`` for every seed: ``{name: {"seeds": [per-seed dict], "spread": ...}}``.
    ``on_seed(experiments)`` is called after each seed (the benchmark writes the partial JSON there)."""
    from longctx_lab.core.display import progress
    from longctx_lab.lm.extension import experiments as ex

    bad = [e for e in only if e not in EXPERIMENTS]
    if bad:
        raise ValueError(f"only must hold names among {EXPERIMENTS}, got {bad}")
    s = ex.settings_with(settings)
    out = {name: {"seeds": []} for name in only}
    plan = list(seeds)
    for seed in (progress(plan, desc="ch06-extension seeds") if show_progress else plan):
        base = None
        if {"scaling", "variable_length", "yarn_beta"} & set(only):
            base = ex.train_base(seed, s)
        for name in only:
            if name == "sliding_window":
                result = ex.run_sliding_window(seed, s)
            else:
                runner = {"scaling": ex.run_scaling, "variable_length": ex.run_variable_length,
                          "yarn_beta": ex.run_yarn_beta}[name]
                result = runner(seed, s, base=base)
                result["base_train_seconds"] = base.seconds
            out[name]["seeds"].append(result)
        for name in only:
            out[name]["spread"] = _spread_of(out[name]["seeds"])
        if on_seed is not None:
            on_seed(out)
    return out


def run(args) -> int:
    import torch

    from longctx_lab.core.environment import package_versions
    from longctx_lab.core.validate import check_int
    from longctx_lab.lm.extension import experiments as ex
    from longctx_lab.lm.extension.summary import RESULT_NAME, format_table

    n = check_int("--seeds", args.seeds, minimum=1)
    settings = dict(ex.QUICK if args.quick else ex.FULL)
    if args.threads is not None:
        settings["threads"] = check_int("--threads", args.threads, minimum=1)
    default = Path("benchmarks/results") / RESULT_NAME  # a checkout's; `make recorded` copies it into the package
    path = args.out or (default.with_name("ch06-extension-quick.json") if args.quick else default)
    argv = getattr(args, "argv", sys.argv[1:])
    started = time.perf_counter()
    load_before = os.getloadavg()

    earlier = {}
    if set(args.only) != set(EXPERIMENTS) and path.is_file():
        earlier = json.loads(path.read_text())
    kept = {k: v for k, v in earlier.get("experiments", {}).items() if k not in args.only}
    runs = earlier.get("runs") or ([{k: earlier.get(k) for k in ("command", "date", "seconds", "settings")}
                                    | {"experiments": sorted(earlier.get("experiments", {}))}] if earlier else [])

    def payload(experiments: dict, done: bool) -> dict:
        command = " ".join(["longctx-lab", *argv]) if argv and argv[0] == "bench" else " ".join(sys.argv)
        date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        seconds = round(time.perf_counter() - started, 1)
        this = {"command": command, "date": date, "seconds": seconds, "settings": settings,
                "experiments": sorted(experiments)}
        return {"command": command, "device": "cpu", "date": date, "versions": package_versions(),
                "torch_threads": settings["threads"],
                "load_average": {"before": list(load_before), "now": list(os.getloadavg())},
                "quick": bool(args.quick), "complete": done, "seeds": list(range(n)), "settings": settings,
                "seconds": seconds, "runs": [*runs, this], "experiments": {**kept, **experiments}}

    def write(experiments: dict, done: bool = False) -> None:
        if args.no_write:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload(experiments, done), indent=1) + "\n")

    before = torch.get_num_threads()
    try:
        experiments = run_all(range(n), settings, only=args.only, on_seed=write)
    finally:
        torch.set_num_threads(before)
    write(experiments, done=True)
    print(f"ch06-extension: {n} seed(s), {time.perf_counter() - started:.0f} s")
    for name, e in experiments.items():
        print(f"\n{name}:\n{format_table(e['seeds'])}")
    if not args.no_write:
        print(f"wrote {path}")
    return 0
