"""The console script: `longctx-lab env` and the bench registry."""

import json
import subprocess
import sys
from pathlib import Path

from longctx_lab.cli import build_parser, main

BIN = Path(sys.executable).parent


def test_env_json(capsys):
    assert main(["env", "--json", "--no-probe"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["packages"]["torch"]
    assert info["cuda_available"] in (True, False)
    assert "attention_path" in info


def test_console_script_runs_and_probes_the_interpreter():
    out = subprocess.run([str(BIN / "longctx-lab"), "env"], capture_output=True, text=True, check=True).stdout
    assert "torch" in out and "Attention" in out
    assert "Triton interpreter works" in out


def test_bench_subcommands_are_discovered():
    parser = build_parser()
    args = parser.parse_args(["bench", "notebooks", "--no-budget"])
    assert args.no_budget and callable(args.func)
