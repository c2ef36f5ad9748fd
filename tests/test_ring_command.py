"""``longctx-lab ring``: the command on 2 spawned ranks, bad input (exit 2), and the torchrun (env://) path.

Every run is bounded: the launcher's ``--timeout`` and, for the torchrun subprocess, ``subprocess.run``'s own
timeout. Sizes are tiny (32 tokens, 2 heads of 16); the numbers checked are the ones the ranks counted and the
error against float64 attention, which the command computes itself.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from longctx_lab.cli import main
from longctx_lab.distributed.cost_model import ring_communication
from longctx_lab.distributed.layouts import work_per_rank

pytestmark = pytest.mark.distributed

TINY = ["--seq-len", "32", "--heads", "2", "--kv-heads", "1", "--head-dim", "16", "--timeout", "60"]


def test_cli_two_ranks_json(capsys):
    """At head dim 24 (any head dim runs; not a power of two), forward and backward against float64."""
    rc = main(["ring", "--procs", "2", *TINY, "--head-dim", "24", "--layout", "plain", "--backward", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    report = json.loads(out)
    assert report["ok"] and report["max_error"] < 1e-4 and report["max_grad_error"] < 1e-4
    assert report["mode"].startswith("spawned")
    model = ring_communication(32, 2, kv_heads=1, head_dim=24, dtype="fp32", backward=True)
    pairs = work_per_rank(32, 2, "plain", causal=True)
    assert [r["rank"] for r in report["records"]] == [0, 1]
    for r in report["records"]:
        assert r["forward_bytes"] == model.forward_bytes and r["backward_bytes"] == model.backward_bytes
        assert r["messages"] == model.forward_messages + model.backward_messages
        assert r["pairs"] == pairs[r["rank"]]
        assert r["forward_s"] > 0 and r["backward_s"] > 0 and r["peak_rss_bytes"] > 0
        # q, k, v shards and output (2 + 1 + 1 + 2 heads), their gradients (2 + 1 + 1): 16 tokens x 24 x 4 bytes
        assert r["shard_bytes"] == (6 + 4) * 16 * 24 * 4


@pytest.mark.parametrize("argv, message", [
    (["--procs", "3"], "seq_len must be divisible by 6"),
    (["--procs", "2", "--heads", "3", "--kv-heads", "2"], "heads must be a multiple of kv_heads"),
    (["--procs", "2", "--head-dim", "0"], "head_dim must be an integer >= 1, got 0"),
    (["--procs", "0"], "procs must be an integer >= 1"),
    (["--procs", "2", "--timeout", "0"], "timeout must be > 0"),
])
def test_bad_input_exits_2(argv, message, capsys):
    assert main(["ring", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("longctx-lab ring: error: ") and message in err


def test_bad_choice_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ring", "--layout", "diagonal"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_torchrun_world_size_must_match_procs(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    assert main(["ring", "--procs", "3", *TINY]) == 2
    assert "--procs must equal torchrun's WORLD_SIZE (2)" in capsys.readouterr().err


def test_torchrun_two_cpu_ranks():
    """``torchrun --standalone --nproc-per-node 2 -m longctx_lab ring ...`` (torch.distributed.run is what
    the torchrun script runs): env:// rendezvous, gloo on CPU, rank 0 prints the table."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc-per-node", "2",
           "-m", "longctx_lab", "ring", *TINY, "--backward"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "torchrun env://, gloo, 2 ranks" in out
    assert out.count("max |out - reference|") == 1  # only rank 0 prints
    rows = [line.split() for line in out.splitlines() if re.match(r"\s+[01]\s+\d", line)]
    assert [row[0] for row in rows] == ["0", "1"]
    chunks = {row[0]: row[1] for row in rows}
    assert chunks == {"0": "0,3", "1": "1,2"}  # zigzag: an early and a late chunk each
    error = float(re.search(r"max \|out - reference\| = ([0-9.e+-]+)", out).group(1))
    assert error < 1e-4
    assert "ok)" in out


def test_readme_ring_commands_parse():
    """Every ``ring`` command in the README parses (argparse exits 2 on an unknown or bad option)."""
    from pathlib import Path

    from longctx_lab.cli import build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    lines = [line for line in readme.splitlines() if re.match(r"^(longctx-lab|torchrun) .* ring ", line + " ")
             or line.startswith("longctx-lab ring ")]
    assert len(lines) >= 3
    for line in lines:
        argv = line.replace("[--json]", "--json").split(" ring ", 1)[1].split()
        args = build_parser().parse_args(["ring", *argv])
        assert args.func.__module__ == "longctx_lab.cli.ring"
