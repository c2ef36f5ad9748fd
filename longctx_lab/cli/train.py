"""``longctx-lab train``: train the tiny LM on a synthetic task from the command line
(:func:`longctx_lab.lm.train.train`).

::

    longctx-lab train --out DIR [--task passkey | --task passkey,multikey,...] [--seq-len 128 | --seq-len 32:128]
                      [--steps N] [--batch-size B]
                      [--lr LR] [--warmup N] [--seed S] [--d-model D --layers N --heads H --kv-heads K ...]
                      [--task-option n_digits=3] [--init CHECKPOINT] [--threads T] [--eval-trials N]

It builds the :class:`~longctx_lab.lm.model.LMConfig` from the shape flags (vocabulary:
:data:`longctx_lab.lm.tasks.VOCAB`;
``max_positions`` defaults to the longest training length), calls :func:`~longctx_lab.lm.train.train` (a flag left
out takes ``train``'s default, so the command records only what was typed), and saves the checkpoint to ``--out``
with the command line in its metadata. ``--eval-trials N`` then scores the model with
:func:`longctx_lab.lm.niah.run_niah` at the training length(s) over 5 depths and stores the accuracy in the
metadata (``metadata["eval"]``; with several tasks, ``metadata["eval"]["tasks"]`` holds one such summary per task,
the ``cwe`` task with ``depths`` ``[None]``). Bad input exits with status 2 and one line naming the
argument.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys

from longctx_lab.cli.args import (
    command_line,
    nonnegative_float,
    nonnegative_int,
    one_line_errors,
    positive_float,
    positive_int,
)

__all__ = ["add_arguments", "add_parser", "build_config", "parse_seq_len", "task_option"]


def parse_seq_len(text: str) -> int | tuple[int, int]:
    """argparse type: ``N`` (every step ``N`` context tokens) or ``LO:HI`` (drawn per step, ``1 <= LO <= HI``)."""
    parts = text.split(":")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 1 or (len(values) == 2 and values[0] > values[1]):
        raise argparse.ArgumentTypeError(f"must be N or LO:HI with integers 1 <= LO <= HI, got {text!r}")
    return values[0] if len(values) == 1 else (values[0], values[1])


def _window(text: str) -> int | list:
    """argparse type: ``W`` (every layer) or one entry per layer, comma-separated, each ``W`` or ``none``."""
    entries = []
    for part in text.split(","):
        if part.strip().lower() == "none":
            entries.append(None)
            continue
        try:
            entries.append(positive_int(part))
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"must be W or a comma-separated list of W or none per layer, "
                                             f"with integers W >= 1, got {text!r}") from None
    return entries[0] if len(entries) == 1 else entries


def task_option(text: str) -> tuple[str, int]:
    """argparse type: ``NAME=INT`` (a :func:`longctx_lab.lm.tasks.make_sample` option, e.g. ``n_digits=3``)."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"must be NAME=INTEGER (e.g. n_digits=3), got {text!r}")
    try:
        return name, positive_int(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be NAME=INTEGER with an integer >= 1, got {text!r}") from None


def task_list(text: str) -> str | list[str]:
    """argparse type: one task name, or several comma-separated (multi-task training, in turn)."""
    from longctx_lab.lm.tasks import TASKS

    names = [t.strip() for t in text.split(",")]
    if any(t not in TASKS for t in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"must be one of {list(TASKS)} or a comma-separated list of distinct ones, "
                                         f"got {text!r}")
    return names[0] if len(names) == 1 else names


def _train_defaults() -> dict:
    from longctx_lab.lm.train import train

    return {k: p.default for k, p in inspect.signature(train).parameters.items()
            if p.default is not inspect.Parameter.empty}


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``longctx-lab train`` on the subparsers ``sub`` (a :class:`longctx_lab.cli.LazySubParsers`: the
    arguments, whose defaults come from :func:`~longctx_lab.lm.train.train`, are added when ``train`` is chosen)."""
    p = one_line_errors(sub.add_parser(
        "train", help="train the tiny LM on a synthetic task (CPU, seeded) and save a checkpoint with its command",
        fill=add_arguments))
    p.set_defaults(func=run)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``longctx-lab train``'s arguments to ``p`` (imports the model and training code for the defaults)."""
    from longctx_lab.lm.model import LMConfig
    from longctx_lab.lm.tasks import TASKS
    from longctx_lab.lm.train import PASSKEY_MODEL

    d = _train_defaults()
    p.add_argument("--out", required=True, metavar="DIR", help="checkpoint directory to write (config.json, model.pt)")
    p.add_argument("--task", type=task_list, default=None, metavar="TASK[,TASK...]",
                   help=f"synthetic task among {', '.join(TASKS)}, or several comma-separated, trained in turn "
                        f"(default {d['task']})")
    p.add_argument("--task-option", type=task_option, action="append", default=None, metavar="NAME=INT",
                   help="a task option for make_sample, e.g. n_digits=3 (repeatable)")
    p.add_argument("--seq-len", type=parse_seq_len, default=None, metavar="N|LO:HI",
                   help=f"context tokens per sample: N, or LO:HI drawn per step (default {d['seq_len']})")
    p.add_argument("--steps", type=positive_int, default=None, help=f"optimizer steps (default {d['steps']})")
    p.add_argument("--batch-size", type=positive_int, default=None, help=f"samples a step (default {d['batch_size']})")
    p.add_argument("--lr", type=positive_float, default=None, help=f"peak learning rate (default {d['lr']})")
    p.add_argument("--warmup", type=nonnegative_int, default=None, help=f"warm-up steps (default {d['warmup']})")
    p.add_argument("--weight-decay", type=nonnegative_float, default=None,
                   help=f"AdamW weight decay (default {d['weight_decay']})")
    p.add_argument("--seed", type=nonnegative_int, default=None, help=f"weights+batches seed (default {d['seed']})")
    p.add_argument("--init", default=None, metavar="CHECKPOINT",
                   help="start from this checkpoint's weights (fine-tuning; same shape, RoPE may differ)")
    p.add_argument("--threads", type=positive_int, default=None, help="intra-op threads (default: torch's current)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--eval-trials", type=nonnegative_int, default=0, metavar="N",
                   help="after training, NIAH trials per cell at the training length(s) x 5 depths, stored in the "
                        "checkpoint's metadata (default 0: none)")
    p.add_argument("--eval-seed", type=nonnegative_int, default=0, help="seed of the --eval-trials grid (default 0)")
    m = p.add_argument_group("model shape (longctx_lab.lm.model.LMConfig; the vocabulary is "
                             "longctx_lab.lm.tasks.VOCAB); "
                             "with --init, a flag left out takes the checkpoint's value")
    shape = {**{f.name: f.default for f in dataclasses.fields(LMConfig)}, **PASSKEY_MODEL}
    m.add_argument("--d-model", type=positive_int, default=None, help=f"residual width (default {shape['d_model']})")
    m.add_argument("--layers", type=positive_int, default=None, help=f"decoder layers (default {shape['n_layers']})")
    m.add_argument("--heads", type=positive_int, default=None, help=f"query heads (default {shape['n_heads']})")
    m.add_argument("--kv-heads", type=positive_int, default=None,
                   help=f"KV heads (default {shape['n_kv_heads'] or '--heads'}; GQA if fewer)")
    m.add_argument("--head-dim", type=positive_int, default=None,
                   help=f"per-head width (default {shape['head_dim'] or 'd_model // heads'})")
    m.add_argument("--mlp", choices=("swiglu", "gelu"), default=None, help=f"MLP kind (default {shape['mlp']})")
    m.add_argument("--mlp-hidden", type=positive_int, default=None,
                   help=f"MLP hidden width (default {shape['mlp_hidden'] or '4 * d_model'}; 4 * d_model with "
                        "--d-model)")
    m.add_argument("--window", type=_window, default=None, metavar="W|W,none,...",
                   help="sliding window: W for every layer, or one entry per layer (default: none, global)")
    m.add_argument("--rope-base", type=positive_float, default=None,
                   help=f"RoPE base theta (default {shape['rope_base']:g})")
    m.add_argument("--max-positions", type=positive_int, default=None,
                   help="the context the model is meant for (default: the longest training length)")
    m.add_argument("--name", default=None, help="model name stored in the config (default '<task>-<length>', "
                                                "with --init the checkpoint's)")


#: Shape flag -> :class:`LMConfig` field; without ``--init`` a flag left out takes
#: :data:`longctx_lab.lm.train.PASSKEY_MODEL`'s value, else ``LMConfig``'s default.
SHAPE_FLAGS: dict[str, str] = {
    "d_model": "d_model", "layers": "n_layers", "heads": "n_heads", "kv_heads": "n_kv_heads", "head_dim": "head_dim",
    "mlp": "mlp", "mlp_hidden": "mlp_hidden", "window": "sliding_window", "rope_base": "rope_base",
}


def build_config(args):
    """The :class:`~longctx_lab.lm.model.LMConfig` of the shape flags in ``args`` (:data:`SHAPE_FLAGS`) over
    :data:`~longctx_lab.lm.train.PASSKEY_MODEL`, or
    with ``--init`` the checkpoint's config, each overridden by a flag given; ``max_positions`` and ``name`` from
    the training length. ``ValueError``/``TypeError`` on a bad combination, naming the :class:`LMConfig` field;
    ``FileNotFoundError`` for an ``--init`` that is not a checkpoint."""
    from longctx_lab.lm.model import LMConfig, load_model
    from longctx_lab.lm.tasks import VOCAB
    from longctx_lab.lm.train import PASSKEY_MODEL

    d = _train_defaults()
    seq_len = args.seq_len if args.seq_len is not None else d["seq_len"]
    hi = seq_len[1] if isinstance(seq_len, tuple) else seq_len
    task = args.task or d["task"]
    task = task if isinstance(task, str) else "multi"
    if args.init is not None:
        try:
            fields = load_model(args.init).config.to_dict()
        except (OSError, ValueError) as e:
            raise FileNotFoundError(f"init must be a checkpoint directory written by save_model, got {args.init!r} "
                                    f"({e})") from e
    else:
        fields = {"vocab_size": VOCAB.size, **PASSKEY_MODEL}
        if args.d_model is not None and args.mlp_hidden is None:
            fields["mlp_hidden"] = None  # LMConfig's 4 * d_model, not the default model's width
    for flag, name in SHAPE_FLAGS.items():
        if getattr(args, flag) is not None:
            fields[name] = getattr(args, flag)
    fields["max_positions"] = args.max_positions or hi
    if args.name is not None or args.init is None:  # a fine-tune without --name keeps the checkpoint's name
        fields["name"] = args.name or f"{task}-{hi}"
    return LMConfig.from_dict(fields)


def check_task_input(task, task_options: dict | None, seq_len) -> str | None:
    """``None`` if ``task`` (a name or a list of names) takes ``task_options`` and a context of ``seq_len`` (its
    shortest) holds its needles; else the error line, naming ``--task-option`` or ``--seq-len``."""
    from longctx_lab.lm.tasks import NEEDLE_TASKS, make_sample
    from longctx_lab.lm.train.loop import check_tasks, options_for

    tasks = check_tasks(task)
    for t in tasks:
        depth = 0.0 if t in NEEDLE_TASKS else None
        try:
            options = options_for(t, tasks, task_options)
            make_sample(t, 4096, depth, **options)
        except (TypeError, ValueError) as e:
            return f"argument --task-option: {e}"
        try:
            make_sample(t, seq_len[0] if isinstance(seq_len, (tuple, list)) else seq_len, depth, **options)
        except (TypeError, ValueError) as e:
            return f"argument --seq-len: {e}"
    return None


def _fail(message: str) -> int:
    print(f"longctx-lab train: error: {message}", file=sys.stderr)
    return 2


def run(args) -> int:
    """Run ``longctx-lab train`` (see the module docstring); returns the exit status."""
    from longctx_lab.lm.train import train

    command = command_line("train", args)
    try:
        config = build_config(args)
    except FileNotFoundError as e:
        return _fail(f"argument --init: {e}")
    except (TypeError, ValueError) as e:
        return _fail(f"model shape (--d-model/--layers/--heads/--kv-heads/--head-dim/--window...): {e}")
    options = {"task": args.task, "seq_len": args.seq_len, "steps": args.steps, "batch_size": args.batch_size,
               "lr": args.lr, "warmup": args.warmup, "weight_decay": args.weight_decay, "seed": args.seed,
               "init": args.init, "threads": args.threads,
               "task_options": dict(args.task_option) if args.task_option else None}
    kwargs = {k: v for k, v in options.items() if v is not None}
    bad = check_task_input(kwargs.get("task", _train_defaults()["task"]), kwargs.get("task_options"),
                           kwargs.get("seq_len", _train_defaults()["seq_len"]))
    if bad:
        return _fail(bad)
    try:
        result = train(config, show_progress=not args.no_progress, **kwargs)
    except FileNotFoundError as e:
        return _fail(f"argument --init: {e}")
    except (TypeError, ValueError) as e:
        return _fail(str(e))
    extra = {}
    if args.eval_trials:
        extra["eval"] = evaluate(result, trials=args.eval_trials, seed=args.eval_seed,
                                 show_progress=not args.no_progress)
    out = result.save(args.out, command=command, extra=extra)
    tail = result.losses[-10:]
    print(f"wrote {out}/ (config.json, model.pt): {len(result.losses)} steps in {result.seconds:.1f} s, "
          f"final loss {sum(tail) / len(tail):.4f} (mean of the last {len(tail)} steps)")
    for summary in extra["eval"].get("tasks", [extra["eval"]]) if "eval" in extra else []:
        scores = ", ".join(f"{length}: {acc:.3f}" for length, acc in summary["by_length"].items())
        cells = f"{args.eval_trials} trials" + (" x 5 depths" if summary["depths"] != [None] else "")
        print(f"NIAH {summary['task']} accuracy by length ({cells}): {scores}")
    return 0


def evaluate(result, *, trials: int, seed: int = 0, show_progress: bool = False) -> dict:
    """:func:`~longctx_lab.lm.niah.run_niah` of ``result.model`` on its training task and options at its training
    length(s) (both ends of a range), 5 depths, ``trials`` per cell; a JSON-able summary. Trained on several
    tasks: ``{"tasks": [one summary per task]}``."""
    from longctx_lab.lm.niah import TinyLMAdapter, run_niah
    from longctx_lab.lm.tasks import NEEDLE_TASKS
    from longctx_lab.lm.train.loop import check_tasks, options_for

    a = result.args
    seq_len = a["seq_len"]
    lengths = sorted({seq_len[0], seq_len[1]}) if isinstance(seq_len, list) else [seq_len]
    tasks = check_tasks(a["task"])
    summaries = []
    for task in tasks:
        depths = (0.0, 0.25, 0.5, 0.75, 1.0) if task in NEEDLE_TASKS else None
        niah = run_niah(TinyLMAdapter(result.model), task, lengths=lengths, depths=depths, trials=trials, seed=seed,
                        show_progress=show_progress, **options_for(task, tasks, a["task_options"]))
        summaries.append({"task": niah.task, "lengths": niah.lengths, "depths": niah.depths, "trials": trials,
                          "seed": seed, "options": niah.options, "accuracy": niah.accuracy,
                          "by_length": {str(k): v for k, v in niah.by_length().items()}})
    return summaries[0] if isinstance(a["task"], str) else {"tasks": summaries}
