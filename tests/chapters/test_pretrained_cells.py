"""Chapter cells that load a pretrained model do so only behind ``require_pretrained`` (issue 25).

The wheel check runs every chapter without the model's package, and ``LONGCTX_LAB_NO_PRETRAINED=1`` switches it
off on purpose: a cell that calls ``load_pretrained`` outside the guard would fail there instead of printing the
install line and skipping. Checked on the chapters' sources (``notebooks/*.md``), in every chapter, so that a
new live cell is held to it too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sorted((ROOT / "notebooks").glob("ch*.md"))


def _guarded(tree: ast.AST) -> set[int]:
    """Line numbers inside the body of an ``if require_pretrained(...):``."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Call)
                and getattr(node.test.func, "id", None) == "require_pretrained"):
            for stmt in node.body:
                lines.update(range(stmt.lineno, stmt.end_lineno + 1))
    return lines


def unguarded_loads(source: str) -> list[int]:
    """Line numbers of ``load_pretrained(...)`` calls in ``source`` that no ``if require_pretrained(...)`` guards."""
    tree = ast.parse(source)
    guarded = _guarded(tree)
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "load_pretrained"
            and node.lineno not in guarded]


def test_the_checker_finds_an_unguarded_load():
    assert unguarded_loads("m, t = load_pretrained('smollm2-135m')\n") == [1]
    assert unguarded_loads("if require_pretrained('x'):\n    m = load_pretrained('x')\nload_pretrained('x')\n") == [3]
    assert unguarded_loads("if other('x'):\n    m = load_pretrained('x')\n") == [2]
    assert unguarded_loads("if require_pretrained('x'):\n    m = load_pretrained('x')\n") == []


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_load_is_guarded(path):
    cells = jupytext.reads(path.read_text(encoding="utf-8"), fmt="md:myst").cells
    for i, cell in enumerate(cells):
        if cell.cell_type != "code" or "load_pretrained" not in cell.source:
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        assert not unguarded_loads(source), (f"{path.name}, cell {i}: load_pretrained outside "
                                             "`if require_pretrained(...):` (the chapter must run without the model)")
