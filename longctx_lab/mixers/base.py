"""The interface every token mixer implements, and :func:`build_mixer`.

A *token mixer* is the part of a layer that moves information between positions (attention is one). Shapes:
``x`` is ``(batch, seq, d_model)``; a decode step takes ``x_t`` of shape ``(batch, d_model)``. See
docs/conventions.md for the error rules.

- ``forward(x) -> y``: causal (the output at position ``i`` depends on ``x[:, :i + 1]`` only), except
  :class:`~longctx_lab.mixers.linformer.LinformerMixer`, which is not causal (``causal = False``) and has no step.
- ``prefill(x, state=None) -> (y, state)``: ``forward`` that also returns the decode state after the last
  position (and may start from a state), so a prompt is read in parallel and then decoded step by step.
- ``init_state(batch, *, dtype=None, device=None) -> state``: the empty decode state; its size is fixed by the
  mixer's shape, never by the sequence length.
- ``step(x_t, state) -> (y_t, state)``: one decode step; ``y_t`` equals ``forward``'s output at that position.
  The state passed in is not modified.
- ``state_bytes(state) -> int``: the bytes of the state's tensors, measured from the tensors themselves.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from longctx_lab.core.validate import check_int, check_tensor

__all__ = ["MIXER_KINDS", "TokenMixer", "build_mixer", "state_bytes"]

#: The causal mixers :func:`build_mixer` builds. Linformer is not among them: it is not causal.
MIXER_KINDS = ("linear", "performer", "ssm", "compressive")


def _tensors(state):
    if isinstance(state, torch.Tensor):
        yield state
    elif dataclasses.is_dataclass(state) and not isinstance(state, type):
        for field in dataclasses.fields(state):
            yield from _tensors(getattr(state, field.name))
    elif isinstance(state, dict):
        for value in state.values():
            yield from _tensors(value)
    elif isinstance(state, (tuple, list)):
        for value in state:
            yield from _tensors(value)


def state_bytes(state) -> int:
    """Bytes of every tensor in ``state`` (a tensor, a dataclass, a dict, a tuple or a list of them, nested),
    measured as ``numel * element_size``; other values (integers such as a fill count) count 0."""
    return int(sum(t.numel() * t.element_size() for t in _tensors(state)))


def check_mixer_input(x, d_model: int, *, name: str = "x", ndim: int = 3) -> torch.Tensor:
    """Check a mixer input: a floating tensor of shape ``(batch, seq, d_model)`` (``ndim=3``, seq >= 1) or
    ``(batch, d_model)`` (``ndim=2``, one decode step)."""
    layout = "(batch, seq, d_model)" if ndim == 3 else "(batch, d_model)"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have shape {layout}, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.shape[-1] != d_model:
        raise ValueError(f"{name} must have last dimension d_model = {d_model}, got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(x.shape)}")
    return x


def check_heads(d_model, n_heads) -> tuple[int, int, int]:
    """``(d_model, n_heads, head_dim)`` with ``d_model`` a multiple of ``n_heads``."""
    d_model = check_int("d_model", d_model, minimum=1)
    n_heads = check_int("n_heads", n_heads, minimum=1)
    if d_model % n_heads:
        raise ValueError(f"d_model must be a multiple of n_heads = {n_heads}, got {d_model}")
    return d_model, n_heads, d_model // n_heads


def check_state_tensor(name: str, value, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """A state tensor of exactly ``shape``, with ``like``'s dtype and device."""
    check_tensor(name, value)
    if tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(value.shape)}")
    if value.dtype != like.dtype:
        raise TypeError(f"{name} must have dtype {like.dtype} like the input, got {value.dtype}")
    if value.device != like.device:
        raise ValueError(f"{name} must be on {like.device} like the input, got {value.device}")
    return value


class TokenMixer(nn.Module):
    """Base class of the mixers: subclasses implement ``prefill``, ``init_state`` and ``step``."""

    #: Whether ``forward`` is causal. Every mixer :func:`build_mixer` builds is.
    causal: bool = True

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = check_int("d_model", d_model, minimum=1)

    def _dtype_device(self, dtype=None, device=None):
        p = next(self.parameters(), None)
        dtype = dtype if dtype is not None else (p.dtype if p is not None else torch.get_default_dtype())
        device = device if device is not None else (p.device if p is not None else torch.device("cpu"))
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        return dtype, torch.device(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, seq, d_model) -> (batch, seq, d_model)``, causal."""
        return self.prefill(x)[0]

    def prefill(self, x: torch.Tensor, state=None):
        """``forward`` from ``state`` (the empty state when ``None``); returns ``(y, state after x)``."""
        raise NotImplementedError

    def init_state(self, batch: int, *, dtype=None, device=None):
        """The empty decode state for ``batch`` sequences (dtype and device default to the parameters')."""
        raise NotImplementedError

    def step(self, x_t: torch.Tensor, state):
        """One decode step: ``x_t`` ``(batch, d_model)`` -> ``(y_t (batch, d_model), new state)``."""
        raise NotImplementedError

    def state_bytes(self, state) -> int:
        """Bytes of the decode state's tensors (:func:`state_bytes`)."""
        return state_bytes(state)


def build_mixer(kind: str, d_model: int, n_heads: int, **kw) -> TokenMixer:
    """A causal token mixer of ``kind`` (one of :data:`MIXER_KINDS`) for width ``d_model`` and ``n_heads``
    heads; ``kw`` goes to its constructor (``chunk_size``, ``n_features``, ``d_state``, ``segment_len``...).

    - ``"linear"``: :class:`~longctx_lab.mixers.linear_attention.LinearAttentionMixer` (Katharopoulos et al. 2020)
    - ``"performer"``: :class:`~longctx_lab.mixers.performer.PerformerMixer` (Choromanski et al. 2021)
    - ``"ssm"``: :class:`~longctx_lab.mixers.ssm.SelectiveSSMMixer` (Gu and Dao 2023)
    - ``"compressive"``: :class:`~longctx_lab.mixers.compressive.CompressiveMemoryMixer` (Munkhdalai et al. 2024)
    """
    if not isinstance(kind, str):
        raise TypeError(f"kind must be a string, one of {MIXER_KINDS}, got {type(kind).__name__} {kind!r}")
    if kind == "linear":
        from longctx_lab.mixers.linear_attention import LinearAttentionMixer as cls
    elif kind == "performer":
        from longctx_lab.mixers.performer import PerformerMixer as cls
    elif kind == "ssm":
        from longctx_lab.mixers.ssm import SelectiveSSMMixer as cls
    elif kind == "compressive":
        from longctx_lab.mixers.compressive import CompressiveMemoryMixer as cls
    else:
        raise ValueError(f"kind must be one of {MIXER_KINDS}, got {kind!r}")
    return cls(d_model, n_heads, **kw)
