"""The Triton FlashAttention kernels against SDPA: run by the Triton interpreter on CPU (the ``triton`` stage), or
compiled and run natively on a CUDA GPU with ``LONGCTX_LAB_KERNEL_DEVICE=cuda`` (``make gpu-check``; the
``device`` fixture of conftest.py). The references always run on the CPU.

Tolerance rule (flash-attn's): the kernel's error against a float64 reference must be at most a
small multiple of the error that PyTorch's own SDPA makes *in the same precision* against that
reference, plus a tiny absolute slack. The float64 reference is SDPA in float64 with an explicit
boolean mask built here (not with the package's mask code), GQA through ``enable_gqa``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_env import on_cuda, skip_where_triton_does_not_fit
from mask_reference import visible_mask

from longctx_lab.kernels import flash
from longctx_lab.kernels.dispatch import flash_attention, flash_attention_with_lse, select_backend

pytestmark = pytest.mark.triton

MULTIPLE = 3.0
SLACK = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}
#: bfloat16 only natively: the interpreter's bf16 tl.dot is wrong (see dispatch.BF16_INTERPRETER_ISSUE).
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if on_cuda() else [])
#: The interpreter's tile size, forced on every device for the tests that reason about which tiles are loaded.
TILE16 = {"block_m": 16, "block_n": 16}


def attention16(q, k, v, *, causal, window=None):
    """The kernels (forward and backward) with 16 x 16 tiles on CPU and GPU alike: ``(out, lse)``."""
    return flash.attention(q, k, v, causal=causal, window=window, scale=q.shape[-1] ** -0.5, config=TILE16)


def sdpa_reference(q, k, v, do, *, causal, window, scale, dtype):
    """SDPA in ``dtype``: output, LSE and the three gradients (float64 results), empty rows zeroed."""
    keep = visible_mask(q.shape[2], k.shape[2], causal, window)
    empty = ~keep.any(-1)
    keep = keep | empty[:, None]  # give empty rows a dummy key, then zero them: no NaN anywhere
    qq, kk, vv = (t.detach().to(dtype).requires_grad_() for t in (q, k, v))
    out = F.scaled_dot_product_attention(qq, kk, vv, attn_mask=keep, scale=scale, enable_gqa=True)
    out = torch.where(empty[:, None], torch.zeros((), dtype=dtype), out)
    out.backward(do.to(dtype))
    with torch.no_grad():
        kr = kk.double().repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        s = (qq.double() @ kr.transpose(-1, -2)) * scale
        lse = torch.logsumexp(s.masked_fill(~visible_mask(q.shape[2], k.shape[2], causal, window), -math.inf), -1)
    return [t.double() for t in (out, qq.grad, kk.grad, vv.grad)] + [lse]


def assert_flash_rule(name, ours, ref64, base, slack):
    err = (ours.double() - ref64).abs().max().item()
    base_err = (base - ref64).abs().max().item()
    assert math.isfinite(err), f"{name}: non-finite values in the kernel's result"
    assert err <= MULTIPLE * base_err + slack, (
        f"{name}: max error {err:.3e} vs float64 > {MULTIPLE} x SDPA's same-precision error {base_err:.3e} + {slack}"
    )


def check_against_sdpa(batch, kv_heads, group, q_len, kv_len, head_dim, causal, window, dtype, config, seed,
                       device="cpu"):
    skip_where_triton_does_not_fit(head_dim, dtype, device)
    gen = torch.Generator().manual_seed(seed)
    heads = kv_heads * group
    q = torch.randn(batch, heads, q_len, head_dim, generator=gen).to(dtype)
    k = torch.randn(batch, kv_heads, kv_len, head_dim, generator=gen).to(dtype)
    v = torch.randn(batch, kv_heads, kv_len, head_dim, generator=gen).to(dtype)
    do = torch.randn(batch, heads, q_len, head_dim, generator=gen).to(dtype)
    scale = 1.0 / math.sqrt(head_dim)

    qq, kk, vv = (t.to(device).requires_grad_() for t in (q, k, v))
    out, lse = flash.attention(qq, kk, vv, causal=causal, window=window, scale=scale, config=config)
    out.backward(do.to(device))
    out, lse = out.detach().cpu(), lse.cpu()
    assert out.dtype == dtype and out.shape == q.shape
    assert lse.dtype == torch.float32 and lse.shape == (batch, heads, q_len)
    assert kk.grad.shape == k.shape and vv.grad.shape == v.shape

    ref = sdpa_reference(q, k, v, do, causal=causal, window=window, scale=scale, dtype=torch.float64)
    base = sdpa_reference(q, k, v, do, causal=causal, window=window, scale=scale, dtype=dtype)
    grads = (t.grad.cpu() for t in (qq, kk, vv))
    for name, ours, r, b in zip(("out", "dq", "dk", "dv"), (out, *grads), ref, base, strict=False):
        assert_flash_rule(name, ours, r, b, SLACK[dtype])
    # LSE: fp32 math over the same fp16/fp32 inputs; -inf exactly where a row sees no key
    lse_ref = ref[4]
    empty = torch.isneginf(lse_ref)
    assert torch.equal(torch.isneginf(lse), empty)
    assert torch.allclose(lse[~empty].double(), lse_ref[~empty], atol=1e-4, rtol=1e-5)
    if bool(empty.any()):
        assert torch.all(out[empty.expand_as(lse)] == 0)


shapes = st.fixed_dictionaries({
    "batch": st.integers(1, 2),
    "kv_heads": st.integers(1, 2),
    "group": st.sampled_from([1, 2, 3]),
    "q_len": st.integers(1, 40),
    "kv_len": st.integers(1, 40),
    "head_dim": st.sampled_from([16, 32]),
    "causal": st.booleans(),
    "window": st.none() | st.integers(1, 24),
    "config": st.sampled_from([None, {"block_m": 16, "block_n": 32}, {"block_m": 32, "block_n": 16}]),
    "seed": st.integers(0, 2**16),
})


@settings(max_examples=24)
@given(shapes)
def test_matches_sdpa_fp32(device, case):
    check_against_sdpa(**case, dtype=torch.float32, device=device)


@settings(max_examples=24)
@given(shapes)
def test_matches_sdpa_fp16(device, case):
    check_against_sdpa(**case, dtype=torch.float16, device=device)


@pytest.mark.parametrize(
    "q_len,kv_len,causal,window",
    [
        (33, 33, True, None),  # ragged tail, diagonal tiles
        (16, 70, True, 5),  # decode-like: many key tiles skipped before the window
        (70, 16, True, None),  # q_len > kv_len: fully masked rows
        (40, 40, False, 1),  # bidirectional window of 1: the diagonal only
        (48, 48, False, None),  # tile-aligned, unmasked fast path only
    ],
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_corner_cases(q_len, kv_len, causal, window, dtype, device):
    check_against_sdpa(2, 2, 2, q_len, kv_len, 32, causal, window, dtype, None, seed=q_len * 100 + kv_len,
                       device=device)


@pytest.mark.parametrize("window", [15, 16, 17, 31, 33])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("config", [None, {"block_m": 32, "block_n": 16}, {"block_m": 16, "block_n": 32}])
def test_window_edges_on_tile_boundaries(window, causal, config, device):
    """Windows whose edges fall on, just before and just after tile boundaries, where an off-by-one in the
    split between masked edge tiles and unmasked interior tiles would show (64 = four 16-row tiles)."""
    check_against_sdpa(1, 1, 1, 64, 64, 16, causal, window, torch.float32, config, seed=window, device=device)


@pytest.mark.parametrize("shift", [-15, -14, -2, -1, 1, 2, 14, 15])
@pytest.mark.parametrize("config", [None, {"block_m": 32, "block_n": 16}, {"block_m": 16, "block_n": 32}])
def test_causal_diagonal_off_tile_boundaries(shift, config, device):
    """kv_len - q_len = shift puts the causal diagonal just off the tile grid (bottom-right alignment), where an
    off-by-one between diagonal tiles (masked) and tiles below the diagonal (unmasked) would show."""
    check_against_sdpa(1, 1, 2, 32, 32 + shift, 16, True, None, torch.float32, config, seed=100 + shift,
                       device=device)


@pytest.mark.parametrize("head_dim", [24, 40, 80, 96, 256])
@pytest.mark.parametrize("causal,window", [(True, 9), (False, None)])
def test_head_dims_padded_to_a_power_of_two(head_dim, causal, window, device):
    """Head dims that are not powers of two run in tiles padded to the next one (24 -> 32, 40 -> 64, 80 and
    96 -> 128), the padding columns masked; 256 is the widest tile. Forward, LSE and the three gradients against
    float64. Without a mask, keys 0..31 are interior tiles (the loads without a row mask) and 32..36 a ragged tail."""
    check_against_sdpa(1, 1, 2, 20, 37, head_dim, causal, window, torch.float32, None, seed=head_dim, device=device)


#: Native only: head dims 64/128 (and 80, 96, 256), the GPU's own tile configurations, sequences over many tiles.
NATIVE_CASES = [
    # batch, kv_heads, group, q_len, kv_len, head_dim, causal, window
    (2, 2, 2, 1024, 1024, 64, True, None),
    (1, 2, 4, 1000, 1000, 128, True, None),
    (1, 2, 2, 777, 1500, 128, True, 256),
    (2, 4, 1, 512, 512, 128, False, None),
    (1, 2, 2, 513, 513, 64, False, 100),
    (1, 1, 8, 1, 2048, 128, True, None),  # one decode step over a long cache
    (1, 2, 2, 700, 700, 80, True, None),  # head dims of real models padded to 128 (Phi-2: 80) and 256 (Gemma)
    (1, 2, 4, 513, 1000, 96, True, 128),
    (1, 1, 2, 600, 600, 256, False, None),
]


@pytest.mark.skipif(not on_cuda(), reason="native CUDA only (make gpu-check): too large for the interpreter")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("case", NATIVE_CASES)
def test_native_sizes_against_float64(case, dtype, device):
    check_against_sdpa(*case, dtype=dtype, config=None, seed=sum(case[:6]), device=device)


def test_fully_masked_rows_are_zero_with_zero_grads(device):
    # q_len > kv_len with causal: rows 0..q_len-kv_len-1 see no key (bottom-right alignment)
    q = torch.randn(1, 2, 40, 16, device=device, requires_grad=True)
    k = torch.randn(1, 1, 8, 16, device=device, requires_grad=True)
    v = torch.randn(1, 1, 8, 16, device=device, requires_grad=True)
    out, lse = flash_attention_with_lse(q, k, v, causal=True)
    out.sum().backward()
    assert torch.all(out[:, :, :32] == 0)
    assert torch.all(torch.isneginf(lse[:, :, :32]))
    assert torch.all(torch.isfinite(lse[:, :, 32:]))
    assert torch.all(q.grad[:, :, :32] == 0)
    for t in (out, q.grad, k.grad, v.grad):
        assert torch.all(torch.isfinite(t))


def _poison(x: torch.Tensor, rows: slice) -> torch.Tensor:
    x = x.detach().clone()
    x[:, :, rows] = float("nan")
    return x.requires_grad_()


def test_forward_and_dq_skip_key_tiles_outside_the_window(device):
    """Keys 0..47 are outside every query's window: their tiles must never be loaded (NaN would leak).

    q_len 16 (one query tile), kv_len 80, window 8: queries sit at 64..79 and see keys >= 57. A
    masked-but-loaded tile of NaN values would still poison the output through ``0 * NaN``.
    """
    q = torch.randn(1, 2, 16, 16, device=device, requires_grad=True)
    k = _poison(torch.randn(1, 2, 80, 16, device=device), slice(0, 48))
    v = _poison(torch.randn(1, 2, 80, 16, device=device), slice(0, 48))
    out, _ = attention16(q, k, v, causal=True, window=8)
    out.sum().backward()
    assert torch.all(torch.isfinite(out)) and torch.all(torch.isfinite(q.grad))
    assert torch.all(torch.isfinite(k.grad[:, :, 48:])) and torch.all(torch.isfinite(v.grad[:, :, 48:]))
    clean = [t.detach()[:, :, 48:] for t in (k, v)]
    ref, _ = attention16(q.detach(), *clean, causal=True, window=8)
    torch.testing.assert_close(out.detach(), ref)


def test_dkdv_skips_query_tiles_that_see_nothing(device):
    """q_len 48, kv_len 16, causal: query rows 0..31 see no key, so dK/dV must skip their two tiles."""
    q = _poison(torch.randn(1, 2, 48, 16, device=device), slice(0, 32))
    k = torch.randn(1, 1, 16, 16, device=device, requires_grad=True)
    v = torch.randn(1, 1, 16, 16, device=device, requires_grad=True)
    out, lse = attention16(q, k, v, causal=True)
    out.sum().backward()
    assert torch.all(out[:, :, :32] == 0) and torch.all(torch.isfinite(out))
    assert torch.all(torch.isfinite(k.grad)) and torch.all(torch.isfinite(v.grad))
    assert torch.all(q.grad[:, :, :32] == 0)


def test_dkdv_skips_query_tiles_past_the_window(device):
    """Causal window 8, 16-row tiles: keys 0..31 are seen by queries <= 38 only, so the dK/dV programs of the
    first two key tiles must never load query tiles 3 and 4 (rows 48..79). NaN in those rows of dO would reach
    dK/dV through ``P^T dO`` even where P is masked to 0, so finite, unchanged gradients prove the skip.
    """
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 2, 80, 16, generator=gen).to(device) for _ in range(3))
    do = torch.randn(1, 2, 80, 16, generator=gen).to(device)
    grads = []
    for dout in (do, _poison(do, slice(48, 80)).detach()):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        attention16(*leaves, causal=True, window=8)[0].backward(dout)
        grads.append([t.grad for t in leaves])
    (_, dk, dv), (_, dk_p, dv_p) = grads
    assert torch.all(torch.isnan(dv_p[:, :, 40:48]))  # the poison is real: key tile 2 does see rows 48..54
    torch.testing.assert_close(dk_p[:, :, :32], dk[:, :, :32], rtol=0, atol=0)
    torch.testing.assert_close(dv_p[:, :, :32], dv[:, :, :32], rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")
def test_causal_skips_tiles_above_the_diagonal(device):
    """Causal, square, 16-row tiles: query tile 0 may read key tile 0 only, so NaN keys 16.. must not reach it."""
    q, k, v = (torch.randn(1, 1, 64, 16, device=device) for _ in range(3))
    ref, ref_lse = flash.forward(q, k, v, causal=True, window=None, scale=0.25, config=TILE16)
    out, lse = flash.forward(q, _poison(k, slice(16, 64)).detach(), _poison(v, slice(16, 64)).detach(),
                             causal=True, window=None, scale=0.25, config=TILE16)
    torch.testing.assert_close(out[:, :, :16], ref[:, :, :16], rtol=0, atol=0)
    torch.testing.assert_close(lse[:, :, :16], ref_lse[:, :, :16], rtol=0, atol=0)
    assert torch.all(torch.isnan(out[:, :, 16:]))  # the poison is real: later tiles do read it


def test_non_contiguous_inputs_and_gqa_strides(device):
    # (batch, seq, heads, dim) storage viewed as (batch, heads, seq, dim), as a model's projections produce
    q = torch.randn(2, 24, 4, 32, device=device).transpose(1, 2).requires_grad_()
    k = torch.randn(2, 24, 2, 32, device=device).transpose(1, 2).requires_grad_()
    v = torch.randn(2, 24, 2, 32, device=device).transpose(1, 2).requires_grad_()
    out = flash_attention(q, k, v, causal=True)
    out.square().sum().backward()
    qc, kc, vc = (t.detach().cpu().contiguous().requires_grad_() for t in (q, k, v))
    ref = F.scaled_dot_product_attention(qc, kc, vc, is_causal=True, enable_gqa=True)
    ref.square().sum().backward()
    torch.testing.assert_close(out.cpu(), ref, atol=2e-5, rtol=1e-4)
    for a, b in ((q.grad, qc.grad), (k.grad, kc.grad), (v.grad, vc.grad)):
        torch.testing.assert_close(a.cpu(), b, atol=5e-5, rtol=1e-4)


def test_dispatcher_runs_the_kernels_and_matches_torch_path(device):
    gen = torch.Generator().manual_seed(11)
    q = torch.randn(1, 4, 30, 16, generator=gen)
    k, v = torch.randn(1, 2, 30, 16, generator=gen), torch.randn(1, 2, 30, 16, generator=gen)
    ref, _, _, _, ref_lse = sdpa_reference(q, k, v, torch.zeros_like(q), causal=True, window=7, scale=0.25,
                                           dtype=torch.float64)
    q, k, v = (t.to(device) for t in (q, k, v))
    assert select_backend(q) == ("triton" if device.type == "cuda" else "triton-interpreter")
    assert select_backend(q, "torch") == "torch"
    for backend in ("auto", "triton", "torch"):
        out, lse = flash_attention_with_lse(q, k, v, causal=True, window=7, backend=backend)
        out, lse = out.cpu().double(), lse.cpu().double()
        torch.testing.assert_close(out, ref, atol=2e-6, rtol=1e-5, msg=lambda m, b=backend: f"{b}: {m}")
        torch.testing.assert_close(lse, ref_lse, atol=2e-6, rtol=1e-5, msg=lambda m, b=backend: f"{b}: {m}")


def test_bf16_is_refused_under_the_interpreter(device):
    if device.type == "cuda":
        pytest.skip("interpreter behaviour; bf16 runs natively on CUDA (test_corner_cases)")
    q = torch.randn(1, 1, 16, 16, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match=r"bfloat16.*11584"):
        flash_attention(q, q, q)
    # the PyTorch path still accepts bf16 when asked for explicitly
    assert flash_attention(q, q, q, backend="torch").dtype == torch.bfloat16


def test_run_forward_interpreted_subprocess_matches_in_process_kernel(device):
    if device.type == "cuda":
        pytest.skip("compares the interpreter in a child process with the interpreter in this one")
    from longctx_lab.kernels.interpreter import run_forward_interpreted

    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 2, 20, 16, generator=gen) for _ in range(3))
    out, lse = run_forward_interpreted(q, k, v, causal=True, window=6, block_m=16, block_n=16)
    ref_out, ref_lse = flash.forward(q, k, v, causal=True, window=6, scale=0.25)
    assert torch.equal(out, ref_out) and torch.equal(lse, ref_lse)
    with pytest.raises(ValueError, match="block_m must be a power of two"):
        run_forward_interpreted(q, k, v, block_m=24)
    wide = torch.zeros(1, 1, 4, 300)
    with pytest.raises(ValueError, match=r"head_dim must be <= 256 on the Triton path .*, got 300"):
        run_forward_interpreted(wide, wide, wide)
