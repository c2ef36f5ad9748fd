"""BM25 (Robertson and Zaragoza 2009): rank chunks of text by how well their words match a query.

A chunk's score for a query is the sum, over the query's distinct words ``t``, of

    idf(t) * f * (k1 + 1) / (f + k1 * (1 - b + b * len / avg_len))

where ``f`` is how often ``t`` occurs in the chunk, ``len`` the chunk's length in words, ``avg_len`` the mean
length and ``idf(t) = log(1 + (N - n_t + 0.5) / (n_t + 0.5))`` with ``n_t`` of the ``N`` chunks containing
``t`` (the "+1" keeps it positive for words in most chunks). Frequent words count little; repeats saturate.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from longctx_lab.core.validate import check_int, check_number

__all__ = ["BM25Index", "words"]

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """The lower-cased runs of letters and digits of ``text``, in order."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


class BM25Index:
    """BM25 scores of ``chunks`` (a list of strings) for any query (module docstring)."""

    def __init__(self, chunks: list[str], *, k1: float = 1.5, b: float = 0.75):
        if not isinstance(chunks, (list, tuple)) or not chunks or not all(isinstance(c, str) for c in chunks):
            raise ValueError(f"chunks must be a non-empty list of strings, got {type(chunks).__name__} "
                             f"of length {len(chunks) if hasattr(chunks, '__len__') else '?'}")
        self.k1 = check_number("k1", k1, minimum=0)
        self.b = check_number("b", b, minimum=0, maximum=1)
        self.counts = [Counter(words(c)) for c in chunks]
        self.lengths = [sum(c.values()) for c in self.counts]
        self.avg_length = max(sum(self.lengths) / len(self.lengths), 1e-9)
        containing = Counter(t for c in self.counts for t in c)
        n = len(chunks)
        self.idf = {t: math.log(1 + (n - m + 0.5) / (m + 0.5)) for t, m in containing.items()}

    def __len__(self) -> int:
        return len(self.counts)

    def scores(self, query: str) -> list[float]:
        """One score per chunk, in chunk order."""
        terms = set(words(query))
        out = []
        for counts, length in zip(self.counts, self.lengths, strict=True):
            norm = self.k1 * (1 - self.b + self.b * length / self.avg_length)
            out.append(sum(self.idf[t] * counts[t] * (self.k1 + 1) / (counts[t] + norm)
                           for t in terms if counts[t]))
        return out

    def top(self, query: str, k: int) -> list[int]:
        """Indices of the ``k`` best chunks (ties: the earlier chunk), best first."""
        k = check_int("k", k, minimum=1)
        scores = self.scores(query)
        return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
