"""Synthetic long-context tasks: determinism under a seed, the depth rule on token boundaries, the reference
solver, exact match and the bad-input errors (longctx_lab.lm.tasks)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab.lm.tasks import NEEDLE_TASKS, TASKS, VOCAB, exact_match, make_sample, needle_start, solve


def _depth(task):
    return None if task == "cwe" else 0.5


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_same_sample_other_seed_differs(task):
    a = make_sample(task, 96, _depth(task), seed=3)
    b = make_sample(task, 96, _depth(task), seed=3)
    c = make_sample(task, 96, _depth(task), seed=4)
    assert (a.prompt, a.answer, a.needle_positions) == (b.prompt, b.answer, b.needle_positions)
    assert a.prompt != c.prompt


@pytest.mark.parametrize("task", TASKS)
def test_prompt_format_and_solver(task):
    for seed in range(5):
        s = make_sample(task, 80, _depth(task), seed=seed)
        assert s.prompt[0] == VOCAB.bos and s.prompt[-1] == VOCAB.answer
        assert s.prompt[1 + s.context_len] == VOCAB.query
        assert all(0 <= t < VOCAB.size for t in s.prompt + s.answer)
        assert solve(task, s.prompt) == s.answer


@given(task=st.sampled_from(NEEDLE_TASKS), length=st.integers(40, 300), depth=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**31))
def test_needle_at_requested_depth_on_token_boundary(task, length, depth, seed):
    s = make_sample(task, length, depth, seed=seed)
    n = s.needle_lens[0]
    start = math.floor(depth * (length - n) + 0.5)
    assert s.needle_positions[0] == 1 + start
    needle = s.prompt[1 + start: 1 + start + n]
    # the needle is a whole statement: key, '=', value..., ';' -- it starts and ends on a token
    assert needle[1] == VOCAB.equals and needle[-1] == VOCAB.end
    assert needle[0] in set(VOCAB.keys) | {VOCAB.passkey}
    # the token before it is filler, <bos> or another statement's end: it does not split a statement
    assert s.prompt[start] in set(VOCAB.filler) | {VOCAB.bos, VOCAB.end}
    # needles do not overlap
    runs = sorted(zip(s.needle_positions, s.needle_lens, strict=True))
    assert all(a + la <= b for (a, la), (b, _) in zip(runs, runs[1:], strict=False))
    assert solve(task, s.prompt) == s.answer


def test_depth_ends():
    s0 = make_sample("passkey", 50, 0.0, seed=1, n_digits=3)
    s1 = make_sample("passkey", 50, 1.0, seed=1, n_digits=3)
    assert s0.needle_positions == [1]
    assert s1.needle_positions[0] + s1.needle_lens[0] == 1 + 50   # ends on the context's last token
    assert VOCAB.decode(s0.prompt[1:4]) == "pass = " + VOCAB.decode(s0.answer[:1])


def test_tasks_answers():
    s = make_sample("multivalue", 120, 0.3, seed=2, n_values=3, n_digits=2)
    assert len(s.answer) == 6 and len(set(map(tuple, (s.answer[i:i + 2] for i in (0, 2, 4))))) == 3
    q = make_sample("multiquery", 120, 0.3, seed=2, n_queries=4, n_digits=2)
    assert len(q.answer) == 8
    v = make_sample("vartrack", 120, 0.3, seed=2, n_hops=4)
    assert len(v.answer) == 5 and set(v.answer) <= set(VOCAB.keys)
    c = make_sample("cwe", 200, None, seed=2, n_common=4)
    context = c.prompt[1:-2]
    counts = sorted(((context.count(w), w) for w in set(context)), reverse=True)
    assert sorted(w for _, w in counts[:4]) == c.answer and counts[3][0] > counts[4][0]


def test_exact_match():
    assert exact_match([7, 8], [7, 8])
    assert not exact_match([7, 8, 9], [7, 8])
    assert not exact_match([8, 7], [7, 8])
    assert not exact_match([], [7])
    with pytest.raises(TypeError, match="prediction"):
        exact_match("78", [7, 8])


def test_vocab_round_trip():
    ids = VOCAB.encode("<bos> pass = 1 2 ; w3 <q> pass <a>")
    assert VOCAB.decode(ids) == "<bos> pass = 1 2 ; w3 <q> pass <a>"
    assert len(set(VOCAB.tokens)) == VOCAB.size
    with pytest.raises(ValueError, match="token must be"):
        VOCAB.encode("nope")
    with pytest.raises(ValueError, match="ids must hold"):
        VOCAB.decode([VOCAB.size])


@pytest.mark.parametrize(("call", "match"), [
    (lambda: make_sample("passkey", 64, 1.5), r"depth must be in \[0, 1\], got 1.5"),
    (lambda: make_sample("passkey", 64, -0.1), r"depth must be in \[0, 1\]"),
    (lambda: needle_start(0.5, 5, 8), "context_len must be >= the needle's length 8, got 5"),
    (lambda: make_sample("passkey", 6, 0.5), "context_len must be >= 8"),
    (lambda: make_sample("multikey", 20, 0.5), "context_len must be >= 28"),
    (lambda: make_sample("haystack", 64, 0.5), "task must be one of"),
    (lambda: make_sample("passkey", 64, None), "depth must be a number"),
    (lambda: make_sample("cwe", 64, 0.5), "depth must be None"),
    (lambda: make_sample("multikey", 28, 0.5), "context_len must be >= 40 to hold every needle"),
    (lambda: make_sample("cwe", 20, None), "context_len must be >= "),
    (lambda: make_sample("passkey", 64, 0.5, n_keys=3), "options of task 'passkey'"),
    (lambda: make_sample("passkey", 0, 0.5), "context_len must be an integer >= 1"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@given(task=st.sampled_from(("multikey", "multivalue", "multiquery", "vartrack")), depth=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**31), extra=st.integers(0, 6))
def test_tight_contexts_place_every_needle(task, depth, seed, extra):
    # a context of sum(lens) + 2 * (max(other lens) - 1) tokens always holds every needle, without overlap
    lens = make_sample(task, 200, 0.5, seed=0).needle_lens
    s = make_sample(task, sum(lens) + 2 * (max(lens[1:]) - 1) + extra, depth, seed=seed)
    runs = sorted(zip(s.needle_positions, s.needle_lens, strict=True))
    assert all(a + la <= b for (a, la), (b, _) in zip(runs, runs[1:], strict=False))
    assert runs[-1][0] + runs[-1][1] <= 1 + s.context_len
    assert solve(task, s.prompt) == s.answer
