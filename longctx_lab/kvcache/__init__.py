"""KV caches: what decoding keeps of past keys and values, behind one small interface.

Every cache holds **one attention layer** for ``batch`` sequence slots (``seq_ids`` ``0 .. batch - 1``), and
a model keeps one cache per layer (each layer may use a different kind: a rolling buffer for its
sliding-window layers, a paged or quantized cache for the global ones). The interface
(:class:`~longctx_lab.kvcache.base.KVCache`):

- ``append(k_new, v_new, seq_ids=None)``: ``(len(seq_ids), kv_heads, t, head_dim)`` new keys/values,
  ``t`` tokens for each listed sequence (default: all slots); sequences may have different lengths.
- ``attend(q, seq_ids=None, *, window=None, scale=None, backend="auto")``: ``q`` ``(len(seq_ids), heads,
  q_len, head_dim)`` holds each sequence's last ``q_len`` positions (append their keys first); causal,
  bottom-right aligned, GQA (query head ``h`` reads KV head ``h // group``), window ``p - w < j <= p``;
  through :func:`longctx_lab.kernels.dispatch.flash_attention`. Returns ``q``'s shape.
- ``lengths`` (``(batch,)``, 0 = empty slot), ``nbytes`` (bytes of K/V storage held),
  ``gather(seq_ids)`` (the cached keys and values, chronological), ``fork(src, dst)`` (``dst`` continues
  from ``src``'s history), ``free(seq_id)``.

A model calls ``fork``/``free`` on every layer's cache, so all layers agree on which slots hold what, and
reads ``lengths`` before appending for the new tokens' positions (RoPE). Prompts of different lengths are
appended (and attended) sequence by sequence, ``seq_ids=[s]``, or in groups of one length; decoding then
appends one token to every sequence at once, whatever their lengths.

Conventions: see docs/conventions.md. Errors (past capacity, wrong heads/dims/dtypes, unknown sequences)
are ``ValueError``/``TypeError`` naming the argument, and a failed call changes nothing.

Kinds, one module each:

- :class:`ContiguousKVCache` (:mod:`.contiguous`): one preallocated ``capacity``-token row per slot.
- :class:`RollingKVCache` (:mod:`.rolling`): circular buffer of the last ``window (+ chunk - 1)`` tokens.
- :class:`PagedKVCache` (:mod:`.paged`): blocks of ``block_size`` tokens, a block table per sequence, a
  :class:`BlockAllocator` (:mod:`.blocks`) with reference counts; ``fork`` shares blocks, copy-on-write.
- :class:`QuantizedKVCache` (:mod:`.quantized`): int8/int4 codes, per-token or per-channel scales,
  optional full-precision recent window; ``QuantizedKVCache.kivi(...)`` for KIVI's layout.

A new kind of cache is a module here implementing :class:`~longctx_lab.kvcache.base.KVCache`.
:func:`decode_attention_from_cache` (:mod:`.decode`) runs the flash-decoding dispatcher over a contiguous or
paged cache. Caches call :mod:`longctx_lab.kernels`; kernels never import caches.

Example: a two-layer model, prompt of 5 tokens for 2 sequences, then one decoding step::

    import torch
    from longctx_lab.kvcache import PagedKVCache, RollingKVCache

    kv_heads, heads, d = 2, 4, 16
    caches = [RollingKVCache(4, batch=2, kv_heads=kv_heads, head_dim=d, chunk=8),   # sliding-window layer
              PagedKVCache(4, 16, batch=2, kv_heads=kv_heads, head_dim=d)]          # global layer
    for t in (5, 1):                                   # prefill 5 tokens, then decode 1
        for cache in caches:                           # in the model: layer by layer
            k, v = torch.randn(2, kv_heads, t, d), torch.randn(2, kv_heads, t, d)
            cache.append(k, v)
            out = cache.attend(torch.randn(2, heads, t, d))   # (2, heads, t, d)
    for cache in caches:                               # sequence 1 is done; sample a second continuation
        cache.free(1)                                  # of sequence 0 in its slot (paged: shares blocks)
        cache.fork(0, 1)
    assert caches[1].lengths.tolist() == [6, 6]
"""

from longctx_lab.kvcache.base import KVCache, cached_attention
from longctx_lab.kvcache.blocks import BlockAllocator
from longctx_lab.kvcache.contiguous import ContiguousKVCache
from longctx_lab.kvcache.decode import decode_attention_from_cache
from longctx_lab.kvcache.paged import PagedKVCache
from longctx_lab.kvcache.quantized import QuantizedKVCache, dequantize, quantize, quantized_kv_cache_bytes
from longctx_lab.kvcache.rolling import (
    RollingKVCache,
    decode_with_rolling_cache,
    rolling_memory_table,
    rolling_slot,
)

__all__ = [
    "BlockAllocator",
    "ContiguousKVCache",
    "KVCache",
    "PagedKVCache",
    "QuantizedKVCache",
    "RollingKVCache",
    "cached_attention",
    "decode_attention_from_cache",
    "decode_with_rolling_cache",
    "dequantize",
    "quantize",
    "quantized_kv_cache_bytes",
    "rolling_memory_table",
    "rolling_slot",
]
