"""The chapters that go into the book, and the checks they pass first (used by ``docs/conf.py``).

``make book`` builds the course book with Sphinx + MyST-NB from the chapter notebooks. Sphinx reads
its sources from ``docs/``, so :func:`stage_chapters` copies the chapters there (git-ignored), either
the committed ones (MyST-NB then executes them, and a cell error fails the build) or the copies that
``longctx-lab bench notebooks --executed-dir DIR`` saved (``make test``'s ``budget`` stage), which are
rendered as they are once :func:`check_executed` has passed them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_GLOB = "ch[0-9][0-9]_*.ipynb"


class BookError(RuntimeError):
    """A chapter cannot go into the book: an error output, a cell that did not run, a stale copy."""


def _cell_text(cell) -> str:
    return "".join(cell.source) if isinstance(cell.source, list) else cell.source


def check_executed(executed: Path, chapter: Path) -> None:
    """Raise :class:`BookError` unless ``executed`` is ``chapter`` run to the end with no error output."""
    nb, source = nbformat.read(executed, as_version=4), nbformat.read(chapter, as_version=4)
    if [_cell_text(c) for c in nb.cells] != [_cell_text(c) for c in source.cells]:
        raise BookError(f"{executed}: its cells differ from {chapter} (execute the chapter again)")
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            if out.output_type == "error":
                raise BookError(f"{executed.name}: cell {index} raised {out.ename}: {out.evalue}")
        if cell.execution_count is None:
            raise BookError(f"{executed.name}: cell {index} was not executed (did an earlier cell stop the run?)")


def stage_chapters(dest: Path, *, notebooks: Path = ROOT / "notebooks", executed_dir: Path | None = None) -> str:
    """Copy every chapter of ``notebooks`` into ``dest`` (replacing older copies) and return MyST-NB's
    execution mode for them: ``"force"`` for the committed chapters, ``"off"`` for checked executed copies."""
    dest, notebooks = Path(dest), Path(notebooks)
    chapters = sorted(notebooks.glob(CHAPTER_GLOB))
    if not chapters:
        raise BookError(f"{notebooks} holds no chapter ({CHAPTER_GLOB})")
    if executed_dir is not None:
        for chapter in chapters:
            executed = Path(executed_dir) / chapter.name
            if not executed.is_file():
                hint = f"longctx-lab bench notebooks --executed-dir {executed_dir}"
                raise BookError(f"{executed} is missing: run `{hint}`")
            check_executed(executed, chapter)
    for old in dest.glob(CHAPTER_GLOB):
        old.unlink()
    for chapter in chapters:
        shutil.copy(chapter if executed_dir is None else Path(executed_dir) / chapter.name, dest / chapter.name)
    return "force" if executed_dir is None else "off"
