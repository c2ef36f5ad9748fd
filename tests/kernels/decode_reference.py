"""Independent references for the decode tests: float64 attention per sequence, written from the definition.

Keys are read position by position (a paged cache through its block table, with Python integers), the mask
is built here from docs/conventions.md (query ``i`` of sequence ``b`` at ``p = L_b - q_len + i`` sees keys
``j <= p``, and ``j > p - w`` under a window), GQA by ``repeat_interleave``. None of the package's attention
code is used. ``sdpa_same_precision`` is PyTorch's SDPA in the inputs' dtype, the baseline of chapter 4's
tolerance rule (see ``test_flash_interpreter.py``): the kernel's error against float64 must be at most
``MULTIPLE`` times SDPA's, plus a small slack.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MULTIPLE = 3.0
SLACK = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}


def sequence_kv(k, v, b: int, length: int, block_table=None):
    """Keys and values of sequence ``b``, ``(kv_heads, length, head_dim)``, read one position at a time."""
    if block_table is None:
        return k[b, :, :length], v[b, :, :length]
    page = k.shape[2]
    rows = [(int(block_table[b, j // page]), j % page) for j in range(length)]
    if not rows:
        return k.new_zeros(k.shape[1], 0, k.shape[3]), v.new_zeros(v.shape[1], 0, v.shape[3])
    return (torch.stack([k[blk, :, s] for blk, s in rows], dim=1),
            torch.stack([v[blk, :, s] for blk, s in rows], dim=1))


def visible(q_len: int, length: int, window: int | None) -> torch.Tensor:
    """``(q_len, length)`` bool: query ``i`` (position ``length - q_len + i``) sees key ``j``."""
    p = torch.arange(q_len)[:, None] + (length - q_len)
    j = torch.arange(length)[None, :]
    keep = j <= p
    if window is not None:
        keep &= j > p - window
    return keep


def decode_reference(q, k, v, lengths, *, block_table=None, window=None, scale=None):
    """float64 ``(out, lse)``: zeros and ``-inf`` for query rows that see no key."""
    batch, heads, q_len, head_dim = q.shape
    scale = head_dim ** -0.5 if scale is None else scale
    out = torch.zeros(batch, heads, q_len, head_dim, dtype=torch.float64)
    lse = torch.full((batch, heads, q_len), -math.inf, dtype=torch.float64)
    for b in range(batch):
        length = int(lengths[b])
        kk, vv = (t.double().cpu().repeat_interleave(heads // k.shape[1], dim=0)
                  for t in sequence_kv(k, v, b, length, block_table))
        keep = visible(q_len, length, window)
        s = (q[b].double().cpu() @ kk.transpose(-1, -2)) * scale
        s = s.masked_fill(~keep, -math.inf)
        lse[b] = torch.logsumexp(s, -1) if length else lse[b]
        seen = keep.any(-1)
        if length:
            w = torch.softmax(s, -1)
            out[b] = torch.where(seen[:, None], w @ vv, 0.0)
    return out, lse


def sdpa_same_precision(q, k, v, lengths, *, block_table=None, window=None, scale=None):
    """SDPA in ``q``'s dtype, per sequence, as float64 (rows that see no key zeroed): the tolerance baseline."""
    batch, heads, q_len, head_dim = q.shape
    scale = head_dim ** -0.5 if scale is None else scale
    out = torch.zeros(batch, heads, q_len, head_dim, dtype=torch.float64)
    for b in range(batch):
        length = int(lengths[b])
        if length == 0:
            continue
        kk, vv = (t.cpu() for t in sequence_kv(k, v, b, length, block_table))
        keep = visible(q_len, length, window)
        seen = keep.any(-1)
        o = F.scaled_dot_product_attention(q[b:b + 1].cpu(), kk[None], vv[None], attn_mask=keep | ~seen[:, None],
                                           scale=scale, enable_gqa=True)[0]
        out[b] = torch.where(seen[:, None], o.double(), 0.0)
    return out


def assert_decode_rule(out, lse, q, k, v, lengths, *, block_table=None, window=None, scale=None):
    """Chapter 4's rule for ``out``; the LSE to 1e-4 of float64, ``-inf`` exactly where a row sees no key."""
    ref, ref_lse = decode_reference(q, k, v, lengths, block_table=block_table, window=window, scale=scale)
    base = sdpa_same_precision(q, k, v, lengths, block_table=block_table, window=window, scale=scale)
    assert out.shape == q.shape and out.dtype == q.dtype
    assert lse.shape == q.shape[:3] and lse.dtype == (torch.float64 if q.dtype == torch.float64 else torch.float32)
    out, lse = out.cpu().double(), lse.cpu().double()
    assert bool(torch.isfinite(out).all()), "non-finite values in the output"
    err = (out - ref).abs().max().item()
    base_err = (base - ref).abs().max().item()
    slack = SLACK.get(q.dtype, 1e-12)
    assert err <= MULTIPLE * base_err + slack, (
        f"max error {err:.3e} vs float64 > {MULTIPLE} x SDPA's same-precision error {base_err:.3e} + {slack}")
    empty = torch.isneginf(ref_lse)
    assert torch.equal(torch.isneginf(lse), empty), "LSE -inf where a row sees no key, and only there"
    assert torch.allclose(lse[~empty], ref_lse[~empty], atol=1e-4, rtol=1e-5)
    assert bool((out[empty] == 0).all()), "rows that see no key are zeros"


def random_paged(k_seq, v_seq, lengths, page: int, *, extra_blocks: int, gen, poison=float("nan")):
    """Scatter contiguous ``(batch, kv_heads, max_len, d)`` caches into a pool with a shuffled block table.

    Unused pool blocks, unused slots of last blocks and the table's padding (-1) hold ``poison``: a kernel
    that reads them shows NaN. Returns ``(k_pool, v_pool, block_table)``.
    """
    batch, kv_heads, _, d = k_seq.shape
    need = [-(-int(n) // page) for n in lengths]
    num_blocks = sum(need) + extra_blocks
    order = torch.randperm(max(num_blocks, 1), generator=gen).tolist()
    k_pool = torch.full((max(num_blocks, 1), kv_heads, page, d), poison, dtype=k_seq.dtype)
    v_pool = torch.full_like(k_pool, poison)
    table = torch.full((batch, max(max(need), 1)), -1, dtype=torch.int32)
    used = 0
    for b, n in enumerate(lengths):
        for i in range(need[b]):
            blk = order[used]
            used += 1
            table[b, i] = blk
            lo, hi = i * page, min((i + 1) * page, int(n))
            k_pool[blk, :, : hi - lo] = k_seq[b, :, lo:hi]
            v_pool[blk, :, : hi - lo] = v_seq[b, :, lo:hi]
    return k_pool, v_pool, table
