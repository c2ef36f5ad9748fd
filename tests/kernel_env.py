"""Whether and how this pytest run defines the Triton kernels: read by ``tests/conftest.py`` at start-up, by
``tests/kernels/conftest.py`` and by the kernel test modules.

``TRITON_INTERPRET=1`` is read by ``@triton.jit`` when a kernel module is imported, so it must be set before
anything imports ``longctx_lab.kernels`` (many test modules do, through ``kvcache`` or the dispatcher). The
root ``conftest.py`` therefore sets it in ``pytest_configure``, before any test module is collected, and only
when this run can select ``triton``-marked tests (no ``-m``, or a ``-m`` expression that a test marked only
``triton`` satisfies): ``make test`` runs every stage over the whole ``tests/`` tree, and setting the variable
in the unit, aot or notebook stages would push every CPU ``flash_attention`` call there (and in notebook
kernels, which inherit the environment) through the slow interpreter.

``LONGCTX_LAB_KERNEL_DEVICE``: unset or ``cpu``, the ``triton`` tests run the interpreter on CPU tensors (the
``triton`` test stage); ``cuda``, the variable is removed instead and the kernels are compiled and run
natively on the GPU (``make gpu-check``).
"""

from __future__ import annotations

import os
from pathlib import Path

KERNEL_DEVICE_ENV = "LONGCTX_LAB_KERNEL_DEVICE"


def kernel_device() -> str:
    """``"cpu"`` or ``"cuda"``; raises ``ValueError`` for anything else."""
    value = os.environ.get(KERNEL_DEVICE_ENV, "cpu") or "cpu"
    if value not in ("cpu", "cuda"):
        raise ValueError(f"{KERNEL_DEVICE_ENV} must be 'cpu' or 'cuda', got {value!r}")
    return value


def on_cuda() -> bool:
    return kernel_device() == "cuda"


def selects_triton_tests(markexpr: str) -> bool:
    """True when a test marked only ``triton`` satisfies the ``-m`` expression (or there is none)."""
    if not markexpr.strip():
        return True
    try:
        from _pytest.mark.expression import Expression

        return bool(Expression.compile(markexpr).evaluate(lambda name, **kwargs: name == "triton"))
    except Exception:  # private pytest API changed: err on the side of the interpreter
        return True


def skip_where_triton_does_not_fit(head_dim: int, dtype, device) -> None:
    """Skip a native test of the FlashAttention kernels on a GPU whose shared memory cannot hold their tiles
    (float32 at head dims past 128 before sm_80: ``longctx_lab.kernels.config.triton_fits``)."""
    if getattr(device, "type", device) != "cuda":
        return
    import pytest
    import torch

    from longctx_lab.kernels.config import triton_fits

    major, minor = torch.cuda.get_device_capability(device)
    if not triton_fits(10 * major + minor, head_dim, torch.empty((), dtype=dtype).element_size()):
        pytest.skip(f"{dtype} at head_dim {head_dim} does not fit sm_{major}{minor}'s shared memory (triton_fits)")


def collects_kernel_tests(args: list[str], rootdir: Path) -> bool:
    """True when the run's path arguments (none: the ``tests`` testpath) include ``tests/kernels`` or part of it."""
    kernels = (Path(__file__).resolve().parent / "kernels").resolve()
    for arg in args or ["tests"]:
        path = Path(arg.split("::", 1)[0])
        path = (path if path.is_absolute() else rootdir / path).resolve()
        if path == kernels or kernels in path.parents or path in kernels.parents:
            return True
    return False


def configure_triton_env(markexpr: str, args: list[str], rootdir: Path) -> None:
    """Set (interpreter), remove (native CUDA) or leave ``TRITON_INTERPRET``; call before the kernels are imported.

    Set only when the run collects ``tests/kernels`` and can select its ``triton`` tests: ``pytest
    tests/test_tiled.py`` keeps the PyTorch path, ``pytest tests`` and ``pytest -m triton tests`` get the
    interpreter.
    """
    if on_cuda():
        os.environ.pop("TRITON_INTERPRET", None)
    elif selects_triton_tests(markexpr) and collects_kernel_tests(args, rootdir):
        os.environ["TRITON_INTERPRET"] = "1"
