"""The recorded results the chapters read ship with the package (issue 21): one copy each, equal to the checkout's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import tomllib

from longctx_lab.core.recorded import CHECKOUT_DIR, SHIPPED, recorded_file, recorded_result

pytestmark = pytest.mark.lint

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import refresh_recorded  # noqa: E402


def test_package_copies_equal_the_checkouts_byte_for_byte():
    diffs = refresh_recorded.differences(ROOT)
    assert not diffs, "\n".join(diffs)


def test_each_shipped_file_reads_and_is_the_one_in_the_checkout():
    for name in SHIPPED:
        data = recorded_result(name)
        assert data["command"].startswith("longctx-lab bench"), name
        assert recorded_file(name).read_bytes() == (ROOT / CHECKOUT_DIR / name).read_bytes(), name
        assert data == json.loads((ROOT / CHECKOUT_DIR / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("bad", ["notebooks-cpu.json", "../decode-cpu.json", "", None, "__init__.py"])
def test_unknown_name_names_the_shipped_files(bad):
    with pytest.raises(ValueError, match="shipped with longctx_lab \\(attention-cpu.json, decode-cpu.json"):
        recorded_result(bad)


def test_package_data_lists_the_recorded_results():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "core/recorded/*.json" in pyproject["tool"]["setuptools"]["package-data"]["longctx_lab"]


def test_readers_use_the_shipped_copy():
    from longctx_lab.attention.measure import recorded_benchmark
    from longctx_lab.cli.bench import decode_cpu
    from longctx_lab.course import beyond_attention
    from longctx_lab.lm.extension import summary

    assert recorded_benchmark()["date"] == recorded_result("attention-cpu.json")["date"]
    assert decode_cpu.recorded_path() == recorded_file("decode-cpu.json")
    assert summary.recorded_path() == recorded_file("ch06-extension.json")
    assert summary.load_results() == recorded_result("ch06-extension.json")
    assert beyond_attention.load_retrieval() == recorded_result("retrieval.json")
    assert beyond_attention.load_ch08() == recorded_result("ch08-beyond-attention.json")


def test_pretrained_record_holds_what_chapters_3_and_5_read():
    """Chapter 3 reads the sinks runs (full, window alone, window + sinks, in that order), chapter 5 the cache
    layouts and the paged sharing: a re-recording that drops or renames them must fail here, not in a notebook."""
    data = recorded_result("pretrained-cpu.json")
    assert not data["quick"], "record the full run (no --quick) before shipping it"
    assert {"niah", "extension", "sinks", "kvcache", "attention"} <= set(data["sections"])
    for name in data["sections"]:  # each section says which run recorded it (--only keeps the others' runs)
        assert {"command", "date", "seconds", "settings", "load_average"} <= set(data["section_runs"][name]), name
    extension = data["sections"]["extension"]
    assert set(extension) == {"none", "linear", "ntk", "dynamic", "yarn"}  # chapter 6 reads each
    for scheme, grid in extension.items():
        assert min(int(n) for n in grid["by_length"]) > data["sections"]["niah"]["lengths"][-1], scheme
        assert len(grid["records"]) >= 3 * len(grid["lengths"]) * len(grid["depths"]), scheme  # 3 trials a cell
    sinks = data["sections"]["sinks"]
    names = list(sinks["runs"])
    assert names == ["full", f"window {sinks['window']}", f"window {sinks['window']} + {sinks['sinks']} sinks"]
    assert sinks["tokens"] > sinks["trained_context"]
    for run in sinks["runs"].values():
        assert run["perplexity_past_trained"] is not None and run["perplexity_past_trained"] > 1
        assert [s["start"] for s in run["segments"]][0] == 0
    kv = data["sections"]["kvcache"]
    assert set(kv["layouts"]) >= {"fp32", "int8-token", "int4-token", "int4-channel", "kivi-int4"}
    assert kv["layouts"]["fp32"]["perplexity_ratio_to_fp32"] == 1.0
    for layout in kv["layouts"].values():
        assert 0 <= layout["passkey_accuracy"] <= 1 and layout["bytes_per_token"] > 0
    assert 0 < kv["paged"]["saved"] < 1


def test_pretrained_record_holds_what_chapter_6_reads():
    from longctx_lab.lm.niah import NIAHResult

    data = recorded_result("pretrained-cpu.json")
    niah = data["sections"]["niah"]
    fields = ("task", "lengths", "depths", "trials", "seed", "options", "accuracy", "records")
    grid = NIAHResult(**{k: niah[k] for k in fields})  # as chapter 6 rebuilds it
    assert grid.effective_length() == niah["effective_length"]
    assert {str(n): a for n, a in grid.by_length().items()} == pytest.approx(niah["by_length"])
    assert len(grid.records) == len(niah["lengths"]) * len(niah["depths"]) * niah["trials"]
    for scheme, grid in data["sections"]["extension"].items():
        assert set(grid["by_length"]) == {str(n) for n in grid["lengths"]}, scheme
