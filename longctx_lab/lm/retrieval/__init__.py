"""Retrieval over a document longer than the model's context: chunk it, rank the chunks, answer from the best.

- :mod:`.bm25`: the words of a text and BM25 ranking (Robertson and Zaragoza 2009) of chunks for a query.
- :mod:`.chunking`: a text cut into chunks of whole paragraphs of about ``size`` words.
- :mod:`.document`: a long natural-English document (the Python documentation prose that ships with Python in
  ``pydoc_data.topics``) with seeded facts inserted, and one question per fact.
- :mod:`.strategies`: three ways to fit the document into a context budget (everything, truncation, retrieval)
  and :func:`~.strategies.compare_strategies`, which asks every question each way and records accuracy and
  cost (prompt tokens, seconds).

The model is any ``generate(prompt: str, max_new_tokens: int) -> str`` and ``count_tokens(text: str) -> int``
pair, so the same code runs a ``transformers`` model, the course's TinyLM, or a test double.
"""

from longctx_lab.lm.retrieval.bm25 import BM25Index, words
from longctx_lab.lm.retrieval.chunking import chunk_paragraphs
from longctx_lab.lm.retrieval.document import Fact, document_with_facts, documentation_text
from longctx_lab.lm.retrieval.strategies import STRATEGIES, build_prompt, compare_strategies, extract_answer

__all__ = ["BM25Index", "Fact", "STRATEGIES", "build_prompt", "chunk_paragraphs", "compare_strategies",
           "document_with_facts", "documentation_text", "extract_answer", "words"]
