"""What this machine has, and what the course will use on it (``longctx-lab env``)."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import subprocess
import sys

PACKAGES = ("torch", "triton", "numpy", "matplotlib", "jupyterlab", "ipywidgets", "jupyterquiz", "nbgrader",
            "transformers")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return versions


_INTERPRETER_PROBE = r"""
import os
os.environ["TRITON_INTERPRET"] = "1"
import torch, triton, triton.language as tl

@triton.jit
def add_one(x_ptr, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    m = offs < n
    tl.store(x_ptr + offs, tl.load(x_ptr + offs, mask=m) + 1, mask=m)

x = torch.arange(5, dtype=torch.float32)
add_one[(1,)](x, 5, BLOCK=8)
assert x.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0], x
print("ok")
"""


def triton_interpreter_works(timeout: float = 120) -> tuple[bool, str]:
    """Run a tiny Triton kernel on a CPU tensor under ``TRITON_INTERPRET=1`` in a fresh process."""
    try:
        proc = subprocess.run([sys.executable, "-c", _INTERPRETER_PROBE], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "TRITON_INTERPRET": "1"})
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout} s"
    if proc.returncode == 0 and proc.stdout.strip().endswith("ok"):
        return True, "ran a kernel on CPU"
    return False, (proc.stderr.strip().splitlines() or ["failed"])[-1]


def report(*, probe_interpreter: bool = True) -> dict:
    """Everything ``longctx-lab env`` prints, as a dict."""
    import torch

    info: dict = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "packages": package_versions(),
        "cuda_available": torch.cuda.is_available(),
    }
    if info["cuda_available"]:
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = f"{props.name} (sm_{props.major}{props.minor}, {props.total_memory / 2**30:.1f} GiB)"
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
    else:
        info["gpu"] = None
    has_triton = info["packages"]["triton"] is not None
    if probe_interpreter and has_triton:
        info["triton_interpreter"] = triton_interpreter_works()
    if info["cuda_available"] and has_triton:
        info["attention_path"] = "Triton kernels on the GPU"
    else:
        info["attention_path"] = "pure-PyTorch tiled path on the CPU (same API and results as the Triton kernels)"
    return info


def format_report(info: dict) -> str:
    lines = [f"Python      {info['python']} on {info['platform']}", f"CPU threads {info['cpu_threads']}"]
    for name, version in info["packages"].items():
        lines.append(f"  {name:<13} {version or 'not installed'}")
    lines.append(f"GPU         {info['gpu'] or 'none (CUDA not available)'}")
    if "triton_interpreter" in info:
        ok, detail = info["triton_interpreter"]
        lines.append(f"Triton interpreter {'works' if ok else 'FAILS'}: {detail}")
    elif info["packages"]["triton"] is None:
        lines.append("Triton      not installed: the PyTorch path is used (pip install 'longctx-lab[gpu]')")
    lines.append(f"Attention   {info['attention_path']}")
    return "\n".join(lines)
