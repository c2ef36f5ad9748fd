"""FlashAttention-2 forward and backward as Triton kernels (the ``@triton.jit`` code only).

This module imports triton but not torch, so the ahead-of-time compile check
(:mod:`longctx_lab.kernels.aot`) can load it quickly; the launchers live in
:mod:`longctx_lab.kernels.flash`.

Layout, GQA mapping (``h // GROUP``: the kernels index the shared KV head, K and V are never copied),
alignment, windows, rows that see no key and NaN follow docs/conventions.md. Particular to the kernels:

- Scores are kept in base-2 units: ``s2 = (q . k) * scale * log2(e)``, so ``exp(x) = exp2(x log2 e)``;
  the LSE written to memory is in natural-log units, ``lse = log(sum_j exp(scale * q . k_j))``.
- NaN may also reach entries that share a loaded tile with it through ``0 * NaN``, never a row that sees
  no key.
- Any head dim from 1 to 256. ``HEAD_DIM`` is the true head dim (the row length of the dense scratch
  tensors, the store masks), ``BLOCK_D`` the tile width along it, :func:`~longctx_lab.kernels.config.padded_head_dim`
  (the next power of two, at least 16). Columns ``HEAD_DIM <= d < BLOCK_D`` are loaded as 0, so they add
  nothing to ``q . k``, ``p @ v`` or the gradients' dot products, and are never stored
  (:func:`load_rows`, :func:`store_rows`). Where ``BLOCK_D == HEAD_DIM`` no column mask is built at all.

Block skipping. For a query tile the key range splits into three parts (:func:`_split_range`):
key tiles no row of the tile can see are never loaded (loop bounds); tiles every row sees
completely are processed without any mask (the fast middle loop); the few tiles on the diagonal,
window edge or ragged tail are processed with the mask. The backward dK/dV kernel does the same
with the roles of queries and keys swapped.
"""

from __future__ import annotations

import triton
import triton.language as tl

LOG2E = 1.4426950408889634  # log2(e)
LN2 = 0.6931471805599453  # ln(2)


@triton.jit
def _split_range(lo, hi, full_lo, full_hi, BLOCK: tl.constexpr):
    """Cut ``[lo, hi)`` into tile-aligned ``[lo, a) [a, b) [b, hi)`` with ``[a, b)`` inside ``[full_lo, full_hi)``.

    ``lo``/``hi`` bound the indices some row can see, ``full_lo``/``full_hi`` those every row sees.
    All inputs are >= 0. Returns ``(start, a, b, end)``: loop ``start..a`` and ``b..end`` with masks,
    ``a..b`` without.
    """
    hi = tl.maximum(hi, lo)
    start = (lo // BLOCK) * BLOCK
    end_up = ((hi + BLOCK - 1) // BLOCK) * BLOCK
    a = ((full_lo + BLOCK - 1) // BLOCK) * BLOCK
    b = (tl.maximum(full_hi, 0) // BLOCK) * BLOCK
    a = tl.minimum(tl.maximum(a, start), end_up)
    b = tl.maximum(tl.minimum(b, end_up), a)
    return start, a, b, hi


@triton.jit
def _key_range(start_m, M, N, WINDOW, IS_CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Key tiles for the query tile starting at row ``start_m``: ``(start, a, b, end)`` (see _split_range)."""
    shift = N - M
    p_first = start_m + shift
    p_last = tl.minimum(start_m + BLOCK_M, M) - 1 + shift  # last *real* row of the tile
    lo = p_first * 0
    hi = N + p_first * 0
    full_lo = p_first * 0
    full_hi = N + p_first * 0
    if IS_CAUSAL:
        hi = tl.minimum(hi, p_last + 1)
        full_hi = tl.minimum(full_hi, p_first + 1)
    if HAS_WINDOW:
        lo = tl.maximum(lo, p_first - WINDOW + 1)
        full_lo = tl.maximum(full_lo, p_last - WINDOW + 1)
        if not IS_CAUSAL:
            hi = tl.minimum(hi, p_last + WINDOW)
            full_hi = tl.minimum(full_hi, p_first + WINDOW)
    hi = tl.maximum(hi, 0)
    return _split_range(lo, hi, full_lo, full_hi, BLOCK_N)


@triton.jit
def _query_range(start_n, M, N, WINDOW, IS_CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Query tiles that see the key tile starting at ``start_n``: ``(start, a, b, end)`` over rows."""
    shift = N - M
    j_first = start_n
    j_last = tl.minimum(start_n + BLOCK_N, N) - 1  # last *real* key of the tile
    lo = j_first * 0
    hi = M + j_first * 0
    full_lo = j_first * 0
    full_hi = M + j_first * 0
    if IS_CAUSAL:
        # row i sees key j when i + shift >= j
        lo = tl.maximum(lo, j_first - shift)
        full_lo = tl.maximum(full_lo, j_last - shift)
    if HAS_WINDOW:
        # and when i + shift < j + WINDOW
        hi = tl.minimum(hi, j_last + WINDOW - shift)
        full_hi = tl.minimum(full_hi, j_first + WINDOW - shift)
        if not IS_CAUSAL:
            # bidirectional: also i + shift > j - WINDOW
            lo = tl.maximum(lo, j_first - WINDOW + 1 - shift)
            full_lo = tl.maximum(full_lo, j_last - WINDOW + 1 - shift)
    lo = tl.maximum(lo, 0)
    hi = tl.maximum(hi, 0)
    full_lo = tl.minimum(full_lo, M)
    return _split_range(lo, hi, full_lo, full_hi, BLOCK_M)


@triton.jit
def _visible(pos_q, row_ok, offs_n, N, WINDOW, IS_CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr):
    """Boolean tile: real query (``pos_q``, ``row_ok``) sees real key ``offs_n``; the mask of edge tiles.

    The three inputs are already broadcastable to the tile, so the same code builds the
    query-major ``(BLOCK_M, BLOCK_N)`` tile and the key-major ``(BLOCK_N, BLOCK_M)`` one.
    """
    vis = row_ok & (offs_n < N)
    if IS_CAUSAL:
        vis = vis & (offs_n <= pos_q)
    if HAS_WINDOW:
        vis = vis & (offs_n > pos_q - WINDOW)
        if not IS_CAUSAL:
            vis = vis & (offs_n < pos_q + WINDOW)
    return vis


@triton.jit
def load_rows(ptrs, row_ok, offs_d, ROW_MASK: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr):
    """Load a ``(rows, BLOCK_D)`` tile. Rows with ``row_ok`` False (when ``ROW_MASK``) and the padding columns
    ``offs_d >= HEAD_DIM`` read as 0; without either (an interior tile of a power-of-two head dim) the load is
    unmasked."""
    if BLOCK_D == HEAD_DIM:
        if ROW_MASK:
            x = tl.load(ptrs, mask=row_ok[:, None], other=0.0)
        else:
            x = tl.load(ptrs)
    else:
        if ROW_MASK:
            x = tl.load(ptrs, mask=row_ok[:, None] & (offs_d < HEAD_DIM)[None, :], other=0.0)
        else:
            x = tl.load(ptrs, mask=(offs_d < HEAD_DIM)[None, :], other=0.0)
    return x


@triton.jit
def store_rows(ptrs, x, row_ok, offs_d, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr):
    """Store a ``(rows, BLOCK_D)`` tile: the rows with ``row_ok`` True, the columns ``offs_d < HEAD_DIM``."""
    if BLOCK_D == HEAD_DIM:
        tl.store(ptrs, x, mask=row_ok[:, None])
    else:
        tl.store(ptrs, x, mask=row_ok[:, None] & (offs_d < HEAD_DIM)[None, :])


# --------------------------------------------------------------------------------------------- forward


@triton.jit
def _fwd_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, pos_q, offs_m, offs_d,
               M, N, WINDOW, qk_scale, start, end,
               MASKED: tl.constexpr, IS_CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr,
               BLOCK_N: tl.constexpr, DOT_PRECISION: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr):
    """Online softmax over the key tiles ``start, start + BLOCK_N, ... < end`` for one query tile."""
    for start_n in range(start, end, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k_ptrs = k_base + offs_n[:, None] * stride_kn + offs_d[None, :]
        v_ptrs = v_base + offs_n[:, None] * stride_vn + offs_d[None, :]
        k = load_rows(k_ptrs, offs_n < N, offs_d, MASKED, HEAD_DIM, BLOCK_D)
        v = load_rows(v_ptrs, offs_n < N, offs_d, MASKED, HEAD_DIM, BLOCK_D)
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N), base 2
        if MASKED:
            vis = _visible(pos_q[:, None], (offs_m < M)[:, None], offs_n[None, :], N, WINDOW, IS_CAUSAL, HAS_WINDOW)
            s = tl.where(vis, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        # A row with nothing visible yet has m_new = -inf; subtract 0 instead so exp2 gives 0, not NaN.
        m_sub = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.math.exp2(s - m_sub[:, None])
        alpha = tl.math.exp2(m_i - m_sub)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def attn_fwd_kernel(
    Q, K, V, Out, Lse,
    stride_qb, stride_qh, stride_qm,
    stride_kb, stride_kh, stride_kn,
    stride_vb, stride_vh, stride_vn,
    stride_ob, stride_oh, stride_om,
    H, GROUP, M, N, WINDOW, sm_scale,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    IS_CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """Forward: one program per (query tile, batch * head). Writes O (input dtype) and LSE (fp32, natural log).

    Grid: ``(cdiv(M, BLOCK_M), batch * H)``. ``M``/``N`` are the query/key lengths, ``GROUP = H // kv_heads``,
    ``WINDOW`` is read only when ``HAS_WINDOW``. ``Lse`` is a contiguous ``(batch, H, M)`` float32 tensor.
    """
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    kvh = h // GROUP  # grouped-query attention: read the shared KV head, no copy

    start_m = pid_m * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    pos_q = offs_m + (N - M)  # bottom-right aligned absolute positions

    q_base = Q + b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    k_base = K + b.to(tl.int64) * stride_kb + kvh.to(tl.int64) * stride_kh
    v_base = V + b.to(tl.int64) * stride_vb + kvh.to(tl.int64) * stride_vh
    q = load_rows(q_base + offs_m[:, None] * stride_qm + offs_d[None, :], offs_m < M, offs_d, True, HEAD_DIM, BLOCK_D)

    qk_scale = sm_scale * 1.4426950408889634  # fold log2(e) in: exp(x) = exp2(x * log2 e)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    start, a, b_end, end = _key_range(start_m, M, N, WINDOW, IS_CAUSAL, HAS_WINDOW, BLOCK_M, BLOCK_N)
    # leading edge tiles (window edge), masked
    acc, l_i, m_i = _fwd_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, pos_q, offs_m, offs_d,
                               M, N, WINDOW, qk_scale, start, a,
                               True, IS_CAUSAL, HAS_WINDOW, BLOCK_N, DOT_PRECISION, HEAD_DIM, BLOCK_D)
    # interior tiles every row sees completely: no mask at all
    acc, l_i, m_i = _fwd_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, pos_q, offs_m, offs_d,
                               M, N, WINDOW, qk_scale, a, b_end,
                               False, IS_CAUSAL, HAS_WINDOW, BLOCK_N, DOT_PRECISION, HEAD_DIM, BLOCK_D)
    # trailing edge tiles (diagonal, ragged tail), masked
    acc, l_i, m_i = _fwd_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, pos_q, offs_m, offs_d,
                               M, N, WINDOW, qk_scale, b_end, end,
                               True, IS_CAUSAL, HAS_WINDOW, BLOCK_N, DOT_PRECISION, HEAD_DIM, BLOCK_D)

    # The row saw no key: output 0, LSE -inf. `l == 0`, not `l > 0`: a NaN in q or k makes l NaN, and the
    # row must come out NaN, not zeros. where() also keeps out the 0 * NaN that a NaN value in a masked
    # column of a loaded tile leaves in acc.
    empty = l_i == 0.0
    out = tl.where(empty[:, None], 0.0, acc / tl.where(empty, 1.0, l_i)[:, None])
    lse = tl.where(empty, float("-inf"), (m_i + tl.math.log2(tl.where(empty, 1.0, l_i))) * 0.6931471805599453)

    o_base = Out + b.to(tl.int64) * stride_ob + h.to(tl.int64) * stride_oh
    store_rows(o_base + offs_m[:, None] * stride_om + offs_d[None, :], out.to(Out.dtype.element_ty), offs_m < M,
               offs_d, HEAD_DIM, BLOCK_D)
    tl.store(Lse + pid_bh.to(tl.int64) * M + offs_m, lse, mask=offs_m < M)


# --------------------------------------------------------------------------------------------- backward


@triton.jit
def attn_bwd_preprocess_kernel(Out, DO, Delta, M, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
                               BLOCK_M: tl.constexpr):
    """Pre-pass: ``Delta[b, h, i] = sum_d dO[b, h, i, d] * O[b, h, i, d]`` in fp32.

    ``Out`` and ``DO`` are contiguous ``(batch, H, M, HEAD_DIM)``; grid ``(cdiv(M, BLOCK_M), batch * H)``.
    Delta is ``rowsum(P * dP)``, the term the softmax backward subtracts (FlashAttention-2, Alg. 2).
    """
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    base = pid_bh.to(tl.int64) * M * HEAD_DIM
    ptrs = base + offs_m[:, None] * HEAD_DIM + offs_d[None, :]
    o = load_rows(Out + ptrs, offs_m < M, offs_d, True, HEAD_DIM, BLOCK_D).to(tl.float32)
    do = load_rows(DO + ptrs, offs_m < M, offs_d, True, HEAD_DIM, BLOCK_D).to(tl.float32)
    tl.store(Delta + pid_bh.to(tl.int64) * M + offs_m, tl.sum(o * do, 1), mask=offs_m < M)


@triton.jit
def _dkdv_tiles(dk, dv, k, v, q_base, stride_qm, do_base, lse_base, delta_base, start_n, offs_n, offs_d,
                M, N, WINDOW, qk_scale, start, end,
                MASKED: tl.constexpr, IS_CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr,
                BLOCK_M: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """Accumulate dK, dV of one key tile over the query tiles ``start, start + BLOCK_M, ... < end``."""
    for start_m in range(start, end, BLOCK_M):
        start_m = tl.multiple_of(start_m, BLOCK_M)
        offs_m = start_m + tl.arange(0, BLOCK_M)
        q_ptrs = q_base + offs_m[:, None] * stride_qm + offs_d[None, :]
        do_ptrs = do_base + offs_m[:, None] * HEAD_DIM + offs_d[None, :]
        row_ok = offs_m < M
        q = load_rows(q_ptrs, row_ok, offs_d, MASKED, HEAD_DIM, BLOCK_D)
        do = load_rows(do_ptrs, row_ok, offs_d, MASKED, HEAD_DIM, BLOCK_D)
        if MASKED:
            lse2 = tl.load(lse_base + offs_m, mask=row_ok, other=0.0) * 1.4426950408889634
            delta = tl.load(delta_base + offs_m, mask=row_ok, other=0.0)
        else:
            lse2 = tl.load(lse_base + offs_m) * 1.4426950408889634
            delta = tl.load(delta_base + offs_m)
        # transposed scores: rows are keys, columns queries
        s_t = tl.dot(k, tl.trans(q), input_precision=DOT_PRECISION) * qk_scale
        p_t = tl.math.exp2(s_t - lse2[None, :])
        if MASKED:
            pos_q = offs_m + (N - M)
            vis_t = _visible(pos_q[None, :], row_ok[None, :], offs_n[:, None], N, WINDOW, IS_CAUSAL, HAS_WINDOW)
            # where() selects, so the inf/NaN of a fully masked row (lse = -inf) never leaks
            p_t = tl.where(vis_t, p_t, 0.0)
        dv += tl.dot(p_t.to(do.dtype), do, input_precision=DOT_PRECISION)
        dp_t = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)
        ds_t = p_t * (dp_t - delta[None, :])
        if MASKED:
            ds_t = tl.where(vis_t, ds_t, 0.0)  # 0 * NaN (a NaN row's delta, a NaN value) stays out of masked dS
        dk += tl.dot(ds_t.to(q.dtype), q, input_precision=DOT_PRECISION)
    return dk, dv


@triton.jit
def attn_bwd_dkdv_kernel(
    Q, K, V, DO, Lse, Delta, DK, DV,
    stride_qb, stride_qh, stride_qm,
    stride_kb, stride_kh, stride_kn,
    stride_vb, stride_vh, stride_vn,
    H, GROUP, M, N, WINDOW, sm_scale,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    IS_CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """dK, dV: one program per (key tile, batch * kv_head), looping over the query heads of the group.

    Grid ``(cdiv(N, BLOCK_N), batch * kv_heads)``. dK/dV of a KV head are summed over the ``GROUP``
    query heads that read it, in fp32 registers, and written once (no atomics, no K/V copies).
    ``DO`` is contiguous ``(batch, H, M, HEAD_DIM)``; ``DK``/``DV`` contiguous ``(batch, kv_heads, N, HEAD_DIM)``.
    """
    pid_n = tl.program_id(0)
    pid_bkv = tl.program_id(1)
    kv_heads = H // GROUP
    b = pid_bkv // kv_heads
    kvh = pid_bkv % kv_heads

    start_n = pid_n * BLOCK_N
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    k_base = K + b.to(tl.int64) * stride_kb + kvh.to(tl.int64) * stride_kh
    v_base = V + b.to(tl.int64) * stride_vb + kvh.to(tl.int64) * stride_vh
    col_ok = offs_n < N
    k = load_rows(k_base + offs_n[:, None] * stride_kn + offs_d[None, :], col_ok, offs_d, True, HEAD_DIM, BLOCK_D)
    v = load_rows(v_base + offs_n[:, None] * stride_vn + offs_d[None, :], col_ok, offs_d, True, HEAD_DIM, BLOCK_D)
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    qk_scale = sm_scale * 1.4426950408889634

    start, a, b_end, end = _query_range(start_n, M, N, WINDOW, IS_CAUSAL, HAS_WINDOW, BLOCK_M, BLOCK_N)
    for g in range(GROUP):
        h = kvh * GROUP + g
        bh = b.to(tl.int64) * H + h
        q_base = Q + b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
        do_base = DO + bh * M * HEAD_DIM
        lse_base = Lse + bh * M
        delta_base = Delta + bh * M
        dk, dv = _dkdv_tiles(dk, dv, k, v, q_base, stride_qm, do_base, lse_base, delta_base, start_n, offs_n, offs_d,
                             M, N, WINDOW, qk_scale, start, a,
                             True, IS_CAUSAL, HAS_WINDOW, BLOCK_M, HEAD_DIM, BLOCK_D, DOT_PRECISION)
        dk, dv = _dkdv_tiles(dk, dv, k, v, q_base, stride_qm, do_base, lse_base, delta_base, start_n, offs_n, offs_d,
                             M, N, WINDOW, qk_scale, a, b_end,
                             False, IS_CAUSAL, HAS_WINDOW, BLOCK_M, HEAD_DIM, BLOCK_D, DOT_PRECISION)
        dk, dv = _dkdv_tiles(dk, dv, k, v, q_base, stride_qm, do_base, lse_base, delta_base, start_n, offs_n, offs_d,
                             M, N, WINDOW, qk_scale, b_end, end,
                             True, IS_CAUSAL, HAS_WINDOW, BLOCK_M, HEAD_DIM, BLOCK_D, DOT_PRECISION)

    dk = dk * sm_scale  # dS is the gradient of the scaled scores; dK = scale * dS^T Q
    out_base = pid_bkv.to(tl.int64) * N * HEAD_DIM
    out_ptrs = out_base + offs_n[:, None] * HEAD_DIM + offs_d[None, :]
    store_rows(DK + out_ptrs, dk.to(DK.dtype.element_ty), col_ok, offs_d, HEAD_DIM, BLOCK_D)
    store_rows(DV + out_ptrs, dv.to(DV.dtype.element_ty), col_ok, offs_d, HEAD_DIM, BLOCK_D)


@triton.jit
def _dq_tiles(dq, q, do, lse2, delta, k_base, v_base, stride_kn, stride_vn, pos_q, offs_m, offs_d,
              M, N, WINDOW, qk_scale, start, end,
              MASKED: tl.constexpr, IS_CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr,
              BLOCK_N: tl.constexpr, DOT_PRECISION: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr):
    """Accumulate dQ of one query tile over the key tiles ``start, start + BLOCK_N, ... < end``."""
    for start_n in range(start, end, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k_ptrs = k_base + offs_n[:, None] * stride_kn + offs_d[None, :]
        v_ptrs = v_base + offs_n[:, None] * stride_vn + offs_d[None, :]
        k = load_rows(k_ptrs, offs_n < N, offs_d, MASKED, HEAD_DIM, BLOCK_D)
        v = load_rows(v_ptrs, offs_n < N, offs_d, MASKED, HEAD_DIM, BLOCK_D)
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
        p = tl.math.exp2(s - lse2[:, None])
        if MASKED:
            vis = _visible(pos_q[:, None], (offs_m < M)[:, None], offs_n[None, :], N, WINDOW, IS_CAUSAL, HAS_WINDOW)
            p = tl.where(vis, p, 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=DOT_PRECISION)
    return dq


@triton.jit
def attn_bwd_dq_kernel(
    Q, K, V, DO, Lse, Delta, DQ,
    stride_qb, stride_qh, stride_qm,
    stride_kb, stride_kh, stride_kn,
    stride_vb, stride_vh, stride_vn,
    H, GROUP, M, N, WINDOW, sm_scale,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    IS_CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """dQ: one program per (query tile, batch * head), same key tiles (and skipping) as the forward.

    Grid ``(cdiv(M, BLOCK_M), batch * H)``. ``DO``/``DQ`` contiguous ``(batch, H, M, HEAD_DIM)``.
    """
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    kvh = h // GROUP

    start_m = pid_m * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    pos_q = offs_m + (N - M)
    row_ok = offs_m < M

    q_base = Q + b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    k_base = K + b.to(tl.int64) * stride_kb + kvh.to(tl.int64) * stride_kh
    v_base = V + b.to(tl.int64) * stride_vb + kvh.to(tl.int64) * stride_vh
    dense = pid_bh.to(tl.int64) * M * HEAD_DIM + offs_m[:, None] * HEAD_DIM + offs_d[None, :]
    q = load_rows(q_base + offs_m[:, None] * stride_qm + offs_d[None, :], row_ok, offs_d, True, HEAD_DIM, BLOCK_D)
    do = load_rows(DO + dense, row_ok, offs_d, True, HEAD_DIM, BLOCK_D)
    lse2 = tl.load(Lse + pid_bh.to(tl.int64) * M + offs_m, mask=row_ok, other=0.0) * 1.4426950408889634
    delta = tl.load(Delta + pid_bh.to(tl.int64) * M + offs_m, mask=row_ok, other=0.0)
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    qk_scale = sm_scale * 1.4426950408889634

    start, a, b_end, end = _key_range(start_m, M, N, WINDOW, IS_CAUSAL, HAS_WINDOW, BLOCK_M, BLOCK_N)
    dq = _dq_tiles(dq, q, do, lse2, delta, k_base, v_base, stride_kn, stride_vn, pos_q, offs_m, offs_d,
                   M, N, WINDOW, qk_scale, start, a, True, IS_CAUSAL, HAS_WINDOW, BLOCK_N, DOT_PRECISION,
                   HEAD_DIM, BLOCK_D)
    dq = _dq_tiles(dq, q, do, lse2, delta, k_base, v_base, stride_kn, stride_vn, pos_q, offs_m, offs_d,
                   M, N, WINDOW, qk_scale, a, b_end, False, IS_CAUSAL, HAS_WINDOW, BLOCK_N, DOT_PRECISION,
                   HEAD_DIM, BLOCK_D)
    dq = _dq_tiles(dq, q, do, lse2, delta, k_base, v_base, stride_kn, stride_vn, pos_q, offs_m, offs_d,
                   M, N, WINDOW, qk_scale, b_end, end, True, IS_CAUSAL, HAS_WINDOW, BLOCK_N, DOT_PRECISION,
                   HEAD_DIM, BLOCK_D)

    # A row that saw no key (LSE -inf) has dQ 0, even where 0 * NaN (a NaN value in a loaded tile) reached it.
    dq = tl.where((lse2 == float("-inf"))[:, None], 0.0, dq * sm_scale)
    store_rows(DQ + dense, dq.to(DQ.dtype.element_ty), row_ok, offs_d, HEAD_DIM, BLOCK_D)


def is_interpreted() -> bool:
    """True when these kernels were defined under the Triton interpreter (``TRITON_INTERPRET=1`` at import)."""
    return not isinstance(attn_fwd_kernel, triton.runtime.jit.JITFunction)


#: The kernels by the names :mod:`longctx_lab.kernels.config` uses.
KERNEL_FUNCTIONS = {
    "fwd": attn_fwd_kernel,
    "bwd_preprocess": attn_bwd_preprocess_kernel,
    "bwd_dkdv": attn_bwd_dkdv_kernel,
    "bwd_dq": attn_bwd_dq_kernel,
}
