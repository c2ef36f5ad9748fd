"""Linformer (Wang et al. 2020): project the *sequence length* of keys and values, ``n -> k``.

Linformer multiplies the keys and the values by learned matrices ``E`` and ``F`` of shape ``(k, n)``:
``softmax(Q (E K)^T / sqrt(d)) (F V)``, so each query attends to ``k`` mixtures of positions instead of ``n``
positions, at ``O(n k)`` cost. What shrinks is the number of rows (positions), not the feature width
``head_dim``: every mixture row ``(E K)_r = sum_j E[r, j] K_j`` blends keys from *all* ``n`` positions.

That is why it cannot be causal as published: the output at position ``i`` reads every mixture, and each
mixture holds keys and values from positions after ``i`` (``E[r, j] != 0`` for ``j > i``). Masking the
``(n, k)`` scores cannot remove them, because a future token sits inside each column. Changing a token at
position ``j`` changes the outputs at positions ``i < j`` (``tests/test_mixers_linformer.py`` checks it).
The matrices also fix ``n``: a Linformer layer reads sequences of exactly the length it was built for.

Shapes follow docs/conventions.md: ``q``, ``k``, ``v`` ``(batch, heads, n, head_dim)``; ``e``, ``f``
``(k_proj, n)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from longctx_lab.core.validate import check_int, check_number, check_qkv, check_tensor
from longctx_lab.mixers.base import TokenMixer, check_heads, check_mixer_input

__all__ = ["LinformerMixer", "linformer_attention"]


def linformer_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, e: torch.Tensor, f: torch.Tensor, *,
                        scale: float | None = None) -> torch.Tensor:
    """``softmax(Q (E K)^T * scale) (F V)``: non-causal attention over ``k_proj`` projected positions.

    ``q``, ``k``, ``v``: ``(batch, heads, n, head_dim)`` (equal heads); ``e``, ``f``: ``(k_proj, n)``, the same
    dtype and device. ``scale`` defaults to ``1/sqrt(head_dim)``. Returns ``(batch, heads, n, head_dim)``.
    """
    _, heads, kv_heads, q_len, n, head_dim = check_qkv(q, k, v)
    if heads != kv_heads or q_len != n:
        raise ValueError(f"q, k and v must have the same shape, got q {tuple(q.shape)} and k {tuple(k.shape)}")
    for name, m in (("e", e), ("f", f)):
        check_tensor(name, m, ndim=2)
        if m.shape[1] != n:
            raise ValueError(f"{name} must have shape (k_proj, n) with n = {n} (the sequence length), "
                             f"got {tuple(m.shape)}")
        if m.dtype != q.dtype or m.device != q.device:
            raise TypeError(f"{name} must have q's dtype {q.dtype} and device {q.device}, "
                            f"got {m.dtype} on {m.device}")
    if e.shape != f.shape:
        raise ValueError(f"e and f must have the same shape, got e {tuple(e.shape)} and f {tuple(f.shape)}")
    scale = 1.0 / math.sqrt(head_dim) if scale is None else check_number("scale", scale, exclusive_minimum=0)
    k_low = e @ k  # (b, h, k_proj, d)
    v_low = f @ v
    weights = torch.softmax((q @ k_low.transpose(-2, -1)) * scale, dim=-1)
    return weights @ v_low


class LinformerMixer(TokenMixer):
    """Multi-head Linformer attention for sequences of exactly ``seq_len`` positions; **not causal**.

    ``q_proj``/``k_proj``/``v_proj``/``o_proj`` ``d_model -> d_model`` and ``E``, ``F`` ``(k_proj, seq_len)``
    shared by the heads (the paper's "headwise sharing"), initialised ``N(0, 1/k_proj)``. ``causal`` is
    ``False``; it has no decode state: :meth:`init_state`, :meth:`step` and :meth:`prefill` with a state
    raise ``NotImplementedError`` saying why.
    """

    causal = False

    def __init__(self, d_model: int, n_heads: int, *, seq_len: int, k_proj: int = 16, seed: int = 0):
        d_model, n_heads, head_dim = check_heads(d_model, n_heads)
        super().__init__(d_model)
        self.n_heads, self.head_dim = n_heads, head_dim
        self.seq_len = check_int("seq_len", seq_len, minimum=1)
        self.k_proj = check_int("k_proj", k_proj, minimum=1)
        gen = torch.Generator().manual_seed(check_int("seed", seed))
        std = 1.0 / math.sqrt(self.k_proj)
        self.e = nn.Parameter(torch.randn(self.k_proj, self.seq_len, generator=gen) * std)
        self.f = nn.Parameter(torch.randn(self.k_proj, self.seq_len, generator=gen) * std)
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj_layer = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)

    def prefill(self, x: torch.Tensor, state=None):
        if state is not None:
            raise NotImplementedError("LinformerMixer has no decode state: it is not causal (see linformer.py)")
        check_mixer_input(x, self.d_model)
        b, n, _ = x.shape
        if n != self.seq_len:
            raise ValueError(f"x must have seq = seq_len = {self.seq_len} (E and F are (k_proj, seq_len)), got {n}")
        q, k, v = (p(x).view(b, n, self.n_heads, self.head_dim).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj_layer, self.v_proj))
        y = linformer_attention(q, k, v, self.e.to(x.dtype), self.f.to(x.dtype))
        return self.o_proj(y.transpose(1, 2).reshape(b, n, self.d_model)), None

    def init_state(self, batch: int, *, dtype=None, device=None):
        raise NotImplementedError("LinformerMixer has no decode state: each output reads every position, "
                                  "future ones included, so it cannot decode one token at a time")

    def step(self, x_t: torch.Tensor, state):
        raise NotImplementedError("LinformerMixer cannot decode step by step: it is not causal")
