"""KV caches: what decoding keeps of past keys and values (rolling buffer for sliding windows)."""

from longctx_lab.kvcache.rolling import (
    RollingKVCache,
    decode_with_rolling_cache,
    rolling_memory_table,
    rolling_slot,
)

__all__ = ["RollingKVCache", "decode_with_rolling_cache", "rolling_memory_table", "rolling_slot"]
