"""Chapter 5's look at the flash-decoding kernels: their source, and one run under the Triton interpreter.

:func:`decode_kernel_source` returns a ``@triton.jit`` function of :mod:`longctx_lab.kernels.decode_kernels`
as it is in the file the tests run, read with :mod:`ast` (no triton import). :func:`run_decode_interpreted`
runs :func:`longctx_lab.kernels.decode_dispatch.decode_attention_with_lse` with ``backend="triton"`` in a fresh
Python whose ``TRITON_INTERPRET=1`` is set before triton is imported (a notebook kernel may already have
imported it in compiled mode), on CPU tensors, and returns ``(out, lse)``. Keep the inputs tiny: the interpreter
executes the kernel's Python with NumPy.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from longctx_lab.core.validate import check_int, check_tensor

__all__ = ["DECODE_KERNEL_FILE", "decode_kernel_names", "decode_kernel_source", "run_decode_interpreted"]

DECODE_KERNEL_FILE = Path(__file__).resolve().parents[1] / "kernels" / "decode_kernels.py"

_SCRIPT = """
import sys
import torch
from longctx_lab.kernels.decode_dispatch import decode_attention_with_lse
from longctx_lab.kernels.dispatch import select_backend

d = torch.load(sys.argv[1])
backend = select_backend(d["q"], "triton")
out, lse = decode_attention_with_lse(d["q"], d["k"], d["v"], d["lengths"], block_table=d["block_table"],
                                     window=d["window"], num_splits=d["num_splits"], backend="triton")
torch.save({"out": out, "lse": lse, "backend": backend}, sys.argv[2])
"""


def _jit_functions() -> list[ast.FunctionDef]:
    tree = ast.parse(DECODE_KERNEL_FILE.read_text())
    return [node for node in tree.body if isinstance(node, ast.FunctionDef)
            and any(ast.unparse(d) == "triton.jit" for d in node.decorator_list)]


def decode_kernel_names() -> list[str]:
    """Names of the ``@triton.jit`` functions in ``decode_kernels.py``, in file order."""
    return [node.name for node in _jit_functions()]


def decode_kernel_source(name: str) -> str:
    """Source of the ``@triton.jit`` function ``name`` of ``decode_kernels.py``, decorator included."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    text = DECODE_KERNEL_FILE.read_text().splitlines()
    for node in _jit_functions():
        if node.name == name:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            return "\n".join(text[first - 1: node.end_lineno])
    raise ValueError(f"name must be one of {decode_kernel_names()}, got {name!r}")


def run_decode_interpreted(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lengths, *,
                           block_table: torch.Tensor | None = None, window: int | None = None,
                           num_splits: int | None = None, timeout: float = 300.0):
    """``(out, lse, backend)`` of the Triton decode kernels on CPU tensors, run by the Triton interpreter.

    Arguments as :func:`longctx_lab.kernels.decode_dispatch.decode_attention_with_lse` (``q`` ``(batch, heads,
    q_len, head_dim)``, a contiguous cache ``(batch, kv_heads, max_len, head_dim)`` or paged pools with
    ``block_table``); ``backend`` is what the dispatcher reported (``"triton-interpreter"``).
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, t, ndim=4)
        if t.device.type != "cpu":
            raise ValueError(f"{name} must be a CPU tensor for the interpreter, got device {t.device}")
    if num_splits is not None:
        num_splits = check_int("num_splits", num_splits, minimum=1)
    lengths = lengths.tolist() if isinstance(lengths, torch.Tensor) else list(lengths)
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    with tempfile.TemporaryDirectory(prefix="longctx-decode-") as tmp:
        src, dst = Path(tmp, "in.pt"), Path(tmp, "out.pt")
        torch.save({"q": q, "k": k, "v": v, "lengths": lengths, "block_table": block_table, "window": window,
                    "num_splits": num_splits}, src)
        proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(src), str(dst)], capture_output=True, text=True,
                              timeout=timeout, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"the interpreted decode kernel failed:\n{proc.stderr[-2000:]}")
        result = torch.load(dst)
    return result["out"], result["lse"], result["backend"]
