"""`make setup`'s torch step: pick torch's source, install it, and write the constraints the rest of the install uses.

Run by ``.venv/bin/python`` (the Makefile). Three cases:

keep   torch is already importable in .venv (e.g. a CUDA build you installed first): it is kept, and the
       torch and triton pins are dropped from the constraints, so nothing pins triton against it.
cpu    Linux without a working ``nvidia-smi``: the CPU build (torch pinned in constraints.txt), never a
       multi-GB CUDA build. From https://download.pytorch.org/whl/cpu when a quick probe reaches it, else
       from pip's configured sources (a local wheel folder on CI) with the exact ``+cpu`` pin, which fails
       fast where no such wheel is available. Triton keeps its pin (the Triton interpreter runs the kernels).
pypi   Linux with an NVIDIA GPU, macOS: PyPI's torch at the pinned version (its local label dropped);
       the triton pin is dropped, so torch's own triton requirement decides.

The constraints written to ``.venv/constraints-used.txt`` come from tools/install_plan.locked_constraints,
the function tests/test_install_plan.py resolves against PyPI for every platform and Python.
On failure: one line saying what to do, exit 1.
"""

from __future__ import annotations

import importlib.util
import platform
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from install_plan import locked_constraints  # noqa: E402

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# bounded: a slow or blocked network costs seconds, not pip's default 15 s x 5 retries per request
PIP_NET = ["--timeout", "10", "--retries", "1"]
PROBE_SECONDS = 5.0


def pinned_torch(constraints: str) -> str:
    """The torch pin of constraints.txt, e.g. ``2.13.0+cpu``."""
    found = re.search(r"^torch==([^\s;]+)", constraints, re.M)
    if not found:
        raise SystemExit("make: constraints.txt has no torch== pin")
    return found.group(1)


def has_nvidia_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=15).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def reachable(url: str, timeout: float = PROBE_SECONDS) -> str | None:
    """None when ``url`` answers within ``timeout`` seconds, else the reason."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read(1)
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means: not usable
        return f"{type(exc).__name__}: {exc}"


def choose(torch_present: bool, system: str, gpu: bool) -> str:
    if torch_present:
        return "keep"
    if system == "Linux" and not gpu:
        return "cpu"
    return "pypi"


def pip(*args: str) -> int:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", *args]
    print("+ " + " ".join(cmd[2:]), flush=True)
    return subprocess.run(cmd).returncode


def main() -> int:
    constraints_text = (ROOT / "constraints.txt").read_text()
    used = ROOT / ".venv" / "constraints-used.txt"
    version = pinned_torch(constraints_text)
    public = version.split("+")[0]
    gpu = has_nvidia_gpu()
    mode = choose(importlib.util.find_spec("torch") is not None, platform.system(), gpu)
    if mode == "keep":
        import torch

        print(f"keeping the torch already in .venv: {torch.__version__} (torch and triton pins dropped)")
        used.write_text(locked_constraints(constraints_text, "keep"))
        return 0
    if mode == "pypi":
        used.write_text(locked_constraints(constraints_text, "pypi"))
        print(f"torch {public} from PyPI ({platform.system()}{', NVIDIA GPU' if gpu else ''})")
        if pip(*PIP_NET, "-c", str(used), f"torch=={public}"):
            print(f"make: pip could not install torch=={public} from PyPI (see above)")
            return 1
        return 0
    # cpu
    used.write_text(locked_constraints(constraints_text, "cpu"))
    start = time.monotonic()
    why = reachable(f"{CPU_INDEX}/torch/")
    print(f"probe of {CPU_INDEX}: {'reachable' if why is None else 'unreachable (' + why + ')'} "
          f"in {time.monotonic() - start:.1f} s", flush=True)
    if why is None:
        # only the CPU index is consulted for torch itself, so whatever it serves is a CPU build; its
        # dependencies come from the usual index with the rest of the install
        if pip(*PIP_NET, "--no-deps", "--index-url", CPU_INDEX, f"torch=={public}") == 0:
            return 0
        print("the CPU index answered but the install failed; trying pip's configured sources", flush=True)
    # pip's configured sources (find-links, extra indexes), exact +cpu pin: a CUDA build can never match it
    if pip(*PIP_NET, "--only-binary", "torch", "-c", str(used), f"torch=={version}") == 0:
        return 0
    print(f"make: no CPU-only torch could be installed: {CPU_INDEX} is unreachable here and pip's configured "
          f"sources have no torch=={version}. Make that index reachable and rerun make, or install a torch "
          f"yourself first (.venv/bin/pip install torch, a CUDA build of several GB) and rerun make, which "
          f"keeps it.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
