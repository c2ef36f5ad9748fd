"""MQAR (longctx_lab.lm.tasks.mqar): the layout, determinism, the reference solver, the teacher-forced batch,
the exact-match scores and the bad-input errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab.lm.tasks import MQAR_KEYS, MQAR_VALUES, VOCAB, make_mqar, mqar_batch, score_mqar, solve_mqar
from longctx_lab.lm.train.data import TRAIN_STREAM, make_batch


@given(n_pairs=st.integers(1, 40), extra=st.integers(0, 40), seed=st.integers(0, 2**31),
       share=st.floats(0.01, 1.0))
def test_layout_and_solver(n_pairs, extra, seed, share):
    n_queries = max(1, int(share * n_pairs))
    seq_len = 2 + 2 * (n_pairs + n_queries) + extra
    s = make_mqar(n_pairs, seq_len, seed=seed, n_queries=n_queries)
    assert len(s.tokens) == seq_len and s.tokens[0] == VOCAB.bos
    keys, values = s.tokens[1:2 * n_pairs + 1:2], s.tokens[2:2 * n_pairs + 2:2]
    assert len(set(keys)) == n_pairs and set(keys) <= set(MQAR_KEYS) and set(values) <= set(MQAR_VALUES)
    assert s.tokens[2 * n_pairs + 1: 2 * n_pairs + 1 + extra] == [VOCAB.pad] * extra
    q = s.tokens.index(VOCAB.query)
    assert q == seq_len - 2 * n_queries - 1
    table = dict(zip(keys, values, strict=True))
    queried = s.tokens[q + 1::2]
    assert len(set(queried)) == n_queries and set(queried) <= set(keys)
    assert s.answer == [table[k] for k in queried]                    # independent lookup
    assert [s.tokens[p] for p in s.answer_positions] == s.answer
    assert all(s.tokens[p - 1] == k for p, k in zip(s.answer_positions, queried, strict=True))
    assert solve_mqar(s.tokens) == s.answer


def test_same_seed_same_sequence_other_seed_differs():
    a, b, c = make_mqar(8, 64, seed=5), make_mqar(8, 64, seed=5), make_mqar(8, 64, seed=6)
    assert a == b and a.tokens != c.tokens


def test_batch_targets_are_the_answers_one_step_ahead():
    tokens, targets = mqar_batch(4, 30, 3, seed=1, step=2, stream=9)
    assert tokens.shape == targets.shape == (3, 29)
    for row, target in zip(tokens.tolist(), targets.tolist(), strict=True):
        asked = [i for i, t in enumerate(target) if t != -100]
        assert len(asked) == 4
        assert [target[i] for i in asked] == solve_mqar(row + [VOCAB.pad])  # the last token is not an input
        assert all(row[i] in MQAR_KEYS for i in asked)
    again = mqar_batch(4, 30, 3, seed=1, step=2, stream=9)
    other = mqar_batch(4, 30, 3, seed=1, step=2, stream=10)
    assert torch.equal(tokens, again[0]) and not torch.equal(tokens, other[0])


def test_training_batches_come_from_their_own_stream():
    tokens, targets = make_batch("mqar", 40, 2, seed=0, step=0, task_options={"n_pairs": 6})
    ref = mqar_batch(6, 40, 2, seed=0, step=0, stream=TRAIN_STREAM)
    assert torch.equal(tokens, ref[0]) and torch.equal(targets, ref[1])
    with pytest.raises(ValueError, match="options of task 'mqar'"):
        make_batch("mqar", 40, 2, task_options={"n_digits": 3})


def test_scores_are_exact_match_per_query_and_per_sequence():
    tokens, targets = mqar_batch(3, 20, 2, seed=0)
    logits = torch.zeros(*tokens.shape, VOCAB.size)
    asked = (targets != -100).nonzero().tolist()
    for b, i in asked:
        logits[b, i, targets[b, i]] = 1.0
    assert score_mqar(logits, targets) == {"query": 1.0, "sequence": 1.0}
    b, i = asked[0]
    logits[b, i, targets[b, i]] = 0.0
    logits[b, i, VOCAB.pad] = 1.0
    assert score_mqar(logits, targets) == {"query": 5 / 6, "sequence": 0.5}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_pairs": 0, "seq_len": 10}, "n_pairs"),
    ({"n_pairs": 41, "seq_len": 200}, "n_pairs must be <= 40"),
    ({"n_pairs": 3, "seq_len": 40, "n_queries": 4}, "n_queries must be <= n_pairs"),
    ({"n_pairs": 4, "seq_len": 17}, "seq_len must be >= 18"),
    ({"n_pairs": 4, "seq_len": 20, "seed": -1}, "seed"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_mqar(**kwargs)


def test_bad_score_inputs_are_named():
    with pytest.raises(ValueError, match="logits must be"):
        score_mqar(torch.zeros(2, 5), torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="at least one answer"):
        score_mqar(torch.zeros(1, 5, 3), torch.full((1, 5), -100))
    with pytest.raises(ValueError, match="MQAR sequence"):
        solve_mqar([5, 6, 7, 8])
