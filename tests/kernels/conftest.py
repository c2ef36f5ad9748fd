"""Triton-interpreter tests: ``TRITON_INTERPRET=1`` must be set before the kernels are defined.

The variable is read by ``@triton.jit`` when a kernel module is imported, so it is set here, when
pytest loads this conftest (before it imports the test modules of this folder).

It is set only when this pytest run can select ``triton``-marked tests (no ``-m``, or a ``-m``
expression that a test marked only ``triton`` satisfies). ``make test`` runs every stage over the
whole ``tests/`` tree, so this conftest is loaded in the unit, aot and notebook stages too; setting
the variable there would push every CPU ``flash_attention`` call of those stages (and of notebook
kernels, which inherit the environment) through the slow interpreter.

Native CUDA: with ``LONGCTX_LAB_KERNEL_DEVICE=cuda`` (what ``make gpu-check`` sets) the variable is
removed instead, the kernels are compiled for the GPU, and the ``device`` fixture puts the kernels'
inputs on CUDA; the references (SDPA, float64) still run on the CPU. Tests that only make sense under
the interpreter skip there.
"""

from __future__ import annotations

import os

import pytest
import torch
from kernel_env import KERNEL_DEVICE_ENV, kernel_device


def _selects_triton_tests(markexpr: str) -> bool:
    if not markexpr.strip():
        return True
    try:
        from _pytest.mark.expression import Expression

        return bool(Expression.compile(markexpr).evaluate(lambda name, **kwargs: name == "triton"))
    except Exception:  # private pytest API changed: err on the side of the interpreter
        return True


def pytest_configure(config):
    if kernel_device() == "cuda":
        os.environ.pop("TRITON_INTERPRET", None)
    elif _selects_triton_tests(config.getoption("markexpr", "") or ""):
        os.environ["TRITON_INTERPRET"] = "1"


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
