"""INSTRUCTORS.md is executable: its tested command blocks run, in order, against a temporary course.

Blocks preceded by ``<!-- tested: instructor -->`` run in a temporary course directory (a copy of
``nbgrader_config.py`` and one assignment's source); blocks preceded by ``<!-- tested: student -->``
run once per simulated student, each in their own home folder, with ``$STUDENT`` set. ``$EXCHANGE``
is a temporary exchange directory (``--Exchange.root``). Between fetching and submitting, student
"alice" answers with the solutions and "bob" submits the untouched release. The page's points table
is checked against the points computed from ``solutions/``.

``python tests/test_instructors.py --points`` prints that table; ``--write-points`` rewrites it in
INSTRUCTORS.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.grading
ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "INSTRUCTORS.md"
ASSIGNMENT = "ch01_quadratic_wall"  # the chapter the page's examples use
STUDENTS = ("alice", "bob")
BLOCK = re.compile(r"<!-- tested: (instructor|student) -->\s*\n```bash\n(.*?)```", re.S)
FENCED = re.compile(r"```[a-z]*\n(.*?)```", re.S)
POINTS = re.compile(r"(<!-- points:begin -->\n)(.*?)(<!-- points:end -->)", re.S)


# ---- points per chapter ---------------------------------------------------------------------------------

def point_totals(solutions: Path = ROOT / "solutions") -> dict[str, tuple[int, int]]:
    """``{assignment: (graded test cells, points)}`` from the nbgrader metadata of the source notebooks."""
    if not isinstance(solutions, Path) or not solutions.is_dir():
        raise ValueError(f"solutions must be an existing folder, got {solutions!r}")
    totals = {}
    for folder in sorted(p for p in solutions.iterdir() if p.is_dir()):
        cells = points = 0
        notebooks = sorted(folder.glob("*.ipynb"))
        for path in notebooks:
            for cell in nbformat.read(path, as_version=4).cells:
                meta = cell.metadata.get("nbgrader", {})
                if meta.get("grade"):
                    cells += 1
                    points += int(meta.get("points", 0))
        if notebooks:
            totals[folder.name] = (cells, points)
    return totals


def points_table(totals: dict[str, tuple[int, int]]) -> str:
    rows = ["| assignment | graded test cells | points |", "|---|---:|---:|"]
    rows += [f"| `{name}` | {cells} | {points} |" for name, (cells, points) in totals.items()]
    rows.append(f"| **total** | {sum(c for c, _ in totals.values())} | {sum(p for _, p in totals.values())} |")
    return "\n".join(rows) + "\n"


def documented_points(text: str) -> dict[str, tuple[int, int]]:
    match = POINTS.search(text)
    if match is None:
        raise ValueError("text must contain the <!-- points:begin --> ... <!-- points:end --> table")
    rows = re.findall(r"^\| `([\w-]+)` \| (\d+) \| (\d+) \|$", match.group(2), re.M)
    return {name: (int(cells), int(points)) for name, cells, points in rows}


def write_points(doc: Path = DOC) -> bool:
    """Rewrite the points table in ``doc`` from ``solutions/``; True if it changed."""
    text = doc.read_text()
    if POINTS.search(text) is None:
        raise ValueError(f"doc {doc} must contain the <!-- points:begin --> ... <!-- points:end --> table")
    new = POINTS.sub(lambda m: m.group(1) + points_table(point_totals()) + m.group(3), text)
    doc.write_text(new)
    return new != text


def test_points_table_matches_the_solutions():
    computed = point_totals()
    assert computed, "no assignment in solutions/"
    assert documented_points(DOC.read_text()) == computed, (
        "INSTRUCTORS.md's points table is out of date: run `.venv/bin/python tests/test_instructors.py --write-points`")
    total = re.search(r"^\| \*\*total\*\* \| (\d+) \| (\d+) \|$", DOC.read_text(), re.M)
    assert total and (int(total.group(1)), int(total.group(2))) == (
        sum(c for c, _ in computed.values()), sum(p for _, p in computed.values()))


def test_write_points_rewrites_only_the_table(tmp_path):
    doc = tmp_path / "INSTRUCTORS.md"
    stale = POINTS.sub(lambda m: m.group(1) + "| `ch01_quadratic_wall` | 1 | 99 |\n" + m.group(3), DOC.read_text())
    doc.write_text(stale)
    assert documented_points(doc.read_text()) == {"ch01_quadratic_wall": (1, 99)}
    assert write_points(doc) is True
    assert documented_points(doc.read_text()) == point_totals()
    assert POINTS.sub("", doc.read_text()) == POINTS.sub("", stale)
    assert write_points(doc) is False
    with pytest.raises(ValueError, match="text"):
        documented_points("no table")
    with pytest.raises(ValueError, match="solutions"):
        point_totals(tmp_path / "missing")


# ---- the workflow ---------------------------------------------------------------------------------------

def blocks(text: str) -> list[tuple[str, list[str]]]:
    """The tested blocks of the page: ``(role, [command lines])`` in document order."""
    out = []
    for role, body in BLOCK.findall(text):
        lines = [line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]
        out.append((role, lines))
    return out


def test_every_nbgrader_command_of_the_page_is_tested():
    text = DOC.read_text()
    tested = [line for _, lines in blocks(text) for line in lines]
    in_code = [line.strip() for body in FENCED.findall(text) for line in body.splitlines()
               if line.strip().startswith("nbgrader ")]
    assert in_code, "INSTRUCTORS.md shows no nbgrader command"
    untested = [line for line in in_code if line not in tested]
    assert not untested, f"nbgrader commands in INSTRUCTORS.md that no test runs: {untested}"
    subcommands = {line.split()[1] for line in tested if line.startswith("nbgrader ")}
    assert {"generate_assignment", "release_assignment", "fetch_assignment", "submit", "collect", "autograde",
            "generate_feedback", "release_feedback", "fetch_feedback"} <= subcommands
    collect = [line for line in tested if line.startswith("nbgrader collect")]
    assert collect and all("--update" in line for line in collect), "collect without --update misses resubmissions"
    audit = [i for i, line in enumerate(tested) if line.startswith("longctx-lab audit")]
    assert audit, "the submission audit must be a tested command"
    assert tested.index(collect[0]) < audit[0] < [i for i, x in enumerate(tested) if " autograde " in x + " "][0]


def test_page_states_what_an_instructor_must_know():
    text = DOC.read_text()
    for phrase in ("nbgrader is not a sandbox", "c.Exchange.root", "chmod ugo+rwx", "--update",
                   "private copy", "exit status", "checksum", "owner", "triton", "60 s",
                   "~/.jupyter/nbgrader_config.py"):
        assert phrase in text, f"INSTRUCTORS.md does not mention {phrase!r}"
    assert "300 s" not in text


def test_course_outputs_are_git_ignored():
    """Everything nbgrader and the audit write into the course directory stays out of git."""
    paths = ["submitted/alice/x.ipynb", "autograded/alice/x.ipynb", "feedback/alice/x.html", "gradebook.db",
             "grades.csv", f"audit-{ASSIGNMENT}.csv", ".nbgrader.log", "release/x/x.ipynb", "source/x/x.ipynb"]
    proc = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True)
    ignored = set(proc.stdout.split())
    assert ignored == set(paths), f"not git-ignored: {sorted(set(paths) - ignored)}"


def _run(line: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", "-c", f"set -euo pipefail; {line}"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"`{line}` failed in {cwd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _answer_with_solutions(path: Path, source: Path) -> None:
    """Put the source's solution cells into the fetched release (what a student who solved it submits)."""
    nb = nbformat.read(path, as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in nbformat.read(source, as_version=4).cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    replaced = 0
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = answers[meta["grade_id"]]
            replaced += 1
    assert replaced, f"{path} has no answer cell"
    nbformat.write(nb, path)


def test_instructors_workflow_runs_as_written(tmp_path):
    course, exchange = tmp_path / "course", tmp_path / "exchange"
    (course / "solutions").mkdir(parents=True)
    exchange.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    shutil.copytree(ROOT / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    bin_dir = str(Path(sys.executable).parent)
    base_env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "EXCHANGE": str(exchange)}
    homes = {s: tmp_path / "home" / s for s in STUDENTS}
    for home in homes.values():
        home.mkdir(parents=True)

    ran = []
    for role, lines in blocks(DOC.read_text()):
        for line in lines:
            if role == "instructor":
                _run(line, course, {**base_env, "HOME": str(tmp_path / "home" / "instructor")})
            else:
                for student, home in homes.items():
                    env = {**base_env, "HOME": str(home), "STUDENT": student,
                           "JUPYTER_CONFIG_DIR": str(home / ".jupyter")}
                    proc = _run(line, home, env)
                    if line.startswith("nbgrader list"):
                        assert ASSIGNMENT in proc.stdout + proc.stderr
                    if "fetch_assignment" in line and student == "alice":
                        _answer_with_solutions(home / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                                               ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
            ran.append(line.split()[1] if line.startswith("nbgrader ") else line)

    assert "fetch_feedback" in ran and ran.index("generate_assignment") < ran.index("autograde")
    # what each step should have left behind
    assert (course / "exercises" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()
    assert (exchange / "longctx-lab" / "outbound" / ASSIGNMENT).is_dir()
    for student in STUDENTS:
        assert (course / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()
        assert (course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()
        assert (course / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").is_file()
        fetched = list((homes[student] / ASSIGNMENT / "feedback").glob(f"*/{ASSIGNMENT}.html"))
        assert len(fetched) == 1, f"{student} fetched {fetched}"

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course}/gradebook.db") as gb:
        scores = {s: (gb.find_submission(ASSIGNMENT, s).score, gb.find_submission(ASSIGNMENT, s).max_score)
                  for s in STUDENTS}
    max_points = point_totals()[ASSIGNMENT][1]
    # a written answer (a markdown grade cell) is graded by hand in the Formgrader: autograde leaves it at 0
    written = sum(int(c.metadata["nbgrader"].get("points", 0)) for c in nbformat.read(
        ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4).cells
        if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade"))
    assert scores["alice"] == (max_points - written, max_points), scores
    assert scores["bob"] == (0, max_points), scores
    grades = (course / "grades.csv").read_text().splitlines()
    header = grades[0].split(",")
    rows = {r.split(",")[header.index("student_id")]: r.split(",") for r in grades[1:]}
    assert float(rows["alice"][header.index("score")]) == max_points - written
    assert float(rows["bob"][header.index("score")]) == 0
    alice_feedback = (course / "feedback" / "alice" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert f"{max_points}" in alice_feedback
    bob_feedback = (course / "feedback" / "bob" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "not written yet" in bob_feedback and "BEGIN HIDDEN TESTS" not in bob_feedback
    audit = (course / f"audit-{ASSIGNMENT}.csv").read_text().splitlines()
    assert audit == ["student,notebook,task,cell,flag,detail"], f"honest students flagged: {audit}"


def main(argv: list[str]) -> int:
    if argv == ["--points"]:
        print(points_table(point_totals()), end="")
        return 0
    if argv == ["--write-points"]:
        changed = write_points()
        print(f"{DOC.name}: points table {'rewritten' if changed else 'already up to date'}")
        return 0
    print(json.dumps({"usage": "python tests/test_instructors.py --points | --write-points"}))
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
