"""longctx_lab.lm.extension: teacher-forced grid scoring against greedy generation, the RoPE schedules per method,
summary statistics against hand-computed numbers, YaRN's pair table against the wavelength rule, figures, the
quick benchmark run's JSON schema, and bad-input errors."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import matplotlib
import pytest
import torch
from matplotlib.figure import Figure

from longctx_lab.lm.extension import INFERENCE_METHODS, evaluate_grid, needle_distance, plots, scheme_config, summary
from longctx_lab.lm.extension.experiments import QUICK, model_config, settings_with, yarn_pair_table
from longctx_lab.lm.model import LMConfig, TinyLM, generate
from longctx_lab.lm.niah import run_niah, trial_seed
from longctx_lab.lm.tasks import VOCAB, make_sample

matplotlib.use("Agg")


def _grid(acc, lengths=(16, 32), depths=(0.0, 1.0)):
    return {"lengths": list(lengths), "depths": list(depths), "accuracy": acc}


# ------------------------------------------------------------------ scoring
@pytest.fixture(scope="module")
def tiny_model():
    config = LMConfig(vocab_size=VOCAB.size, d_model=16, n_layers=2, n_heads=2, max_positions=32)
    return TinyLM(config, seed=3).eval()


def test_teacher_forcing_equals_greedy_generation(tiny_model):
    """Feeding a random model's own greedy tokens back, every teacher-forced argmax must be that token: the
    equivalence evaluate_grid relies on, checked against generate() with a KV cache."""
    from longctx_lab.lm.extension.evaluate import _score

    samples = [make_sample("passkey", 24, d, seed=trial_seed(0, 24, i, 0)) for i, d in enumerate([0.0, 0.5, 1.0])]
    out = generate(tiny_model, [s.prompt for s in samples], 5, keep_logits=False).new_tokens
    as_answers = [SimpleNamespace(prompt=s.prompt, answer=g) for s, g in zip(samples, out, strict=True)]
    assert _score(tiny_model, as_answers) == [True, True, True]
    flipped = [SimpleNamespace(prompt=s.prompt, answer=[g[0], *[(t + 1) % VOCAB.size for t in g[1:]]])
               for s, g in zip(samples, out, strict=True)]
    assert _score(tiny_model, flipped) == [False, False, False]


def test_evaluate_grid_matches_run_niah(tiny_model):
    from longctx_lab.lm.niah import TinyLMAdapter

    kw = dict(lengths=[16, 24], depths=[0.0, 0.5, 1.0], trials=3, seed=7, n_digits=2)
    ours = evaluate_grid(tiny_model, "passkey", batch_size=2, **kw)
    theirs = run_niah(TinyLMAdapter(tiny_model), "passkey", show_progress=False, **kw)
    assert ours.accuracy == theirs.accuracy
    assert [(r["length"], r["depth"], r["trial"], r["correct"]) for r in ours.records] == \
           [(r["length"], r["depth"], r["trial"], r["correct"]) for r in theirs.records]


def test_needle_distance_by_hand():
    s = make_sample("passkey", 20, 0.0, seed=0)  # <bos> pass = d d d d d ; ... <q> pass <a>
    assert s.needle_positions[0] == 1
    assert needle_distance(s) == len(s.prompt) - 1 - 3
    # depth 1: the 8-token needle ends the 20-token context: it starts at prompt index 1 + 12 = 13, its first
    # digit at 15; the prompt is 1 + 20 + 3 tokens (<q> pass <a>), <a> at 23: 8 back
    end = make_sample("passkey", 20, 1.0, seed=0)
    assert end.needle_positions[0] == 13 and len(end.prompt) == 24
    assert needle_distance(end) == 8
    with pytest.raises(ValueError, match="sample"):
        needle_distance(make_sample("cwe", 64, None, seed=0))


# ------------------------------------------------------------------ schedules
def test_scheme_configs_follow_the_rope_rules():
    base = model_config(64)
    inv0, _ = base.rope_frequencies()
    pi = scheme_config(base, "pi", train_len=64, eval_len=256, factor=8).rope_frequencies()[0]
    assert torch.allclose(pi, inv0 / 8)
    ntk = scheme_config(base, "ntk", train_len=64, eval_len=256, factor=8).rope_frequencies()[0]
    assert torch.allclose(ntk[-1], inv0[-1] / 8) and ntk[0] == inv0[0]  # slowest pair / 8, fastest kept
    dyn_short = scheme_config(base, "dynamic", train_len=64, eval_len=64, factor=8).rope_frequencies()[0]
    assert torch.equal(dyn_short, inv0)  # nothing changes up to the trained length
    dyn = scheme_config(base, "dynamic", train_len=64, eval_len=256, factor=8).rope_frequencies()[0]
    assert torch.allclose(dyn[-1], inv0[-1] / 4)  # effective factor eval_len / train_len
    for method in INFERENCE_METHODS:
        cfg = scheme_config(base, method, train_len=64, eval_len=128, factor=2)
        TinyLM(base).set_rope(cfg)  # only the rope fields differ
    with pytest.raises(ValueError, match="method"):
        scheme_config(base, "rerope", train_len=64, eval_len=128, factor=2)
    with pytest.raises(ValueError, match="factor"):
        scheme_config(base, "pi", train_len=64, eval_len=128, factor=0.5)
    with pytest.raises(TypeError, match="config"):
        scheme_config({"d_model": 64}, "pi", train_len=64, eval_len=128, factor=2)


def test_yarn_pair_table_against_the_wavelength_rule():
    head_dim, base, L = 16, 10_000.0, 64
    wl = [2 * math.pi * base ** (2 * i / head_dim) for i in range(head_dim // 2)]
    for beta in (2.0, 4.0, 32.0):
        t = yarn_pair_table(head_dim, base, L, beta)
        assert t["wavelengths"] == pytest.approx(wl)
        assert t["turns"] == pytest.approx([L / w for w in wl])
        assert t["short_wavelengths"] == sum(w < L / beta for w in wl)
    # By hand: the ramp's ends are at pair index 0.8686 ln(10.186 / beta) (= d ln(L / (2 pi beta)) / (2 ln base)),
    # floored for beta_fast and ceiled for beta_slow = 1 (2.016 -> 3), clamped at 0 (Hugging Face's rule).
    # beta_fast 32: -0.994 -> 0: ramp 0, 1/3, 2/3, 1...: the fastest pair is kept by the clamp although it
    # turns only 10.2 times in 64 tokens; no wavelength is below 64 / 32 = 2.
    t32 = yarn_pair_table(head_dim, base, L, 32.0)
    assert t32["ramp"] == pytest.approx([0, 1 / 3, 2 / 3, 1, 1, 1, 1, 1])
    assert (t32["kept"], t32["blended"], t32["interpolated"], t32["short_wavelengths"]) == (1, 2, 5, 0)
    # beta_fast 2: 1.414 -> 1: ramp 0, 0, 1/2, 1...; wavelengths 6.3 and 19.9 are below 32
    t2 = yarn_pair_table(head_dim, base, L, 2.0)
    assert t2["ramp"] == pytest.approx([0, 0, 0.5, 1, 1, 1, 1, 1])
    assert (t2["kept"], t2["blended"], t2["interpolated"], t2["short_wavelengths"]) == (2, 1, 5, 2)


# ------------------------------------------------------------------ summary
def test_spread_by_hand():
    assert summary.spread([0.5, 1.0, 0.0]) == {"mean": 0.5, "min": 0.0, "max": 1.0, "n": 3}
    assert summary.spread([0.25]) == {"mean": 0.25, "min": 0.25, "max": 0.25, "n": 1}
    with pytest.raises(ValueError, match="non-empty"):
        summary.spread([])
    with pytest.raises(ValueError, match="finite"):
        summary.spread([0.1, float("nan")])
    with pytest.raises(TypeError, match="numbers"):
        summary.spread(["0.1"])


def test_method_spread_by_hand():
    seeds = [{"seed": 0, "grids": {"a": _grid([[1.0, 0.5], [0.0, 0.5]])}},
             {"seed": 1, "grids": {"a": _grid([[1.0, 1.0], [1.0, 0.0]])}}]
    s = summary.method_spread(seeds)["a"]
    # by length: seed 0 -> {16: 0.5, 32: 0.5}; seed 1 -> {16: 1.0, 32: 0.5}
    assert s["by_length"][16] == {"mean": 0.75, "min": 0.5, "max": 1.0, "n": 2}
    assert s["by_length"][32] == {"mean": 0.5, "min": 0.5, "max": 0.5, "n": 2}
    assert s["mean_accuracy"] == [[1.0, 0.75], [0.5, 0.25]]
    assert summary.table_rows(seeds) == [("a", 16, 0.75, 0.5, 1.0), ("a", 32, 0.5, 0.5, 0.5)]
    text = summary.format_table(seeds)
    assert "0.75 [0.50-1.00]" in text and "L=32" in text


def test_summary_bad_input():
    with pytest.raises(ValueError, match="seed_results"):
        summary.method_spread([])
    with pytest.raises(ValueError, match="lacks method"):
        summary.method_spread([{"grids": {"a": _grid([[1, 1], [1, 1]])}}, {"grids": {"b": _grid([[1, 1], [1, 1]])}}])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        summary.method_spread([{"grids": {"a": _grid([[1.5, 1], [1, 1]])}}])
    with pytest.raises(ValueError, match="len\\(depths\\)"):
        summary.method_spread([{"grids": {"a": _grid([[1, 1]])}}])
    with pytest.raises(ValueError, match="lengths and depths"):
        summary.method_spread([{"grids": {"a": _grid([[1, 1], [1, 1]])}},
                               {"grids": {"a": _grid([[1, 1], [1, 1]], lengths=(16, 64))}}])
    with pytest.raises(ValueError, match="settings has keys"):
        settings_with({"stpes": 3})


def test_load_results_bad_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="ch06-extension"):
        summary.load_results(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="experiments"):
        summary.load_results(bad)


# ------------------------------------------------------------------ the quick run and the figures
@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    from longctx_lab.cli.bench import ch06_extension

    path = tmp_path_factory.mktemp("ch06") / "quick.json"
    args = SimpleNamespace(seeds=1, quick=True, only=list(ch06_extension.EXPERIMENTS), threads=1, out=path,
                           no_write=False, argv=["bench", "ch06-extension", "--quick", "--seeds", "1"])
    assert ch06_extension.run(args) == 0
    return json.loads(path.read_text())


def test_quick_run_schema(quick_run):
    assert quick_run["command"] == "longctx-lab bench ch06-extension --quick --seeds 1"
    for key in ("device", "date", "versions", "settings", "seconds", "load_average"):
        assert key in quick_run
    assert quick_run["quick"] is True and quick_run["complete"] is True and quick_run["seeds"] == [0]
    ex = quick_run["experiments"]
    assert set(ex) == {"scaling", "variable_length", "yarn_beta", "sliding_window"}
    assert set(ex["scaling"]["seeds"][0]["grids"]) == {*INFERENCE_METHODS, "finetune-pi-2L", "scratch-2L"}
    assert set(ex["variable_length"]["seeds"][0]["grids"]) == {"fixed", "variable"}
    assert set(ex["yarn_beta"]["seeds"][0]["grids"]) == {f"beta_fast={b:g}" for b in QUICK["beta_fast"]}
    L = QUICK["train_len"]
    assert ex["scaling"]["seeds"][0]["grids"]["none"]["lengths"] == [L * f for f in QUICK["factors"]]
    w = ex["sliding_window"]["seeds"][0]
    assert w["one_layer_reach"] == QUICK["window"] - 1 and w["reach"] == 2 * (QUICK["window"] - 1)
    assert len(w["distances"]) == len(QUICK["window_depths"])
    for e in ex.values():
        for r in e["seeds"]:
            for g in r["grids"].values():
                assert len(g["accuracy"]) == len(g["depths"])
                assert all(0.0 <= a <= 1.0 for row in g["accuracy"] for a in row)
        for s in e["spread"].values():
            assert all(0.0 <= v["min"] <= v["mean"] <= v["max"] <= 1.0 for v in s["by_length"].values())


def test_figures_from_the_quick_run(quick_run):
    ex = quick_run["experiments"]
    figs = [plots.plot_method_heatmaps(ex["scaling"]["seeds"]), plots.plot_by_length(ex["scaling"]["seeds"]),
            plots.plot_beta_fast(ex["yarn_beta"]["seeds"]), plots.plot_window_distance(ex["sliding_window"]["seeds"]),
            plots.plot_wavelengths(16, 10_000.0, 64, beta_fast=(32, 2))]
    assert all(isinstance(f, Figure) for f in figs)
    with pytest.raises(ValueError, match="methods"):
        plots.plot_method_heatmaps(ex["scaling"]["seeds"], methods=["rerope"])
    with pytest.raises(ValueError, match="seed_results"):
        plots.plot_by_length([])
    with pytest.raises(ValueError, match="distances"):
        plots.plot_window_distance(ex["scaling"]["seeds"])


def test_bad_input():
    from longctx_lab.lm.extension.experiments import run_sliding_window

    with pytest.raises(TypeError, match="model"):
        evaluate_grid("not a model")
    with pytest.raises(ValueError, match="seed"):
        run_sliding_window(-1, QUICK)
    with pytest.raises(TypeError, match="settings"):
        settings_with([1, 2])


def test_shipped_checkpoint_lookup():
    from longctx_lab.lm.model import load_metadata, shipped_checkpoint

    directory = shipped_checkpoint()
    assert (directory / "config.json").is_file() and (directory / "model.pt").is_file()
    assert load_metadata(directory)["train"]["task"] == "passkey"
    with pytest.raises(ValueError, match="passkey-128"):
        shipped_checkpoint("passkey-4096")
