"""What attention costs: FLOPs, bytes, KV-cache size, arithmetic intensity and the roofline.

Units follow docs/conventions.md (bytes as integers, GB = 1e9 and GiB = 2**30 both printed). Counting rules:

* A multiply-add counts as 2 FLOPs. Attention forward does two matmuls per attended
  (query, key) pair over ``head_dim``: ``S = Q K^T`` and ``O = P V``, so
  ``forward FLOPs = 4 * batch * heads * head_dim * pairs``. Softmax and scaling are O(pairs) and
  left out, as in the FlashAttention papers.
* ``pairs`` is counted exactly: ``q_len * kv_len`` without a mask, ``n (n + 1) / 2`` for causal
  self-attention (about half: "causal halving"), and the exact band count with a window.
* Backward = 2.5 x forward (5 matmuls instead of 2: dV, dP, dS->dQ, dS->dK plus the
  recomputation of S), the FlashAttention-2 convention for reporting TFLOP/s.
"""

from __future__ import annotations

from longctx_lab.core.configs import GPUSpec, ModelConfig, n_params, param_counts
from longctx_lab.core.validate import check_bool, check_int, check_number, check_optional_int, dtype_bytes


def attended_pairs(q_len: int, kv_len: int | None = None, *, causal: bool = False, window: int | None = None) -> int:
    """Number of (query, key) pairs a mask keeps, counted exactly.

    Queries are the last ``q_len`` of ``kv_len`` positions (bottom-right alignment). ``window=w``
    keeps keys ``p - w < j <= p`` when causal, ``|p - j| < w`` otherwise.
    """
    q_len = check_int("q_len", q_len, minimum=1)
    kv_len = q_len if kv_len is None else check_int("kv_len", kv_len, minimum=1)
    check_bool("causal", causal)
    window = check_optional_int("window", window, minimum=1)
    if not causal and window is None:
        return q_len * kv_len
    # Count by diagonal d = p - j (query position minus key position). Query rows sit at absolute
    # positions first..last (last = kv_len - 1; first < 0 when q_len > kv_len) and keys at 0..last,
    # so diagonal d holds max(0, min(last, last + d) - max(first, d) + 1) pairs: piecewise linear in
    # d with slope -1, 0 or +1, summed in closed form between its breakpoints.
    first, last = kv_len - q_len, kv_len - 1
    d_hi = last if window is None else min(window - 1, last)
    d_lo = 0 if causal else max(-(window - 1), first - last)

    def count(d: int) -> int:
        return min(last, last + d) - max(first, d) + 1

    cuts = sorted({d_lo, d_hi + 1} | {c for c in (0, 1, first, first + 1) if d_lo < c <= d_hi})
    total = 0
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        b -= 1  # diagonals a..b; count(d) is linear on this range
        ca, cb = count(a), count(b)
        if ca <= 0 and cb <= 0:
            continue
        slope = (cb - ca) // (b - a) if b > a else 0
        if slope > 0:  # skip the leading diagonals with no pair
            a, ca = a + max(0, 1 - ca), max(ca, 1)
        elif slope < 0:  # stop before the trailing diagonals with no pair
            b, cb = min(b, a + ca - 1), max(cb, 1)
        total += (ca + cb) * (b - a + 1) // 2
    return total


def attention_flops(
    seq_len: int,
    head_dim: int,
    *,
    n_heads: int = 1,
    batch: int = 1,
    kv_len: int | None = None,
    causal: bool = False,
    window: int | None = None,
    backward: bool = False,
) -> int:
    """FLOPs of attention for one layer: ``4 * batch * n_heads * head_dim * pairs`` forward.

    ``backward=True`` returns the backward pass alone (2.5 x forward). ``seq_len`` is the query
    length; ``kv_len`` defaults to it.
    """
    head_dim = check_int("head_dim", head_dim, minimum=1)
    n_heads = check_int("n_heads", n_heads, minimum=1)
    batch = check_int("batch", batch, minimum=1)
    check_bool("backward", backward)
    pairs = attended_pairs(seq_len, kv_len, causal=causal, window=window)
    forward = 4 * batch * n_heads * head_dim * pairs
    return forward * 5 // 2 if backward else forward


def attention_matrix_bytes(
    seq_len: int, *, dtype="fp16", n_heads: int = 1, batch: int = 1, kv_len: int | None = None
) -> int:
    """Bytes to materialise the score matrix ``(batch, n_heads, seq_len, kv_len)`` in ``dtype``."""
    seq_len = check_int("seq_len", seq_len, minimum=1)
    kv_len = seq_len if kv_len is None else check_int("kv_len", kv_len, minimum=1)
    n_heads = check_int("n_heads", n_heads, minimum=1)
    batch = check_int("batch", batch, minimum=1)
    return int(batch * n_heads * seq_len * kv_len * dtype_bytes(dtype))


def kv_cache_bytes(
    seq_len: int, *, n_layers: int, n_kv_heads: int, head_dim: int, dtype="fp16", batch: int = 1
) -> int:
    """Bytes of a KV cache: ``2 (K and V) * batch * n_layers * n_kv_heads * head_dim * seq_len * bytes``."""
    seq_len = check_int("seq_len", seq_len, minimum=0)
    n_layers = check_int("n_layers", n_layers, minimum=1)
    n_kv_heads = check_int("n_kv_heads", n_kv_heads, minimum=1)
    head_dim = check_int("head_dim", head_dim, minimum=1)
    batch = check_int("batch", batch, minimum=1)
    return int(2 * batch * n_layers * n_kv_heads * head_dim * seq_len * dtype_bytes(dtype))


def kv_cache_bytes_for(config: ModelConfig, seq_len: int, *, dtype="fp16", batch: int = 1) -> int:
    """:func:`kv_cache_bytes` for a model after ``seq_len`` tokens, summed over its layers.

    A sliding-window layer keeps at most ``window`` tokens (a rolling buffer of ``w`` slots: the keys
    the newest query reads); full-attention layers keep all ``seq_len``. Hugging Face's
    ``DynamicSlidingWindowLayer`` stores one token less (``w - 1``) between forward calls, since the
    next token brings its own key. With ``seq_len=1`` this is the KV bytes per token.
    """
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
    seq_len = check_int("seq_len", seq_len, minimum=0)
    return sum(
        kv_cache_bytes(seq_len if w is None else min(seq_len, w), n_layers=n, n_kv_heads=config.n_kv_heads,
                       head_dim=config.head_dim, dtype=dtype, batch=batch)
        for w, n in config.window_groups
    )


def weights_bytes(config: ModelConfig, *, dtype="bf16") -> int:
    """Bytes of every parameter (all experts of a MoE) stored in ``dtype``: ``n_params * bytes``."""
    config = _check_config(config)
    return int(n_params(config) * dtype_bytes(dtype))


def matmul_flops_per_token(config: ModelConfig) -> dict[str, int]:
    """Forward FLOPs one token spends in the weight matmuls: 2 per weight it multiplies.

    ``{"attention_proj": q, k, v, o projections, "mlp": the routed experts' MLPs plus the router,
    "lm_head": the vocabulary projection (also when tied to the embedding)}``, all layers. The input
    embedding is a lookup (no FLOPs); norms, biases and activations are O(hidden) and left out.
    """
    config = _check_config(config)
    counts = param_counts(config, active=True)
    bias = config.n_layers * ((config.n_heads + 2 * config.n_kv_heads) * config.head_dim * config.qkv_bias
                              + config.hidden_size * config.o_bias)
    return {
        "attention_proj": 2 * (counts["attention"] - bias),
        "mlp": 2 * (counts["mlp"] + counts["router"]),
        "lm_head": 2 * counts["embedding"],
    }


def attention_score_flops_for(config: ModelConfig, q_len: int, kv_len: int | None = None, *, batch: int = 1) -> int:
    """Causal attention FLOPs (``S = Q K^T`` and ``O = P V``) of a model, summed over its layers.

    Queries are the last ``q_len`` of ``kv_len`` positions; each layer counts the pairs its own
    window keeps (:func:`attended_pairs`), with all ``n_heads`` query heads. ``q_len=1, kv_len=n``:
    the token at position ``n`` (1-based) attends to ``n`` keys, or ``min(n, w)`` in a window layer.
    """
    config = _check_config(config)
    return sum(
        n * attention_flops(q_len, config.head_dim, n_heads=config.n_heads, batch=batch, kv_len=kv_len,
                            causal=True, window=w)
        for w, n in config.window_groups
    )


def arithmetic_intensity(flops: float, bytes_moved: float) -> float:
    """FLOPs per byte moved to or from memory."""
    flops = check_number("flops", flops, minimum=0)
    bytes_moved = check_number("bytes_moved", bytes_moved, exclusive_minimum=0)
    return flops / bytes_moved


def roofline(intensity: float, *, peak_flops: float, bandwidth: float) -> float:
    """Attainable FLOP/s at ``intensity`` FLOPs/byte: ``min(peak_flops, intensity * bandwidth)``."""
    intensity = check_number("intensity", intensity, minimum=0)
    peak_flops = check_number("peak_flops", peak_flops, exclusive_minimum=0)
    bandwidth = check_number("bandwidth", bandwidth, exclusive_minimum=0)
    return min(peak_flops, intensity * bandwidth)


def matmul_intensity(m: int, k: int, n: int, *, dtype="bf16") -> float:
    """Intensity of ``(m, k) @ (k, n)`` reading both inputs and writing the output once."""
    m, k, n = (check_int(name, v, minimum=1) for name, v in (("m", m), ("k", k), ("n", n)))
    size = dtype_bytes(dtype)
    return 2 * m * k * n / ((m * k + k * n + m * n) * size)


def _check_config(config) -> ModelConfig:
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
    return config


def prefill_flops(config: ModelConfig, n_tokens: int, *, batch: int = 1) -> int:
    """Forward FLOPs to process a prompt of ``n_tokens``: the weight matmuls of every token
    (:func:`matmul_flops_per_token`: active projections, MLP, LM head) and causal attention over the
    prompt, each layer within its own window (:func:`attention_score_flops_for`)."""
    config = _check_config(config)
    n_tokens = check_int("n_tokens", n_tokens, minimum=1)
    batch = check_int("batch", batch, minimum=1)
    linear = sum(matmul_flops_per_token(config).values()) * n_tokens * batch
    return linear + attention_score_flops_for(config, n_tokens, batch=batch)


def decode_step(config: ModelConfig, context: int, *, batch: int = 1, dtype="bf16") -> dict[str, float]:
    """FLOPs and bytes of generating one token per sequence with ``context`` tokens already cached.

    Bytes = every weight once (shared across the batch) + each sequence's KV cache. Returns
    ``{"flops", "bytes", "intensity"}``; the intensity is far below any GPU's ridge point, which is
    why decoding is memory-bound.
    """
    config = _check_config(config)
    context = check_int("context", context, minimum=0)
    batch = check_int("batch", batch, minimum=1)
    # every weight but the input embedding (a lookup of `batch` rows); a tied LM head reads the embedding
    read = n_params(config, active=True) - (0 if config.tied_embeddings else config.vocab_size * config.hidden_size)
    attn = attention_score_flops_for(config, 1, context + 1, batch=batch)
    flops = sum(matmul_flops_per_token(config).values()) * batch + attn
    moved = read * dtype_bytes(dtype) + kv_cache_bytes_for(config, context + 1, dtype=dtype, batch=batch)
    return {"flops": float(flops), "bytes": float(moved), "intensity": flops / moved}


def time_lower_bound(flops: float, bytes_moved: float, gpu: GPUSpec) -> float:
    """Seconds at least: the slower of compute at peak and memory traffic at full bandwidth."""
    if not isinstance(gpu, GPUSpec):
        raise TypeError(f"gpu must be a GPUSpec, got {type(gpu).__name__}")
    flops = check_number("flops", flops, minimum=0)
    bytes_moved = check_number("bytes_moved", bytes_moved, minimum=0)
    return max(flops / gpu.peak_flops_16bit, bytes_moved / gpu.hbm_bandwidth)


def max_seq_len_within(budget_bytes: float, bytes_for_len) -> int:
    """Largest ``n >= 1`` with ``bytes_for_len(n) <= budget_bytes`` (``bytes_for_len`` non-decreasing).

    Returns 0 when even ``n = 1`` does not fit. Exponential then binary search: exact, no float sqrt.
    """
    budget_bytes = check_number("budget_bytes", budget_bytes, minimum=0)
    if not callable(bytes_for_len):
        raise TypeError(f"bytes_for_len must be callable, got {type(bytes_for_len).__name__}")
    if bytes_for_len(1) > budget_bytes:
        return 0
    lo, hi = 1, 2
    while bytes_for_len(hi) <= budget_bytes:
        lo, hi = hi, hi * 2
        if hi > 2**62:
            raise ValueError("bytes_for_len never exceeds the budget: is it increasing?")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if bytes_for_len(mid) <= budget_bytes:
            lo = mid
        else:
            hi = mid
    return lo


GB = 1e9
GiB = 2**30


def fmt_bytes(n: float) -> str:
    """``'488.3 GiB (524.3 GB)'``: both units, since the articles mix them."""
    n = check_number("n", n, minimum=0)
    if n == 0:
        return "0 B"
    units = [(2**40, "TiB", 1e12, "TB"), (GiB, "GiB", GB, "GB"), (2**20, "MiB", 1e6, "MB"), (1024, "KiB", 1e3, "kB")]
    for binary, bname, decimal, dname in units:
        if n >= binary:
            return f"{n / binary:,.4g} {bname} ({n / decimal:,.4g} {dname})"
    return f"{int(n)} B"


