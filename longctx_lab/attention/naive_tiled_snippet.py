"""The tiled "flash_attention" snippet from the articles, as written, and why it is wrong.

The snippet (seed article 004, "FlashAttention (conceptual)") loops over query blocks ``i`` and
key blocks ``j``, computes ``softmax(Q_i K_j^T)`` *inside each key block* and adds the block
outputs ``O_ij = softmax(Q_i K_j^T) V_j`` together. Each ``O_ij`` is already a weighted average
of the values of block ``j`` (its weights sum to 1), so the sum over ``n_blocks`` key blocks has
weights that sum to ``n_blocks``: the output is off by roughly a factor ``n_blocks``, and even
after dividing by ``n_blocks`` every key block gets equal weight regardless of its scores.

The exact answer weights block ``j`` by its share of the softmax mass,
``w_ij = l_ij exp(m_ij) / sum_j' l_ij' exp(m_ij')`` (``m`` the block's row max, ``l`` the sum of
``exp(s - m)``): that is exactly what the online softmax's running max and sum compute
(:mod:`longctx_lab.attention.online_softmax`). The snippet is exact only when there is a single
key block (``block_size >= seq_len``).

Literal problems of the printed code, which :func:`articles_flash_attention` fixes so that the
*algorithmic* error can be measured on its own: ``seq_len = Q.shape[1]`` and ``K_block.T``
(for 3-D tensors ``.T`` reverses all dimensions, and torch deprecates it) assume
``(batch, seq, d)`` inputs; it omits the ``1/sqrt(d)`` scale (kept out here too, so the exact
reference is ``softmax(Q K^T) V`` without scale); ``output`` is ``zeros_like(Q)``, so the snippet
also silently assumes ``V`` has ``Q``'s feature size.
"""

from __future__ import annotations

import torch

from longctx_lab.attention.online_softmax import empty_state, finalize, update_state
from longctx_lab.core.validate import check_int, check_tensor

__all__ = ["ARTICLE_SNIPPET", "articles_flash_attention", "exact_attention", "fixed_flash_attention", "snippet_error"]

# The snippet as the article prints it (seed article 004; its indentation, lost in the article's text, restored).
# :func:`articles_flash_attention` is this code with ``K_block.T`` written ``K_block.transpose(-2, -1)`` and
# ``softmax`` as ``torch.softmax(..., dim=-1)``; a test runs the text below with those two substitutions.
ARTICLE_SNIPPET = '''\
# FlashAttention (conceptual)
def flash_attention(Q, K, V, block_size=128):
    """
    Tile computation to fit in fast SRAM
    Never materialize full attention matrix
    """
    seq_len = Q.shape[1]
    output = torch.zeros_like(Q)
    # Process in blocks that fit in SRAM
    for i in range(0, seq_len, block_size):
        for j in range(0, seq_len, block_size):
            # Load blocks into SRAM
            Q_block = Q[:, i:i+block_size]
            K_block = K[:, j:j+block_size]
            V_block = V[:, j:j+block_size]
            # Compute attention for this block
            S_block = Q_block @ K_block.T
            P_block = softmax(S_block)
            O_block = P_block @ V_block
            # Accumulate result
            output[:, i:i+block_size] += O_block
    return output
'''


def _check_3d(q, k, v, block_size, *, self_attention: bool = True) -> int:
    for name, t in (("Q", q), ("K", k), ("V", v)):
        check_tensor(name, t, ndim=None)
        if t.ndim != 3:
            raise ValueError(
                f"{name} must have 3 dimensions (batch, seq, d) as in the snippet, got shape {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if not self_attention and k.shape == v.shape and (q.shape[0], q.shape[2]) == (k.shape[0], k.shape[2]):
        pass  # cross-attention to a key block: lengths may differ
    elif q.shape != k.shape or q.shape != v.shape:
        raise ValueError(
            f"Q, K and V must share one shape (the snippet's self-attention), got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.dtype != k.dtype or q.dtype != v.dtype:
        raise TypeError(f"Q, K and V must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    return check_int("block_size", block_size, minimum=1)


def articles_flash_attention(Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, block_size: int = 128) -> torch.Tensor:
    """The articles' snippet: softmax inside each ``block_size x block_size`` tile, outputs summed.

    ``Q``, ``K``, ``V``: ``(batch, seq, d)``. No ``1/sqrt(d)`` scale, as printed. Returns
    ``(batch, seq, d)``. WRONG whenever ``seq > block_size``; kept to be measured.
    """
    block_size = _check_3d(Q, K, V, block_size)
    seq_len = Q.shape[1]
    output = torch.zeros_like(Q)
    for i in range(0, seq_len, block_size):
        for j in range(0, seq_len, block_size):
            Q_block = Q[:, i : i + block_size]
            K_block = K[:, j : j + block_size]
            V_block = V[:, j : j + block_size]
            S_block = Q_block @ K_block.transpose(-2, -1)
            P_block = torch.softmax(S_block, dim=-1)  # normalised within the block only: the bug
            output[:, i : i + block_size] += P_block @ V_block
    return output


def fixed_flash_attention(Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, block_size: int = 128) -> torch.Tensor:
    """The same loops with the fix: carry a running max and sum per row (online softmax), rescale,
    and divide once at the end. Equals :func:`exact_attention` up to rounding.
    """
    block_size = _check_3d(Q, K, V, block_size)
    seq_len, d = Q.shape[1], Q.shape[2]
    output = torch.zeros_like(Q)
    for i in range(0, seq_len, block_size):
        Q_block = Q[:, i : i + block_size]
        state = empty_state(tuple(Q_block.shape[:2]), d, dtype=Q.dtype, device=Q.device)
        for j in range(0, seq_len, block_size):
            S_block = Q_block @ K[:, j : j + block_size].transpose(-2, -1)
            state = update_state(state, S_block, V[:, j : j + block_size])
        output[:, i : i + block_size] = finalize(state)[0]
    return output


def exact_attention(Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """``softmax(Q K^T) V`` (no scale, like the snippet), the answer the snippet should give.

    ``Q``: ``(batch, q_len, d)``; ``K``, ``V``: ``(batch, kv_len, d)`` (``kv_len`` may differ).
    """
    _check_3d(Q, K, V, 1, self_attention=False)
    return torch.softmax(Q @ K.transpose(-2, -1), dim=-1) @ V


def snippet_error(
    seq_len: int = 512,
    d: int = 64,
    block_size: int = 128,
    *,
    batch: int = 1,
    seed: int = 0,
) -> dict[str, float | int]:
    """Run the snippet and its fix on random ``(batch, seq_len, d)`` inputs (float64, scores of
    unit variance: inputs drawn with std ``d ** -0.25``).

    Returns ``n_key_blocks``; ``snippet_max_abs_error`` and ``snippet_relative_error``
    (``||snippet - exact|| / ||exact||``, Frobenius); ``fixed_max_abs_error``; and
    ``snippet_row_weight_sum``: the mean, over query rows, of the snippet's total attention weight
    per row (``n_key_blocks`` where softmax says 1).
    """
    seq_len = check_int("seq_len", seq_len, minimum=1)
    d = check_int("d", d, minimum=1)
    block_size = check_int("block_size", block_size, minimum=1)
    batch = check_int("batch", batch, minimum=1)
    seed = check_int("seed", seed)
    gen = torch.Generator().manual_seed(seed)
    std = d**-0.25
    Q, K, V = (torch.randn(batch, seq_len, d, generator=gen, dtype=torch.float64) * std for _ in range(3))
    exact = exact_attention(Q, K, V)
    wrong = articles_flash_attention(Q, K, V, block_size)
    fixed = fixed_flash_attention(Q, K, V, block_size)
    ones = torch.ones(batch, seq_len, 1, dtype=torch.float64)
    # The snippet is linear in V, so feeding a column of ones measures its weight per row.
    weight_sum = articles_flash_attention(Q, K, ones.expand(batch, seq_len, d).contiguous(), block_size)[..., 0]
    return {
        "n_key_blocks": -(-seq_len // block_size),
        "snippet_max_abs_error": float((wrong - exact).abs().max()),
        "snippet_relative_error": float(torch.linalg.norm(wrong - exact) / torch.linalg.norm(exact)),
        "fixed_max_abs_error": float((fixed - exact).abs().max()),
        "snippet_row_weight_sum": float(weight_sum.mean()),
    }
