"""The decode-cpu benchmark: a tiny run records what the chapter reads, the loaders and plots work on it, and
the recorded result keeps its promises (bytes from the tensors equal the formulas, the 20x check).

No timing is asserted here except what the recorded file says it measured (benchmarks/README.md: speed targets
live in benchmarks, not in timed unit tests)."""

import argparse
import json

import matplotlib
import pytest

from longctx_lab.cli import build_parser
from longctx_lab.cli.bench import decode_cpu
from longctx_lab.core.cost import kv_cache_bytes

matplotlib.use("Agg")


def _tiny_args(tmp_path, **changes):
    parser = argparse.ArgumentParser()
    decode_cpu.add_arguments(parser)
    argv = ["--contexts", "32", "64", "--prefill-lens", "16", "32", "64", "128", "--decode-steps", "2",
            "--repeats", "1", "--requests", "16", "--max-len", "256", "--d-model", "32", "--heads", "2",
            "--kv-heads", "1", "--head-dim", "16", "--out-dir", str(tmp_path)]
    args = parser.parse_args(argv)
    for k, v in changes.items():
        setattr(args, k, v)
    return args


def test_tiny_run_records_the_chapter_inputs(tmp_path, capsys):
    assert decode_cpu.run(_tiny_args(tmp_path)) == 0
    data = decode_cpu.load_decode_results(tmp_path / "decode-cpu.json")
    assert {"command", "date", "device", "torch", "python", "machine", "load_average"} <= set(data)
    assert {(r["context"], r["kind"]) for r in data["decode"]} == {
        (n, k) for n in (32, 64) for k in ("contiguous", "paged", "quantized-int8")}
    assert [r["prompt_len"] for r in data["prefill"]] == [16, 32, 64, 128]
    assert {"prefill", "cached_decode", "recompute"} <= set(data["fits"])
    # The contiguous cache of the timed model holds exactly the formula's bytes (capacity = context + steps).
    m = data["model"]
    for r in data["decode"]:
        if r["kind"] == "contiguous":
            assert r["cache_bytes"] == kv_cache_bytes(r["context"] + 2, n_layers=m["n_layers"],
                                                      n_kv_heads=m["n_kv_heads"], head_dim=m["head_dim"],
                                                      dtype="fp32")
    inputs = decode_cpu.claim_inputs(data)
    assert set(inputs) == {"prefill_exponent", "decode_exponent", "measured_on"}
    from longctx_lab.course.claim_sets.ch05_kv_cache_gqa import serving_claims

    assert len(serving_claims(**inputs)) >= 2
    for plot in (decode_cpu.plot_decode_times, decode_cpu.plot_prefill_times, decode_cpu.plot_cache_bytes,
                 decode_cpu.plot_paging_waste):
        assert plot(data) is not None
    assert "speedup" in capsys.readouterr().out


def test_the_subcommand_is_decode_cpu_and_bad_arguments_are_named(tmp_path):
    args = build_parser().parse_args(["bench", "decode-cpu", "--no-write"])
    assert args.func is decode_cpu.run and args.contexts == list(decode_cpu.DEFAULT_CONTEXTS)
    with pytest.raises(ValueError, match=r"--kinds must be among .*, got \['ring'\]"):
        decode_cpu.run(_tiny_args(tmp_path, kinds=["ring"]))
    with pytest.raises(ValueError, match="--decode-steps must be an integer >= 1, got 0"):
        decode_cpu.run(_tiny_args(tmp_path, decode_steps=0))
    with pytest.raises(FileNotFoundError, match="no such file"):
        decode_cpu.load_decode_results(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text(json.dumps({"command": "x"}))
    with pytest.raises(ValueError, match="must hold the decode-cpu keys"):
        decode_cpu.load_decode_results(tmp_path / "bad.json")


def test_cache_bytes_from_the_tensors_follow_the_head_and_bit_ratios():
    rows = {(r["attention"], r["storage"]): r for r in decode_cpu.cache_bytes_rows(n_heads=8, head_dim=16, capacity=64)}
    for r in rows.values():
        assert r["measured_bytes"] == r["formula_bytes"]
    mha, gqa, mqa = (rows[(a, "fp16")]["measured_bytes"] for a in ("MHA", "GQA", "MQA"))
    assert mha == 4 * gqa == 8 * mqa  # 8, 2 and 1 KV heads
    assert rows[("MHA", "fp32")]["measured_bytes"] == 2 * mha
    # int8: one byte per value plus one fp16 scale per (token, head) of head_dim 16 values: (16 + 2) / 32 of fp16.
    assert rows[("MHA", "int8")]["measured_bytes"] * 32 == mha * 18


def test_paging_rows_split_the_contiguous_waste():
    rows = decode_cpu.paging_rows(requests=40, max_len=512, block_sizes=(4, 64))
    for r in rows:
        parts = r["contiguous_used_fraction"] + r["contiguous_reserved_fraction"] + r["contiguous_internal_fraction"]
        assert parts == pytest.approx(1.0)
        assert r["paged_slack"] < r["requests"] * r["block_size"]  # at most one partial block per sequence
        assert r["paged_waste"] < r["contiguous_waste"]
    assert rows[0]["paged_waste"] < rows[1]["paged_waste"]  # smaller blocks, smaller last-block slack


def test_the_recorded_result_keeps_its_promises():
    data = decode_cpu.load_decode_results()  # the copy shipped with the package
    assert data == decode_cpu.load_decode_results(decode_cpu.recorded_path())
    assert data["device"] == "cpu" and data["command"].startswith("longctx-lab bench decode-cpu")
    assert {r["context"] for r in data["decode"]} >= {1024, 2048, 4096, 8192, 16384}
    check = data["speedup_check"]
    at = next(r for r in data["decode"] if r["kind"] == "contiguous" and r["context"] == check["context"])
    assert check["speedup"] == at["recompute_s"] / at["cached_s"] and check["passed"] == (check["speedup"] >= 20)
    assert all(r["measured_bytes"] == r["formula_bytes"] for r in data["bytes"])
