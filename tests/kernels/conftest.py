"""Kernel tests: the ``device`` fixture, and a check that the kernels were defined the way this run asked for.

``TRITON_INTERPRET`` itself is set (or removed) by ``tests/conftest.py`` at start-up, before any test module
imports the kernels: see ``tests/kernel_env.py``. With ``LONGCTX_LAB_KERNEL_DEVICE=cuda`` (what ``make
gpu-check`` sets) the kernels are compiled for the GPU and the ``device`` fixture puts their inputs on CUDA;
the references (SDPA, float64) still run on the CPU. Tests that only make sense under the interpreter skip there.
"""

from __future__ import annotations

import pytest
import torch
from kernel_env import KERNEL_DEVICE_ENV, kernel_device


@pytest.fixture(scope="session")
def device() -> torch.device:
    """Where the triton-marked tests put the kernels' inputs: CPU (interpreter) or CUDA (native)."""
    return torch.device(kernel_device())


@pytest.fixture(autouse=True)
def _require_interpreter(request):
    """A triton-marked test fails loudly if the kernels were not defined the way this run asked for:
    under the interpreter (default), or compiled for a CUDA GPU that is there (``LONGCTX_LAB_KERNEL_DEVICE=cuda``)."""
    if request.node.get_closest_marker("triton") is not None:
        from longctx_lab.kernels.dispatch import interpreter_active, triton_available

        if kernel_device() == "cuda":
            if not torch.cuda.is_available():
                pytest.fail(f"{KERNEL_DEVICE_ENV}=cuda, but torch.cuda.is_available() is False")
            if not triton_available() or interpreter_active():
                pytest.fail(f"{KERNEL_DEVICE_ENV}=cuda needs the compiled Triton kernels: triton "
                            f"{'is' if triton_available() else 'is not'} importable, interpreter "
                            f"{'on' if interpreter_active() else 'off'}")
        elif not interpreter_active():
            pytest.fail(
                "the Triton kernels were defined without TRITON_INTERPRET=1 (something imported "
                "longctx_lab.kernels before tests/kernels/conftest.py ran); run the triton tests in "
                "their own pytest process: pytest -m triton tests"
            )
    yield
