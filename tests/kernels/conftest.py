"""Triton-interpreter tests: ``TRITON_INTERPRET=1`` must be set before the kernels are defined.

The variable is read by ``@triton.jit`` when a kernel module is imported, so it is set here, when
pytest loads this conftest (before it imports the test modules of this folder).

It is set only when this pytest run can select ``triton``-marked tests (no ``-m``, or a ``-m``
expression that a test marked only ``triton`` satisfies). ``make test`` runs every stage over the
whole ``tests/`` tree, so this conftest is loaded in the unit, aot and notebook stages too; setting
the variable there would push every CPU ``flash_attention`` call of those stages (and of notebook
kernels, which inherit the environment) through the slow interpreter.
"""

from __future__ import annotations

import os

import pytest


def _selects_triton_tests(markexpr: str) -> bool:
    if not markexpr.strip():
        return True
    try:
        from _pytest.mark.expression import Expression

        return bool(Expression.compile(markexpr).evaluate(lambda name, **kwargs: name == "triton"))
    except Exception:  # private pytest API changed: err on the side of the interpreter
        return True


def pytest_configure(config):
    if _selects_triton_tests(config.getoption("markexpr", "") or ""):
        os.environ["TRITON_INTERPRET"] = "1"


@pytest.fixture(autouse=True)
def _require_interpreter(request):
    """A triton-marked test fails loudly if the kernels were defined without the interpreter."""
    if request.node.get_closest_marker("triton") is not None:
        from longctx_lab.kernels.dispatch import interpreter_active

        if not interpreter_active():
            pytest.fail(
                "the Triton kernels were defined without TRITON_INTERPRET=1 (something imported "
                "longctx_lab.kernels before tests/kernels/conftest.py ran); run the triton tests in "
                "their own pytest process: pytest -m triton tests"
            )
    yield
