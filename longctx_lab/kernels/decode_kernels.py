"""Flash-decoding as Triton kernels (the ``@triton.jit`` code only): split the cached keys, then merge.

This module imports triton but not torch, so the ahead-of-time compile check
(:mod:`longctx_lab.kernels.aot`) can load it quickly; the launchers and the split heuristic live in
:mod:`longctx_lab.kernels.decode`. Shared rules (GQA ``h // group``, bottom-right alignment, window
``p - w < j <= p``, LSE, NaN): see docs/conventions.md. What is particular to decoding:

- A batch of sequences of different lengths ``L_b`` (``Lengths``, int32, one per sequence). The ``Q_LEN``
  queries of sequence ``b`` are its last ``Q_LEN`` positions, query ``i`` at ``p = L_b - Q_LEN + i``;
  attention is always causal (a decode query sees its past only), with an optional causal window.
  A query with ``p < 0`` (``Q_LEN > L_b``, e.g. an empty slot) sees no key: output 0, LSE ``-inf``.
- Caches. Contiguous: ``K``/``V`` ``(batch, kv_heads, max_len, head_dim)``, key ``j`` of sequence ``b`` at
  ``K[b, kvh, j]``. Paged (``PAGED``): pools ``(num_blocks, kv_heads, PAGE, head_dim)`` and a block table
  ``(batch, max_blocks)``; key ``j`` at ``K[table[b, j // PAGE], kvh, j % PAGE]``. Keys at ``j >= L_b`` are never
  read, so table entries past a sequence's blocks (``-1`` padding) are never followed.
- GQA without copies: one program owns one KV head of one sequence and stacks the ``GROUP * Q_LEN`` query
  rows that read it (row ``r``: query head ``kvh * GROUP + r // Q_LEN``, query ``r % Q_LEN``) into one
  ``BLOCK_M``-row tile, so every K/V tile it loads is used by all of them (one ``tl.dot``). More rows than
  ``BLOCK_M`` are cut into row blocks (grid axis 2), each loading K/V again.
- Split-K (flash-decoding, Dao et al. 2023): the keys the sequence's queries may see, ``[lo, L_b)`` with
  ``lo = 0`` or ``max(0, L_b - Q_LEN - WINDOW + 1)``, start at a tile boundary and are cut into
  ``NUM_SPLITS`` equal parts of whole ``BLOCK_N`` tiles. Each program of :func:`decode_split_kernel` runs
  an online softmax over its part and writes its normalised output and its LSE (base 2) to fp32
  scratch; a part past ``L_b`` is an *empty split* (nothing loaded; output 0, LSE ``-inf``).
  :func:`decode_merge_kernel` combines the parts of each row: ``lse = log2 sum_s 2^lse_s`` and
  ``out = sum_s 2^(lse_s - lse) out_s``, taken as a running maximum so nothing overflows.
- Scores are kept in base-2 units as in :mod:`.flash_kernels` (``exp(x) = exp2(x log2 e)``); the LSE
  written to ``Lse`` is natural-log.
- NaN: K/V are loaded only inside ``[lo, L_b)`` (other keys are never touched), and empty rows take
  ``where`` branches, so a NaN reaches every output that depends on it and never a row that sees no key.
  As in the forward kernel, a NaN key or value that one row of a tile sees can also reach the tile's
  other rows through ``0 * NaN`` (a row of a causal window that does not see it).
- Any head dim from 1 to 256, as in :mod:`.flash_kernels`: ``HEAD_DIM`` is the true head dim (also the row
  length of the ``OPart`` scratch), ``BLOCK_D`` the tile width (the next power of two, at least 16); the padding
  columns are loaded as 0 and never stored.
"""

from __future__ import annotations

import triton
import triton.language as tl

from longctx_lab.kernels.flash_kernels import load_rows, store_rows


@triton.jit
def decode_split_kernel(
    Q, K, V, Lengths, BlockTable, OPart, LsePart,
    stride_qb, stride_qh, stride_qm,
    stride_kb, stride_kh, stride_kn,
    stride_vb, stride_vh, stride_vn,
    stride_tb,
    H, GROUP, Q_LEN, WINDOW, PAGE, NUM_SPLITS, sm_scale,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_WINDOW: tl.constexpr, PAGED: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """One split of one (sequence, KV head, row block): online softmax over its keys, into fp32 scratch.

    Grid ``(NUM_SPLITS, batch * kv_heads, cdiv(GROUP * Q_LEN, BLOCK_M))``. ``OPart`` is a contiguous
    ``(batch, H, Q_LEN, NUM_SPLITS, HEAD_DIM)`` float32 tensor, ``LsePart`` ``(batch, H, Q_LEN, NUM_SPLITS)``
    float32 (base-2 LSE of the split, ``-inf`` when the split saw nothing). ``stride_kb``/``stride_vb`` are
    the batch strides (contiguous) or the block strides of the pools (``PAGED``); ``stride_kn`` the token
    stride. ``BlockTable``/``stride_tb``/``PAGE`` are read only when ``PAGED``, ``WINDOW`` only when
    ``HAS_WINDOW``.
    """
    pid_s = tl.program_id(0)
    pid_bkv = tl.program_id(1)
    pid_r = tl.program_id(2)
    kv_heads = H // GROUP
    b = pid_bkv // kv_heads
    kvh = pid_bkv % kv_heads
    length = tl.load(Lengths + b)

    # the query rows of this program: GROUP heads x Q_LEN queries, head-major
    offs_r = pid_r * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = offs_r < GROUP * Q_LEN
    g = offs_r // Q_LEN
    i = offs_r % Q_LEN
    h = kvh * GROUP + g
    pos_q = length - Q_LEN + i  # bottom-right aligned, per sequence
    offs_d = tl.arange(0, BLOCK_D)
    q_ptrs = (Q + b.to(tl.int64) * stride_qb + h.to(tl.int64)[:, None] * stride_qh
              + i[:, None] * stride_qm + offs_d[None, :])
    q = load_rows(q_ptrs, row_ok, offs_d, True, HEAD_DIM, BLOCK_D)

    # keys some row may see: [lo, length); this split's share of it, in whole tiles
    lo = length * 0
    if HAS_WINDOW:
        lo = tl.maximum(lo, length - Q_LEN - WINDOW + 1)
    start = (lo // BLOCK_N) * BLOCK_N
    span = tl.maximum(length - start, 0)
    per_split = tl.cdiv(tl.cdiv(span, NUM_SPLITS), BLOCK_N) * BLOCK_N
    split_lo = start + pid_s * per_split
    split_hi = tl.minimum(split_lo + per_split, length)

    if PAGED:
        k_head = K + kvh.to(tl.int64) * stride_kh
        v_head = V + kvh.to(tl.int64) * stride_vh
        table = BlockTable + b.to(tl.int64) * stride_tb
    else:
        k_head = K + b.to(tl.int64) * stride_kb + kvh.to(tl.int64) * stride_kh
        v_head = V + b.to(tl.int64) * stride_vb + kvh.to(tl.int64) * stride_vh

    qk_scale = sm_scale * 1.4426950408889634  # fold log2(e) in: exp(x) = exp2(x * log2 e)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for start_n in range(split_lo, split_hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        kv_ok = (offs_n < split_hi) & (offs_n >= lo)  # never touch a key outside [lo, length)
        if PAGED:
            block = tl.load(table + offs_n // PAGE, mask=kv_ok, other=0).to(tl.int64)
            slot = offs_n % PAGE
            k_rows = block * stride_kb + slot * stride_kn
            v_rows = block * stride_vb + slot * stride_vn
        else:
            k_rows = offs_n * stride_kn
            v_rows = offs_n * stride_vn
        k = load_rows(k_head + k_rows[:, None] + offs_d[None, :], kv_ok, offs_d, True, HEAD_DIM, BLOCK_D)
        v = load_rows(v_head + v_rows[:, None] + offs_d[None, :], kv_ok, offs_d, True, HEAD_DIM, BLOCK_D)
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N), base 2
        vis = row_ok[:, None] & kv_ok[None, :] & (offs_n[None, :] <= pos_q[:, None])
        if HAS_WINDOW:
            vis = vis & (offs_n[None, :] > pos_q[:, None] - WINDOW)
        s = tl.where(vis, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        # a row with nothing visible yet has m_new = -inf; subtract 0 instead so exp2 gives 0, not NaN
        m_sub = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.math.exp2(s - m_sub[:, None])
        alpha = tl.math.exp2(m_i - m_sub)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
        m_i = m_new

    # `l == 0`, not `l > 0`: a NaN row must stay NaN; where() keeps a masked column's 0 * NaN out of empty rows
    empty = l_i == 0.0
    out = tl.where(empty[:, None], 0.0, acc / tl.where(empty, 1.0, l_i)[:, None])
    lse2 = tl.where(empty, float("-inf"), m_i + tl.math.log2(tl.where(empty, 1.0, l_i)))
    part = ((b.to(tl.int64) * H + h) * Q_LEN + i) * NUM_SPLITS + pid_s  # (batch, H, Q_LEN, NUM_SPLITS) index
    store_rows(OPart + part[:, None] * HEAD_DIM + offs_d[None, :], out, row_ok, offs_d, HEAD_DIM, BLOCK_D)
    tl.store(LsePart + part, lse2, mask=row_ok)


@triton.jit
def decode_merge_kernel(
    OPart, LsePart, Out, Lse,
    stride_ob, stride_oh, stride_om,
    H, Q_LEN, NUM_SPLITS,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Merge the ``NUM_SPLITS`` partial results of one query row by their LSE; write ``Out`` and ``Lse``.

    Grid ``(Q_LEN, batch * H)``. ``OPart``/``LsePart`` as written by :func:`decode_split_kernel`; ``Out`` is
    ``(batch, H, Q_LEN, HEAD_DIM)`` in the input dtype (any strides, last dim contiguous), ``Lse`` a contiguous
    ``(batch, H, Q_LEN)`` float32 tensor (natural log). A running maximum keeps every ``2^(lse_s - m)`` <= 1.
    """
    pid_i = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    row = pid_bh.to(tl.int64) * Q_LEN + pid_i
    offs_d = tl.arange(0, BLOCK_D)

    m = tl.full([1], float("-inf"), dtype=tl.float32)
    l_sum = tl.zeros([1], dtype=tl.float32)
    d_ok = offs_d < HEAD_DIM  # the padding columns of BLOCK_D: read as 0, never stored
    acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    for s in range(0, NUM_SPLITS):
        lse_s = tl.load(LsePart + row * NUM_SPLITS + s + tl.arange(0, 1))
        o_s = tl.load(OPart + (row * NUM_SPLITS + s) * HEAD_DIM + offs_d, mask=d_ok, other=0.0)
        m_new = tl.maximum(m, lse_s)
        m_sub = tl.where(m_new == float("-inf"), 0.0, m_new)  # all -inf so far: weights 0, not NaN
        alpha = tl.math.exp2(m - m_sub)
        w = tl.math.exp2(lse_s - m_sub)  # NaN when the split's LSE is NaN: it reaches acc and l_sum
        acc = acc * alpha + w * o_s
        l_sum = l_sum * alpha + w
        m = m_new

    empty = l_sum == 0.0  # every split empty: the row saw no key
    out = tl.where(empty, 0.0, acc / tl.where(empty, 1.0, l_sum))
    lse = tl.where(empty, float("-inf"), (m + tl.math.log2(tl.where(empty, 1.0, l_sum))) * 0.6931471805599453)
    o_ptrs = Out + b.to(tl.int64) * stride_ob + h.to(tl.int64) * stride_oh + pid_i * stride_om + offs_d
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=d_ok)
    tl.store(Lse + row + tl.arange(0, 1), lse)


def is_interpreted() -> bool:
    """True when these kernels were defined under the Triton interpreter (``TRITON_INTERPRET=1`` at import)."""
    return not isinstance(decode_split_kernel, triton.runtime.jit.JITFunction)


#: The kernels by the names :mod:`longctx_lab.kernels.config` and :mod:`longctx_lab.kernels.aot` use.
DECODE_KERNEL_FUNCTIONS = {
    "decode_split": decode_split_kernel,
    "decode_merge": decode_merge_kernel,
}
