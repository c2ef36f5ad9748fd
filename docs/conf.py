"""Sphinx configuration of the course book (``make book``): Sphinx + MyST-NB + sphinx-book-theme.

The chapters are the course notebooks. ``tools/book_sources.py`` copies them next to this file
(``docs/ch*.ipynb``, git-ignored) from ``LONGCTX_BOOK_NOTEBOOKS``:

- unset or ``notebooks``: the committed chapters, which MyST-NB then executes (``make book``); a cell
  error fails the build;
- a folder of executed copies (``make test``'s ``budget`` stage writes ``build/executed``): rendered as
  they are, after checking that every code cell ran without an error and that each copy has the
  chapter's current cells.

Math is typeset by MathJax served from the built site (sphinx-mathjax-offline), never a CDN.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from tools.book_sources import stage_chapters  # noqa: E402

REPOSITORY = "https://github.com/longctx-lab/longctx-lab"
_origin = os.environ.get("LONGCTX_BOOK_NOTEBOOKS", "notebooks")

project = "longctx-lab"
author = "the longctx-lab authors"
copyright = "the longctx-lab authors, MIT licence"
extensions = ["myst_nb", "sphinx-mathjax-offline"]
exclude_patterns = ["_build", "conf.py", "**.ipynb_checkpoints"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}

nb_execution_mode = stage_chapters(
    HERE, executed_dir=None if _origin in ("", "notebooks") else (ROOT / _origin).resolve())
nb_execution_timeout = 600
nb_execution_raise_on_error = True  # a cell error fails `make book`
nb_execution_in_temp = False  # chapters run from docs/, where they find nothing but the package
nb_merge_streams = True
# Widget views need a live kernel: never render them (their fallback output shows), never fetch their JS.
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
nb_ipywidgets_js = {}
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
html_css_files = ["course.css"]  # code blocks sized so 88 columns fit the page
html_title = "longctx-lab: how long-context language models work"
html_last_updated_fmt = None
html_context = {"default_mode": "light"}  # pydata-sphinx-theme logs an error on a first visit without it
html_theme_options = {
    "repository_url": REPOSITORY,
    "repository_branch": "main",
    "path_to_docs": "notebooks",  # a page's launch link is notebooks/<page>.ipynb in the repository
    "use_repository_button": True,
    "launch_buttons": {
        "binderhub_url": "https://mybinder.org",
        "colab_url": "https://colab.research.google.com",
        "notebook_interface": "jupyterlab",
    },
    "show_navbar_depth": 1,
    "home_page_in_toc": True,
}
