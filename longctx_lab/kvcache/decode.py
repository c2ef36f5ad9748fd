"""One decode step over a whole contiguous or paged cache, through the kernels' decode dispatcher.

:func:`decode_attention_from_cache` reads a cache's storage (rows, or pools and block table) and hands it to
:func:`longctx_lab.kernels.decode_dispatch.decode_attention`, whose docstring holds the semantics. It lives
here, not in :mod:`longctx_lab.kernels`, so that imports run one way: caches use kernels, never the reverse.
"""

from __future__ import annotations

import torch

from longctx_lab.kernels.decode_dispatch import decode_attention
from longctx_lab.kvcache.contiguous import ContiguousKVCache
from longctx_lab.kvcache.paged import PagedKVCache

__all__ = ["decode_attention_from_cache"]

def decode_attention_from_cache(
    q: torch.Tensor,
    cache,
    *,
    window: int | None = None,
    scale: float | None = None,
    num_splits: int | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """:func:`decode_attention` over every slot of a :class:`~longctx_lab.kvcache.ContiguousKVCache` or
    :class:`~longctx_lab.kvcache.PagedKVCache` (append the new tokens' keys and values first).

    ``q`` ``(cache.batch, heads, q_len, head_dim)``: row ``b`` holds the last ``q_len`` positions of slot ``b``;
    an empty slot (length 0) gives zeros. Rolling and quantized caches are refused (``TypeError``): use their
    ``attend``.
    """
    if isinstance(cache, PagedKVCache):
        k, v, table = cache.k_pool, cache.v_pool, cache.block_table
    elif isinstance(cache, ContiguousKVCache):
        k, v, table = cache.k, cache.v, None
    else:
        raise TypeError(f"cache must be a ContiguousKVCache or a PagedKVCache, got {type(cache).__name__} "
                        "(use its attend method)")
    return decode_attention(q, k, v, cache.lengths, block_table=table, window=window, scale=scale,
                            num_splits=num_splits, backend=backend)
