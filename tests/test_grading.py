"""The nbgrader round trip, for every assignment in solutions/.

For each assignment, in a throw-away course directory: ``generate_assignment``, then three
submissions graded by ``nbgrader autograde``: the solution (must score full marks), the untouched
exercise (must score zero, with readable failures and no grader crash), and the solution with the
prepared wrong answer from ``tests/grading/<assignment>_wrong.json`` (must score partial marks).

Scores count the autograded cells. A manually graded answer (a markdown cell that is both a solution and a
grade cell: a learner's written interpretation) is left to the instructor: autograde must not score it, and
the solution's answer must carry its rubric (the word "Rubric" in the source's solution cell).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.make_exercises import assignments, venv_env  # noqa: E402

pytestmark = pytest.mark.grading
NBGRADER = str(Path(sys.executable).parent / "nbgrader")


def _nbgrader(*args: str, root: Path) -> subprocess.CompletedProcess:
    cmd = [NBGRADER, *args, f"--CourseDirectory.root={root}", f"--db=sqlite:///{root}/gradebook.db"]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=venv_env())
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _grade_ids(nb, kind: str) -> dict[str, nbformat.NotebookNode]:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
            if c.metadata.get("nbgrader", {}).get(kind)}


def _with_solutions(release, source, replacements: dict[str, str] | None = None):
    nb = nbformat.from_dict(json.loads(json.dumps(release)))
    answers = {gid: cell.source for gid, cell in _grade_ids(source, "solution").items()}
    answers.update(replacements or {})
    for gid, cell in _grade_ids(nb, "solution").items():
        cell.source = answers[gid]
    return nb


@pytest.fixture(scope="module", params=assignments())
def graded(request, tmp_path_factory):
    name = request.param
    root = tmp_path_factory.mktemp(name)
    shutil.copytree(ROOT / "solutions" / name, root / "source" / name)
    _nbgrader("generate_assignment", name, "--force", root=root)
    notebooks = sorted(p.name for p in (root / "release" / name).glob("*.ipynb"))
    assert notebooks, f"no notebook released for {name}"
    wrong_file = ROOT / "tests" / "grading" / f"{name}_wrong.json"
    assert wrong_file.exists(), f"{wrong_file.relative_to(ROOT)} must hold a prepared wrong answer"
    wrong = json.loads(wrong_file.read_text())
    for student in ("solution", "untouched", "wrong"):
        for nb_name in notebooks:
            release = nbformat.read(root / "release" / name / nb_name, as_version=4)
            source = nbformat.read(root / "source" / name / nb_name, as_version=4)
            if student == "solution":
                nb = _with_solutions(release, source)
            elif student == "wrong":
                nb = _with_solutions(release, source, wrong)
            else:
                nb = release
            out = root / "submitted" / student / name / nb_name
            out.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, out)
    _nbgrader("autograde", name, "--force", root=root)

    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook(f"sqlite:///{root}/gradebook.db") as gb:
        for student in ("solution", "untouched", "wrong"):
            sub = gb.find_submission(name, student)
            grades = [g for nb in sub.notebooks for g in nb.grades]
            auto = [g for g in grades if g.cell.cell_type != "markdown"]
            manual = [g for g in grades if g.cell.cell_type == "markdown"]
            # nbgrader gives an unanswered written answer (the release's text, checksum unchanged) an automatic 0;
            # an answered one must be left to the instructor
            assert all(g.auto_score is None or student == "untouched" and g.auto_score == 0 for g in manual), (
                f"{name}: autograde scored a written answer")
            scores[student] = (sum(g.score or 0 for g in auto), sum(g.max_score for g in auto))
    print(f"{name}: " + ", ".join(f"{who} {score:g}/{top:g}" for who, (score, top) in scores.items()))
    return name, root, notebooks, scores, wrong


def _solution_scores_full_marks(graded):
    name, _, _, scores, _ = graded
    score, max_score = scores["solution"]
    assert max_score > 0
    assert score == max_score, f"{name}: solution scored {score}/{max_score}"


def _untouched_exercise_scores_zero(graded):
    name, _, _, scores, _ = graded
    assert scores["untouched"][0] == 0, f"{name}: untouched exercise scored {scores['untouched']}"


def _wrong_answer_scores_partial_marks(graded):
    name, _, _, scores, wrong = graded
    score, max_score = scores["wrong"]
    assert wrong, "the wrong-answer file must replace at least one solution cell"
    assert 0 < score < max_score, f"{name}: prepared wrong answer scored {score}/{max_score}"


def _untouched_exercise_failures_are_readable(graded):
    """A learner who has not answered yet sees an AssertionError with a hint, not a raw traceback."""
    name, root, notebooks, _, _ = graded
    for nb_name in notebooks:
        nb = nbformat.read(root / "autograded" / "untouched" / name / nb_name, as_version=4)
        for cell in nb.cells:
            if not cell.metadata.get("nbgrader", {}).get("grade") or cell.cell_type == "markdown":
                continue  # a written answer is graded by hand
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            assert errors, f"{name}/{cell.metadata['nbgrader']['grade_id']}: passes without an answer"
            assert errors[0]["ename"] == "AssertionError", (
                f"{name}/{cell.metadata['nbgrader']['grade_id']}: fails with {errors[0]['ename']} "
                "instead of a readable AssertionError (use longctx_lab.course.grading.call)"
            )


def _written_answers_carry_a_rubric(graded):
    name, root, notebooks, _, _ = graded
    for nb_name in notebooks:
        source = nbformat.read(root / "source" / name / nb_name, as_version=4)
        for gid, cell in _grade_ids(source, "grade").items():
            if cell.cell_type == "markdown" and cell.metadata["nbgrader"].get("solution"):
                assert "rubric" in cell.source.lower(), f"{name}/{gid}: a written answer without a rubric"


def test_round_trip(graded):
    """One test per assignment, not four: pytest-xdist would run the module-scoped fixture (generate and
    autograde) again in every worker that receives one of them."""
    _solution_scores_full_marks(graded)
    _untouched_exercise_scores_zero(graded)
    _wrong_answer_scores_partial_marks(graded)
    _untouched_exercise_failures_are_readable(graded)
    _written_answers_carry_a_rubric(graded)
