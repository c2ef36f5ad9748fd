"""Chapter 8 quiz: linear attention, Performer, Linformer, selective state spaces, compressive memory, MQAR and
hybrids. Numeric keys are computed by the package (the mixers' state shapes and the decode state measured)."""

import torch

from longctx_lab.course.quiz import ChoiceQuestion, NumericQuestion, Option, Quiz
from longctx_lab.mixers import build_mixer


def _state_numbers(kind: str, d_model: int, n_heads: int, **kw) -> int:
    """Numbers in one mixer layer's decode state for one sequence, counted on the state's tensors."""
    mixer = build_mixer(kind, d_model, n_heads, **kw)
    return mixer.state_bytes(mixer.init_state(1, dtype=torch.float32)) // 4


# Linear attention, 8 heads of 64 (d_model 512): S (64 x 64) and z (64) per head.
_LINEAR = _state_numbers("linear", 512, 8)
# KV cache of one softmax attention layer, same heads, at 4,096 tokens: keys and values, 8 heads x 64 each.
_KV_4096 = 2 * 4096 * 8 * 64
# Selective SSM with d_model 64, expand 2, d_state 16: h (128 x 16) plus the conv's last 3 inputs (128 x 3).
_SSM = _state_numbers("ssm", 64, 1, expand=2, d_state=16)

QUIZ = Quiz(
    chapter="ch08_beyond_attention",
    title="Chapter 8: beyond attention",
    questions=(
        NumericQuestion(
            prompt="A causal linear-attention layer has 8 heads of dimension 64 (feature map elu + 1, so 64 "
            "features). How many numbers does its decode state hold for one sequence (the matrix S and the "
            "normaliser z of every head)?",
            answer=_LINEAR, rel_tol=1e-9,
            explanation=f"Per head S is 64 x 64 = 4,096 and z is 64: 4,160; times 8 heads = {_LINEAR:,}. The "
            "same at token 10 and token 10 million.",
            computed_by="build_mixer('linear', 512, 8).init_state(1), counted"),
        NumericQuestion(
            prompt="The same heads as softmax attention: how many numbers does that layer's KV cache hold after "
            "4,096 tokens (keys and values, 8 heads of 64, no GQA)?",
            answer=_KV_4096, rel_tol=1e-9,
            explanation=f"2 x 4,096 x 8 x 64 = {_KV_4096:,}, about {_KV_4096 / _LINEAR:.0f}x the linear state, "
            "and it grows by 1,024 numbers with every token while the linear state stays put.",
            computed_by="2 * tokens * heads * head_dim"),
        NumericQuestion(
            prompt="A Mamba-style selective SSM layer with d_model 64, expand 2 (128 channels), d_state 16 and a "
            "short convolution of width 4: how many numbers is its decode state (the scan state h and the last "
            "3 inputs the convolution keeps)?",
            answer=_SSM, rel_tol=1e-9,
            explanation=f"h is 128 x 16 = 2,048 and the convolution keeps 128 x 3 = 384: {_SSM:,}.",
            computed_by="build_mixer('ssm', 64, 1, expand=2, d_state=16).init_state(1), counted"),
        ChoiceQuestion(
            prompt="Causal linear attention has a recurrent form (one state update per token) and a chunked form. "
            "Why does training use the chunked one?",
            options=(
                Option("Within a chunk it is dense matrix products (a small masked attention), and the state is "
                       "carried only between chunks: the same numbers with far fewer sequential steps",
                       correct=True, explanation="The recurrence needs n dependent steps; chunks of C need n/C, "
                       "each a few matmuls a GPU runs well. The chapter asserts the two forms agree."),
                Option("The chunked form is more accurate", explanation="Both compute the same sums; they agree to "
                       "rounding (the chapter checks it against float64)."),
                Option("The recurrent form cannot be differentiated", explanation="It can; it is just slow: one "
                       "small step per token, each waiting for the last."),
                Option("The chunked form uses less memory than the state", explanation="It materialises a C x C "
                       "block per chunk on top of the state; its gain is parallelism, not memory."),
            ),
        ),
        ChoiceQuestion(
            prompt="What does Linformer project to a smaller size?",
            options=(
                Option("The sequence axis of keys and values: n positions become k learned mixtures of positions",
                       correct=True, explanation="E K is (k x n)(n x d) = k x d: the feature width d is kept. "
                       "The mixtures include future positions, so it cannot be causal as published."),
                Option("The head dimension of keys and values", explanation="That is what 'lower dimensions' "
                       "suggests, and it is not what Linformer does; the fact-check has the shapes."),
                Option("The number of heads", explanation="That is multi-query or grouped-query attention "
                       "(chapter 5)."),
                Option("The vocabulary", explanation="Linformer changes attention only."),
            ),
        ),
        ChoiceQuestion(
            prompt="Performer's FAVOR+ error against exact softmax attention, as the number of random features m "
            "grows:",
            options=(
                Option("falls roughly as 1/sqrt(m): 4x the features, about half the error", correct=True,
                       explanation="It is a Monte-Carlo estimate of exp(q.k); its standard error shrinks as "
                       "1/sqrt(m). The chapter's figure draws the slope beside the measurement."),
                Option("falls as 1/m", explanation="That would be a deterministic approximation; a random-feature "
                       "average improves only with the square root of the sample count."),
                Option("reaches zero at m = head_dim", explanation="No finite m makes it exact; head_dim is "
                       "where orthogonal features stop being fully orthogonal."),
                Option("does not depend on m", explanation="The figure shows it does."),
            ),
        ),
        ChoiceQuestion(
            prompt="In Zoology's MQAR, why does a model with a fixed-size recurrent state lose accuracy as the number "
            "of key-value pairs grows, while attention does not?",
            options=(
                Option("Every pair must be written into the same fixed state before the queries come; past its "
                       "capacity the stored pairs interfere. Attention keeps every key and value (its cache "
                       "grows), so it can look each one up", correct=True,
                       explanation="Zoology's result: the recurrent models recover with a wider state (a larger "
                       "d_model). In the chapter's record the linear-attention stack shows both trends."),
                Option("Recurrent models cannot learn to copy a token", explanation="They copy well when few "
                       "pairs are stored; the failure depends on how many, not on copying."),
                Option("The queries come too far from the pairs for their positions", explanation="The mixers "
                       "use no positions at all; the limit is the state's size."),
                Option("MQAR's vocabulary is too large for them", explanation="The vocabulary is the same for "
                       "every model; the number of pairs to hold at once is what changes."),
            ),
        ),
        ChoiceQuestion(
            prompt="What does the hybrid (one attention layer on top of a recurrent one) buy?",
            options=(
                Option("Exact look-up where it matters, for a KV cache in one layer only: the recurrent layer "
                       "keeps its constant state, and its decode cost grows only through the attention layer",
                       correct=True, explanation="Jamba and MiniMax-01 keep one softmax layer in eight for this "
                       "reason; the chapter measures the hybrid's state growing at half the attention model's rate "
                       "(one attention layer of two)."),
                Option("A constant decode state", explanation="The attention layer's cache still grows with the "
                       "context; only the recurrent layers are constant."),
                Option("Attention's quality at no memory cost", explanation="It pays the KV cache of its "
                       "attention layers."),
                Option("It removes the need for positions", explanation="The attention layer still uses RoPE."),
            ),
        ),
        ChoiceQuestion(
            prompt="An Infini-attention memory M is head_dim x head_dim. What happens to recall of the oldest "
            "segment as more segments are written into it?",
            options=(
                Option("It falls: every segment adds its keys' outer products to the same matrix, and past "
                       "about head_dim stored keys they overlap", correct=True,
                       explanation="The chapter's recall curve measures it: perfect for one segment, falling as "
                       "the count of stored pairs passes the memory's dimension."),
                Option("It stays perfect because M is normalised", explanation="The normaliser z rescales the "
                       "read-out; it cannot separate keys that overlap."),
                Option("It rises, since the memory has seen more data", explanation="More writes add "
                       "interference, not information about the old pairs."),
                Option("It is unchanged because old segments are evicted", explanation="Nothing is evicted: "
                       "the linear update only adds."),
            ),
        ),
        ChoiceQuestion(
            prompt="A document is 14 times longer than a model's context. With a prompt budget of about 1,000 "
            "tokens, why can BM25 retrieval answer questions about it that truncation cannot?",
            options=(
                Option("Truncation keeps only the document's first tokens, so a fact further in never reaches the "
                       "model; retrieval ranks every chunk against the question and keeps the best, wherever it "
                       "lies", correct=True,
                       explanation="In the chapter's record truncation of the long document had the fact in "
                       "its prompt for no question, retrieval for every one, at about the same prompt length."),
                Option("Retrieval lets the model attend beyond its trained context", explanation="The prompt "
                       "is still within the budget; retrieval changes what is in it, not how far the model "
                       "can attend."),
                Option("BM25 understands the question's meaning", explanation="BM25 only counts shared words, "
                       "weighting rare ones (the subject's colour and object) most; that is enough here because "
                       "the question repeats the fact's words."),
                Option("Retrieval prompts are always longer, so they hold more", explanation="They were about "
                       "as long as the truncated prompts; what differs is which text they hold."),
            ),
        ),
    ),
)
