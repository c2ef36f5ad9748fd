"""A task sample as text a reader can scan: needles in brackets, long runs of filler shortened.

:func:`format_sample` decodes a :class:`longctx_lab.lm.tasks.Sample` with :data:`longctx_lab.lm.tasks.VOCAB`. Each
needle (``Sample.needle_positions`` / ``needle_lens``) is wrapped in ``[ ]``; a run of more than ``2 * keep + 1``
filler tokens outside the needles keeps its first and last ``keep`` words around ``... (n filler) ...``, where
``n`` counts the words left out. Nothing else is changed, so the shortened text still says where each needle
sits. Conventions and errors: docs/conventions.md.
"""

from __future__ import annotations

from longctx_lab.core.validate import check_int
from longctx_lab.lm.tasks import VOCAB, Sample

__all__ = ["format_sample"]


def _shorten(words: list[str], keep: int) -> list[str]:
    if len(words) <= 2 * keep + 1:
        return words
    head, tail = words[:keep], words[len(words) - keep:] if keep else []
    return [*head, f"... ({len(words) - 2 * keep} filler) ...", *tail]


def format_sample(sample: Sample, *, keep: int = 3) -> str:
    """``"<prompt> -> <answer>"`` for ``sample``, with needles in ``[ ]`` and filler runs shortened (module
    docstring). ``keep`` (an int >= 0) is how many filler words to keep at each end of a shortened run."""
    if not isinstance(sample, Sample):
        raise TypeError(f"sample must be a longctx_lab.lm.tasks.Sample, got {type(sample).__name__}")
    keep = check_int("keep", keep, minimum=0)
    filler = set(VOCAB.filler)
    starts = dict(zip(sample.needle_positions, sample.needle_lens, strict=True))
    out, run, i = [], [], 0
    while i < len(sample.prompt):
        if i in starts:
            out += _shorten(run, keep)
            run = []
            out.append(f"[{VOCAB.decode(sample.prompt[i:i + starts[i]])}]")
            i += starts[i]
            continue
        token = sample.prompt[i]
        if token in filler:
            run.append(VOCAB.tokens[token])
        else:
            out += _shorten(run, keep)
            run = []
            out.append(VOCAB.tokens[token])
        i += 1
    out += _shorten(run, keep)
    return f"{' '.join(out)} -> {VOCAB.decode(sample.answer)}"
