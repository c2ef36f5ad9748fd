"""The teaching layout of the rewritten chapters (issues 23 and 24), read from their text sources.

Each chapter in :data:`TAUGHT` opens with the course map (its own number highlighted), learning goals and
what it builds on and how long it takes; keeps code cells within 88 columns so nothing scrolls sideways in
the book; keeps its prose under 2,500 words; closes with a Summary of 4-6 bullets, then the folded
fact-check, then the quiz; and its quiz has 6-10 questions, each option (numeric answers too) explained,
none repeated from another chapter. The built pages are measured in Chromium by ``tests/test_browser.py``.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import jupytext
import pytest

pytestmark = pytest.mark.lint

ROOT = Path(__file__).resolve().parents[1]
TAUGHT = ("ch01_quadratic_wall", "ch02_rope_scaling", "ch03_sliding_window_sparse", "ch04_flash_attention",
          "ch05_kv_cache_gqa", "ch06_needle_in_a_haystack", "ch07_production_stacks", "ch08_beyond_attention")
MAX_CODE_COLUMNS = 88
MAX_PROSE_WORDS = 2500
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_MATH = re.compile(r"\$\$.*?\$\$", re.S)


def chapter_cells(stem: str):
    return jupytext.read(ROOT / "notebooks" / f"{stem}.md").cells


def prose_words(cells) -> int:
    """Words of the markdown cells, fenced blocks, display math and HTML tags left out."""
    words = 0
    for cell in cells:
        if cell.cell_type != "markdown":
            continue
        text = _MATH.sub(" ", _FENCE.sub(" ", cell.source))
        text = re.sub(r"<[^>]+>", " ", text)
        words += sum(1 for token in text.split() if re.search(r"[A-Za-z]", token))
    return words


def headings(cells) -> list[tuple[int, str]]:
    return [(i, line.lstrip("#").strip()) for i, c in enumerate(cells) if c.cell_type == "markdown"
            for line in c.source.splitlines() if re.match(r"^#{1,3} ", line)]


@pytest.mark.parametrize("stem", TAUGHT)
def test_the_chapter_opens_with_the_map_goals_and_time(stem):
    cells = chapter_cells(stem)
    number = int(stem[2:4])
    opening = cells[: next(i for i, _ in headings(cells)[1:2])] if len(headings(cells)) > 1 else cells
    code = "\n".join(c.source for c in opening if c.cell_type == "code")
    text = "\n".join(c.source for c in opening if c.cell_type == "markdown").lower()
    assert re.search(rf"draw_course_map\(\s*{number}\s*\)", code), f"{stem}: no draw_course_map({number}) before §1"
    goals = re.findall(r"^\s*(?:[-*]|\d+\.)\s+\S", text.split("goal", 1)[-1], re.M) if "goal" in text else []
    assert 3 <= len(goals), f"{stem}: the opening lists no 3-5 learning goals"
    assert "minute" in text, f"{stem}: the opening does not say about how long the chapter takes"
    assert "cpu" in text or "gpu" in text, f"{stem}: the opening does not say what runs where"
    assert "builds on" in text or "you need" in text or "before this" in text, f"{stem}: no 'builds on'"


@pytest.mark.parametrize("stem", TAUGHT)
def test_code_fits_the_book_width(stem):
    long = [f"cell {i}: {line[:60]}... ({len(line)} columns)" for i, c in enumerate(chapter_cells(stem))
            if c.cell_type == "code" and i != 1  # cell 1 is the generated install cell
            for line in c.source.splitlines() if len(line) > MAX_CODE_COLUMNS]
    assert not long, f"{stem}: code lines over {MAX_CODE_COLUMNS} columns:\n" + "\n".join(long)


@pytest.mark.parametrize("stem", TAUGHT)
def test_prose_is_at_most_2500_words(stem):
    words = prose_words(chapter_cells(stem))
    assert words <= MAX_PROSE_WORDS, f"{stem}: {words} words of prose (at most {MAX_PROSE_WORDS})"


@pytest.mark.parametrize("stem", TAUGHT)
def test_it_closes_with_summary_fact_check_and_quiz(stem):
    cells = chapter_cells(stem)
    heads = headings(cells)
    summary = [i for i, h in heads if h.lower() == "summary"]
    assert summary, f"{stem}: no 'Summary' heading"
    body = cells[summary[0]].source.split("Summary", 1)[1]
    bullets = re.findall(r"^[-*] ", body, re.M)
    if not bullets and summary[0] + 1 < len(cells) and cells[summary[0] + 1].cell_type == "markdown":
        bullets = re.findall(r"^[-*] ", cells[summary[0] + 1].source, re.M)
    assert 4 <= len(bullets) <= 6, f"{stem}: the Summary has {len(bullets)} bullets (4-6)"
    after = cells[summary[0]:]
    full = [i for i, c in enumerate(after) if c.cell_type == "code" and "show_claims(" in c.source
            and "collapsed=False" not in c.source]
    quiz = [i for i, c in enumerate(after) if c.cell_type == "code" and "show_quiz(" in c.source]
    assert full and quiz and full[-1] < quiz[-1], f"{stem}: after the Summary, the folded fact-check then the quiz"
    before = [c for c in cells[: summary[0]] if c.cell_type == "code" and "show_claims(" in c.source]
    assert all("collapsed=False" in c.source for c in before), f"{stem}: a folded claim table before the Summary"


def _quiz(stem):
    return importlib.import_module(f"longctx_lab.course.quizzes.{stem}").QUIZ


@pytest.mark.parametrize("stem", TAUGHT)
def test_the_quiz_explains_every_option(stem):
    from longctx_lab.course.quiz import ChoiceQuestion

    questions = _quiz(stem).questions
    assert 6 <= len(questions) <= 10, f"{stem}: {len(questions)} quiz questions (6-10)"
    for q in questions:
        if isinstance(q, ChoiceQuestion):
            missing = [o.text for o in q.options if not o.explanation.strip()]
            assert not missing, f"{stem}: options without an explanation in {q.prompt[:60]!r}: {missing}"
        else:
            assert q.explanation.strip(), f"{stem}: numeric question without an explanation: {q.prompt[:60]!r}"


def test_no_quiz_question_is_asked_twice_in_the_course():
    seen: dict[str, str] = {}
    for path in sorted((ROOT / "longctx_lab" / "course" / "quizzes").glob("ch*.py")):
        for q in _quiz(path.stem).questions:
            key = re.sub(r"\W+", " ", q.prompt.lower()).strip()
            assert key not in seen, f"{path.stem} repeats a question of {seen[key]}: {q.prompt[:80]!r}"
            seen[key] = path.stem


def test_prose_words_counts_prose_only():
    cells = jupytext.reads("Two words\n\n```{code-cell}\nx = 1 + 2\n```\n\n$$a + b$$ <b>bold</b> 3\n",
                           fmt="md:myst").cells
    assert prose_words(cells) == 3
