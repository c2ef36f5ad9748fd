"""Cut a text into chunks of whole paragraphs (blank-line separated) of about ``size`` words each."""

from __future__ import annotations

from longctx_lab.core.validate import check_int

__all__ = ["chunk_paragraphs"]


def chunk_paragraphs(text: str, size: int) -> list[str]:
    """Consecutive paragraphs joined until a chunk reaches ``size`` words (a longer paragraph is its own chunk).

    Joining the chunks with blank lines gives back the paragraphs in order; no paragraph is split, so a fact
    written as one paragraph lands whole in one chunk.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    size = check_int("size", size, minimum=1)
    chunks, current, count = [], [], 0
    for paragraph in (p.strip() for p in text.split("\n\n")):
        if not paragraph:
            continue
        current.append(paragraph)
        count += len(paragraph.split())
        if count >= size:
            chunks.append("\n\n".join(current))
            current, count = [], 0
    if current:
        chunks.append("\n\n".join(current))
    return chunks
