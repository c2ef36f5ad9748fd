"""Chapter 8's experiments on TinyLMs whose layers are attention, recurrent mixers or both (``bench ch08``).

Every model has two layers (:data:`SETUPS`): ``"attention"`` (two softmax attention layers, the transformer of
chapters 1-7), ``"linear"`` (two causal linear-attention layers), ``"ssm"`` (two selective state-space layers,
Mamba-style), ``"hybrid"`` (an SSM layer, then one attention layer). Each is trained with the course's loop
(:func:`longctx_lab.lm.train.train`) and scored by exact match:

- :func:`mqar_run`: trained on MQAR with the pair counts drawn per step (Zoology trains on several), scored per
  query on held-out sequences (another seed stream) at each pair count; the decode state's bytes measured.
- :func:`passkey_run`: trained on passkey at short lengths, scored at longer ones (teacher-forced exact match
  of the whole answer, which equals greedy decoding's: each answer token is argmax-correct either way).
- :func:`decode_cost`: bytes held and seconds per decoded token after a context of ``n`` tokens, measured
  (:func:`longctx_lab.lm.model.forward_with_state`).

Every layer's mixer, attention included, sits behind the same short causal convolution (:data:`SHORT_CONV` taps;
the SSM's Mamba block has its own of 4): a position sees its few predecessors before it mixes, so the key of a
pair reaches its value's position in one step, and what the comparison measures is each mixer's recall, not
which of them happens to have a convolution (Zoology's subquadratic baselines carry one; its attention
baseline does not, and was trained for far longer). Probes behind that choice (issue 26; one thread, batch 64,
MQAR pairs drawn from 2/4/8 in 40 tokens unless said, seed 0):

- Without the convolution two attention layers sat on a plateau (loss about 0.7) for 3,000 to 6,000 steps at widths
  32 and 64, at learning rates 3e-3 and 1e-2, with weight decay 0.1, tied or untied embeddings, init std 0.02 or
  0.1. Scored per query, the plateau is a shortcut, not recall: the last query of a sequence was right 0.99 of
  the time (its value is the one not yet given), the first 0.24 to 0.41 (a guess among the values present). A
  minimal transformer written independently in the probe (learned positions, LayerNorm) did no better. The
  missing piece is the induction circuit: one layer must first copy each key into its value's position.
- With the convolution, two attention layers learned MQAR fully: width 64 at lr 3e-3 (every pair count right
  after 1,500 steps), width 32 at lr 1e-2; at 68 tokens with 4/8/16 pairs, width 64 at lr 5e-3 within 1,000
  steps, width 32 still learning at 2,000 steps (0.93 / 0.82 / 0.53). Width 16 barely moved (0.27 / 0.21 / 0.14
  at 68 tokens after 3,000 steps at lr 1e-2).
- Linear attention with the same convolution at width 32 (72 tokens, lr 5e-3): 0.57 / 0.47 / 0.34 on 4/8/16
  pairs after 2,000 steps.
- The SSM: no bug found in the layer or its integration. In a ``("ssm", "attention")`` TinyLM every parameter
  gets a non-zero gradient at the first step and changes (``tests/test_model_mixers.py``); a one-layer SSM
  TinyLM learns to copy the previous token. The SSM layer in front of attention slows the attention layer:
  ``("ssm", "attention")`` at width 32 reached 0.73 / 0.55 / 0.35 on 2/4/8 pairs in 3,000 steps at lr 1e-2,
  where attention alone reached 1.0.

Conventions: docs/conventions.md. Nothing here is timed in a test; the benchmark records the numbers.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from longctx_lab.core.validate import check_int
from longctx_lab.lm.model import LMConfig, TinyLM, forward_with_state, init_decode_state
from longctx_lab.lm.tasks import VOCAB, make_sample, mqar_batch, score_mqar
from longctx_lab.lm.train.loop import train

__all__ = ["EVAL_STREAM", "SETUPS", "SHORT_CONV", "decode_cost", "model_config", "mqar_run", "passkey_accuracy",
           "passkey_run"]

#: The two-layer stacks compared: per-layer mixers and build_mixer options.
SETUPS: dict[str, dict] = {
    "attention": {"mixers": ("attention", "attention"), "options": {}},
    "linear": {"mixers": ("linear", "linear"), "options": {}},
    "ssm": {"mixers": ("ssm", "ssm"), "options": {"expand": 1, "d_state": 8}},
    "hybrid": {"mixers": ("ssm", "attention"), "options": {"expand": 1, "d_state": 8}},
}
#: Taps of the short causal convolution in front of every layer's mixer, attention included (module docstring).
SHORT_CONV = 4
#: First word of the evaluation seeds (training uses :data:`longctx_lab.lm.train.data.TRAIN_STREAM`).
EVAL_STREAM = 1


def _setup(name: str) -> dict:
    if name not in SETUPS:
        raise ValueError(f"setup must be one of {list(SETUPS)}, got {name!r}")
    return SETUPS[name]


def model_config(setup: str, d_model: int, max_positions: int, *, head_dim: int = 16,
                 short_conv: int = SHORT_CONV) -> LMConfig:
    """The :class:`LMConfig` of ``setup`` at width ``d_model`` (heads of ``head_dim``, MLP hidden ``2 d_model``),
    every layer's mixer behind a short convolution of ``short_conv`` taps (the SSM: its own, of 4)."""
    s = _setup(setup)
    d_model = check_int("d_model", d_model, minimum=head_dim)
    short_conv = check_int("short_conv", short_conv, minimum=0)
    mixers = None if setup == "attention" else s["mixers"]
    return LMConfig(vocab_size=VOCAB.size, d_model=d_model, n_layers=2, n_heads=max(1, d_model // head_dim),
                    mlp_hidden=2 * d_model, max_positions=max_positions, mixers=mixers,
                    mixer_options=dict(s["options"]), mixer_conv=short_conv, attention_conv=short_conv,
                    name=f"ch08-{setup}-{d_model}")


def _mixer_bytes(model: TinyLM, context: int) -> int:
    """Bytes of the decode state's mixer layers (the recurrent ones) after ``context`` tokens; 0 for attention."""
    state = init_decode_state(model, 1, capacity=context)
    forward_with_state(model, torch.full((1, context), VOCAB.pad), state)
    return sum(b for b, kind in zip(state.layer_bytes(), state.kinds, strict=True) if kind != "attention")


@torch.no_grad()
def _mqar_accuracy(model: TinyLM, pairs: int, seq_len: int, n: int, seed: int) -> float:
    tokens, targets = mqar_batch(pairs, seq_len, n, seed=seed, stream=EVAL_STREAM)
    return score_mqar(model(tokens), targets)["query"]


def mqar_run(setup: str, d_model: int, seed: int, *, pairs, seq_len: int, steps: int, batch_size: int,
             lr: float, eval_sequences: int, threads: int = 1, short_conv: int = SHORT_CONV) -> dict:
    """Train ``setup`` at width ``d_model`` on MQAR (pair counts ``pairs`` drawn per step, sequences of
    ``seq_len``), then score it at each pair count on ``eval_sequences`` held-out sequences. Returns a
    JSON-able dict: ``accuracy`` ``{pairs: fraction of queries right}``, ``final_loss``, ``seconds``,
    ``mixer_state_bytes`` (measured), ``n_params``."""
    config = model_config(setup, d_model, seq_len, short_conv=short_conv)
    result = train(config, task="mqar", seq_len=seq_len, steps=steps, batch_size=batch_size, lr=lr,
                   warmup=min(50, steps // 10), seed=seed, task_options={"n_pairs": list(pairs)}, threads=threads,
                   show_progress=False)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        accuracy = {str(p): _mqar_accuracy(result.model, p, seq_len, eval_sequences, seed) for p in pairs}
        state = _mixer_bytes(result.model, seq_len)
    finally:
        torch.set_num_threads(before)
    tail = result.losses[-20:]
    return {"setup": setup, "d_model": d_model, "seed": seed, "accuracy": accuracy,
            "final_loss": sum(tail) / len(tail), "seconds": round(result.seconds, 1),
            "mixer_state_bytes": state, "n_params": config.n_params()}


@torch.no_grad()
def passkey_accuracy(model: TinyLM, length: int, trials: int, *, seed: int = 0, n_digits: int = 3) -> float:
    """Exact match of the passkey's ``n_digits`` digits over ``trials`` prompts of ``length`` context tokens
    (depths evenly spread), teacher-forced (module docstring)."""
    trials = check_int("trials", trials, minimum=1)
    right = 0
    for i in range(trials):
        depth = i / max(1, trials - 1)
        s = make_sample("passkey", length, depth, seed=int(np.random.SeedSequence([EVAL_STREAM, seed, length, i])
                                                                .generate_state(1)[0]), n_digits=n_digits)
        seq = torch.tensor([s.prompt + s.answer[:-1]])
        pred = model(seq)[0, len(s.prompt) - 1:].argmax(-1).tolist()
        right += pred == s.answer
    return right / trials


def passkey_run(setup: str, d_model: int, seed: int, *, train_len, eval_lengths, steps: int, batch_size: int,
                lr: float, trials: int, threads: int = 1, short_conv: int = SHORT_CONV) -> dict:
    """Train ``setup`` on passkey (3 digits) over contexts ``train_len`` (int or ``(lo, hi)``), score it at each
    of ``eval_lengths``: ``{"accuracy": {length: exact match}, "final_loss", "seconds"}``."""
    config = model_config(setup, d_model, max(eval_lengths) + 8, short_conv=short_conv)
    result = train(config, task="passkey", seq_len=train_len, steps=steps, batch_size=batch_size, lr=lr,
                   warmup=min(50, steps // 10), seed=seed, task_options={"n_digits": 3}, threads=threads,
                   show_progress=False)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        accuracy = {str(n): passkey_accuracy(result.model, n, trials, seed=seed) for n in eval_lengths}
    finally:
        torch.set_num_threads(before)
    tail = result.losses[-20:]
    return {"setup": setup, "d_model": d_model, "seed": seed, "accuracy": accuracy,
            "final_loss": sum(tail) / len(tail), "seconds": round(result.seconds, 1)}


@torch.no_grad()
def decode_cost(model: TinyLM, contexts, *, steps: int = 8, repeats: int = 3) -> list[dict]:
    """For each context length ``n``: prefill ``n`` tokens, then decode ``steps`` tokens one at a time.
    Returns ``[{"context", "state_bytes" (measured, the whole decode state), "seconds_per_token" (median of
    ``repeats`` runs of ``steps`` steps)}]``. Attention layers reserve exactly ``n + steps`` tokens."""
    steps = check_int("steps", steps, minimum=1)
    repeats = check_int("repeats", repeats, minimum=1)
    out = []
    gen = torch.Generator().manual_seed(0)
    for n in contexts:
        n = check_int("context", n, minimum=1)
        times, nbytes = [], 0
        for _ in range(repeats):
            state = init_decode_state(model, 1, capacity=n + steps)
            forward_with_state(model, torch.randint(0, VOCAB.size, (1, n), generator=gen), state)
            token = torch.randint(0, VOCAB.size, (1, 1), generator=gen)
            start = time.perf_counter()
            for _ in range(steps):
                token = forward_with_state(model, token, state)[:, -1:].argmax(-1)
            times.append((time.perf_counter() - start) / steps)
            nbytes = state.nbytes()
        out.append({"context": n, "state_bytes": nbytes, "seconds_per_token": statistics.median(times)})
    return out
