"""A long natural-English document with facts hidden in it, and one question per fact.

The text is the Python documentation prose that ships with every Python (``pydoc_data.topics``: what
``help("assert")`` prints), so nothing is downloaded; its length and wording depend on the Python version
(3.11: 79 topics, about 465,000 characters). :func:`document_with_facts` inserts ``n_facts`` one-sentence
paragraphs ("The access code for the green lantern is 48213.") between paragraphs at seeded places; each
:class:`Fact` carries its question and its 5-digit answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from longctx_lab.core.validate import check_int

__all__ = ["Fact", "document_with_facts", "documentation_text"]

_COLOURS = ("amber", "azure", "crimson", "emerald", "golden", "indigo", "ivory", "jade", "lilac", "maroon",
            "olive", "scarlet", "silver", "teal", "violet", "copper")
_THINGS = ("lantern", "compass", "violin", "kettle", "anchor", "telescope", "umbrella", "hourglass", "satchel",
           "harp", "lighthouse", "windmill", "carousel", "orchard", "glacier", "meadow")


@dataclass(frozen=True)
class Fact:
    """One inserted fact: ``sentence`` is its paragraph, ``question`` asks for ``answer`` (5 digits)."""

    subject: str
    answer: str
    sentence: str
    question: str
    paragraph: int  # index of the fact's paragraph in the returned document


def documentation_text(max_chars: int | None = None) -> str:
    """The ``pydoc_data.topics`` prose, topics in sorted order joined by blank lines (cut at ``max_chars``)."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[key].strip() for key in sorted(topics))
    if max_chars is not None:
        text = text[:check_int("max_chars", max_chars, minimum=1)]
    return text


def document_with_facts(n_facts: int, *, seed: int = 0, max_chars: int | None = None,
                        base: str | None = None) -> tuple[str, list[Fact]]:
    """``(document, facts)``: ``base`` (default :func:`documentation_text`) with ``n_facts`` facts inserted.

    Facts go between paragraphs at distinct places drawn with ``random.Random(seed)``, subjects are distinct
    colour-object pairs, answers distinct 5-digit numbers. ``facts`` are in document order.
    """
    n_facts = check_int("n_facts", n_facts, minimum=1)
    seed = check_int("seed", seed)
    if n_facts > len(_COLOURS) * len(_THINGS):
        raise ValueError(f"n_facts must be <= {len(_COLOURS) * len(_THINGS)}, got {n_facts}")
    text = documentation_text(max_chars) if base is None else base
    if not isinstance(text, str):
        raise TypeError(f"base must be a str, got {type(base).__name__}")
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    if len(paragraphs) < n_facts:
        raise ValueError(f"n_facts must be <= the document's {len(paragraphs)} paragraphs, got {n_facts}")
    rng = random.Random(seed)
    subjects = rng.sample([f"{c} {t}" for c in _COLOURS for t in _THINGS], n_facts)
    answers = rng.sample(range(10_000, 100_000), n_facts)
    slots = sorted(rng.sample(range(1, len(paragraphs) + 1), n_facts))
    out, facts, start = [], [], 0
    for slot, subject, answer in zip(slots, subjects, answers, strict=True):
        out.extend(paragraphs[start:slot])
        start = slot
        sentence = f"The access code for the {subject} is {answer}."
        facts.append(Fact(subject, str(answer), sentence, f"What is the access code for the {subject}?", len(out)))
        out.append(sentence)
    out.extend(paragraphs[start:])
    return "\n\n".join(out), facts
