"""`longctx-lab bench decode`: the bytes convention, the bandwidth lookup, no GPU number without a GPU, and the
benchmark's inputs (contiguous, paged, SDPA) built on CPU and run under the Triton interpreter."""

from __future__ import annotations

import argparse

import pytest
import torch

from longctx_lab.cli.bench import decode as bench


def parse(argv):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(argv)


def test_bytes_convention():
    # Llama-3-8B attention, one sequence of 1K tokens, fp16: K and V once, then q and out
    kv = 2 * 1 * 8 * 1024 * 128 * 2
    assert bench.decode_bytes(1, 32, 8, 1, 1024, 128, 2) == kv + 2 * 32 * 128 * 2
    assert bench.decode_bytes(4, 32, 8, 1, 1024, 128, 2) == 4 * bench.decode_bytes(1, 32, 8, 1, 1024, 128, 2)


def test_hbm_bandwidth_lookup():
    assert bench.hbm_bandwidth("NVIDIA H100 80GB HBM3")[0] == 3.35e12
    assert bench.hbm_bandwidth("NVIDIA A100-SXM4-80GB")[0] == 2039e9
    assert bench.hbm_bandwidth("NVIDIA H200")[0] == 4.8e12
    assert bench.hbm_bandwidth("Tesla T4")[0] == 320e9
    assert bench.hbm_bandwidth("NVIDIA GeForce RTX 4090") is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU behaviour")
def test_no_gpu_says_so_and_records_nothing(tmp_path, capsys):
    assert bench.run(parse(["--out-dir", str(tmp_path)])) == 0
    assert "no CUDA GPU" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv,pattern",
    [
        (["--contexts", "0"], r"--contexts must be positive integers, got \[0\]"),
        (["--batches", "4", "-1"], r"--batches must be positive integers, got \[-1\]"),
        (["--heads", "12", "--kv-heads", "8"], r"--heads must be a multiple of --kv-heads \(8\), got 12"),
        (["--page-size", "0"], r"--page-size must be >= 1, got 0"),
        (["--memory-fraction", "1.5"], r"--memory-fraction must be in \(0, 1\], got 1.5"),
    ],
)
def test_rejects_bad_arguments(argv, pattern, tmp_path):
    with pytest.raises(ValueError, match=pattern):
        bench.run(parse(["--out-dir", str(tmp_path), *argv]))


def test_head_dim_takes_what_the_kernels_take(capsys):
    from longctx_lab.cli.bench.attention import TRITON_HEAD_DIM_MAX
    from longctx_lab.kernels.config import MAX_TRITON_HEAD_DIM

    assert TRITON_HEAD_DIM_MAX == MAX_TRITON_HEAD_DIM
    assert [parse(["--head-dim", d]).head_dim for d in ("1", "80", "96", "256")] == [1, 80, 96, 256]
    for bad in ("0", "257", "x"):
        with pytest.raises(SystemExit):
            parse(["--head-dim", bad])
        assert f"must be an integer in [1, 256] (the head dims of the Triton kernels), got '{bad}'" in (
            capsys.readouterr().err)


@pytest.mark.triton
@pytest.mark.parametrize("impl", ["triton", "triton-paged", "sdpa"])
@pytest.mark.parametrize("q_len", [1, 3])
def test_benchmark_inputs_agree_with_sdpa_under_the_interpreter(impl, q_len, device):
    """The timed call, the validated first call and the SDPA reference of each row, on tiny shapes (page 16)."""
    call, check, reference, info = bench._build(impl, 2, 4, 2, q_len, 40, 16, torch.float32, 16, device=device)
    out = check()
    assert out.shape == (2, 4, q_len, 16)
    torch.testing.assert_close(call(), out, atol=1e-6, rtol=1e-5)
    if impl.startswith("triton"):
        assert info["num_splits"] >= 1
        torch.testing.assert_close(out, reference(), atol=2e-5, rtol=1e-4)
