"""``train``: fit a :class:`~longctx_lab.lm.model.TinyLM` on a synthetic task, on the CPU, deterministically.

AdamW with a linear warm-up (``warmup`` steps) and a cosine decay to 10% of ``lr``; gradients clipped to
norm 1; the loss is cross-entropy on the answer tokens only (:mod:`.data`). Attention runs through the
model's layers, i.e. the dispatcher (:func:`longctx_lab.kernels.flash_attention`).

Determinism: the weights come from ``seed`` (``TinyLM(config, seed=seed)``), the batches from ``seed`` and the
step (:func:`.data.make_batch`), and the run uses a fixed number of intra-op threads (``threads``, default
the current count): the same arguments on the same machine give bit-identical weights. Different thread
counts may round differently (float32 reductions are split differently), which is why the count is
recorded in :attr:`TrainResult.args`.

``task`` may be a list of tasks (multi-task training): step ``s`` trains on ``task[s % len(task)]`` (round
robin, one task per batch, since a batch has one prompt length); each entry of ``task_options`` goes to every
listed task that takes it (``n_digits`` to the needle tasks, not to ``cwe``) and one that no listed task takes
raises ``ValueError``.

``init`` continues from an existing model (fine-tuning, e.g. progressive context extension): a
:class:`TinyLM` or a checkpoint directory; its weights are copied into a model built from ``config``,
whose shape must match (only ``rope_*``, ``max_positions``, ``name`` and ``init_std`` may differ) and
``seed`` then only draws the batches.

The recipe (:data:`PASSKEY_MODEL`, :data:`PASSKEY_RECIPE`) came from short probes on this course's 2 shared
CPU cores (batch 32, fixed context 64, seed 0, exact match over 5 depths x 20 trials at 64):

- d_model 64, 4 heads, 5 digits, lr 3e-3, 1500 steps: final loss 0.19, 60% exact; 3 digits, lr 5e-3, 1000
  steps: 0.24, 79%. The loss falls steadily (no sudden jump) once the first digit is learned (about 200
  steps); the later digits need the model to find "the token after the one I just wrote" in the needle.
- d_model 128, 4 heads of 32, 3 digits, lr 3e-3, 800 steps: 0.15, 86%: the wider model's loss fell about
  twice as fast per step, at a similar time per step in these (noisy, shared-core) probes.
- lr 6e-3 (d_model 128) and 1e-2 (d_model 64) learned more slowly, and so did RoPE base 500 instead of
  10 000 (one probe each, not a sweep).
- One intra-op thread ran 4-5x faster than two while other jobs shared the cores (thread hand-offs).

Five random digits repeat a digit about half of the time (1 - 10*9*8*7/10**4 of the first four), and a copy
head keyed only on "the previous digit" cannot tell which copy to continue from: a likely reason the 5-digit
runs stay lower. Three digits are the recipe's compromise (chance 1 in 1000 per answer).

Longer runs over contexts of 32-128 tokens (exact match over 5 depths x 20 trials at 64 and 128):

- d_model 128, 2500 steps, lr 3e-3: loss 0.0046, 100% at 32-128, but 761 s (one thread, shared cores).
- d_model 96, 2000 steps, lr 3e-3: loss 0.031, 96% / 93%, 266 s (one thread, shared cores).
- d_model 64, 3000 steps, lr 4e-3 (the recipe): loss 0.0002, 100% / 100%, 218 s on one thread beside another
  job; the shipped command (2 threads) took 166 s on the idle machine and gave bit-identical weights to the
  shipped run (``benchmarks/results/train-passkey-128.json``). The narrow model's steps are about 2.5x
  cheaper, which more than pays for the extra steps it needs.

The shipped ``multitask-128`` (chapter 6, section 9) is ``passkey-128`` fine-tuned on all six tasks in turn: 1500
steps (250 a task), lr 3e-3, contexts of 64-128 tokens (``cwe`` cannot lay out 52 or 53 tokens with three common
words, nor fewer than 41), 3-digit values; its command, time and per-task scores are in
``benchmarks/results/train-multitask-128.json``. A probe of the same arguments gave passkey 1.00, multikey 0.2 and
0 on the other tasks at 128 tokens: within this budget only the task closest to passkey is partly learned.
"""

from __future__ import annotations

import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from longctx_lab.core.display import progress
from longctx_lab.core.validate import check_bool, check_int, check_number
from longctx_lab.lm.model import LMConfig, TinyLM, load_model, save_model
from longctx_lab.lm.tasks import VOCAB
from longctx_lab.lm.tasks.generators import DEFAULTS as TASK_OPTIONS
from longctx_lab.lm.train.data import IGNORE, MQAR_OPTIONS, check_seq_len, check_train_task, make_batch

__all__ = ["PASSKEY_MODEL", "PASSKEY_RECIPE", "TrainResult", "check_tasks", "options_for", "train"]

#: The shape of the course's passkey model (``LMConfig`` fields besides ``vocab_size`` and ``max_positions``):
#: ``longctx-lab train``'s shape defaults (the chapter-6 experiments pin their own: ``extension.experiments``).
PASSKEY_MODEL = {"d_model": 64, "n_layers": 2, "n_heads": 4, "mlp_hidden": 256}

#: The training recipe of the shipped ``passkey-128`` checkpoint: :func:`train`'s defaults, except
#: ``task_options`` (``train``'s default is the task's own options; pass these, or ``--task-option n_digits=3``).
#: How it was chosen: the module docstring.
PASSKEY_RECIPE = {"task": "passkey", "seq_len": (32, 128), "steps": 3000, "batch_size": 32, "lr": 4e-3,
                  "warmup": 50, "task_options": {"n_digits": 3}}


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained ``model`` (eval mode), the loss of every step, the wall
    time, and the arguments that made it (JSON-able, stored with a checkpoint)."""

    model: TinyLM
    losses: list[float]
    seconds: float
    args: dict = field(default_factory=dict)

    def save(self, directory, *, command: str | None = None, extra: dict | None = None) -> Path:
        """Write the checkpoint (:func:`longctx_lab.lm.model.save_model`) with ``metadata`` = the training
        arguments, the final loss (mean of the last 10 steps; trained on several tasks, also
        ``final_loss_by_task``, the mean of each task's last 10 steps), the seconds, the versions and ``command``
        (default: this process's ``sys.argv``)."""
        from longctx_lab.core.environment import package_versions

        tail = self.losses[-10:]
        by_task = {}
        if isinstance(self.args.get("task"), list):  # multi-task: step s trained task[s % len(task)]
            tasks = self.args["task"]
            for i, t in enumerate(tasks):
                mine = self.losses[i::len(tasks)][-10:]
                by_task[t] = sum(mine) / len(mine) if mine else None
        metadata = {"train": self.args, "final_loss": sum(tail) / len(tail), "seconds": round(self.seconds, 1),
                    **({"final_loss_by_task": by_task} if by_task else {}),
                    "command": command if command is not None else shlex.join(sys.argv), "versions": package_versions(),
                    **(extra or {})}
        return save_model(self.model, directory, metadata=metadata)


def _initial_model(config: LMConfig, init, seed: int) -> TinyLM:
    model = TinyLM(config, seed=seed)
    if init is None:
        return model
    if isinstance(init, (str, Path)):
        init = load_model(init)
    if not isinstance(init, TinyLM):
        raise TypeError(f"init must be None, a TinyLM or a checkpoint directory, got {type(init).__name__}")
    free = ("max_positions", "name", "init_std")  # not part of what the weights compute

    def shape(c: LMConfig) -> dict:
        return {k: v for k, v in c.to_dict().items() if not k.startswith("rope_") and k not in free}

    mine, theirs = shape(config), shape(init.config)
    if mine != theirs:
        diff = sorted(k for k in mine if mine[k] != theirs.get(k))
        raise ValueError(f"init must have config's shape (only rope_*, max_positions, name and init_std may "
                         f"differ), got differences in {diff}")
    model.load_state_dict(init.state_dict())
    return model


def check_tasks(task) -> list[str]:
    """``task`` (one task name, or a non-empty list/tuple of distinct names) as a list of task names."""
    if isinstance(task, str):
        return [check_train_task(task)]
    if not isinstance(task, (list, tuple)) or not task or len(set(task)) != len(task):
        raise ValueError(f"task must be a task name or a non-empty list of distinct task names, got {task!r}")
    return [check_train_task(t) for t in task]


def options_for(task: str, tasks: list[str], task_options: dict | None) -> dict:
    """The entries of ``task_options`` that ``task`` takes when training on ``tasks`` (all of them for a single
    task, so that a wrong option fails in ``make_sample``); ``ValueError`` for an option no listed task takes."""
    options = dict(task_options or {})
    if len(tasks) == 1:
        return options
    unused = sorted(k for k in options if not any(k in _options_of(t) for t in tasks))
    if unused:
        raise ValueError(f"task_options must be options of the listed tasks {tasks}, got {unused}")
    return {k: v for k, v in options.items() if k in _options_of(task)}


def _options_of(task: str):
    return MQAR_OPTIONS if task == "mqar" else TASK_OPTIONS[task]


def _lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def train(config: LMConfig, *, task: str = PASSKEY_RECIPE["task"], seq_len=PASSKEY_RECIPE["seq_len"],
          steps: int = PASSKEY_RECIPE["steps"], batch_size: int = PASSKEY_RECIPE["batch_size"],
          lr: float = PASSKEY_RECIPE["lr"], warmup: int = PASSKEY_RECIPE["warmup"], weight_decay: float = 0.0,
          seed: int = 0, init=None,
          task_options: dict | None = None, threads: int | None = None, show_progress: bool = True) -> TrainResult:
    """Train ``config``'s model on ``task`` for ``steps`` steps of ``batch_size`` samples (module docstring).

    ``task``: one task, or a list of tasks trained in turn (multi-task, module docstring). ``seq_len``: the
    context length of every step (int) or a ``(lo, hi)`` range drawn per step (variable-length training).
    ``task_options`` go to :func:`longctx_lab.lm.tasks.make_sample` (e.g. ``{"n_digits": 5}``).
    Returns a :class:`TrainResult`; raises ``ValueError`` if a loss becomes NaN or infinite (the step is named).
    """
    if not isinstance(config, LMConfig):
        raise TypeError(f"config must be an LMConfig, got {type(config).__name__}")
    if config.vocab_size < VOCAB.size:
        raise ValueError(f"config.vocab_size must be >= VOCAB.size = {VOCAB.size}, got {config.vocab_size}")
    tasks = check_tasks(task)
    lo, hi = check_seq_len(seq_len)
    steps = check_int("steps", steps, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    lr = check_number("lr", lr, exclusive_minimum=0)
    warmup = check_int("warmup", warmup, minimum=0)
    weight_decay = check_number("weight_decay", weight_decay, minimum=0)
    seed = check_int("seed", seed, minimum=0)
    threads = torch.get_num_threads() if threads is None else check_int("threads", threads, minimum=1)
    check_bool("show_progress", show_progress)
    if task_options is not None and not isinstance(task_options, dict):
        raise TypeError(f"task_options must be a dict or None, got {type(task_options).__name__}")
    per_task = {t: options_for(t, tasks, task_options) for t in tasks}
    for t in tasks:  # bad task options fail before any work
        make_batch(t, lo, 1, seed=seed, task_options=per_task[t])

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = _initial_model(config, init, seed).train()
        opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay)
        losses: list[float] = []
        start = time.perf_counter()
        it = range(steps)
        if show_progress:
            it = progress(it, desc=f"train {'+'.join(tasks)} L={lo}" + (f"-{hi}" if hi != lo else ""), total=steps)
        for step in it:
            t = tasks[step % len(tasks)]
            tokens, targets = make_batch(t, (lo, hi), batch_size, seed=seed, step=step, task_options=per_task[t])
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, steps, lr, warmup)
            logits = model(tokens)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE)
            if not torch.isfinite(loss):
                raise ValueError(f"the loss became {loss.item()} at step {step}; lower lr (got {lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(before)
    args = {"config": config.to_dict(), "task": tasks[0] if isinstance(task, str) else tasks,
            "seq_len": [lo, hi] if hi != lo else lo, "steps": steps,
            "batch_size": batch_size, "lr": lr, "warmup": warmup, "weight_decay": weight_decay, "seed": seed,
            "init": None if init is None else (str(init) if isinstance(init, (str, Path)) else "model"),
            "task_options": dict(task_options or {}), "threads": threads}
    return TrainResult(model.eval(), losses, seconds, args)
