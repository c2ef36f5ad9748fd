"""Applying rotary position embeddings (RoPE) to query/key tensors.

Convention: ``x`` is ``(batch, heads, seq, head_dim)`` as in
``torch.nn.functional.scaled_dot_product_attention``. ``inv_freq`` (from
:mod:`longctx_lab.rope.scaling`) has ``rotary_dim // 2`` entries; the first ``rotary_dim``
features of each head are rotated and the rest pass through unchanged (partial rotary, as in
GPT-NeoX and Phi). Pair ``i`` is rotated by the angle ``position * inv_freq[i]``.

Two layouts put the two features of pair ``i`` in different places:

- ``"halves"`` (Llama in Hugging Face, GPT-NeoX): pair ``i`` is ``(x[i], x[i + r/2])``, rotated with
  ``rotate_half``. This is what ``transformers``' ``apply_rotary_pos_emb`` does.
- ``"interleaved"`` (the RoFormer paper, GPT-J, Meta's original Llama code): pair ``i`` is
  ``(x[2i], x[2i + 1])``.

Both compute the same attention scores if the q/k projection weights are permuted to match:
:func:`convert_qk_weight` does that, :func:`halves_to_interleaved` /
:func:`interleaved_to_halves` permute activations.
"""

from __future__ import annotations

import torch

from longctx_lab.core.validate import check_int, check_number, check_tensor

__all__ = [
    "LAYOUTS",
    "apply_rope",
    "convert_qk_weight",
    "halves_to_interleaved",
    "interleaved_to_halves",
    "rope_angles",
    "rope_cos_sin",
    "rotate_half",
    "rotate_pairs",
]

LAYOUTS = ("halves", "interleaved")


def _check_layout(layout) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return layout


def _check_inv_freq(inv_freq) -> torch.Tensor:
    check_tensor("inv_freq", inv_freq)
    if inv_freq.ndim != 1 or inv_freq.numel() == 0:
        raise ValueError(
            f"inv_freq must be a non-empty 1-D tensor (rotary_dim // 2,), got shape {tuple(inv_freq.shape)}"
        )
    if not inv_freq.is_floating_point():
        raise TypeError(f"inv_freq must be a floating-point tensor, got dtype {inv_freq.dtype}")
    if not torch.isfinite(inv_freq).all():
        raise ValueError("inv_freq must be finite, got a tensor with inf or NaN")
    return inv_freq


def _check_even_last(x) -> torch.Tensor:
    check_tensor("x", x)
    if x.ndim == 0 or x.shape[-1] % 2:
        raise ValueError(f"x must have an even last dimension (pairs of features), got shape {tuple(x.shape)}")
    return x


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``(x1, x2) -> (-x2, x1)`` on the two halves of the last dimension (the "halves" layout).

    ``x`` has any shape ``(..., r)`` with ``r`` even; returns the same shape.
    """
    half = _check_even_last(x).shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """``(x[2i], x[2i+1]) -> (-x[2i+1], x[2i])`` for every adjacent pair (the "interleaved" layout).

    ``x`` has any shape ``(..., r)`` with ``r`` even; returns the same shape.
    """
    _check_even_last(x)
    return torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).flatten(-2)


def rope_angles(positions, inv_freq: torch.Tensor) -> torch.Tensor:
    """Rotation angles ``positions[..., None] * inv_freq`` in float64.

    ``positions`` is a tensor (or sequence) of shape ``(seq,)`` or ``(batch, seq)``; integer or
    fractional (PI at factor ``s`` equals positions ``m / s``). Returns ``(..., seq, rotary_dim // 2)``.
    """
    inv_freq = _check_inv_freq(inv_freq)
    if not isinstance(positions, torch.Tensor):
        positions = torch.as_tensor(positions)
    if positions.ndim not in (1, 2):
        raise ValueError(f"positions must have shape (seq,) or (batch, seq), got {tuple(positions.shape)}")
    if positions.is_complex() or positions.dtype == torch.bool:
        raise TypeError(f"positions must be an integer or real tensor, got dtype {positions.dtype}")
    positions = positions.to(device=inv_freq.device, dtype=torch.float64)
    if not torch.isfinite(positions).all():
        raise ValueError("positions must be finite")
    return positions[..., None] * inv_freq.to(torch.float64)


def rope_cos_sin(positions, inv_freq: torch.Tensor, *, layout: str = "halves", attention_factor: float = 1.0):
    """``(cos, sin)`` tables, each ``(..., seq, rotary_dim)`` in float64, laid out for ``layout``.

    ``"halves"`` repeats the ``rotary_dim // 2`` angles as ``[a, a]`` (Hugging Face's
    ``cat((freqs, freqs))``); ``"interleaved"`` as ``[a0, a0, a1, a1, ...]``. Both are multiplied
    by ``attention_factor``.
    """
    _check_layout(layout)
    attention_factor = check_number("attention_factor", attention_factor, exclusive_minimum=0.0)
    angles = rope_angles(positions, inv_freq)
    if layout == "halves":
        angles = torch.cat((angles, angles), dim=-1)
    else:
        angles = angles.repeat_interleave(2, dim=-1)
    return angles.cos() * attention_factor, angles.sin() * attention_factor


def apply_rope(
    x: torch.Tensor,
    positions,
    inv_freq: torch.Tensor,
    *,
    layout: str = "halves",
    attention_factor: float = 1.0,
) -> torch.Tensor:
    """Rotate ``x`` by its positions: RoPE.

    Shapes: ``x`` is ``(batch, heads, seq, head_dim)``; ``positions`` is ``(seq,)`` (shared by the
    batch) or ``(batch, seq)``; ``inv_freq`` is ``(rotary_dim // 2,)`` with
    ``rotary_dim = 2 * len(inv_freq) <= head_dim``. Features ``rotary_dim:`` pass through.
    ``attention_factor`` multiplies the rotated features (YaRN's temperature; the logits scale by
    its square, as in Hugging Face where it multiplies cos and sin).

    Angles are computed in float64 and the rotation in ``promote(x.dtype, float32)``; the result has
    ``x``'s dtype. Returns a new tensor of ``x``'s shape.
    """
    check_tensor("x", x, ndim=4)
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    _check_layout(layout)
    inv_freq = _check_inv_freq(inv_freq)
    batch, _, seq, head_dim = x.shape
    rotary_dim = 2 * inv_freq.numel()
    if rotary_dim > head_dim:
        raise ValueError(
            f"inv_freq has {inv_freq.numel()} entries, so rotary_dim {rotary_dim} exceeds head_dim {head_dim}"
        )
    if not isinstance(positions, torch.Tensor):
        positions = torch.as_tensor(positions)
    if positions.shape not in ((seq,), (batch, seq)):
        raise ValueError(
            f"positions must have shape (seq,) = ({seq},) or (batch, seq) = ({batch}, {seq}), "
            f"got {tuple(positions.shape)}"
        )
    cos, sin = rope_cos_sin(positions.to(inv_freq.device), inv_freq, layout=layout, attention_factor=attention_factor)
    compute = torch.promote_types(x.dtype, torch.float32)
    cos = cos.to(device=x.device, dtype=compute)
    sin = sin.to(device=x.device, dtype=compute)
    if cos.ndim == 3:  # (batch, seq, r): add the head axis
        cos, sin = cos[:, None], sin[:, None]
    x_rot, x_pass = x[..., :rotary_dim].to(compute), x[..., rotary_dim:]
    turn = rotate_half(x_rot) if layout == "halves" else rotate_pairs(x_rot)
    out = (x_rot * cos + turn * sin).to(x.dtype)
    return torch.cat((out, x_pass), dim=-1) if rotary_dim < head_dim else out


def _pair_permutation(rotary_dim: int) -> torch.Tensor:
    """Index ``p`` with ``halves[..., j] = interleaved[..., p[j]]`` for a rotary block of ``rotary_dim``."""
    return torch.cat((torch.arange(0, rotary_dim, 2), torch.arange(1, rotary_dim, 2)))


def _check_rotary_dim(rotary_dim, last: int) -> int:
    rotary_dim = last if rotary_dim is None else check_int("rotary_dim", rotary_dim, minimum=2)
    if rotary_dim % 2 or rotary_dim > last:
        raise ValueError(f"rotary_dim must be even and <= {last} (the last dimension), got {rotary_dim}")
    return rotary_dim


def interleaved_to_halves(x: torch.Tensor, rotary_dim: int | None = None) -> torch.Tensor:
    """Permute the last dimension from the interleaved layout to the halves layout.

    Feature ``2i`` goes to ``i`` and ``2i + 1`` to ``i + r/2`` within the first ``rotary_dim``
    (default: all) features; the rest stay.
    """
    check_tensor("x", x)
    r = _check_rotary_dim(rotary_dim, x.shape[-1])
    perm = torch.cat((_pair_permutation(r), torch.arange(r, x.shape[-1]))).to(x.device)
    return x[..., perm]


def halves_to_interleaved(x: torch.Tensor, rotary_dim: int | None = None) -> torch.Tensor:
    """Inverse of :func:`interleaved_to_halves`."""
    check_tensor("x", x)
    r = _check_rotary_dim(rotary_dim, x.shape[-1])
    perm = torch.cat((torch.argsort(_pair_permutation(r)), torch.arange(r, x.shape[-1]))).to(x.device)
    return x[..., perm]


def convert_qk_weight(
    weight: torch.Tensor, n_heads: int, *, to: str = "halves", rotary_dim: int | None = None
) -> torch.Tensor:
    """Permute a q or k projection weight between the two RoPE layouts.

    ``weight`` is an ``nn.Linear`` weight ``(n_heads * head_dim, hidden)`` (output rows grouped per
    head), or a bias ``(n_heads * head_dim,)``. ``to="halves"`` turns a checkpoint written for the
    interleaved layout (Meta's original Llama code) into one for the halves layout (Hugging Face);
    ``to="interleaved"`` goes back. Within each head the rows are permuted exactly like
    :func:`interleaved_to_halves` permutes features, so that
    ``apply_rope(x @ W_new.T, layout="halves")`` equals the features of
    ``apply_rope(x @ W.T, layout="interleaved")`` permuted, and attention scores are unchanged.
    """
    check_tensor("weight", weight)
    if weight.ndim not in (1, 2):
        raise ValueError(f"weight must be 2-D (out, in) or a 1-D bias, got shape {tuple(weight.shape)}")
    n_heads = check_int("n_heads", n_heads, minimum=1)
    if to not in LAYOUTS:
        raise ValueError(f"to must be one of {LAYOUTS}, got {to!r}")
    out = weight.shape[0]
    if out % n_heads:
        raise ValueError(f"weight rows ({out}) must be a multiple of n_heads ({n_heads})")
    head_dim = out // n_heads
    r = _check_rotary_dim(rotary_dim, head_dim)
    w = weight.reshape(n_heads, head_dim, *weight.shape[1:]).movedim(1, -1)
    w = interleaved_to_halves(w, r) if to == "halves" else halves_to_interleaved(w, r)
    return w.movedim(-1, 1).reshape(weight.shape).contiguous()
