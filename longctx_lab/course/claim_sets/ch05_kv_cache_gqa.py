"""Chapter 5: the seed articles' claims about the KV cache, GQA/MQA, paged and quantized caches and decoding.

Bytes come from :func:`longctx_lab.lm.hf.planner.plan` (through :func:`longctx_lab.course.kv_experiments.gqa_variants`),
FLOPs and roofline times from :mod:`longctx_lab.core.cost`, the paging evidence from the caches' own tensors
(:func:`longctx_lab.course.kv_experiments.allocation_waste`), and every printed-output claim from running the
article's own code as written (its calculator through chapter 1's runner, its ``KVCache`` class below).
The "16-32x with GQA + quantization + paging" numbers are chapter 1's checks, reused.

The two serving claims (time to first token "scales linearly", generation speed "~constant") are judged by a
fitted growth exponent: measured ones when the caller passes them (:func:`serving_claims`; the CPU benchmark's
``longctx_lab.cli.bench.decode_cpu.claim_inputs(results)`` gives them), else those of the roofline model of chapter 1
for Llama 3.1 70B on an H100 (:func:`prefill_model`, :func:`decode_model`).
"""

from __future__ import annotations

import dataclasses

import torch

from longctx_lab.attention.measure import fit_power_law
from longctx_lab.core.configs import H100_SXM, LLAMA31_70B, GPUSpec, ModelConfig
from longctx_lab.core.cost import (
    GB,
    GiB,
    attention_score_flops_for,
    decode_step,
    prefill_flops,
    time_lower_bound,
    weights_bytes,
)
from longctx_lab.core.validate import check_number
from longctx_lab.course.claim_sets import ch01_quadratic_wall as ch01
from longctx_lab.course.claims import (
    SEED_ARCHITECTURE,
    SEED_PRODUCTION,
    ClaimCheck,
    check_printed,
    check_stated_number,
    check_statement,
)
from longctx_lab.course.kv_experiments import allocation_waste, gqa_variants, request_mix
from longctx_lab.course.stacks import claude_sketch_config  # the article's sketch, shared with chapter 7
from longctx_lab.lm.hf.config import shipped_configs
from longctx_lab.lm.hf.planner import plan

# The article's KVCache class, as printed (indentation restored). It is executed, not paraphrased.
ARTICLE_KVCACHE_CLASS = '''
class KVCache:
    """
    Cache key and value matrices during autoregressive generation
    Reduces O(n²) to O(n) for generation
    """
    def __init__(self, max_seq_len, num_layers, d_model):
        self.max_seq_len = max_seq_len
        # Allocate cache: (num_layers, 2, max_seq_len, d_model)
        self.cache = torch.zeros(num_layers, 2, max_seq_len, d_model)
        self.seq_len = 0

    def update(self, layer_idx, k, v):
        """Add new keys/values to cache"""
        batch_size, new_tokens, _ = k.shape
        # Store in cache
        start = self.seq_len
        end = start + new_tokens
        self.cache[layer_idx, 0, start:end] = k
        self.cache[layer_idx, 1, start:end] = v
        self.seq_len = end
        # Return full cached K, V
        return (
            self.cache[layer_idx, 0, :end],
            self.cache[layer_idx, 1, :end]
        )
'''

# The article's calculator defaults (context, layers, d_model; fp16) and Llama 3's shape behind them.
ARTICLE_CONTEXT, ARTICLE_LAYERS, ARTICLE_D_MODEL = 200_000, 80, 8192
LLAMA_CONTEXT = 128_000  # the second article's n for Llama 3 70B
# How a fitted exponent is read: "linear" within LINEAR_TOLERANCE of 1, "constant" below CONSTANT_TOLERANCE.
LINEAR_TOLERANCE = 0.1
CONSTANT_TOLERANCE = 0.1
PREFILL_LENGTHS = (2_000, 8_000, 32_000, 128_000, 200_000)
DECODE_CONTEXTS = (1_000, 4_000, 16_000, 64_000, 128_000)


def article_kvcache_class() -> type:
    """The article's ``KVCache`` class, compiled from its printed source in a namespace holding only ``torch``."""
    namespace = {"torch": torch}
    exec(compile(ARTICLE_KVCACHE_CLASS, "<article KVCache>", "exec"), namespace)  # noqa: S102 - the article's code
    return namespace["KVCache"]


def run_article_kvcache() -> dict:
    """What the article's ``KVCache`` does when used as written.

    * ``allocated_bytes``/``dtype``: what ``KVCache(200_000, 80, 8192)`` allocates (built on the meta device:
      the shapes and dtype of the real call, no memory).
    * Two layers decoding one token each (``k`` = ones, ``(1, 1, d_model)``): ``seq_len_after_one_token``,
      ``layer1_keys`` (what layer 1's ``update`` returns) and ``layer1_zero_rows`` (its rows that are all zero,
      i.e. keys that were never written).
    * ``batch2_error``: the error of one ``update`` with a batch of 2 sequences (or ``""`` if it works).
    """
    cls = article_kvcache_class()
    with torch.device("meta"):
        big = cls(ARTICLE_CONTEXT, ARTICLE_LAYERS, ARTICLE_D_MODEL)
    small = cls(8, 2, 4)
    ones = torch.ones(1, 1, 4)
    small.update(0, ones, ones)
    layer1_keys, _ = small.update(1, ones, ones)
    try:
        cls(8, 1, 4).update(0, torch.ones(2, 3, 4), torch.ones(2, 3, 4))
        batch2_error = ""
    except RuntimeError as exc:
        batch2_error = f"{type(exc).__name__}: {exc}"
    return {
        "allocated_bytes": big.cache.nbytes,
        "dtype": str(big.cache.dtype).removeprefix("torch."),
        "shape": tuple(big.cache.shape),
        "seq_len_after_one_token": small.seq_len,
        "layer1_keys": layer1_keys.clone(),
        "layer1_zero_rows": int((layer1_keys == 0).all(dim=-1).sum()),
        "batch2_error": batch2_error,
    }


def article_mha_config() -> ModelConfig:
    """The calculator's model: Llama 3.1 70B's shape (80 layers, 64 heads of 128 = d_model 8192) with one KV head
    per query head, which is what multiplying by ``d_model`` assumes (multi-head attention)."""
    return dataclasses.replace(LLAMA31_70B, name="Llama 3.1 70B as MHA (64 KV heads)", n_kv_heads=LLAMA31_70B.n_heads)


# ---------------------------------------------------------------------------------------------- bytes

def kv_bytes_claims() -> list[ClaimCheck]:
    """The calculator's "48.83 GB", the class run as written, the GQA percentage and Llama 3's 335/42/5 GB."""
    printed = ch01.printed_numbers(ch01.ARTICLE_KV_SNIPPET)
    run = run_article_kvcache()
    mha = plan(article_mha_config(), context=ARTICLE_CONTEXT, dtype="fp16")
    gqa = plan(LLAMA31_70B, context=ARTICLE_CONTEXT, dtype="fp16")
    llama = gqa_variants(LLAMA31_70B, context=LLAMA_CONTEXT, kv_dtype="fp16")
    saving = 1 - gqa.kv_bytes_per_sequence / mha.kv_bytes_per_sequence
    factor = llama["MHA"].kv_bytes_per_sequence / llama["GQA"].kv_bytes_per_sequence
    return [
        check_printed(
            "calculate_kv_cache_memory() (200K tokens, 80 layers, d_model 8192, fp16) prints 'KV Cache: 48.83 GB'",
            stated=ch01.ARTICLE_KV_OUTPUT["KV Cache"], printed=printed["KV Cache"], unit="'GB' (GiB)",
            source=SEED_ARCHITECTURE,
            explanation=f"Run as written, the function prints {printed['KV Cache']}, ten times the output shown. The "
            f"planner agrees with the code, not with the comment: that shape with one KV head per query head holds "
            f"{mha.kv_bytes_per_sequence / GiB:.2f} GiB ({mha.kv_bytes_per_sequence / GB:.1f} GB) at 200,000 "
            f"tokens; with Llama 3's real 8 KV heads it is {gqa.kv_bytes_per_sequence / GiB:.2f} GiB. Its 'GB' are "
            "GiB (it divides by 1024**3)."),
        check_stated_number(
            "The articles' KVCache class, built for that model (KVCache(200_000, 80, 8192)), holds the 48.83 GB "
            "printed beside it", stated="48.83", unit="'GB' (GiB)", source=SEED_ARCHITECTURE,
            computed=run["allocated_bytes"] / GiB,
            explanation=f"The class allocates one {run['shape']} tensor of {run['dtype']} (torch's default dtype) "
            f"up front: {run['allocated_bytes'] / GiB:,.2f} GiB, twice the fp16 size its own calculator prints and "
            "twenty times the output shown. It stores d_model values per token (every query head), so GQA could "
            "not shrink it."),
        check_statement(
            "The articles' KVCache class caches keys and values for autoregressive generation",
            verdict="wrong", source=SEED_ARCHITECTURE,
            evidence=f"run as written with 2 layers: after one token has passed both layers seq_len = "
            f"{run['seq_len_after_one_token']}, and layer 1's update returns {run['layer1_keys'].shape[0]} keys of "
            f"which {run['layer1_zero_rows']} is all zeros (never written); a batch of 2 sequences raises "
            f"{run['batch2_error'].split(':')[0] or 'nothing'}",
            explanation="Every layer's update advances the one shared seq_len, so layer l writes token t at "
            "position t * layers + l and attends over zero rows it never wrote: only a one-layer model works. "
            "Its cache has no batch dimension (batch_size is read, then ignored), no KV-head dimension (no GQA) "
            "and reserves max_seq_len tokens for every layer at construction. The idea (keep K and V, append one "
            "token per step) is right; this code does not implement it."),
        check_printed(
            "gqa_memory_savings(64 query heads, 8 KV heads) prints 'GQA Memory Savings: 87.5%'",
            stated=ch01.ARTICLE_KV_OUTPUT["GQA Memory Savings"], printed=printed["GQA Memory Savings"], unit="%",
            source=SEED_ARCHITECTURE,
            explanation=f"Right: the function compares head counts, and KV bytes are proportional to KV heads. The "
            f"planner's bytes for Llama 3.1 70B at 200,000 tokens, 8 vs 64 KV heads: 1 - "
            f"{gqa.kv_bytes_per_sequence / GB:.2f} / {mha.kv_bytes_per_sequence / GB:.2f} GB = {saving:.1%}."),
        check_stated_number(
            "Llama 3 70B's GQA (8 KV heads for 64 query heads) reduces the KV cache 64/8 = 8x", stated="8",
            unit="x", computed=factor, source=SEED_PRODUCTION,
            explanation=f"Right. The planner's bytes here and below use {LLAMA31_70B.name}'s config, the 128K-context "
            "release of the same shape (80 layers, 64 query heads, 8 KV heads of 128), at 128,000 tokens in FP16, "
            "as MHA (64 KV heads), as published and as MQA (1 KV head)."),
        check_stated_number(
            "Without GQA, Llama 3 70B's KV cache at 128,000 tokens in FP16 is about 335 GB", stated="about 335",
            unit="GB", computed=llama["MHA"].kv_bytes_per_sequence / GB, source=SEED_PRODUCTION),
        check_stated_number(
            "...with GQA (8 KV heads) about 42 GB", stated="about 42", unit="GB",
            computed=llama["GQA"].kv_bytes_per_sequence / GB, source=SEED_PRODUCTION),
        check_stated_number(
            "...with one KV head (MQA) about 5 GB", stated="~5", unit="GB",
            computed=llama["MQA"].kv_bytes_per_sequence / GB, source=SEED_PRODUCTION),
    ]


def kv_heads_claim() -> ClaimCheck:
    """"KV Cache: GQA (8-16 heads)" against the shipped configs."""
    rows = []
    for name in shipped_configs():
        p = plan(name)
        rows.append((name, p.n_heads, p.n_kv_heads))
    kv = sorted({r[2] for r in rows})
    listed = "; ".join(f"{name} {h} query / {k} KV heads" for name, h, k in rows)
    return check_statement(
        "Modern long-context models: 'KV Cache: GQA (8-16 heads)'", verdict="misleading", source=SEED_ARCHITECTURE,
        evidence=f"the shipped published configs: {listed}; KV heads {kv}",
        explanation="GQA is indeed everywhere in these configs, but the head count the article gives is not what "
        f"they use: {', '.join(map(str, kv))} KV heads, none with 16, and 'heads' does not say whether KV heads or "
        "query heads per KV head (the group) are meant. The bytes depend on KV heads x head_dim, so the number "
        "alone does not size a cache.")


def combined_savings_claims(waste: dict | None = None) -> list[ClaimCheck]:
    """Chapter 1's "16-32x" checks (GQA x quantization), reused, and what paging adds, measured.

    ``waste``: a result of :func:`longctx_lab.course.kv_experiments.allocation_waste` (default: 64 requests of the
    seeded :func:`~longctx_lab.course.kv_experiments.request_mix`, ``max_len`` 2048, 16-token blocks).
    """
    reused = [c for c in ch01.kv_cache_claims() if "16-32x" in c.claim or "32x with INT4" in c.claim]
    if waste is None:
        waste = allocation_waste(request_mix(64, max_len=2048, seed=0), max_len=2048, block_size=16)
    per_slot_paged = waste["paged_bytes"] / (waste["tokens"] + waste["paged_slack"])
    per_slot_contiguous = waste["contiguous_bytes"] / (waste["requests"] * waste["max_len"])
    paging = check_statement(
        "PagedAttention is the third factor of that 16-32x reduction", verdict="misleading", source=SEED_PRODUCTION,
        evidence=f"{waste['requests']} seeded requests mid-generation, {waste['tokens']:,} tokens, max_len "
        f"{waste['max_len']}: a contiguous cache reserves {waste['contiguous_bytes']:,} bytes "
        f"({waste['contiguous_waste']:.1%} holding no token), a paged one ({waste['block_size']}-token blocks) uses "
        f"{waste['paged_bytes']:,} ({waste['paged_waste']:.1%} empty): {waste['capacity_ratio']:.1f}x more requests "
        f"fit. Bytes per token slot, from the tensors: {per_slot_paged:g} paged, {per_slot_contiguous:g} contiguous",
        explanation="Paging stores each token in exactly the bytes a contiguous cache uses; what it removes is the "
        "memory reserved for tokens that never come (answers shorter than the limit) and fragmentation, at most "
        "one partial block per sequence. That gain is real, but it is a property of the request mix and of how much "
        "a contiguous server reserves, not a factor that multiplies with GQA and quantization; the 16-32x is GQA "
        "times INT8/INT4 alone.")
    return [*reused, paging]


def sketch_claim() -> ClaimCheck:
    """The "KV cache: ~50GB (with GQA and quantization)" of the article's Claude sketch, for its own config."""
    sketch = claude_sketch_config()
    own = plan(sketch, kv_dtype="fp8")
    full = plan(dataclasses.replace(sketch, sliding_window=None, sliding_window_layers=None), kv_dtype="fp8")
    unquantized = plan(dataclasses.replace(sketch, sliding_window=None, sliding_window_layers=None),
                       kv_dtype="bf16")
    return check_stated_number(
        "'Claude 3 Opus (estimated)' sketch (80 layers, 8 KV heads of 128, a 4096 window, global attention every 8th "
        "layer, FP8 cache): 'KV cache: ~50GB (with GQA and quantization)' at its 200K context",
        stated="~50", unit="GB", source=SEED_ARCHITECTURE, computed=own.kv_bytes_per_sequence / GB,
        explanation=f"Unsourced (Anthropic has published no architecture), and wrong on its own terms: the planner "
        f"gives {own.kv_bytes_per_sequence / GB:.2f} GB for the sketch as written "
        f"({own.n_layers - own.n_sliding_layers} global layers keep 200,000 tokens, {own.n_sliding_layers} keep a "
        f"{own.sliding_window:,}-token window), "
        f"{full.kv_bytes_per_sequence / GB:.2f} GB if every layer were global, and "
        f"{unquantized.kv_bytes_per_sequence / GB:.2f} GB for that in bf16. No reading gives ~50 GB.")


# ---------------------------------------------------------------------------------------------- decoding

def prefill_model(config: ModelConfig = LLAMA31_70B, gpu: GPUSpec = H100_SXM, lengths=PREFILL_LENGTHS) -> dict:
    """Roofline lower bound of prefill time (:func:`longctx_lab.core.cost.time_lower_bound` of the prompt's FLOPs and
    one read of the weights) at each prompt length, and the fitted exponent ``p`` of ``time ~ n^p``."""
    lengths = tuple(lengths)
    seconds = [time_lower_bound(prefill_flops(config, n), weights_bytes(config), gpu) for n in lengths]
    return {"lengths": lengths, "seconds": seconds, "exponent": fit_power_law(lengths, seconds)[0],
            "config": config.name, "gpu": gpu.name}


def decode_model(config: ModelConfig = LLAMA31_70B, gpu: GPUSpec = H100_SXM, contexts=DECODE_CONTEXTS,
                 batch: int = 1) -> dict:
    """Roofline lower bound of one decode step (:func:`longctx_lab.core.cost.decode_step`: weights plus the KV cache
    read once) at each context, and the fitted exponent of ``time ~ context^p``."""
    contexts = tuple(contexts)
    steps = [decode_step(config, c, batch=batch) for c in contexts]
    seconds = [time_lower_bound(s["flops"], s["bytes"], gpu) for s in steps]
    return {"contexts": contexts, "seconds": seconds, "exponent": fit_power_law(contexts, seconds)[0],
            "intensity": [s["intensity"] for s in steps], "batch": batch, "config": config.name, "gpu": gpu.name}


def generation_complexity(config: ModelConfig = LLAMA31_70B, contexts=DECODE_CONTEXTS) -> dict:
    """Attention FLOPs of generating the token after ``n`` cached ones, recomputing all ``n + 1`` positions vs with
    a cache (one query over ``n + 1`` keys), and the fitted exponent of each in ``n``."""
    contexts = tuple(contexts)
    recompute = [attention_score_flops_for(config, n + 1) for n in contexts]
    cached = [attention_score_flops_for(config, 1, n + 1) for n in contexts]
    return {"contexts": contexts, "recompute": recompute, "cached": cached,
            "p_recompute": fit_power_law(contexts, recompute)[0], "p_cached": fit_power_law(contexts, cached)[0]}


def _exponent(name: str, value) -> float | None:
    return None if value is None else check_number(name, value)


def serving_claims(*, prefill_exponent: float | None = None, decode_exponent: float | None = None,
                   measured_on: str = "") -> list[ClaimCheck]:
    """TTFT, decode speed, the memory-bound bottleneck and the O(n^2) -> O(n) of caching.

    ``prefill_exponent`` / ``decode_exponent``: measured growth exponents (prefill time vs prompt length, time per
    cached decode step vs context), e.g. from the CPU benchmark; ``measured_on`` says where. Without them the
    verdicts use the roofline model's exponents (:func:`prefill_model`, :func:`decode_model`). A time is read as
    linear when its exponent is within :data:`LINEAR_TOLERANCE` of 1 and as constant below
    :data:`CONSTANT_TOLERANCE`.
    """
    prefill_exponent = _exponent("prefill_exponent", prefill_exponent)
    decode_exponent = _exponent("decode_exponent", decode_exponent)
    if not isinstance(measured_on, str):
        raise TypeError(f"measured_on must be a string, got {type(measured_on).__name__}")
    pre, dec, dec_batch = prefill_model(), decode_model(), decode_model(batch=32)
    gen = generation_complexity()
    where = f" ({measured_on})" if measured_on else ""

    lengths, ctx = pre["lengths"], dec["contexts"]
    first, last = pre["seconds"][0], pre["seconds"][-1]
    pre_model = (f"roofline model, {pre['config']} on one {pre['gpu']}: {first:.2f} s at {lengths[0]:,} tokens to "
                 f"{last:.1f} s at {lengths[-1]:,} ({last / first:.0f}x for {lengths[-1] / lengths[0]:.0f}x the "
                 f"tokens), fitted exponent {pre['exponent']:.2f}")
    p = pre["exponent"] if prefill_exponent is None else prefill_exponent
    model_linear = abs(pre["exponent"] - 1) <= LINEAR_TOLERANCE
    if abs(p - 1) <= LINEAR_TOLERANCE and model_linear:
        ttft_verdict, ttft_why = "correct", "The time grows linearly with the prompt."
    elif abs(p - 1) <= LINEAR_TOLERANCE:
        ttft_verdict, ttft_why = "misleading", (
            "Linear over the lengths measured, where the weight matmuls (linear in the prompt) dominate; causal "
            "attention adds a quadratic term that takes over at long prompts, as the model shows.")
    elif p > 1:
        ttft_verdict, ttft_why = "wrong", (
            "Prefill time grows faster than linearly: its weight matmuls are linear in the prompt, but causal "
            "attention adds a quadratic term that takes over as the prompt grows.")
    else:
        ttft_verdict, ttft_why = "misleading", (
            "The time grew more slowly than the prompt: fixed costs dominate at these sizes, so the measurement "
            "says nothing about long prompts.")
    ttft = check_statement(
        "Time-to-first-token scales linearly with context length", verdict=ttft_verdict, source=SEED_ARCHITECTURE,
        evidence=pre_model if prefill_exponent is None else
        f"measured exponent {prefill_exponent:.2f}{where}; {pre_model}",
        explanation=f"{ttft_why} (Linear means an exponent within {LINEAR_TOLERANCE} of 1.)")

    dec_model = (
        f"roofline model, {dec['config']} on one {dec['gpu']}, bf16: {dec['seconds'][0] * 1e3:.1f} ms per token at "
        f"{ctx[0]:,} cached tokens, {dec['seconds'][-1] * 1e3:.1f} ms at {ctx[-1]:,} (batch 1, exponent "
        f"{dec['exponent']:.2f}); at batch 32 {dec_batch['seconds'][0] * 1e3:.1f} ms to "
        f"{dec_batch['seconds'][-1] * 1e3:.1f} ms (exponent {dec_batch['exponent']:.2f})")
    q = dec["exponent"] if decode_exponent is None else decode_exponent
    if q < CONSTANT_TOLERANCE:
        speed_verdict = "misleading"
        speed_why = ("Nearly constant here, but only because the weights dominate the bytes a step reads. Every step "
                     "also reads the whole KV cache, which grows with the context: with more cached tokens or a "
                     "larger batch the KV cache dominates and time per token grows linearly with context.")
    else:
        speed_verdict = "wrong"
        speed_why = ("Time per token grows with context: every decode step reads the whole KV cache (weights plus "
                     "KV bytes over bandwidth), and the cache grows linearly with the context.")
    speed = check_statement(
        "Generation speed is ~constant regardless of context", verdict=speed_verdict, source=SEED_ARCHITECTURE,
        evidence=dec_model if decode_exponent is None else
        f"measured exponent {decode_exponent:.2f}{where}; {dec_model}",
        explanation=f"{speed_why} (Constant means an exponent below {CONSTANT_TOLERANCE}.)")

    ridge = H100_SXM.ridge_intensity
    bound = check_statement(
        "Decoding: the bottleneck is memory bandwidth, not compute", verdict="correct", source=SEED_ARCHITECTURE,
        evidence=f"{dec['config']} decode step: {dec['intensity'][0]:.2f} FLOPs per byte at {ctx[0]:,} tokens, "
        f"{dec['intensity'][-1]:.2f} at {ctx[-1]:,} (batch 1); the {H100_SXM.name}'s ridge point is {ridge:.0f}",
        explanation="A decode step uses each weight byte for one token (a matrix-vector product) and each cached "
        "K/V byte for one query's head group: its arithmetic intensity sits two orders of magnitude left of the "
        "ridge, so bandwidth sets its speed.")

    lower = [time_lower_bound(prefill_flops(LLAMA31_70B, 200_000) / g, weights_bytes(LLAMA31_70B) / g, H100_SXM)
             for g in (1, 8)]
    seconds = check_statement(
        "'200K context ≈ 5-10s prefill on modern GPUs'", verdict="unsupported", source=SEED_ARCHITECTURE,
        evidence=f"roofline lower bound (peak FLOP/s, no overheads) for {LLAMA31_70B.name} at 200,000 tokens: "
        f"{lower[0]:.0f} s on one {H100_SXM.name}, {lower[1]:.1f} s on eight",
        explanation="The article names no model, no GPU and no GPU count. For a 70B model at 200K even eight "
        "H100s at full peak need about the upper end of that range; real systems reach a fraction of peak. For a "
        "smaller model or more GPUs it could hold. Without the setup the number cannot be checked.")

    caching = check_statement(
        "KVCache docstring: caching 'reduces O(n²) to O(n) for generation'", verdict="correct",
        source=SEED_ARCHITECTURE,
        evidence=f"attention FLOPs of the next token, {LLAMA31_70B.name}, {gen['contexts'][0]:,} to "
        f"{gen['contexts'][-1]:,} cached tokens: recomputing every position grows as n^{gen['p_recompute']:.2f}, one "
        f"query over the cache as n^{gen['p_cached']:.2f}; at {gen['contexts'][-1]:,} tokens the cache saves "
        f"{gen['recompute'][-1] / gen['cached'][-1]:,.0f}x",
        explanation="Per generated token, attention without a cache redoes all n(n+1)/2 query-key pairs; with one it "
        "does n. (The weight matmuls go from n tokens to one.) This is the docstring's claim, and it holds; the "
        "class under it is another matter.")
    return [ttft, speed, bound, seconds, caching]


def claims(*, prefill_exponent: float | None = None, decode_exponent: float | None = None, measured_on: str = "",
           waste: dict | None = None) -> list[ClaimCheck]:
    """Every claim of the chapter. Arguments as :func:`serving_claims` and :func:`combined_savings_claims`."""
    return [*kv_bytes_claims(), kv_heads_claim(), *combined_savings_claims(waste), sketch_claim(),
            *serving_claims(prefill_exponent=prefill_exponent, decode_exponent=decode_exponent,
                            measured_on=measured_on)]
