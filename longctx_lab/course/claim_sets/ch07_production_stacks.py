"""Chapter 7: the claims of "How Do Production Models Handle Long Context?" (``SEED_PRODUCTION``) about production
stacks, distribution and compute cost, checked.

A claim an earlier chapter checks stays there and is not repeated here (one claim, one verdict, one place):
chapter 1 the KV bytes of Llama 3 70B and the Gemini attention FLOPs, chapter 2 Llama 3's RoPE recipe, chapter 3
Mistral's receptive field and Mixtral's window, chapter 5 the GQA factor, chapter 6 Gemini's needle recall and
"progressive extension is far cheaper". The ones here use :mod:`longctx_lab.core.cost`,
:mod:`longctx_lab.lm.hf.planner` and :mod:`longctx_lab.distributed`; published facts (context lengths, parameter
counts, what the Gemini 1.5 report discloses) are cited where they are used.
"""

from __future__ import annotations

from longctx_lab.core.configs import LLAMA3_70B, LLAMA31_70B, LLAMA31_405B, TPU_V5P
from longctx_lab.core.cost import GB, attention_flops, prefill_flops
from longctx_lab.course.claims import SEED_PRODUCTION, ClaimCheck, check_stated_number, check_statement
from longctx_lab.course.stacks import attention_share_curve
from longctx_lab.distributed.cost_model import article_example
from longctx_lab.distributed.layouts import work_per_rank
from longctx_lab.lm.hf.planner import plan

# The article's Gemini example: 10M tokens over P = 256 devices, its "conservative" 16 heads of dimension 128.
GEMINI_TOKENS, GEMINI_DEVICES, GEMINI_HEADS, GEMINI_HEAD_DIM = 10**7, 256, 16, 128

# Published facts the checks cite (sources in the strings that use them).
LLAMA3_PRETRAINING_TOKENS = 15.6e12  # Llama 3 paper (Grattafiori et al. 2024), section 3: 15.6T tokens at 8K
LLAMA3_LONG_CONTEXT_TOKENS = 800e9  # ibid.: six-stage long-context pre-training, "approximately 800B tokens"
# Gemini 1.5 report (Gemini Team 2024): text needle-in-a-haystack recall 100% to 530K tokens, 99.7% at 1M, 99.2%
# at 10M; and its worked example of a 1,382-page book (Les Miserables) as 732K tokens.
GEMINI_RECALL = {530_000: 100.0, 1_000_000: 99.7, 10_000_000: 99.2}
GEMINI_BOOK_PAGES, GEMINI_BOOK_TOKENS = 1382, 732_000


def extension_cost(config=LLAMA31_405B, short: int = 8192, long: int = 131_072) -> dict:
    """Training FLOPs per token of a ``long``-token sequence over a ``short``-token one (forward FLOPs of the whole
    sequence per token; the backward is a fixed multiple of the forward, so it cancels in the ratio)."""
    per_short = prefill_flops(config, short) / short
    per_long = prefill_flops(config, long) / long
    return {"config": config.name, "short": short, "long": long, "per_token_short": per_short,
            "per_token_long": per_long, "ratio": per_long / per_short}


def distribution_claims(ring: dict | None = None) -> list[ClaimCheck]:
    """``ring``: optional ``{"procs", "seq_len", "max_error", "messages"}`` from the chapter's live run."""
    ex = article_example()
    tiled, untiled = ex["memory_tiled"], ex["memory_untiled"]
    plain = work_per_rank(4096, 4, "plain", causal=True)
    zigzag = work_per_rank(4096, 4, "zigzag", causal=True)
    live = (f"the chapter's run: {ring['procs']} processes, {ring['seq_len']:,} tokens, each rank received "
            f"{ring['messages']} K/V blocks, max |ring - full attention| = {ring['max_error']:.1e}; "
            if ring else "")
    flops = 64 * attention_flops(GEMINI_TOKENS, GEMINI_HEAD_DIM, n_heads=GEMINI_HEADS, causal=True)
    fleet = GEMINI_DEVICES * TPU_V5P.peak_flops_16bit
    return [
        check_stated_number(
            "With P = 256 TPUs, a 10M-token sequence becomes 39K tokens per device", stated="39K",
            computed=ex["tokens_per_device"], unit="tokens", source=SEED_PRODUCTION),
        check_statement(
            "Ring attention: each device computes attention for its chunk and passes KV blocks around a ring",
            verdict="correct", source=SEED_PRODUCTION,
            evidence=f"{live}causal work per rank (4 ranks, 4,096 tokens): plain {plain}, zigzag {zigzag}",
            explanation="Exact, not an approximation: partial results over disjoint key blocks merge with their "
            "log-sum-exps. What the sentence leaves out is balance: with a causal mask and contiguous chunks the "
            f"last rank does {max(plain) / min(plain):.1f}x the first one's work; the zigzag layout evens it out."),
        check_statement(
            "Per-device memory is O(n^2/P) for the attention scores (or O(n/P) with FlashAttention-style tiling)",
            verdict="misleading", source=SEED_PRODUCTION,
            stated="O(n^2/P) (or O(n/P) tiled)",
            evidence=f"one layer, 10M tokens / 256 devices, {GEMINI_HEADS} heads x {GEMINI_HEAD_DIM}, bf16 "
            f"(distributed.cost_model.article_example): every score a device computes, n^2/P per head, would be "
            f"{tiled.scores_all_steps / GB:,.0f} GB in fp32; one ring step's (n/P)^2 block "
            f"{untiled.score_block / GB:,.1f} GB; the tiled ring's whole state {tiled.total / GB:.2f} GB",
            explanation="n^2/P is each device's share of the score *work*. A ring never holds it: a step computes "
            "one (n/P) x (n/P) block, O(n^2/P^2), and with tiling inside the device only O(n/P) remains (its shards, "
            "two K/V blocks in flight and the accumulators). The O(n/P) in parentheses is the real figure; O(n^2/P) "
            "describes no memory the algorithm uses."),
        check_statement(
            "64 layers of attention (2.6e22 FLOPs) are 'roughly several hours of compute on a large TPU pod'",
            verdict="wrong", source=SEED_PRODUCTION,
            evidence=f"the correct {flops:.2e} FLOPs on {GEMINI_DEVICES} {TPU_V5P.name} chips at their peak "
            f"({fleet:.3g} FLOP/s): {flops / fleet:,.0f} s; the article's 2.6e22 would take "
            f"{2.6e22 / fleet / 3600:,.0f} h",
            explanation="The hours come from the article's 1000x slip in the FLOPs (chapter 1). At the correct count "
            "the attention of one 10M-token forward pass is minutes of the article's 256 chips at peak; "
            "the cost of 10M-token contexts is real, but it is memory, communication and every step of "
            "decoding, not one pass's FLOPs."),
        check_statement(
            "Gemini 1.5 likely uses Ring Attention or a similar distributed attention scheme",
            verdict="unsupported", source=SEED_PRODUCTION,
            evidence=f"10M tokens over 256 devices is {ex['tokens_per_device']:,.1f} tokens each, a tiled ring "
            f"state of {tiled.total / GB:.2f} GB per layer of {ex['hbm_bytes'] / GB:.0f} GB HBM: feasible, which is "
            "all the arithmetic shows",
            explanation="The Gemini 1.5 report does not describe its attention or how the sequence is distributed. "
            "Sequence parallelism of some kind is needed at 10M tokens, but which (ring, all-gather as in Llama 3, "
            "something else) is not public; 'likely' is the article's guess."),
    ]


def gemini_claims() -> list[ClaimCheck]:
    pages = GEMINI_TOKENS / (GEMINI_BOOK_TOKENS / GEMINI_BOOK_PAGES)
    return [
        check_stated_number(
            "10 million tokens is roughly 7,500 pages of text", stated="roughly 7,500", unit="pages",
            computed=pages, source=SEED_PRODUCTION,
            explanation=f"Pages depend on tokens per page, which the article does not give. The Gemini 1.5 report's "
            f"own example, a {GEMINI_BOOK_PAGES:,}-page book as {GEMINI_BOOK_TOKENS:,} tokens "
            f"({GEMINI_BOOK_TOKENS / GEMINI_BOOK_PAGES:.0f} tokens per page), makes 10M tokens {pages:,.0f} pages; "
            f"7,500 pages would need {GEMINI_TOKENS / 7500:,.0f} tokens per page."),
        check_statement(
            "Gemini 1.5 is a Mixture-of-Experts model", verdict="correct", source=SEED_PRODUCTION,
            evidence="Gemini 1.5 report: 'a sparse mixture-of-expert (MoE) Transformer-based model'",
            explanation="Published; its size, expert count and attention are not."),
    ]


def llama_claims() -> list[ClaimCheck]:
    return [
        check_stated_number(
            "Llama 3 was pre-trained with an 8K context window", stated="8K", computed=LLAMA3_70B.max_context,
            unit="tokens", binary_prefixes=True, source=SEED_PRODUCTION),
        check_stated_number(
            "...then extended to 128K", stated="128K", computed=LLAMA31_70B.max_context, unit="tokens",
            binary_prefixes=True, source=SEED_PRODUCTION,
            explanation="(Right, read with K = 1,024.)"),
    ]


def mistral_claims() -> list[ClaimCheck]:
    mixtral = plan("mixtral-8x7b-v0.1")
    return [
        check_stated_number(
            "Mixtral: total parameter count 47B", stated="47B", computed=mixtral.params_total, unit="parameters",
            source=SEED_PRODUCTION),
        check_stated_number(
            "...and per-token active parameters 13B", stated="13B", computed=mixtral.params_active,
            unit="parameters", source=SEED_PRODUCTION,
            explanation="Top-2 of 8 experts: attention, embeddings and 2 experts' MLPs per layer."),
    ]


def stack_claims() -> list[ClaimCheck]:
    llama = plan(LLAMA31_70B)
    return [
        check_statement(
            "No single technique solves long context; production systems stack several, each for one bottleneck",
            verdict="correct", source=SEED_PRODUCTION,
            evidence=f"{llama.model} at {llama.context:,} tokens: weights {llama.weights_bytes / GB:.0f} GB, KV cache "
            f"{llama.kv_bytes_per_sequence / GB:.1f} GB with GQA (8x less than MHA), attention "
            f"{attention_share_curve('llama3.1-70b', [llama.context])[0]:.0%} of the last token's attention + MLP "
            "FLOPs (attention's share, as section 2 defines it); the chapter's table maps each technique to the one "
            "quantity it changes",
            explanation="Each technique moves one number: RoPE scaling the usable positions, GQA and quantization "
            "the cache bytes, FlashAttention the memory of the scores, windows the FLOPs, sequence parallelism the "
            "per-device share. None moves all of them."),
        check_statement(
            "The stack table's 'LLaMA 3 70B / 405B: 128K'", verdict="correct", source=SEED_PRODUCTION,
            evidence=f"{LLAMA31_70B.name} and {LLAMA31_405B.name} config: max_position_embeddings "
            f"{LLAMA31_70B.max_context:,}; {LLAMA3_70B.name} (April 2024): {LLAMA3_70B.max_context:,}",
            explanation="Right as the cited paper names them: 'The Llama 3 Herd of Models' (Grattafiori et al. "
            "2024) calls its 128K models, 405B included, Llama 3. The weights were released as Llama 3.1; the "
            "earlier Llama 3 8B and 70B releases have an 8K window, so a reader looking up 'Llama 3 70B' finds the "
            "8K model. Ambiguous naming, not an error."),
    ]


def claims(ring: dict | None = None) -> list[ClaimCheck]:
    return llama_claims() + mistral_claims() + gemini_claims() + distribution_claims(ring) + stack_claims()


def memory_claim() -> ClaimCheck:
    """The O(n^2/P) per-device memory claim, which the chapter discusses in its prose."""
    return next(c for c in distribution_claims() if "O(n^2/P)" in c.claim)
