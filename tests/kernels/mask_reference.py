"""The visibility rule of docs/conventions.md written out once for the kernel tests, independently of the
package's masks (so a bug in ``longctx_lab.attention.mask_predicates`` cannot hide in both sides)."""

from __future__ import annotations

import torch


def visible_mask(q_len: int, kv_len: int, causal: bool, window: int | None) -> torch.Tensor:
    """``(q_len, kv_len)`` bool: query row i (position i + kv_len - q_len) sees key j."""
    p = torch.arange(q_len)[:, None] + (kv_len - q_len)
    j = torch.arange(kv_len)[None, :]
    keep = torch.ones(q_len, kv_len, dtype=torch.bool)
    if causal:
        keep &= j <= p
    if window is not None:
        keep &= (p - j) < window
        if not causal:
            keep &= (j - p) < window
    return keep
