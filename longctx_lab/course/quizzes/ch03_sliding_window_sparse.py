"""Chapter 3 quiz. Numeric keys are computed by the package, so they can never drift from the text."""

from longctx_lab.attention.block_sparsity import classify_blocks
from longctx_lab.attention.mask_predicates import sliding_window_predicate
from longctx_lab.attention.receptive_field import receptive_field_size
from longctx_lab.attention.sparse_cost import window_reduction
from longctx_lab.core.configs import MISTRAL_7B
from longctx_lab.core.cost import GB, attended_pairs, kv_cache_bytes_for
from longctx_lab.course.quiz import ChoiceQuestion, NumericQuestion, Option, Quiz
from longctx_lab.kvcache.rolling import rolling_slot


def _tiles_visited_per_query_block(window: int = 64, block: int = 128, n: int = 1024) -> int:
    classes = classify_blocks(sliding_window_predicate(window), block, q_len=n)
    return int((classes[-1] > 0).sum())  # the last query block, far from the start


QUIZ = Quiz(
    chapter="ch03_sliding_window_sparse",
    title="Chapter 3: sliding-window and sparse attention",
    questions=(
        NumericQuestion(
            prompt="A causal sliding window of w = 4 keys (query p sees p - 4 < j <= p) over n = 16 tokens: how many "
            "(query, key) pairs are attended?",
            answer=attended_pairs(16, causal=True, window=4),
            rel_tol=1e-9,
            explanation="n w - w(w - 1)/2 = 64 - 6 = 58: the first w - 1 queries see fewer than w keys.",
            computed_by="attended_pairs(16, causal=True, window=4)",
        ),
        NumericQuestion(
            prompt="32 stacked layers, each with a causal window of 4,096 keys (itself and the 4,095 before it). How "
            "many input positions can the last output depend on, far from the start of the sequence?",
            answer=receptive_field_size(4096, 32),
            rel_tol=1e-9,
            unit="positions",
            explanation="Each layer reaches back w - 1 positions: L(w - 1) + 1 = 131,041, not L x w = 131,072.",
            computed_by="receptive_field_size(4096, 32)",
        ),
        NumericQuestion(
            prompt="A rolling-buffer KV cache with w = 4,096 slots writes token t to slot t mod w. Which slot holds "
            "token 10,000?",
            answer=rolling_slot(10_000, 4096),
            rel_tol=1e-9,
            explanation="10,000 - 2 x 4,096 = 1,808. It overwrote token 5,904, which no query from 10,000 on can see.",
            computed_by="rolling_slot(10_000, 4096)",
        ),
        NumericQuestion(
            prompt="Mistral 7B (32 layers, 8 KV heads, head dim 128, window 4,096), fp16: how many GB (1e9 bytes) "
            "does its rolling KV cache take for one 1,000,000-token sequence?",
            answer=kv_cache_bytes_for(MISTRAL_7B, 1_000_000, dtype="fp16") / GB,
            unit="GB",
            explanation="2 x 32 x 8 x 128 x 4,096 x 2 bytes = 0.537 GB, whatever the length (the article's 2.1 GB "
            "assumes 32 KV heads).",
            computed_by="kv_cache_bytes_for(MISTRAL_7B, 1_000_000, dtype='fp16') / 1e9",
        ),
        NumericQuestion(
            prompt="A decoder (causal) LM at n = 200,000 tokens switches from causal attention to a causal window of "
            "512 keys. By what factor does the number of attended pairs drop?",
            answer=window_reduction(200_000, 512),
            rel_tol=0.01,
            unit="x",
            explanation="n(n+1)/2 over n w - w(w-1)/2: about 196x, half the '400x' that compares with full n^2.",
            computed_by="window_reduction(200_000, 512)",
        ),
        NumericQuestion(
            prompt="A tiled kernel uses 128 x 128 tiles and a causal window of 64 keys. Far from the start, how many "
            "key tiles does one query tile have to compute (partial or full)?",
            answer=_tiles_visited_per_query_block(),
            rel_tol=1e-9,
            explanation="Rows of a query tile reach back up to 63 positions, into the previous key tile: 2 tiles, "
            "i.e. 256 keys computed per query where 64 are kept.",
            computed_by="classify_blocks(sliding_window_predicate(64), 128, q_len=1024)[-1]",
        ),
        ChoiceQuestion(
            prompt="Why is the effective range of a stack of sliding-window layers shorter than L(w - 1) + 1?",
            options=(
                Option("Influence from far away must pass through L softmax averages and is diluted at each hop",
                       correct=True, explanation="The span is where influence is possible; the gradients measured "
                       "in the chapter concentrate near the query."),
                Option("Because tokens beyond w are masked to exactly zero at every layer",
                       explanation="Only in one layer; stacked layers do reach further."),
                Option("Because of numerical underflow in fp16", explanation="The chapter measures it in float64."),
            ),
        ),
        ChoiceQuestion(
            prompt="Three documents are packed into one training sequence with a causal document mask. "
            "Which keys does the query at position p see?",
            options=(
                Option("Keys j <= p that belong to the same document as p", correct=True,
                       explanation="The document mask and the causal mask, intersected (and_masks)."),
                Option("Every key j <= p", explanation="That is plain causal attention: it reads across documents."),
                Option("Every key of its own document, before and after p",
                       explanation="That is the bidirectional document mask, without causality."),
            ),
        ),
        ChoiceQuestion(
            prompt="BigBird's attention pattern combines which parts?",
            multiple=True,
            options=(
                Option("A sliding window of neighbouring blocks", correct=True),
                Option("A few global blocks that see and are seen by everything", correct=True),
                Option("Random key blocks per query block, fixed by a seed", correct=True),
                Option("A low-rank projection of the keys", explanation="That is Linformer."),
            ),
        ),
    ),
)
