"""What a chapter shows where: live widgets, a headless kernel (nbclient, the book), a terminal.

The headless case is checked by executing a small notebook in a real kernel with nbclient, as the
notebooks stage and the book build do: no dead widget repr, no frozen progress bar, and the quiz saved
with both its JavaScript form and its plain-text form.
"""

from __future__ import annotations

import sys
import types

import ipywidgets  # noqa: F401 (imported before a test replaces IPython in sys.modules)
import nbformat
import pytest
from nbclient import NotebookClient
from tqdm.notebook import tqdm_notebook
from tqdm.std import tqdm

from longctx_lab.core import display
from longctx_lab.course.quiz import QuizDisplay, as_text, show_quiz
from longctx_lab.course.quizzes.ch01_quadratic_wall import QUIZ


class ZMQInteractiveShell:  # the class name is what the detection reads
    pass


@pytest.fixture
def kernel(monkeypatch):
    """Pretend to run inside a Jupyter kernel with no front end (as nbclient does)."""
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: ZMQInteractiveShell()
    monkeypatch.setitem(sys.modules, "IPython", fake)
    for name in ("JPY_SESSION_NAME", "VSCODE_PID", display.ENV_OVERRIDE):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)


def test_no_widgets_outside_a_kernel(monkeypatch):
    monkeypatch.delenv(display.ENV_OVERRIDE, raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", "ch01.ipynb")  # even with the variable, a terminal has no widgets
    assert not display.in_jupyter_kernel()
    assert not display.has_widget_frontend()


def test_a_headless_kernel_has_no_widget_frontend(kernel):
    assert display.in_jupyter_kernel()
    assert not display.has_widget_frontend()


@pytest.mark.parametrize("variable", ["JPY_SESSION_NAME", "VSCODE_PID"])
def test_a_live_frontend_is_recognised(kernel, monkeypatch, variable):
    monkeypatch.setenv(variable, "1")
    assert display.has_widget_frontend()


def test_colab_is_recognised(kernel, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert display.has_widget_frontend()


def test_the_override_wins_and_is_validated(kernel, monkeypatch):
    monkeypatch.setenv(display.ENV_OVERRIDE, "widgets")
    assert display.has_widget_frontend()
    monkeypatch.setenv("JPY_SESSION_NAME", "x")
    monkeypatch.setenv(display.ENV_OVERRIDE, "static")
    assert not display.has_widget_frontend()
    monkeypatch.setenv(display.ENV_OVERRIDE, "sometimes")
    with pytest.raises(ValueError, match="LONGCTX_FRONTEND"):
        display.has_widget_frontend()


def test_headless_progress_prints_one_finished_line(kernel, capsys):
    assert list(display.progress(range(3), desc="measuring")) == [0, 1, 2]
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("measuring: 3/3 in ")


def test_headless_progress_counts_an_early_stop(kernel, capsys):
    it = iter(display.progress(iter(range(10)), desc="loop", total=10))
    next(it)
    next(it)
    it.close()
    assert capsys.readouterr().out.startswith("loop: 2/10 in ")


def test_progress_in_a_terminal_and_with_widgets(monkeypatch, kernel):
    monkeypatch.setenv(display.ENV_OVERRIDE, "widgets")
    bar = display.progress([], desc="x")
    assert isinstance(bar, tqdm_notebook)
    bar.close()
    monkeypatch.delenv(display.ENV_OVERRIDE)
    monkeypatch.setitem(sys.modules, "IPython", types.ModuleType("IPython"))
    sys.modules["IPython"].get_ipython = lambda: None
    bar = display.progress([], desc="x")
    assert isinstance(bar, tqdm) and not isinstance(bar, tqdm_notebook)
    bar.close()


def test_bad_progress_arguments():
    with pytest.raises(ValueError, match="desc"):
        display.progress([], desc="")
    with pytest.raises(ValueError, match="total"):
        display.progress([], desc="x", total=-1)


def test_show_widgets_falls_back_with_a_note(kernel, capsys):
    assert display.show_widgets(lambda n: n, n=3) is False
    assert "live Jupyter kernel" in capsys.readouterr().out
    with pytest.raises(TypeError, match="function"):
        display.show_widgets(3, n=3)
    with pytest.raises(ValueError, match="controls"):
        display.show_widgets(lambda: None)


def test_quiz_display_has_a_script_form_and_a_text_form():
    bundle = QuizDisplay(QUIZ)._repr_mimebundle_()
    assert bundle["text/plain"] == as_text(QUIZ)
    html = bundle["text/html"]
    assert '<div id="quiz' in html and "<script" in html and QUIZ.questions[0].prompt[:30] in html
    assert QuizDisplay(QUIZ).html() == html  # same HTML on a rerun
    assert "https://" not in html and "http://" not in html  # nothing fetched from the network
    with pytest.raises(TypeError, match="quiz"):
        QuizDisplay("not a quiz")


def test_show_quiz_outside_a_kernel_prints_text(capsys, monkeypatch):
    monkeypatch.delenv("LONGCTX_QUIZ", raising=False)
    show_quiz(QUIZ)
    assert capsys.readouterr().out.strip() == as_text(QUIZ).strip()


NOTEBOOK_CELLS = [
    "from longctx_lab.core.display import progress, show_widgets\nimport ipywidgets as widgets",
    "total = 0\nfor i in progress(range(4), desc='steps'):\n    total += i\nprint(total)",
    "show_widgets(lambda n: print(n), n=widgets.IntSlider(value=2))",
    "from longctx_lab.course.quiz import show_quiz\n"
    "from longctx_lab.course.quizzes.ch01_quadratic_wall import QUIZ\nshow_quiz(QUIZ)",
]


@pytest.mark.slow
def test_a_headless_kernel_saves_static_outputs(tmp_path, monkeypatch):
    for name in ("JPY_SESSION_NAME", "VSCODE_PID", display.ENV_OVERRIDE, "LONGCTX_QUIZ"):
        monkeypatch.delenv(name, raising=False)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in NOTEBOOK_CELLS]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells for o in c.outputs]
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "steps: 4/4 in " in text and "6\n" in text
    assert "interactive(" not in text and "children=" not in text and "0%" not in text
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    quiz = [o for o in nb.cells[3].outputs if "text/html" in o.get("data", {})]
    assert len(quiz) == 1 and "<script" in quiz[0]["data"]["text/html"]
    assert quiz[0]["data"]["text/plain"].startswith("Quiz: ")
