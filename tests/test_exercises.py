"""exercises/ is generated from solutions/ (``make exercises``): regenerating must give no diff."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.grading


def test_exercises_match_solutions(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_exercises.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.ipynb"))
    committed = sorted(p.relative_to(ROOT / "exercises") for p in (ROOT / "exercises").rglob("*.ipynb"))
    assert generated == committed, "exercises/ is out of date: run `make exercises` and commit the result"
    for rel in generated:
        fresh = json.loads((tmp_path / rel).read_text())
        stored = json.loads((ROOT / "exercises" / rel).read_text())
        assert fresh == stored, f"exercises/{rel} differs from its source: run `make exercises` and commit"


def test_every_solution_has_a_release():
    sources = {p.parent.name for p in (ROOT / "solutions").glob("*/*.ipynb")}
    releases = {p.parent.name for p in (ROOT / "exercises").glob("*/*.ipynb")}
    assert sources == releases
