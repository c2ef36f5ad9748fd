"""The chapter reads the kernels through kernel_source: it must return exactly the file's functions."""

import pytest

from longctx_lab.kernels.source import KERNEL_FILE, kernel_names, kernel_source


def test_returns_each_kernel_with_its_decorator():
    names = kernel_names()
    assert {"attn_fwd_kernel", "_fwd_tiles", "_key_range", "_dkdv_tiles", "attn_bwd_dq_kernel"} <= set(names)
    for name in names:
        src = kernel_source(name)
        assert src.startswith("@triton.jit") and f"def {name}(" in src
        assert src in KERNEL_FILE.read_text()


def test_unknown_name_is_an_error():
    with pytest.raises(ValueError, match="name must be one of"):
        kernel_source("attn_magic_kernel")
    with pytest.raises(TypeError):
        kernel_source(3)
