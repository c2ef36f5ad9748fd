"""The ``longctx-lab`` command, at the top of the stack: it may import every layer, and none imports it.

``env``, ``plan`` and ``audit`` are defined here; ``train`` (:mod:`.train`), ``niah`` (:mod:`.niah`) and
``ring`` (:mod:`.ring`) each have a module whose ``add_parser(sub)`` registers the subcommand, with the shared
argument types in :mod:`.args`. Benchmarks are discovered in :mod:`longctx_lab.cli.bench`: each module there
exposes ``add_arguments(parser)`` and ``run(args) -> int`` and becomes ``longctx-lab bench <name>``.

``longctx-lab --help`` imports no compute code (no torch, numpy, matplotlib, nbformat): a subcommand's
arguments are added only when the command line chooses it (:class:`LazySubParsers`), and the modules this
module imports to register subcommands import only the standard library and :mod:`.args` at module level
(``tests/test_cli_light.py``). What a subcommand computes is imported inside the function that runs it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path

from longctx_lab import __version__

#: How to install what ``longctx-lab audit`` needs (nbformat, nbgrader): the ``grading`` extra.
GRADING_INSTALL = 'pip install "longctx-lab[grading]"'


class LazySubParsers(argparse._SubParsersAction):
    """Subcommands whose arguments are added only when the command line chooses one.

    ``add_parser(name, fill=f, ...)`` registers ``name`` with its one-line help at once (what ``--help`` lists);
    ``f(parser)`` adds its arguments, once, when parsing reaches ``name`` (or on :meth:`fill`). A ``fill`` may
    import what its defaults and choices need; listing the subcommands imports none of it.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._fillers: dict = {}

    def add_parser(self, name, *, fill=None, **kwargs):
        parser = super().add_parser(name, **kwargs)
        if fill is not None:
            self._fillers[name] = fill
        return parser

    def fill(self, name: str) -> argparse.ArgumentParser:
        """The parser of subcommand ``name``, with its arguments added."""
        filler = self._fillers.pop(name, None)
        if filler is not None:
            filler(self._name_parser_map[name])
        return self._name_parser_map[name]

    def __call__(self, parser, namespace, values, option_string=None):
        if values and values[0] in self._name_parser_map:
            self.fill(values[0])
        super().__call__(parser, namespace, values, option_string)


def _bench_modules() -> dict:
    import longctx_lab.cli.bench as bench

    return {m.name: m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")}


def _cmd_env(args) -> int:
    from longctx_lab.core.environment import format_report, report

    info = report(probe_interpreter=not args.no_probe)
    print(json.dumps(info, indent=2, default=str) if args.json else format_report(info))
    return 0


def _add_env_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--no-probe", action="store_true", help="skip running a kernel in the Triton interpreter")


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


def _add_plan_arguments(p) -> None:
    from longctx_lab.lm.hf.config import shipped_configs

    shipped = ", ".join(sorted(shipped_configs()))
    p.add_argument("config", help=f"a Hugging Face config.json, or a shipped one: {shipped}")
    p.add_argument("--context", type=int, default=None, help="tokens per sequence (default: max_position_embeddings)")
    p.add_argument("--batch", type=int, default=1, help="sequences held at once (default 1)")
    p.add_argument("--dtype", default="bf16", help="weights dtype: bf16, fp16, fp32, fp8, int8, int4 (default bf16)")
    p.add_argument("--kv-dtype", default=None, help="KV-cache dtype (default: --dtype)")
    p.add_argument("--gpu-mem", type=float, default=None, metavar="GiB", help="GPU memory in GiB: what fits")
    p.add_argument("--json", action="store_true", help="print JSON")


def _cmd_audit(args) -> int:
    try:
        import nbformat  # noqa: F401 - the audit reads notebooks with it
    except ImportError:
        print(f"longctx-lab audit: error: the audit needs nbformat, part of the grading tools; install them with "
              f"{GRADING_INSTALL}", file=sys.stderr)
        return 2
    from longctx_lab.course.grading.audit import run

    try:
        return run(args)
    except (TypeError, ValueError) as e:
        print(f"longctx-lab audit: error: {e}", file=sys.stderr)
        return 2


def _add_audit_arguments(p) -> None:
    p.add_argument("assignment", help="assignment (chapter folder), e.g. ch01_quadratic_wall")
    p.add_argument("--course", type=Path, default=Path("."), help="course directory (default: .)")
    p.add_argument("--submitted", default="submitted", help="collected submissions, relative to the course")
    p.add_argument("--source", default="solutions", help="source notebooks, relative to the course")
    p.add_argument("--csv", type=Path, default=None,
                   help="CSV to write (default: audit-<assignment>.csv in the course directory)")


#: Modules that each add one subcommand: ``add_parser(sub)`` registers it (with ``set_defaults(func=...)``),
#: its arguments through ``sub.add_parser(name, fill=...)`` (:class:`LazySubParsers`). At module level they
#: import only the standard library and :mod:`.args`. A new subcommand is a module in this package; one line
#: here makes it part of ``longctx-lab``.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "longctx_lab.cli.train",
    "longctx_lab.cli.ring",
    "longctx_lab.cli.niah",
)


def _add_bench_parsers(bench) -> None:
    bench_sub = bench.add_subparsers(dest="bench", required=True, action=LazySubParsers)
    for name in sorted(_bench_modules()):
        module = importlib.import_module(f"longctx_lab.cli.bench.{name}")  # standard library only at module level
        help_ = (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else None
        p = bench_sub.add_parser(name.replace("_", "-"), help=help_,  # module decode_cpu -> `bench decode-cpu`
                                 fill=module.add_arguments)
        p.set_defaults(func=module.run)


def build_parser() -> argparse.ArgumentParser:
    """The ``longctx-lab`` parser; a subcommand's arguments are added when parsing chooses it."""
    parser = argparse.ArgumentParser(prog="longctx-lab", description="Tools for the longctx-lab course.")
    parser.add_argument("--version", action="version", version=f"longctx-lab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, action=LazySubParsers)
    env = sub.add_parser("env", help="versions, device, Triton, and what the course will use here",
                         fill=_add_env_arguments)
    env.set_defaults(func=_cmd_env)
    plan = sub.add_parser("plan", help="weights, KV cache, FLOPs per token and what fits on a GPU, from a "
                                       "config.json", fill=_add_plan_arguments)
    plan.set_defaults(func=_cmd_plan)
    audit = sub.add_parser("audit", help="after `nbgrader collect`: flag answers that patch the grader, and "
                                         "damaged graded cells (table + CSV)", fill=_add_audit_arguments)
    audit.set_defaults(func=_cmd_audit)
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).add_parser(sub)
    sub.add_parser("bench", help="run a benchmark and record JSON under benchmarks/results/", fill=_add_bench_parsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as typed, for what records it
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
