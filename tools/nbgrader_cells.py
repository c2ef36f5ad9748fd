"""Build nbgrader source notebooks from Python: cells with the metadata nbgrader expects.

Used by the scripts that write ``solutions/chNN_*/chNN_*.ipynb``::

    from tools.nbgrader_cells import markdown, code, solution, tests, notebook
    nb = notebook([markdown("# Task 1"), solution("def f():\\n    ### BEGIN SOLUTION\\n    ...", "task1"),
                   tests("assert f() == 1", "task1_tests", points=2)])
"""

from __future__ import annotations

import nbformat

_KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def _meta(grade_id: str, *, grade: bool, solution: bool, locked: bool, points: int | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def markdown(source: str, grade_id: str | None = None) -> nbformat.NotebookNode:
    """A markdown cell; with ``grade_id`` it is locked (students cannot edit the instructions)."""
    cell = nbformat.v4.new_markdown_cell(source.strip())
    if grade_id:
        cell.metadata.update(_meta(grade_id, grade=False, solution=False, locked=True))
    return cell


def code(source: str, grade_id: str | None = None) -> nbformat.NotebookNode:
    """A code cell; with ``grade_id`` it is read-only set-up code."""
    cell = nbformat.v4.new_code_cell(source.strip())
    if grade_id:
        cell.metadata.update(_meta(grade_id, grade=False, solution=False, locked=True))
    return cell


def solution(source: str, grade_id: str) -> nbformat.NotebookNode:
    """An autograded answer cell: the parts between ``### BEGIN SOLUTION`` / ``### END SOLUTION`` are
    replaced by a stub in the released exercise."""
    if "### BEGIN SOLUTION" not in source:
        raise ValueError(f"solution cell {grade_id!r} must contain '### BEGIN SOLUTION'")
    cell = nbformat.v4.new_code_cell(source.strip())
    cell.metadata.update(_meta(grade_id, grade=False, solution=True, locked=False))
    return cell


def tests(source: str, grade_id: str, *, points: int) -> nbformat.NotebookNode:
    """A graded test cell worth ``points``; ``### BEGIN HIDDEN TESTS`` parts are removed on release."""
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    cell = nbformat.v4.new_code_cell(source.strip())
    cell.metadata.update(_meta(grade_id, grade=True, solution=False, locked=True, points=points))
    return cell


def notebook(cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    nb.metadata["kernelspec"] = dict(_KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def write(nb: nbformat.NotebookNode, path) -> None:
    """Write ``nb`` without outputs (COURSE.md section 4) and with cell ids that depend only on the
    cell's position, so rebuilding an unchanged notebook gives no diff."""
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:03d}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, str(path))
