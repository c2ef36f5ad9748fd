"""Absolute position encodings, for comparison with RoPE: sinusoidal (Vaswani et al. 2017) and learned.

Both are *added* to the token embedding before attention, so an attention score between
positions ``m`` and ``n`` sees ``m`` and ``n`` separately, not only ``m - n``.
"""

from __future__ import annotations

import torch

from longctx_lab.core.validate import check_int, check_number

__all__ = ["learned_position_table", "sinusoidal_position_embedding"]


def sinusoidal_position_embedding(positions, d_model: int, base: float = 10_000.0) -> torch.Tensor:
    """The Transformer's sinusoidal table: ``PE[m, 2i] = sin(m w_i)``, ``PE[m, 2i+1] = cos(m w_i)``.

    ``w_i = base ** (-2 i / d_model)`` for ``i = 0 .. d_model/2 - 1``: the same frequencies as
    default RoPE. ``positions`` has shape ``(seq,)``; returns ``(seq, d_model)`` in float64.
    """
    d_model = check_int("d_model", d_model, minimum=2)
    if d_model % 2:
        raise ValueError(f"d_model must be even, got {d_model}")
    base = check_number("base", base, exclusive_minimum=0.0)
    positions = torch.as_tensor(positions, dtype=torch.float64)
    if positions.ndim != 1:
        raise ValueError(f"positions must have shape (seq,), got {tuple(positions.shape)}")
    w = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    angles = positions[:, None] * w
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)


def learned_position_table(max_positions: int, d_model: int, *, seed: int = 0, std: float = 0.02) -> torch.Tensor:
    """A learned-embedding table as initialised before training: ``(max_positions, d_model)`` normal(0, std).

    Row ``m`` is position ``m``'s vector; there is simply no row for ``m >= max_positions``, which is
    why a model with learned absolute positions cannot run past its trained length at all.
    """
    max_positions = check_int("max_positions", max_positions, minimum=1)
    d_model = check_int("d_model", d_model, minimum=1)
    std = check_number("std", std, exclusive_minimum=0.0)
    gen = torch.Generator().manual_seed(check_int("seed", seed))
    return torch.randn(max_positions, d_model, generator=gen, dtype=torch.float64) * std
