"""Chapter 2 quiz: RoPE and context extension. Numeric keys are computed by longctx_lab.rope."""

from collections import Counter

from longctx_lab import rope
from longctx_lab.course.quiz import ChoiceQuestion, NumericQuestion, Option, Quiz

_LLAMA31 = rope.llama3_rope(128, 500_000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                            original_max_position_embeddings=8192)[0]
_LLAMA31_KEPT = Counter(rope.classify_pairs(_LLAMA31, rope.default_rope(128, 500_000.0)[0], 8.0))["extrapolate"]
_DEFAULT_4K = rope.default_rope(128, 10_000.0)[0]

QUIZ = Quiz(
    chapter="ch02_rope_scaling",
    title="Chapter 2: RoPE and context extension",
    questions=(
        ChoiceQuestion(
            prompt="With RoPE, the score between a query at position m and a key at position n depends on...",
            options=(
                Option("only m - n (and the two vectors)", correct=True,
                       explanation="R(m)^T R(n) = R(n - m): rotations compose, so only the offset survives."),
                Option("m and n separately, like an added absolute embedding",
                       explanation="That is what additive (learned or sinusoidal) embeddings do."),
                Option("only max(m, n)", explanation="No: shift both positions by t and the score is unchanged."),
            ),
        ),
        NumericQuestion(
            prompt="Head dim 128, base 10,000, trained on 4,096 tokens. How many of the 64 frequency pairs never "
            "complete one full turn within the training context?",
            answer=float((rope.turns_in_context(_DEFAULT_4K, 4096) < 1).sum()),
            rel_tol=0.001,
            explanation="Those are the pairs whose wavelength 2*pi*base^(2i/d) exceeds 4,096 tokens: past 4K they "
            "meet angles training never produced.",
            computed_by="(turns_in_context(default_rope(128)[0], 4096) < 1).sum()",
        ),
        ChoiceQuestion(
            prompt="Position Interpolation (linear scaling) at factor s is exactly...",
            options=(
                Option("default RoPE evaluated at positions m / s", correct=True,
                       explanation="Dividing every frequency by s multiplies every angle m*theta by 1/s."),
                Option("default RoPE with the base multiplied by s",
                       explanation="That slows the pairs by different amounts (pair 0 not at all)."),
                Option("default RoPE with attention logits divided by s", explanation="PI does not touch logits."),
            ),
        ),
        NumericQuestion(
            prompt="Static NTK-aware scaling for head dim 128, base 10,000, factor 8: what is the new base?",
            answer=rope.ntk_base(10_000.0, 8.0, 128),
            rel_tol=0.01,
            explanation="base * s^(d/(d-2)): the slowest pair turns exactly s times slower, pair 0 not at all.",
            computed_by="ntk_base(10_000, 8, 128)",
        ),
        ChoiceQuestion(
            prompt="Which pairs does YaRN leave unchanged?",
            options=(
                Option("Those that turn more than beta_fast (32) times within the original context", correct=True,
                       explanation="They have seen every angle many times: extrapolating them is safe."),
                Option("Those that turn less than once within the original context",
                       explanation="Those are fully interpolated (divided by the factor)."),
                Option("None: YaRN divides every frequency by the factor, then rescales the logits",
                       explanation="That would be PI plus a temperature; YaRN interpolates by parts."),
            ),
        ),
        NumericQuestion(
            prompt="YaRN at factor 16: by what factor are the attention logits multiplied (1/t)?",
            answer=rope.yarn_attention_factor(16.0) ** 2,
            rel_tol=0.01,
            explanation="sqrt(1/t) = 0.1 ln(16) + 1 multiplies both q and k, so logits get (0.1 ln 16 + 1)^2.",
            computed_by="yarn_attention_factor(16) ** 2",
        ),
        NumericQuestion(
            prompt="Llama 3.1 (head dim 128, base 500,000, 'llama3' scaling factor 8, low 1, high 4, original "
            "8,192): how many of its 64 pairs keep their original frequency?",
            answer=float(_LLAMA31_KEPT),
            rel_tol=0.001,
            explanation="Pairs with wavelength below 8192 / 4 = 2,048 tokens are kept; those above 8,192 are divided "
            "by 8; the band between is blended.",
            computed_by="Counter(classify_pairs(llama3_rope(128)[0], default_rope(128, 5e5)[0], 8))['extrapolate']",
        ),
        ChoiceQuestion(
            prompt="Dynamic NTK scaling, with a prompt shorter than the trained context, gives...",
            options=(
                Option("exactly the original frequencies", correct=True,
                       explanation="The base only grows once the current length passes the trained length."),
                Option("the frequencies of static NTK at the full factor",
                       explanation="That is static NTK; dynamic depends on the current length."),
                Option("PI at the full factor", explanation="No interpolation happens below the trained length."),
            ),
        ),
        ChoiceQuestion(
            prompt="What does the Llama 3 paper say about its long-context recipe? (pick all that apply)",
            multiple=True,
            options=(
                Option("The RoPE base was raised to 500,000 for pre-training", correct=True,
                       explanation="From Llama 2's 10,000."),
                Option("Context was extended in six stages, from 8K to 128K", correct=True,
                       explanation="Using about 800B tokens of long-context pre-training."),
                Option("The RoPE base was changed at every extension stage",
                       explanation="The paper does not say so; the released 3.1 weights keep base 500,000 and "
                       "add 'llama3' frequency rescaling."),
                Option("The stages were 16K, 32K and 128K",
                       explanation="The paper gives six stages and does not list the intermediate lengths."),
            ),
        ),
    ),
)
