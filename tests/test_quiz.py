"""Every chapter quiz: well-formed, keys valid, numeric keys equal to an independent computation."""

import importlib
import json
import math
import pkgutil

import pytest

import longctx_lab.course.quizzes as quizzes
from longctx_lab.course.quiz import (
    ChoiceQuestion,
    NumericQuestion,
    Option,
    Quiz,
    as_text,
    check_answer,
    show_quiz,
    to_jupyterquiz,
)

MODULES = sorted(m.name for m in pkgutil.iter_modules(quizzes.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_quiz_is_well_formed(name):
    quiz = importlib.import_module(f"longctx_lab.course.quizzes.{name}").QUIZ
    assert isinstance(quiz, Quiz)
    assert quiz.chapter == name
    assert len(quiz.questions) >= 5
    for q in quiz.questions:
        if isinstance(q, ChoiceQuestion):
            right = sorted(q.correct_indices)
            assert check_answer(q, right if q.multiple else right[0]).correct
            wrong = next(i for i in range(len(q.options)) if i not in q.correct_indices)
            assert not check_answer(q, [wrong] if q.multiple else wrong).correct
        else:
            assert isinstance(q, NumericQuestion) and math.isfinite(q.answer)
            assert q.computed_by, "a numeric key names the package computation behind it"
            assert check_answer(q, q.answer).correct
            assert not check_answer(q, q.answer * (1 + 3 * q.rel_tol) + 1).correct
    items = to_jupyterquiz(quiz)
    assert len(items) == len(quiz.questions)
    assert all(i["type"] in ("multiple_choice", "many_choice", "numeric") for i in items)
    assert "Quiz:" in as_text(quiz)


def test_chapter1_numeric_keys_by_hand():
    quiz = importlib.import_module("longctx_lab.course.quizzes.ch01_quadratic_wall").QUIZ
    numeric = [q for q in quiz.questions if isinstance(q, NumericQuestion)]
    assert numeric[0].answer == 32768**2 * 2 / 2**30
    assert numeric[1].answer == 2 * 80 * 8 * 128 * 131072 * 2 / 1e9
    assert numeric[2].answer == (4096 * 4097 / 2) / 4096**2


def test_question_validation():
    with pytest.raises(ValueError, match="exactly 1 correct option"):
        ChoiceQuestion("p", (Option("a", True), Option("b", True)))
    with pytest.raises(ValueError, match="at least 2 options"):
        ChoiceQuestion("p", (Option("a", True),))
    with pytest.raises(ValueError, match="answer must be finite"):
        NumericQuestion("p", float("nan"))
    q = ChoiceQuestion("p", (Option("a", True), Option("b")))
    with pytest.raises(ValueError, match="option indices in 0..1"):
        check_answer(q, 5)
    with pytest.raises(TypeError, match="answer must be a number"):
        check_answer(NumericQuestion("p", 2.0), "two")
    assert not check_answer(NumericQuestion("p", 2.0), float("nan")).correct
    with pytest.raises(ValueError, match="mode must be"):
        show_quiz(Quiz("c", "t", (q,)), mode="html")


def test_text_fallback_outside_a_notebook(capsys):
    quiz = Quiz("c", "A title", (ChoiceQuestion("Which?", (Option("a", True), Option("b"))),))
    show_quiz(quiz)
    out = capsys.readouterr().out
    assert "A title" in out and "[1] b" in out


def _jupyterquiz_feedback(item: dict, submission: float) -> tuple[bool, str]:
    """What jupyterquiz's numeric.js does with a submission: the first range [low, high) holding it wins."""
    for answer in item["answers"]:
        if "range" in answer and answer["range"][0] <= submission < answer["range"][1]:
            return answer["correct"], answer["feedback"]
    return False, next(a["feedback"] for a in item["answers"] if a.get("type") == "default")


@pytest.mark.parametrize("answer", [96.0, -3.5])
def test_interactive_numeric_feedback_says_too_high_or_too_low(answer):
    q = NumericQuestion("How many?", answer=answer, rel_tol=0.05, explanation="Yes.", computed_by="x")
    (item,) = to_jupyterquiz(Quiz("chXX", "t", (q,)))
    json.dumps(item, allow_nan=False)  # the open ends are plain finite numbers
    assert _jupyterquiz_feedback(item, answer) == (True, "Yes.")
    for wrong, word in ((abs(answer) * 10, "high"), (-abs(answer) * 10, "low")):
        correct, feedback = _jupyterquiz_feedback(item, wrong)
        assert not correct and feedback.lower().startswith(f"too {word}")
        assert f"too {word}" in str(check_answer(q, wrong))  # the same word as the text form
