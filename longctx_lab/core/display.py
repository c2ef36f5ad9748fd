"""Display for every layer: progress bars, widget panels and the course's plot style.

This is the one module that compute code (training loops, the NIAH harness, plotting helpers) imports
to show something; it sits at the bottom of the stack and imports nothing from the package.

What the notebook's front end can show: live widgets, or only what is saved in the notebook.

A chapter runs in three kinds of place. In a live front end (JupyterLab, Notebook 7, Binder, Colab,
VS Code) ipywidgets sliders and tqdm's widget progress bars work. Executed headless (nbclient,
nbconvert, nbval, the book build) the kernel is the same ``ZMQInteractiveShell``, but nobody renders
widgets: what is saved is the widget's text repr (``interactive(children=...``) or a progress bar
frozen at its first frame. In a terminal there is no kernel at all.

The kernel cannot ask the front end, so :func:`has_widget_frontend` reads what a live front end
leaves in the kernel's environment: ``jupyter_server`` (JupyterLab, Notebook 7, Binder, JupyterHub)
starts kernels with ``JPY_SESSION_NAME`` set to the notebook's path, Colab imports ``google.colab``,
VS Code sets ``VSCODE_PID``. Headless executors set none of them. ``LONGCTX_FRONTEND=widgets`` or
``=static`` overrides the guess.

- :func:`progress`: tqdm's widget bar (``tqdm.notebook``) in a live front end, tqdm's text bar in a terminal, and one
  summary line (``measuring: 3/3 in 2.1 s``) when executed headless, so a saved notebook or the book
  shows the finished count instead of a frozen bar.
- :func:`show_widgets`: an ``ipywidgets.interactive`` panel in a live front end; elsewhere a one-line
  note, and ``False``, so the chapter's static figure stands in for it.
- :func:`use_course_style`: the course's matplotlib defaults; :data:`PALETTE`, its colours.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator

ENV_OVERRIDE = "LONGCTX_FRONTEND"
_MODES = ("widgets", "static")


def in_jupyter_kernel() -> bool:
    """True inside a Jupyter kernel (live or headless), False in a terminal or plain Python."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def has_widget_frontend() -> bool:
    """True when a live front end that renders ipywidgets is attached to this kernel (see module doc)."""
    override = os.environ.get(ENV_OVERRIDE, "").strip().lower()
    if override:
        if override not in _MODES:
            raise ValueError(f"environment variable {ENV_OVERRIDE} must be one of {_MODES}, got {override!r}")
        return override == "widgets"
    if not in_jupyter_kernel():
        return False
    return bool("google.colab" in sys.modules or os.environ.get("JPY_SESSION_NAME") or os.environ.get("VSCODE_PID"))


class _SummaryProgress:
    """Iterates like tqdm but prints only one line, when the loop ends (or stops early)."""

    def __init__(self, iterable: Iterable, desc: str, total: int | None):
        self._iterable, self._desc = iterable, desc
        self._total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)

    def __iter__(self) -> Iterator:
        done, start = 0, time.perf_counter()
        try:
            for item in self._iterable:
                done += 1  # counted when handed out, so a loop that stops early reports what it took
                yield item
        finally:
            of = f"/{self._total}" if self._total is not None else ""
            print(f"{self._desc}: {done}{of} in {time.perf_counter() - start:.1f} s")

    def __len__(self) -> int:
        if self._total is None:
            raise TypeError("this progress iterable has no length")
        return self._total


def progress(iterable: Iterable, *, desc: str, total: int | None = None) -> Iterable:
    """Wrap ``iterable`` with the progress display that suits where the code runs (see module doc)."""
    if not isinstance(desc, str) or not desc:
        raise ValueError(f"desc must be a non-empty string, got {desc!r}")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
        raise ValueError(f"total must be a non-negative int or None, got {total!r}")
    if has_widget_frontend():
        from tqdm.notebook import tqdm

        return tqdm(iterable, desc=desc, total=total)
    if in_jupyter_kernel():
        return _SummaryProgress(iterable, desc, total)
    from tqdm.std import tqdm

    return tqdm(iterable, desc=desc, total=total)


def show_widgets(function: Callable, *, note: str = "", **controls) -> bool:
    """Display ``ipywidgets.interactive(function, **controls)`` where a live front end renders it.

    Returns ``True`` when the panel was displayed. Elsewhere it prints one line (``note``, or a default
    saying what needs a live kernel) and returns ``False``; the caller then shows its static figure.
    """
    if not callable(function):
        raise TypeError(f"function must be callable, got {type(function).__name__}")
    if not controls:
        raise ValueError("controls must name at least one widget (keyword arguments of function)")
    if not has_widget_frontend():
        import textwrap

        print(textwrap.fill(note or "Interactive controls need a live Jupyter kernel with widgets; the static "
                            "figure shows the same plot for fixed settings.", width=88))
        return False
    import ipywidgets
    from IPython.display import display

    display(ipywidgets.interactive(function, **controls))
    return True


#: The course's colours, in the order plots use them.
PALETTE = ["#1f5aa6", "#d1495b", "#2a9d8f", "#e9a03b", "#6b4c9a", "#5c5c5c"]

#: PNG text keys stamped on every figure drawn after :func:`use_course_style`: the height in pixels of the
#: figure's smallest visible text, and the resolution it was drawn at. The book test reads them to check
#: that a figure's text stays readable at the width the page shows it (``tests/test_browser.py``).
FIGURE_TEXT_KEY = "longctx-min-text-px"
FIGURE_DPI_KEY = "longctx-dpi"


def smallest_text_points(fig) -> float | None:
    """The font size in points of ``fig``'s smallest visible, non-empty text (tick labels included), or ``None``."""
    from matplotlib.text import Text

    sizes = [t.get_fontsize() for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip()]
    return min(sizes) if sizes else None


def _stamp_text_size(print_figure):
    """Wrap ``FigureCanvasBase.print_figure`` so a PNG carries :data:`FIGURE_TEXT_KEY` and :data:`FIGURE_DPI_KEY`."""
    import functools

    @functools.wraps(print_figure)
    def wrapper(self, filename, *args, **kwargs):
        fmt = kwargs.get("format") or (str(filename).rsplit(".", 1)[-1] if isinstance(filename, str | os.PathLike)
                                       else None)
        if fmt == "png":
            import matplotlib

            fig = self.figure
            fig.draw_without_rendering()  # tick labels get their text at draw time
            points = smallest_text_points(fig)
            dpi = kwargs.get("dpi") or matplotlib.rcParams["savefig.dpi"]
            dpi = fig.dpi if dpi == "figure" else float(dpi)
            if points is not None:
                stamp = {FIGURE_TEXT_KEY: f"{points * dpi / 72:.2f}", FIGURE_DPI_KEY: f"{dpi:g}"}
                kwargs["metadata"] = {**(kwargs.get("metadata") or {}), **stamp}
        return print_figure(self, filename, *args, **kwargs)

    wrapper._longctx_stamp = True
    return wrapper


def use_course_style() -> None:
    """Apply the course's matplotlib defaults (call once at the top of a notebook).

    Every PNG drawn afterwards also records the pixel height of its smallest text (:data:`FIGURE_TEXT_KEY`),
    so that the built book can be checked for figures whose labels shrink below a readable size.
    """
    import matplotlib.pyplot as plt  # here, not at the top: progress bars should not pay for matplotlib
    from matplotlib.backend_bases import FigureCanvasBase

    plt.rcParams.update({
        "figure.figsize": (7.5, 4.2),
        "figure.dpi": 100,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.prop_cycle": plt.cycler(color=PALETTE),
        "font.size": 11,
        "legend.frameon": False,
    })
    if not getattr(FigureCanvasBase.print_figure, "_longctx_stamp", False):
        FigureCanvasBase.print_figure = _stamp_text_size(FigureCanvasBase.print_figure)
