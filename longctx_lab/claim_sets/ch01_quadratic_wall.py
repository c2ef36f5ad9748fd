"""Chapter 1: the seed articles' numbers about attention size, KV caches, FLOPs and hardware, checked.

Every ``computed`` value comes from :mod:`longctx_lab.cost` or :mod:`longctx_lab.configs`; the
verdict follows from the numbers (see :func:`longctx_lab.claims.check_number`).
"""

from __future__ import annotations

from longctx_lab.claims import SEED_ARCHITECTURE, SEED_PRODUCTION, ClaimCheck, check_number, check_statement
from longctx_lab.configs import A100_80GB_PCIE, LLAMA3_70B, memory_hierarchy
from longctx_lab.cost import (
    GB,
    GiB,
    attention_flops,
    attention_matrix_bytes,
    decode_step,
    kv_cache_bytes,
    kv_cache_bytes_for,
    prefill_flops,
)

# The first article's "scaling nightmare" list: (n, stated count of scores, stated fp32 size, its unit).
_SCALING_LIST = ((2048, "4M", 4e6, 16, "MiB"), (8192, "64M", 64e6, 256, "MiB"), (32768, "1B", 1e9, 4, "GiB"),
                 (131072, "16B", 16e9, 64, "GiB"), (200_000, "40B", 40e9, 160, "GB"))
# ...and the output its code prints (float32 bytes / 1024**3, labelled "GB").
_CODE_OUTPUT = ((2048, 0.02), (8192, 0.25), (32768, 4.00), (131072, 64.00), (200_000, 148.77))
_UNITS = {"MiB": 2**20, "GiB": GiB, "GB": GB}


def attention_matrix_claims() -> list[ClaimCheck]:
    n = 200_000
    checks = [
        check_number("A 200K x 200K attention matrix has 40 billion elements", stated=40e9,
                     computed=attention_matrix_bytes(n, dtype="int8"), source=SEED_ARCHITECTURE, unit="elements"),
        check_number("...which is 80 GB per layer at FP16", stated=80, unit="GB",
                     computed=attention_matrix_bytes(n, dtype="fp16") / GB, source=SEED_ARCHITECTURE,
                     explanation="(Correct for one head of one sequence; a layer has many heads, so 'per layer' "
                     "understates it by the head count.)"),
    ]
    for seq, label, count, size, unit in _SCALING_LIST:
        # "4M" for 2048^2 = 4,194,304 is a rounded count (the K's are 1024s): 10% tolerance accepts the rounding.
        checks.append(check_number(f"{seq:,} tokens: {label} attention values", stated=count, rel_tol=0.1,
                                   computed=attention_matrix_bytes(seq, dtype="int8"), source=SEED_ARCHITECTURE,
                                   unit="scores"))
        checks.append(check_number(f"{seq:,} tokens: {size} {unit} at FP32 (read as {unit})", stated=size,
                                   computed=attention_matrix_bytes(seq, dtype="fp32") / _UNITS[unit], unit=unit,
                                   source=SEED_ARCHITECTURE))
    for seq, printed in _CODE_OUTPUT:
        checks.append(check_number(f"The code's output for {seq:,} tokens: {printed} 'GB'", stated=printed,
                                   rel_tol=0.3 if printed < 0.1 else 0.01,
                                   computed=attention_matrix_bytes(seq, dtype="fp32") / GiB, unit="GiB",
                                   source=SEED_ARCHITECTURE,
                                   explanation="The code divides by 1024**3, so its 'GB' are GiB; the bullet list "
                                   "above it says 160 GB (decimal) for the same 200K matrix."))
    return checks


def kv_cache_claims() -> list[ClaimCheck]:
    article_fn = kv_cache_bytes(200_000, n_layers=80, n_kv_heads=64, head_dim=128, dtype="fp16")
    llama = {"n_layers": 80, "head_dim": 128, "dtype": "fp16"}
    return [
        check_number("calculate_kv_cache_memory(200K, 80 layers, d_model 8192, fp16) prints 'KV Cache: 48.83 GB'",
                     stated=48.83, computed=article_fn / GiB, unit="GiB", source=SEED_ARCHITECTURE,
                     explanation="Running the article's own formula 2 * 80 * 200000 * 8192 * 2 / 1024**3 gives "
                     "488.3, not 48.83: the printed output is off by 10x."),
        check_number("Llama 3 70B without GQA (64 KV heads) at 128,000 tokens: about 335 GB", stated=335, unit="GB",
                     computed=kv_cache_bytes(128_000, n_kv_heads=64, **llama) / GB, source=SEED_PRODUCTION),
        check_number("...with GQA (8 KV heads): about 42 GB", stated=42, unit="GB",
                     computed=kv_cache_bytes(128_000, n_kv_heads=8, **llama) / GB, source=SEED_PRODUCTION),
        check_number("...with 1 KV head (MQA): about 5 GB", stated=5, unit="GB", rel_tol=0.06,
                     computed=kv_cache_bytes(128_000, n_kv_heads=1, **llama) / GB, source=SEED_PRODUCTION),
        check_number("A 1M-token forward pass on a 70B model needs 'tens of gigabytes' of KV cache", stated=50,
                     unit="GB", rel_tol=0.8, computed=kv_cache_bytes_for(LLAMA3_70B, 1_000_000, dtype="bf16") / GB,
                     source=SEED_PRODUCTION,
                     explanation="Llama 3 70B (80 layers, 8 KV heads, head dim 128) at 1M tokens in bf16 needs "
                     "hundreds of GB, even with GQA. ('tens' taken generously as up to 90 GB.)"),
        check_number("GQA with 64 query heads and 8 KV heads saves 87.5% of the KV cache", stated=87.5, unit="%",
                     computed=100 * (1 - 8 / 64), source=SEED_ARCHITECTURE),
        check_number("GQA + a quantised cache reduce the KV cache 16-32x vs full-precision MHA (16x with INT8)",
                     stated=16, unit="x", source=SEED_PRODUCTION,
                     computed=kv_cache_bytes(128_000, n_kv_heads=64, **llama)
                     / kv_cache_bytes(128_000, n_kv_heads=8, n_layers=80, head_dim=128, dtype="int8")),
        check_number("...and 32x with INT4", stated=32, unit="x", source=SEED_PRODUCTION,
                     computed=kv_cache_bytes(128_000, n_kv_heads=64, **llama)
                     / kv_cache_bytes(128_000, n_kv_heads=8, n_layers=80, head_dim=128, dtype="int4")),
        check_number("'Claude 3 Opus (estimated)': 80 layers, 8 KV heads, d_model 8192, FP8 cache: ~50 GB at 200K",
                     stated=50, unit="GB", rel_tol=0.2, source=SEED_ARCHITECTURE,
                     computed=kv_cache_bytes(200_000, n_layers=80, n_kv_heads=8, head_dim=128, dtype="fp8") / GB,
                     explanation="With the article's own assumptions (head dim 8192 / 64 = 128, one byte per "
                     "element) the cache is 32.8 GB; ~50 GB would need about 1.5 bytes per element."),
        check_number("'Model weights: ~150GB (70B params * 2 bytes)'", stated=150, unit="GB", rel_tol=0.1,
                     computed=70e9 * 2 / GB, source=SEED_ARCHITECTURE),
    ]


def flops_claims() -> list[ClaimCheck]:
    h, d = 16, 128
    qk_only_10m = attention_flops(10**7, d, n_heads=h) / 2  # the article's 2*H*n^2*d counts only Q K^T
    qk_only_1k = attention_flops(1000, d, n_heads=h) / 2
    return [
        check_number("2 x 16 x (10^7)^2 x 128 = 4.1e20 FLOPs for one layer", stated=4.1e20, computed=qk_only_10m,
                     unit="FLOPs", source=SEED_PRODUCTION,
                     explanation="2 * 16 * 1e14 * 128 = 4.1e17. The multiplication is off by 1000x. The formula "
                     "also counts only Q K^T; with P V the forward pass is twice that, 8.2e17."),
        check_number("64 layers need about 2.6e22 FLOPs for attention", stated=2.6e22, computed=64 * qk_only_10m,
                     unit="FLOPs", source=SEED_PRODUCTION, explanation="Inherits the 1000x slip: 2.6e19 (QK^T only)."),
        check_number("At n = 1,000 the same formula gives 4.1e12 FLOPs per layer", stated=4.1e12,
                     computed=qk_only_1k, unit="FLOPs", source=SEED_PRODUCTION,
                     explanation="2 * 16 * 1e6 * 128 = 4.1e9: the same 1000x slip."),
        check_number("...eight orders of magnitude less", stated=1e8, computed=qk_only_10m / qk_only_1k,
                     unit="x", source=SEED_PRODUCTION),
        check_number("A 1M-token pass on a 70B model: 'hundreds of TeraFLOPs' of attention per layer", stated=500e12,
                     rel_tol=0.8, unit="FLOPs",
                     computed=attention_flops(10**6, LLAMA3_70B.head_dim, n_heads=LLAMA3_70B.n_heads, causal=True),
                     source=SEED_PRODUCTION,
                     explanation="Causal attention over 1M tokens with 64 heads of dim 128 is 4 * 64 * 128 * "
                     "n(n+1)/2, about 1.6e16 FLOPs = 16,000 TFLOPs per layer: about 30x to 100x more."),
        check_number("Sparse window: 200K^2 = 40B computations become 200K x 512 = 100M, a 400x reduction",
                     stated=400, rel_tol=0.05, unit="x", computed=(200_000**2) / (200_000 * 512),
                     source=SEED_ARCHITECTURE),
    ]


def hierarchy_claims() -> list[ClaimCheck]:
    levels = {lvl.name: lvl for lvl in memory_hierarchy(A100_80GB_PCIE)}
    sram = levels["SRAM (shared memory / L1)"].bandwidth
    hbm = levels["HBM"].bandwidth
    return [
        check_number("A100 HBM bandwidth 1,935 GB/s", stated=1935, computed=hbm / 1e9, unit="GB/s",
                     source=SEED_ARCHITECTURE, explanation=""),
        check_statement(
            "A100 hierarchy: registers 1000 GB/s, L2 500 GB/s, HBM 1,935 GB/s (on-chip slower than HBM)",
            verdict="wrong", source=SEED_ARCHITECTURE,
            evidence=f"on-chip SRAM: {sram / 1e12:.1f} TB/s vs HBM {hbm / 1e12:.2f} TB/s "
            f"(SRAM/HBM = {sram / hbm:.1f}x)",
            explanation="Every level closer to the cores is faster, not slower. On-chip SRAM on an A100 "
            "moves about 10x more bytes per second than HBM; this gap is the whole reason FlashAttention tiles "
            "attention into SRAM. The article's order would make HBM the fastest memory on the chip."),
    ]


def serving_claims() -> list[ClaimCheck]:
    short, long = 2_000, 200_000
    ratio = prefill_flops(LLAMA3_70B, long) / prefill_flops(LLAMA3_70B, short)
    d_short, d_long = decode_step(LLAMA3_70B, 1_000), decode_step(LLAMA3_70B, 128_000)
    return [
        check_statement(
            "Time-to-first-token scales linearly with context length", verdict="wrong", source=SEED_ARCHITECTURE,
            evidence=f"Llama 3 70B prefill FLOPs: {long:,} tokens cost {ratio:.0f}x as much as {short:,} tokens "
            f"(linear would be {long // short}x)",
            explanation="Prefill work is linear (weights) plus quadratic (attention). At short contexts the linear "
            "part dominates, so TTFT looks linear; at long contexts the quadratic term takes over."),
        check_statement(
            "Generation speed is roughly constant regardless of context", verdict="misleading",
            source=SEED_ARCHITECTURE,
            evidence=f"bytes read per decoded token (Llama 3 70B, bf16): {d_short['bytes'] / GB:.0f} GB at 1K "
            f"context vs {d_long['bytes'] / GB:.0f} GB at 128K",
            explanation="Decoding is memory-bound, so its time follows the bytes it reads: all weights plus the "
            "whole KV cache. The cache grows with context, so each token gets slower; the article is right "
            "that memory bandwidth is the bottleneck."),
    ]


def claims() -> list[ClaimCheck]:
    return attention_matrix_claims() + kv_cache_claims() + flops_claims() + hierarchy_claims() + serving_claims()
