"""Notebook hygiene (docs/conventions.md, "Notebooks"): stored clean, python3 kernel, the chapter contract."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALL = sorted(p for d in ("notebooks", "solutions", "exercises") for p in (ROOT / d).rglob("*.ipynb")
             if ".ipynb_checkpoints" not in p.parts)
CHAPTERS = sorted((ROOT / "notebooks").glob("ch*.ipynb"))


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(ROOT)))
def test_stored_without_outputs_and_with_python3_kernel(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"cell {i} has stored outputs"
            assert cell.get("execution_count") is None, f"cell {i} has an execution count"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_contract(path):
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    first = "".join(cells[0]["source"])
    assert cells[0]["cell_type"] == "markdown" and "CPU" in first, "first cell: what it teaches, what it needs"
    assert 'find_spec("longctx_lab")' in "".join(cells[1]["source"]), "second cell: the Colab install cell"
    assert "show_quiz" in "".join(cells[-1]["source"]), "the chapter ends with its quiz"
    stem = path.stem
    quiz_module = ROOT / "longctx_lab" / "course" / "quizzes" / f"{stem}.py"
    assert quiz_module.exists(), "a quiz module in longctx_lab/course/quizzes"
    assert list((ROOT / "solutions" / stem).glob("*.ipynb")), "an exercise source in solutions/"
