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

Why the SSM and the hybrid stay at chance on MQAR (loss ln 10, the marginal of the ten digits): probes on the
shared CPU (one thread, batch 16, MQAR with 4 pairs in 40 tokens, AdamW, clip 1, no warm-up), issue 26:

- No bug found in the layer or its integration: in a ``("ssm", "attention")`` TinyLM every parameter gets a
  non-zero gradient at the first step and changes (``tests/test_model_mixers.py`` checks it); a one-layer SSM
  TinyLM learns to copy the previous token (loss 2.77 -> 0.007 in 300 steps, through the block's convolution)
  and slowly learns a lag of 6 (through the scan: 2.75 -> 2.23 in 300).
- A minimal Mamba block written independently in the probe (same recipe, sequential scan) stalls the same way
  in front of an attention layer (2.313 after 500 steps), and so does the package's block with its scan removed
  (the output ``D x`` gated).
- Neither helped: the scan's step range 10x larger (``dt_min=0.01, dt_max=1``), the sequential scan, a small
  ``out_proj`` init, unit-scale embeddings, an extra short convolution, no gate, ``expand=2, d_state=16``,
  width 64, lr 1e-3 to 3e-2, 2,000 steps: ``("ssm", "attention")`` stayed at 2.31 every time (all seed 0).
- At width 16, lr 3e-3, 600 steps, 4 pairs every step, most stacks sit on the plateau (two attention layers
  2.312, a first layer that only convolves under attention 2.312: a linear-attention layer whose mixer is
  replaced by the identity). ``("linear", "attention")`` learns early at every setting tried (1.55 after 600
  steps at width 16): its linear-attention layer recalls by itself.
- Leaving the plateau depends on the seed. At width 32, lr 1e-2, 1,500 steps (seed 0): two attention layers
  1.95, ``("attention", "ssm")`` 1.99, convolution-only under attention 2.09, ``("ssm", "attention")`` 2.309.
  Seeds 1 and 2 of the same runs: convolution-only 2.28 and 2.309; ``("ssm", "attention")`` 2.309 and 1.28,
  the lowest loss of any probe. The independent block in the SSM's slot, reduced to exactly the
  convolution-only layer (identity projections, no scan, gate, SiLU or bias), also stalled on seed 0.

So no bug: the two-layer stacks at this budget sit on a plateau (the model predicts only the marginal) that
some seeds leave and some do not, and a hybrid that leaves it learns fastest. A larger learning rate (1e-2)
and more steps are the change to try when re-recording; Zoology tuned the learning rate per model and trained
far longer.

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
