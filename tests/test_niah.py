"""NIAH harness (longctx_lab.lm.niah): oracle and constant adapters, effective length on hand-made tables, the
TinyLM adapter, the JSON record and the heatmap PNG, and bad-input errors."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab.lm.niah import (
    RULER_THRESHOLD,
    ConstantAdapter,
    OracleAdapter,
    TinyLMAdapter,
    effective_length,
    load_json,
    plot_heatmap,
    run_niah,
    write_json,
)
from longctx_lab.lm.tasks import TASKS, VOCAB, make_sample


@pytest.mark.parametrize("task", TASKS)
def test_oracle_scores_100(task):
    depths = None if task == "cwe" else [0.0, 0.5, 1.0]
    result = run_niah(OracleAdapter(task), task, lengths=[64, 96], depths=depths, trials=3, show_progress=False)
    assert result.accuracy == [[1.0, 1.0]] * len(result.depths)
    assert len(result.records) == 2 * 3 * len(result.depths)
    assert result.effective_length() == 96


def test_constant_adapter_scores_chance():
    zero = VOCAB.digits[0]
    result = run_niah(ConstantAdapter(zero), "passkey", lengths=[32, 48], depths=[0.0, 0.5, 1.0], trials=40,
                      seed=1, show_progress=False, n_digits=1)
    n = len(result.records)
    hits = sum(r["answer"] == [zero] for r in result.records)   # samples whose passkey happens to be "0"
    overall = sum(sum(row) for row in result.accuracy) / (len(result.depths) * len(result.lengths))
    assert math.isclose(overall, hits / n)
    # chance is 1/10 for one digit: within 4 binomial standard deviations
    assert abs(overall - 0.1) < 4 * math.sqrt(0.1 * 0.9 / n)
    assert result.effective_length() is None


def test_trials_are_seeded_and_cells_differ():
    a = run_niah(OracleAdapter("passkey"), "passkey", lengths=[40], depths=[0.2], trials=4, seed=5,
                 show_progress=False)
    b = run_niah(OracleAdapter("passkey"), "passkey", lengths=[40], depths=[0.2], trials=4, seed=5,
                 show_progress=False)
    c = run_niah(OracleAdapter("passkey"), "passkey", lengths=[40], depths=[0.2], trials=4, seed=6,
                 show_progress=False)
    assert a.records == b.records
    assert [r["answer"] for r in a.records] != [r["answer"] for r in c.records]
    assert len({tuple(r["answer"]) for r in a.records}) > 1
    # the needle of each record sits where the depth rule puts it
    for r in a.records:
        assert r["needle_positions"][0] == 1 + math.floor(0.2 * (40 - 8) + 0.5)


class _FailsDeep:
    """Right when the needle is in the first half of the context, a constant otherwise."""

    def __init__(self):
        self.oracle = OracleAdapter("passkey")

    def predict(self, prompt, n):
        context_len = len(prompt) - 4
        start = prompt.index(VOCAB.passkey)
        return self.oracle.predict(prompt, n) if start - 1 <= context_len / 2 else [VOCAB.digits[0]] * n


def test_by_depth_curve():
    result = run_niah(_FailsDeep(), "passkey", lengths=[64, 128], depths=[0.0, 0.25, 0.75, 1.0], trials=3,
                      show_progress=False)
    curve = result.by_depth()
    assert curve[:2] == [1.0, 1.0] and max(curve[2:]) < 0.5
    columns = list(zip(*result.accuracy, strict=True))
    assert result.by_length() == {64: sum(columns[0]) / 4, 128: sum(columns[1]) / 4}


@pytest.mark.parametrize(("scores", "threshold", "expected"), [
    ({4096: 0.95, 8192: 0.90, 16384: 0.86, 32768: 0.70}, RULER_THRESHOLD, 16384),
    ({4096: 0.95, 8192: 0.80, 16384: 0.90}, RULER_THRESHOLD, 4096),   # does not come back after a failure
    ({1024: 0.5, 2048: 1.0}, RULER_THRESHOLD, None),
    ({128: 0.856}, RULER_THRESHOLD, 128),                              # "at or above"
    ({128: 0.8559}, RULER_THRESHOLD, None),
    ({256: 0.6, 128: 0.9, 512: 0.5}, 0.5, 512),                        # order of the dict does not matter
])
def test_effective_length_tables(scores, threshold, expected):
    assert effective_length(scores, threshold) == expected


@given(st.dictionaries(st.integers(1, 10**6), st.floats(0.0, 1.0), min_size=1, max_size=8), st.floats(0.0, 1.0))
def test_effective_length_definition(scores, threshold):
    eff = effective_length(scores, threshold)
    ordered = sorted(scores)
    if eff is None:
        assert scores[ordered[0]] < threshold
    else:
        assert all(scores[n] >= threshold for n in ordered if n <= eff)
        later = [n for n in ordered if n > eff]
        assert not later or scores[later[0]] < threshold


def test_tinylm_adapter_greedy():
    from longctx_lab.lm.model import LMConfig, TinyLM, generate

    model = TinyLM(LMConfig(vocab_size=VOCAB.size, d_model=32, n_layers=1, n_heads=2, max_positions=256), seed=0)
    adapter = TinyLMAdapter(model)
    sample = make_sample("passkey", 40, 0.5, seed=0)
    pred = adapter.predict(sample.prompt, len(sample.answer))
    assert pred == generate(model, [sample.prompt], len(sample.answer)).new_tokens[0]
    result = run_niah(adapter, "passkey", lengths=[32], depths=[0.0, 1.0], trials=2, show_progress=False)
    assert all(len(r["prediction"]) == len(r["answer"]) for r in result.records)
    with pytest.raises(ValueError, match="vocab_size must be >= VOCAB.size"):
        TinyLMAdapter(TinyLM(LMConfig(vocab_size=16, d_model=32, n_layers=1, n_heads=2), seed=0))


def test_json_and_heatmap_written(tmp_path):
    result = run_niah(_FailsDeep(), "passkey", lengths=[48, 64, 96], depths=[0.0, 0.5, 1.0], trials=2,
                      show_progress=False)
    path = write_json(result, tmp_path / "out" / "niah.json", command="pytest", model="fails-deep")
    data = json.loads(path.read_text())
    for key in ("command", "device", "date", "torch", "python", "accuracy", "by_depth", "effective_length",
                "threshold", "records"):
        assert key in data
    assert data["accuracy"] == result.accuracy and data["effective_length"] == result.effective_length()
    assert load_json(path).accuracy == result.accuracy
    png = tmp_path / "out" / "heat.png"
    ax = plot_heatmap(result, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ax.images[0].get_array().shape == (3, 3)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"depths": [0.5, 1.2]}, ValueError, r"depths must be a non-empty list of numbers in \[0, 1\]"),
    ({"depths": []}, ValueError, "depths must be"),
    ({"lengths": [4]}, ValueError, "context_len must be >= 8"),
    ({"lengths": []}, ValueError, "lengths must be a non-empty"),
    ({"lengths": [64, 64]}, ValueError, "distinct"),
    ({"trials": 0}, ValueError, "trials must be an integer >= 1"),
    ({"task": "haystack"}, ValueError, "task must be one of"),
    ({"task": "cwe"}, ValueError, "depths must be None for task 'cwe'"),
])
def test_bad_input(kwargs, error, match):
    task = kwargs.pop("task", "passkey")
    with pytest.raises(error, match=match):
        run_niah(OracleAdapter("passkey"), task, show_progress=False, **{"lengths": [64], **kwargs})


def test_bad_adapter_and_threshold():
    with pytest.raises(TypeError, match="adapter must have a predict"):
        run_niah(object(), "passkey", lengths=[64], show_progress=False)
    with pytest.raises(ValueError, match="threshold must be <= 1.0"):
        effective_length({64: 1.0}, 1.5)
    with pytest.raises(ValueError, match=r"scores\[64\] must be <= 1.0"):
        effective_length({64: 2.0})
