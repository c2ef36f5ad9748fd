"""Chapter 1 quiz. Numeric keys are computed by the package, so they can never drift from the text."""

from longctx_lab.core.configs import A100_80GB_SXM, H100_SXM, LLAMA3_70B
from longctx_lab.core.cost import (
    GB,
    GiB,
    attended_pairs,
    attention_matrix_bytes,
    decode_step,
    kv_cache_bytes_for,
    roofline,
    time_lower_bound,
)
from longctx_lab.course.quiz import ChoiceQuestion, NumericQuestion, Option, Quiz

_WEIGHTS = 16e9  # bytes: an 8B-parameter model in bf16, read once per decoded token
_FLOPS = 2 * 8e9  # one multiply-add per parameter per token
_INTENSITY = 50.0  # FLOPs/byte of the roofline question
_DECODE_1 = decode_step(LLAMA3_70B, 8192)  # batch 1, long context
_DECODE_64 = decode_step(LLAMA3_70B, 128, batch=64)  # batch 64, short contexts

QUIZ = Quiz(
    chapter="ch01_quadratic_wall",
    title="Chapter 1: the quadratic wall",
    questions=(
        NumericQuestion(
            prompt="A training run uses naive attention (the score matrix materialised) at 8,192 tokens. The "
            "team moves to 32,768 tokens in fp16. How many GiB does one head's score matrix of one sequence "
            "now take?",
            answer=attention_matrix_bytes(32768, dtype="fp16") / GiB,
            unit="GiB",
            explanation="4x the length is 16x the matrix: 32768^2 entries x 2 bytes = 2^31 bytes = 2 GiB, for "
            "one head of one sequence, and a layer has dozens of heads.",
            computed_by="attention_matrix_bytes(32768, dtype='fp16') / 2**30",
        ),
        NumericQuestion(
            prompt="A serving node keeps the KV cache of one 131,072-token conversation with Llama 3 70B "
            "(80 layers, 8 KV heads, head dim 128) in bf16. How many GB (1e9 bytes) does that cache take?",
            answer=kv_cache_bytes_for(LLAMA3_70B, 131072, dtype="bf16") / GB,
            unit="GB",
            explanation="One key and one value per layer, KV head and token: 2 x 80 x 8 x 128 x 131072 x 2 "
            "bytes = 42.9 GB, half an 80 GB GPU for a single conversation.",
            computed_by="kv_cache_bytes_for(LLAMA3_70B, 131072, dtype='bf16') / 1e9",
        ),
        NumericQuestion(
            prompt="Causal self-attention over n = 4096 tokens keeps what fraction of the n^2 (query, key) pairs?",
            answer=attended_pairs(4096, causal=True) / 4096**2,
            rel_tol=0.001,
            explanation="Query i keeps keys 0..i, i + 1 of them: n(n+1)/2 pairs in all, a fraction (n+1)/(2n), "
            "just over one half. The mask halves the work; it does not change the n^2 growth.",
            computed_by="attended_pairs(4096, causal=True) / 4096**2",
        ),
        NumericQuestion(
            prompt=f"A kernel does {_INTENSITY:.0f} FLOPs per byte it reads from HBM. On an H100 SXM "
            f"({H100_SXM.peak_flops_16bit / 1e12:.0f} TFLOP/s peak, {H100_SXM.hbm_bandwidth / 1e12:.2f} TB/s "
            "HBM), at most how many TFLOP/s can it reach?",
            answer=roofline(_INTENSITY, peak_flops=H100_SXM.peak_flops_16bit,
                            bandwidth=H100_SXM.hbm_bandwidth) / 1e12,
            unit="TFLOP/s",
            explanation="Below the ridge point the roof is the bandwidth slope: 50 FLOPs/byte x 3.35e12 "
            "bytes/s = 167.5 TFLOP/s, about a sixth of peak. The arithmetic units wait for memory.",
            computed_by="roofline(50, peak_flops=H100_SXM.peak_flops_16bit, bandwidth=H100_SXM.hbm_bandwidth)",
        ),
        NumericQuestion(
            prompt=f"An 8B-parameter model in bf16 ({_WEIGHTS / 1e9:.0f} GB of weights) decodes at batch 1 "
            f"with a tiny context on an A100 80GB SXM ({A100_80GB_SXM.hbm_bandwidth / 1e9:,.0f} GB/s HBM). "
            "Ignoring the KV cache, at most how many tokens per second can it generate?",
            answer=1 / time_lower_bound(_FLOPS, _WEIGHTS, A100_80GB_SXM),
            unit="tokens/s",
            explanation="Each token reads every weight once, so it takes at least 16e9 / 2.039e12 s = 7.8 ms: "
            "about 127 tokens/s. Its ~16 GFLOP would take only 0.05 ms at peak, so bandwidth, not FLOPs, "
            "sets the pace.",
            computed_by="1 / time_lower_bound(16e9 FLOPs, 16e9 bytes, A100_80GB_SXM)",
        ),
        ChoiceQuestion(
            prompt="Which ordering of GPU memory, fastest first, is right?",
            options=(
                Option("registers > SRAM (shared memory) > HBM > host RAM over PCIe", correct=True,
                       explanation="Each step away from the arithmetic units is slower (though not always "
                       "bigger: an A100's register file outsizes its shared memory)."),
                Option("HBM > registers > L2 > host RAM",
                       explanation="HBM is off the chip: every on-chip level is faster than it."),
                Option("SRAM > HBM > registers > host RAM",
                       explanation="Registers feed the arithmetic units directly; nothing is faster."),
                Option("host RAM > HBM > SRAM > registers",
                       explanation="That is the order of capacity, largest first, not of speed."),
            ),
        ),
        ChoiceQuestion(
            prompt="A team doubles a model's prompts from 100K to 200K tokens. How does prefill time change?",
            options=(
                Option("It doubles: each token costs the same", explanation="That holds only while the weight "
                       "matmuls dominate, at short prompts; at 100K+ attention's n^2 part is large."),
                Option("It grows by between 2x and 4x, nearer 4x the longer the prompts", correct=True,
                       explanation="Prefill FLOPs = linear part (weights, ~2 x params per token) + quadratic part "
                       "(attention); at long prompts the quadratic part takes over."),
                Option("It stays the same: prefill is parallel", explanation="Parallel work is still work; "
                       "prefill is compute-bound, so its time follows its FLOPs."),
                Option("It quadruples exactly", explanation="Only attention is quadratic; the weight matmuls "
                       "still add a linear part."),
            ),
        ),
        ChoiceQuestion(
            prompt=(
                f"Decoding one token of Llama 3 70B at batch 1 has an arithmetic intensity of about "
                f"{decode_step(LLAMA3_70B, 8192)['intensity']:.1f} FLOPs/byte, while the H100's ridge point is "
                f"{H100_SXM.ridge_intensity:.0f} FLOPs/byte. Which change would speed up decoding the most?"
            ),
            options=(
                Option("A GPU with more HBM bandwidth, or fewer bytes to read per token", correct=True,
                       explanation="Far below the ridge the time is bytes / bandwidth: more bandwidth, smaller "
                       "weights or a smaller KV cache (GQA, quantisation) all help."),
                Option("A GPU with twice the tensor-core FLOP/s",
                       explanation="The arithmetic units are already idle most of the time, waiting for memory."),
                Option("Computing the scores with fewer FLOPs (a cheaper softmax)",
                       explanation="FLOPs are not the bottleneck at this intensity; the bytes read are."),
            ),
        ),
        ChoiceQuestion(
            prompt="Why do language models keep a KV cache while they generate?",
            options=(
                Option("So each step projects keys and values only for the new token", correct=True,
                       explanation="Past tokens' keys and values do not change, so they are computed once and "
                       "read back: n projections instead of n(n+1)/2."),
                Option("To save memory", explanation="The cache costs memory, growing with every token; it "
                       "saves computation."),
                Option("To make attention's cost linear in the context",
                       explanation="Each new token still attends to all cached keys: the scores per step grow "
                       "with the context."),
                Option("To store the attention weights of earlier steps",
                       explanation="Weights are recomputed for each new query; only keys and values are kept."),
            ),
        ),
        ChoiceQuestion(
            prompt=(
                f"Decoding {LLAMA3_70B.name} at batch 1 with 8,192 tokens cached reads every weight for one "
                f"token: about {_DECODE_1['intensity']:.1f} FLOPs/byte. A server instead decodes 64 "
                "sequences together, each with 128 tokens cached. Where does the step land on the H100's "
                f"roofline (ridge {H100_SXM.ridge_intensity:.0f} FLOPs/byte)?"
            ),
            options=(
                Option(f"Near {_DECODE_64['intensity']:.0f} FLOPs/byte: still memory-bound", correct=True,
                       explanation="Each weight read now serves 64 tokens, so the weight part of the intensity "
                       "grows about 64x, while each sequence's small KV cache adds only a few bytes "
                       f"(decode_step(LLAMA3_70B, 128, batch=64) gives {_DECODE_64['intensity']:.1f}). That "
                       "is still left of the ridge: batching is how servers use the idle arithmetic."),
                Option(f"Unchanged, near {_DECODE_1['intensity']:.1f} FLOPs/byte",
                       explanation="FLOPs grow 64x, but the weights are read once per step for the whole "
                       "batch, so bytes grow far less."),
                Option("Right of the ridge: compute-bound",
                       explanation=f"64 tokens per weight read give about 64 FLOPs per weight byte, below the "
                       f"ridge of {H100_SXM.ridge_intensity:.0f}; it would take hundreds of sequences."),
                Option("Lower than at batch 1, because 64 KV caches must be read",
                       explanation="64 caches of 128 tokens are small next to the weights; it is long "
                       "contexts, not many short ones, that make the cache dominate the bytes."),
            ),
        ),
    ),
)
