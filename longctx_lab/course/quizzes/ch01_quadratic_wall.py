"""Chapter 1 quiz. Numeric keys are computed by the package, so they can never drift from the text."""

from longctx_lab.core.configs import A100_80GB_SXM, H100_SXM, LLAMA3_70B
from longctx_lab.core.cost import GB, GiB, attended_pairs, attention_matrix_bytes, decode_step, kv_cache_bytes_for
from longctx_lab.course.quiz import ChoiceQuestion, NumericQuestion, Option, Quiz

QUIZ = Quiz(
    chapter="ch01_quadratic_wall",
    title="Chapter 1: the quadratic wall",
    questions=(
        NumericQuestion(
            prompt="How many GiB does one head's fp16 score matrix take for a 32,768-token sequence?",
            answer=attention_matrix_bytes(32768, dtype="fp16") / GiB,
            unit="GiB",
            explanation="32768^2 entries x 2 bytes = 2^31 bytes = 2 GiB, for one head of one sequence.",
            computed_by="attention_matrix_bytes(32768, dtype='fp16') / 2**30",
        ),
        NumericQuestion(
            prompt="Llama 3 70B (80 layers, 8 KV heads, head dim 128): how many GB (1e9 bytes) of bf16 KV "
            "cache does one 131,072-token sequence need?",
            answer=kv_cache_bytes_for(LLAMA3_70B, 131072, dtype="bf16") / GB,
            unit="GB",
            explanation="2 (K and V) x 80 x 8 x 128 x 131072 x 2 bytes = 42.9 GB: half an 80 GB GPU.",
            computed_by="kv_cache_bytes_for(LLAMA3_70B, 131072, dtype='bf16') / 1e9",
        ),
        NumericQuestion(
            prompt="Causal self-attention over n = 4096 tokens keeps what fraction of the n^2 (query, key) pairs?",
            answer=attended_pairs(4096, causal=True) / 4096**2,
            rel_tol=0.001,
            explanation="n(n+1)/2 of n^2 pairs: (n+1)/(2n), just over one half. That is the 'causal halving'.",
            computed_by="attended_pairs(4096, causal=True) / 4096**2",
        ),
        ChoiceQuestion(
            prompt="Which ordering of GPU memory, fastest first, is right?",
            options=(
                Option("registers > SRAM (shared memory) > HBM > host RAM over PCIe", correct=True,
                       explanation="Each step away from the cores is bigger and slower."),
                Option("HBM > registers > L2 > host RAM", explanation="HBM is off-chip: on-chip memory is faster."),
                Option("SRAM > HBM > registers > host RAM", explanation="Registers are the fastest storage there is."),
                Option("host RAM > HBM > SRAM > registers", explanation="That is the order of capacity, not speed."),
            ),
        ),
        ChoiceQuestion(
            prompt="For a long prompt (say 200K tokens), how does prefill time grow with the prompt length n?",
            options=(
                Option("Linearly: each token costs the same", explanation="Only while the weight matmuls dominate."),
                Option("Towards quadratically: attention's n^2 term takes over at long n", correct=True,
                       explanation="Weights cost ~2 x params per token (linear); attention costs ~n^2."),
                Option("It does not grow: prefill is parallel", explanation="Parallel work is still work."),
            ),
        ),
        ChoiceQuestion(
            prompt=(
                f"Decoding one token of Llama 3 70B at batch 1 has an arithmetic intensity of about "
                f"{decode_step(LLAMA3_70B, 8192)['intensity']:.1f} FLOPs/byte, while the H100's ridge point is "
                f"{H100_SXM.ridge_intensity:.0f} FLOPs/byte (A100: {A100_80GB_SXM.ridge_intensity:.0f}). What follows?"
            ),
            options=(
                Option("Decoding is memory-bound: its speed is set by HBM bandwidth, not by FLOPs", correct=True,
                       explanation="Below the ridge the roofline is the bandwidth slope."),
                Option("Decoding is compute-bound", explanation="Compute-bound needs intensity above the ridge."),
                Option("A faster tensor core would make decoding proportionally faster",
                       explanation="Only more bandwidth (or fewer bytes: GQA, quantised caches) helps."),
            ),
        ),
        ChoiceQuestion(
            prompt="Which of these change the FLOPs of exact attention? (pick all that apply)",
            multiple=True,
            options=(
                Option("A causal mask (about half the pairs)", correct=True, explanation="Pairs are the FLOPs."),
                Option("A sliding window of w keys", correct=True, explanation="n*w pairs instead of ~n^2/2."),
                Option("FlashAttention tiling", explanation="FlashAttention changes memory traffic, not FLOPs."),
                Option("Grouped-query attention", explanation="GQA shrinks K/V, not the number of scores."),
            ),
        ),
    ),
)
