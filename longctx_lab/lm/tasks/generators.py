"""Seeded synthetic long-context tasks over :data:`longctx_lab.lm.tasks.VOCAB`, each with its reference solver.

Every task makes a :class:`Sample`: ``prompt`` = ``[<bos>] + context + [<q>] + query + [<a>]`` and the
``answer`` ids the model must produce next. ``context`` is exactly ``context_len`` tokens of filler words
(drawn uniformly with the seed) with the task's statements ("needles") written over it; each statement is a
run of whole tokens, so needles sit on token boundaries. Scoring is exact match of the whole answer
(:func:`longctx_lab.lm.tasks.exact_match`). Tasks (:data:`TASKS`):

- ``passkey``: one needle ``pass = d1 .. dn ;`` (``n_digits`` random digits); query ``pass``; answer the digits.
- ``multikey`` (RULER MK-NIAH): ``n_keys`` needles ``Ki = digits ;`` with distinct keys; one (the first
  needle) is queried, the others are distractors; query ``Ki``; answer its digits.
- ``multivalue`` (MV-NIAH): ``n_values`` needles with the same key and different values; query the key;
  answer every value, in order of appearance in the context.
- ``multiquery`` (MQ-NIAH): ``n_queries`` needles with distinct keys, all queried; query ``K_a K_b ..`` in a
  shuffled order; answer their values in the query's order.
- ``vartrack`` (variable tracking): ``Ka = digits ;`` and ``n_hops`` statements ``Kb = Ka ;``, ``Kc = Kb ;``
  .., equations at seeded positions (their order in the context is not the chain's); query the digits; answer
  every variable holding them, in chain order (the one assigned the digits first, then the one copying it..).
- ``cwe`` (common-word extraction): no needle; the context holds ``n_common`` words ``c`` times each and the
  other filler words fewer times (``c = floor(context_len / (n_common + rare / 2))``, the rest spread evenly
  over the ``rare`` other words, shuffled); query empty; answer the ``n_common`` most frequent words,
  sorted by id. ``depth`` must be ``None``.

Depth rule (needle tasks): the first needle (the queried one; the first value; the first assignment) of
``L = needle_len`` tokens starts at context index ``round_half_up(depth * (context_len - L))``, prompt index
``1 +`` that (after ``<bos>``): depth 0 is the first token of the context, depth 1 ends at its last token.
The other needles go at seeded positions that overlap no needle .
``Sample.needle_positions`` lists every needle's prompt index.

:func:`solve` answers any prompt from the prompt alone (the reference an "oracle" adapter uses): the format
is self-contained. Bad input raises ``ValueError`` naming the argument (docs/conventions.md).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from longctx_lab.core.validate import check_int, check_number
from longctx_lab.lm.tasks.vocab import VOCAB

__all__ = ["NEEDLE_TASKS", "TASKS", "Sample", "check_task", "make_sample", "needle_start", "solve"]

NEEDLE_TASKS = ("passkey", "multikey", "multivalue", "multiquery", "vartrack")
TASKS = (*NEEDLE_TASKS, "cwe")

# Per-task options and their defaults (each an integer >= 1).
DEFAULTS: dict[str, dict[str, int]] = {
    "passkey": {"n_digits": 5},
    "multikey": {"n_digits": 4, "n_keys": 4},
    "multivalue": {"n_digits": 4, "n_values": 3},
    "multiquery": {"n_digits": 4, "n_queries": 3},
    "vartrack": {"n_digits": 4, "n_hops": 3},
    "cwe": {"n_common": 3},
}


@dataclass
class Sample:
    """One example: ``prompt`` and ``answer`` (lists of ids of :data:`VOCAB`), the prompt index of each
    needle's first token (the first one placed by ``depth``), each needle's length, and what made it."""

    task: str
    prompt: list[int]
    answer: list[int]
    context_len: int
    depth: float | None
    seed: int
    needle_positions: list[int] = field(default_factory=list)
    needle_lens: list[int] = field(default_factory=list)


def check_task(task) -> str:
    """Return ``task`` if it is one of :data:`TASKS`, else ``ValueError`` naming it."""
    if not isinstance(task, str) or task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    return task


def needle_start(depth: float, context_len: int, needle_len: int) -> int:
    """Context index where a needle of ``needle_len`` tokens starts at ``depth``: ``floor(depth * (context_len -
    needle_len) + 0.5)``. ``ValueError`` for ``depth`` outside [0, 1] or a context shorter than the needle."""
    depth = check_number("depth", depth)
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be in [0, 1], got {depth}")
    context_len = check_int("context_len", context_len, minimum=1)
    needle_len = check_int("needle_len", needle_len, minimum=1)
    if context_len < needle_len:
        raise ValueError(f"context_len must be >= the needle's length {needle_len}, got {context_len}")
    return int(math.floor(depth * (context_len - needle_len) + 0.5))


def _digits(rng, n: int) -> list[int]:
    return [VOCAB.digits[int(d)] for d in rng.integers(0, 10, size=n)]


def _place_others(rng, first: int, lens: list[int], context_len: int) -> list[int]:
    """Seeded starts for needles ``lens[1:]`` around the first (at ``first``): each goes to the free run before
    or after it (at random, among those with room left), then each run's needles are shuffled and separated by
    seeded gaps of filler. Overlaps are impossible; ``ValueError`` when the runs cannot hold them (never when
    ``context_len >= sum(lens) + 2 * (max(lens[1:]) - 1)``)."""
    regions = [[0, first, []], [first + lens[0], context_len - first - lens[0], []]]  # start, size, needles
    for k in (int(i) + 1 for i in rng.permutation(len(lens) - 1)):
        room = [r for r in regions if r[1] - sum(lens[j] for j in r[2]) >= lens[k]]
        if not room:
            need = sum(lens) + 2 * (max(lens[1:]) - 1)  # enough whatever the depth
            raise ValueError(f"context_len must be >= {need} to hold every needle around the first at this depth "
                             f"(the runs before and after it are too short), got {context_len}")
        room[int(rng.integers(0, len(room)))][2].append(k)
    starts = [0] * len(lens)
    for begin, size, members in regions:
        slack = size - sum(lens[j] for j in members)
        cuts = sorted(int(c) for c in rng.integers(0, slack + 1, size=len(members)))
        used = 0
        order = [members[int(i)] for i in rng.permutation(len(members))]
        for cut, j in zip(cuts, order, strict=True):
            pos = begin + cut + used
            starts[j] = pos
            used += lens[j]
    return starts[1:]


def _options(task: str, options: dict) -> dict[str, int]:
    unknown = sorted(set(options) - set(DEFAULTS[task]))
    if unknown:
        raise ValueError(f"options of task {task!r} must be among {sorted(DEFAULTS[task])}, got {unknown}")
    out = dict(DEFAULTS[task])
    for name, value in options.items():
        out[name] = check_int(name, value, minimum=1)
    return out


def make_sample(task: str, context_len: int, depth: float | None = 0.5, *, seed: int = 0, **options) -> Sample:
    """One seeded :class:`Sample` of ``task`` with a context of ``context_len`` tokens (module docstring).

    ``options``: the task's integers (:data:`DEFAULTS`, e.g. ``n_digits=5``). Same arguments, same sample.
    """
    task = check_task(task)
    context_len = check_int("context_len", context_len, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    opts = _options(task, options)
    rng = np.random.default_rng(seed)
    context = [VOCAB.filler[int(i)] for i in rng.integers(0, len(VOCAB.filler), size=context_len)]
    if task == "cwe":
        if depth is not None:
            raise ValueError(f"depth must be None for task 'cwe' (it has no needle), got {depth!r}")
        return _cwe(rng, context_len, seed, opts["n_common"])
    if depth is None:
        raise ValueError(f"depth must be a number in [0, 1] for task {task!r}, got None")
    n = opts["n_digits"]
    keys = [int(k) for k in rng.permutation(VOCAB.keys)]
    if task == "passkey":
        value = _digits(rng, n)
        needles, query, answer = [[VOCAB.passkey, VOCAB.equals, *value, VOCAB.end]], [VOCAB.passkey], value
    elif task == "multikey":
        if opts["n_keys"] > len(keys):
            raise ValueError(f"n_keys must be <= {len(keys)}, got {opts['n_keys']}")
        values = [_digits(rng, n) for _ in range(opts["n_keys"])]
        needles = [[k, VOCAB.equals, *v, VOCAB.end] for k, v in zip(keys, values, strict=False)]
        query, answer = [keys[0]], values[0]
    elif task == "multivalue":
        values = []
        while len(values) < opts["n_values"]:
            v = _digits(rng, n)
            if v not in values:
                values.append(v)
            elif len(values) >= 10 ** n:
                raise ValueError(f"n_values must be <= 10 ** n_digits = {10 ** n}, got {opts['n_values']}")
        needles = [[keys[0], VOCAB.equals, *v, VOCAB.end] for v in values]
        query = [keys[0]]
    elif task == "multiquery":
        if opts["n_queries"] > len(keys):
            raise ValueError(f"n_queries must be <= {len(keys)}, got {opts['n_queries']}")
        values = [_digits(rng, n) for _ in range(opts["n_queries"])]
        needles = [[k, VOCAB.equals, *v, VOCAB.end] for k, v in zip(keys, values, strict=False)]
        order = [int(i) for i in rng.permutation(opts["n_queries"])]
        query = [keys[i] for i in order]
        answer = [t for i in order for t in values[i]]
    else:  # vartrack
        hops = opts["n_hops"]
        if hops + 1 > len(keys):
            raise ValueError(f"n_hops must be <= {len(keys) - 1}, got {hops}")
        value = _digits(rng, n)
        needles = [[keys[0], VOCAB.equals, *value, VOCAB.end]]
        needles += [[keys[i + 1], VOCAB.equals, keys[i], VOCAB.end] for i in range(hops)]
        query, answer = value, keys[: hops + 1]
    lens = [len(x) for x in needles]
    if context_len < sum(lens):
        raise ValueError(f"context_len must be >= {sum(lens)} (every needle of {task!r}), got {context_len}")
    starts = [needle_start(depth, context_len, lens[0])]
    starts += _place_others(rng, starts[0], lens, context_len)
    if task == "multivalue":  # values in order of appearance
        answer = [t for _, needle in sorted(zip(starts, needles, strict=True)) for t in needle[2:-1]]
    for s, needle in zip(starts, needles, strict=True):
        context[s: s + len(needle)] = needle
    prompt = [VOCAB.bos, *context, VOCAB.query, *query, VOCAB.answer]
    return Sample(task, prompt, answer, context_len, float(depth), seed, [1 + s for s in starts], lens)


def _cwe(rng, context_len: int, seed: int, n_common: int) -> Sample:
    words = [int(w) for w in rng.permutation(VOCAB.filler)]
    if n_common >= len(words):
        raise ValueError(f"n_common must be < {len(words)}, got {n_common}")
    common, rare = words[:n_common], words[n_common:]
    c = int(context_len // (n_common + len(rare) / 2))
    rest = context_len - n_common * c
    counts = [rest // len(rare) + (1 if i < rest % len(rare) else 0) for i in range(len(rare))]
    if c < 1 or max(counts) >= c:
        need = next(n for n in range(context_len, 100 * context_len + 100)
                    if (cc := int(n // (n_common + len(rare) / 2))) >= 1
                    and -(-(n - n_common * cc) // len(rare)) < cc)
        raise ValueError(f"context_len must be >= {need} for cwe with n_common={n_common}, got {context_len}")
    context = [w for w in common for _ in range(c)] + [w for w, k in zip(rare, counts, strict=True) for _ in range(k)]
    context = [int(t) for t in rng.permutation(context)]
    prompt = [VOCAB.bos, *context, VOCAB.query, VOCAB.answer]
    return Sample("cwe", prompt, sorted(common), context_len, None, seed)


def _split(prompt) -> tuple[list[int], list[int]]:
    prompt = [int(t) for t in prompt]
    if len(prompt) < 3 or prompt[0] != VOCAB.bos or prompt[-1] != VOCAB.answer or VOCAB.query not in prompt:
        raise ValueError("prompt must be [<bos>] + context + [<q>] + query + [<a>] (ids of VOCAB), got "
                         f"{VOCAB.decode(prompt[:8]) if all(0 <= t < VOCAB.size for t in prompt) else prompt[:8]}..")
    q = len(prompt) - 1 - prompt[::-1].index(VOCAB.query)
    return prompt[1:q], prompt[q + 1: -1]


def _statements(context: list[int]) -> list[tuple[int, list[int]]]:
    """``(key, value tokens)`` for each ``K = v.. ;`` run of the context, in order."""
    out, i = [], 0
    names = set(VOCAB.keys) | {VOCAB.passkey}
    while i + 3 < len(context) + 1:
        if context[i] in names and i + 1 < len(context) and context[i + 1] == VOCAB.equals:
            j = i + 2
            while j < len(context) and context[j] != VOCAB.end:
                j += 1
            if j < len(context):
                out.append((context[i], context[i + 2: j]))
                i = j + 1
                continue
        i += 1
    return out


def solve(task: str, prompt, *, n_common: int | None = None) -> list[int]:
    """The answer to ``prompt`` read from the prompt alone (the task's rule, module docstring).

    ``cwe`` needs ``n_common`` (the query does not say how many words); other tasks ignore it.
    """
    task = check_task(task)
    context, query = _split(prompt)
    if task == "cwe":
        n_common = check_int("n_common", DEFAULTS["cwe"]["n_common"] if n_common is None else n_common, minimum=1)
        counts = Counter(context)
        return sorted(w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n_common])
    statements = _statements(context)
    if task == "vartrack":
        names = set(VOCAB.keys) | {VOCAB.passkey}
        chain = [key for key, value in statements if value == query]
        copies = {value[0]: key for key, value in statements if len(value) == 1 and value[0] in names}
        while chain and chain[-1] in copies and copies[chain[-1]] not in chain:
            chain.append(copies[chain[-1]])
        return chain
    return [t for k in query for key, value in statements if key == k for t in value]
