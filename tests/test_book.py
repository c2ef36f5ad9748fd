"""The static HTML course (tools/build_book.py): index, navigation, links, failure on errors.

Most tests build a book from tiny generated notebooks whose outputs are written in (the
``--from-executed`` path), so they need no kernel; one test (marker ``slow``) executes for real.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools import build_book  # noqa: E402

# a 1x1 PNG
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)).decode()


def _chapter(title: str, code: str = "print(6 * 7)") -> nbformat.NotebookNode:
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [new_markdown_cell(f"# {title}\n\n**What you will learn.** Why $O(n^2)$ hurts.\n\n"
                                  "**What you need.** A CPU."),
                new_code_cell(code),
                new_markdown_cell("## Math\n\n$$\\mathrm{softmax}(QK^\\top/\\sqrt{d})V$$")]
    return nb


def _executed(nb, outputs=None) -> nbformat.NotebookNode:
    done = nbformat.from_dict(json.loads(json.dumps(nb)))
    code = [c for c in done.cells if c.cell_type == "code"]
    for n, cell in enumerate(code, 1):
        cell.execution_count = n
        cell.outputs = outputs if outputs is not None else [
            new_output("stream", name="stdout", text="42\n"),
            new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"}),
        ]
    return done


@pytest.fixture
def course(tmp_path):
    """Three chapters in notebooks/ and their executed copies in executed/."""
    src, done = tmp_path / "notebooks", tmp_path / "executed"
    src.mkdir()
    done.mkdir()
    titles = ["Chapter 1 — Walls", "Chapter 2 — Ropes & rotations", "Chapter 3 — Windows"]
    paths = []
    for i, title in enumerate(titles, 1):
        path = src / f"ch0{i}_topic{i}.ipynb"
        nb = _chapter(title)
        nbformat.write(nb, path)
        nbformat.write(_executed(nb), done / path.name)
        paths.append(path)
    return paths, done, tmp_path / "book", titles


def _build(paths, done, out) -> int:
    return build_book.main([*map(str, paths), "--from-executed", str(done), "--out", str(out),
                            "--repository", "example/course", "--ref", "v9"])


def test_index_lists_every_chapter_with_links(course):
    paths, done, out, titles = course
    assert _build(paths, done, out) == 0
    index = (out / "index.html").read_text()
    for path, title in zip(paths, titles):
        page = f"{path.stem}.html"
        assert (out / page).is_file()
        assert f'href="{page}"' in index
        assert title.replace("&", "&amp;") in index
        assert f"https://colab.research.google.com/github/example/course/blob/v9/notebooks/{path.name}" in index
        assert f"https://mybinder.org/v2/gh/example/course/v9?urlpath=lab/tree/notebooks/{path.name}" in index
    assert "What you will learn" in index and "Chapter 1 — Walls</h2>" not in index.split("<ol")[0]
    assert index.index(paths[0].stem) < index.index(paths[1].stem) < index.index(paths[2].stem)


def _nav(page: str) -> list[dict[str, str]]:
    bars = re.findall(rf'<nav class="{build_book.NAV_CLASS}">(.*?)</nav>', page, re.S)
    return [dict(re.findall(r'<a (?:rel|class)="(\w+)" href="([^"]+)"', bar)) for bar in bars]


def test_each_page_links_index_previous_next_colab_binder(course):
    paths, done, out, _ = course
    assert _build(paths, done, out) == 0
    stems = [p.stem for p in paths]
    for i, stem in enumerate(stems):
        page = (out / f"{stem}.html").read_text()
        bars = _nav(page)
        assert len(bars) == 2 and bars[0] == bars[1], "one navigation bar at the top and one at the bottom"
        nav = bars[0]
        assert nav["index"] == "index.html"
        assert nav.get("prev") == (f"{stems[i - 1]}.html" if i > 0 else None)
        assert nav.get("next") == (f"{stems[i + 1]}.html" if i + 1 < len(stems) else None)
        assert nav["colab"].endswith(f"/blob/v9/notebooks/{stem}.ipynb")
        assert nav["binder"].endswith(f"urlpath=lab/tree/notebooks/{stem}.ipynb")
        assert "MathJax" in page and "softmax" in page
        assert f"data:image/png;base64,{PNG}" in page  # the plot is inline
        assert "42" in page
        assert page.index(f'<nav class="{build_book.NAV_CLASS}">') > page.index("<body")


def test_check_book_finds_a_missing_page_and_a_broken_nav(course):
    paths, done, out, _ = course
    assert _build(paths, done, out) == 0
    assert build_book.check_book(out) == []
    (out / f"{paths[2].stem}.html").unlink()
    second = out / f"{paths[1].stem}.html"
    second.write_text(second.read_text().replace(f'href="{paths[0].stem}.html"', 'href="elsewhere.html"'))
    first = out / f"{paths[0].stem}.html"
    first.write_text(first.read_text().replace("data:image/png;base64,", "plot.png#"))
    chapters = build_book.load_chapters(paths, done)
    problems = build_book.check_book(out, chapters)
    assert any(f"{paths[0].stem}.html inlines 0 of 1 plots" in p for p in problems)
    assert any(f"{paths[2].stem}.html is missing" in p for p in problems)
    assert any(f"{paths[1].stem}.html has no link to {paths[0].stem}.html" in p for p in problems)


def test_error_output_fails_the_build(course, capsys):
    paths, done, out, _ = course
    nb = nbformat.read(paths[1], as_version=4)
    error = new_output("error", ename="ZeroDivisionError", evalue="division by zero",
                       traceback=["Traceback (most recent call last)", "ZeroDivisionError: division by zero"])
    nbformat.write(_executed(nb, [error]), done / paths[1].name)
    assert _build(paths, done, out) == 1
    err = capsys.readouterr().err
    assert f"{paths[1].name}: cell 1 raised ZeroDivisionError: division by zero" in err


def test_unexecuted_cell_and_stale_or_missing_copy_fail_the_build(course, capsys):
    paths, done, out, _ = course
    nb = nbformat.read(done / paths[0].name, as_version=4)
    nb.cells[1].execution_count = None
    nbformat.write(nb, done / paths[0].name)
    assert _build(paths, done, out) == 1
    assert "cell 1 was not executed" in capsys.readouterr().err

    nbformat.write(_executed(_chapter("Chapter 1 — Walls", "print('changed since')")), done / paths[0].name)
    assert _build(paths, done, out) == 1
    assert "the executed copy differs from the chapter at cell 1" in capsys.readouterr().err

    (done / paths[0].name).unlink()
    assert _build(paths, done, out) == 1
    assert "no executed copy" in capsys.readouterr().err


def test_title_falls_back_to_the_file_name_and_bad_arguments_are_named():
    nb = new_notebook(cells=[new_markdown_cell("no heading here"), new_code_cell("1")])
    assert build_book.chapter_title(nb, "ch09_x") == "ch09_x"
    assert build_book.chapter_title(_chapter("Chapter 9 — Nine"), "ch09_x") == "Chapter 9 — Nine"
    with pytest.raises(TypeError, match="fallback"):
        build_book.chapter_title(nb, "")
    with pytest.raises(ValueError, match="sources"):
        build_book.load_chapters([])
    with pytest.raises(ValueError, match="sources"):
        build_book.load_chapters([Path("no/such/notebook.ipynb")])
    with pytest.raises(ValueError, match="timeout"):
        build_book.execute(Path("x.ipynb"), timeout=0)
    chapters = [build_book.Chapter("ch01_a", "A", "", _executed(_chapter("A")))]
    with pytest.raises(ValueError, match="index"):
        build_book.navigation(chapters, 1)
    with pytest.raises(ValueError, match="repository"):
        build_book.render_book(chapters, Path("/nonexistent/out"), repository="not a repo")


@pytest.mark.slow
def test_fresh_execution_renders_outputs_and_a_failing_cell_fails(tmp_path, capsys):
    src = tmp_path / "notebooks"
    src.mkdir()
    good, bad = src / "ch01_good.ipynb", src / "ch02_bad.ipynb"
    nbformat.write(_chapter("Chapter 1 — Good", "print(sum(range(10)))"), good)
    assert build_book.main([str(good), "--out", str(tmp_path / "book"), "--timeout", "120"]) == 0
    page = (tmp_path / "book" / "ch01_good.html").read_text()
    assert ">45\n<" in page or "45\n" in page
    nbformat.write(_chapter("Chapter 2 — Bad", "1 / 0"), bad)
    assert build_book.main([str(good), str(bad), "--out", str(tmp_path / "book2"), "--timeout", "120"]) == 1
    assert "ch02_bad.ipynb: a cell raised an error" in capsys.readouterr().err
