"""Chapter 5's experiments on KV caches: GQA variants of real configs, contiguous vs paged allocation on a
seeded request mix, and quantization error against bytes. See docs/conventions.md.

Every byte count here is either read from the cache tensors (``nbytes``, ``used_bytes``) or comes from
:func:`longctx_lab.lm.hf.planner.plan` / :mod:`longctx_lab.core.cost`; nothing re-derives a formula.

* :func:`gqa_variants`: one published config planned as multi-head (``kv_heads = heads``), as published, and
  multi-query (``kv_heads = 1``) attention, at its full context.
* :func:`request_mix` and :func:`allocation_waste`: a synthetic, seeded batch of requests caught mid-generation,
  stored in a :class:`~longctx_lab.kvcache.ContiguousKVCache` (one ``max_len`` slot per request, what a server
  must reserve when it does not know how long an answer will be) and in a
  :class:`~longctx_lab.kvcache.PagedKVCache`, with the memory each holds measured from its tensors.
* :func:`block_layout`: which blocks of a paged cache each sequence references, and how full they are
  (the data of the chapter's block-table picture).
* :func:`quantization_sweep`: attention through :class:`~longctx_lab.kvcache.QuantizedKVCache` layouts
  (int8/int4, per-token/per-channel scales, KIVI) on keys with outlier channels, error against float64
  attention over the unquantized history, and bytes held.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from longctx_lab.attention.reference import naive_attention
from longctx_lab.core.configs import ModelConfig
from longctx_lab.core.cost import kv_cache_bytes
from longctx_lab.core.validate import check_int, check_number
from longctx_lab.kvcache import ContiguousKVCache, PagedKVCache, QuantizedKVCache
from longctx_lab.lm.hf.config import from_hf_config
from longctx_lab.lm.hf.planner import Plan, plan

__all__ = [
    "QUANT_LAYOUTS",
    "Request",
    "allocation_waste",
    "block_layout",
    "gqa_variants",
    "quantization_sweep",
    "request_mix",
]


# ---------------------------------------------------------------------------------------------- GQA variants

def gqa_variants(config, *, context: int | None = None, kv_dtype="bf16") -> dict[str, Plan]:
    """``{"MHA": plan, "GQA": plan, "MQA": plan}`` of ``config`` at ``context`` (default: its full context).

    ``config`` is a :class:`ModelConfig` or anything :func:`longctx_lab.lm.hf.planner.plan` reads (a shipped config's
    name, a ``config.json`` path or dict). "GQA" is the config as published (its ``n_kv_heads``, whatever they
    are); "MHA" gives every query head its own KV head, "MQA" keeps one. Only the KV heads change.
    """
    if not isinstance(config, ModelConfig):
        config = from_hf_config(config)
    variants = {"MHA": config.n_heads, "GQA": config.n_kv_heads, "MQA": 1}
    return {label: plan(dataclasses.replace(config, n_kv_heads=kv), context=context, kv_dtype=kv_dtype)
            for label, kv in variants.items()}


# ---------------------------------------------------------------------------------------------- request mix

@dataclass(frozen=True)
class Request:
    """One request: ``prompt`` tokens, an answer of ``output`` tokens, ``generated`` of them produced so far."""

    prompt: int
    output: int
    generated: int

    @property
    def length(self) -> int:
        """Tokens in the cache now: the prompt and the tokens generated so far."""
        return self.prompt + self.generated

    @property
    def final(self) -> int:
        """Tokens in the cache when the answer is complete."""
        return self.prompt + self.output


def request_mix(n_requests: int, *, max_len: int = 2048, median_prompt: int = 200, median_output: int = 150,
                seed: int = 0) -> list[Request]:
    """``n_requests`` synthetic requests, each caught at a uniformly random step of its answer.

    Prompt and answer lengths are log-normal (sigma 1: a long tail, as in chat traces) around the given medians,
    at least one token each, and ``prompt + output <= max_len`` (the server's length limit; a longer answer is
    cut there). ``generated`` is uniform in ``1 .. output``. Seeded: the same ``seed`` gives the same mix.
    """
    n_requests = check_int("n_requests", n_requests, minimum=1)
    max_len = check_int("max_len", max_len, minimum=2)
    median_prompt = check_int("median_prompt", median_prompt, minimum=1)
    median_output = check_int("median_output", median_output, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    prompts = np.clip(np.round(rng.lognormal(math.log(median_prompt), 1.0, n_requests)), 1, max_len - 1)
    outputs = np.maximum(1, np.round(rng.lognormal(math.log(median_output), 1.0, n_requests)))
    outputs = np.minimum(outputs, max_len - prompts)
    done = rng.random(n_requests)
    return [Request(int(p), int(o), int(1 + math.floor(f * o))) for p, o, f in zip(prompts, outputs, done)]


def allocation_waste(requests: list[Request], *, max_len: int, block_size: int = 16, kv_heads: int = 1,
                     head_dim: int = 2, seed: int = 0) -> dict:
    """Store ``requests`` (their tokens so far) in a contiguous and in a paged cache; measure what each holds.

    The contiguous cache has one ``max_len``-token slot per request (it must fit the longest possible answer);
    the paged cache has exactly the blocks the tokens need. Both hold real float32 tensors of ``kv_heads`` heads of
    ``head_dim`` (small: the fractions do not depend on the bytes per token). Returns a dict of

    * ``tokens``: tokens stored; ``bytes_per_token`` (:func:`longctx_lab.core.cost.kv_cache_bytes` of one token);
    * ``contiguous_bytes`` (``ContiguousKVCache.nbytes``) and ``paged_bytes`` (``PagedKVCache.used_bytes``),
      read from the caches, and ``token_bytes = tokens * bytes_per_token``, what the tokens themselves need;
    * the contiguous waste split as the vLLM paper does: ``reserved`` (slots for tokens the answers will still
      produce), ``internal`` (slots past each request's final length, never used) and the paged waste,
      ``paged_slack`` (the unused tail of each sequence's last block), all in tokens;
    * ``contiguous_waste`` and ``paged_waste``: the fraction of each cache's memory that holds no token;
    * ``capacity_ratio``: how many times more sequences of this mix fit in the same memory when paged.
    """
    if not isinstance(requests, list) or not requests or not all(isinstance(r, Request) for r in requests):
        raise TypeError("requests must be a non-empty list of Request (see request_mix)")
    max_len = check_int("max_len", max_len, minimum=1)
    block_size = check_int("block_size", block_size, minimum=1)
    too_long = [r for r in requests if r.final > max_len]
    if too_long:
        raise ValueError(f"max_len must hold every request's final length, got max_len={max_len} and a request "
                         f"of {too_long[0].final} tokens")
    n = len(requests)
    blocks = sum(math.ceil(r.length / block_size) for r in requests)
    common = {"batch": n, "kv_heads": kv_heads, "head_dim": head_dim, "dtype": torch.float32}
    contiguous = ContiguousKVCache(max_len, **common)
    paged = PagedKVCache(block_size, blocks, **common)
    gen = torch.Generator().manual_seed(seed)
    for s, r in enumerate(requests):
        k = torch.randn(1, kv_heads, r.length, head_dim, generator=gen)
        v = torch.randn(1, kv_heads, r.length, head_dim, generator=gen)
        contiguous.append(k, v, seq_ids=[s])
        paged.append(k, v, seq_ids=[s])
    tokens = int(contiguous.lengths.sum())
    per_token = kv_cache_bytes(1, n_layers=1, n_kv_heads=kv_heads, head_dim=head_dim, dtype=torch.float32)
    slack = sum(len(paged.blocks_of(s)) * block_size - r.length for s, r in enumerate(requests))
    return {
        "requests": n,
        "tokens": tokens,
        "bytes_per_token": per_token,
        "token_bytes": tokens * per_token,
        "contiguous_bytes": contiguous.nbytes,
        "paged_bytes": paged.used_bytes,
        "reserved": sum(r.final - r.length for r in requests),
        "internal": sum(max_len - r.final for r in requests),
        "paged_slack": slack,
        "contiguous_waste": 1 - tokens * per_token / contiguous.nbytes,
        "paged_waste": 1 - tokens * per_token / paged.used_bytes,
        "capacity_ratio": contiguous.nbytes / paged.used_bytes,
        "max_len": max_len,
        "block_size": block_size,
    }


def block_layout(cache: PagedKVCache) -> dict[int, dict]:
    """``{block: {"owners": (seq ids referencing it), "filled": tokens written in it}}`` for every block in use.

    A block shared after a fork lists several owners; a block's ``filled`` is the most any owner has in it.
    """
    if not isinstance(cache, PagedKVCache):
        raise TypeError(f"cache must be a PagedKVCache, got {type(cache).__name__}")
    layout: dict[int, dict] = {}
    lengths = cache.lengths.tolist()
    for s in cache.held():
        for i, block in enumerate(cache.blocks_of(s)):
            filled = min(cache.block_size, lengths[s] - i * cache.block_size)
            entry = layout.setdefault(block, {"owners": (), "filled": 0})
            entry["owners"] = (*entry["owners"], s)
            entry["filled"] = max(entry["filled"], filled)
    return layout


# ---------------------------------------------------------------------------------------------- quantization

#: ``(label, keyword arguments of QuantizedKVCache)``; ``None`` is the unquantized float16 cache
QUANT_LAYOUTS: tuple[tuple[str, dict | None], ...] = (
    ("fp16 (no quantization)", None),
    ("int8 per-token", {"bits": 8}),
    ("int8 per-channel", {"bits": 8, "key_axis": "channel", "value_axis": "channel"}),
    ("int4 per-token", {"bits": 4}),
    ("int4 per-channel", {"bits": 4, "key_axis": "channel", "value_axis": "channel"}),
    ("int4 K per-channel, V per-token", {"bits": 4, "key_axis": "channel", "value_axis": "token"}),
    ("int4 KIVI (+128 recent fp16)", {"bits": 4, "key_axis": "channel", "value_axis": "token", "residual": 128}),
)


def quantization_sweep(*, n_tokens: int = 1024, heads: int = 8, kv_heads: int = 2, head_dim: int = 64,
                       outlier_channels: int = 4, outlier_scale: float = 8.0, n_queries: int = 4,
                       group_size: int = 32, seed: int = 0) -> list[dict]:
    """Error and bytes of each of :data:`QUANT_LAYOUTS` on one synthetic history, float16 caches.

    Keys are standard normal with ``outlier_channels`` channels (the same in every token) scaled by
    ``outlier_scale``, the pattern KIVI reports for real keys; values are standard normal. The last
    ``n_queries`` positions attend (causal) through each cache; the error is
    ``||out - ref|| / ||ref||`` against float64 attention over the exact keys and values, and
    ``key_error`` the same ratio for the keys the cache gives back. Returns one dict per layout:
    ``{"layout", "bytes", "bytes_per_token", "ratio" (bytes of the float16 cache / bytes), "error", "key_error"}``.
    """
    n_tokens = check_int("n_tokens", n_tokens, minimum=1)
    heads, kv_heads, head_dim = (check_int(k, v, minimum=1) for k, v in
                                 (("heads", heads), ("kv_heads", kv_heads), ("head_dim", head_dim)))
    outlier_channels = check_int("outlier_channels", outlier_channels, minimum=0)
    outlier_scale = check_number("outlier_scale", outlier_scale, exclusive_minimum=0)
    n_queries = check_int("n_queries", n_queries, minimum=1)
    if n_queries > n_tokens:
        raise ValueError(f"n_queries must be <= n_tokens ({n_tokens}), got {n_queries}")
    gen = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    k = torch.randn(1, kv_heads, n_tokens, head_dim, generator=gen, dtype=torch.float64)
    channels = torch.randperm(head_dim, generator=gen)[:outlier_channels]
    k[..., channels] *= outlier_scale
    v = torch.randn(1, kv_heads, n_tokens, head_dim, generator=gen, dtype=torch.float64)
    q = torch.randn(1, heads, n_queries, head_dim, generator=gen, dtype=torch.float64)
    ref = naive_attention(q, k, v, causal=True)
    rows = []
    base_bytes = None
    for label, kwargs in QUANT_LAYOUTS:
        shape = {"batch": 1, "kv_heads": kv_heads, "head_dim": head_dim, "dtype": torch.float16}
        if kwargs is None:
            cache = ContiguousKVCache(n_tokens, **shape)
        else:
            cache = QuantizedKVCache(n_tokens, group_size=group_size, **shape, **kwargs)
        cache.append(k.half(), v.half())
        out = cache.attend(q.half()).double()
        k_back = cache.gather([0])[0].double()
        bytes_held = cache.nbytes
        base_bytes = bytes_held if base_bytes is None else base_bytes
        rows.append({
            "layout": label,
            "bytes": bytes_held,
            "bytes_per_token": bytes_held / n_tokens,
            "ratio": base_bytes / bytes_held,
            "error": float((out - ref).norm() / ref.norm()),
            "key_error": float((k_back - k).norm() / k.norm()),
        })
    return rows
