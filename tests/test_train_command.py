"""`longctx-lab train` (issue 15): a 3-step run writes a loadable checkpoint whose metadata holds the command as
typed and the flags' values; only the flags typed reach train(); bad arguments exit 2 with one line naming them."""

from __future__ import annotations

import dataclasses
import shlex

import pytest
import torch

from longctx_lab.cli import build_parser, main
from longctx_lab.cli.train import build_config
from longctx_lab.lm.model import load_metadata, load_model
from longctx_lab.lm.train import train

SHAPE = ["--d-model", "16", "--heads", "2"]
RUN = ["--batch-size", "4", "--threads", "1", "--no-progress"]
TINY_FLAGS = [*SHAPE, "--layers", "1", "--seq-len", "16", *RUN]


def test_three_steps_write_a_checkpoint_with_the_command(tmp_path, capsys):
    out = tmp_path / "run one"  # a space: the recorded command must quote it
    argv = ["train", "--out", str(out), "--steps", "3", "--seed", "4", "--kv-heads", "1", *TINY_FLAGS]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "final loss" in printed and " s" in printed
    meta = load_metadata(out)
    assert meta["command"] == shlex.join(["longctx-lab", *argv])
    assert shlex.split(meta["command"])[1:] == argv
    model = load_model(out)
    assert (model.config.d_model, model.config.n_layers, model.config.n_heads, model.config.n_kv_heads) == (16, 1, 2, 1)
    assert model.config.max_positions == 16 and model.config.name == "passkey-16"
    assert meta["train"]["steps"] == 3 and meta["train"]["seed"] == 4 and meta["train"]["seq_len"] == 16
    # the same run through the function: the CLI adds nothing of its own to the training
    direct = train(build_config(build_parser().parse_args(argv)), seq_len=16, steps=3, batch_size=4, seed=4,
                   threads=1, show_progress=False)
    state = model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in direct.model.state_dict().items())


def test_variable_lengths_task_options_and_eval(tmp_path, capsys):
    out = tmp_path / "ck"
    argv = ["train", "--out", str(out), "--steps", "2", "--seq-len", "12:20", "--task-option", "n_digits=2",
            "--eval-trials", "1", "--window", "8,none", "--layers", "2", *SHAPE, *RUN]
    assert main(argv) == 0
    meta = load_metadata(out)
    assert meta["train"]["seq_len"] == [12, 20] and meta["train"]["task_options"] == {"n_digits": 2}
    assert meta["train"]["config"]["sliding_window"] == [8, None] and meta["train"]["config"]["max_positions"] == 20
    ev = meta["eval"]
    assert ev["lengths"] == [12, 20] and ev["trials"] == 1 and ev["options"] == {"n_digits": 2}
    assert set(ev["by_length"]) == {"12", "20"} and all(0 <= a <= 1 for a in ev["by_length"].values())
    assert "NIAH passkey accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(("extra", "named"), [
    (["--seq-len", "0"], "--seq-len"),
    (["--seq-len", "20:12"], "--seq-len"),
    (["--seq-len", "abc"], "--seq-len"),
    (["--seq-len", "4"], "--seq-len"),  # shorter than the passkey needle
    (["--steps", "0"], "--steps"),
    (["--task", "haystack"], "--task"),
    (["--lr", "-1"], "--lr"),
    (["--task-option", "n_digit=3"], "--task-option"),
    (["--task-option", "n_digits"], "--task-option"),
    (["--window", "0"], "--window"),
    (["--heads", "3"], "--heads"),
    (["--init", "/nonexistent/checkpoint"], "--init"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, extra, named):
    with pytest.raises(SystemExit) as info:
        code = main(["train", "--out", str(tmp_path / "x"), *TINY_FLAGS, *extra])
        raise SystemExit(code)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("longctx-lab train: error:") and named in err, err
    assert not (tmp_path / "x").exists()


def test_init_takes_the_checkpoints_shape_and_weights(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "a"), "--steps", "1", "--kv-heads", "1", *TINY_FLAGS]) == 0
    source = load_model(tmp_path / "a")
    assert main(["train", "--out", str(tmp_path / "b"), "--steps", "1", "--lr", "1e-9", "--init",
                 str(tmp_path / "a"), "--seq-len", "24", *RUN]) == 0  # no shape flags: the checkpoint's
    tuned = load_model(tmp_path / "b")
    assert tuned.config == dataclasses.replace(source.config, max_positions=24)
    state = source.state_dict()
    assert all(torch.allclose(v, state[k], atol=1e-6) for k, v in tuned.state_dict().items())  # lr 1e-9: ~unchanged
    assert load_metadata(tmp_path / "b")["train"]["init"] == str(tmp_path / "a")
    capsys.readouterr()
    code = main(["train", "--out", str(tmp_path / "b"), "--steps", "1", "--init", str(tmp_path / "a"),
                 *TINY_FLAGS, "--d-model", "32"])
    assert code == 2 and "init must have config's shape" in capsys.readouterr().err


def test_out_is_required(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--steps", "1"])
    assert info.value.code == 2 and "--out" in capsys.readouterr().err


def test_shape_defaults_are_the_passkey_model():
    from longctx_lab.lm.train import PASSKEY_MODEL, PASSKEY_RECIPE

    config = build_config(build_parser().parse_args(["train", "--out", "x"]))
    assert {k: getattr(config, k) for k in PASSKEY_MODEL} == PASSKEY_MODEL
    assert config.max_positions == max(PASSKEY_RECIPE["seq_len"]) and config.sliding_window == (None,) * config.n_layers
    wider = build_config(build_parser().parse_args(["train", "--out", "x", "--d-model", "32", "--seq-len", "32:96"]))
    assert (wider.d_model, wider.mlp_hidden, wider.max_positions, wider.name) == (32, 4 * 32, 96, "passkey-96")


def test_several_tasks_record_a_task_list_and_an_eval_per_task(tmp_path, capsys):
    out = tmp_path / "multi"
    argv = ["train", "--out", str(out), "--steps", "2", "--task", "passkey,cwe", "--task-option", "n_digits=2",
            "--eval-trials", "1", *SHAPE, "--layers", "1", "--seq-len", "48", *RUN]
    assert main(argv) == 0
    meta = load_metadata(out)
    assert meta["train"]["task"] == ["passkey", "cwe"] and meta["train"]["task_options"] == {"n_digits": 2}
    assert load_model(out).config.name == "multi-48"
    evals = meta["eval"]["tasks"]
    assert [e["task"] for e in evals] == ["passkey", "cwe"]
    assert evals[0]["options"] == {"n_digits": 2} and evals[1]["depths"] == [None]  # cwe: no needle, no depth
    printed = capsys.readouterr().out
    assert "NIAH passkey accuracy by length (1 trials x 5 depths)" in printed
    assert "NIAH cwe accuracy by length (1 trials)" in printed


@pytest.mark.parametrize(("extra", "named"), [
    (["--task", "passkey,nope"], "--task"),
    (["--task", "passkey,passkey"], "--task"),
    (["--task", "passkey,cwe", "--task-option", "n_keys=2"], "--task-option"),
    (["--task", "passkey,cwe", "--seq-len", "52"], "--seq-len"),  # cwe cannot fill 52 tokens with 3 common words
])
def test_several_tasks_bad_arguments_exit_2(tmp_path, capsys, extra, named):
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(["train", "--out", str(tmp_path / "x"), *SHAPE, "--layers", "1", "--seq-len", "48",
                               *RUN, *extra]))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert named in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x").exists()
