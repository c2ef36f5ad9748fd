"""The ``longctx-lab`` command, at the top of the stack: it may import every layer, and none imports it.

``env``, ``plan`` and ``audit`` are defined here; ``train`` (:mod:`.train`), ``niah`` (:mod:`.niah`) and
``ring`` (:mod:`.ring`) each have a module whose ``add_parser(sub)`` registers the subcommand, with the shared
argument types in :mod:`.args`. Benchmarks are discovered in :mod:`longctx_lab.cli.bench`: each module there
exposes ``add_arguments(parser)`` and ``run(args) -> int`` and becomes ``longctx-lab bench <name>``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys


def _bench_modules() -> dict:
    import longctx_lab.cli.bench as bench

    return {m.name: m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")}


def _cmd_env(args) -> int:
    from longctx_lab.core.environment import format_report, report

    info = report(probe_interpreter=not args.no_probe)
    print(json.dumps(info, indent=2, default=str) if args.json else format_report(info))
    return 0


def _cmd_plan(args) -> int:
    from longctx_lab.lm.hf.planner import plan

    try:
        result = plan(args.config, context=args.context, batch=args.batch, dtype=args.dtype,
                      kv_dtype=args.kv_dtype, gpu_mem_gib=args.gpu_mem)
    except (TypeError, ValueError) as e:
        print(f"longctx-lab plan: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table())
    return 0


def _add_plan_parser(sub) -> None:
    from longctx_lab.lm.hf.config import shipped_configs

    p = sub.add_parser("plan", help="weights, KV cache, FLOPs per token and what fits on a GPU, from a config.json")
    shipped = ", ".join(sorted(shipped_configs()))
    p.add_argument("config", help=f"a Hugging Face config.json, or a shipped one: {shipped}")
    p.add_argument("--context", type=int, default=None, help="tokens per sequence (default: max_position_embeddings)")
    p.add_argument("--batch", type=int, default=1, help="sequences held at once (default 1)")
    p.add_argument("--dtype", default="bf16", help="weights dtype: bf16, fp16, fp32, fp8, int8, int4 (default bf16)")
    p.add_argument("--kv-dtype", default=None, help="KV-cache dtype (default: --dtype)")
    p.add_argument("--gpu-mem", type=float, default=None, metavar="GiB", help="GPU memory in GiB: what fits")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_plan)


def _cmd_audit(args) -> int:
    from longctx_lab.course.grading.audit import run

    try:
        return run(args)
    except (TypeError, ValueError) as e:
        print(f"longctx-lab audit: error: {e}", file=sys.stderr)
        return 2


def _add_audit_parser(sub) -> None:
    from longctx_lab.course.grading.audit import add_arguments

    p = sub.add_parser("audit", help="after `nbgrader collect`: flag answers that patch the grader, and damaged "
                                     "graded cells (table + CSV)")
    add_arguments(p)
    p.set_defaults(func=_cmd_audit)


#: Modules that each add one subcommand: ``add_parser(sub)`` registers it (with ``set_defaults(func=...)``).
#: A new subcommand is a module in this package; one line here makes it part of ``longctx-lab``.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "longctx_lab.cli.train",
    "longctx_lab.cli.ring",
    "longctx_lab.cli.niah",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="longctx-lab", description="Tools for the longctx-lab course.")
    sub = parser.add_subparsers(dest="command", required=True)
    env = sub.add_parser("env", help="versions, device, Triton, and what the course will use here")
    env.add_argument("--json", action="store_true", help="print JSON")
    env.add_argument("--no-probe", action="store_true", help="skip running a kernel in the Triton interpreter")
    env.set_defaults(func=_cmd_env)
    _add_plan_parser(sub)
    _add_audit_parser(sub)
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).add_parser(sub)
    bench = sub.add_parser("bench", help="run a benchmark and record JSON under benchmarks/results/")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    for name in sorted(_bench_modules()):
        module = importlib.import_module(f"longctx_lab.cli.bench.{name}")
        help_ = (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else None
        p = bench_sub.add_parser(name.replace("_", "-"), help=help_)  # module decode_cpu -> `bench decode-cpu`
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as typed, for what records it
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
