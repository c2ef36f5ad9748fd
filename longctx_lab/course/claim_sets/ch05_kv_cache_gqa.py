"""Chapter 5: the seed articles' claims about the KV cache, GQA, paging and decoding that chapter 1 does not check.

Bytes come from :func:`longctx_lab.lm.hf.planner.plan`, FLOPs and roofline times from :mod:`longctx_lab.core.cost`,
the paging evidence from the caches' own tensors (:func:`longctx_lab.course.kv_experiments.allocation_waste`), and
the article's ``KVCache`` class is run as written (below).

A claim both chapters meet is judged once, in the lower-numbered chapter: the calculator's printed "48.83 GB"
and "87.5%", Llama 3 70B's 335/42/5 GB, the "16-32x" of GQA times quantization, the Claude sketch's "~50 GB",
time to first token and "generation speed ~constant" are chapter 1's (:mod:`.ch01_quadratic_wall`). The verdicts
here do not read any recorded benchmark, so they are the same wherever the package is installed.
"""

from __future__ import annotations

import dataclasses

import torch

from longctx_lab.attention.measure import fit_power_law
from longctx_lab.core.configs import H100_SXM, LLAMA31_70B, GPUSpec, ModelConfig
from longctx_lab.core.cost import (
    GiB,
    attention_score_flops_for,
    decode_step,
    prefill_flops,
    time_lower_bound,
    weights_bytes,
)
from longctx_lab.core.validate import check_number
from longctx_lab.course.claims import (
    SEED_ARCHITECTURE,
    SEED_PRODUCTION,
    ClaimCheck,
    check_stated_number,
    check_statement,
)
from longctx_lab.course.kv_experiments import allocation_waste, gqa_variants, request_mix
from longctx_lab.course.stacks import claude_sketch_config  # noqa: F401 - re-exported (tests/test_stacks.py)
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
LLAMA_CONTEXT = 128_000  # How Do Production Models Handle Long Context?'s n for Llama 3 70B
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

#: A published config outside the shipped ones, for the "8-16 heads" claim: Gemma 2 27B (Hugging Face
#: ``google/gemma-2-27b``, config.json: num_attention_heads 32, num_key_value_heads 16, head_dim 128).
GEMMA2_27B_HEADS = {"name": "gemma-2-27b", "n_heads": 32, "n_kv_heads": 16, "head_dim": 128}


def kv_bytes_claims() -> list[ClaimCheck]:
    """The article's ``KVCache`` class, run as written, and the 64/8 = 8x of How Do Production Models Handle
    Long Context?"""
    run = run_article_kvcache()
    llama = gqa_variants(LLAMA31_70B, context=LLAMA_CONTEXT, kv_dtype="fp16")
    factor = llama["MHA"].kv_bytes_per_sequence / llama["GQA"].kv_bytes_per_sequence
    return [
        check_statement(
            "The articles' KVCache class caches keys and values for autoregressive generation",
            verdict="wrong", source=SEED_ARCHITECTURE,
            evidence=f"2 layers, one token: seq_len = {run['seq_len_after_one_token']}, and layer 1 gets "
            f"{run['layer1_keys'].shape[0]} keys, {run['layer1_zero_rows']} of them all zeros (never written); a "
            f"batch of 2 raises {run['batch2_error'].split(':')[0] or 'nothing'}; KVCache(200_000, 80, 8192) "
            f"allocates {run['shape']} {run['dtype']} up front: {run['allocated_bytes'] / GiB:,.2f} GiB",
            explanation="One seq_len is shared by all layers, so each layer writes one row after the last and "
            "reads rows it never wrote: only a one-layer model works. It has no batch and no KV-head dimension "
            "(so no GQA) and reserves the full length for every layer. The idea is right; the code is not."),
        check_stated_number(
            "Llama 3 70B's GQA (8 KV heads for 64 query heads) reduces the KV cache 64/8 = 8x", stated="8",
            unit="x", computed=factor, source=SEED_PRODUCTION,
            explanation=f"Right: KV bytes are proportional to KV heads ({LLAMA31_70B.name}, 128,000 tokens, "
            "FP16, 64 vs 8 KV heads)."),
    ]


def kv_heads_claim() -> ClaimCheck:
    """"KV Cache: GQA (8-16 heads)" against the shipped configs and Gemma 2 27B."""
    rows = [(name, p.n_heads, p.n_kv_heads) for name, p in ((n, plan(n)) for n in shipped_configs())]
    g = GEMMA2_27B_HEADS
    rows.append((g["name"], g["n_heads"], g["n_kv_heads"]))
    kv = sorted({r[2] for r in rows})
    groups = sorted({r[1] // r[2] for r in rows})
    listed = "; ".join(f"{name} {h}/{k}" for name, h, k in rows)
    return check_statement(
        "Modern long-context models: 'KV Cache: GQA (8-16 heads)'", verdict="misleading", source=SEED_ARCHITECTURE,
        evidence=f"query/KV heads of the shipped published configs and {g['name']}: {listed}; KV heads "
        f"{kv}, query heads per KV head {groups}",
        explanation=f"GQA is everywhere here, with {', '.join(map(str, kv))} KV heads; 'heads' does not say "
        "whether KV heads or the group size is meant, and a cache's size needs KV heads x head_dim x layers.")


def combined_savings_claims(waste: dict | None = None) -> list[ClaimCheck]:
    """What paging adds to the "16-32x" of GQA and quantization (whose factors chapter 1 checks), measured.

    ``waste``: a result of :func:`longctx_lab.course.kv_experiments.allocation_waste` (default: 64 requests of the
    seeded :func:`~longctx_lab.course.kv_experiments.request_mix`, ``max_len`` 2048, 16-token blocks).
    """
    if waste is None:
        waste = allocation_waste(request_mix(64, max_len=2048, seed=0), max_len=2048, block_size=16)
    per_slot_paged = waste["paged_bytes"] / (waste["tokens"] + waste["paged_slack"])
    per_slot_contiguous = waste["contiguous_bytes"] / (waste["requests"] * waste["max_len"])
    paging = check_statement(
        "PagedAttention is the third factor of the '16-32x' KV memory reduction (with GQA and quantization)",
        verdict="misleading", source=SEED_PRODUCTION,
        evidence=f"{waste['requests']} seeded requests, {waste['tokens']:,} tokens: contiguous (max_len "
        f"{waste['max_len']}) {waste['contiguous_waste']:.1%} empty, paged ({waste['block_size']}-token blocks) "
        f"{waste['paged_waste']:.1%} empty, {waste['capacity_ratio']:.1f}x more requests fit; bytes per token "
        f"slot: {per_slot_paged:g} paged, {per_slot_contiguous:g} contiguous",
        explanation="Paging stores a token in the same bytes; it removes memory reserved for tokens that never "
        "come. That gain depends on the request mix and does not multiply with GQA and quantization, which give "
        "the 16-32x alone.")
    return [paging]


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
    """The memory-bound bottleneck, the "5-10s prefill" and the O(n^2) -> O(n) of caching.

    The verdicts come from the roofline model (:func:`decode_model`) and FLOP counts alone, so they do not depend on
    a recorded benchmark. ``prefill_exponent`` / ``decode_exponent`` (measured growth exponents, e.g. the CPU
    benchmark's ``longctx_lab.cli.bench.decode_cpu.claim_inputs(results)``) and ``measured_on`` are only added to
    the bottleneck claim's evidence when given. Time to first token and "generation speed ~constant" are judged in
    chapter 1.
    """
    prefill_exponent = _exponent("prefill_exponent", prefill_exponent)
    decode_exponent = _exponent("decode_exponent", decode_exponent)
    if not isinstance(measured_on, str):
        raise TypeError(f"measured_on must be a string, got {type(measured_on).__name__}")
    dec = decode_model()
    gen = generation_complexity()
    ctx = dec["contexts"]
    where = f" ({measured_on})" if measured_on else ""
    measured = "" if decode_exponent is None else (
        f"; also shown, a recorded measurement{where}: cached decode time grows as context^{decode_exponent:.2f}"
        + ("" if prefill_exponent is None else f", prefill as length^{prefill_exponent:.2f}"))

    ridge = H100_SXM.ridge_intensity
    bound = check_statement(
        "Decoding: the bottleneck is memory bandwidth, not compute", verdict="correct", source=SEED_ARCHITECTURE,
        evidence=f"{dec['config']} decode step: {dec['intensity'][0]:.2f} FLOPs per byte at {ctx[0]:,} tokens, "
        f"{dec['intensity'][-1]:.2f} at {ctx[-1]:,} (batch 1); the {H100_SXM.name}'s ridge point is {ridge:.0f}"
        f"{measured}",
        explanation="Each weight byte serves one token and each cached byte one query group: two orders of "
        "magnitude left of the ridge, so bandwidth sets the speed.")

    lower = [time_lower_bound(prefill_flops(LLAMA31_70B, 200_000) / g, weights_bytes(LLAMA31_70B) / g, H100_SXM)
             for g in (1, 8)]
    seconds = check_statement(
        "'200K context ≈ 5-10s prefill on modern GPUs'", verdict="unsupported", source=SEED_ARCHITECTURE,
        evidence=f"roofline lower bound (peak FLOP/s, no overheads) for {LLAMA31_70B.name} at 200,000 tokens: "
        f"{lower[0]:.0f} s on one {H100_SXM.name}, {lower[1]:.1f} s on eight",
        explanation="No model, GPU or GPU count is named: for a 70B model even eight H100s at peak sit at the "
        "top of the range, a smaller model would be faster. Without the setup it cannot be checked.")

    caching = check_statement(
        "KVCache docstring: caching 'reduces O(n²) to O(n) for generation'", verdict="correct",
        source=SEED_ARCHITECTURE,
        evidence=f"next token's attention FLOPs, {LLAMA31_70B.name}: recomputing grows as "
        f"n^{gen['p_recompute']:.2f}, with the cache n^{gen['p_cached']:.2f}; "
        f"{gen['recompute'][-1] / gen['cached'][-1]:,.0f}x fewer at {gen['contexts'][-1]:,} tokens",
        explanation="Without a cache each new token redoes all n(n+1)/2 query-key pairs; with one it does n. "
        "The docstring is right; the class under it is not.")
    return [bound, seconds, caching]


def claims(*, prefill_exponent: float | None = None, decode_exponent: float | None = None, measured_on: str = "",
           waste: dict | None = None) -> list[ClaimCheck]:
    """Every claim of the chapter. Arguments as :func:`serving_claims` and :func:`combined_savings_claims`."""
    return [*kv_bytes_claims(), kv_heads_claim(), *combined_savings_claims(waste),
            *serving_claims(prefill_exponent=prefill_exponent, decode_exponent=decode_exponent,
                            measured_on=measured_on)]
