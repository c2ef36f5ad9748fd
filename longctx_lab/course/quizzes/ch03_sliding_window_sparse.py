"""Chapter 3 quiz. Numeric keys (and the numbers in their explanations) are computed by the package, so they
can never drift from the text; the sizes differ from the chapter's own examples, so an answer is worked out,
not recalled."""

from longctx_lab.attention.block_sparsity import classify_blocks
from longctx_lab.attention.mask_predicates import sliding_window_predicate
from longctx_lab.attention.receptive_field import receptive_field_size
from longctx_lab.attention.sparse_cost import window_reduction
from longctx_lab.core.cost import GB, attended_pairs, kv_cache_bytes
from longctx_lab.course.quiz import ChoiceQuestion, NumericQuestion, Option, Quiz
from longctx_lab.kvcache.rolling import rolling_slot

# A hypothetical model for the memory question: 40 layers, 8 KV heads of 128 dims, a window of 8,192, bf16.
_MODEL = {"n_layers": 40, "n_kv_heads": 8, "head_dim": 128, "dtype": "bf16"}
_WINDOW = 8192


def _tiles_visited_per_query_block(window: int = 64, block: int = 128, n: int = 1024) -> int:
    classes = classify_blocks(sliding_window_predicate(window), block, q_len=n)
    return int((classes[-1] > 0).sum())  # the last query block, far from the start


def _rolling_gb(tokens: int) -> float:
    return kv_cache_bytes(min(tokens, _WINDOW), **_MODEL) / GB


_SPAN = receptive_field_size(512, 12)
_REDUCTION = window_reduction(100_000, 1000)

QUIZ = Quiz(
    chapter="ch03_sliding_window_sparse",
    title="Chapter 3: sliding-window and sparse attention",
    questions=(
        NumericQuestion(
            prompt="A causal sliding window of w = 4 keys (query p sees p - 4 < j <= p) over n = 16 tokens: how many "
            "(query, key) pairs are attended?",
            answer=attended_pairs(16, causal=True, window=4),
            rel_tol=1e-9,
            explanation=f"Queries 0, 1, 2 see 1, 2, 3 keys; the other 13 see 4: 6 + 52 = "
            f"{attended_pairs(16, causal=True, window=4)}. (n w = 64 forgets that the first w - 1 queries see "
            "fewer keys.)",
            computed_by="attended_pairs(16, causal=True, window=4)",
        ),
        NumericQuestion(
            prompt="12 stacked layers, each with a causal window of 512 keys (itself and the 511 before it), with "
            "residual connections. Far from the start of the sequence, how many input positions can the last "
            "layer's output at one position depend on?",
            answer=_SPAN,
            rel_tol=1e-9,
            unit="positions",
            explanation=f"Each layer reaches w - 1 = 511 positions further back: 12 x 511 + 1 = {_SPAN:,}. "
            f"L x w = {12 * 512:,} counts the query's own position once per layer.",
            computed_by="receptive_field_size(512, 12)",
        ),
        NumericQuestion(
            prompt="A rolling-buffer KV cache with w = 4,096 slots writes token t to slot t mod w. Which slot holds "
            "token 10,000?",
            answer=rolling_slot(10_000, 4096),
            rel_tol=1e-9,
            explanation=f"10,000 - 2 x 4,096 = {rolling_slot(10_000, 4096):,}. It overwrote token 5,904, which no "
            "query from 10,000 on can see.",
            computed_by="rolling_slot(10_000, 4096)",
        ),
        NumericQuestion(
            prompt="A model with 40 layers, 8 KV heads of dimension 128 and a causal window of 8,192 keys in every "
            "layer stores its KV cache in bf16 (2 bytes) in a rolling buffer. How many GB (1e9 bytes) does the "
            "buffer take for one 1,000,000-token sequence?",
            answer=_rolling_gb(1_000_000),
            unit="GB",
            explanation=f"K and V: 2 x 40 x 8 x 128 x 8,192 x 2 bytes = {_rolling_gb(1_000_000):.3f} GB, the same "
            f"at 10,000 tokens or 10 million: only the last 8,192 are kept. A full cache at 1M tokens would take "
            f"{kv_cache_bytes(1_000_000, **_MODEL) / GB:.0f} GB.",
            computed_by="kv_cache_bytes(8192, n_layers=40, n_kv_heads=8, head_dim=128, dtype='bf16') / 1e9",
        ),
        NumericQuestion(
            prompt="A decoder (causal) LM at n = 100,000 tokens switches from causal attention to a causal window of "
            "1,000 keys. By what factor does the number of attended pairs drop?",
            answer=_REDUCTION,
            rel_tol=0.01,
            unit="x",
            explanation=f"n(n+1)/2 over n w - w(w-1)/2: about {_REDUCTION:.0f}x. Dividing n^2 by n w gives 100x, "
            "which compares with full attention, a baseline a decoder never pays.",
            computed_by="window_reduction(100_000, 1000)",
        ),
        NumericQuestion(
            prompt="A tiled kernel uses 128 x 128 tiles and a causal window of 64 keys. Far from the start, how many "
            "key tiles does one query tile have to compute (partial or full)?",
            answer=_tiles_visited_per_query_block(),
            rel_tol=1e-9,
            explanation=f"{_tiles_visited_per_query_block()}: the diagonal tile, and the previous one, since the "
            "tile's first rows reach up to 63 positions back into it. So 256 keys are computed per query where 64 "
            "are kept: the band cuts diagonally through every tile it touches.",
            computed_by="classify_blocks(sliding_window_predicate(64), 128, q_len=1024)[-1]",
        ),
        ChoiceQuestion(
            prompt="Why is the effective range of a stack of sliding-window layers shorter than L(w - 1) + 1?",
            options=(
                Option("Influence from far away must pass through L softmax averages and is diluted at each hop",
                       correct=True, explanation="The span is where influence is possible; the gradients measured "
                       "in the chapter concentrate near the query."),
                Option("Because tokens beyond w are masked to exactly zero at every layer",
                       explanation="Only within one layer; the next layer reads tokens that have already read "
                       "further back, so stacked layers do reach the whole span (the gradient's support is the "
                       "full span)."),
                Option("Because of numerical underflow in fp16",
                       explanation="The chapter measures it in float64, where nothing underflows; the fall-off "
                       "comes from the averaging, not the arithmetic."),
            ),
        ),
        ChoiceQuestion(
            prompt="Three documents are packed into one training sequence with a causal document mask. "
            "Which keys does the query at position p see?",
            options=(
                Option("Keys j <= p that belong to the same document as p", correct=True,
                       explanation="The document mask and the causal mask, intersected."),
                Option("Every key j <= p", explanation="That is plain causal attention: it reads across documents."),
                Option("Every key of its own document, before and after p",
                       explanation="That is the bidirectional document mask, without causality."),
            ),
        ),
        ChoiceQuestion(
            prompt="BigBird's attention pattern combines which parts?",
            multiple=True,
            options=(
                Option("A sliding window of neighbouring blocks", correct=True,
                       explanation="Local context, as in a sliding window, but in whole blocks of tokens, so the "
                       "tiles it keeps are full."),
                Option("A few global blocks that see and are seen by everything", correct=True,
                       explanation="They give every pair of tokens a two-hop path, through a global token."),
                Option("Random key blocks per query block, fixed by a seed", correct=True,
                       explanation="Each query block also reads a few random key blocks: short paths across the "
                       "sequence, at the price of scattered memory reads and a cache that must keep every token."),
                Option("A low-rank projection of the keys",
                       explanation="That is Linformer, which compresses keys and values along the sequence; "
                       "BigBird keeps exact attention over a sparse set of keys."),
            ),
        ),
        ChoiceQuestion(
            prompt="A model trained with full attention is served with a rolling-buffer cache of a few thousand "
            "slots. Its outputs degrade badly once the text outgrows the buffer, and keeping the first 4 tokens "
            "in the cache for good repairs most of the damage. Why?",
            options=(
                Option("Its heads park softmax weight on the first tokens; evicted, that weight spreads over the "
                       "recent tokens and every output shifts", correct=True,
                       explanation="Softmax weights must sum to 1; the first tokens were visible to every query in "
                       "training, so the model learned to dump unneeded weight there. These are attention sinks."),
                Option("The first tokens hold the instruction, which the model needs to answer",
                       explanation="Sinks work whatever the first tokens say; the chapter's sink has a zero value and "
                       "carries no content. What matters is where the weight can be parked."),
                Option("The rolling buffer computes attention incorrectly once it wraps around",
                       explanation="It computes exactly the window attention it claims (the chapter asserts it); "
                       "the problem is that the model was trained with different attention, which read token 0."),
            ),
        ),
    ),
)
