"""The course book (``make book``: Sphinx + MyST-NB + sphinx-book-theme, configured in ``docs/conf.py``).

The unit tests check what decides whether a chapter may go into the book (``tools/book_sources.py``).
The tests marked ``book`` read the built site (``build/book``, or ``LONGCTX_BOOK_DIR``): the ``book``
stage of ``make test`` runs them right after building it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools import book_sources  # noqa: E402

BOOK = Path(os.environ.get("LONGCTX_BOOK_DIR", ROOT / "build" / "book"))
CHAPTERS = sorted((ROOT / "notebooks").glob(book_sources.CHAPTER_GLOB))
REPOSITORY = "longctx-lab/longctx-lab"


def _chapter(title: str) -> nbformat.NotebookNode:
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [new_markdown_cell(f"# {title}\n\n$$x^2$$"), new_code_cell("print(6 * 7)"), new_code_cell("1 + 1")]
    return nb


def _executed(nb) -> nbformat.NotebookNode:
    done = nbformat.from_dict(json.loads(json.dumps(nb)))
    for n, cell in enumerate((c for c in done.cells if c.cell_type == "code"), 1):
        cell.execution_count = n
        cell.outputs = [new_output("stream", name="stdout", text="42\n")]
    return done


@pytest.fixture
def course(tmp_path):
    src, done, dest = tmp_path / "notebooks", tmp_path / "executed", tmp_path / "docs"
    for d in (src, done, dest):
        d.mkdir()
    for i in (1, 2):
        nb = _chapter(f"Chapter {i}")
        nbformat.write(nb, src / f"ch0{i}_topic.ipynb")
        nbformat.write(_executed(nb), done / f"ch0{i}_topic.ipynb")
    return src, done, dest


def test_committed_chapters_are_staged_for_execution(course):
    src, _, dest = course
    (dest / "ch09_old.ipynb").write_text("{}")
    assert book_sources.stage_chapters(dest, notebooks=src) == "force"
    assert sorted(p.name for p in dest.glob("*.ipynb")) == ["ch01_topic.ipynb", "ch02_topic.ipynb"]


def test_executed_copies_are_staged_as_they_are(course):
    src, done, dest = course
    assert book_sources.stage_chapters(dest, notebooks=src, executed_dir=done) == "off"
    staged = nbformat.read(dest / "ch01_topic.ipynb", as_version=4)
    assert staged.cells[1].outputs[0].text == "42\n"


def test_an_error_output_stops_the_book(course):
    src, done, dest = course
    nb = nbformat.read(done / "ch02_topic.ipynb", as_version=4)
    nb.cells[2].outputs = [new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])]
    nbformat.write(nb, done / "ch02_topic.ipynb")
    with pytest.raises(book_sources.BookError, match=r"ch02_topic.ipynb: cell 2 raised ZeroDivisionError"):
        book_sources.stage_chapters(dest, notebooks=src, executed_dir=done)
    assert not list(dest.glob("*.ipynb")), "nothing is staged when a chapter fails"


def test_a_cell_that_did_not_run_stops_the_book(course):
    src, done, dest = course
    nb = nbformat.read(done / "ch01_topic.ipynb", as_version=4)
    nb.cells[2].execution_count = None
    nbformat.write(nb, done / "ch01_topic.ipynb")
    with pytest.raises(book_sources.BookError, match="cell 2 was not executed"):
        book_sources.stage_chapters(dest, notebooks=src, executed_dir=done)


def test_a_stale_or_missing_executed_copy_stops_the_book(course):
    src, done, dest = course
    nb = nbformat.read(src / "ch01_topic.ipynb", as_version=4)
    nb.cells[1].source = "print(7 * 6)"
    nbformat.write(nb, src / "ch01_topic.ipynb")
    with pytest.raises(book_sources.BookError, match="differ"):
        book_sources.stage_chapters(dest, notebooks=src, executed_dir=done)
    (done / "ch01_topic.ipynb").unlink()
    with pytest.raises(book_sources.BookError, match="missing"):
        book_sources.stage_chapters(dest, notebooks=src, executed_dir=done)
    with pytest.raises(book_sources.BookError, match="no chapter"):
        book_sources.stage_chapters(dest, notebooks=done / "nothing")


# --- the built book ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built() -> Path:
    if not (BOOK / "index.html").exists():
        pytest.fail(f"no book at {BOOK}: run `make book` (or the book stage of make test) first")
    return BOOK


def _page(book: Path, stem: str) -> str:
    return (book / f"{stem}.html").read_text(encoding="utf-8")


@pytest.mark.book
def test_index_lists_every_chapter_and_the_conventions(built):
    index = _page(built, "index")
    for chapter in CHAPTERS:
        assert f'href="{chapter.stem}.html"' in index, f"the index does not link {chapter.stem}"
    assert 'href="conventions.html"' in index and (built / "conventions.html").exists()


@pytest.mark.book
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_page_has_launch_buttons_navigation_and_no_error(built, chapter):
    html = _page(built, chapter.stem)
    path = f"notebooks/{chapter.name}"
    assert f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/{path}" in html
    assert f"https://mybinder.org/v2/gh/{REPOSITORY}/main?urlpath=lab/tree/{path}" in html
    assert 'class="left-prev"' in html or 'class="right-next"' in html, "no previous/next navigation"
    position = CHAPTERS.index(chapter)
    if position + 1 < len(CHAPTERS):
        assert re.search(rf'class="right-next"\s+href="{CHAPTERS[position + 1].stem}.html"', html)
    assert "Traceback (most recent call last)" not in html
    for dead in ("interactive(children", "IntSlider(value", "application/vnd.jupyter.widget-view+json"):
        assert dead not in html, f"{chapter.stem}: a dead widget ({dead!r})"
    assert '<div id="quiz' in html, "the chapter's quiz is missing"


@pytest.mark.book
def test_math_and_search_work_offline(built):
    assert (built / "_static" / "mathjax" / "tex-chtml.js").exists(), "MathJax is not served from the site"
    assert (built / "search.html").exists() and (built / "searchindex.js").exists()
    index = json.loads(re.sub(r"^Search\.setIndex\(|\)\s*$", "", (built / "searchindex.js").read_text()))
    assert any("softmax" in term for term in index["terms"]), "the search index misses the chapters' words"
    for page in [built / "index.html", *(built / f"{c.stem}.html" for c in CHAPTERS)]:
        scripts = re.findall(r'<script[^>]*\bsrc="([^"]+)"', page.read_text(encoding="utf-8"))
        remote = [s for s in scripts if re.match(r"(https?:)?//", s)]
        assert not remote, f"{page.name} loads scripts from the network: {remote}"
        if page.name != "index.html":  # Sphinx loads MathJax only on pages with math
            assert any(s.endswith("mathjax/tex-chtml.js") for s in scripts), f"{page.name} does not load MathJax"
