"""The ``longctx-lab`` command: ``env`` and ``bench <name>`` (more subcommands per chapter).

Benchmarks are discovered in :mod:`longctx_lab.bench`: each module there exposes
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys


def _bench_modules() -> dict:
    import longctx_lab.bench as bench

    return {m.name: m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")}


def _cmd_env(args) -> int:
    from longctx_lab.environment import format_report, report

    info = report(probe_interpreter=not args.no_probe)
    print(json.dumps(info, indent=2, default=str) if args.json else format_report(info))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="longctx-lab", description="Tools for the longctx-lab course.")
    sub = parser.add_subparsers(dest="command", required=True)
    env = sub.add_parser("env", help="versions, device, Triton, and what the course will use here")
    env.add_argument("--json", action="store_true", help="print JSON")
    env.add_argument("--no-probe", action="store_true", help="skip running a kernel in the Triton interpreter")
    env.set_defaults(func=_cmd_env)
    bench = sub.add_parser("bench", help="run a benchmark and record JSON under benchmarks/results/")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    for name in sorted(_bench_modules()):
        module = importlib.import_module(f"longctx_lab.bench.{name}")
        p = bench_sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else None)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
