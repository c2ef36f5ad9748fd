"""Keep every notebook's MyST Markdown text source and its ``.ipynb`` in step (jupytext).

The ``.md`` beside each notebook in ``notebooks/`` and ``solutions/*/`` is what you edit; the ``.ipynb``
is what Colab, Binder, nbval and nbgrader open, stored without outputs. Each pair is declared in the
notebook's own metadata (``jupytext.formats = "ipynb,md:myst"``), not by a global jupytext config, so
the released exercises in ``exercises/`` are never paired with the answers (jupytext issue 157).

Usage::

    python tools/notebook_sources.py --sync     # rewrite each .ipynb from its .md (make sync)
    python tools/notebook_sources.py --check    # exit 1 naming the first notebook and cell that differ
    python tools/notebook_sources.py --sync notebooks/ch05_kv_cache_gqa.md    # only these

``--sync`` goes one way, text source to notebook, through ``jupytext --update``: cell ids, and the
notebook's own metadata, are kept, so syncing an unchanged source gives no diff; outputs are dropped.
``tests/test_notebook_sources.py`` (lint stage) runs the check.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORMATS = "ipynb,md:myst"


def notebooks(root: Path = ROOT) -> list[Path]:
    """Every chapter and exercise-source ``.ipynb`` (``exercises/`` is generated, so it is not here)."""
    return sorted((root / "notebooks").glob("*.ipynb")) + sorted((root / "solutions").glob("*/*.ipynb"))


def text_sources(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("*.md")) + sorted((root / "solutions").glob("*/*.md"))


def _cell_text(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _short(text: str, limit: int = 70) -> str:
    first = text.strip().splitlines()[0] if text.strip() else "(empty)"
    return first if len(first) <= limit else first[: limit - 3] + "..."


def first_difference(text_path: Path, ipynb_path: Path) -> str | None:
    """``None`` when the two agree on every cell's type, source and nbgrader metadata and on the
    pairing; otherwise one line naming the notebook and the first cell that differs."""
    import jupytext
    import nbformat

    text_nb = jupytext.read(text_path)
    ipynb = nbformat.read(ipynb_path, as_version=4)
    name = str(Path(ipynb_path).relative_to(ROOT)) if Path(ipynb_path).is_relative_to(ROOT) else str(ipynb_path)
    formats = ipynb.metadata.get("jupytext", {}).get("formats")
    if formats != FORMATS:
        return f"{name}: metadata.jupytext.formats is {formats!r}, expected {FORMATS!r} (run make sync)"
    for index in range(max(len(text_nb.cells), len(ipynb.cells))):
        if index >= len(text_nb.cells) or index >= len(ipynb.cells):
            longer = "the .ipynb" if index >= len(text_nb.cells) else "the text source"
            extra = (ipynb.cells if longer == "the .ipynb" else text_nb.cells)[index]
            return (f"{name}: cell {index} exists only in {longer} ({extra.cell_type}: "
                    f"{_short(_cell_text(extra))!r})")
        a, b = text_nb.cells[index], ipynb.cells[index]
        for what, left, right in (
            ("type", a.cell_type, b.cell_type),
            ("source", _cell_text(a), _cell_text(b)),
            ("nbgrader metadata", a.metadata.get("nbgrader"), b.metadata.get("nbgrader")),
            ("tags", a.metadata.get("tags"), b.metadata.get("tags")),
        ):
            if left != right:
                return (f"{name}: cell {index} ({_short(_cell_text(b))!r}) differs in {what} "
                        f"between {Path(text_path).name} and {Path(ipynb_path).name} (edit the .md, then make sync)")
    return None


def sync(text_path: Path) -> None:
    """Rewrite the ``.ipynb`` paired with ``text_path`` from it, keeping the notebook's cell ids, and
    store it without outputs or execution counts (notebooks are committed clean)."""
    import nbformat
    from jupytext.cli import jupytext as jupytext_cli

    jupytext_cli(["--quiet", "--to", "ipynb", "--update", str(text_path)])
    ipynb = Path(text_path).with_suffix(".ipynb")
    nb = nbformat.read(ipynb, as_version=4)
    dirty = [c for c in nb.cells if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    for cell in dirty:
        cell.outputs, cell.execution_count = [], None
    if dirty:
        nbformat.write(nb, ipynb)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--sync", action="store_true", help="rewrite each .ipynb from its .md")
    action.add_argument("--check", action="store_true", help="exit 1 if a pair differs or a notebook has no .md")
    parser.add_argument("sources", nargs="*", type=Path, help="default: every .md in notebooks/ and solutions/*/")
    args = parser.parse_args(argv)
    if args.sync:
        for path in args.sources or text_sources():
            sync(path)
        return 0
    problems = [f"{nb.relative_to(ROOT)}: no text source {nb.with_suffix('.md').name}"
                for nb in notebooks() if not nb.with_suffix(".md").exists()]
    problems += [p for nb in notebooks() if nb.with_suffix(".md").exists()
                 if (p := first_difference(nb.with_suffix(".md"), nb))]
    print("\n".join(problems) or f"{len(notebooks())} notebooks agree with their text sources")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
