"""Helpers the claim-verdict tests share (tests/test_claims.py and tests/chapters/)."""

from __future__ import annotations

import re


def claim_value(text: str) -> float:
    """The number at the start of a ``computed``/``stated`` cell ("5,120 GB" -> 5120.0)."""
    m = re.match(r"\s*([\d,]*\.?\d+(?:e[+-]?\d+)?)", text)
    assert m, text
    return float(m[1].replace(",", ""))


def one_claim(checks, words: str):
    """The one check whose claim contains ``words`` (fails when none or several do)."""
    found = [c for c in checks if words in c.claim]
    assert len(found) == 1, (words, [c.claim for c in found])
    return found[0]
