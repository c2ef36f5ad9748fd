"""Online softmax: the running max / running sum trick that FlashAttention is built on.

The softmax of a row ``s`` is ``exp(s - m) / l`` with ``m = max(s)`` and ``l = sum(exp(s - m))``.
Both ``m`` and ``l`` can be computed while the row streams past in blocks: keep a running max
``m`` and a running sum ``l`` *measured relative to* ``m``; when a new block raises the max to
``m'``, the old sum is rescaled by ``exp(m - m')`` before the block's terms are added. Attention
carries a third quantity, the unnormalised output ``acc = sum_j exp(s_j - m) v_j``, which is
rescaled by the same factor.

A partial result over any subset of the keys is therefore a :class:`SoftmaxState`
``(m, l, acc)``. Two states over disjoint key sets merge exactly (:func:`merge_states`), in any
order and any grouping (the merge is associative and commutative). This is what lets the tiled
forward pass visit one key block at a time, and what lets split-KV decoding or ring attention
combine the partial results of different workers.

Conventions: ``m`` and ``l`` have the shape of the rows (the scores' shape without its last
dimension); ``acc`` has that shape plus ``head_dim``. A row that has seen no key yet (or only
masked keys, score ``-inf``) has ``m = -inf``, ``l = 0``, ``acc = 0``; finalising such a row gives
output zeros and log-sum-exp ``-inf``, never NaN.

NaN is never hidden: a NaN score (from a NaN in ``q`` or ``k``) makes the row's ``m`` and ``l`` NaN, a
NaN value makes ``acc`` NaN, and :func:`finalize` passes them on (NaN output and log-sum-exp), as
``torch.softmax`` and SDPA do. Only a row with ``l == 0`` exactly (it saw no key) gives zeros.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from longctx_lab.core.validate import check_int, check_tensor

__all__ = [
    "SoftmaxState",
    "empty_state",
    "finalize",
    "merge_states",
    "online_logsumexp",
    "online_softmax",
    "update_state",
]


class SoftmaxState(NamedTuple):
    """Partial softmax-weighted sum over some of the keys.

    ``m``: running max of the scores seen, shape ``rows`` (``-inf`` when none seen).
    ``l``: ``sum exp(s_j - m)`` over the keys seen, shape ``rows``.
    ``acc``: ``sum exp(s_j - m) * v_j``, shape ``rows + (head_dim,)``, or ``None`` when only the
    normaliser is tracked (plain softmax, no values).
    """

    m: torch.Tensor
    l: torch.Tensor
    acc: torch.Tensor | None


def _safe_max(m: torch.Tensor) -> torch.Tensor:
    """``m`` with ``-inf`` replaced by 0, so that ``exp(x - m)`` is 0 (not NaN) when ``x = m = -inf``."""
    return m.nan_to_num(nan=float("nan"), posinf=float("inf"), neginf=0.0)


def empty_state(
    rows: tuple[int, ...], head_dim: int | None = None, *, dtype=torch.float32, device=None
) -> SoftmaxState:
    """The state of rows that have seen no key: ``m = -inf``, ``l = 0``, ``acc = 0`` (or ``None``)."""
    m = torch.full(rows, float("-inf"), dtype=dtype, device=device)
    l = torch.zeros(rows, dtype=dtype, device=device)
    acc = None if head_dim is None else torch.zeros((*rows, head_dim), dtype=dtype, device=device)
    return SoftmaxState(m, l, acc)


def update_state(state: SoftmaxState, scores: torch.Tensor, values: torch.Tensor | None = None) -> SoftmaxState:
    """Fold one block of scores (and their values) into a running state: one FlashAttention step.

    ``scores``: ``rows + (block,)``, already scaled, masked entries ``-inf``.
    ``values``: ``(..., block, head_dim)`` such that ``p @ values`` has shape ``rows + (head_dim,)``
    (for attention: ``p`` is ``(B, H, rows, block)`` and ``values`` is ``(B, H, block, head_dim)``).

    The update, with ``m' = max(m, rowmax(scores))`` and ``alpha = exp(m - m')``::

        p   = exp(scores - m')
        l   = alpha * l   + rowsum(p)
        acc = alpha * acc + p @ values
    """
    m_new = torch.maximum(state.m, scores.amax(dim=-1))
    m_safe = _safe_max(m_new)
    alpha = torch.exp(state.m - m_safe)  # 0 for rows that had seen nothing (m = -inf)
    p = torch.exp(scores - m_safe[..., None])
    l_new = alpha * state.l + p.sum(dim=-1)
    if state.acc is None:
        if values is not None:
            raise ValueError("values were given but the state tracks no output (acc is None)")
        return SoftmaxState(m_new, l_new, None)
    if values is None:
        raise ValueError("the state tracks an output (acc), so values must be given")
    p = p.to(values.dtype)
    if p.dim() == 3 and values.dim() == 3 and values.dtype == state.acc.dtype:
        acc_new = torch.baddbmm(alpha.unsqueeze(-1) * state.acc, p, values)  # fused: one kernel, no temporaries
    else:
        acc_new = alpha[..., None] * state.acc + torch.matmul(p, values).to(state.acc.dtype)
    return SoftmaxState(m_new, l_new, acc_new)


def merge_states(a: SoftmaxState, b: SoftmaxState) -> SoftmaxState:
    """Combine two partial states computed over *disjoint* sets of keys.

    With ``m = max(m_a, m_b)``: ``l = l_a exp(m_a - m) + l_b exp(m_b - m)`` and the same weights
    for ``acc``. Exact (up to rounding), associative and commutative; a state that saw nothing
    (``m = -inf``) is the identity.
    """
    if not isinstance(a, SoftmaxState) or not isinstance(b, SoftmaxState):
        raise TypeError(f"a and b must be SoftmaxState, got {type(a).__name__} and {type(b).__name__}")
    if a.m.shape != b.m.shape:
        raise ValueError(f"a and b must cover the same rows, got m shapes {tuple(a.m.shape)} and {tuple(b.m.shape)}")
    if (a.acc is None) != (b.acc is None):
        raise ValueError("a and b must both track an output (acc) or both not")
    m = torch.maximum(a.m, b.m)
    m_safe = _safe_max(m)
    wa = torch.exp(a.m - m_safe)
    wb = torch.exp(b.m - m_safe)
    l = wa * a.l + wb * b.l
    acc = None if a.acc is None else wa[..., None] * a.acc + wb[..., None] * b.acc
    return SoftmaxState(m, l, acc)


def finalize(state: SoftmaxState) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Turn a state into ``(output, lse)``: ``output = acc / l`` and ``lse = m + log(l)``.

    Rows that saw no key (``l == 0``) give output zeros and ``lse = -inf``, whatever ``acc`` holds
    (``0 * NaN`` from a NaN value in a masked column of the tile stays out). A NaN in ``m``, ``l`` or
    ``acc`` of any other row comes out as NaN: the test is ``l == 0``, not ``l > 0``, which NaN would
    fail and so turn a poisoned row into zeros. ``output`` is ``None`` when the state tracks no values.
    """
    empty = state.l == 0
    l_safe = torch.where(empty, torch.ones_like(state.l), state.l)
    lse = torch.where(empty, torch.full_like(state.m, float("-inf")), state.m + torch.log(l_safe))
    if state.acc is None:
        return None, lse
    out = torch.where(empty[..., None], torch.zeros_like(state.acc), state.acc / l_safe[..., None])
    return out, lse


def _check_scores(x, block_size) -> tuple[torch.Tensor, int]:
    check_tensor("x", x)
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty last dimension, got shape {tuple(x.shape)}")
    return x, check_int("block_size", block_size, minimum=1)


def online_logsumexp(x: torch.Tensor, block_size: int = 4) -> torch.Tensor:
    """``logsumexp(x, dim=-1)`` computed in one streaming pass over blocks of ``block_size`` entries.

    Accumulates in float32 (float64 for float64 input). A row of only ``-inf`` gives ``-inf``.
    """
    x, block_size = _check_scores(x, block_size)
    acc_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    state = empty_state(tuple(x.shape[:-1]), dtype=acc_dtype, device=x.device)
    for start in range(0, x.shape[-1], block_size):
        state = update_state(state, x[..., start : start + block_size].to(acc_dtype))
    return finalize(state)[1]


def online_softmax(x: torch.Tensor, block_size: int = 4) -> torch.Tensor:
    """``softmax(x, dim=-1)`` from the streamed log-sum-exp: ``exp(x - lse)``.

    The first pass (streaming, :func:`online_logsumexp`) finds the normaliser without ever holding
    the row's max in advance; the second pass writes the probabilities. A row of only ``-inf``
    gives zeros (``torch.softmax`` gives NaN there). Output dtype = input dtype.
    """
    lse = online_logsumexp(x, block_size)
    lse_safe = torch.where(torch.isneginf(lse), torch.full_like(lse, float("inf")), lse)
    return torch.exp(x.to(lse.dtype) - lse_safe[..., None]).to(x.dtype)
