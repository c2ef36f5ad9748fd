"""Shared helpers for the grading tests, and the feedback preprocessor's unit tests (no nbgrader run)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from longctx_lab.course.grading.nbgrader_feedback import HideHiddenTests, hide_hidden_tests

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir() and list(p.glob("*.ipynb")))


def cell_of(nb, grade_id: str):
    """The cell of ``nb`` whose nbgrader ``grade_id`` is ``grade_id``."""
    cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    if len(cells) != 1:
        raise ValueError(f"grade_id {grade_id!r} must name exactly one cell, found {len(cells)}")
    return cells[0]


def answered(assignment: str, replacements: dict[str, str] | None = None, release_dir: Path = ROOT / "exercises"):
    """The release of ``assignment`` (committed, or in ``release_dir``) with the source's answers (and
    ``replacements``) filled in."""
    release = nbformat.read(Path(release_dir) / assignment / f"{assignment}.ipynb", as_version=4)
    source = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    answers.update(replacements or {})
    for cell in release.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = answers[meta["grade_id"]]
    return release


def test_hide_hidden_tests_keeps_the_visible_checks():
    source = "visible()\n    ### BEGIN HIDDEN TESTS\n    secret = reference()\n    ### END HIDDEN TESTS\nafter()"
    assert hide_hidden_tests(source, placeholder="# hidden") == "visible()\n    # hidden\nafter()"
    assert hide_hidden_tests("a\n### BEGIN HIDDEN TESTS\nb", placeholder="# h") == "a\n# h"
    assert hide_hidden_tests("plain") == "plain"
    with pytest.raises(TypeError, match="source must be a str"):
        hide_hidden_tests(None)


def test_feedback_preprocessor_strips_hidden_source_and_tracebacks():
    nb = nbformat.read(ROOT / "solutions" / "ch01_quadratic_wall" / "ch01_quadratic_wall.ipynb", as_version=4)
    tests = cell_of(nb, "task1_tests")
    tests.outputs = [nbformat.v4.new_output(
        "error", ename="AssertionError", evalue="kv_cache_bytes is too low. Hint: count both K and V",
        traceback=["\x1b[0;31m---\x1b[0m", "from longctx_lab.core.cost import kv_cache_bytes as reference", "..."])]
    answer_before = cell_of(nb, "task1_kv_cache").source
    nb, _ = HideHiddenTests().preprocess(nb, {})
    assert "BEGIN HIDDEN TESTS" not in tests.source and "reference" not in tests.source
    assert "grading.check_close" in tests.source  # the visible check stays
    assert tests.outputs[0]["traceback"] == ["AssertionError: kv_cache_bytes is too low. Hint: count both K and V"]
    assert cell_of(nb, "task1_kv_cache").source == answer_before  # answers and solutions are not touched
