"""``longctx-lab ring``: the command line of :mod:`longctx_lab.distributed.demo` (flags, errors, output).

On one machine it spawns the ranks itself (gloo over loopback); under ``torchrun`` each process is one rank
(see the module it calls).
"""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_ring(args) -> int:
    from longctx_lab.core.validate import check_number
    from longctx_lab.distributed.demo import run_ring_demo, run_under_torchrun, under_torchrun

    st_args = dict(procs=args.procs, seq_len=args.seq_len, heads=args.heads, kv_heads=args.kv_heads,
                   head_dim=args.head_dim, batch=args.batch, causal=args.causal, layout=args.layout,
                   algorithm=args.algorithm, dtype=args.dtype, backward=args.backward, seed=args.seed,
                   warmup=args.warmup, reference=args.check)
    try:
        timeout = check_number("timeout", args.timeout, exclusive_minimum=0)
        if under_torchrun():
            report = run_under_torchrun(st_args, timeout)
            if report is None:
                return 0
        else:
            st_args["procs"] = 4 if args.procs is None else args.procs
            report = run_ring_demo(**st_args, timeout=timeout)
    except (TypeError, ValueError) as e:
        print(f"longctx-lab ring: error: {e}", file=sys.stderr)
        return 2
    except (RuntimeError, TimeoutError) as e:
        print(f"longctx-lab ring: failed: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
    return 0 if report.ok else 1


def add_parser(sub) -> None:
    """Register ``longctx-lab ring`` on the subcommand parsers ``sub`` (a :class:`longctx_lab.cli.LazySubParsers`:
    the arguments are added when ``ring`` is chosen)."""
    p = sub.add_parser("ring", help="ring attention over P processes: per-rank time, memory and bytes sent, "
                                    "checked against float64 attention (also under torchrun)", fill=add_arguments)
    p.set_defaults(func=_cmd_ring)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``longctx-lab ring``'s arguments to ``p`` (imports the demo for its dtypes and algorithms)."""
    from longctx_lab.distributed.demo import DTYPES
    from longctx_lab.distributed.launcher import ALGORITHMS

    p.add_argument("--procs", type=int, default=None,
                   help="ranks to spawn on this machine (default 4); under torchrun: WORLD_SIZE (leave it out)")
    p.add_argument("--seq-len", type=int, default=256, help="tokens in the whole sequence (default 256)")
    p.add_argument("--heads", type=int, default=4, help="query heads (default 4)")
    p.add_argument("--kv-heads", type=int, default=2, help="key/value heads, dividing --heads (default 2)")
    p.add_argument("--head-dim", type=int, default=32, help="features per head (default 32)")
    p.add_argument("--batch", type=int, default=1, help="sequences (default 1)")
    p.add_argument("--causal", action=argparse.BooleanOptionalAction, default=True,
                   help="causal mask (default; --no-causal: none)")
    p.add_argument("--layout", default="zigzag", choices=("plain", "zigzag"), help="sequence layout (default zigzag)")
    p.add_argument("--algorithm", default="ring", choices=ALGORITHMS, help="ring or allgather (default ring)")
    p.add_argument("--dtype", default="float32", choices=tuple(DTYPES), help="tensor dtype (default float32)")
    p.add_argument("--backward", action="store_true", help="also time the backward pass and check the gradients")
    p.add_argument("--seed", type=int, default=0, help="seed of the random q, k, v (default 0)")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="gather the output and compare with float64 attention on rank 0 / the parent (default; "
                        "--no-check for long sequences: the reference needs seq_len^2 memory)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before the timed one (default 1)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds before the run is stopped (default 120)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
