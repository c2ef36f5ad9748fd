"""Chapter 4 quiz: FlashAttention. Numeric keys are computed by the package (attention.*, cost)."""

import torch

from longctx_lab.attention.block_sparsity import EMPTY, classify_blocks
from longctx_lab.attention.mask_predicates import causal_predicate, sliding_window_predicate
from longctx_lab.attention.naive_tiled_snippet import snippet_error
from longctx_lab.attention.online_softmax import SoftmaxState, finalize, merge_states
from longctx_lab.attention.tiled import tiled_hbm_bytes
from longctx_lab.core.cost import attention_flops
from longctx_lab.course.claim_sets.ch04_flash_attention import recomputation_flops_ratio
from longctx_lab.course.quiz import ChoiceQuestion, NumericQuestion, Option, Quiz


def _merged_lse() -> float:
    a = SoftmaxState(torch.tensor([2.0], dtype=torch.float64), torch.tensor([3.0], dtype=torch.float64), None)
    b = SoftmaxState(torch.tensor([5.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64), None)
    return float(finalize(merge_states(a, b))[1])


_CAUSAL_TILES = int((classify_blocks(causal_predicate(), 128, q_len=4096) != EMPTY).sum())
_WINDOW_TILES = classify_blocks(sliding_window_predicate(256), 64, q_len=2048)
_WINDOW_TILES_LAST_ROW = int((_WINDOW_TILES[-1] != EMPTY).sum())
_INTENSITY = attention_flops(8192, 128) / tiled_hbm_bytes(8192, head_dim=128, block_q=128, block_k=64)

QUIZ = Quiz(
    chapter="ch04_flash_attention",
    title="Chapter 4: FlashAttention",
    questions=(
        ChoiceQuestion(
            prompt="A row's running max is m and running sum l = sum exp(s_j - m). The next block raises the max "
            "to m' > m. Before adding the new block's terms, the old sum must be...",
            options=(
                Option("multiplied by exp(m - m')", correct=True,
                       explanation="Each old term exp(s_j - m) becomes exp(s_j - m') = exp(s_j - m) exp(m - m')."),
                Option("multiplied by exp(m' - m)", explanation="That would make old terms larger; they shrink."),
                Option("left alone: the sum is corrected once at the end",
                       explanation="Terms measured against different maxima cannot simply be added."),
                Option("divided by the number of blocks seen so far",
                       explanation="That is the articles' wrong snippet, roughly: block counts are not weights."),
            ),
        ),
        NumericQuestion(
            prompt="Two partial softmax states over disjoint keys: (m = 2, l = 3) and (m = 5, l = 1). What is the "
            "log-sum-exp over all the keys?",
            answer=_merged_lse(),
            rel_tol=0.005,
            explanation="m = 5 and l = 3 exp(2 - 5) + 1 exp(0), so lse = 5 + log(1 + 3 e^-3).",
            computed_by="finalize(merge_states(SoftmaxState(2, 3), SoftmaxState(5, 1)))[1]",
        ),
        NumericQuestion(
            prompt="The articles' tiled snippet (softmax inside each block, outputs added) with n = 512 and "
            "block_size = 128: what do a query row's attention weights add up to?",
            answer=snippet_error(512, 64, 128)["snippet_row_weight_sum"],
            rel_tol=0.001,
            explanation="One per key block: each block's softmax sums to 1 and there are 4 key blocks.",
            computed_by="snippet_error(512, 64, 128)['snippet_row_weight_sum']",
        ),
        NumericQuestion(
            prompt="Causal self-attention, n = 4096, 128 x 128 tiles. How many of the 1,024 tiles does the forward "
            "kernel load (the rest are skipped)?",
            answer=float(_CAUSAL_TILES),
            rel_tol=0.001,
            explanation="The 32 x 32 grid's lower triangle with its diagonal: 32 * 33 / 2. Only the 32 diagonal "
            "tiles need an element-wise mask.",
            computed_by="(classify_blocks(causal_predicate(), 128, q_len=4096) != EMPTY).sum()",
        ),
        NumericQuestion(
            prompt="Causal sliding window w = 256 (flash-attn window_size=(255, 0)), 64 x 64 tiles, n = 2048. How "
            "many key tiles does the last query block visit?",
            answer=float(_WINDOW_TILES_LAST_ROW),
            rel_tol=0.001,
            explanation="Its rows see keys from p - 255 to p: the diagonal tile, three full tiles and one partial "
            "tile at the far edge of the window.",
            computed_by="(classify_blocks(sliding_window_predicate(256), 64, q_len=2048)[-1] != EMPTY).sum()",
        ),
        NumericQuestion(
            prompt="Tiled forward, one head, n = 8192, d = 128, fp16, block_q = 128: forward FLOPs per byte of HBM "
            "traffic (the arithmetic intensity)?",
            answer=_INTENSITY,
            rel_tol=0.02,
            unit="FLOP/byte",
            explanation="K and V are re-read once per query block, so bytes ~ 4 n^2 d / block_q while FLOPs = "
            "4 n^2 d: the intensity is about block_q, close to an A100's ridge point. Textbook attention, which "
            "writes and re-reads the n x n matrix, sits near d/2.",
            computed_by="attention_flops(8192, 128) / tiled_hbm_bytes(8192, head_dim=128, block_q=128)",
        ),
        NumericQuestion(
            prompt="Forward + backward FLOPs of FlashAttention (recomputing S in the backward pass) divided by "
            "forward + backward FLOPs of attention that stores P?",
            answer=recomputation_flops_ratio(),
            rel_tol=0.01,
            explanation="3.5 / 3: one extra matmul (S = QK^T) out of six. Not the 'doubling' one article claims.",
            computed_by="recomputation_flops_ratio()",
        ),
        ChoiceQuestion(
            prompt="What does the tiled forward save for the backward pass?",
            options=(
                Option("Q, K, V, the output O and one log-sum-exp per query row", correct=True,
                       explanation="From the LSE, P_ij = exp(s_ij - lse_i) is rebuilt tile by tile."),
                Option("the n x n probability matrix P, in fp16 to save space",
                       explanation="That is O(n^2) memory: exactly what FlashAttention avoids."),
                Option("only Q, K and V: the backward reruns the whole forward",
                       explanation="It could, but the LSE (n numbers) saves the pass that finds each row's max/sum."),
            ),
        ),
        ChoiceQuestion(
            prompt="Grouped-query attention with 32 query heads and 8 KV heads: how does the kernel find the K/V "
            "of query head 13?",
            options=(
                Option("It reads KV head 13 // 4 = 3 directly; K/V are never copied", correct=True,
                       explanation="Query heads 12-15 share KV head 3; its gradients are summed over those 4."),
                Option("K and V are repeat_interleave'd to 32 heads first, then head 13 is read",
                       explanation="Correct values, but it copies K/V 4x in HBM: what GQA is meant to avoid."),
                Option("It reads KV head 13 % 8 = 5",
                       explanation="That is the 'repeat' (tiled) order, not repeat_interleave: wrong heads."),
            ),
        ),
        ChoiceQuestion(
            prompt="Causal attention with q_len = 12 > kv_len = 5 (bottom-right aligned). What do the first 7 query "
            "rows get?",
            options=(
                Option("Output zeros and LSE = -inf: they sit before key 0 and see no key", correct=True,
                       explanation="Documented and tested: no NaN, zero gradients. LSE = -inf (the log of an empty "
                       "sum) is this course's choice; flash-attn's forward also writes zeros but stores LSE = +inf."),
                Option("NaN, as softmax of an all -inf row", explanation="A kernel must never return NaN silently."),
                Option("The mean of V", explanation="That would be attention with all scores equal, not no keys."),
            ),
        ),
    ),
)
