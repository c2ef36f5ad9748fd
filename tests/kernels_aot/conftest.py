"""Ahead-of-time compile tests: real (not interpreted) Triton kernels, compiled for GPU targets.

``TRITON_INTERPRET=1`` would turn the kernels into interpreter objects that cannot be compiled, and
``tests/conftest.py`` may have set it in this process (``pytest tests`` without ``-m``). The
compiles therefore run in a child process whose environment has the variable removed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def compile_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9 warns when unset; 1 = its current default
    return env


@pytest.fixture
def report_path() -> Path:
    return REPO / "benchmarks" / "results" / "aot-compile.json"
