"""tests/kernel_env.py: when a pytest run gets the Triton interpreter, and the native-CUDA switch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kernel_env import collects_kernel_tests, configure_triton_env, kernel_device, selects_triton_tests

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args,expected", [
    ([], True), (["tests"], True), (["."], True), (["tests/kernels"], True),
    (["tests/kernels/test_nan_propagation.py::test_triton_path_propagates_nan"], True),
    (["tests/test_tiled.py"], False), (["tests/chapters", "tests/test_cost.py"], False), (["notebooks"], False),
])
def test_collects_kernel_tests(args, expected):
    assert collects_kernel_tests(args, ROOT) is expected


@pytest.mark.parametrize("markexpr,expected", [
    ("", True), ("triton", True), ("triton or aot", True), ("not slow", True),
    ("not (triton or aot or distributed or notebooks or grading or slow or browser)", False), ("aot", False),
])
def test_selects_triton_tests(markexpr, expected):
    assert selects_triton_tests(markexpr) is expected


def test_configure_sets_removes_or_leaves_the_variable(monkeypatch):
    for name in ("TRITON_INTERPRET", "LONGCTX_LAB_KERNEL_DEVICE"):  # setenv first: undo restores the real value
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    configure_triton_env("not triton", ["tests"], ROOT)
    assert "TRITON_INTERPRET" not in os.environ
    configure_triton_env("triton", ["tests"], ROOT)
    assert os.environ["TRITON_INTERPRET"] == "1"
    monkeypatch.setenv("LONGCTX_LAB_KERNEL_DEVICE", "cuda")
    configure_triton_env("triton", ["tests"], ROOT)
    assert "TRITON_INTERPRET" not in os.environ
    monkeypatch.setenv("LONGCTX_LAB_KERNEL_DEVICE", "gpu")
    with pytest.raises(ValueError, match=r"LONGCTX_LAB_KERNEL_DEVICE must be 'cpu' or 'cuda', got 'gpu'"):
        kernel_device()
