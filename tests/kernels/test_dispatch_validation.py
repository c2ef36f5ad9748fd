"""Bad inputs to flash_attention: the same ValueError/TypeError, naming the argument, on every backend."""

from __future__ import annotations

import pytest
import torch

from longctx_lab.kernels.dispatch import flash_attention, flash_attention_with_lse, select_backend

pytestmark = pytest.mark.triton

BACKENDS = ["auto", "triton", "torch"]


def qkv(q_shape=(1, 2, 8, 16), kv_shape=None, dtype=torch.float32):
    kv_shape = kv_shape or q_shape
    return torch.randn(q_shape, dtype=dtype), torch.randn(kv_shape, dtype=dtype), torch.randn(kv_shape, dtype=dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "make,kwargs,error,pattern",
    [
        (lambda: (torch.randn(2, 8, 16), *qkv()[1:]), {}, ValueError, r"q must have 4 dimensions"),
        (lambda: ([[0.0]], *qkv()[1:]), {}, TypeError, r"q must be a torch\.Tensor"),
        (lambda: (qkv()[0], qkv()[1].half(), qkv()[2]), {}, TypeError, r"q, k and v must share one dtype"),
        (lambda: (qkv()[0], qkv()[1], torch.randn(1, 2, 9, 16)), {}, ValueError, r"k and v must have the same shape"),
        (lambda: qkv((1, 3, 8, 16), (1, 2, 8, 16)), {}, ValueError, r"q heads \(3\) must be a multiple of k/v heads"),
        (lambda: qkv((1, 2, 8, 16), (2, 2, 8, 16)), {}, ValueError, r"k must have batch 1"),
        (lambda: tuple(t.to(torch.float8_e4m3fn) for t in qkv()), {}, TypeError,
         r"float16, bfloat16, float32 or float64, got dtype torch\.float8_e4m3fn"),
        (lambda: tuple(t.int() for t in qkv()), {}, TypeError, r"q must be a floating-point tensor"),
        (qkv, {"window": 0}, ValueError, r"window must be an integer >= 1, got 0"),
        (qkv, {"window": -3}, ValueError, r"window must be an integer >= 1, got -3"),
        (qkv, {"window": 2.5}, TypeError, r"window must be an integer"),
        (qkv, {"causal": 1}, TypeError, r"causal must be a bool"),
        (qkv, {"scale": 0.0}, ValueError, r"scale must be > 0"),
        (qkv, {"scale": "x"}, TypeError, r"scale must be a real number"),
    ],
)
def test_bad_inputs(make, kwargs, error, pattern, backend):
    q, k, v = make()
    with pytest.raises(error, match=pattern):
        flash_attention(q, k, v, backend=backend, **kwargs)
    with pytest.raises(error, match=pattern):
        flash_attention_with_lse(q, k, v, backend=backend, **kwargs)


def test_head_dim_past_256_runs_on_the_pytorch_path_and_is_refused_by_triton():
    """The dispatcher's policy for what the Triton kernels cannot take: "auto" falls back, "triton" raises."""
    q, k, v = qkv((1, 2, 5, 300))
    assert select_backend(q) == "torch"
    out = flash_attention(q, k, v, causal=True)
    torch.testing.assert_close(out, flash_attention(q, k, v, causal=True, backend="torch"), atol=1e-6, rtol=1e-5)
    for fn in (flash_attention, flash_attention_with_lse):
        with pytest.raises(ValueError, match=r"backend='triton' needs head_dim \(the last dimension of q, k and v\) "
                                             r"<= 256, .*, got head_dim 300"):
            fn(q, k, v, backend="triton")


def test_bad_backend_name():
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'triton', 'torch'\), got 'cuda'"):
        flash_attention(*qkv(), backend="cuda")
    with pytest.raises(ValueError, match=r"backend must be one of"):
        select_backend(qkv()[0], "fast")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device (CUDA)")
def test_device_mismatch_on_gpu_machines():
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"q, k and v must be on one device"):
        flash_attention(q, k.cuda(), v)


def test_device_mismatch_is_checked_before_anything_runs():
    # no GPU here: the meta device stands in for "another device"; check_qkv rejects the mix first
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"q, k and v must be on one device"):
        flash_attention(q, k.to("meta"), v)


def test_float64_runs_the_pytorch_path_and_triton_refuses_it(device):
    """float64 goes to the tiled PyTorch path (on CPU, and with backend='auto' anywhere); the Triton kernels have
    no float64, so backend='triton' raises a TypeError that says what to use instead."""
    gen = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(1, 4 if i == 0 else 2, 24, 16, generator=gen, dtype=torch.float64) for i in range(3))
    q, k, v = (t.to(device).requires_grad_() for t in (q, k, v))
    for backend in ("auto", "torch"):
        assert select_backend(q, backend) == "torch"
        out, lse = flash_attention_with_lse(q, k, v, causal=True, window=5, backend=backend)
        assert out.dtype == torch.float64 and lse.dtype == torch.float64
    with pytest.raises(TypeError, match=r"backend='triton' needs q, k and v in float16, bfloat16 or float32 .*"
                                        r"got dtype torch\.float64; use backend='torch'"):
        flash_attention(q, k, v, backend="triton")
    with pytest.raises(TypeError, match=r"torch\.float64"):
        select_backend(q, "triton")


def test_bf16_refused_under_interpreter_on_every_entry_point(device):
    if device.type == "cuda":
        pytest.skip("interpreter behaviour; bf16 runs natively on CUDA")
    q, k, v = qkv(dtype=torch.bfloat16)
    for call in (
        lambda: flash_attention(q, k, v),
        lambda: flash_attention_with_lse(q, k, v, backend="triton"),
        lambda: select_backend(q),
    ):
        with pytest.raises(TypeError, match=r"float16 or float32 under the Triton interpreter.*bfloat16"):
            call()
    from longctx_lab.kernels.interpreter import run_forward_interpreted

    with pytest.raises(TypeError, match=r"bfloat16"):
        run_forward_interpreted(q, k, v)
