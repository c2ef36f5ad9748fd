"""Every notebook has one jupytext text source (MyST Markdown), and the two agree (lint stage).

The checker is ``tools/notebook_sources.py``; these tests run it on the repository and on broken
copies, so a drift or a missing source cannot pass.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools import notebook_sources  # noqa: E402

pytestmark = pytest.mark.lint
NOTEBOOKS = notebook_sources.notebooks()


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def test_there_are_notebooks_to_check():
    assert len(NOTEBOOKS) >= 8 and any("solutions" in p.parts for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_rel)
def test_notebook_has_its_text_source(path):
    source = path.with_suffix(".md")
    hint = f"jupytext --set-formats {notebook_sources.FORMATS} {_rel(path)}"
    assert source.exists(), f"{_rel(path)} has no text source {source.name} ({hint})"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_rel)
def test_text_source_and_notebook_agree(path):
    assert notebook_sources.first_difference(path.with_suffix(".md"), path) is None


@pytest.mark.parametrize("path", notebook_sources.text_sources(), ids=_rel)
def test_every_text_source_has_its_notebook(path):
    assert path.with_suffix(".ipynb").exists(), f"{_rel(path)} has no notebook: run make sync"


@pytest.fixture
def pair(tmp_path):
    """A copy of the chapter-2 exercise source (it carries nbgrader metadata) and its notebook."""
    src = ROOT / "solutions" / "ch02_rope_scaling" / "ch02_rope_scaling"
    for suffix in (".md", ".ipynb"):
        shutil.copy(src.with_suffix(suffix), tmp_path / f"nb{suffix}")
    return tmp_path / "nb.md", tmp_path / "nb.ipynb"


def test_a_changed_cell_source_is_named(pair):
    md, ipynb = pair
    nb = nbformat.read(ipynb, as_version=4)
    code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells[code].source += "\nx = 1"
    nbformat.write(nb, ipynb)
    problem = notebook_sources.first_difference(md, ipynb)
    assert problem is not None and f"cell {code} " in problem and "source" in problem and "nb.ipynb" in problem


def test_changed_nbgrader_metadata_is_named(pair):
    md, ipynb = pair
    text = md.read_text()
    assert "points: 3" in text
    md.write_text(text.replace("points: 3", "points: 30", 1))
    problem = notebook_sources.first_difference(md, ipynb)
    assert problem is not None and "nbgrader metadata" in problem


def test_a_missing_cell_is_named(pair):
    md, ipynb = pair
    nb = nbformat.read(ipynb, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("an extra cell"))
    nbformat.write(nb, ipynb)
    problem = notebook_sources.first_difference(md, ipynb)
    assert problem is not None and f"cell {len(nb.cells) - 1} exists only in the .ipynb" in problem


def test_nbgrader_metadata_survives_a_round_trip(pair):
    md, ipynb = pair
    import jupytext

    before = [c.metadata.get("nbgrader") for c in nbformat.read(ipynb, as_version=4).cells]
    assert sum(m is not None and m.get("grade") for m in before) >= 2
    jupytext.write(jupytext.read(ipynb), md, fmt="md:myst")
    after = [c.metadata.get("nbgrader") for c in jupytext.read(md).cells]
    assert after == before


def test_a_no_op_sync_changes_nothing(pair):
    md, ipynb = pair
    before = ipynb.read_bytes()
    notebook_sources.sync(md)
    assert ipynb.read_bytes() == before


def test_sync_carries_an_edit_and_keeps_cell_ids(pair):
    md, ipynb = pair
    ids = [c["id"] for c in json.loads(ipynb.read_text())["cells"]]
    md.write_text(md.read_text().replace("Four tasks", "Four short tasks", 1))
    notebook_sources.sync(md)
    nb = json.loads(ipynb.read_text())
    assert [c["id"] for c in nb["cells"]] == ids
    assert "Four short tasks" in "".join(nb["cells"][0]["source"])
    assert notebook_sources.first_difference(md, ipynb) is None


def test_released_exercises_carry_no_pairing_and_no_text_source():
    released = sorted((ROOT / "exercises").glob("*/*"))
    assert released, "exercises/ is empty: run make exercises"
    assert not [p for p in released if p.suffix == ".md"], "a text source (with the answers) was released"
    for path in (p for p in released if p.suffix == ".ipynb"):
        assert "jupytext" not in json.loads(path.read_text())["metadata"], f"{_rel(path)} is paired"


def test_nbgrader_config_keeps_text_sources_out_of_releases():
    import traitlets.config

    loader = traitlets.config.PyFileConfigLoader("nbgrader_config.py", path=str(ROOT))
    config = loader.load_config()
    assert "*.md" in config.CourseDirectory.ignore
    assert "longctx_lab.course.grading.nbgrader_release.StripJupytextPairing" in config.GenerateAssignment.preprocessors
