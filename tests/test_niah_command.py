"""`longctx-lab niah` (issue 15): JSON + PNG written for a checkpoint (the shipped one, a saved one, a Hugging Face
model with a locally built tokenizer), equal to run_niah called directly; --rope applied at inference; each bad
input exits 2 before any work, with one line naming the argument."""

from __future__ import annotations

import dataclasses
import json
import shlex

import pytest

from longctx_lab.cli import main
from longctx_lab.lm.model import LMConfig, TinyLM, save_model
from longctx_lab.lm.niah import TinyLMAdapter, load_json, run_niah
from longctx_lab.lm.tasks import VOCAB

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GRID = ["--lengths", "16,24", "--depths", "0,1", "--trials", "2", "--no-progress"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random tiny LM saved as `longctx-lab train` would, trained (says its metadata) on 2-digit passkeys. Its
    large init_std makes its greedy answers depend on positions and windows (0.02 answers one constant token)."""
    config = LMConfig(vocab_size=VOCAB.size, d_model=16, n_layers=1, n_heads=2, max_positions=16, init_std=0.5)
    model = TinyLM(config, seed=3)
    directory = tmp_path_factory.mktemp("niah-command") / "ck"
    save_model(model, directory, metadata={"train": {"task": "passkey", "task_options": {"n_digits": 2}},
                                           "command": "test"})
    return model, directory


def _predictions(model, lengths=(16, 24)):
    result = run_niah(TinyLMAdapter(model.eval()), "passkey", lengths=list(lengths), depths=[0.0, 1.0], trials=2,
                      show_progress=False, n_digits=2)
    return [r["prediction"] for r in result.records]


def _run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_checkpoint_writes_json_and_png_equal_to_run_niah(checkpoint, tmp_path, capsys):
    model, directory = checkpoint
    argv = ["niah", "--checkpoint", str(directory), *GRID, "--out", str(tmp_path / "out" / "grid")]
    code, out, _ = _run(argv, capsys)
    assert code == 0
    data = json.loads((tmp_path / "out" / "grid.json").read_text())
    assert (tmp_path / "out" / "grid.png").read_bytes()[:8] == PNG_MAGIC
    assert data["command"] == shlex.join(["longctx-lab", *argv]) and data["device"] == "cpu"
    direct = run_niah(TinyLMAdapter(model), "passkey", lengths=[16, 24], depths=[0.0, 1.0], trials=2,
                      show_progress=False, n_digits=2)  # task and options default to the checkpoint's training
    written = load_json(tmp_path / "out" / "grid.json")
    assert written.accuracy == direct.accuracy and written.options == {"n_digits": 2}
    assert [r["prediction"] for r in written.records] == [r["prediction"] for r in direct.records]
    assert all(len(r["answer"]) == 2 for r in written.records)
    eff = direct.effective_length()
    assert f"effective length at 85.6% (RULER): {eff if eff is not None else 'none'}" in out
    assert data["effective_length"] == eff


def test_rope_yarn_is_applied_at_inference(checkpoint, tmp_path, capsys):
    model, directory = checkpoint
    argv = ["niah", "--checkpoint", str(directory), *GRID, "--rope", "yarn", "--factor", "2", "--out",
            str(tmp_path / "yarn")]
    code, out, _ = _run(argv, capsys)
    assert code == 0 and "yarn" in json.loads((tmp_path / "yarn.json").read_text())["model"]
    scaled = TinyLM(model.config)
    scaled.load_state_dict(model.state_dict())
    scaled.set_rope(model.config.with_rope("yarn", factor=2.0, original_max_position_embeddings=16))
    written = [r["prediction"] for r in load_json(tmp_path / "yarn.json").records]
    assert written == _predictions(scaled) and written != _predictions(model)


def test_window_is_applied_at_inference(checkpoint, tmp_path, capsys):
    model, directory = checkpoint
    code, _, _ = _run(["niah", "--checkpoint", str(directory), *GRID, "--window", "6", "--out", str(tmp_path / "w")],
                      capsys)
    windowed = TinyLM(dataclasses.replace(model.config, sliding_window=6))
    windowed.load_state_dict(model.state_dict())
    written = [r["prediction"] for r in load_json(tmp_path / "w.json").records]
    assert code == 0 and written == _predictions(windowed) and written != _predictions(model)


def test_rope_dynamic_runs_one_length_at_a_time(checkpoint, tmp_path, capsys):
    model, directory = checkpoint
    code, _, _ = _run(["niah", "--checkpoint", str(directory), *GRID, "--rope", "dynamic", "--factor", "2",
                       "--out", str(tmp_path / "dyn")], capsys)
    written = load_json(tmp_path / "dyn.json")
    assert code == 0 and written.lengths == [16, 24] and len(written.records) == 2 * 2 * 2
    # the 24-token column used the schedule of its own prompt length (24 + <bos> <q> pass <a>)
    scaled = TinyLM(model.config)
    scaled.load_state_dict(model.state_dict())
    scaled.set_rope(model.config.with_rope("dynamic", factor=2.0, max_position_embeddings=16, seq_len=28))
    at_24 = [r["prediction"] for r in written.records if r["length"] == 24]
    assert at_24 == _predictions(scaled, [24]) and at_24 != _predictions(model, [24])


def test_shipped_checkpoint_tiny_grid(tmp_path, capsys):
    from longctx_lab.lm.model import shipped_checkpoint

    try:
        shipped_checkpoint("passkey-128")
    except ValueError:
        pytest.skip("longctx_lab/lm/checkpoints/passkey-128 is absent (not trained yet)")
    argv = ["niah", "--shipped", "passkey-128", "--lengths", "128", "--depths", "0,0.5,1", "--trials", "2",
            "--no-progress", "--out", str(tmp_path / "shipped")]
    code, out, _ = _run(argv, capsys)
    assert code == 0 and (tmp_path / "shipped.png").read_bytes()[:8] == PNG_MAGIC
    data = json.loads((tmp_path / "shipped.json").read_text())
    assert data["command"] == shlex.join(["longctx-lab", *argv]) and data["task"] == "passkey"
    assert data["effective_length"] == (128 if data["by_length"]["128"] >= 0.856 else None)
    assert "effective length at 85.6% (RULER): " in out


def test_hf_model_with_a_local_tokenizer(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    from test_niah_hf import _word_tokenizer

    from longctx_lab.lm.niah.hf import HFCausalLMAdapter

    cfg = transformers.LlamaConfig(vocab_size=VOCAB.size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128)
    model, tokenizer = transformers.LlamaForCausalLM(cfg), _word_tokenizer()
    model.save_pretrained(tmp_path / "llama")
    tokenizer.save_pretrained(tmp_path / "llama")
    argv = ["niah", "--hf", str(tmp_path / "llama"), "--lengths", "24", "--depths", "0,1", "--trials", "1",
            "--max-new-text-tokens", "5", "--no-progress", "--out", str(tmp_path / "hf")]
    code, out, _ = _run(argv, capsys)
    assert code == 0 and (tmp_path / "hf.png").read_bytes()[:8] == PNG_MAGIC and "effective length" in out
    written = load_json(tmp_path / "hf.json")
    direct = run_niah(HFCausalLMAdapter(model, tokenizer, max_new_text_tokens=5), "passkey", lengths=[24],
                      depths=[0.0, 1.0], trials=1, show_progress=False)
    assert [r["prediction"] for r in written.records] == [r["prediction"] for r in direct.records]


@pytest.mark.parametrize(("extra", "named"), [
    (["--depths", "0,1.5"], "--depths"),
    (["--depths", "-0.1"], "--depths"),
    (["--depths", "nan"], "--depths"),
    (["--lengths", "4"], "--lengths"),  # shorter than the needle `pass = d d ;`
    (["--lengths", "16,16"], "--lengths"),
    (["--task", "haystack"], "--task"),
    (["--task", "cwe", "--depths", "0.5"], "--depths"),
    (["--task-option", "n_digit=3"], "--task-option"),
    (["--trials", "0"], "--trials"),
    (["--seed", "-1"], "--seed"),
    (["--device", "not-a-device"], "--device"),
    (["--threshold", "2"], "--threshold"),
    (["--hf", "some/model"], "--hf"),  # two model sources
    (["--rope", "linear"], "--factor"),
    (["--factor", "2"], "--factor"),
    (["--rope", "yarn", "--factor", "2", "--low-freq-factor", "1"], "--low-freq-factor"),
    (["--rope", "nope"], "--rope"),
    (["--rope", "yarn", "--factor", "0.5"], "--rope"),  # YaRN refuses a factor below 1
])
def test_bad_input_exits_2_naming_the_argument(checkpoint, tmp_path, capsys, extra, named):
    _, directory = checkpoint
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(["niah", "--checkpoint", str(directory), "--lengths", "16", "--no-progress",
                               "--out", str(tmp_path / "bad"), *extra]))
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1 and named in err, err
    assert err.startswith("longctx-lab niah: error:") and not list(tmp_path.iterdir())


@pytest.mark.parametrize(("argv", "named"), [
    (["--lengths", "16"], "--checkpoint --shipped --hf"),  # no model source
    (["--shipped", "no-such-model"], "--shipped"),
    (["--checkpoint", "/nonexistent/dir"], "--checkpoint"),
    (["--hf", "/nonexistent/model", "--depths", "2"], "--depths"),  # checked before anything is loaded
    (["--hf", "/nonexistent/model", "--rope", "yarn", "--factor", "2"], "--rope"),
])
def test_bad_model_source_exits_2(tmp_path, capsys, argv, named):
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(["niah", *argv, "--out", str(tmp_path / "bad")]))
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1 and named in err, err
