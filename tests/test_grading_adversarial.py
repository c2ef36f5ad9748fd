"""Adversarial submissions through the real nbgrader round trip (chapter 1).

One temporary course, one ``nbgrader autograde`` over several students, each submission the solution
with the adversarial change(s) of the issue. Each case must give 0 for the task it attacks (with a
readable message) or be flagged by ``longctx-lab audit``; none may hang the grader, and the tasks it does
not attack keep their marks. ``generate_feedback`` must not show hidden-test source.
"""

from __future__ import annotations

import copy
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from test_grading_rules import ROOT, answered, cell_of

sys.path.insert(0, str(ROOT))
from tools.make_exercises import venv_env  # noqa: E402

pytestmark = pytest.mark.grading
A = "ch01_quadratic_wall"
BIN = Path(sys.executable).parent
FULL = {"task1": 3, "task2": 3, "task3": 2}
SOLUTION = {c.metadata["nbgrader"]["grade_id"]: c.source
            for c in nbformat.read(ROOT / "solutions" / A / f"{A}.ipynb", as_version=4).cells
            if c.metadata.get("nbgrader", {}).get("solution")}
KV_SIG = "def kv_cache_bytes(seq_len, n_layers, n_kv_heads, head_dim, bytes_per_element, batch=1):\n"
WRONG_KV = KV_SIG + "    return int(batch * n_layers * n_kv_heads * head_dim * seq_len * bytes_per_element)\n"


def _cells_changed(nb, removed=(), stripped=(), duplicated=(), unknown=()):
    for gid in removed:
        nb.cells.remove(cell_of(nb, gid))
    for gid in stripped:
        cell_of(nb, gid).metadata.pop("nbgrader")
    for gid in unknown:
        extra = copy.deepcopy(cell_of(nb, "task1_tests"))
        extra.metadata["nbgrader"]["grade_id"] = gid
        nb.cells.append(extra)
    for gid in duplicated:
        cell = cell_of(nb, gid)
        nb.cells.insert(nb.cells.index(cell) + 1, copy.deepcopy(cell))
    return nb


# student: (answer replacements, structural change, scores that must hold, audit flags that must appear,
#           a message that must appear in the autograded notebook)
CASES = {
    "clean": ({}, {}, FULL, set(), None),
    "delegates": ({
        "task1_kv_cache": KV_SIG + "    from longctx_lab.core.cost import kv_cache_bytes as k\n"
                          "    return k(seq_len, n_layers=n_layers, n_kv_heads=n_kv_heads, head_dim=head_dim, "
                          "dtype='fp16', batch=batch)\n",
        "task3_largest_n": "def largest_n(budget_bytes, n_heads, bytes_per_element):\n    raise KeyboardInterrupt\n"},
        {}, {"task1": 0, "task2": 3, "task3": 0}, {"package"}, "own implementation"),
    "exits_and_spins": ({
        "task1_kv_cache": KV_SIG + "    import sys\n    sys.exit(1)\n",
        "task2_flops": "def attention_forward_flops(seq_len, head_dim, n_heads, causal):\n    while True:\n"
                       "        pass\n"},
        {}, {"task1": 0, "task2": 0, "task3": 2}, {"exit"}, "did not finish within 5 s"),
    "kills_and_wedges_the_kernel": ({
        "task2_flops": "import os\nos._exit(1)\n" + SOLUTION["task2_flops"],
        "task3_largest_n": "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"},
        {}, {"task1": 3, "task2": 0, "task3": 0}, {"exit", "signal"},
        ("ended the Python kernel", "did not stop when interrupted")),
    "patches_grading": ({"task1_kv_cache": WRONG_KV + "grading.check_close = lambda *a, **k: None\n"}, {},
                        {}, {"grading"}, None),
    "patches_math": ({"task3_largest_n": "import math\nmath.isclose = lambda *a, **k: True\n"
                                         "def largest_n(budget_bytes, n_heads, bytes_per_element):\n"
                                         "    return int((budget_bytes / (n_heads * bytes_per_element)) ** 0.5) + 1\n"},
                     {}, {"task1": 3, "task2": 3, "task3": 0}, {"patch"}, None),
    "input_transformer": ({"task1_kv_cache": WRONG_KV + "get_ipython().input_transformers_cleanup.append("
                                                        "lambda lines: [])\n"}, {}, {}, {"ipython"}, None),
    # nbgrader puts deleted and stripped graded cells back from the source, and grades one copy of a copied one
    "damaged_cells": ({}, {"removed": ["task2_tests"], "stripped": ["task3_tests"], "duplicated": ["task1_tests"],
                           "unknown": ["task9_tests"]}, FULL, {"missing", "stripped", "duplicated", "unknown"}, None),
}


def _run(*cmd, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, env=venv_env(), timeout=900)
    if check:
        assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("adversarial")
    shutil.copy(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copytree(ROOT / "solutions" / A, root / "solutions" / A)
    db = f"--db=sqlite:///{root}/gradebook.db"
    _run(BIN / "nbgrader", "generate_assignment", A, "--force", db, cwd=root)
    for student, (answers, change, _, _, _) in CASES.items():
        nb = _cells_changed(answered(A, answers, root / "exercises"), **change)
        target = root / "submitted" / student / A / f"{A}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
    start = time.monotonic()
    # a shorter cell limit than the course's 60 s keeps this test quick; the behaviour does not depend on it
    proc = _run(BIN / "nbgrader", "autograde", A, "--force", db, "--Execute.timeout=12", cwd=root, check=False)
    elapsed = time.monotonic() - start
    _run(BIN / "nbgrader", "generate_feedback", A, "--force", db, cwd=root, check=False)
    audit = _run(BIN / "longctx-lab", "audit", A, "--csv", root / "audit.csv", cwd=root, check=False)
    assert audit.returncode == 1, audit.stdout + audit.stderr

    from nbgrader.api import Gradebook, MissingEntry

    scores = {}
    with Gradebook(f"sqlite:///{root}/gradebook.db") as gb:
        for student in CASES:
            try:
                sub = gb.find_submission_notebook(A, A, student)
            except MissingEntry:
                continue
            scores[student] = {}
            for grade in sub.grades:  # a task's points: its visible and its hidden test cell together
                task = grade.name.split("_")[0]
                scores[student][task] = scores[student].get(task, 0) + grade.score
    flags: dict[str, set[str]] = {}
    for row in csv.DictReader((root / "audit.csv").open()):
        flags.setdefault(row["student"], set()).add(row["flag"])
    print(f"autograde of {len(CASES)} submissions: {elapsed:.0f} s, exit {proc.returncode}")
    print(json.dumps({s: {"scores": scores.get(s), "flags": sorted(flags.get(s, ()))} for s in CASES}, indent=1))
    return root, scores, flags, elapsed, proc


def test_adversarial_submissions(course):
    """One test, not one per case: pytest-xdist would run the module's fixture (the whole autograde) once per
    worker that receives a case."""
    root, scores, flags, elapsed, proc = course
    assert elapsed < 240, f"autograde took {elapsed:.0f} s"
    assert proc.returncode == 0, f"autograde failed for some submission:\n{proc.stderr[-3000:]}"
    problems = [problem for student in sorted(CASES) for problem in _case_problems(root, scores, flags, student)]
    assert not problems, "\n".join(problems)
    _check_feedback(root)


def _case_problems(root, scores, flags, student) -> list[str]:
    _, _, must_score, must_flag, message = CASES[student]
    problems = []
    if not must_flag <= flags.get(student, set()):
        problems.append(f"{student}: audit flags {sorted(flags.get(student, ()))}, expected {sorted(must_flag)}")
    if student == "clean" and student in flags:
        problems.append(f"clean: flagged {sorted(flags[student])}")
    for task, points in must_score.items():
        got = scores.get(student, {}).get(task)
        if got != points:
            problems.append(f"{student}: {task} scored {got}, not {points}")
    text = (root / "autograded" / student / A / f"{A}.ipynb").read_text()
    for words in (message,) if isinstance(message, str) else message or ():
        if words not in text:
            problems.append(f"{student}: the autograded notebook does not say {words!r}")
    return problems


def _check_feedback(root):
    """Feedback shows the failed task's hint and its visible checks, and no hidden-test source."""
    page = (root / "feedback" / "delegates" / A / f"{A}.html").read_text()
    assert "own implementation" in page and "count both K and V" in page
    for secret in ("BEGIN HIDDEN TESTS", "LLAMA3_70B", "_exact(budget", "attention_flops("):
        assert secret not in page, f"feedback shows hidden-test source: {secret}"
    assert "hidden tests" in page
