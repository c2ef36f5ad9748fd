"""Where the ``triton``-marked kernel tests run: read by ``conftest.py`` and by the test modules.

``LONGCTX_LAB_KERNEL_DEVICE`` unset or ``cpu``: the Triton interpreter on CPU tensors (the ``triton`` test
stage). ``cuda``: the kernels compiled and run natively on the GPU (``make gpu-check``).
"""

from __future__ import annotations

import os

KERNEL_DEVICE_ENV = "LONGCTX_LAB_KERNEL_DEVICE"


def kernel_device() -> str:
    """``"cpu"`` or ``"cuda"``; raises ``ValueError`` for anything else."""
    value = os.environ.get(KERNEL_DEVICE_ENV, "cpu") or "cpu"
    if value not in ("cpu", "cuda"):
        raise ValueError(f"{KERNEL_DEVICE_ENV} must be 'cpu' or 'cuda', got {value!r}")
    return value


def on_cuda() -> bool:
    return kernel_device() == "cuda"
