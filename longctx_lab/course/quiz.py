"""Chapter quizzes: a small data model, an interactive front end and a plain-text fallback.

The package owns the questions and the answer keys (numeric keys are computed by package
functions in ``longctx_lab.course.quizzes.chNN_*``). Display goes through `jupyterquiz
<https://pypi.org/project/jupyterquiz/>`_, whose JavaScript runs in JupyterLab, Colab and a
static HTML build alike; outside a notebook front end (a terminal, nbval, CI) the quiz prints as
text and answers can be checked with :func:`check_answer`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from longctx_lab.core.display import in_jupyter_kernel
from longctx_lab.core.validate import check_number


@dataclass(frozen=True)
class Option:
    """One answer of a choice question; ``explanation`` is shown as feedback when it is picked."""

    text: str
    correct: bool = False
    explanation: str = ""


@dataclass(frozen=True)
class ChoiceQuestion:
    """Single choice (exactly one correct option) or, with ``multiple=True``, many choice."""

    prompt: str
    options: tuple[Option, ...]
    multiple: bool = False

    def __post_init__(self):
        if not self.prompt:
            raise ValueError("prompt must be a non-empty string")
        if len(self.options) < 2:
            raise ValueError(f"options must hold at least 2 options, got {len(self.options)}")
        n_correct = sum(o.correct for o in self.options)
        if self.multiple and n_correct < 1:
            raise ValueError(f"a multiple-choice question needs >= 1 correct option, got {n_correct}")
        if not self.multiple and n_correct != 1:
            raise ValueError(f"a single-choice question needs exactly 1 correct option, got {n_correct}")

    @property
    def correct_indices(self) -> frozenset[int]:
        return frozenset(i for i, o in enumerate(self.options) if o.correct)


@dataclass(frozen=True)
class NumericQuestion:
    """A question whose answer is a number, accepted within ``rel_tol`` (relative) of ``answer``.

    ``answer`` should come from a package computation; ``computed_by`` names it for instructors.
    """

    prompt: str
    answer: float
    rel_tol: float = 0.02
    unit: str = ""
    explanation: str = ""
    computed_by: str = ""

    def __post_init__(self):
        check_number("answer", self.answer)
        check_number("rel_tol", self.rel_tol, exclusive_minimum=0, maximum=1)

    def accepts(self, value: float) -> bool:
        return math.isclose(float(value), self.answer, rel_tol=self.rel_tol, abs_tol=1e-12)

    @property
    def accepted_range(self) -> tuple[float, float]:
        lo, hi = self.answer * (1 - self.rel_tol), self.answer * (1 + self.rel_tol)
        return (min(lo, hi), max(lo, hi))


Question = ChoiceQuestion | NumericQuestion


@dataclass(frozen=True)
class Quiz:
    chapter: str
    title: str
    questions: tuple[Question, ...] = field(default_factory=tuple)

    def __post_init__(self):
        if not self.questions:
            raise ValueError("questions must not be empty")


@dataclass(frozen=True)
class Feedback:
    correct: bool
    message: str

    def __str__(self) -> str:
        return ("Correct. " if self.correct else "Not quite. ") + self.message


def check_answer(question: Question, answer) -> Feedback:
    """Check a learner's answer: an option index (or a set of indices for many choice), or a number."""
    if isinstance(question, NumericQuestion):
        if isinstance(answer, bool) or not isinstance(answer, (int, float)):
            raise TypeError(f"answer must be a number for a numeric question, got {type(answer).__name__}")
        if not math.isfinite(answer):
            return Feedback(False, f"{answer} is not a finite number.")
        if question.accepts(answer):
            return Feedback(True, question.explanation)
        direction = "too high" if answer > question.answer else "too low"
        return Feedback(False, f"{answer:g} is {direction}; recompute it with the chapter's formula.")
    if not isinstance(question, ChoiceQuestion):
        raise TypeError(f"question must be a ChoiceQuestion or NumericQuestion, got {type(question).__name__}")
    picked = frozenset([answer]) if isinstance(answer, int) and not isinstance(answer, bool) else frozenset(answer)
    for i in picked:
        if not isinstance(i, int) or not 0 <= i < len(question.options):
            raise ValueError(f"answer must be option indices in 0..{len(question.options) - 1}, got {answer!r}")
    if not question.multiple and len(picked) != 1:
        raise ValueError(f"answer must be one option index for a single-choice question, got {answer!r}")
    correct = picked == question.correct_indices
    notes = " ".join(question.options[i].explanation for i in sorted(picked) if question.options[i].explanation)
    return Feedback(correct, notes)


_LARGEST = 1.7976931348623157e308  # the largest float, an open end that JSON can still write


def _after_a_miss(verdict: str, q: NumericQuestion) -> str:
    """A wrong number's feedback: which way it is off, then the reasoning (the explanation shows either way)."""
    return f"{verdict} {q.explanation}" if q.explanation else f"{verdict} Recompute it with the chapter's formula."


def to_jupyterquiz(quiz: Quiz) -> list[dict]:
    """The quiz in jupyterquiz's JSON format (multiple_choice / many_choice / numeric)."""
    items = []
    for q in quiz.questions:
        if isinstance(q, ChoiceQuestion):
            items.append({
                "question": q.prompt,
                "type": "many_choice" if q.multiple else "multiple_choice",
                "answers": [
                    {"answer": o.text, "correct": o.correct,
                     "feedback": o.explanation or ("Correct." if o.correct else "Not this one.")}
                    for o in q.options
                ],
            })
        else:
            lo, hi = q.accepted_range
            unit = f" (in {q.unit})" if q.unit else ""
            items.append({
                "question": q.prompt + unit,
                "type": "numeric",
                # jupyterquiz takes the first range holding the answer, [low, high): the accepted range, then
                # below it and above it, so a wrong number is told which way it is off, as check_answer does
                "answers": [
                    {"type": "range", "range": [lo, hi], "correct": True,
                     "feedback": q.explanation or "Correct."},
                    {"type": "range", "range": [-_LARGEST, lo], "correct": False,
                     "feedback": _after_a_miss("Too low.", q)},
                    {"type": "range", "range": [hi, _LARGEST], "correct": False,
                     "feedback": _after_a_miss("Too high.", q)},
                    {"type": "default", "feedback": _after_a_miss("Not quite.", q)},
                ],
            })
    return items


def as_text(quiz: Quiz) -> str:
    """A plain-text rendering (no answers shown)."""
    lines = [f"Quiz: {quiz.title}", ""]
    for n, q in enumerate(quiz.questions, 1):
        lines.append(f"{n}. {q.prompt}")
        if isinstance(q, ChoiceQuestion):
            kind = "pick all that apply" if q.multiple else "pick one"
            lines.append(f"   ({kind}; check with check_answer(QUIZ.questions[{n - 1}], index))")
            lines.extend(f"   [{i}] {o.text}" for i, o in enumerate(q.options))
        else:
            unit = f" in {q.unit}" if q.unit else ""
            lines.append(f"   (a number{unit}; check with check_answer(QUIZ.questions[{n - 1}], value))")
        lines.append("")
    return "\n".join(lines)


class QuizDisplay:
    """A quiz as one output with two forms: jupyterquiz's HTML and JavaScript, and the plain text.

    A front end that runs JavaScript picks ``text/html`` (JupyterLab and Colab run the script of an
    output the kernel produced; a static page built from the executed notebook, like the course's book,
    runs it in the browser); anything else (a terminal, a text-only renderer) shows ``text/plain``.
    """

    def __init__(self, quiz: Quiz):
        if not isinstance(quiz, Quiz):
            raise TypeError(f"quiz must be a longctx_lab.course.quiz.Quiz, got {type(quiz).__name__}")
        self.quiz = quiz

    def html(self) -> str:
        from jupyterquiz.dynamic.loader import load_questions_script
        from jupyterquiz.dynamic.renderer import build_script, build_styles, render_div

        # one id per chapter, so a page that shows two quizzes keeps them apart and a rerun gives the same HTML;
        # jupyterquiz also uses it inside JavaScript identifiers, so letters and digits only
        div_id = "quiz" + "".join(ch for ch in self.quiz.chapter if ch.isascii() and ch.isalnum())
        prefix, static, url = load_questions_script(to_jupyterquiz(self.quiz), div_id)
        div = render_div(div_id, False, False, False, 1_000_000, 600, 10, "left")
        styles = build_styles(div_id, _QUIZ_COLORS)
        script = build_script(prefix, static, url, div_id, True)
        # jupyterquiz fetches MathJax from a CDN when the page's own MathJax has not started yet; the course's
        # pages bring their own (the book serves it locally), and an offline page must not reach out.
        script = script.replace(_MATHJAX_CDN, "").replace("document.head.appendChild(script);", "")
        # jupyterquiz calls MathJax.version[0] and MathJax.typeset wherever a global MathJax exists, but JupyterLab's
        # has no typeset (and may have no version): the quiz's script sees MathJax only where it can typeset.
        guard = ("var MathJax = (window.MathJax && window.MathJax.version && (typeof window.MathJax.typeset === "
                 "'function' || window.MathJax.Hub)) ? window.MathJax : undefined;")
        return (f"{div}</div>{styles}<script type=\"text/javascript\">\n(function () {{\n{guard}\n{script}\n}})();\n"
                "</script>")

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": as_text(self.quiz), "text/html": self.html()}

    def __repr__(self) -> str:
        return as_text(self.quiz)


_MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-svg.js"

#: jupyterquiz's default palette (the package's own colours, named here so the HTML does not change with it)
_QUIZ_COLORS = {
    "--jq-multiple-choice-bg": "#392061", "--jq-mc-button-bg": "#fafafa", "--jq-mc-button-border": "#e0e0e0e0",
    "--jq-mc-button-inset-shadow": "#555555", "--jq-many-choice-bg": "#f75c03ff", "--jq-numeric-bg": "#392061ff",
    "--jq-numeric-input-bg": "#c0c0c0", "--jq-numeric-input-label": "#101010", "--jq-numeric-input-shadow": "#999999",
    "--jq-string-bg": "#4c1a57", "--jq-incorrect-color": "#c80202", "--jq-correct-color": "#009113",
    "--jq-text-color": "#fafafa", "--jq-link-color": "#9abafa",
}


def show_quiz(quiz: Quiz, *, mode: str = "auto") -> None:
    """Display ``quiz``: interactive (jupyterquiz) wherever JavaScript can run, plain text elsewhere.

    ``mode`` is ``"auto"``, ``"interactive"`` or ``"text"``. In a Jupyter kernel, ``"auto"`` displays a
    :class:`QuizDisplay`, whose plain-text form is the fallback of a front end without JavaScript; outside
    a kernel (a terminal, a script) it prints the text. ``"text"`` always prints the text.
    """
    if mode not in ("auto", "interactive", "text"):
        raise ValueError(f"mode must be 'auto', 'interactive' or 'text', got {mode!r}")
    if not isinstance(quiz, Quiz):
        raise TypeError(f"quiz must be a longctx_lab.course.quiz.Quiz, got {type(quiz).__name__}")
    if os.environ.get("LONGCTX_QUIZ") == "text":
        mode = "text"
    if mode == "interactive" or (mode == "auto" and in_jupyter_kernel()):
        from IPython.display import display

        display(QuizDisplay(quiz))
    else:
        print(as_text(quiz))
