"""Claim checks: one tolerance policy, computed from the stated text; the verdicts of every chapter's
claims, checked against arithmetic done here by hand (not against the claim sets' own expressions)."""


from html import escape as html_escape

import pytest

from longctx_lab.course.claim_sets import ch01_quadratic_wall as ch01
from longctx_lab.course.claim_sets import ch02_rope_scaling as ch02
from longctx_lab.course.claim_sets import ch03_sliding_window_sparse as ch03
from longctx_lab.course.claim_sets import ch04_flash_attention as ch04
from longctx_lab.course.claims import (
    POLICY_PLACE,
    SEED_ARCHITECTURE,
    TOLERANCE_POLICY,
    ClaimCheck,
    check_printed,
    check_stated_number,
    check_statement,
    parse_stated,
    show_claims,
    verdict_counts,
)

S = SEED_ARCHITECTURE


@pytest.fixture(scope="module")
def all_checks():
    return {"ch01": ch01.claims(), "ch02": ch02.claims(), "ch03": ch03.claims(), "ch04": ch04.claims()}


# --- the policy -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        ("42", None, None),  # exact integer: only 42 itself
        ("about 42", (41.5, 41.94, 42.99), (41.49, 43.0)),  # nearest (>= 41.5) or down (< 43)
        ("4.1e20", (4.05e20, 4.19e20), (4.096e17, 4.2e20)),
        ("about 33M", (32.5e6, 33_554_432), (32.4e6, 34e6)),
        ("148.77", (148.765, 148.779), (148.76, 148.78, 149.01)),
        ("400", (350, 390.6, 499), (349, 500, 195.6)),  # trailing zeros are not significant
        ("tens of", (10, 99.9), (9.9, 100, 327.7)),
        ("hundreds of", (100, 999), (99, 1000)),
    ],
)
def test_tolerance_comes_from_the_stated_text(text, inside, outside):
    stated = parse_stated(text)
    if inside is None:
        assert stated.kind == "exact"
        assert check_stated_number("x", stated=text, computed=42, source=S).verdict == "correct"
        assert check_stated_number("x", stated=text, computed=42.000001, source=S, explanation="e").verdict == "wrong"
        return
    for x in inside:
        assert check_stated_number("x", stated=text, computed=x, source=S).verdict == "correct", x
    for x in outside:
        assert check_stated_number("x", stated=text, computed=x, source=S, explanation="off").verdict == "wrong", x


def test_binary_prefixes_read_m_as_2_to_the_20():
    assert parse_stated("4M", binary_prefixes=True).value == 4 * 2**20
    assert parse_stated("16B", binary_prefixes=True).value == 16 * 2**30
    assert parse_stated("4M").value == 4e6
    assert check_stated_number("x", stated="64M", computed=8192**2, source=S, explanation="e").verdict == "wrong"
    assert check_stated_number("x", stated="64M", computed=8192**2, source=S, binary_prefixes=True).verdict == "correct"


def test_exact_integers_show_a_difference_not_a_ratio_of_one():
    c = check_stated_number("x", stated="131,072", computed=131_041, source=S, explanation="one per layer")
    assert c.verdict == "wrong"
    assert c.comparison == "stated - computed = +31"
    assert "stated/computed" not in str(c) and "stated/computed" not in c._repr_html_()
    assert "must be exact" in c.rule


def test_printed_output_is_compared_as_text():
    # the article prints 148.77 for 200,000^2 float32 bytes / 1024^3 = 149.0116...: wrong however close
    assert check_printed("x", stated="148.77", printed="149.01", source=S, explanation="e").verdict == "wrong"
    assert check_printed("x", stated="4.00", printed="4.00", source=S).verdict == "correct"
    assert check_printed("x", stated="4.0", printed="4.00", source=S, explanation="e").verdict == "wrong"
    with pytest.raises(ValueError, match="explanation must say why"):
        check_printed("x", stated="1.0", printed="2.0", source=S)
    with pytest.raises(ValueError, match="printed must be"):
        check_printed("x", stated="1.0", printed=" ", source=S)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="explanation must say why"):
        check_stated_number("x", stated="1", computed=2, source=S)
    with pytest.raises(ValueError, match="text must be a number"):
        check_stated_number("x", stated="lots", computed=2, source=S)
    with pytest.raises(TypeError, match="stated must be"):
        check_stated_number("x", stated=True, computed=1, source=S)
    with pytest.raises(TypeError, match="rel_tol"):  # no hand-picked tolerance any more
        check_stated_number("x", stated="1", computed=1, source=S, rel_tol=0.5)
    with pytest.raises(ValueError, match="verdict must be one of"):
        check_statement("x", verdict="maybe", evidence="e", source="s", explanation="x")
    with pytest.raises(ValueError, match="evidence must be a non-empty"):
        check_statement("x", verdict="wrong", evidence=" ", source="s", explanation="x")
    with pytest.raises(TypeError, match="ClaimCheck"):
        show_claims(["not a claim"])


def test_every_table_links_to_the_one_policy_and_folds(all_checks):
    for checks in all_checks.values():
        table = show_claims(checks)
        assert POLICY_PLACE in str(table) and TOLERANCE_POLICY not in str(table)
        html = table._repr_html_()
        assert html.startswith("<details class='longctx-claims'><summary>") and "</table></details>" in html
        assert "<tfoot>" in html and POLICY_PLACE.split(",")[0] in html
        assert str(len(checks)) + " claims" in table.summary()
    assert "How a number is judged" in all_checks["ch01"][0]._repr_html_()


def test_an_inline_table_is_open_and_has_one_claim_column(all_checks):
    checks = all_checks["ch01"][:2]
    html = show_claims(checks, collapsed=False)._repr_html_()
    assert html.startswith("<table class='longctx-claims'") and html.count("<th>") == 4
    for c in checks:  # the claim's cell holds the stated words once, and no second column repeats them
        one = show_claims([c], collapsed=False)._repr_html_()
        claim_cell = one.split("<tr><td>", 1)[1].split("</td>", 1)[0]
        assert claim_cell.lower().count(html_escape(c.stated.strip()).lower()) == 1, claim_cell


def test_show_claims_names_a_bad_argument():
    with pytest.raises(TypeError, match="collapsed must be a bool"):
        show_claims([], collapsed="no")
    with pytest.raises(ValueError, match="title must be a non-empty string"):
        show_claims([], title=" ")


def test_the_summary_counts_verdicts():
    rows = [check_statement(f"s{i}", verdict=v, evidence="e", source="s", explanation="x")
            for i, v in enumerate(("wrong", "correct", "wrong"))]
    assert show_claims(rows).summary() == "Fact-check: 3 claims from the two articles (1 correct, 2 wrong)"
    assert verdict_counts(rows) == {"correct": 1, "wrong": 2}


def test_every_number_in_every_chapter_follows_the_policy(all_checks):
    numeric = [c for checks in all_checks.values() for c in checks if c.rule]
    assert len(numeric) > 30 and {"must be exact", "rounded to", "snippet output"} <= {
        key for c in numeric for key in ("must be exact", "rounded to", "snippet output") if key in c.rule}
    for chapter, checks in all_checks.items():
        for c in checks:
            assert isinstance(c, ClaimCheck)
            assert c.computed.strip() and c.explanation.strip(), (chapter, c.claim)
            if c.verdict != "correct":
                assert c.explanation != "Matches our computation.", (chapter, c.claim)
            if c.rule:  # a numeric check: a rule was derived, and a miss says how far off
                if c.verdict == "wrong":
                    assert c.comparison, (chapter, c.claim)
                if "must be exact" in c.rule:
                    assert not c.comparison.startswith("stated/computed"), (chapter, c.claim)


# --- chapter 1 ------------------------------------------------------------------------------------
