"""`longctx-lab bench attention`: FLOP counts, ratios, the CPU part end to end, and no GPU number without a GPU."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from longctx_lab.cli.bench import attention as bench


def parse(argv):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(argv)


def test_flop_convention():
    # FlashAttention-2 paper: 4 * seqlen^2 * head_dim * heads forward, 2.5x for backward, half for causal
    assert bench.attention_flops(2, 16, 1024, 1024, 64, causal=False) == 4 * 2 * 16 * 1024 * 1024 * 64
    assert bench.attention_flops(1, 1, 10, 10, 16, causal=True) == 4 * 100 * 16 / 2
    assert bench.attention_flops(1, 1, 10, 10, 16, causal=False, backward=True) == 2.5 * 4 * 100 * 16


def test_cpu_ratios_divide_by_the_tiled_row():
    rows = [
        {"impl": "tiled", "causal": False, "seq_len": 8, "seconds": 2.0, "peak_bytes": 100},
        {"impl": "naive", "causal": False, "seq_len": 8, "seconds": 1.0, "peak_bytes": 800},
        {"impl": "sdpa", "causal": False, "seq_len": 8, "seconds": 0.5, "peak_bytes": 50},
        {"impl": "tiled", "causal": True, "seq_len": 8, "seconds": 1.0, "peak_bytes": 0},
        {"impl": "naive", "causal": True, "seq_len": 8, "seconds": 3.0, "peak_bytes": 10},
    ]
    (full, causal) = bench.cpu_ratios(rows)
    assert full == {"causal": False, "seq_len": 8, "naive_over_tiled_memory": 8.0, "naive_over_tiled_time": 0.5,
                    "sdpa_over_tiled_memory": 0.5, "sdpa_over_tiled_time": 0.25}
    assert causal["naive_over_tiled_memory"] is None and causal["naive_over_tiled_time"] == 3.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU behaviour")
def test_gpu_part_says_no_gpu_and_records_nothing(tmp_path, capsys):
    assert bench.run(parse(["--part", "gpu", "--out-dir", str(tmp_path)])) == 0
    assert "no CUDA GPU" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # four measurement processes: about 5 s
def test_cpu_part_end_to_end(tmp_path, capsys):
    args = parse(["--part", "cpu", "--out-dir", str(tmp_path), "--cpu-lens", "512", "1024", "--cpu-repeats", "1",
                  "--cpu-compare-repeats", "0",
                  "--cpu-impls", "tiled", "naive"])
    assert bench.run(args) == 0
    payload = json.loads((tmp_path / "attention-cpu.json").read_text())
    for key in ("command", "date", "torch", "triton", "device", "machine", "rows", "ratios"):
        assert key in payload
    assert payload["device"] == "cpu"
    assert {(r["impl"], r["causal"], r["seq_len"]) for r in payload["rows"]} == {
        (i, c, n) for i in ("tiled", "naive") for c in (False, True) for n in (512, 1024)
    }
    assert all(r["seconds"] > 0 and r["peak_bytes"] >= 0 for r in payload["rows"])
    naive_1k = next(r for r in payload["rows"] if (r["impl"], r["causal"], r["seq_len"]) == ("naive", False, 1024))
    assert naive_1k["peak_bytes"] >= 1024 * 1024 * 4  # at least the fp32 score matrix was materialised
    assert "naive/tiled" in capsys.readouterr().out


def test_rejects_bad_lengths(tmp_path):
    with pytest.raises(ValueError, match=r"--cpu-lens must be positive integers, got \[0\]"):
        bench.run(parse(["--part", "cpu", "--out-dir", str(tmp_path), "--cpu-lens", "0"]))
