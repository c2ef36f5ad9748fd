"""Claims from the source articles, set beside what the package computes.

A :class:`ClaimCheck` records what an article says, what we compute, and a verdict. For numbers
the verdict is derived from the two values, never typed in, and the rule that decided it is
computed from the claim itself, never picked per claim. The course uses one policy
(:data:`TOLERANCE_POLICY`, explained once, in chapter 1; every claim table links there):

* **Snippet output** (:func:`check_printed`): what an article prints as the output of its own code
  is compared, as text, with what that code prints when it is run. ``148.77`` beside a printed
  ``149.01`` is wrong, however close.
* **Rounded numbers in prose** (:func:`check_stated_number`): a number is correct when the computed value,
  rounded to the digits the article shows (to nearest, or down as writers often do), gives it.
  The digits shown set the tolerance: ``"42"`` accepts 41.5 up to (not including) 43, ``"4.1e20"``
  accepts 4.05e20 up to 4.2e20, ``"131K"`` accepts 130.5K up to 132K. Trailing zeros of an
  integer are not significant (``"400"`` is 4 hundreds). Words such as ``"tens of"`` are ranges
  (10 up to 100). ``"about"``, ``"~"`` and ``"≈"`` mark a rounded number.
* **Exact integers**: an integer written out in full, with no rounding marker (``"131,072"``),
  must equal the computed value; the table shows the difference, not a ratio that reads as 1.

A wrong number also shows ``stated / computed`` so a learner sees *how* wrong (10x, 1000x...).
Qualitative claims use :func:`check_statement`, which requires computed evidence.

Sources are the two seed articles the course grew from:
``SEED_ARCHITECTURE`` ("How Long-Context Models Work: Technical Architecture") and
``SEED_PRODUCTION`` ("How Do Production Models Handle Long Context?").
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from decimal import Decimal

from longctx_lab.core.validate import check_number as _check_real

SEED_ARCHITECTURE = "How Long-Context Models Work: Technical Architecture"
SEED_PRODUCTION = "How Do Production Models Handle Long Context?"
VERDICTS = ("correct", "wrong", "misleading", "unsupported")

TOLERANCE_POLICY = (
    "How numbers are judged: a snippet's printed output must match, as text, what its code prints when run; "
    "a rounded number in prose is correct when the computed value rounds (to nearest or down) to the digits "
    "shown, so '42' accepts 41.5 to under 43 and 'tens of' means 10 to under 100; an integer written in full "
    "must be exact, and a miss shows the difference."
)


@dataclass(frozen=True)
class ClaimCheck:
    claim: str
    source: str
    stated: str
    computed: str
    verdict: str
    explanation: str
    ratio: float | None = None  # stated / computed, for numeric claims
    rule: str = ""  # the tolerance applied to this row, derived from the stated text
    comparison: str = ""  # how far off: a difference for exact integers, else stated / computed

    @property
    def is_wrong(self) -> bool:
        return self.verdict != "correct"

    def __str__(self) -> str:
        comparison = f" ({self.comparison})" if self.comparison else ""
        rule = f"\n  rule: {self.rule}" if self.rule else ""
        return (
            f"[{self.verdict.upper()}] {self.claim}\n"
            f"  article ({self.source}): {self.stated}\n"
            f"  we compute: {self.computed}{comparison}{rule}\n"
            f"  {self.explanation}"
        )

    def _repr_html_(self) -> str:
        return claims_table_html([self])


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    if 1e-3 <= abs(x) < 1e6:  # four significant digits, never in exponent form
        return f"{x:,.{max(0, 3 - math.floor(math.log10(abs(x))))}f}"
    return f"{x:.3e}"


# ---------------------------------------------------------------------------------------------
# Reading a stated number: its value and the interval its written precision allows.

_MARKERS = ("about ", "approximately ", "roughly ", "around ", "~", "≈")
_RANGE_WORDS = {"tens of": 10, "hundreds of": 100, "thousands of": 1000}
_SUFFIXES = {"k": 3, "thousand": 3, "m": 6, "million": 6, "b": 9, "billion": 9, "t": 12, "trillion": 12}
_NUMBER = re.compile(
    r"^(?P<mantissa>\d[\d,]*(?:\.\d+)?|\.\d+)(?:e(?P<exp>[+-]?\d+))?\s*(?P<suffix>k|m|b|t|thousand|million|billion|"
    r"trillion)?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class StatedNumber:
    """A number as an article writes it, read with the precision its digits imply.

    ``kind`` is ``"exact"`` (an integer written out in full), ``"rounded"`` or ``"range"``.
    A computed value ``x`` agrees when ``low <= x < high`` (``x == value`` for ``"exact"``).
    """

    text: str
    value: float
    low: float
    high: float
    kind: str
    rule: str


def parse_stated(text: str, *, binary_prefixes: bool = False) -> StatedNumber:
    """Read ``text`` (``"131,072"``, ``"about 42"``, ``"4.1e20"``, ``"4M"``, ``"tens of"``) as a
    :class:`StatedNumber`.

    The unit of the last digit shown is ``u`` (``0.01`` for ``"148.77"``, ``1e19`` for ``"4.1e20"``,
    ``1e6`` for ``"33M"``, ``100`` for ``"400"``: trailing zeros of an integer are not significant).
    A rounded number ``v`` agrees with ``x`` when ``x`` rounds to ``v`` to nearest
    (``v - u/2 <= x <= v + u/2``) or down (``v <= x < v + u``). ``binary_prefixes=True`` reads
    K/M/B/T as ``2**10``, ``2**20``, ``2**30``, ``2**40`` (as an article does whose "16MB" is 16 MiB).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__} {text!r}")
    if not isinstance(binary_prefixes, bool):
        raise TypeError(f"binary_prefixes must be a bool, got {type(binary_prefixes).__name__}")
    body = text.strip()
    marked = False
    for marker in _MARKERS:
        if body.lower().startswith(marker):
            body, marked = body[len(marker):].strip(), True
    for words, low in _RANGE_WORDS.items():
        if body.lower() == words:
            return StatedNumber(text, float(low), float(low), float(10 * low), "range",
                                f"'{words}' means {low:,} up to {10 * low:,}")
    match = _NUMBER.match(body)
    if match is None:
        raise ValueError(f"text must be a number such as '131,072', 'about 42', '4.1e20', '4M' or 'tens of', "
                         f"got {text!r}")
    mantissa = match["mantissa"].replace(",", "")
    exp = int(match["exp"] or 0)
    suffix = (match["suffix"] or "").lower()
    if suffix and binary_prefixes:
        mult = Decimal(2) ** (10 * (_SUFFIXES[suffix] // 3))
    else:
        mult = Decimal(10) ** _SUFFIXES.get(suffix, 0)
    if "." in mantissa:
        digit = Decimal(10) ** -len(mantissa.split(".")[1])
    else:
        stripped = mantissa.rstrip("0")
        digit = Decimal(10) ** (len(mantissa) - len(stripped) if stripped else 0)
    scale = Decimal(10) ** exp * mult
    value = Decimal(mantissa) * scale
    unit = digit * scale
    if not (marked or suffix or match["exp"] or "." in mantissa or digit > 1):
        return StatedNumber(text, float(value), float(value), float(value), "exact",
                            "an integer written in full: must be exact")
    low, high = float(value - unit / 2), float(value + unit)

    def written(m: Decimal) -> str:  # a bound in the article's own notation
        e = f"e{match['exp']}" if match["exp"] else ""
        word = match["suffix"] or ""
        return f"{m.normalize():f}{e}{' ' + word if len(word) > 1 else word}"

    m = Decimal(mantissa)
    prefix = f" ({suffix.upper()} = 2^{10 * (_SUFFIXES[suffix] // 3)})" if suffix and binary_prefixes else ""
    return StatedNumber(text, float(value), low, high, "rounded",
                        f"rounded to the digits shown: {written(m - digit / 2)} <= x < {written(m + digit)}{prefix}")


def _agrees(stated: StatedNumber, computed: float) -> bool:
    if stated.kind == "exact":
        return computed == stated.value
    slack = 1e-12 * abs(stated.low)  # float noise at the lower bound only; the upper bound is open
    return stated.low - slack <= computed < stated.high


def _comparison(stated: StatedNumber, computed: float, ok: bool) -> str:
    """What the table shows beside the computed value."""
    if stated.kind == "range":
        if ok:
            return ""
        side = stated.high if computed >= stated.high else stated.low
        return f"computed / range end = {_fmt(computed / side)}"
    if stated.kind == "exact":
        diff = stated.value - computed
        if diff == 0:
            return ""
        return f"stated - computed = {diff:+,.0f}" if float(diff).is_integer() else f"stated - computed = {diff:+.4g}"
    if computed == 0:
        return f"stated - computed = {stated.value:+.4g}"
    return f"stated/computed = {_fmt(stated.value / computed)}"


def check_stated_number(
    claim: str,
    *,
    stated: str | int | float,
    computed: float,
    source: str,
    unit: str = "",
    explanation: str = "",
    binary_prefixes: bool = False,
) -> ClaimCheck:
    """Compare a number an article states with the package's computation of the same quantity.

    ``stated`` is the article's text (``"about 335"``, ``"4.1e20"``, ``"131,072"``, ``"tens of"``):
    its written precision sets the tolerance (:func:`parse_stated`, :data:`TOLERANCE_POLICY`). A
    number passed instead of text is read from its ``repr``. ``computed`` is in the same ``unit``.
    The verdict is ``"correct"`` or ``"wrong"``; ``explanation`` says why and is required when the
    claim is wrong.
    """
    if isinstance(stated, bool) or not isinstance(stated, str | int | float):
        raise TypeError(f"stated must be the article's text or a number, got {type(stated).__name__} {stated!r}")
    text = stated if isinstance(stated, str) else (f"{stated:,}" if isinstance(stated, int) else repr(stated))
    number = parse_stated(text, binary_prefixes=binary_prefixes)
    computed = _check_real("computed", computed)
    ok = _agrees(number, computed)
    if not ok and not explanation:
        raise ValueError(f"explanation must say why the claim is wrong, got an empty string for {claim!r}")
    suffix = f" {unit}" if unit else ""
    return ClaimCheck(
        claim=claim,
        source=source,
        stated=f"{text.strip()}{suffix}",
        computed=f"{_fmt(computed)}{suffix}",
        verdict="correct" if ok else "wrong",
        explanation=explanation or "Matches our computation.",
        ratio=number.value / computed if computed != 0 and number.kind != "range" else None,
        rule=number.rule,
        comparison=_comparison(number, computed, ok),
    )


def check_printed(
    claim: str,
    *,
    stated: str,
    printed: str,
    source: str,
    unit: str = "",
    explanation: str = "",
) -> ClaimCheck:
    """Compare the output an article shows for its own code with what that code prints when run.

    Both are text (``"148.77"`` vs ``"149.01"``); they must be equal after stripping white space.
    ``explanation`` is required when they differ.
    """
    for name, value in (("stated", stated), ("printed", printed)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be the non-empty text of a printed number, got {value!r}")
    ok = stated.strip() == printed.strip()
    if not ok and not explanation:
        raise ValueError(f"explanation must say why the claim is wrong, got an empty string for {claim!r}")
    try:
        ratio = float(stated.replace(",", "")) / float(printed.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        ratio = None
    suffix = f" {unit}" if unit else ""
    return ClaimCheck(
        claim=claim,
        source=source,
        stated=f"{stated.strip()}{suffix}",
        computed=f"{printed.strip()}{suffix}",
        verdict="correct" if ok else "wrong",
        explanation=explanation or "Matches what the code prints.",
        ratio=ratio,
        rule="snippet output: compared as text with what its code prints when run",
        comparison="" if ok or ratio is None else f"stated/printed = {_fmt(ratio)}",
    )


def check_statement(
    claim: str,
    *,
    verdict: str,
    evidence: str,
    source: str,
    explanation: str,
    stated: str | None = None,
) -> ClaimCheck:
    """A qualitative claim. ``evidence`` must carry what a cell or the package computed."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    for name, value in (("evidence", evidence), ("explanation", explanation), ("claim", claim)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return ClaimCheck(claim=claim, source=source, stated=stated or claim, computed=evidence,
                      verdict=verdict, explanation=explanation)


_COLOURS = {"correct": "#1b7f3b", "wrong": "#b3261e", "misleading": "#b26a00", "unsupported": "#6b5b95"}


#: Where the course explains :data:`TOLERANCE_POLICY`, once; every claim table links there instead of
#: repeating it.
POLICY_PLACE = "chapter 1, section “How the fact-checks judge a number”"


def _claim_cell(c: ClaimCheck) -> str:
    """The claim as the article makes it, once: the stated words, prefixed by the topic when they need it."""
    e = html.escape
    stated, claim = c.stated.strip(), c.claim.strip()
    if stated.lower() in claim.lower():
        text = claim
    elif claim.lower() in stated.lower():
        text = stated
    else:
        text = f"{claim}: “{stated}”"
    return f"{e(text)}<br><small><i>{e(c.source)}</i></small>"


def claims_table_html(checks: list[ClaimCheck]) -> str:
    """One HTML table, four columns (the claim as stated, what we compute, the verdict, why), sized to the
    page's width; it links to the one place the tolerance policy is explained (:data:`POLICY_PLACE`)."""
    e = html.escape
    rows = []
    for c in checks:
        notes = "".join(f"<br><small>{e(note)}</small>" for note in (c.comparison, c.rule) if note)
        rows.append(
            f"<tr><td>{_claim_cell(c)}</td><td>{e(c.computed)}{notes}</td>"
            f"<td style='color:{_COLOURS[c.verdict]};font-weight:bold'>{c.verdict}</td>"
            f"<td>{e(c.explanation)}</td></tr>"
        )
    cols = "<colgroup><col style='width:30%'><col style='width:27%'><col style='width:11%'><col></colgroup>"
    head = "<tr><th>the article says</th><th>we compute</th><th>verdict</th><th>why</th></tr>"
    foot = f"<tfoot><tr><td colspan='4'><small>How a number is judged: {e(POLICY_PLACE)}.</small></td></tr></tfoot>"
    style = "table-layout:fixed;width:100%;overflow-wrap:anywhere;font-size:0.9em"
    return f"<table class='longctx-claims' style='{style}'>{cols}{head}{''.join(rows)}{foot}</table>"


def verdict_counts(checks: list[ClaimCheck]) -> dict[str, int]:
    """How many checks have each verdict, in :data:`VERDICTS` order, zero counts left out."""
    counts = {v: sum(c.verdict == v for c in checks) for v in VERDICTS}
    return {v: n for v, n in counts.items() if n}


class ClaimTable(list):
    """A list of checks that renders as one HTML table in a notebook and as text elsewhere.

    ``collapsed`` (the default) wraps the table in a closed ``<details>`` element whose one-line summary
    counts the verdicts: the full fact-check sits folded at a chapter's end, in JupyterLab and in the book
    alike. ``collapsed=False`` shows the table open, for the one to three article errors a chapter
    discusses in its prose."""

    def __init__(self, checks=(), *, collapsed: bool = True, title: str = "Fact-check"):
        super().__init__(checks)
        self.collapsed = collapsed
        self.title = title

    def summary(self) -> str:
        counts = ", ".join(f"{n} {v}" for v, n in verdict_counts(list(self)).items())
        noun = "claim" if len(self) == 1 else "claims"
        return f"{self.title}: {len(self)} {noun} from the two articles ({counts})"

    def _repr_html_(self) -> str:
        table = claims_table_html(list(self))
        if not self.collapsed:
            return table
        return (f"<details class='longctx-claims'><summary><b>{html.escape(self.summary())}</b>: "
                "click to open</summary>" + table + "</details>")

    def __str__(self) -> str:
        return "\n\n".join([self.summary(), *(str(c) for c in self), f"How a number is judged: {POLICY_PLACE}."])

    __repr__ = __str__


def show_claims(checks: list[ClaimCheck], *, collapsed: bool = True, title: str = "Fact-check") -> ClaimTable:
    """Return the checks as a table: HTML as a notebook cell's last expression, text in a terminal.

    Folded by default (a chapter's closing fact-check); ``collapsed=False`` for a few claims discussed
    inline."""
    for c in checks:
        if not isinstance(c, ClaimCheck):
            raise TypeError(f"checks must hold ClaimCheck objects, got {type(c).__name__}")
    if not isinstance(collapsed, bool):
        raise TypeError(f"collapsed must be a bool, got {type(collapsed).__name__} {collapsed!r}")
    if not isinstance(title, str) or not title.strip():
        raise ValueError(f"title must be a non-empty string, got {title!r}")
    return ClaimTable(checks, collapsed=collapsed, title=title)


__all__ = [
    "POLICY_PLACE",
    "SEED_ARCHITECTURE",
    "SEED_PRODUCTION",
    "TOLERANCE_POLICY",
    "VERDICTS",
    "ClaimCheck",
    "ClaimTable",
    "StatedNumber",
    "check_stated_number",
    "check_printed",
    "check_statement",
    "claims_table_html",
    "parse_stated",
    "show_claims",
    "verdict_counts",
]
