"""Chapter 6: quiz keys, claim verdicts and the chapter's sample formatter, against arithmetic done here."""

import math
import re

import pytest
from claim_helpers import assert_claims_render, assert_quiz_keys, one_claim

from longctx_lab.course.claim_sets import ch06_needle_in_a_haystack as ch06
from longctx_lab.course.quiz import NumericQuestion, Quiz
from longctx_lab.course.quizzes.ch06_needle_in_a_haystack import QUIZ
from longctx_lab.lm.niah.show import format_sample
from longctx_lab.lm.tasks import TASKS, VOCAB, make_sample

FLAT = {0.0: 1.0, 0.25: 1.0, 0.5: 1.0, 0.75: 1.0, 1.0: 1.0}
U_SHAPE = {0.0: 1.0, 0.25: 0.6, 0.5: 0.4, 0.75: 0.6, 1.0: 0.8}
ORACLE = {"passkey": 1.0, "multikey": 1.0, "cwe": 1.0}


# ---------------------------------------------------------------------------------------------- quiz

def test_quiz_keys_match_hand_arithmetic():
    assert isinstance(QUIZ, Quiz) and len(QUIZ.questions) >= 6
    numeric = [q for q in QUIZ.questions if isinstance(q, NumericQuestion)]
    assert len(numeric) >= 5 and all(q.computed_by for q in numeric)
    answers = [q.answer for q in numeric]
    assert answers[0] == 47  # floor(0.5 * 93 + 0.5): 46.5 rounds up
    assert answers[1] == 128  # fails at 256: 512 does not count
    assert answers[2] == 2 * (32 - 1)
    assert answers[3] == pytest.approx(1023 / 8)
    # head_dim 32, base 1e4, L = 64: pair i turns 64 / (2 pi 1e4^(i/16)) times; none reaches beta_fast = 32, and
    # the ramp's start, floor of a negative index, is clamped to 0, so only pair 0 keeps its frequency
    turns = [64 / (2 * math.pi * 10_000 ** (i / 16)) for i in range(16)]
    assert max(turns) < 32 and answers[4] == 1
    cost = [0.80 * 4097 / 2, 0.15 * 16_385 / 2, 0.04 * 65_537 / 2, 0.01 * 200_001 / 2]
    assert answers[5] == pytest.approx(100 * cost[-1] / sum(cost))
    assert_quiz_keys(QUIZ)


# ---------------------------------------------------------------------------------------------- claims

def test_claims_render_with_the_policy():
    checks = ch06.claims(by_depth=U_SHAPE, longest_tested=1024, task_scores={"passkey": 1.0, "multikey": 0.1,
                                                                           "cwe": 0.0}, oracle_scores=ORACLE)
    assert_claims_render(checks, minimum=6)
    gemini = one_claim(checks, "10M tokens")
    assert gemini.verdict == "misleading" and "9,766 times shorter" in gemini.computed  # 1e7 / 1024
    assert "99.2% at 10,000,000 tokens" in gemini.computed
    assert one_claim(checks, "substantially solved").verdict == "misleading"
    assert one_claim(checks, "16K, then 32K").verdict == "wrong"


def test_middle_gap_is_edges_minus_middle():
    assert ch06.middle_gap(FLAT) == 0
    assert ch06.middle_gap(U_SHAPE) == pytest.approx((1.0 + 0.8) / 2 - (0.6 + 0.4 + 0.6) / 3)
    persists = one_claim(ch06.retrieval_claims(U_SHAPE, 512), "persists")
    assert persists.verdict == "unsupported" and "+37 points" in persists.computed
    with pytest.raises(ValueError, match="by_depth must map at least 3"):
        ch06.middle_gap({0.0: 1.0, 1.0: 1.0})
    with pytest.raises(ValueError, match=r"by_depth\[0.5\]"):
        ch06.middle_gap({0.0: 1.0, 0.5: 1.5, 1.0: 1.0})


def test_too_simple_needs_a_pass_and_a_failure_the_oracle_solves():
    shown = ch06.evaluation_claim({"passkey": 0.95, "multikey": 0.2, "cwe": 0.9}, ORACLE)
    assert shown.verdict == "correct" and "fails multikey," in shown.explanation
    assert ch06.evaluation_claim({"passkey": 0.5, "multikey": 0.2}, ORACLE).verdict == "unsupported"  # no pass
    assert ch06.evaluation_claim({"passkey": 1.0, "multikey": 0.9}, ORACLE).verdict == "unsupported"  # no failure
    unsolvable = {"passkey": 1.0, "multikey": 0.5}
    assert ch06.evaluation_claim({"passkey": 1.0, "multikey": 0.2}, unsolvable).verdict == "unsupported"
    with pytest.raises(ValueError, match="oracle_scores must score every task"):
        ch06.evaluation_claim({"passkey": 1.0, "vartrack": 0.0}, ORACLE)
    with pytest.raises(ValueError, match="task_scores must map 'passkey'"):
        ch06.evaluation_claim({"multikey": 0.0}, ORACLE)


def test_schedule_shares_by_hand():
    shares = ch06.schedule_attention_shares(((10, 0.5), (30, 0.5)))
    # keys per token (n + 1) / 2: 5.5 and 15.5, weighted equally
    assert [s["attention_share"] for s in shares] == pytest.approx([5.5 / 21, 15.5 / 21])
    article = ch06.schedule_attention_shares()
    assert sum(s["attention_share"] for s in article) == pytest.approx(1.0)
    assert article[-1]["attention_share"] == pytest.approx(0.01 * 200_001 / sum(
        f * (n + 1) for n, f in ch06.ARTICLE_SCHEDULE))
    with pytest.raises(ValueError, match="shares sum to 1"):
        ch06.schedule_attention_shares(((10, 0.5), (20, 0.2)))
    assert ch06.schedule_claim().verdict == "unsupported"


# ---------------------------------------------------------------------------------------------- format_sample

@pytest.mark.parametrize("task", TASKS)
def test_format_sample_keeps_needles_and_counts_the_filler(task):
    sample = make_sample(task, 96, None if task == "cwe" else 0.3, seed=2)
    text = format_sample(sample, keep=2)
    prompt_part, answer_part = text.rsplit(" -> ", 1)
    assert answer_part == VOCAB.decode(sample.answer)
    for pos, length in zip(sample.needle_positions, sample.needle_lens, strict=True):
        assert f"[{VOCAB.decode(sample.prompt[pos:pos + length])}]" in prompt_part
    shown = sum(w.startswith("w") for w in prompt_part.replace("[", " ").replace("]", " ").split())
    elided = sum(int(n) for n in re.findall(r"\((\d+) filler\)", prompt_part))
    filler = set(VOCAB.filler)
    assert shown + elided == sum(t in filler for t in sample.prompt)
    assert format_sample(sample, keep=1000).split(" -> ")[0].count("filler)") == 0


def test_format_sample_errors():
    with pytest.raises(TypeError, match="sample must be a longctx_lab.lm.tasks.Sample"):
        format_sample([1, 2, 3])
    with pytest.raises(ValueError, match="keep"):
        format_sample(make_sample("passkey", 32, 0.5), keep=-1)


# ---------------------------------------------------------------------------------------------- recorded claims

def _grid(by_length: dict) -> dict:
    lengths = sorted(by_length)
    return {"lengths": lengths, "depths": [0.0, 1.0], "accuracy": [[by_length[n] for n in lengths]] * 2}


def _scaling(per_seed: list[dict]) -> dict:
    """A ch06-extension record whose scaling experiment has, per seed, {method: {length: accuracy}}."""
    seeds = [{"seed": k, "train_len": 16, "target_factor": 8, "grids": {m: _grid(v) for m, v in methods.items()}}
             for k, methods in enumerate(per_seed)]
    return {"settings": {"finetune_steps": 5}, "experiments": {"scaling": {"seeds": seeds}}}


def _seed(none_far, pi_far, yarn_far, tuned, scratch) -> dict:
    flat = {16: 1.0, 32: 0.5, 64: 0.5, 128: 0.5}
    return {"none": {**flat, 128: none_far}, "pi": {**flat, 128: pi_far}, "yarn": {**flat, 128: yarn_far},
            "finetune-pi-2L": {**flat, 32: tuned}, "scratch-2L": {**flat, 32: scratch}}


def test_extension_verdicts_follow_the_seeds():
    record = _scaling([_seed(0.0, 0.9, 0.95, 0.9, 0.1), _seed(0.1, 0.5, 0.9, 0.8, 0.3)])
    checks = ch06.extension_claims(record)
    assert one_claim(checks, "relative pattern").verdict == "wrong"  # no seed passes at 8L
    pi = one_claim(checks, "minimal degradation")
    assert pi.verdict == "misleading" and "0.70 (seeds 0.50-0.90)" in pi.computed  # the seeds disagree
    assert one_claim(checks, "6x context").verdict == "correct"  # every seed >= 85.6%
    progressive = one_claim(checks, "far cheaper")
    assert progressive.verdict == "correct" and "5 steps" in progressive.computed  # 0.8 and 0.9 > mean 0.2
    record = _scaling([_seed(0.0, 0.9, 0.95, 0.25, 0.1), _seed(0.1, 0.5, 0.9, 0.8, 0.3)])
    assert one_claim(ch06.extension_claims(record), "far cheaper").verdict == "correct"  # 0.25 > 0.2, just
    record = _scaling([_seed(0.0, 0.9, 0.95, 0.15, 0.1), _seed(0.1, 0.5, 0.9, 0.8, 0.3)])
    assert one_claim(ch06.extension_claims(record), "far cheaper").verdict == "misleading"  # 0.15 < mean 0.2
    assert len(ch06.claims(by_depth=FLAT, longest_tested=64, task_scores={"passkey": 1.0, "cwe": 0.0},
                           oracle_scores=ORACLE, extension=_scaling([_seed(0, 0, 0, 0, 0)]))) == 10
    with pytest.raises(ValueError, match="'scaling' experiment"):
        ch06.extension_claims({"experiments": {}})
