"""Multi-query associative recall (MQAR, Arora et al. 2023, "Zoology"), over :data:`longctx_lab.lm.tasks.VOCAB`.

One sequence of exactly ``seq_len`` tokens::

    <bos> k1 v1 k2 v2 .. kD vD <pad> .. <pad> <q> q1 a1 q2 a2 .. qQ aQ

- ``D = n_pairs`` key-value pairs first: the keys are distinct, drawn from :data:`MQAR_KEYS` (the 16 key names
  ``K0..K15`` and the 24 words ``w0..w23``: 40 possible keys), each value one digit (:data:`MQAR_VALUES`,
  drawn with replacement: two keys may share a value, as in Zoology).
- then ``<pad>`` tokens (the gap; Zoology's zeros) up to the queries, so that ``seq_len`` sets the distance;
- then ``<q>`` and ``Q = n_queries`` (default ``n_pairs``) of the keys, in a seeded order, each followed by its
  value: the model must produce ``a_i`` at the position of ``q_i`` (teacher forcing, Zoology's set-up: every
  query is scored, and the earlier answers are given).

:class:`MQARSample` holds ``tokens`` (the whole sequence), ``answer`` (the values in query order) and
``answer_positions`` (the index of each value in ``tokens``; it is predicted from the index before it).
Scoring is the tasks' exact match, per query (:func:`score_mqar`: the fraction of queries whose predicted token
is exactly the value) and per sequence (every query right). Same arguments, same sample (``seed``).
Bad input raises ``ValueError``/``TypeError`` naming the argument (docs/conventions.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from longctx_lab.core.validate import check_int
from longctx_lab.lm.tasks.scoring import exact_match
from longctx_lab.lm.tasks.vocab import VOCAB

__all__ = ["MQAR_KEYS", "MQAR_VALUES", "MQARSample", "make_mqar", "min_mqar_len", "mqar_batch", "score_mqar",
           "solve_mqar"]

#: Token ids a key may take (40: ``K0..K15`` then ``w0..w23``).
MQAR_KEYS = (*VOCAB.keys, *VOCAB.filler)
#: Token ids a value may take (the 10 digits).
MQAR_VALUES = tuple(VOCAB.digits)
_IGNORE = -100


@dataclass
class MQARSample:
    """One MQAR sequence (module docstring): ``tokens``, the ``answer`` values in query order, and the index
    in ``tokens`` of each answer token (``answer_positions``)."""

    tokens: list[int]
    answer: list[int]
    answer_positions: list[int]
    n_pairs: int
    seq_len: int
    seed: int


def min_mqar_len(n_pairs: int, n_queries: int | None = None) -> int:
    """Shortest ``seq_len`` that holds ``n_pairs`` pairs and ``n_queries`` queries: ``2 + 2 * (D + Q)``."""
    n_pairs = check_int("n_pairs", n_pairs, minimum=1)
    n_queries = n_pairs if n_queries is None else check_int("n_queries", n_queries, minimum=1)
    return 2 + 2 * (n_pairs + n_queries)


def make_mqar(n_pairs: int, seq_len: int, *, seed: int = 0, n_queries: int | None = None) -> MQARSample:
    """One seeded MQAR sequence of ``seq_len`` tokens with ``n_pairs`` pairs and ``n_queries`` queries.

    ``ValueError`` when ``n_pairs > 40`` (the number of keys), ``n_queries > n_pairs`` (a query asks a stored
    key) or ``seq_len < min_mqar_len(n_pairs, n_queries)``.
    """
    n_pairs = check_int("n_pairs", n_pairs, minimum=1)
    if n_pairs > len(MQAR_KEYS):
        raise ValueError(f"n_pairs must be <= {len(MQAR_KEYS)} (the distinct keys of MQAR_KEYS), got {n_pairs}")
    n_queries = n_pairs if n_queries is None else check_int("n_queries", n_queries, minimum=1)
    if n_queries > n_pairs:
        raise ValueError(f"n_queries must be <= n_pairs = {n_pairs} (each query asks a distinct stored key), "
                         f"got {n_queries}")
    seq_len = check_int("seq_len", seq_len, minimum=1)
    need = min_mqar_len(n_pairs, n_queries)
    if seq_len < need:
        raise ValueError(f"seq_len must be >= {need} (2 + 2 * (n_pairs + n_queries)), got {seq_len}")
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    keys = [MQAR_KEYS[int(i)] for i in rng.permutation(len(MQAR_KEYS))[:n_pairs]]
    values = [MQAR_VALUES[int(i)] for i in rng.integers(0, len(MQAR_VALUES), size=n_pairs)]
    asked = [int(i) for i in rng.permutation(n_pairs)[:n_queries]]
    tokens = [VOCAB.bos] + [t for k, v in zip(keys, values, strict=True) for t in (k, v)]
    tokens += [VOCAB.pad] * (seq_len - need) + [VOCAB.query]
    start = len(tokens)
    for i in asked:
        tokens += [keys[i], values[i]]
    positions = [start + 2 * j + 1 for j in range(n_queries)]
    return MQARSample(tokens, [values[i] for i in asked], positions, n_pairs, seq_len, seed)


def solve_mqar(tokens) -> list[int]:
    """The values of the queried keys read from ``tokens`` alone (the reference an oracle would give): the
    pairs before the first ``<pad>`` or ``<q>``, the queries after the last ``<q>``."""
    tokens = [int(t) for t in tokens]
    if len(tokens) < 4 or tokens[0] != VOCAB.bos or VOCAB.query not in tokens:
        raise ValueError("tokens must be an MQAR sequence (<bos> pairs <pad>.. <q> queries), got "
                         f"{tokens[:8]}..")
    q = tokens.index(VOCAB.query)
    body = [t for t in tokens[1:q] if t != VOCAB.pad]
    table = dict(zip(body[0::2], body[1::2], strict=False))
    return [table.get(k, -1) for k in tokens[q + 1::2]]


def mqar_batch(n_pairs: int, seq_len: int, batch_size: int, *, seed: int = 0, step: int = 0,
               n_queries: int | None = None, stream: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens, targets)``, both ``(batch_size, seq_len - 1)`` int64: the sequences minus their last token,
    and ``-100`` except where the next token is an answer (the loss and the score read only those).

    Row ``i`` is ``make_mqar(.., seed=s)`` with ``s`` drawn from ``SeedSequence([stream, seed, step, i])``:
    training uses one ``stream`` and evaluation another, so the two never share a sequence by construction.
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    step = check_int("step", step, minimum=0)
    stream = check_int("stream", stream, minimum=0)
    rows, targets = [], []
    for i in range(batch_size):
        rng = np.random.default_rng(np.random.SeedSequence([stream, seed, step, i]))
        s = make_mqar(n_pairs, seq_len, seed=int(rng.integers(0, 2**63 - 1)), n_queries=n_queries)
        target = [_IGNORE] * len(s.tokens)
        for p in s.answer_positions:
            target[p - 1] = s.tokens[p]
        rows.append(s.tokens[:-1])
        targets.append(target[:-1])
    return torch.tensor(rows, dtype=torch.long), torch.tensor(targets, dtype=torch.long)


def score_mqar(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Exact-match scores of a batch: ``{"query": fraction of answered positions whose argmax is the target,
    "sequence": fraction of rows with every answer right}``. ``logits`` ``(batch, seq, vocab)``, ``targets``
    ``(batch, seq)`` from :func:`mqar_batch` (``-100`` where nothing is asked)."""
    if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise TypeError(f"logits and targets must be tensors, got {type(logits).__name__} and "
                        f"{type(targets).__name__}")
    if logits.ndim != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(f"logits must be (batch, seq, vocab) and targets (batch, seq), got "
                         f"{tuple(logits.shape)} and {tuple(targets.shape)}")
    asked = targets != _IGNORE
    if not bool(asked.any(dim=1).all()):
        raise ValueError("targets must ask at least one answer in every row (-100 everywhere in a row)")
    pred = logits.argmax(-1)
    per_query = [exact_match([int(p)], [int(t)]) for p, t in zip(pred[asked], targets[asked], strict=True)]
    rows = [exact_match(pred[b][asked[b]].tolist(), targets[b][asked[b]].tolist()) for b in range(len(targets))]
    return {"query": sum(per_query) / len(per_query), "sequence": sum(rows) / len(rows)}
