"""Chapter 8: quiz keys and claim verdicts against arithmetic done here, the claim set's helpers, the diagrams,
the recorded result the chapter reads, and the articles named by title."""

import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
from claim_helpers import assert_claims_render, assert_quiz_keys, one_claim

from longctx_lab.course import beyond_attention as ba
from longctx_lab.course.claim_sets import ch08_beyond_attention as ch08
from longctx_lab.course.diagrams import ch08_beyond_attention as diagrams
from longctx_lab.course.quiz import NumericQuestion, Quiz
from longctx_lab.course.quizzes.ch08_beyond_attention import QUIZ

CHAPTER = Path(__file__).resolve().parents[2] / "notebooks" / "ch08_beyond_attention.md"


@pytest.fixture(scope="module")
def checks():
    return ch08.claims()


# ---------------------------------------------------------------------------------------------- quiz

def test_quiz_keys_match_hand_arithmetic():
    assert isinstance(QUIZ, Quiz) and 6 <= len(QUIZ.questions) <= 10
    numeric = [q for q in QUIZ.questions if isinstance(q, NumericQuestion)]
    assert len(numeric) == 3 and all(q.computed_by for q in numeric)
    linear, kv, ssm = (q.answer for q in numeric)
    assert linear == 8 * (64 * 64 + 64)          # S and z of each of 8 heads of 64
    assert kv == 2 * 4096 * 8 * 64               # keys and values of 4,096 tokens
    assert ssm == 128 * 16 + 128 * 3             # h (channels x d_state) and the conv's last 3 inputs
    assert_quiz_keys(QUIZ)


# ---------------------------------------------------------------------------------------------- claims

def test_claims_render(checks):
    assert_claims_render(checks, minimum=5)
    assert len({c.claim for c in checks}) == len(checks)


def test_linformer_projects_the_sequence(checks):
    shapes = ch08.linformer_shapes(n=100, head_dim=8, k_proj=10)
    assert shapes == {"keys": (100, 8), "projected_keys": (10, 8), "output": (100, 8)}
    c = one_claim(checks, "Linformer")
    assert c.verdict == "misleading" and "(512, 64)" in c.computed and "(32, 64)" in c.computed


def test_performer_and_fixed_state_verdicts(checks):
    assert one_claim(checks, "Performer").verdict == "correct"
    fixed = one_claim(checks, "grows sublinearly")
    assert fixed.verdict == "misleading"
    memory = ch08.state_bytes_at("compressive", contexts=(32, 256))
    attention = ch08.state_bytes_at("attention", contexts=(32, 256))
    assert memory[32] == memory[256] and attention[256] == 8 * attention[32]


def test_compression_ratio_is_wrong_at_the_articles_own_boundary(checks):
    r = ch08.compression_ratios(n=1000, d=10)
    assert r["no_compression"] == {"c": 10_000, "article": 0.1, "numbers": 1.0}
    assert r["single_vector"] == {"c": 10, "article": 100.0, "numbers": 1000.0}
    assert one_claim(checks, "compression ratio is n/c").verdict == "wrong"


def test_production_scale_is_misleading_and_sourced(checks):
    c = one_claim(checks, "production scale")
    assert c.verdict == "misleading" and "Jamba" in c.computed and "MiniMax-01" in c.computed


def test_the_articles_are_named_by_title(checks):
    from longctx_lab.course.claims import SEED_ARCHITECTURE, SEED_PRODUCTION

    text = CHAPTER.read_text()
    assert SEED_ARCHITECTURE in text and SEED_PRODUCTION in text
    assert {c.source for c in checks} == {SEED_ARCHITECTURE, SEED_PRODUCTION}
    assert not re.search(r"\b(first|second) article", text)


# ---------------------------------------------------------------------------------------------- figures

def test_diagrams_draw_and_refuse_bad_input():
    import torch

    fig = diagrams.draw_recurrent_state([torch.eye(3)] * 2, [1, 2], head_dim=3)
    assert fig.get_figwidth() <= 7.5
    assert diagrams.draw_scan(8, 3).get_figwidth() <= 7.5
    assert diagrams.draw_hybrid_stack([("ssm", 10, 10, 1, 2), ("attention", 1, 2, 1, 2)]).get_figwidth() <= 7.5
    with pytest.raises(ValueError, match="states must be"):
        diagrams.draw_recurrent_state([torch.eye(2)], [1], head_dim=3)
    with pytest.raises(ValueError, match="layers must list"):
        diagrams.draw_hybrid_stack([])


def test_the_recorded_result_is_complete_and_plots():
    record = ba.load_ch08()
    assert record["command"].startswith("longctx-lab bench ch08") and not record["quick"]
    assert len(record["seeds"]) >= 3 and record["budget"]
    s = record["settings"]["mqar"]
    runs = record["experiments"]["mqar"]["runs"]
    assert len(runs) == len(s["setups"]) * len(s["widths"]) * len(record["seeds"])
    assert set(s["setups"]) == {"attention", "linear", "ssm", "hybrid"}
    for draw in (ba.plot_mqar, ba.plot_passkey, ba.plot_decode, ba.plot_performer, ba.plot_compressive):
        assert draw(record).get_figwidth() <= 7.5
    decode = record["experiments"]["decode"]["by_setup"]
    assert len({r["state_bytes"] for r in decode["ssm"]}) == 1          # constant, measured
    assert decode["attention"][-1]["state_bytes"] > decode["attention"][0]["state_bytes"]


# ---------------------------------------------------------------------------------------------- retrieval

def test_retrieval_table_recomputes_the_records_summary():
    record = ba.load_retrieval()
    assert record["command"].startswith("longctx-lab bench retrieval") and not record["quick"]
    rows = ba.retrieval_table(record)
    assert {(r["setting"], r["strategy"]) for r in rows} == {(s, k) for s in record["summary"]
                                                           for k in record["summary"][s]}
    for row in rows:  # per-question records, regrouped independently of the bench's own summary
        summary = record["summary"][row["setting"]][row["strategy"]]
        assert row["accuracy"] == pytest.approx(summary["accuracy"]["mean"])
        assert (row["min"], row["max"]) == pytest.approx((summary["accuracy"]["min"], summary["accuracy"]["max"]))
        assert row["prompt_tokens"] == pytest.approx(summary["prompt_tokens"])
        assert row["trials"] == summary["trials"] and row["seeds"] == record["settings"]["seeds"]


def test_retrieval_table_on_a_hand_made_record():
    recs = [{"setting": "s", "strategy": "a", "seed": seed, "correct": ok, "prompt_tokens": n, "in_context": True}
            for seed, ok, n in ((0, True, 10), (0, False, 20), (1, False, 30), (1, False, 40))]
    (row,) = ba.retrieval_table({"records": recs})
    assert (row["accuracy"], row["min"], row["max"], row["prompt_tokens"]) == (0.25, 0.0, 0.5, 25.0)
    with pytest.raises(ValueError, match="records"):
        ba.retrieval_table({"records": []})


def test_the_retrieval_claim_is_sourced_and_reads_the_record(checks):
    from longctx_lab.course.claims import SEED_PRODUCTION

    c = one_claim(checks, "Layer 5, retrieval")
    assert c.verdict == "misleading" and c.source == SEED_PRODUCTION
    for row in ba.retrieval_table(ba.load_retrieval()):
        assert f"{row['accuracy']:.2f} [{row['min']:.2f}, {row['max']:.2f}]" in c.computed


def test_the_chapters_reading_of_mqar_and_passkey_holds_in_the_record():
    """Sections 7 and 8 read the recorded figures in words; a re-recording that changes the picture fails here."""
    record = ba.load_ch08()
    s = record["settings"]["mqar"]
    narrow, wide = min(s["widths"]), max(s["widths"])
    fewest, most = min(s["pairs"]), max(s["pairs"])
    row = {(r["setup"], r["d_model"], r["pairs"]): r for r in ba.mqar_table(record)}
    assert all(row["attention", wide, p]["min"] == 1.0 for p in s["pairs"])       # every pair, every seed
    linear = [row["linear", wide, p]["mean"] for p in sorted(s["pairs"])]
    assert linear[0] >= 0.99 and linear == sorted(linear, reverse=True) and linear[-1] < 0.9  # falls with pairs
    assert row["linear", wide, most]["mean"] > row["linear", narrow, most]["mean"] + 0.2    # rises with width
    for setup in ("attention", "linear"):                                           # still learning at narrow
        assert all(row[setup, narrow, p]["mean"] < 0.8 for p in s["pairs"])
    assert row["attention", narrow, fewest]["max"] - row["attention", narrow, fewest]["min"] >= 0.1
    for setup in ("ssm", "hybrid"):
        assert all(row[setup, w, p]["mean"] < 0.35 for w in s["widths"] for p in s["pairs"])
    assert row["hybrid", wide, fewest]["mean"] > 0.2 > row["hybrid", narrow, fewest]["mean"]
    runs = record["experiments"]["mqar"]["runs"]
    assert all(r["final_loss"] > 0.5 for r in runs if r["setup"] == "attention" and r["d_model"] == narrow)
    assert all(r["final_loss"] > 2.0 for r in runs if r["setup"] == "ssm")
    assert all(r["final_loss"] > 1.5 for r in runs if r["setup"] == "hybrid")
    passkey = record["experiments"]["passkey"]["runs"]
    lengths = record["settings"]["passkey"]["eval_lengths"]

    def mean(setup, n):
        return sum(r["accuracy"][str(n)] for r in passkey if r["setup"] == setup) / len(record["seeds"])

    assert mean("linear", lengths[-1]) >= 0.9
    assert mean("attention", lengths[0]) - mean("attention", lengths[-1]) > 0.5
    assert all(r["accuracy"][str(n)] <= 0.05 for r in passkey if r["setup"] in ("ssm", "hybrid") for n in lengths)
    assert mean("attention", lengths[1]) > mean("attention", lengths[2]) > mean("attention", lengths[3])  # slides
