"""Chapter 7 quiz: production long-context stacks, progressive extension, ring attention. Numeric keys are
computed by the package (planner, cost, attention.receptive_field, distributed.layouts); the first four questions
are the production article's own quiz, answered correctly."""

from longctx_lab.attention.receptive_field import receptive_field_size
from longctx_lab.core.configs import MISTRAL_7B
from longctx_lab.course.quiz import ChoiceQuestion, NumericQuestion, Option, Quiz
from longctx_lab.distributed.cost_model import ring_communication
from longctx_lab.distributed.layouts import work_per_rank
from longctx_lab.lm.hf.planner import plan

# Mistral's paper lets position i attend to i - W .. i (W + 1 keys, a course window of W + 1): L layers reach
# L x W positions back. Hugging Face's W-key window reaches L (W - 1); the tolerance accepts both readings.
_MISTRAL_REACH = receptive_field_size(MISTRAL_7B.sliding_window + 1, MISTRAL_7B.n_layers) - 1

_PLAIN = work_per_rank(4096, 4, "plain", causal=True)
_ZIGZAG = work_per_rank(4096, 4, "zigzag", causal=True)

# One ring-attention forward of one layer: each of P ranks receives the K and V shards of the P - 1 others.
_P, _N = 8, 131_072
_RING_BYTES = ring_communication(_N, _P, kv_heads=8, head_dim=128, dtype="bf16").forward_bytes

_LLAMA8B = plan("llama-3.1-8b", context=131_072).flops_per_token
_SCORES_SHARE = _LLAMA8B["attention_scores"] / _LLAMA8B["total"]

QUIZ = Quiz(
    chapter="ch07_production_stacks",
    title="Chapter 7: production stacks, progressive extension and ring attention",
    questions=(
        ChoiceQuestion(
            prompt="(The article's question 1.) Llama 3 was pre-trained at 8K context and extended to 128K. Why is "
            "this progressive approach preferred over training at 128K from the start?",
            options=(
                Option("Almost all training tokens run at 8K, where attention's quadratic term is small and long "
                       "documents are not needed; a short final stage (about 800B of the 15.6T tokens, in six "
                       "length steps) teaches the model to use the new positions", correct=True,
                       explanation="The chapter computes the per-token training FLOPs at 8K and 128K: the saving is "
                       "the attention term, largest for small models, plus the data: long documents are scarce."),
                Option("RoPE cannot represent positions beyond 8K until its base is changed",
                       explanation="RoPE rotates at any position; Llama 3 used base 500,000 from the start of "
                       "pre-training. What it lacks at 8K is training on long distances."),
                Option("Training at 128K needs a different tokenizer",
                       explanation="The tokenizer does not depend on the context length."),
                Option("It makes the KV cache smaller at inference",
                       explanation="The cache at 128K is the same whichever way the model was trained; GQA, not the "
                       "recipe, sets its size."),
            ),
        ),
        NumericQuestion(
            prompt="(The article's question 2.) Mistral 7B uses a 4,096-token sliding window in each of its 32 layers. "
            "How many positions back can information reach the last token through the whole stack (its "
            "receptive field, in tokens)?",
            answer=float(_MISTRAL_REACH),
            rel_tol=0.001,
            unit="tokens",
            explanation="Each layer moves information at most one window back, and the next layer starts from there: "
            "32 x 4,096 = 131,072 under Mistral's own counting (W + 1 keys per query), 32 x 4,095 = 131,040 under "
            "Hugging Face's W keys. That is where influence is possible, not how much arrives: distant tokens pass "
            "through 32 softmax averages, and the model trained on 8,192-token sequences.",
            computed_by="receptive_field_size(4097, 32) - 1 (attention.receptive_field)",
        ),
        ChoiceQuestion(
            prompt="(The article's question 3.) Llama 3 70B uses GQA with 8 KV heads instead of 64. What is the "
            "primary benefit for long-context inference?",
            options=(
                Option("The KV cache is 8x smaller: 8x fewer bytes to hold per token and to read per decoded token, "
                       "so a longer context or a larger batch fits and decoding (memory-bound) is faster",
                       correct=True, explanation="64 / 8 = 8 at every context length; chapter 5 measures it."),
                Option("Attention FLOPs drop 8x",
                       explanation="Every query head still computes its own scores over every key: the FLOPs stay."),
                Option("The model can attend to positions beyond its training length",
                       explanation="That is the position encoding's job (RoPE scaling), not GQA's."),
                Option("Quality improves over multi-head attention",
                       explanation="GQA trades a little quality for memory; it is not an improvement."),
            ),
        ),
        ChoiceQuestion(
            prompt="(The article's question 4.) Which of the following is NOT an open problem in long-context "
            "research as of early 2025?",
            options=(
                Option("Extending a pre-trained 8K model to a 128K window (RoPE scaling and a short continued-training "
                       "stage)", correct=True,
                       explanation="Llama 3.1 shipped it; chapter 2 implements the scaling and chapter 6 repairs "
                       "extrapolation on a tiny model. It is engineering now."),
                Option("Reasoning across many distant passages (multi-hop, synthesis), beyond single-fact retrieval",
                       explanation="Open: needle tests are near-perfect, multi-needle and reasoning tasks are not."),
                Option("Making million-token inference cheap enough for routine use",
                       explanation="Open: the attention FLOPs and the KV cache grow with the context."),
                Option("Benchmarks that measure real long-context use reliably",
                       explanation="Open: needle-in-a-haystack tests one fact at a time."),
            ),
        ),
        NumericQuestion(
            prompt="Ring attention over 4 ranks, causal, 4,096 tokens split into 4 contiguous chunks (the plain "
            "layout). How many times more (query, key) pairs does the busiest rank compute than the least busy one?",
            answer=max(_PLAIN) / min(_PLAIN),
            rel_tol=0.01,
            unit="x",
            explanation="Rank 0 computes only its diagonal chunk (c(c+1)/2 pairs), rank 3 three full chunks and its "
            "diagonal: (3c^2 + c(c+1)/2) / (c(c+1)/2), nearly 2P - 1 = 7. Every step waits for the busiest rank. "
            "The zigzag layout (chunks r and 2P-1-r) gives every rank the same work: ratio "
            f"{max(_ZIGZAG) / min(_ZIGZAG):g}.",
            computed_by="max / min of work_per_rank(4096, 4, 'plain', causal=True) (distributed.layouts)",
        ),
        NumericQuestion(
            prompt="Ring attention over P = 8 devices for one layer with 8 KV heads of dimension 128 in bf16 and a "
            "131,072-token sequence. How many bytes of keys and values does each device receive in one forward pass?",
            answer=float(_RING_BYTES),
            rel_tol=0.001,
            unit="bytes",
            explanation="Each device holds 131,072 / 8 = 16,384 tokens; over P - 1 = 7 steps it receives the other "
            "shards, each 2 (K and V) x 8 heads x 128 x 16,384 x 2 bytes = 64 MiB: 448 MiB, about 470 MB. The volume "
            "per device is (P-1)/P of the whole K/V, almost independent of P: what P buys is compute per step.",
            computed_by="ring_communication(131072, 8, kv_heads=8, head_dim=128, dtype='bf16').forward_bytes",
        ),
        NumericQuestion(
            prompt="Llama 3.1 8B reads token 131,072 (forward pass). What fraction (0-1) of that token's FLOPs are "
            "attention scores and values (q k^T and p v), as the planner counts them?",
            answer=_SCORES_SHARE,
            rel_tol=0.01,
            explanation="4 x 32 layers x 32 heads x 128 x 131,072 = 6.9e10 FLOPs of attention against 1.5e10 for "
            "every weight matrix: at 128K attention is most of the work, at 8K it is a small part.",
            computed_by="plan('llama-3.1-8b', context=131072).flops_per_token: attention_scores / total",
        ),
        ChoiceQuestion(
            prompt="Why does the course implement ring attention itself instead of calling PyTorch's "
            "torch.distributed.tensor.experimental.context_parallel?",
            options=(
                Option("context_parallel swaps in ring versions of the CUDA SDPA kernels only (flash, "
                       "memory-efficient, cuDNN); on a CPU, SDPA runs another kernel, which it does not handle",
                       correct=True,
                       explanation="Its source maps only aten._scaled_dot_product_{flash,efficient,cudnn}_attention "
                       "(and their backwards) to ring implementations; the chapter prints that list."),
                Option("PyTorch has no ring attention at all", explanation="It has one, for those CUDA kernels."),
                Option("gloo cannot send tensors between processes",
                       explanation="The course's ring runs over gloo with isend/irecv."),
                Option("Ring attention gives different results from full attention",
                       explanation="It is exact: the chapter prints its error against full attention."),
            ),
        ),
        ChoiceQuestion(
            prompt="With ring attention and FlashAttention-style tiling inside each device, how does the memory one "
            "device needs for attention scale with the sequence length n and the device count P?",
            options=(
                Option("O(n / P): its query, key and value shards, the block in flight and its outputs; scores exist "
                       "only one tile at a time", correct=True,
                       explanation="Without tiling a step materialises one (n/P) x (n/P) block of scores: O(n^2/P^2)."),
                Option("O(n^2 / P)", explanation="That is each device's share of the score *work* (FLOPs), or what "
                       "it would hold if it kept its queries' scores against all n keys, which a ring never does."),
                Option("O(n^2)", explanation="Nothing in a ring holds all scores."),
                Option("O(n), whatever P", explanation="Each device holds only its 1/P share of the sequence."),
            ),
        ),
    ),
)
