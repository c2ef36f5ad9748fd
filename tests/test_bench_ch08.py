"""`longctx-lab bench ch08` and the code it runs (longctx_lab.lm.train.mixer_experiments,
longctx_lab.course.beyond_attention): a smoke run, measured decode bytes, the compressive memory's recall."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from longctx_lab.course.beyond_attention import compressive_recall, mean_and_spread, mqar_table
from longctx_lab.lm.model import TinyLM
from longctx_lab.lm.train import mixer_experiments as mx


def test_decode_cost_measures_constant_and_growing_states():
    costs = {}
    for setup in ("attention", "ssm", "hybrid"):
        model = TinyLM(mx.model_config(setup, 16, 80), seed=0).eval()
        costs[setup] = [r["state_bytes"] for r in mx.decode_cost(model, [8, 40], steps=2, repeats=1)]
    assert costs["ssm"][0] == costs["ssm"][1] > 0
    kv_per_token = 2 * 2 * 16 * 4                    # 2 layers x (keys + values) x 16 features x float32
    assert costs["attention"][1] - costs["attention"][0] == 32 * kv_per_token
    assert costs["hybrid"][1] - costs["hybrid"][0] == 32 * kv_per_token // 2  # one attention layer of two


def test_compressive_recall_is_perfect_when_few_pairs_fill_a_wide_memory_and_falls_when_many():
    assert compressive_recall(1, head_dim=64, segment_len=2, key_scale=4.0, seed=0) == 1.0
    many = [compressive_recall(32, head_dim=16, segment_len=8, seed=s) for s in range(3)]
    few = [compressive_recall(1, head_dim=16, segment_len=8, seed=s) for s in range(3)]
    assert sum(many) < sum(few)
    with pytest.raises(ValueError, match="segments"):
        compressive_recall(0)


def test_with_rewritten_keys_the_delta_rule_overwrites_and_the_linear_update_blends():
    def mean(update, segments):
        return sum(compressive_recall(segments, head_dim=64, segment_len=8, update=update, seed=s, rewrite=True)
                   for s in range(3)) / 3

    assert mean("delta", 2) == 1.0  # every read-out nearest to the new value
    for segments in (2, 4, 8):
        assert mean("delta", segments) > mean("linear", segments)
    with pytest.raises(ValueError, match="segments must be >= 2 when rewrite"):
        compressive_recall(1, rewrite=True)


def test_passkey_accuracy_of_an_untrained_model_is_a_fraction():
    model = TinyLM(mx.model_config("linear", 16, 64), seed=0).eval()
    acc = mx.passkey_accuracy(model, 24, 3)
    assert acc in (0.0, 1 / 3, 2 / 3, 1.0)


def test_bad_setup_is_named():
    with pytest.raises(ValueError, match="setup must be one of"):
        mx.model_config("mamba", 32, 64)
    with pytest.raises(ValueError, match="values must hold"):
        mean_and_spread([])


@pytest.mark.slow
def test_quick_bench_writes_json_and_figures(tmp_path):
    from longctx_lab.cli.bench import ch08

    out = tmp_path / "ch08.json"
    args = SimpleNamespace(seeds=1, workers=1, quick=True, only=list(ch08.EXPERIMENTS), out=out, no_write=False,
                           argv=["bench", "ch08", "--quick"])
    torch.manual_seed(0)
    assert ch08.run(args) == 0
    data = json.loads(out.read_text())
    assert data["command"] == "longctx-lab bench ch08 --quick" and data["device"] == "cpu" and data["quick"]
    assert data["versions"]["torch"] and data["date"] and data["budget"]
    runs = data["experiments"]["mqar"]["runs"]
    s = ch08.QUICK["mqar"]
    assert len(runs) == len(s["setups"]) * len(s["widths"])
    assert len(mqar_table(data)) == len(runs) * len(s["pairs"])
    assert sorted(p.name for p in (tmp_path / "ch08-quick").iterdir()) == [
        "compressive.png", "decode.png", "mqar.png", "passkey.png", "performer.png"]
