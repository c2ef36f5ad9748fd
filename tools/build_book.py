"""Render the course as a static HTML site: one page per chapter plus an index (``make book``).

Usage::

    python tools/build_book.py                                   # execute every chapter fresh, render build/book/
    python tools/build_book.py --from-executed build/executed    # render what the `budget` stage executed

Chapters are ``notebooks/ch*.ipynb`` in file-name order. Each is executed in a fresh ``python3`` kernel
(nbclient, working directory ``notebooks/``), or, with ``--from-executed``, read from that folder, where
``longctx-lab bench notebooks --executed-dir build/executed`` saved it (the ``budget`` stage of
``make test``, so CI executes each chapter once). Any error output, any code cell that did not run,
or an executed copy whose cells differ from the chapter fails the build (exit status 1, naming the
chapter and the cell).

Pages are rendered by nbconvert's ``lab`` HTML template: math by MathJax, plots inline as data
URIs, the quizzes' JavaScript (jupyterquiz) included. Each page gets a navigation bar (index,
previous and next chapter) at the top and bottom, and links to open the chapter in Colab and Binder.
After writing, :func:`check_book` re-reads the output: the index links every chapter page, every page
exists with its navigation and links, no page shows an error, every plot is inline. The output
folder (default ``build/book/``) is build output: it is git-ignored and never committed.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = "longctx-lab/longctx-lab"
REF = "main"
ERROR_MARK = "Traceback (most recent call last)"
NAV_CLASS = "longctx-book-nav"


class BookError(RuntimeError):
    """A chapter cannot go into the book (an error output, a cell that did not run, a stale copy...)."""


@dataclass
class Chapter:
    stem: str  # ch01_quadratic_wall
    title: str  # from the first markdown heading
    summary: str  # the first cell's prose after the heading, as markdown
    notebook: object  # the executed nbformat.NotebookNode

    @property
    def page(self) -> str:
        return f"{self.stem}.html"


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def chapter_title(nb, fallback: str) -> str:
    """The first ``# `` heading of the notebook's first markdown cell, or ``fallback``."""
    if not isinstance(fallback, str) or not fallback:
        raise TypeError(f"fallback must be a non-empty string, got {fallback!r}")
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+?)\s*#*\s*$", _source(cell), re.MULTILINE)
            if match:
                return match.group(1)
            break
    return fallback


def chapter_summary(nb) -> str:
    """The first markdown cell without its title heading (what the chapter teaches and needs)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            return re.sub(r"^#\s+.*$", "", _source(cell), count=1, flags=re.MULTILINE).strip()
    return ""


def check_executed(nb, name: str, source=None) -> None:
    """Raise :class:`BookError` if ``nb`` holds an error output or an unexecuted code cell, or if its
    cells differ from ``source`` (the chapter it claims to be an executed copy of)."""
    if source is not None:
        got = [(c.cell_type, _source(c)) for c in nb.cells]
        want = [(c.cell_type, _source(c)) for c in source.cells]
        if got != want:
            diff = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            raise BookError(f"{name}: the executed copy differs from the chapter at cell {diff} "
                            f"({len(got)} vs {len(want)} cells); execute it again")
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                raise BookError(f"{name}: cell {index} raised {out.get('ename')}: {out.get('evalue')}")
        if cell.get("execution_count") is None and _source(cell).strip():
            raise BookError(f"{name}: cell {index} was not executed (did an earlier cell stop the run?)")


def execute(path: Path, timeout: int = 600):
    """Execute the notebook at ``path`` in a fresh ``python3`` kernel, in its own folder; return it."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
        raise ValueError(f"timeout must be an integer >= 1 (seconds per cell), got {timeout!r}")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as exc:
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise BookError(f"{path.name}: a cell raised an error: {last}") from exc
    return nb


def load_chapters(sources: list[Path], executed_dir: Path | None = None, timeout: int = 600) -> list[Chapter]:
    """Execute each chapter (or read its executed copy from ``executed_dir``) and check it."""
    import nbformat

    if not isinstance(sources, list) or not sources:
        raise ValueError(f"sources must be a non-empty list of notebook paths, got {sources!r}")
    chapters = []
    for path in sources:
        path = Path(path)
        if path.suffix != ".ipynb" or not path.is_file():
            raise ValueError(f"sources must hold existing .ipynb files, got {path}")
        source = nbformat.read(path, as_version=4)
        if executed_dir is None:
            start = time.monotonic()
            nb = execute(path, timeout)
            print(f"executed {path.name} in {time.monotonic() - start:.1f} s", flush=True)
        else:
            copy = Path(executed_dir) / path.name
            if not copy.is_file():
                raise BookError(f"{path.name}: no executed copy in {executed_dir} "
                                "(run `longctx-lab bench notebooks --executed-dir build/executed` first)")
            nb = nbformat.read(copy, as_version=4)
        check_executed(nb, path.name, source)
        chapters.append(Chapter(path.stem, chapter_title(source, path.stem), chapter_summary(source), nb))
    return chapters


def colab_url(stem: str, repository: str = REPOSITORY, ref: str = REF) -> str:
    return f"https://colab.research.google.com/github/{repository}/blob/{ref}/notebooks/{stem}.ipynb"


def binder_url(stem: str, repository: str = REPOSITORY, ref: str = REF) -> str:
    return f"https://mybinder.org/v2/gh/{repository}/{ref}?urlpath=lab/tree/notebooks/{stem}.ipynb"


_NAV_STYLE = f"""<style>
.{NAV_CLASS} {{ display: flex; flex-wrap: wrap; gap: .4em 1.2em; align-items: center; max-width: 1100px;
  margin: .6em auto; padding: .5em 1em; border: 1px solid #d0d7de; border-radius: 6px; background: #f6f8fa;
  font: 14px/1.4 system-ui, sans-serif; }}
.{NAV_CLASS} a {{ color: #0969da; text-decoration: none; }}
.{NAV_CLASS} a:hover {{ text-decoration: underline; }}
.{NAV_CLASS} .spacer {{ flex: 1; }}
.{NAV_CLASS} .disabled {{ color: #8c959f; }}
</style>"""


def navigation(chapters: list[Chapter], index: int, repository: str = REPOSITORY, ref: str = REF) -> str:
    """The navigation bar of chapter ``index``: index, previous, next, Colab, Binder."""
    if not isinstance(index, int) or not 0 <= index < len(chapters):
        raise ValueError(f"index must be in 0..{len(chapters) - 1}, got {index!r}")
    ch = chapters[index]
    prev_link = (f'<a rel="prev" href="{chapters[index - 1].page}">&larr; {html.escape(chapters[index - 1].title)}</a>'
                 if index > 0 else '<span class="disabled">&larr; (first chapter)</span>')
    next_link = (f'<a rel="next" href="{chapters[index + 1].page}">{html.escape(chapters[index + 1].title)} &rarr;</a>'
                 if index + 1 < len(chapters) else '<span class="disabled">(last chapter) &rarr;</span>')
    return (f'<nav class="{NAV_CLASS}"><a rel="index" href="index.html">Course index</a>{prev_link}'
            f'<span class="spacer"></span>'
            f'<a class="colab" href="{colab_url(ch.stem, repository, ref)}">Open in Colab</a>'
            f'<a class="binder" href="{binder_url(ch.stem, repository, ref)}">Launch on Binder</a>'
            f"{next_link}</nav>")


def index_page(chapters: list[Chapter], repository: str = REPOSITORY, ref: str = REF) -> str:
    """The course index: every chapter with its title, what it teaches, and its page/Colab/Binder links."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    items = []
    for number, ch in enumerate(chapters, 1):
        items.append(
            f'<li class="chapter"><h2><a href="{ch.page}">{html.escape(ch.title)}</a></h2>'
            f'<div class="summary">{markdown2html_mistune(ch.summary)}</div>'
            f'<p class="links"><a href="{ch.page}">Read chapter {number}</a> &middot; '
            f'<a class="colab" href="{colab_url(ch.stem, repository, ref)}">Open in Colab</a> &middot; '
            f'<a class="binder" href="{binder_url(ch.stem, repository, ref)}">Launch on Binder</a></p></li>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>longctx-lab: how long-context language models work</title>
{_NAV_STYLE}
<style>
body {{ font: 16px/1.55 system-ui, sans-serif; max-width: 900px; margin: 2em auto; padding: 0 1em; color: #1f2328; }}
ol.chapters {{ padding-left: 1.2em; }} li.chapter {{ margin-bottom: 1.5em; }} li.chapter h2 {{ margin-bottom: .2em; }}
a {{ color: #0969da; }}
</style>
<script>window.MathJax = {{tex: {{inlineMath: [['$', '$'], ['\\\\(', '\\\\)']]}}}};</script>
<script async src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>
</head><body>
<h1>longctx-lab</h1>
<p>An open course, in Jupyter notebooks, on how long-context language models work. Every number is computed
by a cell; each chapter ends with a quiz. Source: <a href="https://github.com/{repository}">github.com/{repository}</a>.
</p>
<ol class="chapters">
{chr(10).join(items)}
</ol>
</body></html>
"""


def render_page(chapter: Chapter, nav: str) -> str:
    """The chapter's HTML (nbconvert ``lab`` template) with ``nav`` at the top and bottom of the body."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(chapter.notebook, resources={"metadata": {"name": chapter.title}})
    head_end = body.find("</head>")
    body_open = re.search(r"<body[^>]*>", body)
    body_close = body.rfind("</body>")
    if head_end < 0 or body_open is None or body_close < 0:
        raise BookError(f"{chapter.stem}: nbconvert's page has no <head>/<body> to add navigation to")
    return (body[:head_end] + _NAV_STYLE + body[head_end:body_open.end()] + nav
            + body[body_open.end():body_close] + nav + body[body_close:])


def render_book(chapters: list[Chapter], out: Path, repository: str = REPOSITORY, ref: str = REF) -> list[Path]:
    """Write ``index.html`` and one page per chapter into ``out`` (emptied first); return the paths."""
    if not chapters:
        raise ValueError("chapters must not be empty")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repository):
        raise ValueError(f"repository must be 'owner/name', got {repository!r}")
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    written = [out / "index.html"]
    written[0].write_text(index_page(chapters, repository, ref), encoding="utf-8")
    for i, ch in enumerate(chapters):
        page = out / ch.page
        page.write_text(render_page(ch, navigation(chapters, i, repository, ref)), encoding="utf-8")
        written.append(page)
    manifest = {"repository": repository, "ref": ref,
                "chapters": [{"stem": c.stem, "title": c.title, "page": c.page} for c in chapters]}
    (out / "book.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return written


def _hrefs(text: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', text)


def check_book(out: Path, chapters: list[Chapter] | None = None) -> list[str]:
    """Check a rendered book in ``out``; return a list of problems (empty when it is complete).

    Every chapter listed in ``book.json`` (written by :func:`render_book`) must be linked from the
    index and have its page; each page must carry the index/previous/next navigation (top and
    bottom) and its Colab and Binder links, load MathJax and show no error traceback. Given the
    ``chapters`` (their executed notebooks), every plot must also be inline in its page.
    """
    out = Path(out)
    index, manifest_path = out / "index.html", out / "book.json"
    missing = [f"{p} is missing" for p in (index, manifest_path) if not p.is_file()]
    if missing:
        return missing
    problems = []
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    listed, repository, ref = manifest["chapters"], manifest["repository"], manifest["ref"]
    if not listed:
        problems.append("the book has no chapter")
    if chapters is not None and [c.stem for c in chapters] != [e["stem"] for e in listed]:
        problems.append(f"book.json lists {[e['stem'] for e in listed]}, expected {[c.stem for c in chapters]}")
    index_links = _hrefs(index.read_text(encoding="utf-8"))
    pngs = {c.stem: sum(1 for cell in c.notebook.cells for o in cell.get("outputs", [])
                        if "image/png" in o.get("data", {})) for c in chapters or []}
    for i, entry in enumerate(listed):
        page = out / entry["page"]
        if entry["page"] not in index_links:
            problems.append(f"index.html does not link {entry['page']}")
        if not page.is_file():
            problems.append(f"{entry['page']} is missing")
            continue
        text = page.read_text(encoding="utf-8")
        links = _hrefs(text)
        expected = ["index.html", colab_url(entry["stem"], repository, ref), binder_url(entry["stem"], repository, ref)]
        if i > 0:
            expected.append(listed[i - 1]["page"])
        if i + 1 < len(listed):
            expected.append(listed[i + 1]["page"])
        for target in expected:
            if target not in links:
                problems.append(f"{entry['page']} has no link to {target}")
        if text.count(f'class="{NAV_CLASS}"') != 2:
            problems.append(f"{entry['page']} lacks the navigation bar at top and bottom")
        if "MathJax" not in text:
            problems.append(f"{entry['page']} does not load MathJax")
        if ERROR_MARK in text:
            problems.append(f"{entry['page']} shows an error traceback")
        inline = text.count("data:image/png;base64,")
        if inline < pngs.get(entry["stem"], 0):
            problems.append(f"{entry['page']} inlines {inline} of {pngs[entry['stem']]} plots")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="chapters (default: notebooks/ch*.ipynb)")
    parser.add_argument("--from-executed", type=Path, default=None, metavar="DIR",
                        help="render the executed copies in DIR instead of executing (e.g. build/executed)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "book")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell when executing")
    parser.add_argument("--repository", default=REPOSITORY, help="GitHub owner/name for Colab and Binder links")
    parser.add_argument("--ref", default=REF, help="branch or tag the Colab and Binder links open")
    args = parser.parse_args(argv)
    sources = args.notebooks or sorted((ROOT / "notebooks").glob("ch*.ipynb"))
    if not sources:
        print("no chapter notebooks found", file=sys.stderr)
        return 2
    start = time.monotonic()
    try:
        chapters = load_chapters(list(sources), args.from_executed, args.timeout)
        written = render_book(chapters, args.out, args.repository, args.ref)
    except BookError as exc:
        print(f"book: FAILED: {exc}", file=sys.stderr)
        return 1
    problems = check_book(args.out, chapters)
    for p in problems:
        print(f"book: {p}", file=sys.stderr)
    if problems:
        return 1
    size = sum(p.stat().st_size for p in written) / 2**20
    print(f"book: {len(chapters)} chapter page(s) + index in {args.out} ({size:.1f} MiB) "
          f"in {time.monotonic() - start:.1f} s; open {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
