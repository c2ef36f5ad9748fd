"""One claim, one verdict, in one place (issue 24): no article sentence is judged by two chapters.

Every chapter's claim set is built (chapter 6's from made-up inputs: which sentences it judges does not depend
on the measurements) and each claim is keyed by its article and its stated words, normalised. A key that two
chapters both judge fails the test, naming the chapters and their verdicts: the lower-numbered chapter keeps
the claim, the other links to it. (Within a chapter the same sentence may back several computed rows.)
"""

from __future__ import annotations

import re

import pytest

from longctx_lab.course.claim_sets import (
    ch01_quadratic_wall,
    ch02_rope_scaling,
    ch03_sliding_window_sparse,
    ch04_flash_attention,
    ch05_kv_cache_gqa,
    ch06_needle_in_a_haystack,
    ch07_production_stacks,
    ch08_beyond_attention,
)


def _ch06():
    depths = {0.0: 1.0, 0.5: 0.5, 1.0: 0.8}
    tasks = {"passkey": 1.0, "multikey": 0.1, "cwe": 0.0}
    oracle = {name: 1.0 for name in tasks}
    return ch06_needle_in_a_haystack.claims(by_depth=depths, longest_tested=512, task_scores=tasks,
                                            oracle_scores=oracle)


def claim_key(check) -> tuple[str, str]:
    """The article and its words: lower case, punctuation and spacing folded."""
    words = re.sub(r"[^a-z0-9.%]+", " ", check.stated.lower()).strip()
    return check.source, words


@pytest.fixture(scope="module")
def every_chapter():
    return {
        "ch01": ch01_quadratic_wall.claims(),
        "ch02": ch02_rope_scaling.claims(),
        "ch03": ch03_sliding_window_sparse.claims(),
        "ch04": ch04_flash_attention.claims(),
        "ch05": ch05_kv_cache_gqa.claims(),
        "ch06": _ch06(),
        "ch07": ch07_production_stacks.claims(),
        "ch08": ch08_beyond_attention.claims(),
    }


def repeated_claims(chapters: dict[str, list]) -> list[str]:
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    repeats = []
    for chapter, checks in chapters.items():
        for check in checks:
            key = claim_key(check)
            if len(key[1]) < 12:  # a bare number ("42", "80 GB") is not a sentence: context decides
                continue
            if key in seen and seen[key][0] != chapter:
                first, verdict = seen[key]
                repeats.append(f"{chapter} judges {check.stated!r} ({check.verdict}); {first} already did "
                               f"({verdict})")
            seen.setdefault(key, (chapter, check.verdict))
    return repeats


def test_no_article_sentence_is_judged_in_two_chapters(every_chapter):
    repeats = repeated_claims(every_chapter)
    assert not repeats, "\n".join(repeats)


def test_a_repeat_is_named_with_both_verdicts():
    from longctx_lab.course.claims import check_statement

    def row(verdict):
        return check_statement("x", verdict=verdict, evidence="e", source="A", explanation="why",
                               stated="Generation speed is roughly constant")

    repeats = repeated_claims({"ch01": [row("misleading")], "ch05": [row("wrong")]})
    assert repeats == ["ch05 judges 'Generation speed is roughly constant' (wrong); ch01 already did (misleading)"]
