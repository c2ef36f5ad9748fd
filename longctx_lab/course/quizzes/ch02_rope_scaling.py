"""Chapter 2 quiz: RoPE and context extension. Numeric keys are computed by longctx_lab.rope, for
settings the chapter does not print (head dim 64, other factors), so that they test the idea, not recall."""

from longctx_lab import rope
from longctx_lab.course.quiz import ChoiceQuestion, NumericQuestion, Option, Quiz

_D64 = rope.default_rope(64, 10_000.0)[0]
_SHORT_PAIRS = float((rope.turns_in_context(_D64, 2048) < 1).sum())
_NTK_BASE = rope.ntk_base(10_000.0, 4.0, 64)
_PI_NEIGHBOUR = float(rope.linear_rope(64, 10_000.0, factor=16.0)[0][0])
# pairs meeting unseen angles at 8,192 tokens, per scheme, for a head trained on 2,048 and extended 4x
_UNSEEN = {name: int(rope.unseen_angle_pairs(inv, _D64, 2048, 8192).sum())
           for name, (inv, _) in rope.compare_schemes(
               64, 10_000.0, factor=4.0, original_max_position_embeddings=2048,
               schemes=("default", "linear", "ntk", "yarn")).items()}

QUIZ = Quiz(
    chapter="ch02_rope_scaling",
    title="Chapter 2: RoPE and context extension",
    questions=(
        ChoiceQuestion(
            prompt="With RoPE, you move a query from position 10 to 110 and its key from 4 to 104. "
            "Their attention score...",
            options=(
                Option("stays the same", correct=True,
                       explanation="Both vectors turn by 100 * theta_i more in every pair; the angle "
                       "between them, and so their dot product, is unchanged."),
                Option("shrinks, because RoPE decays with position",
                       explanation="RoPE has no dependence on absolute position: only m - n enters."),
                Option("changes by an amount that depends on the token contents",
                       explanation="That is what added (absolute) position vectors do, through cross "
                       "terms such as x . p_n; RoPE has none."),
            ),
        ),
        NumericQuestion(
            prompt="A model with head dim 64 and RoPE base 10,000 was trained on 2,048 tokens. How many "
            "of its 32 frequency pairs never complete one full turn within the training context?",
            answer=_SHORT_PAIRS,
            rel_tol=0.001,
            explanation="Pair i completes a turn every 2*pi*10000^(2i/64) tokens; count the pairs whose "
            "wavelength exceeds 2,048 tokens. Those meet unseen angles past 2K.",
            computed_by="(turns_in_context(default_rope(64)[0], 2048) < 1).sum()",
        ),
        ChoiceQuestion(
            prompt="Why does feeding a RoPE model twice its trained length go wrong without any scaling?",
            options=(
                Option("The slow pairs reach rotation angles that training never produced", correct=True,
                       explanation="A pair that turned less than once in training saw only an arc of its "
                       "circle; longer inputs drive it past that arc."),
                Option("The score stops depending only on m - n",
                       explanation="The relative property holds at every length; it is the angles, not "
                       "the relativity, that are new."),
                Option("The fast pairs wrap around and alias",
                       explanation="Fast pairs wrapped around many times in training already: every angle "
                       "they meet at 2x was seen."),
            ),
        ),
        NumericQuestion(
            prompt="After Position Interpolation by a factor of 16 (head dim 64, base 10,000), by how many "
            "radians does the fastest pair separate two neighbouring tokens?",
            answer=_PI_NEIGHBOUR,
            rel_tol=0.01,
            explanation="Pair 0 turns 1 radian per token before any scaling (base^0 = 1); PI divides every "
            "frequency by 16, so neighbours are 1/16 = 0.0625 rad apart: they crowd together, and the model "
            "needs fine-tuning to separate them again.",
            computed_by="linear_rope(64, factor=16)[0][0]",
        ),
        NumericQuestion(
            prompt="Static NTK-aware scaling for head dim 64, base 10,000, factor 4: what is the new base?",
            answer=_NTK_BASE,
            rel_tol=0.01,
            explanation="Choose the base so that the slowest pair (exponent (d-2)/d) turns 4 times slower: "
            "base' = base * 4^(d/(d-2)) = 10,000 * 4^(64/62).",
            computed_by="ntk_base(10_000, 4, 64)",
        ),
        ChoiceQuestion(
            prompt="In YaRN, a pair that made 50 full turns in the trained context (beta_fast 32, "
            "beta_slow 1) is...",
            options=(
                Option("kept at its original frequency", correct=True,
                       explanation="More than beta_fast turns: it saw every angle many times, so it can "
                       "extrapolate."),
                Option("divided by the extension factor",
                       explanation="That happens to pairs with fewer than beta_slow turns."),
                Option("blended halfway between the two",
                       explanation="Only pairs between beta_slow and beta_fast turns are blended."),
            ),
        ),
        ChoiceQuestion(
            prompt="YaRN's attention factor multiplies the cos and sin tables by 0.1 ln s + 1. What does "
            "that do to the attention logits?",
            options=(
                Option("multiplies them by (0.1 ln s + 1)^2", correct=True,
                       explanation="The tables scale both the query and the key, so their dot product "
                       "gets the square."),
                Option("multiplies them by 0.1 ln s + 1",
                       explanation="That would be the case if only the query were scaled."),
                Option("nothing: it only changes the frequencies",
                       explanation="The frequencies come from the ramp; the factor is a separate "
                       "temperature that sharpens the softmax."),
            ),
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
            prompt="You load Meta-format Llama weights (interleaved RoPE pairs) into code that rotates "
            "halves, without permuting W_q and W_k. What happens?",
            options=(
                Option("The attention scores change: the wrong features are turned together", correct=True,
                       explanation="Interleaved pairs (x_2i, x_2i+1) and halves pairs (x_i, x_i+d/2) only "
                       "agree after the rows of W_q and W_k are permuted to match."),
                Option("Nothing: the two layouts are the same rotation",
                       explanation="They are equivalent only after the weight permutation."),
                Option("Only the first pair is wrong",
                       explanation="Every pair, not only the first, is formed from a different two features "
                       "than the weights were trained for."),
            ),
        ),
        ChoiceQuestion(
            prompt="A model with head dim 64 and base 10,000 was trained on 2,048 tokens and is run at "
            "8,192 (factor 4). With which schemes do some pairs meet angles never seen in training? "
            "(pick all that apply)",
            multiple=True,
            options=(
                Option("no scaling (plain RoPE)", correct=_UNSEEN["default"] > 0,
                       explanation=f"{_UNSEEN['default']} pairs: every pair that turned less than once in "
                       "2,048 tokens now sweeps 4x the arc it saw."),
                Option("Position Interpolation by 4", correct=_UNSEEN["linear"] > 0,
                       explanation=f"{_UNSEEN['linear']} pairs: dividing every frequency by 4 maps 8,192 "
                       "positions onto exactly the angles of 2,048."),
                Option("NTK-aware scaling by 4", correct=_UNSEEN["ntk"] > 0,
                       explanation=f"{_UNSEEN['ntk']} pairs: only the slowest pair is slowed by the full 4; "
                       "the slow pairs before it are slowed by 4^(2i/62) < 4 and still leave their arc."),
                Option("YaRN by 4", correct=_UNSEEN["yarn"] > 0,
                       explanation=f"{_UNSEEN['yarn']} pairs: every pair with fewer than beta_slow = 1 turn "
                       "is divided by the full factor, and the blended pairs turned many times in training."),
            ),
        ),
    ),
)
