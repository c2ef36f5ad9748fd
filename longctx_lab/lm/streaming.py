"""Perplexity of a long text through a KV cache, chunk by chunk: full attention, a sliding window, and a sliding
window with attention sinks (StreamingLLM, Xiao et al. 2023), on a :class:`~longctx_lab.lm.model.TinyLM`.

:func:`chunked_nll` feeds the text ``chunk`` tokens at a time through the model with one cache per layer, so
memory stays at the cache plus one chunk's activations however long the text is; it returns every token's
negative log-likelihood (natural log, float64). The caches decide what each token sees:

- :func:`full_caches`: every earlier token (a contiguous cache of the text's length);
- :func:`sink_caches`: a rolling buffer of ``window`` keys (:class:`longctx_lab.kvcache.RollingKVCache`), plus the
  first ``sinks`` tokens kept for good when ``sinks > 0``. Keys keep the positions they were rotated at, so past
  the trained context the window alone stays within trained distances while a sink is ``p`` tokens behind.
- any list of :mod:`longctx_lab.kvcache` caches (quantized, paged...), e.g. from
  :func:`longctx_lab.lm.model.make_caches`.

:func:`segment_perplexity` turns the per-token NLL into ``exp(mean NLL)`` per segment of ``segment`` tokens (the
curve StreamingLLM plots); :func:`python_docs_text` is a long natural-English text that ships with Python (the
``pydoc_data.topics`` module, some 400-700 KB of documentation prose by Python version).

Conventions and errors: docs/conventions.md.
"""

from __future__ import annotations

import math

import torch

from longctx_lab.core.display import progress
from longctx_lab.core.validate import check_int
from longctx_lab.kvcache import ContiguousKVCache, KVCache, RollingKVCache

__all__ = ["chunked_nll", "full_caches", "python_docs_text", "segment_perplexity", "sink_caches"]


def python_docs_text() -> str:
    """The documentation prose of ``pydoc_data.topics.topics`` (shipped with CPython), topics in sorted order."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name].strip() for name in sorted(topics))


def _check_model(model):
    from longctx_lab.lm.model import TinyLM

    if not isinstance(model, TinyLM):
        raise TypeError(f"model must be a TinyLM, got {type(model).__name__}")
    return model


def full_caches(model, length: int) -> list[KVCache]:
    """One contiguous cache of ``length`` tokens per layer of ``model`` (full attention)."""
    _check_model(model)
    length = check_int("length", length, minimum=1)
    c = model.config
    return [ContiguousKVCache(length, batch=1, kv_heads=c.n_kv_heads, head_dim=c.head_dim, dtype=model.dtype,
                              device=model.device) for _ in range(c.n_layers)]


def sink_caches(model, window: int, *, sinks: int = 0, chunk: int = 1) -> list[KVCache]:
    """One :class:`RollingKVCache` per layer of ``model``: a window of ``window`` keys and ``sinks`` attention
    sinks, for forwards of at most ``chunk`` tokens. The model's layers must have no window of their own."""
    _check_model(model)
    c = model.config
    own = sorted({w for w in (c.window(i) for i in range(c.n_layers)) if w is not None})
    if own:
        raise ValueError(f"model must have no sliding window of its own (the caches set it), got windows {own}")
    return [RollingKVCache(window, batch=1, kv_heads=c.n_kv_heads, head_dim=c.head_dim, dtype=model.dtype,
                           device=model.device, chunk=chunk, sinks=sinks) for _ in range(c.n_layers)]


@torch.no_grad()
def chunked_nll(model, ids, caches: list[KVCache] | None = None, *, chunk: int = 256,
                show_progress: bool = True) -> torch.Tensor:
    """Negative log-likelihood of tokens ``1 .. n - 1`` of ``ids`` (``n`` token ids) given what the ``caches``
    let each one see (module docstring; default :func:`full_caches`): ``(n - 1,)`` float64, natural log.

    The text goes through ``model`` ``chunk`` tokens per forward; rolling caches must be built with at least
    that ``chunk``. The caches must be empty; they hold the text afterwards.
    """
    _check_model(model)
    chunk = check_int("chunk", chunk, minimum=1)
    if isinstance(ids, torch.Tensor):
        ids = ids.tolist()
    ids = [int(i) for i in ids]
    if len(ids) < 2:
        raise ValueError(f"ids must hold at least 2 token ids (one to predict), got {len(ids)}")
    caches = full_caches(model, len(ids)) if caches is None else caches
    busy = [i for i, c in enumerate(caches) if isinstance(c, KVCache) and int(c.lengths.max()) > 0]
    if busy:
        raise ValueError(f"caches must be empty, got tokens in caches {busy}")
    tokens = torch.tensor(ids, dtype=torch.long, device=model.device)[None]
    nll = torch.empty(len(ids) - 1, dtype=torch.float64)
    starts = range(0, len(ids) - 1, chunk)
    for start in (progress(starts, desc="perplexity") if show_progress else starts):
        stop = min(start + chunk, len(ids) - 1)
        logits = model(tokens[:, start:stop], caches=caches)[0].double()
        target = tokens[0, start + 1:stop + 1].cpu()
        nll[start:stop] = torch.nn.functional.cross_entropy(logits.cpu(), target, reduction="none")
    if not torch.isfinite(nll).all():
        raise ValueError("the model gave a non-finite log-likelihood (check the weights and the caches' dtype)")
    return nll


def segment_perplexity(nll: torch.Tensor, segment: int) -> list[dict]:
    """``exp(mean NLL)`` over consecutive segments of ``segment`` predicted tokens: one dict per segment with
    ``start``, ``stop`` (predicted token positions ``start + 1 .. stop``) and ``perplexity``; a shorter last
    segment is kept."""
    if not isinstance(nll, torch.Tensor) or nll.ndim != 1 or nll.numel() == 0:
        raise TypeError(f"nll must be a non-empty 1-D tensor, got {getattr(nll, 'shape', type(nll).__name__)}")
    segment = check_int("segment", segment, minimum=1)
    out = []
    for start in range(0, nll.numel(), segment):
        part = nll[start:start + segment]
        out.append({"start": start, "stop": start + part.numel(), "perplexity": math.exp(float(part.mean()))})
    return out
