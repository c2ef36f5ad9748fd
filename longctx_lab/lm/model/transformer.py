"""``TinyLM``: a small decoder-only transformer (pre-norm RMSNorm, RoPE, GQA, sliding windows, SwiGLU/GELU).

``TinyLM(config, seed=0)`` builds the model with seeded weights (its own ``torch.Generator``: the global RNG is
untouched). ``model(tokens)`` maps ``(batch, seq)`` int64 token ids to ``(batch, seq, vocab_size)`` logits.

- Without caches: causal attention over ``tokens`` (positions ``0 .. seq - 1``, or ``positions``), through
  :func:`longctx_lab.kvcache.cached_attention`: the dispatcher (:func:`longctx_lab.kernels.dispatch.flash_attention`,
  any head dim) for the dtypes it supports, the float64-safe reference for the others.
- With ``caches`` (one :class:`longctx_lab.kvcache.KVCache` per layer, from
  :func:`longctx_lab.lm.model.make_caches`): row ``i`` of ``tokens`` continues sequence ``seq_ids[i]``; its
  positions start at that sequence's cached length, every layer appends the new keys/values and attends over
  the cached history (prefill: many tokens; decoding: one). Rows may have different histories (ragged batch).

Conventions (shapes, GQA, windows ``p - w < j <= p``, RoPE layouts): docs/conventions.md.
"""

from __future__ import annotations

import torch
from torch import nn

from longctx_lab.core.validate import check_int, check_tensor
from longctx_lab.kvcache import KVCache
from longctx_lab.lm.model.config import LMConfig
from longctx_lab.lm.model.layers import DecoderLayer, RMSNorm
from longctx_lab.lm.model.mixer_layers import MixerLayer

__all__ = ["TinyLM"]


class TinyLM(nn.Module):
    """Decoder-only LM: ``embed_tokens``, ``layers`` (:class:`~longctx_lab.lm.model.layers.DecoderLayer`), ``norm``,
    ``lm_head`` (the embedding matrix when ``config.tied_embeddings``). See the module docstring."""

    def __init__(self, config: LMConfig, *, seed: int = 0):
        super().__init__()
        if not isinstance(config, LMConfig):
            raise TypeError(f"config must be an LMConfig, got {type(config).__name__}")
        self.config = config
        with torch.random.fork_rng(devices=[]):  # the modules' default init draws from the global RNG: restore it
            torch.manual_seed(seed)  # mixer layers keep their own init (init_weights skips them): seeded here
            self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
            self.layers = nn.ModuleList(DecoderLayer(config, i) if config.mixer(i) == "attention"
                                        else MixerLayer(config, i) for i in range(config.n_layers))
            self.norm = RMSNorm(config.d_model, config.norm_eps)
            self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tied_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.set_rope(config)
        self.init_weights(seed)

    # ------------------------------------------------------------------ set-up
    def init_weights(self, seed: int = 0) -> None:
        """Seeded init: every matrix ``N(0, init_std)``, the projections into the residual stream (``o_proj``,
        ``down_proj``) scaled by ``1 / sqrt(2 n_layers)`` (GPT-2), norm weights 1. The token mixers of
        :class:`~longctx_lab.lm.model.mixer_layers.MixerLayer` (``.mixer.``, ``.conv.``) keep their own
        initialisation (decay rates, step sizes..., drawn from ``seed`` at construction)."""
        seed = check_int("seed", seed, minimum=0)
        gen = torch.Generator().manual_seed(seed)
        std = self.config.init_std
        with torch.no_grad():
            for name, p in self.named_parameters():
                if ".mixer." in name or ".conv." in name:
                    continue
                if name.endswith("layernorm.weight") or name == "norm.weight":
                    p.fill_(1.0)
                    continue
                scale = std / (2 * self.config.n_layers) ** 0.5 if name.endswith(("o_proj.weight",
                                                                                   "down_proj.weight")) else std
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64).mul_(scale).to(p.dtype))

    def set_rope(self, config: LMConfig) -> None:
        """Use ``config``'s RoPE schedule (same shape as the model's: only the rope fields may differ)."""
        if not isinstance(config, LMConfig):
            raise TypeError(f"config must be an LMConfig, got {type(config).__name__}")
        mine = {k: v for k, v in self.config.to_dict().items() if not k.startswith("rope_")}
        theirs = {k: v for k, v in config.to_dict().items() if not k.startswith("rope_")}
        if mine != theirs:
            diff = sorted(k for k in mine if mine[k] != theirs[k])
            raise ValueError(f"config must differ from the model's only in its rope_* fields, got differences in "
                             f"{diff}")
        inv_freq, factor = config.rope_frequencies()
        self.config = config
        self.rope = (inv_freq, float(factor))  # float64, not a buffer: .to(dtype) must not round it

    @property
    def dtype(self) -> torch.dtype:
        return self.embed_tokens.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.embed_tokens.weight.device

    # ------------------------------------------------------------------ forward
    def forward(self, tokens: torch.Tensor, *, caches: list[KVCache] | None = None, seq_ids=None,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(batch, seq, vocab_size)`` for ``tokens`` ``(batch, seq)`` (module docstring).

        ``positions`` (no caches only): ``(seq,)`` or ``(batch, seq)`` absolute positions, default
        ``arange(seq)``. ``caches``: ``n_layers`` caches built for this model; ``seq_ids`` the slot each row
        continues (default ``0 .. batch - 1``).
        """
        check_tensor("tokens", tokens)
        if tokens.ndim != 2 or tokens.shape[1] == 0 or tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"tokens must be a (batch, seq>=1) int64 tensor of token ids, got "
                             f"{tokens.dtype} {tuple(tokens.shape)}")
        batch, seq = tokens.shape
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.config.vocab_size):
            raise ValueError(f"tokens must be ids in [0, {self.config.vocab_size}), got values in "
                             f"[{int(tokens.min())}, {int(tokens.max())}]")
        if caches is None:
            if seq_ids is not None:
                raise ValueError("seq_ids needs caches (it names the cache slots each row continues), got caches=None")
            if positions is None:
                positions = torch.arange(seq, device=tokens.device)
        else:
            if positions is not None:
                raise ValueError("positions must be None with caches: they come from the cached lengths")
            seq_ids, positions = self._cache_positions(caches, seq_ids, batch, seq)
        x = self.embed_tokens(tokens)
        for i, layer in enumerate(self.layers):
            x = layer(x, positions, self.rope, cache=None if caches is None else caches[i], seq_ids=seq_ids)
        return self.lm_head(self.norm(x))

    def _cache_positions(self, caches, seq_ids, batch: int, seq: int):
        if isinstance(caches, KVCache) or not isinstance(caches, (list, tuple)):
            raise TypeError(f"caches must be a list of n_layers={self.config.n_layers} KVCache objects, got "
                            f"{type(caches).__name__}")
        if len(caches) != self.config.n_layers or not all(isinstance(c, KVCache) for c in caches):
            raise ValueError(f"caches must hold one KVCache per layer (n_layers={self.config.n_layers}), got "
                             f"{[type(c).__name__ for c in caches]}")
        c0 = caches[0]
        for i, c in enumerate(caches):
            if c.kv_heads != self.config.n_kv_heads or c.head_dim != self.config.head_dim or c.dtype != self.dtype:
                raise ValueError(
                    f"caches[{i}] must hold kv_heads={self.config.n_kv_heads}, head_dim={self.config.head_dim} in "
                    f"{self.dtype} (the model's), got kv_heads={c.kv_heads}, head_dim={c.head_dim}, {c.dtype}")
            if not torch.equal(c.lengths, c0.lengths):
                raise ValueError(f"caches must agree on every slot's length (fork/free every layer), got "
                                 f"{c0.lengths.tolist()} in caches[0] and {c.lengths.tolist()} in caches[{i}]")
        if seq_ids is None:
            seq_ids = list(range(batch))
        elif isinstance(seq_ids, torch.Tensor):
            seq_ids = seq_ids.tolist()
        if isinstance(seq_ids, (str, bytes)) or not isinstance(seq_ids, (list, tuple)):
            raise TypeError(f"seq_ids must be a list of slot numbers, got {type(seq_ids).__name__} {seq_ids!r}")
        ids = [check_int(f"seq_ids[{i}]", s, minimum=0) for i, s in enumerate(seq_ids)]
        if len(ids) != batch or len(set(ids)) != batch or max(ids) >= c0.batch:
            raise ValueError(f"seq_ids must name {batch} distinct slots (one per row of tokens) in [0, {c0.batch}), "
                             f"got {ids}")
        start = c0.lengths[ids].to(self.device)
        return ids, start[:, None] + torch.arange(seq, device=self.device)
