"""Argument checks: messages name the argument, the expectation and the value."""

import math

import pytest
import torch

from longctx_lab.core.validate import check_int, check_number, check_qkv, dtype_bytes


def test_check_int():
    assert check_int("n", 3, minimum=1) == 3
    with pytest.raises(TypeError, match="n must be an integer, got bool True"):
        check_int("n", True)
    with pytest.raises(TypeError, match="n must be an integer, got float 3.0"):
        check_int("n", 3.0)
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        check_int("n", 0, minimum=1)


def test_check_number():
    with pytest.raises(ValueError, match="x must be finite, got nan"):
        check_number("x", math.nan)
    with pytest.raises(ValueError, match="x must be > 0, got 0.0"):
        check_number("x", 0, exclusive_minimum=0)


def test_dtype_bytes():
    assert dtype_bytes("bf16") == 2 and dtype_bytes(torch.float32) == 4 and dtype_bytes("int4") == 0.5
    with pytest.raises(ValueError, match="dtype must be one of"):
        dtype_bytes("fp12")
    with pytest.raises(TypeError):
        dtype_bytes(2)


def test_check_qkv_devices_and_empty():
    q = torch.randn(1, 2, 0, 4)
    with pytest.raises(ValueError, match="non-empty"):
        check_qkv(q, torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4))
    assert check_qkv(torch.randn(2, 4, 3, 8), torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)) == (2, 4, 2, 3, 5, 8)
