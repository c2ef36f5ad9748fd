"""Chapter 1: the seed articles' numbers about attention size, KV caches, FLOPs and hardware, checked.

Every ``computed`` value comes from :mod:`longctx_lab.core.cost` or :mod:`longctx_lab.core.configs`, and every
printed-output claim from running the article's own snippet; the verdict and its tolerance follow from
the numbers and the stated text (:data:`longctx_lab.course.claims.TOLERANCE_POLICY`).
"""

from __future__ import annotations

import contextlib
import io
import re

from longctx_lab.core.configs import A100_80GB_PCIE, A100_80GB_SXM, LLAMA3_70B, memory_hierarchy
from longctx_lab.core.cost import (
    GB,
    GiB,
    attention_flops,
    attention_matrix_bytes,
    decode_step,
    kv_cache_bytes,
    kv_cache_bytes_for,
    prefill_flops,
)
from longctx_lab.course.claims import (
    SEED_ARCHITECTURE,
    SEED_PRODUCTION,
    ClaimCheck,
    check_printed,
    check_stated_number,
    check_statement,
)

# The article's memory loop and KV-cache calculator, as printed (indentation restored). Running them is
# how the printed-output claims are checked: the article's "Output:" lines against what the code prints.
ARTICLE_MATRIX_SNIPPET = """
seq_lengths = [2048, 8192, 32768, 131072, 200000]
for n in seq_lengths:
    # Attention matrix size in GB (float32)
    memory_gb = (n * n * 4) / (1024**3)
    print(f"Sequence {n:6d}: {memory_gb:8.2f} GB just for attention matrix")
"""

ARTICLE_KV_SNIPPET = """
def calculate_kv_cache_memory(
    context_length=200000,
    num_layers=80,
    d_model=8192,
    num_heads=64,
    precision="float16"
):
    bytes_per_element = 2 if precision == "float16" else 4
    memory_bytes = (
        2 *  # K and V
        num_layers *
        context_length *
        d_model *
        bytes_per_element
    )
    memory_gb = memory_bytes / (1024**3)
    print(f"KV Cache: {memory_gb:.2f} GB")
    return memory_gb

def gqa_memory_savings(num_query_heads=64, num_kv_heads=8):
    standard_kv = num_query_heads
    gqa_kv = num_kv_heads
    savings = (standard_kv - gqa_kv) / standard_kv
    print(f"GQA Memory Savings: {savings:.1%}")
    return savings

calculate_kv_cache_memory()
gqa_memory_savings()
"""

# The outputs the article prints under those snippets.
ARTICLE_MATRIX_OUTPUT = {2048: "0.02", 8192: "0.25", 32768: "4.00", 131072: "64.00", 200_000: "148.77"}
ARTICLE_KV_OUTPUT = {"KV Cache": "48.83", "GQA Memory Savings": "87.5"}

# The "scaling nightmare" list of How Long-Context Models Work: Technical Architecture: (n, stated count,
# stated FP32 size, its unit). Its counts
# and sizes use binary prefixes for the power-of-two lengths (16MB is 16 MiB) and decimal ones for 200K.
_SCALING_LIST = ((2048, "4M", "16", "MiB"), (8192, "64M", "256", "MiB"), (32768, "1B", "4", "GiB"),
                 (131072, "16B", "64", "GiB"), (200_000, "40B", "160", "GB"))
_UNITS = {"MiB": 2**20, "GiB": GiB, "GB": GB}
_ARTICLE_UNIT = {"MiB": "MB", "GiB": "GB", "GB": "GB"}  # how the article writes each
_HEADS = 64  # the article's own 80-layer sketch (num_heads = 64), also Llama 3 70B's query heads


def run_printing_snippet(source: str) -> str:
    """Execute an article snippet in an empty namespace and return what it prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "<article>", "exec"), {})  # noqa: S102 - the article's own, harmless code
    return out.getvalue()


def printed_numbers(source: str) -> dict[str, str]:
    """``{label: number as printed}`` for each ``label: number`` line the snippet prints
    (``"Sequence   2048:     0.02 GB ..."`` gives ``{"2048": "0.02"}``)."""
    found = {}
    for line in run_printing_snippet(source).splitlines():
        m = re.match(r"\s*(?:Sequence\s+)?(?P<label>[^:]+?)\s*:\s*(?P<number>[\d.,]+)", line)
        if m:
            found[m["label"]] = m["number"]
    return found


def attention_matrix_claims() -> list[ClaimCheck]:
    n = 200_000
    per_head = attention_matrix_bytes(n, dtype="fp16") / GB
    per_layer = attention_matrix_bytes(n, dtype="fp16", n_heads=_HEADS) / GB
    checks = [
        check_stated_number(
            "A 200K x 200K attention matrix has 40 billion elements", stated="40 billion",
            computed=attention_matrix_bytes(n, dtype="int8"), source=SEED_ARCHITECTURE, unit="elements"),
        check_stated_number(
            "...which is 80 GB per layer at FP16", stated="80", unit="GB", computed=per_layer,
            source=SEED_ARCHITECTURE,
            explanation=f"80 GB is one head's matrix: 200,000^2 x 2 bytes = {per_head:,.0f} GB. A layer "
            f"computes one per head; with the {_HEADS} heads of the article's own 80-layer sketch that is "
            f"{per_layer:,.0f} GB, so 'per layer' understates it {per_layer / per_head:.0f}x (the head "
            "count)."),
    ]
    for seq, count, size, unit in _SCALING_LIST:
        binary = seq != 200_000
        prefix = " (read with binary prefixes, as its sizes are)" if binary else ""
        checks.append(check_stated_number(f"{seq:,} tokens: {count} attention values{prefix}", stated=count,
                                          binary_prefixes=binary, computed=attention_matrix_bytes(seq, dtype="int8"),
                                          source=SEED_ARCHITECTURE, unit="scores"))
        checks.append(check_stated_number(
            f"{seq:,} tokens: {size} {_ARTICLE_UNIT[unit]} at FP32 (read as {unit})",
            stated=size, computed=attention_matrix_bytes(seq, dtype="fp32") / _UNITS[unit],
            unit=unit, source=SEED_ARCHITECTURE))
    printed = printed_numbers(ARTICLE_MATRIX_SNIPPET)
    for seq, shown in ARTICLE_MATRIX_OUTPUT.items():
        ours = attention_matrix_bytes(seq, dtype="fp32") / GiB
        checks.append(check_printed(
            f"The code's output for {seq:,} tokens: {shown} 'GB'", stated=shown, printed=printed[str(seq)],
            unit="'GB' (GiB)", source=SEED_ARCHITECTURE,
            explanation=f"The code prints {printed[str(seq)]}: {seq:,}^2 x 4 bytes / 1024^3 = {ours:.4f} GiB (its "
            f"'GB' are GiB). The bullet list above it says 160 GB (decimal) for the same 200K matrix."
            if printed[str(seq)] != shown else
            "Matches what the code prints. Its 'GB' are GiB (it divides by 1024**3); the bullet list above it "
            "uses GB = 1e9 for 200K (160 GB)."))
    return checks


def kv_cache_claims() -> list[ClaimCheck]:
    article_fn = kv_cache_bytes(200_000, n_layers=80, n_kv_heads=64, head_dim=128, dtype="fp16")
    printed = printed_numbers(ARTICLE_KV_SNIPPET)
    llama = {"n_layers": 80, "head_dim": 128}
    mha = kv_cache_bytes(128_000, n_kv_heads=64, dtype="fp16", **llama)
    gqa = kv_cache_bytes(128_000, n_kv_heads=8, dtype="fp16", **llama)
    gqa_factor = mha / gqa
    one_m = kv_cache_bytes_for(LLAMA3_70B, 1_000_000, dtype="bf16") / GB
    checks = [
        check_printed("calculate_kv_cache_memory(200K, 80 layers, d_model 8192, fp16) prints 'KV Cache: 48.83 GB'",
                      stated=ARTICLE_KV_OUTPUT["KV Cache"], printed=printed["KV Cache"], unit="'GB' (GiB)",
                      source=SEED_ARCHITECTURE,
                      explanation=f"Running the article's own function prints {printed['KV Cache']}: 2 x 80 x "
                      f"200,000 x 8,192 x 2 bytes / 1024^3 = {article_fn / GiB:.2f} GiB. The output shown is off by "
                      "10x."),
        check_stated_number("Llama 3 70B without GQA (64 KV heads) at 128,000 tokens: about 335 GB", stated="about 335",
                            unit="GB", computed=mha / GB, source=SEED_PRODUCTION,
                            explanation=f"{mha / GB:.2f} GB; the article drops the decimals."),
        check_stated_number("...with GQA (8 KV heads): about 42 GB", stated="about 42", unit="GB", computed=gqa / GB,
                            source=SEED_PRODUCTION),
        check_stated_number("...with 1 KV head (MQA): about 5 GB", stated="about 5", unit="GB",
                            computed=kv_cache_bytes(128_000, n_kv_heads=1, dtype="fp16", **llama) / GB,
                            source=SEED_PRODUCTION),
        check_stated_number("A 1M-token forward pass on a 70B model needs 'tens of gigabytes' of KV cache",
                            stated="tens of", unit="GB", computed=one_m, source=SEED_PRODUCTION,
                            explanation=f"Llama 3 70B (80 layers, 8 KV heads, head dim 128) at 1M tokens in bf16 needs "
                            f"{one_m:,.0f} GB, even with GQA: hundreds of gigabytes, not tens."),
        check_printed("gqa_memory_savings(64 query heads, 8 KV heads) prints 'GQA Memory Savings: 87.5%'",
                      stated=ARTICLE_KV_OUTPUT["GQA Memory Savings"], printed=printed["GQA Memory Savings"],
                      unit="%", source=SEED_ARCHITECTURE),
    ]
    # "GQA (fewer KV heads) + quantised cache (INT8 or INT4) + PagedAttention ... reduce KV cache memory by
    # 16-32x": bytes per token are set by KV heads and element size; a paged cache stores the same bytes per
    # token in fixed-size blocks (it removes reserved-but-unused slots, not bytes per token).
    for dtype in ("int8", "int4"):
        quant = kv_cache_bytes(1, n_kv_heads=64, dtype="fp16", **llama) / kv_cache_bytes(
            1, n_kv_heads=64, dtype=dtype, **llama)
        total = kv_cache_bytes(1, n_kv_heads=64, dtype="fp16", **llama) / kv_cache_bytes(
            1, n_kv_heads=8, dtype=dtype, **llama)
        stated = "16" if dtype == "int8" else "32"
        claim = ("GQA + a quantised cache + PagedAttention reduce the KV cache 16-32x vs full-precision MHA: "
                 "16x with INT8" if dtype == "int8" else "...and 32x with INT4")
        checks.append(check_stated_number(
            claim, stated=stated, unit="x", source=SEED_PRODUCTION, computed=total,
            explanation=f"Right, and it is two factors, not three: GQA's {gqa_factor:.0f}x (64 -> 8 KV heads) "
            f"times {dtype.upper()}'s {quant:.0f}x over FP16 = {total:.0f}x bytes per token. PagedAttention adds "
            "no factor: it stores the same bytes per token in fixed-size blocks, and what it saves is the memory "
            "a contiguous cache reserves but never fills (fragmentation), not bytes per token."))
    # The article's "Claude 3 Opus (estimated)" sketch: no source; Anthropic has not published the architecture.
    sketch = {"n_kv_heads": 8, "head_dim": 8192 // 64, "dtype": "fp8"}
    layers, every, window, ctx = 80, 8, 4096, 200_000
    n_global = layers // every
    own_design = (kv_cache_bytes(ctx, n_layers=n_global, **sketch)
                  + kv_cache_bytes(window, n_layers=layers - n_global, **sketch))
    all_full = kv_cache_bytes(ctx, n_layers=layers, **sketch)
    checks += [
        check_stated_number(
            "'Claude 3 Opus (estimated)', an unsourced sketch (80 layers, 8 KV heads, d_model 8192, 4096 window with "
            "global attention every 8th layer, FP8 cache): KV cache ~50 GB at 200K",
            stated="~50", unit="GB", source=SEED_ARCHITECTURE, computed=own_design / GB,
            explanation=f"The architecture is the article's guess: it cites nothing and Anthropic has not published "
            f"one. Taken on its own terms (head dim 8192 / 64 = 128, one byte per element), {n_global} global layers "
            f"keep all 200,000 tokens and {layers - n_global} windowed layers keep {window:,}: "
            f"{own_design / GB:.2f} GB. Even full attention in all {layers} layers would be {all_full / GB:.1f} GB; "
            "~50 GB fits neither."),
        check_stated_number("'Model weights: ~150GB (70B params * 2 bytes)'", stated="~150", unit="GB",
                            computed=70e9 * 2 / GB, source=SEED_ARCHITECTURE,
                            explanation=f"Its own arithmetic gives 70e9 x 2 bytes = {70e9 * 2 / GB:.0f} GB "
                            f"({70e9 * 2 / GiB:.1f} GiB); 150 is neither."),
    ]
    return checks


def flops_claims() -> list[ClaimCheck]:
    h, d = 16, 128
    qk_only_10m = attention_flops(10**7, d, n_heads=h) / 2  # the article's 2*H*n^2*d counts only Q K^T
    qk_only_1k = attention_flops(1000, d, n_heads=h) / 2
    causal_10m = attention_flops(10**7, d, n_heads=h, causal=True)  # Q K^T and P V over n(n+1)/2 pairs
    m = LLAMA3_70B
    causal_1m = attention_flops(10**6, m.head_dim, n_heads=m.n_heads, causal=True)
    return [
        check_stated_number(
            "2 x 16 x (10^7)^2 x 128 = 4.1e20 FLOPs for one layer", stated="4.1e20", computed=qk_only_10m,
            unit="FLOPs", source=SEED_PRODUCTION,
            explanation=f"2 x 16 x 1e14 x 128 = {qk_only_10m:.2e}: the multiplication is off by 1000x. The "
            "formula counts only Q K^T over all n^2 pairs. A causal decoder's forward does Q K^T and P V "
            f"over n(n+1)/2 pairs, 4 x H x d x n(n+1)/2 = {causal_10m:.2e}: the same 4.1e17, since the "
            "second matmul and the causal halving cancel."),
        check_stated_number(
            "64 layers need about 2.6e22 FLOPs for attention", stated="about 2.6e22",
            computed=64 * causal_10m, unit="FLOPs", source=SEED_PRODUCTION,
            explanation=f"Inherits the 1000x slip: 64 x {causal_10m:.2e} = {64 * causal_10m:.2e} for the "
            "causal forward (the same for Q K^T alone over n^2 pairs)."),
        check_stated_number("At n = 1,000 the same formula gives 4.1e12 FLOPs per layer", stated="4.1e12",
                            computed=qk_only_1k, unit="FLOPs", source=SEED_PRODUCTION,
                            explanation=f"2 x 16 x 1e6 x 128 = {qk_only_1k:.2e}: the same 1000x slip."),
        check_stated_number("...eight orders of magnitude less", stated="1e8", computed=qk_only_10m / qk_only_1k,
                            unit="x", source=SEED_PRODUCTION),
        check_stated_number(
            "A 1M-token pass on a 70B model: 'hundreds of TeraFLOPs' of attention per layer",
            stated="hundreds of", unit="TFLOPs", computed=causal_1m / 1e12, source=SEED_PRODUCTION,
            explanation=f"Causal attention over 1M tokens with {m.n_heads} query heads of dim "
            f"{m.head_dim} is 4 x {m.n_heads} x {m.head_dim} x n(n+1)/2 = {causal_1m:.2e} FLOPs = "
            f"{causal_1m / 1e12:,.0f} TFLOPs per layer, {causal_1m / 1e15:.0f}x the top of 'hundreds'. GQA "
            "does not help: it shares K and V, but every query head still computes its scores."),
        check_stated_number("Sparse window: 200K^2 = 40B computations become 200K x 512 = 100M, a 400x reduction",
                            stated="400", unit="x", computed=(200_000**2) / (200_000 * 512), source=SEED_ARCHITECTURE,
                            explanation="(Chapter 3 checks this against causal attention, where the saving is half.)"),
    ]


def hierarchy_claims() -> list[ClaimCheck]:
    card = A100_80GB_PCIE
    levels = {lvl.name: lvl for lvl in memory_hierarchy(card)}
    sram = levels["SRAM (shared memory / L1)"].bandwidth
    hbm = levels["HBM"].bandwidth
    return [
        check_stated_number(f"A100 HBM bandwidth 1,935 GB/s (the {card.name} card)", stated="1,935",
                            computed=hbm / 1e9, unit="GB/s", source=SEED_ARCHITECTURE,
                            explanation=f"The {card.name} datasheet figure; the {A100_80GB_SXM.name} card has "
                            f"{A100_80GB_SXM.hbm_bandwidth / 1e9:,.0f} GB/s."),
        check_statement(
            "A100 hierarchy: registers 1000 GB/s, L2 500 GB/s, HBM 1,935 GB/s (on-chip slower than HBM)",
            verdict="wrong", source=SEED_ARCHITECTURE,
            evidence=f"{card.name}: on-chip SRAM {sram / 1e12:.1f} TB/s vs HBM {hbm / 1e12:.3f} TB/s "
            f"(SRAM/HBM = {sram / hbm:.1f}x)",
            explanation="Every level closer to the cores is faster, not slower. On-chip SRAM on an A100 "
            f"moves about {sram / hbm:.0f}x more bytes per second than HBM; this gap is the whole reason "
            "FlashAttention tiles attention into SRAM. The article's numbers would make HBM the fastest memory on "
            "the chip, although it labels registers 'fastest'."),
    ]


def serving_claims() -> list[ClaimCheck]:
    short, long = 2_000, 200_000
    ratio = prefill_flops(LLAMA3_70B, long) / prefill_flops(LLAMA3_70B, short)
    d_short, d_long = decode_step(LLAMA3_70B, 1_000), decode_step(LLAMA3_70B, 128_000)
    return [
        check_statement(
            "Time-to-first-token scales linearly with context length", verdict="wrong", source=SEED_ARCHITECTURE,
            evidence=f"{LLAMA3_70B.name} prefill FLOPs: {long:,} tokens cost {ratio:.0f}x as much as {short:,} "
            f"tokens (linear would be {long // short}x)",
            explanation="Prefill work is linear (weights) plus quadratic (attention). At short contexts the linear "
            "part dominates, so TTFT looks linear; at long contexts the quadratic term takes over."),
        check_statement(
            "Generation speed is roughly constant regardless of context", verdict="misleading",
            source=SEED_ARCHITECTURE,
            evidence=f"bytes read per decoded token ({LLAMA3_70B.name}, bf16; every weight except the input "
            f"embedding table, which a decode step only indexes, plus the KV cache): {d_short['bytes'] / GB:.0f} GB "
            f"at 1K context vs {d_long['bytes'] / GB:.0f} GB at 128K",
            explanation="Decoding is memory-bound, so its time follows the bytes it reads: the weights plus the "
            "whole KV cache. The cache grows with context, so each token gets slower; the article is right "
            "that memory bandwidth is the bottleneck."),
    ]


def claims() -> list[ClaimCheck]:
    return attention_matrix_claims() + kv_cache_claims() + flops_claims() + hierarchy_claims() + serving_claims()


def picked(*labels: str) -> list[ClaimCheck]:
    """The claims whose text contains each of ``labels``, in that order: the few article errors the chapter
    discusses inline (the full table stays folded at the chapter's end). Each label must match one claim."""
    every = claims()
    found = []
    for label in labels:
        matches = [c for c in every if label in c.claim]
        if len(matches) != 1:
            raise ValueError(f"label must match exactly one claim, {label!r} matches {len(matches)}")
        found.append(matches[0])
    return found
