"""Passkey retrieval in natural filler text for a model with a real tokenizer (Mohtashami & Jaggi 2023's probe).

A prompt is an instruction, filler sentences of plain English repeated in a fixed cycle (our own text, in the
style of the paper's "The grass is green. The sky is blue..."), the needle "The pass key is 48213. Remember it.
48213 is the pass key." placed after a fraction ``depth`` of the filler sentences, more filler, and the question
"What is the pass key? The pass key is". :func:`make_natural_sample` builds it with the model's tokenizer to a
target length in tokens: whole sentences only, so the prompt has between ``length - longest sentence`` and
``length`` tokens (the record keeps the exact count). The key is ``n_digits`` digits, the first non-zero, drawn
from the trial's seed (:func:`longctx_lab.lm.niah.trial_seed`).

:func:`run_natural_niah` runs the grid lengths x depths x trials with greedy decoding
(:func:`longctx_lab.lm.niah.decoding.greedy_tokens`), scores by exact match of the first run of digits in the
answer against the key (:func:`read_key`), and returns the harness's :class:`~longctx_lab.lm.niah.NIAHResult`
(task ``"passkey-natural"``), so its heatmap, depth curve, effective length and JSON work unchanged.

A tokenizer here is anything with ``encode(text, add_special_tokens=False) -> list[int]`` and
``decode(ids) -> str`` (a Hugging Face tokenizer). Conventions and errors: docs/conventions.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from longctx_lab.core.display import progress
from longctx_lab.core.validate import check_int, check_number
from longctx_lab.lm.niah.harness import NIAHResult, trial_seed

__all__ = ["FILLER", "INSTRUCTION", "QUESTION", "NaturalSample", "make_natural_sample", "natural_sentences",
           "read_key", "run_natural_niah"]

TASK = "passkey-natural"

INSTRUCTION = ("A pass key is hidden somewhere in the long text below. Find it and remember it: you will be "
               "asked for it at the end.")

#: The filler, repeated in this order (written for this course).
FILLER = (
    "The river runs past the old mill.",
    "The wind moves through the tall grass.",
    "A dog sleeps in the warm afternoon sun.",
    "The baker opens his shop before dawn.",
    "Clouds drift slowly over the quiet hills.",
    "The day goes on the way it always has.",
)

NEEDLE = "The pass key is {key}. Remember it. {key} is the pass key."
QUESTION = "What is the pass key? The pass key is"


def _encode(tokenizer, text: str) -> list[int]:
    ids = tokenizer.encode(text, add_special_tokens=False)
    return [int(i) for i in ids]


def natural_sentences(tokenizer) -> dict[str, list]:
    """The prompt's pieces tokenized once: ``instruction``, ``filler`` (one id list per sentence of
    :data:`FILLER`, each with its leading space) and ``question`` (with its leading space)."""
    if not callable(getattr(tokenizer, "encode", None)) or not callable(getattr(tokenizer, "decode", None)):
        raise TypeError(f"tokenizer must have encode(text, add_special_tokens=False) and decode(ids), got "
                        f"{type(tokenizer).__name__}")
    return {"instruction": _encode(tokenizer, INSTRUCTION),
            "filler": [_encode(tokenizer, " " + s) for s in FILLER],
            "question": _encode(tokenizer, " " + QUESTION)}


@dataclass(frozen=True)
class NaturalSample:
    """One prompt: ``prompt`` token ids (``len(prompt) <= length``), the ``key`` (a string of digits), the
    needle's ``depth`` and first token index ``needle_position``, the ``seed`` it was drawn from."""

    prompt: list[int]
    key: str
    length: int
    depth: float
    needle_position: int
    seed: int


def make_natural_sample(tokenizer, length: int, depth: float, *, seed: int = 0, n_digits: int = 5,
                        pieces: dict | None = None) -> NaturalSample:
    """A passkey prompt of at most ``length`` tokens with the needle at ``depth`` in [0, 1] (module docstring).

    ``pieces``: :func:`natural_sentences` of this tokenizer, to tokenize the filler once for many samples.
    Raises ``ValueError`` when ``length`` leaves no room for one filler sentence.
    """
    length = check_int("length", length, minimum=1)
    depth = check_number("depth", depth, minimum=0.0, maximum=1.0)
    seed = check_int("seed", seed, minimum=0)
    n_digits = check_int("n_digits", n_digits, minimum=1)
    pieces = natural_sentences(tokenizer) if pieces is None else pieces
    rng = np.random.default_rng(seed)
    key = str(rng.integers(1, 10)) + "".join(str(d) for d in rng.integers(0, 10, size=n_digits - 1))
    needle = _encode(tokenizer, " " + NEEDLE.format(key=key))
    fixed = len(pieces["instruction"]) + len(needle) + len(pieces["question"])
    budget = length - fixed
    sentences: list[list[int]] = []
    used = 0
    while True:
        nxt = pieces["filler"][len(sentences) % len(FILLER)]
        if used + len(nxt) > budget:
            break
        sentences.append(nxt)
        used += len(nxt)
    if not sentences:
        raise ValueError(f"length must leave room for the instruction, needle, question ({fixed} tokens) and one "
                         f"filler sentence, got {length}")
    cut = round(depth * len(sentences))
    before = [t for s in sentences[:cut] for t in s]
    after = [t for s in sentences[cut:] for t in s]
    prompt = pieces["instruction"] + before + needle + after + pieces["question"]
    return NaturalSample(prompt, key, length, depth, len(pieces["instruction"]) + len(before), seed)


_DIGITS = re.compile(r"\d+")


def read_key(text: str) -> str | None:
    """The first run of digits in ``text`` (the model's answer), or ``None``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    match = _DIGITS.search(text)
    return match.group(0) if match else None


def run_natural_niah(model, tokenizer, *, lengths=(1024, 2048), depths=(0.0, 0.25, 0.5, 0.75, 1.0),
                     trials: int = 3, seed: int = 0, n_digits: int = 5, max_new_tokens: int = 8,
                     before_length=None, show_progress: bool = True, options: dict | None = None) -> NIAHResult:
    """The passkey grid ``lengths`` x ``depths`` x ``trials`` on ``model`` (a TinyLM or a ``transformers`` causal
    LM, :func:`~longctx_lab.lm.niah.decoding.greedy_tokens`), greedy, exact match of the key.

    Trial ``t`` of cell (depth ``i``, length ``L``) uses seed :func:`trial_seed` ``(seed, L, i, t)``.
    ``before_length(prompt_len)`` is called before each length's trials with that length's longest prompt (e.g.
    to freeze a dynamic RoPE schedule at it). ``options`` is recorded in the result. Records hold the key, the
    decoded answer, the prompt's exact length and the needle's token index.
    """
    from longctx_lab.lm.niah.decoding import greedy_tokens
    from longctx_lab.lm.niah.harness import _depths, _lengths

    lengths, depths = _lengths(lengths), _depths("passkey", depths)
    trials = check_int("trials", trials, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=1)
    pieces = natural_sentences(tokenizer)
    samples = {(j, i, t): make_natural_sample(tokenizer, lengths[j], depths[i], n_digits=n_digits, pieces=pieces,
                                              seed=trial_seed(seed, lengths[j], i, t))
               for j in range(len(lengths)) for i in range(len(depths)) for t in range(trials)}
    correct = np.zeros((len(depths), len(lengths)), dtype=np.int64)
    records = []
    current = None
    items = sorted(samples.items())
    for (j, i, t), sample in (progress(items, desc="passkey (natural)") if show_progress else items):
        if before_length is not None and current != j:
            current = j
            before_length(max(len(s.prompt) for (jj, _, _), s in samples.items() if jj == j))
        new = greedy_tokens(model, sample.prompt, max_new_tokens)
        text = tokenizer.decode(new)
        ok = read_key(text) == sample.key
        correct[i, j] += ok
        records.append({"length": lengths[j], "depth": depths[i], "trial": t, "seed": sample.seed,
                        "prompt_tokens": len(sample.prompt), "needle_position": sample.needle_position,
                        "answer": sample.key, "prediction": text, "correct": bool(ok)})
    return NIAHResult(TASK, lengths, depths, trials, seed, {"n_digits": n_digits, **(options or {})},
                      (correct / trials).tolist(), records)
