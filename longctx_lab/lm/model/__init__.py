"""A small decoder-only transformer and its generation loop, over the caches of :mod:`longctx_lab.kvcache`.

One concept per module:

- :mod:`.config`: :class:`LMConfig`, the validated shape (vocab, widths, heads/KV heads, RoPE scheme of chapter
  2, per-layer sliding windows, MLP kind, norm epsilon, tied embeddings).
- :mod:`.layers`: RMSNorm, SwiGLU/GELU MLP, grouped-query attention with RoPE, the pre-norm block.
- :mod:`.transformer`: :class:`TinyLM` (seeded init; forward without a cache through the attention
  dispatcher, or with one cache per layer).
- :mod:`.caches`: :func:`make_caches` by kind (:data:`CACHE_KINDS`: contiguous, rolling, paged, int8/int4
  quantized, KIVI).
- :mod:`.generate`: :func:`generate` (prefill, then token-by-token decoding; greedy or seeded sampling;
  ragged prompts), :func:`recompute_logits` (the no-cache reference).
- :mod:`.io`: :func:`save_model` / :func:`load_model` (config JSON + state dict).
- :mod:`.hf`: :func:`to_hf`, the same model as a Hugging Face Llama/Mistral (needs ``transformers``), and back:
  :func:`~longctx_lab.lm.model.hf.from_hf` (a Hugging Face Llama/Mistral, or its config and state dict, as a
  ``TinyLM``).

Example::

    from longctx_lab.lm.model import LMConfig, TinyLM, generate
    config = LMConfig(vocab_size=64, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, sliding_window=[8, None])
    model = TinyLM(config, seed=0)
    out = generate(model, [[1, 2, 3], [4, 5]], 5, cache="rolling")   # ragged prompts, rolling + contiguous
    out.new_tokens                                                   # 5 greedy tokens per prompt

Conventions (shapes, GQA, windows, RoPE layouts, errors): docs/conventions.md.
"""

from longctx_lab.lm.model.caches import CACHE_KINDS, make_caches
from longctx_lab.lm.model.config import MLP_KINDS, LMConfig
from longctx_lab.lm.model.generate import Generation, generate, recompute_logits, sample_next
from longctx_lab.lm.model.io import load_metadata, load_model, save_model, shipped_checkpoint
from longctx_lab.lm.model.layers import MLP, Attention, DecoderLayer, RMSNorm
from longctx_lab.lm.model.transformer import TinyLM

__all__ = [
    "CACHE_KINDS",
    "MLP",
    "MLP_KINDS",
    "Attention",
    "DecoderLayer",
    "Generation",
    "LMConfig",
    "RMSNorm",
    "TinyLM",
    "generate",
    "load_metadata",
    "load_model",
    "make_caches",
    "recompute_logits",
    "sample_next",
    "save_model",
    "shipped_checkpoint",
]
