"""Run the real Triton forward kernel on CPU tensors, through the Triton interpreter, in a subprocess.

``TRITON_INTERPRET=1`` only takes effect if it is set before the kernels are defined, and a
notebook kernel may already have imported ``triton`` (and :mod:`longctx_lab.kernels`) in compiled
mode. :func:`run_forward_interpreted` therefore starts a fresh Python with the variable set, runs
:func:`longctx_lab.kernels.flash.forward` there on the given tensors, and returns ``(out, lse)``.
Expect about a second of start-up plus the interpreter's own (slow) execution: keep inputs tiny.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from longctx_lab.core.validate import check_int
from longctx_lab.kernels.config import check_triton_head_dim
from longctx_lab.kernels.dispatch import BF16_INTERPRETER_ISSUE, _validate


def run_forward_interpreted(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    window: int | None = None,
    scale: float | None = None,
    block_m: int | None = None,
    block_n: int | None = None,
    timeout: float = 300.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Triton forward kernel's ``(out, lse)`` for CPU tensors, computed by the Triton interpreter.

    Same arguments, shapes and conventions as :func:`longctx_lab.kernels.flash_attention_with_lse`
    (``out`` ``(batch, heads, q_len, head_dim)``, ``lse`` ``(batch, heads, q_len)`` float32, natural log,
    ``-inf`` for rows that see no key). ``block_m``/``block_n`` override the tile sizes (default 16
    under the interpreter), e.g. to show how tiles are visited. Forward only, no autograd.
    """
    window, scale = _validate(q, k, v, causal, window, scale, "triton")
    check_triton_head_dim(q.shape[-1])
    if q.device.type != "cpu":
        raise ValueError(f"q, k and v must be CPU tensors for the interpreter, got device {q.device}")
    if q.dtype == torch.bfloat16:
        raise TypeError(
            "q, k and v must be float16 or float32 under the Triton interpreter, got dtype torch.bfloat16 "
            f"(its bf16 tl.dot returns wrong values: {BF16_INTERPRETER_ISSUE})"
        )
    config = {}
    for name, value in (("block_m", block_m), ("block_n", block_n)):
        if value is not None:
            value = check_int(name, value, minimum=16)
            if value & (value - 1):
                raise ValueError(f"{name} must be a power of two >= 16, got {value}")
            config[name] = value
    with tempfile.TemporaryDirectory(prefix="longctx-interp-") as tmp:
        src, dst = Path(tmp, "in.pt"), Path(tmp, "out.pt")
        torch.save(
            {"q": q.detach(), "k": k.detach(), "v": v.detach(), "causal": causal, "window": window,
             "scale": scale, "config": config or None},
            src,
        )
        env = {**os.environ, "TRITON_INTERPRET": "1"}
        proc = subprocess.run(
            [sys.executable, "-m", "longctx_lab.kernels.interpreter", str(src), str(dst)],
            env=env, capture_output=True, text=True, timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"the interpreter subprocess failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        result = torch.load(dst)
    return result["out"], result["lse"]


def _main(src: str, dst: str) -> None:
    from longctx_lab.kernels import flash, flash_kernels

    if not flash_kernels.is_interpreted():
        raise SystemExit("TRITON_INTERPRET=1 was not in effect when the kernels were defined")
    args = torch.load(src)
    out, lse = flash.forward(args["q"], args["k"], args["v"], causal=args["causal"], window=args["window"],
                             scale=args["scale"], config=args["config"])
    torch.save({"out": out, "lse": lse}, dst)


if __name__ == "__main__":
    _main(*sys.argv[1:3])
