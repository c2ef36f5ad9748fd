"""Chapter 1's planner panel: the static fallback prints plan(...).table(); the live panel calls the same plan."""

import pytest

from longctx_lab.core.configs import LLAMA31_8B
from longctx_lab.course import planner_widget
from longctx_lab.lm.hf.planner import plan


def test_static_fallback_prints_the_plan(capsys, monkeypatch):
    monkeypatch.setenv("LONGCTX_FRONTEND", "static")
    got = planner_widget.show_planner("Llama 3.1 8B", context=8192, gpu_mem_gib=24.0)
    out = capsys.readouterr().out
    expected = plan(LLAMA31_8B, context=8192, dtype="bf16", kv_dtype="bf16", gpu_mem_gib=24.0)
    assert got == expected
    assert expected.table() in out and "live Jupyter kernel" in out


def test_live_panel_redraws_with_plan(capsys, monkeypatch):
    seen = {}

    def fake_show_widgets(function, *, note="", **controls):
        seen.update(controls)
        function(model="Qwen2 7B Instruct (config.json)", context=4096, batch=2, dtype="bf16", kv_dtype="fp8",
                 gpu_mem_gib=24.0)
        return True

    monkeypatch.setattr(planner_widget, "show_widgets", fake_show_widgets)
    planner_widget.show_planner()
    out = capsys.readouterr().out
    assert set(seen) == {"model", "context", "batch", "dtype", "kv_dtype", "gpu_mem_gib"}
    assert plan("qwen2-7b-instruct", context=4096, batch=2, kv_dtype="fp8", gpu_mem_gib=24.0).table() in out
    assert "Llama 3.1 70B" not in out  # the live panel does not also print the static table


def test_bad_model_names_the_argument():
    with pytest.raises(ValueError, match="model must be one of"):
        planner_widget.show_planner("GPT-5")
