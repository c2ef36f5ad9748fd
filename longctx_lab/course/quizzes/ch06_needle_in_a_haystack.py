"""Chapter 6 quiz: needle in a haystack, effective length, RoPE scaling at a tiny length, windows, evaluation.
Numeric keys are computed by the package (tasks, niah, rope, receptive_field, the chapter's claim set)."""

from longctx_lab.attention.receptive_field import receptive_field_bounds
from longctx_lab.course.claim_sets.ch06_needle_in_a_haystack import schedule_attention_shares
from longctx_lab.course.quiz import ChoiceQuestion, NumericQuestion, Option, Quiz
from longctx_lab.lm.niah import effective_length
from longctx_lab.rope import classify_pairs, default_rope, linear_rope, wavelengths, yarn_rope

_SCORES = {64: 1.0, 128: 0.9, 256: 0.8, 512: 0.95}
_HEAD_DIM, _TRAINED = 32, 64  # the recorded extension runs' head size and training length


def _pi_position(position: int = 1023, factor: float = 8.0) -> float:
    """The position whose default-RoPE angles equal PI's angles at ``position``: the ratio of the first pair's
    angles (every pair gives the same ratio under PI)."""
    pi, _ = linear_rope(_HEAD_DIM, factor=factor)
    ref, _ = default_rope(_HEAD_DIM)
    return float(position * pi[0] / ref[0])


def _yarn_kept(trained: int = _TRAINED, factor: float = 8.0) -> int:
    inv, _ = yarn_rope(_HEAD_DIM, factor=factor, original_max_position_embeddings=trained)
    ref, _ = default_rope(_HEAD_DIM)
    return classify_pairs(inv, ref, factor).count("extrapolate")


def _reach(window: int = 32, layers: int = 2, position: int = 1000) -> int:
    lo, hi = receptive_field_bounds(position, window, layers)
    return hi - lo


_FASTEST_TURNS = _TRAINED / float(wavelengths(default_rope(_HEAD_DIM)[0])[0])
_LONGEST_SHARE = schedule_attention_shares()[-1]["attention_share"]

QUIZ = Quiz(
    chapter="ch06_needle_in_a_haystack",
    title="Chapter 6: needle in a haystack, length extension and what NIAH misses",
    questions=(
        NumericQuestion(
            prompt="Take the strict reading of an effective length: the longest length at which the score, and the "
            "score at every shorter length tested, reach 85.6% (RULER's threshold; RULER itself reports each "
            "length's own score). A model scores 100% at 64 tokens, 90% at 128, 80% at 256 and 95% at 512. What "
            "is its effective length?",
            answer=float(effective_length(_SCORES)),
            rel_tol=0.001,
            unit="tokens",
            explanation="It fails at 256, so under the strict reading 512 does not count however well it scores "
            "(judging each length alone would give 512). The strict reading refuses a model whose retrieval "
            "has a hole in the middle of its range.",
            computed_by="longctx_lab.lm.niah.effective_length({64: 1.0, 128: 0.9, 256: 0.8, 512: 0.95})",
        ),
        NumericQuestion(
            prompt="A model of 2 layers uses a causal sliding window of 32 keys in both. How many tokens back from "
            "the query position can a needle be and still influence the answer at all?",
            answer=float(_reach()),
            rel_tol=0.001,
            unit="tokens",
            explanation="Each layer reaches w - 1 = 31 positions further back, so 2 layers reach 62 (chapter 3's "
            "receptive field L(w - 1) + 1 = 63 positions, the query's own included). A needle further away is "
            "invisible, whatever the training.",
            computed_by="receptive_field_bounds(1000, 32, 2): 1000 minus the first reachable position",
        ),
        NumericQuestion(
            prompt="A model trained on 128 tokens is run on 1,024 with position interpolation (PI, factor 8). Token "
            "1,023 then rotates like which position of the original model?",
            answer=_pi_position(),
            rel_tol=0.001,
            explanation="PI divides every frequency by the factor, so position p looks like p / 8 = 127.875: inside "
            "the trained range, but between the integer positions the model was trained on.",
            computed_by="1023 x linear_rope(32, factor=8) / default_rope(32), first pair",
        ),
        NumericQuestion(
            prompt=f"Head dimension {_HEAD_DIM}, base 10,000, trained on {_TRAINED} tokens: YaRN with its published "
            "beta_fast = 32 keeps a pair unscaled only where the pair turns more than 32 times over the trained "
            f"length. How many of the {_HEAD_DIM // 2} pairs does it keep (its ramp computed as Hugging Face does)?",
            answer=float(_yarn_kept()),
            rel_tol=0.001,
            unit="pairs",
            explanation=f"The fastest pair turns {_FASTEST_TURNS:.1f} times in {_TRAINED} tokens, fewer than 32, so no "
            "pair qualifies; only the clamping of the ramp's start to index 0 leaves pair 0 untouched. At a tiny "
            "trained length YaRN interpolates most pairs like PI, which is why the chapter sweeps beta_fast.",
            computed_by="classify_pairs(yarn_rope(32, factor=8, original_max_position_embeddings=64), ...)",
        ),
        NumericQuestion(
            prompt="A proposed schedule trains 80% of tokens at 4K, 15% at 16K, 4% at 64K and 1% at 200K. "
            "What share of the attention work (query-key scores) does the 1% at 200K take?",
            answer=100 * _LONGEST_SHARE,
            rel_tol=0.05,
            unit="%",
            explanation="A token at context n attends to (n + 1) / 2 keys on average, so each stage costs its token "
            f"share times its length: the longest stage's 1% of tokens takes {_LONGEST_SHARE:.0%} of the attention "
            f"work, {_LONGEST_SHARE / 0.01:.0f} times its share of the tokens.",
            computed_by="schedule_attention_shares()[-1]['attention_share'] (claim_sets.ch06_needle_in_a_haystack)",
        ),
        ChoiceQuestion(
            prompt="Why score an oracle (which reads the answer out of the prompt with the task's rule) and a "
            "constant answer beside a model on a needle-in-a-haystack grid?",
            options=(
                Option("They bound the grid: the oracle shows every prompt is answerable (100%) and the constant "
                       "adapter what guessing scores", correct=True,
                       explanation="A harness bug or an unanswerable task shows up as an oracle below 100%."),
                Option("They are smaller language models", explanation="Neither has weights: one is the task's rule, "
                       "the other a fixed token."),
                Option("To calibrate RULER's 85.6% threshold",
                       explanation="That threshold is Llama-2-7B's score at 4K, fixed by RULER."),
                Option("To train the model faster", explanation="They are evaluation baselines only."),
            ),
        ),
        ChoiceQuestion(
            prompt="A model finds a single passkey at every depth of a long context. What has this shown about Liu "
            "et al.'s 'lost in the middle'?",
            options=(
                Option("Little: their U-shaped curve is for finding one relevant document among many similar ones; "
                       "a lone distinctive needle does not test that", correct=True,
                       explanation="Multi-key and multi-value tasks, with look-alike distractors, come closer."),
                Option("That the problem is solved for all tasks",
                       explanation="RULER shows models that pass NIAH failing harder tasks."),
                Option("That the model would fail multi-document QA",
                       explanation="It says nothing either way about that task."),
                Option("That attention is uniform over positions",
                       explanation="Finding the needle only needs one high score at the right place."),
            ),
        ),
        ChoiceQuestion(
            prompt="An article reports Gemini 1.5's '>99.7% retrieval up to 10M tokens'. What can a needle test "
            "of a tiny model, at a few hundred tokens, check of it?",
            options=(
                Option("Nothing directly: it can run the same kind of test at a scale 10,000 times smaller and "
                       "cite the report", correct=True,
                       explanation="The report (Gemini Team 2024) is the only evidence, and its 10M-token result is "
                       "itself a single-needle test."),
                Option("All of it, by extrapolating the tiny model's heatmap",
                       explanation="A tiny model's effective length says nothing about a production model's."),
                Option("That it is wrong, because attention cannot scale to 10M tokens",
                       explanation="Ring attention and enough hardware make 10M-token forward passes possible."),
                Option("That it is right, because NIAH is easy",
                       explanation="Easy for some models is not evidence about this one."),
            ),
        ),
        ChoiceQuestion(
            prompt="A model trained at length L is fine-tuned briefly at 2L and beats a model trained from scratch "
            "at 2L for the same number of steps by a wide margin. Read at 2L with no fine-tune at all, the base "
            "model scores about as well as the fine-tuned one. What does the gap to the scratch model measure?",
            options=(
                Option("The task training the base model had before, not the cost of extending it", correct=True,
                       explanation="At 2L the fine-tune adds nothing the base lacked; the scratch model "
                       "simply has had far fewer steps of training on the task. Extension is only tested "
                       "where the base fails without it (longer lengths)."),
                Option("How much cheaper progressive extension is than training from scratch",
                       explanation="That needs a length where extension is needed, and equal total compute "
                       "or equal quality as the yardstick; here the base needed no extension at 2L."),
                Option("That position interpolation hurts", explanation="The fine-tuned model uses PI and "
                       "scores as well as the base: PI with a fine-tune does no harm here."),
                Option("That the scratch model's architecture is worse",
                       explanation="Both models have the same architecture; only their training differs."),
            ),
        ),
        ChoiceQuestion(
            prompt="A model scores 0.80 on passkey at its trained length and 0.76 at 8 times that length with "
            "YaRN. Both are under RULER's 85.6%. Does that refute a claim of 'minimal quality loss' at 8x?",
            options=(
                Option("No: 'loss' is relative to the model's own score at its trained length, and it keeps 95% "
                       "of it", correct=True,
                       explanation="A relative claim needs a relative yardstick; the absolute threshold "
                       "answers a different question (is this model usable at that length at all?)."),
                Option("Yes: a score under 85.6% is a failure",
                       explanation="The model is under 85.6% at its own length too, so the threshold cannot "
                       "separate the loss from extension from what the model never had."),
                Option("Yes: any drop at all refutes it",
                       explanation="'Minimal' allows a small drop; 0.04 on 0.80 is within the seed-to-seed "
                       "spread of a tiny model."),
                Option("It cannot be judged without a fine-tune",
                       explanation="It can: YaRN here is applied at inference, and the claim is about that "
                       "model's scores."),
            ),
        ),
    ),
)
