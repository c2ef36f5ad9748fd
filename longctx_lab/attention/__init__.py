"""Attention in plain PyTorch: the reference, the masks, and (chapter 4) the tiled path."""

from longctx_lab.attention.masks import causal_mask, sliding_window_mask
from longctx_lab.attention.reference import naive_attention

__all__ = ["causal_mask", "naive_attention", "sliding_window_mask"]
