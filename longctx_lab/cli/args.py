"""Argument types and helpers shared by the ``longctx-lab`` subcommands (``train``, ``niah``...).

Each number type is an argparse ``type=``: it returns the value, or raises ``argparse.ArgumentTypeError`` whose
message says what was expected and what was given (argparse prefixes the argument's name).
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys

__all__ = ["command_line", "fraction", "nonnegative_float", "nonnegative_int", "one_line_errors", "positive_float",
           "positive_int"]


def command_line(prog: str, args) -> str:
    """The command as typed, ``"longctx-lab <prog> ..."`` shlex-joined (from ``args.argv``, set by
    :func:`longctx_lab.cli.main`; this process's ``sys.argv`` when absent)."""
    argv = getattr(args, "argv", None)
    if argv is None:
        argv = sys.argv[1:]
    return shlex.join(["longctx-lab", *argv]) if argv[:1] == [prog] else shlex.join(["longctx-lab", prog, *argv])


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make ``parser``'s usage errors one line on stderr, ``"<prog>: error: <message>"``, exit status 2."""

    def error(message: str):
        parser.exit(2, f"{parser.prog}: error: {message} (see {parser.prog} --help)\n")

    parser.error = error
    return parser


def _bounded(cast, accept, expected: str):
    """An argparse type: ``cast(text)`` when it parses and ``accept(value)``, else "must be <expected>"."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value

    return parse


positive_int = _bounded(int, lambda v: v >= 1, "an integer >= 1")
nonnegative_int = _bounded(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _bounded(float, lambda v: 0 < v < math.inf, "a finite number > 0")  # NaN fails both comparisons
nonnegative_float = _bounded(float, lambda v: 0 <= v < math.inf, "a finite number >= 0")
fraction = _bounded(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")
