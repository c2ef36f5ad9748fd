"""Generation with a KV cache: prefill each prompt, then decode every sequence one token at a time.

:func:`generate` builds one cache per layer (:func:`longctx_lab.lm.model.make_caches`, any kind), prefills each
prompt (prompts of one length together; longer prompts in chunks of ``prefill_chunk`` tokens), then runs
``max_new_tokens`` decoding steps in which every sequence gets one token, whatever its length (a ragged batch:
each row's RoPE positions and attention run over its own cached history). Greedy (``temperature=0``) or
sampled from ``softmax(logits / temperature)``, optionally restricted to the ``top_k`` most likely tokens,
with a seeded ``torch.Generator`` (same seed, same tokens). No token is treated as end-of-sequence.

:func:`recompute_logits` is the reference without a cache: one causal forward over the whole sequence, whose
logits at position ``p`` are those a model recomputing from scratch at step ``p`` would get.

Shapes and conventions: docs/conventions.md; bad arguments raise ``TypeError``/``ValueError`` naming them.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

from longctx_lab.core.validate import check_int, check_number, check_optional_int
from longctx_lab.kvcache import KVCache
from longctx_lab.lm.model.caches import make_caches
from longctx_lab.lm.model.transformer import TinyLM

__all__ = ["Generation", "generate", "recompute_logits", "sample_next"]


@dataclass
class Generation:
    """Result of :func:`generate`.

    ``prompts`` and ``new_tokens``: one list of ids per sequence; ``logits``: ``(batch, max_new_tokens,
    vocab_size)``, row ``t`` the logits that chose new token ``t`` (last prefill position for ``t = 0``), or
    ``None`` when not kept; ``caches``: the per-layer caches, holding every token but the last new one.
    """

    prompts: list[list[int]]
    new_tokens: list[list[int]]
    logits: torch.Tensor | None
    caches: list[KVCache]

    @property
    def sequences(self) -> list[list[int]]:
        """Prompt followed by the new tokens, per sequence."""
        return [p + n for p, n in zip(self.prompts, self.new_tokens, strict=True)]


def _check_prompts(prompts, vocab_size: int) -> list[list[int]]:
    if isinstance(prompts, torch.Tensor):
        if prompts.ndim != 2 or prompts.is_floating_point():
            raise TypeError(f"prompts must be a (batch, seq) integer tensor or a list of token lists, got "
                            f"{prompts.dtype} {tuple(prompts.shape)}")
        prompts = prompts.tolist()
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, (list, tuple)) or not prompts:
        raise TypeError(f"prompts must be a non-empty list of token-id lists, got {type(prompts).__name__}")
    out = []
    for i, p in enumerate(prompts):
        if isinstance(p, torch.Tensor):
            p = p.tolist()
        if isinstance(p, (str, bytes)) or not isinstance(p, (list, tuple)) or not p:
            raise ValueError(f"prompts[{i}] must be a non-empty list of token ids, got {p!r}")
        if any(isinstance(t, bool) or not isinstance(t, numbers.Integral) or not 0 <= t < vocab_size for t in p):
            raise ValueError(f"prompts[{i}] must hold token ids in [0, {vocab_size}), got {list(p)!r}")
        out.append([int(t) for t in p])
    return out


def sample_next(logits: torch.Tensor, *, temperature: float = 0.0, top_k: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Next token per row of ``logits`` ``(batch, vocab)``: argmax when ``temperature == 0``, else a draw from
    ``softmax(logits / temperature)`` (float64) over the ``top_k`` largest (all when ``None``). ``(batch,)`` int64."""
    temperature = check_number("temperature", temperature, minimum=0.0)
    top_k = check_optional_int("top_k", top_k, minimum=1)
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    scaled = logits.double() / temperature
    if top_k is not None and top_k < scaled.shape[-1]:
        kth = scaled.topk(top_k, dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(logits.device)


@torch.no_grad()
def generate(
    model: TinyLM,
    prompts,
    max_new_tokens: int,
    *,
    cache: str = "contiguous",
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int = 0,
    prefill_chunk: int | None = None,
    capacity: int | None = None,
    keep_logits: bool = True,
    **cache_options,
) -> Generation:
    """Prefill ``prompts`` (a list of token-id lists, lengths may differ, or a ``(batch, seq)`` tensor), then
    decode ``max_new_tokens`` tokens for each (module docstring).

    ``cache``: a kind of :data:`longctx_lab.lm.model.CACHE_KINDS`; ``capacity`` tokens per slot (default: the
    longest prompt plus ``max_new_tokens``); ``prefill_chunk``: most prompt tokens per forward (default: the
    longest prompt; the rolling buffers get ``chunk=prefill_chunk``); ``cache_options`` go to
    :func:`~longctx_lab.lm.model.make_caches`. ``seed`` seeds the sampler's generator.
    """
    if not isinstance(model, TinyLM):
        raise TypeError(f"model must be a TinyLM, got {type(model).__name__}")
    prompts = _check_prompts(prompts, model.config.vocab_size)
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    check_number("temperature", temperature, minimum=0.0)
    check_optional_int("top_k", top_k, minimum=1)
    longest = max(map(len, prompts))
    chunk = longest if prefill_chunk is None else check_int("prefill_chunk", prefill_chunk, minimum=1)
    capacity = longest + max_new_tokens if capacity is None else check_int("capacity", capacity, minimum=1)
    batch, device = len(prompts), model.device
    caches = make_caches(model.config, cache, batch=batch, capacity=capacity, dtype=model.dtype, device=device,
                         chunk=chunk, **cache_options)
    last = torch.empty(batch, model.config.vocab_size, dtype=model.dtype, device=device)
    by_length: dict[int, list[int]] = {}
    for s, p in enumerate(prompts):
        by_length.setdefault(len(p), []).append(s)
    for length, ids in by_length.items():
        tokens = torch.tensor([prompts[s] for s in ids], dtype=torch.long, device=device)
        for start in range(0, length, chunk):
            logits = model(tokens[:, start:start + chunk], caches=caches, seq_ids=ids)
        last[ids] = logits[:, -1]
    gen = torch.Generator().manual_seed(seed)
    new = torch.empty(batch, max_new_tokens, dtype=torch.long, device=device)
    kept = torch.empty(batch, max_new_tokens, model.config.vocab_size, dtype=model.dtype) if keep_logits else None
    everyone = list(range(batch))
    for t in range(max_new_tokens):
        if kept is not None:
            kept[:, t] = last.cpu()
        new[:, t] = sample_next(last, temperature=temperature, top_k=top_k, generator=gen)
        if t + 1 < max_new_tokens:
            last = model(new[:, t:t + 1], caches=caches, seq_ids=everyone)[:, -1]
    return Generation(prompts=prompts, new_tokens=new.tolist(), logits=kept, caches=caches)


@torch.no_grad()
def recompute_logits(model: TinyLM, sequence) -> torch.Tensor:
    """Logits ``(len(sequence), vocab_size)`` of one causal forward over ``sequence`` (token ids) without a cache:
    row ``p`` is what recomputing from scratch after ``p + 1`` tokens gives (causality)."""
    tokens = torch.as_tensor(_check_prompts([sequence], model.config.vocab_size)[0], device=model.device)
    return model(tokens[None])[0]
