"""``make_caches``: one KV cache per layer of a :class:`~longctx_lab.lm.model.TinyLM`, by kind.

Kinds (:data:`CACHE_KINDS`), each layer's cache built from :mod:`longctx_lab.kvcache`:

- ``"contiguous"``: :class:`~longctx_lab.kvcache.ContiguousKVCache`, ``capacity`` tokens per slot.
- ``"rolling"``: sliding-window layers get a :class:`~longctx_lab.kvcache.RollingKVCache` of their window
  (``window + chunk - 1`` slots, ``chunk`` the most tokens one forward brings: the prefill chunk); global
  layers, which need every key, a contiguous cache.
- ``"paged"``: :class:`~longctx_lab.kvcache.PagedKVCache`, blocks of ``block_size`` tokens, a pool of
  ``batch * ceil(capacity / block_size)`` blocks unless ``num_blocks`` is given.
- ``"quantized-int8"``, ``"quantized-int4"``: :class:`~longctx_lab.kvcache.QuantizedKVCache`, per-token
  absmax scales for keys and values, no full-precision window (``residual=0``).
- ``"kivi"`` (int4), ``"kivi-int8"``: KIVI's layout (keys per channel in groups of ``group_size`` tokens, values
  per token, the last ``residual`` tokens in full precision), :meth:`QuantizedKVCache.kivi`.

``options`` go to the cache constructors (``residual``, ``group_size``, ``key_axis``... for the quantized
kinds), so a kind's defaults can be changed; an option a constructor does not take is a ``TypeError``.
Conventions: docs/conventions.md.
"""

from __future__ import annotations

import math

import torch

from longctx_lab.core.validate import check_int, check_optional_int
from longctx_lab.kvcache import ContiguousKVCache, KVCache, PagedKVCache, QuantizedKVCache, RollingKVCache
from longctx_lab.lm.model.config import LMConfig

__all__ = ["CACHE_KINDS", "make_caches"]

CACHE_KINDS = ("contiguous", "rolling", "paged", "quantized-int8", "quantized-int4", "kivi", "kivi-int8")


def make_caches(
    config: LMConfig,
    kind: str = "contiguous",
    *,
    batch: int = 1,
    capacity: int | None = None,
    dtype=torch.float32,
    device=None,
    chunk: int = 1,
    block_size: int = 16,
    num_blocks: int | None = None,
    **options,
) -> list[KVCache]:
    """``config.n_layers`` caches of ``kind`` for ``batch`` slots of ``capacity`` tokens (default
    ``config.max_positions``) in ``dtype`` (the model's). ``chunk``: most tokens per forward for rolling
    buffers; ``block_size``/``num_blocks``: paged pool. See the module docstring."""
    if not isinstance(config, LMConfig):
        raise TypeError(f"config must be an LMConfig, got {type(config).__name__}")
    if kind not in CACHE_KINDS:
        raise ValueError(f"kind must be one of {CACHE_KINDS}, got {kind!r}")
    batch = check_int("batch", batch, minimum=1)
    capacity = config.max_positions if capacity is None else check_int("capacity", capacity, minimum=1)
    chunk = check_int("chunk", chunk, minimum=1)
    block_size = check_int("block_size", block_size, minimum=1)
    num_blocks = check_optional_int("num_blocks", num_blocks, minimum=1)
    shape = {"batch": batch, "kv_heads": config.n_kv_heads, "head_dim": config.head_dim, "dtype": dtype,
             "device": device}
    caches: list[KVCache] = []
    for layer in range(config.n_layers):
        window = config.window(layer)
        if kind == "contiguous" or (kind == "rolling" and window is None):
            caches.append(ContiguousKVCache(capacity, **shape, **options))
        elif kind == "rolling":
            caches.append(RollingKVCache(window, chunk=chunk, **shape, **options))
        elif kind == "paged":
            per_seq = math.ceil(capacity / block_size)
            caches.append(PagedKVCache(block_size, batch * per_seq if num_blocks is None else num_blocks,
                                       max_blocks_per_seq=per_seq, **shape, **options))
        elif kind.startswith("quantized"):
            bits = 8 if kind.endswith("int8") else 4
            caches.append(QuantizedKVCache(capacity, bits=bits, **shape, **options))
        else:
            caches.append(QuantizedKVCache.kivi(capacity, bits=8 if kind == "kivi-int8" else 4, **shape, **options))
    return caches
