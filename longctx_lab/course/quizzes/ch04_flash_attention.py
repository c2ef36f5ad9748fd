"""Chapter 4 quiz: FlashAttention. Numeric keys are computed by the package (attention.*, cost)."""

import torch

from longctx_lab.attention.block_sparsity import EMPTY, classify_blocks
from longctx_lab.attention.mask_predicates import causal_predicate
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
_SNIPPET_WEIGHT = snippet_error(1000, 8, 96)["snippet_row_weight_sum"]
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
                       explanation="The rescale depends on how far the max moved, not on how many blocks came "
                       "before. (The articles' snippet does not divide either: it sums the tiles' outputs, so "
                       "a row's weights add up to the number of tiles.)"),
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
            prompt="A tiled loop that takes an ordinary softmax inside each key tile and adds the tiles' outputs, "
            "run with 1,000 keys in tiles of 96: what do one query row's attention weights add up to?",
            answer=_SNIPPET_WEIGHT,
            rel_tol=0.001,
            explanation="One per key tile: 1000 / 96 rounds up to 11 tiles (the last one holds only 40 keys), and "
            "each tile's softmax sums to 1 on its own, however small its scores. Exact attention sums to 1.",
            computed_by="snippet_error(1000, 8, 96)['snippet_row_weight_sum']",
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
            prompt="In the backward pass, each entry of a softmax row's gradient needs delta_i = sum_j P_ij dP_ij, "
            "a sum over the whole row. Why can a FlashAttention backward still process one tile at a time?",
            options=(
                Option("Because delta_i equals dO_i . O_i, which a pre-pass computes from the output and its "
                       "gradient, before any tile is visited", correct=True,
                       explanation="The P-weighted average of the V_j is the output row O_i, so the P-weighted "
                       "average of dP_ij = dO_i . V_j is dO_i . O_i: two vectors of length d."),
                Option("Because delta_i is zero: a softmax row sums to 1, so the term cancels",
                       explanation="The P_ij sum to 1, but P_ij dP_ij need not: delta is generally non-zero."),
                Option("It cannot: the backward stores the full n x n matrix P after all",
                       explanation="It stores only one LSE per row and rebuilds each P tile from it."),
                Option("Each tile uses its own partial sum over its keys, and the errors cancel over tiles",
                       explanation="A partial sum over one tile's keys gives a wrong gradient; nothing cancels it."),
            ),
        ),
        ChoiceQuestion(
            prompt="A Triton program loads a row of 5 scores into 8 lanes with a mask. Which value must the 3 "
            "masked lanes load (the 'other' argument of tl.load) for the row softmax to be right?",
            options=(
                Option("-inf", correct=True,
                       explanation="It never wins the max, and exp(-inf - m) = 0 adds nothing to the sum."),
                Option("0", explanation="exp(0 - m) is positive, so each padding lane would steal weight; and "
                       "0 becomes the max of a row of negative scores."),
                Option("+inf", explanation="It would become the max, and inf - inf gives NaN."),
                Option("Anything: masked lanes are ignored by tl.max and tl.sum",
                       explanation="The mask only guards the memory access; the lanes still hold the 'other' "
                       "value and take part in every reduction."),
            ),
        ),
        ChoiceQuestion(
            prompt="Tiled forward, causal mask off: you double the query tile from 64 to 128 rows and keep the key "
            "tile. What happens to the HBM bytes read for K and V?",
            options=(
                Option("They roughly halve", correct=True,
                       explanation="K and V are read once per query tile; half as many query tiles, half the "
                       "re-reads. (The tiles must still fit in SRAM, which bounds how far this goes.)"),
                Option("They double", explanation="Bigger query tiles mean fewer of them, not more K/V reads."),
                Option("Nothing: each K/V element is read once in any case",
                       explanation="Only if a single query tile covered all rows; otherwise K/V are re-read per "
                       "query tile."),
                Option("They halve, and so do the FLOPs",
                       explanation="The FLOPs are 4 n^2 d whatever the tiling; only the traffic changes."),
            ),
        ),
    ),
)
