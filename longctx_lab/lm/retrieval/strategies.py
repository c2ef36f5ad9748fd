"""Three ways to answer a question about a document that may not fit the context, and their comparison.

- ``"full"``: the whole document (only meaningful where it fits the model's context).
- ``"truncate"``: the first ``budget`` tokens' worth of paragraphs (what a pipeline that cuts the input does).
- ``"retrieve"``: the ``k`` chunks that BM25 ranks best for the question, in document order.

Every prompt is the context, then ``Question: ...`` and an answer prefix that repeats the fact's wording, so a
model that finds the sentence only has to copy five digits; :func:`extract_answer` takes the first 5-digit number
of the reply.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from longctx_lab.core.display import progress
from longctx_lab.core.validate import check_int
from longctx_lab.lm.retrieval.bm25 import BM25Index
from longctx_lab.lm.retrieval.chunking import chunk_paragraphs
from longctx_lab.lm.retrieval.document import Fact

__all__ = ["STRATEGIES", "build_prompt", "compare_strategies", "context_for", "extract_answer"]

STRATEGIES = ("full", "truncate", "retrieve")
_ANSWER = re.compile(r"\d{5}")


def build_prompt(context: str, fact: Fact) -> str:
    """The context, the question, and an answer prefix ending where the code starts."""
    return (f"Read the text below and answer the question.\n\n{context}\n\n"
            f"Question: {fact.question}\nAnswer: The access code for the {fact.subject} is")


def extract_answer(reply: str) -> str | None:
    """The first 5-digit number in ``reply``, or None."""
    if not isinstance(reply, str):
        raise TypeError(f"reply must be a str, got {type(reply).__name__}")
    match = _ANSWER.search(reply)
    return match.group(0) if match else None


def context_for(strategy: str, document: str, fact: Fact, *, budget: int, count_tokens: Callable[[str], int],
                chunk_words: int = 120, k: int = 4, index: tuple[list[str], BM25Index] | None = None) -> str:
    """The context ``strategy`` gives the model for ``fact`` (``budget`` tokens for ``"truncate"``)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    budget = check_int("budget", budget, minimum=1)
    if strategy == "full":
        return document
    if strategy == "truncate":
        kept, used = [], 0
        for paragraph in document.split("\n\n"):
            cost = count_tokens(paragraph + "\n\n")
            if used + cost > budget:
                break
            kept.append(paragraph)
            used += cost
        return "\n\n".join(kept)
    chunks, bm25 = index if index is not None else _index(document, chunk_words)
    best = sorted(bm25.top(fact.question, check_int("k", k, minimum=1)))
    return "\n\n".join(chunks[i] for i in best)


def _index(document: str, chunk_words: int) -> tuple[list[str], BM25Index]:
    chunks = chunk_paragraphs(document, chunk_words)
    return chunks, BM25Index(chunks)


def compare_strategies(generate: Callable[[str, int], str], count_tokens: Callable[[str], int], document: str,
                       facts: list[Fact], *, strategies: tuple[str, ...] = STRATEGIES, budget: int = 2048,
                       chunk_words: int = 120, k: int = 4, max_new_tokens: int = 8,
                       show_progress: bool = True) -> list[dict]:
    """Ask every fact's question with every strategy; one record per (strategy, fact).

    A record holds ``strategy``, ``subject``, ``answer``, ``reply``, ``correct`` (exact 5-digit match),
    ``prompt_tokens``, ``seconds`` (the ``generate`` call) and ``in_context`` (whether the fact's sentence is in
    the prompt at all: a wrong answer with it present is the model's miss, without it the strategy's).
    """
    for s in strategies:
        if s not in STRATEGIES:
            raise ValueError(f"strategies must be drawn from {STRATEGIES}, got {s!r}")
    if not facts:
        raise ValueError("facts must be a non-empty list of Fact")
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=1)
    index = _index(document, chunk_words) if "retrieve" in strategies else None
    records = []
    jobs = [(s, f) for s in strategies for f in facts]
    for strategy, fact in (progress(jobs, desc="retrieval") if show_progress else jobs):
        context = context_for(strategy, document, fact, budget=budget, count_tokens=count_tokens,
                              chunk_words=chunk_words, k=k, index=index)
        prompt = build_prompt(context, fact)
        start = time.perf_counter()
        reply = generate(prompt, max_new_tokens)
        seconds = time.perf_counter() - start
        records.append(dict(strategy=strategy, subject=fact.subject, answer=fact.answer, reply=reply,
                            correct=extract_answer(reply) == fact.answer, prompt_tokens=count_tokens(prompt),
                            seconds=seconds, in_context=fact.sentence in context))
    return records
