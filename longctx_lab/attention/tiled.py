"""FlashAttention in plain PyTorch: tiled forward with online softmax, backward by recomputation.

This is the CPU path of :func:`longctx_lab.kernels.dispatch.flash_attention` and the reference
the Triton kernels are written against: the same loops, the same block skipping, the same
outputs (``out`` and the log-sum-exp), the same conventions.

Shapes, GQA mapping, bottom-right alignment, windows, the LSE and rows that see no key follow
docs/conventions.md, as in the Triton kernels. What is particular to this path:

- K/V are never repeated for GQA: the ``group`` query heads that share a KV head are stacked into one
  tile of ``group * block_q`` rows, and the K/V gradients of the group are summed by the same product.
- The LSE is float32 (float64 when the inputs are float64, which only this torch path accepts); it is
  all the backward pass needs to rebuild the probabilities.
- NaN: beyond the entries that depend on it (docs/conventions.md), a NaN may also reach entries that
  share a visited tile with it through ``0 * NaN`` (SDPA's dense product spreads it to every row), but
  never a row that sees no key.

Block skipping: query block ``[qs, qe)`` visits only the key blocks that overlap the band of keys
some row of the block may see (:func:`key_block_range`); a visited tile that is only partly inside
the band is masked element by element. Both decisions come from one rule,
:func:`~longctx_lab.attention.mask_predicates.attention_predicate` (its band for the loop bounds and
the FULL test, its ``evaluate`` on the tile's positions for the mask), the rule behind the dense masks
and the tile classes of :func:`~longctx_lab.attention.block_sparsity.classify_blocks` too.
Skipped tiles cost nothing, which is where causal attention halves its work and a window makes it
linear in the length.

Precision: tiles are computed in float32 (float64 for float64 inputs), whatever the input dtype;
the output is cast back to the input dtype.
"""

from __future__ import annotations

import contextlib
import math

import torch

from longctx_lab._validate import check_bool, check_int, check_number, check_optional_int, check_qkv
from longctx_lab.attention.mask_predicates import MaskPredicate, attention_predicate
from longctx_lab.attention.online_softmax import empty_state, finalize, update_state

__all__ = [
    "TiledAttention",
    "flash_block_sizes",
    "key_block_range",
    "standard_attention_hbm_bytes",
    "tiled_attention",
    "tiled_attention_backward",
    "tiled_attention_forward",
    "tiled_hbm_bytes",
]

def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_options(causal, window, scale, block_q, block_k, head_dim):
    check_bool("causal", causal)
    window = check_optional_int("window", window, minimum=1)
    scale = 1.0 / math.sqrt(head_dim) if scale is None else check_number("scale", scale, exclusive_minimum=0)
    block_q = check_int("block_q", block_q, minimum=1)
    block_k = check_int("block_k", block_k, minimum=1)
    return causal, window, scale, block_q, block_k


def _key_blocks(pred: MaskPredicate, q_start: int, q_end: int, offset: int, kv_len: int, block_k: int):
    """Key blocks ``[first, last)`` that rows ``[q_start, q_end)`` visit: those overlapping the keys the
    predicate's band lets them see (rows sit at positions ``row + offset``); ``(0, 0)`` if none."""
    lo, hi = pred.key_range(q_start + offset, q_end + offset, kv_len)
    if hi <= lo:
        return 0, 0
    return lo // block_k, -(-hi // block_k)


def key_block_range(
    q_start: int,
    q_end: int,
    q_len: int,
    kv_len: int,
    *,
    causal: bool = False,
    window: int | None = None,
    block_k: int = 64,
) -> tuple[int, int]:
    """Key blocks ``[first, last)`` (block indices) that query rows ``[q_start, q_end)`` must visit.

    Rows sit at positions ``p = row + kv_len - q_len``. The band of keys the rows may see is
    ``[lo, hi)`` with ``hi = p_max + 1`` under ``causal`` (``p_max + window`` for a bidirectional
    window, else ``kv_len``) and ``lo = p_min - window + 1`` with a window (else 0), clipped to
    ``[0, kv_len)``: the band of :func:`~longctx_lab.attention.mask_predicates.attention_predicate`
    (its ``key_range``). Every key block that overlaps the band is visited; all others are skipped.
    Returns ``(0, 0)`` when the band is empty (every row fully masked).
    """
    q_len = check_int("q_len", q_len, minimum=1)
    kv_len = check_int("kv_len", kv_len, minimum=1)
    q_start = check_int("q_start", q_start, minimum=0)
    q_end = check_int("q_end", q_end, minimum=q_start + 1)
    if q_end > q_len:
        raise ValueError(f"q_end must be <= q_len ({q_len}), got {q_end}")
    block_k = check_int("block_k", block_k, minimum=1)
    pred = attention_predicate(causal=causal, window=window)
    return _key_blocks(pred, q_start, q_end, kv_len - q_len, kv_len, block_k)


def _tile_keep(pred: MaskPredicate, q_start, q_end, k_start, k_end, offset, device):
    """Boolean ``(q_end - q_start, k_end - k_start)`` mask of a tile (the predicate evaluated on the
    tile's positions), or ``None`` when the band says every pair is kept (a FULL tile: no mask)."""
    if pred.covers(q_start + offset, q_end + offset, k_start, k_end):
        return None
    q_pos = torch.arange(q_start + offset, q_end + offset, device=device)[:, None]
    k_pos = torch.arange(k_start, k_end, device=device)[None, :]
    return pred.evaluate(q_pos, k_pos)


def _grouped(x: torch.Tensor, kv_heads: int, dtype) -> torch.Tensor:
    """``(B, H, L, D)`` -> ``(B * kv_heads, group, L, D)`` in ``dtype`` (a view when nothing changes).

    Query head ``h = kv * group + g`` lands at ``[b * kv_heads + kv, g]``: the heads that share KV
    head ``kv`` sit together, so a tile of them can be multiplied by that KV head's K/V directly.
    """
    b, h, length, d = x.shape
    return x.reshape(b * kv_heads, h // kv_heads, length, d).to(dtype)


def _rows(x_grouped: torch.Tensor, qs: int, qe: int) -> torch.Tensor:
    """Rows ``[qs, qe)`` of every head of a group, stacked: ``(BK, G, L, D)`` -> ``(BK, G * (qe - qs), D)``."""
    bk, g, _, d = x_grouped.shape
    return x_grouped[:, :, qs:qe].reshape(bk, g * (qe - qs), d)


# Below this many multiply-adds per tile product, splitting one op across threads costs more than it
# saves: each op opens an OpenMP parallel region, and on a busy machine a region waits for its slowest
# thread. Measured here (2 cores, other work running): one thread made the n = 2048 forward 10x faster.
_PARALLEL_TILE_WORK = 1 << 21


@contextlib.contextmanager
def _threads_for(tile_work: int):
    """Run tile-sized ops single-threaded when the tiles are small; restore the thread count after."""
    before = torch.get_num_threads()
    if tile_work >= _PARALLEL_TILE_WORK or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _forward(q, k, v, causal, window, scale, block_q, block_k):
    """Validated inputs -> ``(out, lse)`` with ``lse`` in the accumulation dtype.

    Works on ``(batch * kv_heads, rows, head_dim)`` blocks so every product is one batched matmul.
    """
    batch, heads, q_len, head_dim = q.shape
    kv_heads, kv_len = k.shape[1], k.shape[2]
    group = heads // kv_heads
    acc = _acc_dtype(q.dtype)
    offset = kv_len - q_len
    qg = _grouped(q, kv_heads, acc)
    k3 = k.reshape(batch * kv_heads, kv_len, head_dim).to(acc)
    v3 = v.reshape(batch * kv_heads, kv_len, head_dim).to(acc)
    out = torch.empty(batch * kv_heads, group, q_len, head_dim, dtype=q.dtype, device=q.device)
    lse = torch.empty(batch * kv_heads, group, q_len, dtype=acc, device=q.device)
    pred = attention_predicate(causal=causal, window=window)
    for qs in range(0, q_len, block_q):
        qe = min(qs + block_q, q_len)
        rows = qe - qs
        q_tile = _rows(qg, qs, qe) * scale  # (BK, group * rows, D), scale folded in once per block
        state = empty_state((batch * kv_heads, group * rows), head_dim, dtype=acc, device=q.device)
        first, last = _key_blocks(pred, qs, qe, offset, kv_len, block_k)
        for kb in range(first, last):
            ks, ke = kb * block_k, min((kb + 1) * block_k, kv_len)
            scores = torch.bmm(q_tile, k3[:, ks:ke].transpose(1, 2))  # one tile of S, never more
            keep = _tile_keep(pred, qs, qe, ks, ke, offset, q.device)
            if keep is not None:
                scores = scores.masked_fill(~keep.repeat(group, 1), float("-inf"))
            state = update_state(state, scores, v3[:, ks:ke])
        o_tile, lse_tile = finalize(state)
        out[:, :, qs:qe] = o_tile.reshape(batch * kv_heads, group, rows, head_dim).to(q.dtype)
        lse[:, :, qs:qe] = lse_tile.reshape(batch * kv_heads, group, rows)
    return out.reshape(batch, heads, q_len, head_dim), lse.reshape(batch, heads, q_len)


def _tile_work(q: torch.Tensor, k: torch.Tensor, block_q: int, block_k: int) -> int:
    """Multiply-adds of one tile product over all (batch, head) pairs: the size of each batched op."""
    return q.shape[0] * q.shape[1] * min(block_q, q.shape[2]) * min(block_k, k.shape[2]) * q.shape[3]


def _public_lse(lse: torch.Tensor) -> torch.Tensor:
    return lse if lse.dtype == torch.float64 else lse.to(torch.float32)


def tiled_attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    window: int | None = None,
    scale: float | None = None,
    block_q: int = 64,
    block_k: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FlashAttention forward: ``(out, lse)`` without ever building the ``q_len x kv_len`` matrix.

    For each block of ``block_q`` query rows it walks the visited key blocks of ``block_k`` keys
    (see :func:`key_block_range`), computes one ``block_q x block_k`` tile of scores, masks it if
    the tile straddles the causal/window edge, and folds it into a running
    :class:`~longctx_lab.attention.online_softmax.SoftmaxState`. Peak extra memory is one tile
    per (batch, head) plus the running state, O(block_q * (block_k + head_dim)), not
    O(q_len * kv_len).

    Shapes, masks, GQA, LSE and fully-masked rows: see the module docstring. Returns
    ``out`` ``(batch, heads, q_len, head_dim)`` in the input dtype and ``lse``
    ``(batch, heads, q_len)`` float32 (float64 for float64 inputs). Not differentiable; use
    :func:`tiled_attention` for autograd.
    """
    check_qkv(q, k, v)
    causal, window, scale, block_q, block_k = _check_options(causal, window, scale, block_q, block_k, q.shape[-1])
    with torch.no_grad(), _threads_for(_tile_work(q, k, block_q, block_k)):
        out, lse = _forward(q, k, v, causal, window, scale, block_q, block_k)
    return out, _public_lse(lse)


def _backward(q, k, v, out, lse, dout, causal, window, scale, block_q, block_k):
    batch, heads, q_len, head_dim = q.shape
    kv_heads, kv_len = k.shape[1], k.shape[2]
    group = heads // kv_heads
    bk = batch * kv_heads
    acc = _acc_dtype(q.dtype)
    offset = kv_len - q_len
    # Pre-pass: delta_i = rowsum(dO_i * O_i) = sum_j P_ij dP_ij, one number per query row.
    delta = (dout.to(acc) * out.to(acc)).sum(dim=-1).reshape(bk, group, q_len)
    # Rows with lse = -inf saw no key; +inf makes their recomputed probabilities exp(s - inf) = 0.
    lse = lse.to(acc).nan_to_num(nan=float("nan"), posinf=float("inf"), neginf=float("inf"))
    lse = lse.reshape(bk, group, q_len)
    qg = _grouped(q, kv_heads, acc)
    dog = _grouped(dout, kv_heads, acc)
    k3 = k.reshape(bk, kv_len, head_dim).to(acc)
    v3 = v.reshape(bk, kv_len, head_dim).to(acc)
    dq = torch.zeros(bk, group, q_len, head_dim, dtype=acc, device=q.device)
    dk = torch.empty(bk, kv_len, head_dim, dtype=acc, device=q.device)
    dv = torch.empty(bk, kv_len, head_dim, dtype=acc, device=q.device)

    pred = attention_predicate(causal=causal, window=window)
    q_blocks = []
    for qs in range(0, q_len, block_q):
        qe = min(qs + block_q, q_len)
        q_blocks.append((qs, qe, *_key_blocks(pred, qs, qe, offset, kv_len, block_k)))

    # Outer loop over key blocks (as the FlashAttention-2 backward kernel): dK_j and dV_j stay in
    # fast memory while the query blocks that see key block j stream past; dQ is accumulated.
    for kb in range(-(-kv_len // block_k)):
        ks, ke = kb * block_k, min((kb + 1) * block_k, kv_len)
        k_tile, v_tile = k3[:, ks:ke], v3[:, ks:ke]
        dk_tile = torch.zeros_like(k_tile)
        dv_tile = torch.zeros_like(v_tile)
        for qs, qe, first, last in q_blocks:
            if not first <= kb < last:
                continue  # this tile was skipped in the forward pass too
            rows = qe - qs
            q_tile = _rows(qg, qs, qe)
            do_tile = _rows(dog, qs, qe)
            lse_tile = lse[:, :, qs:qe].reshape(bk, group * rows, 1)
            delta_tile = delta[:, :, qs:qe].reshape(bk, group * rows, 1)
            scores = torch.bmm(q_tile * scale, k_tile.transpose(1, 2))
            p = torch.exp(scores - lse_tile)  # recomputed probabilities P_ij
            dp = torch.bmm(do_tile, v_tile.transpose(1, 2))  # dP = dO_i V_j^T
            ds = p * (dp - delta_tile)  # dS = P * (dP - delta_i)
            keep = _tile_keep(pred, qs, qe, ks, ke, offset, q.device)
            if keep is not None:
                # Masked entries are exactly 0 in P and dS: select, not multiply, so that a NaN row (NaN LSE and
                # delta) or a NaN key reaches no gradient through a masked entry.
                hide = ~keep.repeat(group, 1)
                p = p.masked_fill(hide, 0.0)
                ds = ds.masked_fill(hide, 0.0)
            dv_tile += torch.bmm(p.transpose(1, 2), do_tile)  # dV_j += P^T dO_i
            dq[:, :, qs:qe] += (torch.bmm(ds, k_tile) * scale).reshape(bk, group, rows, head_dim)
            dk_tile += torch.bmm(ds.transpose(1, 2), q_tile) * scale  # dK_j += scale dS^T Q_i
        dk[:, ks:ke] = dk_tile
        dv[:, ks:ke] = dv_tile
    # A row that saw no key has dQ 0, even where 0 * NaN (a NaN value in a visited tile) reached it.
    dq = dq.masked_fill(torch.isposinf(lse)[..., None], 0.0)
    dq = dq.reshape(batch, heads, q_len, head_dim).to(q.dtype)
    return dq, dk.reshape(k.shape).to(k.dtype), dv.reshape(v.shape).to(v.dtype)


def tiled_attention_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    dout: torch.Tensor,
    *,
    causal: bool = False,
    window: int | None = None,
    scale: float | None = None,
    block_q: int = 64,
    block_k: int = 64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FlashAttention-2 backward: ``(dq, dk, dv)`` recomputed tile by tile from the saved LSE.

    ``out`` and ``lse`` are what :func:`tiled_attention_forward` returned for the same arguments;
    ``dout`` is the gradient of the loss w.r.t. ``out`` (shape of ``q``). With
    ``delta_i = rowsum(dO_i * O_i)``, for every visited tile ``(i, j)``::

        P_ij = exp(scale * Q_i K_j^T - lse_i)       (masked entries 0)
        dV_j += P_ij^T dO_i
        dP_ij = dO_i V_j^T
        dS_ij = P_ij * (dP_ij - delta_i)
        dQ_i += scale * dS_ij K_j
        dK_j += scale * dS_ij^T Q_i

    The ``n x n`` matrices are never stored: each tile is rebuilt from ``Q``, ``K`` and the
    ``q_len`` numbers of the LSE. GQA: ``dk``/``dv`` have the K/V shape, summed over the query
    heads that share each KV head. Gradients come back in the input dtypes.
    """
    check_qkv(q, k, v)
    causal, window, scale, block_q, block_k = _check_options(causal, window, scale, block_q, block_k, q.shape[-1])
    for name, t, shape in (("out", out, q.shape), ("dout", dout, q.shape), ("lse", lse, q.shape[:3])):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.shape != shape:
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")
        if t.device != q.device:
            raise ValueError(f"{name} must be on {q.device} like q, got {t.device}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    with torch.no_grad(), _threads_for(_tile_work(q, k, block_q, block_k)):
        return _backward(q, k, v, out, lse, dout, causal, window, scale, block_q, block_k)


class TiledAttention(torch.autograd.Function):
    """Autograd wrapper: forward saves ``q, k, v, out, lse`` (O(n) extra, no ``n x n`` matrix);
    backward recomputes the tiles (:func:`tiled_attention_backward`). Call :func:`tiled_attention`,
    which validates the arguments, rather than ``TiledAttention.apply``.
    """

    @staticmethod
    def forward(ctx, q, k, v, causal, window, scale, block_q, block_k):
        with _threads_for(_tile_work(q, k, block_q, block_k)):
            out, lse = _forward(q, k, v, causal, window, scale, block_q, block_k)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.options = (causal, window, scale, block_q, block_k)
        public_lse = _public_lse(lse)
        ctx.mark_non_differentiable(public_lse)
        return out, public_lse

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout, _dlse):
        q, k, v, out, lse = ctx.saved_tensors
        block_q, block_k = ctx.options[3:]
        with _threads_for(_tile_work(q, k, block_q, block_k)):
            dq, dk, dv = _backward(q, k, v, out, lse, dout, *ctx.options)
        return dq, dk, dv, None, None, None, None, None


def tiled_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    window: int | None = None,
    scale: float | None = None,
    block_q: int = 64,
    block_k: int = 64,
    return_lse: bool = False,
):
    """Differentiable tiled attention (FlashAttention-2 forward and backward in torch).

    Same arguments and conventions as :func:`tiled_attention_forward`. Returns ``out``
    ``(batch, heads, q_len, head_dim)``, or ``(out, lse)`` with ``return_lse=True`` (the LSE is not
    differentiable). ``loss.backward()`` gives ``q.grad``, ``k.grad``, ``v.grad`` through
    :func:`tiled_attention_backward`; double backward is not supported.
    """
    check_qkv(q, k, v)
    causal, window, scale, block_q, block_k = _check_options(causal, window, scale, block_q, block_k, q.shape[-1])
    check_bool("return_lse", return_lse)
    out, lse = TiledAttention.apply(q, k, v, causal, window, scale, block_q, block_k)
    return (out, lse) if return_lse else out


# --- IO accounting: how many bytes the schedules above move between HBM and the chip -------------


def flash_block_sizes(sram_bytes: int, head_dim: int, element_bytes: int = 2) -> tuple[int, int]:
    """Tile sizes from the SRAM budget, FlashAttention (v1) Algorithm 1: with ``M = sram_bytes /
    element_bytes`` elements, ``block_k = ceil(M / (4 head_dim))`` and
    ``block_q = min(block_k, head_dim)``, so that a Q, K, V and O tile fit on chip together.
    Returns ``(block_q, block_k)``. Real kernels round to powers of two and tune further.
    """
    sram_bytes = check_int("sram_bytes", sram_bytes, minimum=1)
    head_dim = check_int("head_dim", head_dim, minimum=1)
    element_bytes = check_int("element_bytes", element_bytes, minimum=1)
    elements = sram_bytes // element_bytes
    block_k = -(-elements // (4 * head_dim))
    return min(block_k, head_dim), block_k


def tiled_hbm_bytes(
    q_len: int,
    kv_len: int | None = None,
    *,
    head_dim: int,
    causal: bool = False,
    window: int | None = None,
    block_q: int = 64,
    block_k: int = 64,
    element_bytes: int = 2,
    batch_heads: int = 1,
) -> int:
    """HBM bytes moved by the tiled forward above (the FlashAttention-2 schedule), counted exactly.

    Per query block: ``Q_i`` read once, ``K_j`` and ``V_j`` read once per *visited* key block
    (:func:`key_block_range`: causal and window skipping included), ``O_i`` written once and the
    LSE (4 bytes per row) written once. The score tiles never leave the chip. ``batch_heads``
    multiplies the count (one (batch, head) pair per program, K/V not shared between heads).
    """
    q_len = check_int("q_len", q_len, minimum=1)
    kv_len = q_len if kv_len is None else check_int("kv_len", kv_len, minimum=1)
    head_dim = check_int("head_dim", head_dim, minimum=1)
    causal, window, _, block_q, block_k = _check_options(causal, window, None, block_q, block_k, head_dim)
    element_bytes = check_int("element_bytes", element_bytes, minimum=1)
    batch_heads = check_int("batch_heads", batch_heads, minimum=1)
    pred = attention_predicate(causal=causal, window=window)
    total = 0
    for qs in range(0, q_len, block_q):
        qe = min(qs + block_q, q_len)
        first, last = _key_blocks(pred, qs, qe, kv_len - q_len, kv_len, block_k)
        keys = max(0, min(last * block_k, kv_len) - first * block_k)
        total += (2 * (qe - qs) * head_dim + 2 * keys * head_dim) * element_bytes + 4 * (qe - qs)
    return total * batch_heads


def standard_attention_hbm_bytes(
    q_len: int, kv_len: int | None = None, *, head_dim: int, element_bytes: int = 2, batch_heads: int = 1
) -> int:
    """HBM bytes of textbook attention run as three kernels (the FlashAttention paper's baseline).

    ``S = Q K^T``: read Q and K, write S. ``P = softmax(S)``: read S, write P. ``O = P V``: read P
    and V, write O. Total ``4 q_len kv_len + 2 (q_len + kv_len) head_dim`` elements: the four passes
    over the ``q_len x kv_len`` matrix dominate as soon as ``n >> head_dim``.
    """
    q_len = check_int("q_len", q_len, minimum=1)
    kv_len = q_len if kv_len is None else check_int("kv_len", kv_len, minimum=1)
    head_dim = check_int("head_dim", head_dim, minimum=1)
    element_bytes = check_int("element_bytes", element_bytes, minimum=1)
    batch_heads = check_int("batch_heads", batch_heads, minimum=1)
    elements = 4 * q_len * kv_len + 2 * (q_len + kv_len) * head_dim
    return elements * element_bytes * batch_heads
