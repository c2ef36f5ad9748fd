"""Claims from the source articles, set beside what the package computes.

A :class:`ClaimCheck` records what an article says, what we compute, and a verdict. For numbers
the verdict is derived from the two values (never typed in): ``"correct"`` within ``rel_tol``,
``"wrong"`` otherwise, with the ratio shown so a learner sees *how* wrong (10x, 1000x...).
Qualitative claims use :func:`check_statement`, which requires computed evidence.

Sources are the two seed articles the course grew from:
``SEED_ARCHITECTURE`` ("How Long-Context Models Work: Technical Architecture") and
``SEED_PRODUCTION`` ("How Do Production Models Handle Long Context?").
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

from longctx_lab._validate import check_number as _check_real

SEED_ARCHITECTURE = "How Long-Context Models Work: Technical Architecture"
SEED_PRODUCTION = "How Do Production Models Handle Long Context?"
VERDICTS = ("correct", "wrong", "misleading", "unsupported")


@dataclass(frozen=True)
class ClaimCheck:
    claim: str
    source: str
    stated: str
    computed: str
    verdict: str
    explanation: str
    ratio: float | None = None  # stated / computed, for numeric claims

    @property
    def is_wrong(self) -> bool:
        return self.verdict != "correct"

    def __str__(self) -> str:
        ratio = f" (stated/computed = {_fmt(self.ratio)})" if self.ratio is not None else ""
        return (
            f"[{self.verdict.upper()}] {self.claim}\n"
            f"  article ({self.source}): {self.stated}\n"
            f"  we compute: {self.computed}{ratio}\n"
            f"  {self.explanation}"
        )

    def _repr_html_(self) -> str:
        return claims_table_html([self])


def _fmt(x: float) -> str:
    if x is None:
        return "-"
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    if x == 0 or 1e-3 <= abs(x) < 1e6:
        return f"{x:,.4g}"
    return f"{x:.3e}"


def check_number(
    claim: str,
    *,
    stated: float,
    computed: float,
    source: str,
    unit: str = "",
    rel_tol: float = 0.05,
    explanation: str = "",
) -> ClaimCheck:
    """Compare a number an article states with the package's computation of the same quantity.

    The verdict is ``"correct"`` when ``|stated - computed| <= rel_tol * |computed|``, else
    ``"wrong"``. ``explanation`` says why (required when the claim is wrong).
    """
    stated = _check_real("stated", stated)
    computed = _check_real("computed", computed)
    rel_tol = _check_real("rel_tol", rel_tol, exclusive_minimum=0, maximum=1)
    ok = math.isclose(stated, computed, rel_tol=rel_tol, abs_tol=0.0)
    if not ok and not explanation:
        raise ValueError(f"explanation must say why the claim is wrong, got an empty string for {claim!r}")
    ratio = stated / computed if computed != 0 else None
    suffix = f" {unit}" if unit else ""
    return ClaimCheck(
        claim=claim,
        source=source,
        stated=f"{_fmt(stated)}{suffix}",
        computed=f"{_fmt(computed)}{suffix}",
        verdict="correct" if ok else "wrong",
        explanation=explanation or "Matches our computation.",
        ratio=ratio,
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


def claims_table_html(checks: list[ClaimCheck]) -> str:
    rows = []
    for c in checks:
        e = html.escape
        ratio = f"<br><small>stated/computed = {_fmt(c.ratio)}</small>" if c.ratio is not None else ""
        rows.append(
            f"<tr><td>{e(c.claim)}<br><small><i>{e(c.source)}</i></small></td><td>{e(c.stated)}</td>"
            f"<td>{e(c.computed)}{ratio}</td>"
            f"<td style='color:{_COLOURS[c.verdict]};font-weight:bold'>{c.verdict}</td><td>{e(c.explanation)}</td></tr>"
        )
    head = "<tr><th>claim</th><th>article says</th><th>we compute</th><th>verdict</th><th>why</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


class ClaimTable(list):
    """A list of checks that renders as one HTML table in a notebook and as text elsewhere."""

    def _repr_html_(self) -> str:
        return claims_table_html(list(self))

    def __str__(self) -> str:
        return "\n\n".join(str(c) for c in self)

    __repr__ = __str__


def show_claims(checks: list[ClaimCheck]) -> ClaimTable:
    """Return the checks as a table: HTML as a notebook cell's last expression, text in a terminal."""
    for c in checks:
        if not isinstance(c, ClaimCheck):
            raise TypeError(f"checks must hold ClaimCheck objects, got {type(c).__name__}")
    return ClaimTable(checks)
