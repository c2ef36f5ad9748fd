"""Where triton is missing (macOS and Windows have no wheels), the package still works on its PyTorch paths
and says so: ``tests/no_triton`` (the ``notebooks-no-triton`` stage's shim) makes ``import triton`` fail."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from longctx_lab.kernels.triton_stand_in import StandInKernel, tl, triton

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import torch
from longctx_lab.kernels import decode_attention, flash_attention, triton_available, triton_unavailable_message
from longctx_lab.kernels.config import choose_num_splits

assert not triton_available()
print(triton_unavailable_message())
q = torch.randn(1, 4, 8, 16)
k, v = torch.randn(1, 2, 8, 16), torch.randn(1, 2, 8, 16)
assert flash_attention(q, k, v, causal=True).shape == q.shape
assert decode_attention(q[:, :, -1:], k, v, [8]).shape == (1, 4, 1, 16)
assert choose_num_splits(8, 32768, 64, 132) == 33
print("ok")
"""


def test_package_runs_its_pytorch_paths_without_triton():
    path = [str(ROOT / "tests" / "no_triton"), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    proc = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(path)})
    assert proc.returncode == 0, proc.stderr
    message, ok = proc.stdout.strip().splitlines()
    assert ok == "ok"
    assert message.startswith("Triton is not available on this platform (")
    assert "triton made unimportable for this test" in message and message.endswith("PyTorch path's result instead")


def test_message_is_empty_where_triton_runs():
    pytest.importorskip("triton")
    from longctx_lab.kernels import triton_available, triton_unavailable_message

    assert triton_available() and triton_unavailable_message() == ""


def test_stand_in_defines_a_kernel_and_refuses_to_launch_it():
    @triton.jit
    def kernel(x_ptr, n, BLOCK: tl.constexpr):
        pass

    assert isinstance(kernel, StandInKernel) and kernel.__name__ == "kernel"
    assert triton.cdiv(17, 16) == 2
    with pytest.raises(RuntimeError, match="cannot launch kernel"):
        kernel[(1,)](None, 1, BLOCK=16)
