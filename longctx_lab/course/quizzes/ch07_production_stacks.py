"""Chapter 7 quiz: production long-context stacks, progressive extension, ring attention. Numeric keys are
computed by the package (planner, distributed.layouts, distributed.cost_model). Three questions are the quiz of
"How Do Production Models Handle Long Context?", answered correctly; its question 2 (Mistral's receptive field)
is chapter 3's."""

from longctx_lab.course.quiz import ChoiceQuestion, NumericQuestion, Option, Quiz
from longctx_lab.distributed.cost_model import min_block_tokens, ring_communication
from longctx_lab.distributed.layouts import work_per_rank
from longctx_lab.lm.hf.planner import plan

_PLAIN = work_per_rank(8192, 8, "plain", causal=True)
_ZIGZAG = work_per_rank(8192, 8, "zigzag", causal=True)

# One ring-attention forward of one layer: each of P ranks receives the K and V shards of the P - 1 others.
_P, _N = 8, 131_072
_RING_BYTES = ring_communication(_N, _P, kv_heads=8, head_dim=128, dtype="bf16").forward_bytes

_LLAMA8B = plan("llama-3.1-8b", context=131_072).flops_per_token
_ATTENTION = _LLAMA8B["attention_proj"] + _LLAMA8B["attention_scores"]
_SHARE = _ATTENTION / (_ATTENTION + _LLAMA8B["mlp"])  # the chapter's one "attention share" (section 2)

# c*: tokens per device above which a ring step's K/V transfer hides behind its attention. 8 of 32 heads share
# K/V (GQA) vs every head its own: the message per token shrinks 4x, so does c*.
_CSTAR = {kv: min_block_tokens(flops_per_s=400e12, bandwidth=100e9, heads=32, kv_heads=kv) for kv in (32, 8)}

QUIZ = Quiz(
    chapter="ch07_production_stacks",
    title="Chapter 7: production stacks, progressive extension and ring attention",
    questions=(
        ChoiceQuestion(
            prompt="(The article's question 1.) Llama 3 was pre-trained at 8K context and extended to 128K. Why is "
            "this progressive approach preferred over training at 128K from the start?",
            options=(
                Option("Almost all training tokens run at 8K, where attention's quadratic term is small and long "
                       "documents are not needed; a short final stage (about 800B tokens after the 15.6T of 8K "
                       "pre-training, in six length steps) teaches the model to use the new positions", correct=True,
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
            prompt="Ring attention over 8 ranks, causal, 8,192 tokens split into 8 contiguous chunks (the plain "
            "layout). How many times more (query, key) pairs does the busiest rank compute than the least busy one?",
            answer=max(_PLAIN) / min(_PLAIN),
            rel_tol=0.01,
            unit="x",
            explanation="Rank 0 computes only its diagonal chunk (c(c+1)/2 pairs), rank 7 seven full chunks and its "
            "diagonal: (7c^2 + c(c+1)/2) / (c(c+1)/2), nearly 2P - 1 = 15. Every step waits for the busiest rank. "
            "The zigzag layout (chunks r and 2P-1-r) gives every rank the same work: ratio "
            f"{max(_ZIGZAG) / min(_ZIGZAG):g}.",
            computed_by="max / min of work_per_rank(8192, 8, 'plain', causal=True) (distributed.layouts)",
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
            prompt="Llama 3.1 8B reads token 131,072 (forward pass). What is attention's share (0-1) of that token's "
            "FLOPs, as section 2 defines it: attention (its Q/K/V/O projections plus q k^T and p v) over attention "
            "plus MLP, as the planner counts them?",
            answer=_SHARE,
            rel_tol=0.01,
            explanation="Scores and values: 4 x 32 layers x 32 heads x 128 x 131,072 = 6.9e10 FLOPs; projections "
            "2.7e9; MLP 1.1e10. (6.9e10 + 2.7e9) / (that + 1.1e10) = 0.86: at 128K attention is most of the work, "
            "at 8K a small part.",
            computed_by="attention_share_curve('llama3.1-8b', [131072]) (plan(...).flops_per_token: "
            "(attention_proj + attention_scores) / (those + mlp))",
        ),
        ChoiceQuestion(
            prompt="Two devices each computed softmax attention of the same query over half of the keys, giving "
            "(out_a, lse_a) and (out_b, lse_b), with lse_b = lse_a + 2. How should the two outputs be combined?",
            options=(
                Option("Weight them by exp(lse - lse_total): out_b gets e^2 / (1 + e^2), about 0.88, and out_a the "
                       "rest", correct=True,
                       explanation="Each partial output is normalised over its own keys; its share of the full "
                       "softmax is its block's sum of exponentials, exp(lse), over the total. Here b's keys hold "
                       "e^2 times a's mass."),
                Option("Average them, (out_a + out_b) / 2",
                       explanation="Right only when the two blocks carry the same softmax mass (lse_a = lse_b); "
                       "here it gives a's keys far too much weight."),
                Option("Add them, out_a + out_b",
                       explanation="Each partial output is already a weighted average (weights summing to 1); the "
                       "sum double-counts, with total weight 2."),
                Option("Keep the one with the larger lse",
                       explanation="That drops a's keys entirely; they still hold 1 / (1 + e^2) of the mass."),
            ),
        ),
        NumericQuestion(
            prompt="A ring step hides its K/V transfer when a device holds at least c* tokens. For 32 query heads, "
            "bf16, 400 TFLOP/s of attention and a 100 GB/s link, c* is "
            f"{_CSTAR[32]:,.0f} tokens with 32 KV heads (no GQA). What is c* with 8 KV heads (GQA), all else equal?",
            answer=_CSTAR[8],
            rel_tol=0.01,
            unit="tokens",
            explanation="The attention work per step depends on the 32 query heads and does not change; the message "
            "is the block's K and V, which shrinks 4x with 8 KV heads. c* is proportional to kv_heads / heads, so it "
            f"falls 4x, to {_CSTAR[8]:,.0f} tokens: GQA makes the ring's communication easier to hide.",
            computed_by="min_block_tokens(flops_per_s=400e12, bandwidth=100e9, heads=32, kv_heads=8)",
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
