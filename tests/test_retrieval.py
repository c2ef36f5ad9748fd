"""Chunking, BM25 and the retrieval strategies, with a fake model that answers only what it can see."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab.lm.retrieval import (
    BM25Index,
    build_prompt,
    chunk_paragraphs,
    compare_strategies,
    document_with_facts,
    extract_answer,
    words,
)
from longctx_lab.lm.retrieval.strategies import context_for


def _bm25_by_hand(chunks, query, k1=1.5, b=0.75):
    docs = [words(c) for c in chunks]
    avg = sum(map(len, docs)) / len(docs)
    out = []
    for d in docs:
        s = 0.0
        for t in set(words(query)):
            f = d.count(t)
            if not f:
                continue
            n_t = sum(t in e for e in docs)
            idf = math.log(1 + (len(docs) - n_t + 0.5) / (n_t + 0.5))
            s += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * len(d) / avg))
        out.append(s)
    return out


def test_bm25_matches_the_formula_and_ranks_the_matching_chunk_first():
    chunks = ["the cat sat on the mat", "a dog barked at the mailman", "the red cat chased a red ball"]
    index = BM25Index(chunks)
    assert index.scores("red cat") == pytest.approx(_bm25_by_hand(chunks, "red cat"))
    assert index.top("red cat", 2) == [2, 0]
    assert index.scores("zebra") == [0.0, 0.0, 0.0]


@given(st.lists(st.text(alphabet="ab \n", min_size=0, max_size=40), min_size=1, max_size=12),
       st.integers(1, 30))
def test_chunks_keep_every_paragraph_in_order(paragraphs, size):
    text = "\n\n".join(paragraphs)
    chunks = chunk_paragraphs(text, size)
    kept = [p.strip() for p in text.split("\n\n") if p.strip()]
    assert [p for c in chunks for p in c.split("\n\n")] == kept
    assert all(len(c.split()) >= size for c in chunks[:-1])


def test_document_facts_are_where_they_say_and_seeded():
    doc, facts = document_with_facts(5, seed=3, max_chars=20_000)
    paragraphs = doc.split("\n\n")
    for f in facts:
        assert paragraphs[f.paragraph] == f.sentence and re.fullmatch(r"\d{5}", f.answer)
        assert f.answer in f.sentence and f.subject in f.question
    assert [f.paragraph for f in facts] == sorted(f.paragraph for f in facts)
    assert document_with_facts(5, seed=3, max_chars=20_000) == (doc, facts)
    assert document_with_facts(5, seed=4, max_chars=20_000)[1] != facts


def _fake_model(prompt: str, max_new_tokens: int) -> str:
    """Answers with the code of the asked subject if its sentence is in the prompt, else with nothing."""
    subject = re.search(r"access code for the ([a-z]+ [a-z]+)\?", prompt).group(1)
    found = re.search(rf"The access code for the {subject} is (\d{{5}})\.", prompt)
    return f" {found.group(1)}." if found else " unknown"


def _count(text: str) -> int:
    return len(text.split())


def test_retrieval_finds_facts_truncation_cannot():
    doc, facts = document_with_facts(6, seed=0, max_chars=60_000)
    records = compare_strategies(_fake_model, _count, doc, facts, budget=500, k=3, show_progress=False)
    by = {s: [r for r in records if r["strategy"] == s] for s in ("full", "truncate", "retrieve")}
    assert all(r["correct"] for r in by["full"])
    assert all(r["correct"] for r in by["retrieve"])  # each subject is unique to its fact
    assert [r["correct"] for r in by["truncate"]] == [r["in_context"] for r in by["truncate"]]
    assert not all(r["in_context"] for r in by["truncate"])
    assert all(r["prompt_tokens"] <= 500 + 60 for r in by["truncate"])
    assert max(r["prompt_tokens"] for r in by["retrieve"]) < min(r["prompt_tokens"] for r in by["full"])


def test_prompt_and_answer_extraction():
    _, facts = document_with_facts(1, seed=1, max_chars=5_000)
    prompt = build_prompt("CONTEXT", facts[0])
    assert prompt.endswith(f"for the {facts[0].subject} is") and "CONTEXT" in prompt
    assert extract_answer(" 12345.\n") == "12345" and extract_answer("none") is None


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="chunks"):
        BM25Index([])
    with pytest.raises(ValueError, match="b must"):
        BM25Index(["a"], b=2)
    with pytest.raises(ValueError, match="size"):
        chunk_paragraphs("a", 0)
    with pytest.raises(ValueError, match="n_facts"):
        document_with_facts(10_000)
    doc, facts = document_with_facts(1, seed=0, max_chars=5_000)
    with pytest.raises(ValueError, match="strategy"):
        context_for("summarise", doc, facts[0], budget=10, count_tokens=_count)
    with pytest.raises(ValueError, match="strategies"):
        compare_strategies(_fake_model, _count, doc, facts, strategies=("nope",))
    with pytest.raises(TypeError, match="reply"):
        extract_answer(None)
