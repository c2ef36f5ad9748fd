"""longctx-lab audit: each adversarial submission of the issue is flagged, the clean solution is not.

Every case is a notebook made in the test from the committed release (exercises/) answered with the
source's solutions, then changed the way a student who games the grader would change it.
"""

from __future__ import annotations

import copy
import csv

import nbformat
import pytest
from test_grading_rules import ASSIGNMENTS, ROOT, answered, cell_of

from longctx_lab import cli
from longctx_lab.course.grading import audit

A = "ch01_quadratic_wall"


def _flags(nb, assignment=A):
    source = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    return audit.audit_notebook(nb, audit.release_cells(source), student="s", notebook=assignment)


def _kinds(flags):
    return {(f.cell, f.flag) for f in flags}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_clean_solution_and_untouched_release_have_no_flag(assignment):
    assert _flags(answered(assignment), assignment) == []
    release = nbformat.read(ROOT / "exercises" / assignment / f"{assignment}.ipynb", as_version=4)
    assert _flags(release, assignment) == []


CODE_CASES = {
    # name: (answer cell, code appended to it, expected flag)
    "delegates to the package": ("task1_kv_cache", "from longctx_lab.core.cost import kv_cache_bytes as _k\n",
                                 "package"),
    "calls the package by attribute": ("task2_flops",
                                       "import longctx_lab.core.cost\nx = longctx_lab.core.cost.attention_flops",
                                       "package"),
    "imports it by string": ("task2_flops", "import importlib\nm = importlib.import_module('longctx_lab.core.cost')",
                             "package"),
    "redefines a grading helper": ("task1_kv_cache", "grading.check_close = lambda *a, **k: None", "grading"),
    "rebinds grading": ("task1_kv_cache", "class grading:\n    check_close = staticmethod(print)", "patch"),
    "patches math.isclose": ("task3_largest_n", "math.isclose = lambda *a, **k: True", "patch"),
    "patches torch via alias": ("task3_largest_n", "import torch as t\nt.allclose = lambda *a, **k: True", "patch"),
    "setattr on numpy": ("task3_largest_n", "import numpy\nsetattr(numpy, 'allclose', len)", "patch"),
    "rebinds a builtin": ("task3_largest_n", "def isinstance(*a):\n    return True", "patch"),
    "input transformer": ("task1_kv_cache", "get_ipython().input_transformers_cleanup.append(lambda lines: [])",
                          "ipython"),
    "ast transformer via alias": ("task1_kv_cache", "ip = get_ipython()\nip.ast_transformers.append(None)", "ipython"),
    "magic": ("task1_kv_cache", "%load_ext autoreload", "ipython"),
    "signal": ("task2_flops", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)", "signal"),
    "os._exit": ("task2_flops", "import os\nos._exit(1)", "exit"),
    "sys.exit in the function": ("task2_flops", "import sys\ndef f():\n    sys.exit(1)", "exit"),
    "settrace": ("task2_flops", "import sys\nsys.settrace(None)", "tracing"),
    "setprofile in the function": ("task2_flops", "import sys\ndef g():\n    sys.setprofile(None)", "tracing"),
}


@pytest.mark.parametrize("case", sorted(CODE_CASES))
def test_each_code_case_is_flagged_on_its_task(case):
    gid, extra, flag = CODE_CASES[case]
    nb = answered(A)
    cell = cell_of(nb, gid)
    cell.source += "\n" + extra + "\n"
    flags = _flags(nb)
    assert (gid, flag) in _kinds(flags), f"{case}: {flags}"
    assert {f.cell for f in flags} == {gid}, f"{case}: other cells flagged: {flags}"
    assert all(f.task == gid.split("_")[0] for f in flags)


def test_code_added_in_a_new_cell_is_flagged_after_its_neighbour():
    nb = answered(A)
    index = nb.cells.index(cell_of(nb, "task2_flops"))
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell("math.isclose = lambda *a, **k: True"))
    flags = _flags(nb)
    assert [(f.cell, f.flag, f.task) for f in flags] == [("cell added after task2_flops", "patch", "task2")]


def test_deleted_stripped_duplicated_edited_and_unknown_cells():
    nb = answered(A)
    nb.cells.remove(cell_of(nb, "task2_tests"))
    assert ("task2_tests", "missing") in _kinds(_flags(nb))

    nb = answered(A)
    cell_of(nb, "task3_tests").metadata.pop("nbgrader")
    kinds = _kinds(_flags(nb))
    assert ("task3_tests", "stripped") in kinds and ("task3_tests", "missing") not in kinds

    nb = answered(A)
    test_cell = cell_of(nb, "task1_tests")
    nb.cells.insert(nb.cells.index(test_cell) + 1, copy.deepcopy(test_cell))
    assert ("task1_tests", "duplicated") in _kinds(_flags(nb))

    nb = answered(A)
    cell_of(nb, "task1_tests").source = "pass"
    assert ("task1_tests", "edited") in _kinds(_flags(nb))

    nb = answered(A)
    cell_of(nb, "task2_tests").metadata["nbgrader"]["points"] = 30
    assert ("task2_tests", "metadata") in _kinds(_flags(nb))

    nb = answered(A)
    extra = copy.deepcopy(cell_of(nb, "task1_tests"))
    extra.metadata["nbgrader"]["grade_id"] = "task9_tests"
    nb.cells.append(extra)
    assert ("task9_tests", "unknown") in _kinds(_flags(nb))


def test_code_flags_argument_and_syntax_errors():
    with pytest.raises(TypeError, match="source must be a str"):
        audit.code_flags(None)
    flags = audit.code_flags("def f(:\n    import longctx_lab")
    assert ("package", "mentions longctx_lab") in flags
    assert audit.code_flags("import math\nimport torch\nx = math.sqrt(2) + torch.ones(1).sum()") == []


def test_cli_writes_table_and_csv(tmp_path, capsys):
    course = tmp_path / "course"
    (course / "solutions").mkdir(parents=True)
    (course / "solutions" / A).symlink_to(ROOT / "solutions" / A, target_is_directory=True)
    for student, change in (("alice", None), ("mallory", "math.isclose = lambda *a, **k: True")):
        nb = answered(A)
        if change:
            cell_of(nb, "task3_largest_n").source += "\n" + change
        target = course / "submitted" / student / A / f"{A}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
    (course / "submitted" / "carol" / A).mkdir(parents=True)  # submitted nothing
    out = tmp_path / "audit.csv"
    assert cli.main(["audit", A, "--course", str(course), "--csv", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "mallory" in printed and "task3_largest_n" in printed and "no flags: alice" in printed
    rows = list(csv.DictReader(out.open()))
    assert {(r["student"], r["flag"]) for r in rows} == {("mallory", "patch"), ("carol", "missing")}
    assert set(rows[0]) == {"student", "notebook", "task", "cell", "flag", "detail"}
    assert cli.main(["audit", "ch99_nothing", "--course", str(course)]) == 2
    assert "assignment must name a folder" in capsys.readouterr().err
