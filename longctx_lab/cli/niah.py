"""``longctx-lab niah``: a needle-in-a-haystack grid from the command line, written as JSON and a heatmap PNG.

::

    longctx-lab niah (--checkpoint DIR | --shipped NAME | --hf NAME_OR_PATH | --pretrained NAME) --out PREFIX
                     [--task passkey] [--task-option n_digits=3] [--lengths 64,128,256] [--depths 0,0.25,0.5,0.75,1]
                     [--trials 5] [--seed 0] [--threshold 0.856]
                     [--rope SCHEME --factor F --original-length L --beta-fast B --beta-slow B ...] [--window W]
                     [--sinks N]

``--pretrained smollm2-135m`` runs a pretrained model shipped as a package (:mod:`longctx_lab.lm.pretrained`)
on the passkey in natural filler text (:mod:`longctx_lab.lm.niah.natural`), ``--lengths`` in its tokens, at most
:data:`longctx_lab.lm.niah.pretrained.MAX_PROMPT_LENGTH`; ``--rope``, ``--factor``, ``--window`` apply as for a
checkpoint, and ``--sinks N`` (needs ``--window``) keeps the first N tokens visible (attention sinks). A missing
package is one line with its install command (exit status 2).

The model is a tiny-LM checkpoint (a directory written by ``longctx-lab train``), one shipped with the package
(``--shipped``, under ``longctx_lab/lm/checkpoints/``), or any Hugging Face causal LM with its tokenizer
(``--hf``, a hub name or local directory; :func:`longctx_lab.lm.niah.hf.load_hf_adapter`). For a checkpoint,
``--task`` and the task options default to those it was trained with.

``--rope`` applies a RoPE scaling scheme of chapter 2 at inference to a tiny-LM checkpoint (the weights do not
depend on it: :meth:`LMConfig.with_rope` and :meth:`TinyLM.set_rope`); ``--original-length`` defaults to the
checkpoint's ``max_positions`` (its training length). ``dynamic`` is frozen per schedule
(:mod:`longctx_lab.lm.model.config`), so the grid then runs one length at a time, each with ``seq_len`` = that
length's prompt. ``--window W`` gives every layer a sliding window of ``W`` keys at inference.

Writes ``PREFIX.json`` (:func:`longctx_lab.lm.niah.write_json`, with the command as typed) and ``PREFIX.png``
(:func:`longctx_lab.lm.niah.plot_heatmap`), and prints the depth x length table and RULER's effective length at
``--threshold``. Every argument is checked before a model is loaded; a bad one exits with status 2 and one line
naming it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from longctx_lab.cli.args import command_line, fraction, one_line_errors, positive_float, positive_int
from longctx_lab.cli.train import task_option

__all__ = ["INFERENCE_ROPE_SCHEMES", "add_arguments", "add_parser", "run"]

#: ``--rope`` choices and the flags each takes (``longrope`` needs per-pair factors: use the Python API).
INFERENCE_ROPE_SCHEMES: dict[str, tuple[str, ...]] = {
    "default": (),
    "linear": ("factor",),
    "ntk": ("factor",),
    "dynamic": ("factor", "original_length"),
    "yarn": ("factor", "original_length", "beta_fast", "beta_slow"),
    "llama3": ("factor", "original_length", "low_freq_factor", "high_freq_factor"),
}
_ROPE_FLAGS = ("factor", "original_length", "beta_fast", "beta_slow", "low_freq_factor", "high_freq_factor")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1 or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"must be distinct integers >= 1, comma-separated, got {text!r}")
    return values


def _depth_list(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be numbers in [0, 1], comma-separated, got {text!r}") from None
    if not all(0.0 <= v <= 1.0 for v in values):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be numbers in [0, 1], comma-separated, got {text!r}")
    return values


def add_parser(sub) -> argparse.ArgumentParser:
    """Register ``longctx-lab niah`` on the subparsers ``sub`` (a :class:`longctx_lab.cli.LazySubParsers`: the
    arguments are added when ``niah`` is chosen)."""
    p = one_line_errors(sub.add_parser(
        "niah", help="needle-in-a-haystack grid (lengths x depths) for a checkpoint or a Hugging Face model: "
                     "JSON + heatmap PNG, effective length", fill=add_arguments))
    p.set_defaults(func=run)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``longctx-lab niah``'s arguments to ``p`` (imports the task list and RULER's threshold)."""
    from longctx_lab.lm.niah import RULER_THRESHOLD
    from longctx_lab.lm.tasks import TASKS

    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="DIR", help="a tiny-LM checkpoint directory (longctx-lab train --out)")
    src.add_argument("--shipped", metavar="NAME", help="a checkpoint shipped with the package, e.g. passkey-128")
    src.add_argument("--hf", metavar="NAME_OR_PATH", help="a Hugging Face causal LM and its tokenizer (name or dir)")
    src.add_argument("--pretrained", metavar="NAME", help="a pretrained model shipped as a package (smollm2-135m): "
                     "passkey in natural filler text, lengths in its tokens (at most 32768)")
    p.add_argument("--out", required=True, metavar="PREFIX", help="writes PREFIX.json and PREFIX.png")
    p.add_argument("--task", choices=TASKS, default=None,
                   help="synthetic task (default: the checkpoint's training task, else passkey)")
    p.add_argument("--task-option", type=task_option, action="append", default=None, metavar="NAME=INT",
                   help="a task option, e.g. n_digits=3 (repeatable; default: the checkpoint's)")
    p.add_argument("--lengths", type=_int_list, default=[64, 128, 256], metavar="N,N,...",
                   help="context lengths in tokens (default 64,128,256)")
    p.add_argument("--depths", type=_depth_list, default=None, metavar="D,D,...",
                   help="needle depths in [0, 1] (default 0,0.25,0.5,0.75,1; none for cwe)")
    p.add_argument("--trials", type=positive_int, default=5, help="trials per cell (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the grid's samples (default 0)")
    p.add_argument("--threshold", type=fraction, default=RULER_THRESHOLD,
                   help=f"accuracy for the effective length (default RULER's {RULER_THRESHOLD})")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--max-new-text-tokens", type=positive_int, default=None,
                   help="--hf: tokens generated per answer (default 4 x the answer's words)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    r = p.add_argument_group("inference-time changes to a tiny-LM checkpoint")
    r.add_argument("--rope", choices=sorted(INFERENCE_ROPE_SCHEMES), default=None, help="RoPE scaling scheme")
    r.add_argument("--factor", type=positive_float, default=None, help="scale factor (linear, ntk, dynamic, yarn, "
                                                                        "llama3)")
    r.add_argument("--original-length", type=positive_int, default=None,
                   help="pre-training context (dynamic, yarn, llama3; default: the checkpoint's max_positions)")
    r.add_argument("--beta-fast", type=positive_float, default=None, help="yarn (default 32)")
    r.add_argument("--beta-slow", type=positive_float, default=None, help="yarn (default 1)")
    r.add_argument("--low-freq-factor", type=positive_float, default=None, help="llama3 (default 1)")
    r.add_argument("--high-freq-factor", type=positive_float, default=None, help="llama3 (default 4)")
    r.add_argument("--rope-base", type=positive_float, default=None, help="RoPE base (default: the checkpoint's)")
    r.add_argument("--window", type=positive_int, default=None, help="sliding window of W keys in every layer")
    r.add_argument("--sinks", type=positive_int, default=None,
                   help="--pretrained with --window: keep the first N tokens visible too (attention sinks)")


class _Usage(ValueError):
    """A bad argument: the message names it."""


def _rope_params(args, config) -> dict | None:
    given = [f for f in _ROPE_FLAGS if getattr(args, f) is not None] + (["rope_base"] if args.rope_base else [])
    if args.rope is None:
        if given:
            raise _Usage(f"argument --{given[0].replace('_', '-')}: needs --rope SCHEME")
        return None
    allowed = INFERENCE_ROPE_SCHEMES[args.rope]
    for f in given:
        if f != "rope_base" and f not in allowed:
            raise _Usage(f"argument --{f.replace('_', '-')}: not used by --rope {args.rope} (it takes "
                         f"{', '.join('--' + a.replace('_', '-') for a in allowed) or 'no parameters'})")
    if "factor" in allowed and args.factor is None:
        raise _Usage(f"argument --factor: required by --rope {args.rope}")
    params = {}
    if args.factor is not None:
        params["factor"] = args.factor
    if "original_length" in allowed:
        key = "max_position_embeddings" if args.rope == "dynamic" else "original_max_position_embeddings"
        params[key] = args.original_length or config.max_positions
    for f in ("beta_fast", "beta_slow", "low_freq_factor", "high_freq_factor"):
        if getattr(args, f) is not None:
            params[f] = getattr(args, f)
    return params


def _prepare(args) -> dict:
    """Check every argument (without loading weights); what :func:`run` needs, or :class:`_Usage`."""
    import torch

    from longctx_lab.lm.model import LMConfig, load_metadata
    from longctx_lab.lm.tasks import NEEDLE_TASKS, make_sample

    if args.seed < 0:
        raise _Usage(f"argument --seed: must be an integer >= 0, got {args.seed}")
    try:
        device = torch.device(args.device)
    except (RuntimeError, ValueError) as e:
        raise _Usage(f"argument --device: {e}") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise _Usage(f"argument --device: {args.device!r}, but torch.cuda.is_available() is False here")
    if args.sinks is not None and args.pretrained is None:
        raise _Usage("argument --sinks: only with --pretrained (and --window)")
    if args.pretrained is not None:
        return _prepare_pretrained(args)
    directory = config = None
    trained: dict = {}
    if args.hf is not None:
        for flag in ("rope", "window", "rope_base", *_ROPE_FLAGS):
            if getattr(args, flag) is not None:
                raise _Usage(f"argument --{flag.replace('_', '-')}: only with --checkpoint or --shipped (a tiny LM)")
    else:
        if args.shipped is not None:
            from longctx_lab.lm.model import shipped_checkpoint

            try:
                directory = shipped_checkpoint(args.shipped)
            except ValueError as e:
                raise _Usage(f"argument --shipped: {e}") from e
        else:
            directory = Path(args.checkpoint)
        try:
            config = LMConfig.from_dict(json.loads((directory / "config.json").read_text())["config"])
            trained = load_metadata(directory).get("train", {})
        except (OSError, ValueError, KeyError, TypeError) as e:
            flag = "--shipped" if args.shipped is not None else "--checkpoint"
            raise _Usage(f"argument {flag}: {directory} is not a checkpoint written by save_model ({e})") from e
    task = args.task or trained.get("task", "passkey")
    if args.task_option:
        options = dict(args.task_option)
    else:
        options = dict(trained.get("task_options", {})) if trained.get("task") == task else {}
    if task in NEEDLE_TASKS:
        depths = args.depths if args.depths is not None else [0.0, 0.25, 0.5, 0.75, 1.0]
    elif args.depths is not None:
        raise _Usage(f"argument --depths: task {task!r} has no needle, so no depths (got {args.depths})")
    else:
        depths = None
    try:
        make_sample(task, 4096, 0.0 if depths else None, **options)
    except (TypeError, ValueError) as e:
        raise _Usage(f"argument --task-option: {e}") from e
    prompt_len = {}
    for length in args.lengths:
        for depth in depths or [None]:
            try:
                sample = make_sample(task, length, depth, seed=args.seed, **options)
            except ValueError as e:
                raise _Usage(f"argument --lengths: {length} at depth {depth}: {e}") from e
            prompt_len[length] = len(sample.prompt)
    changed = None
    if config is not None:
        try:
            changed = config
            if args.window is not None:
                changed = dataclasses.replace(changed, sliding_window=args.window)
            params = _rope_params(args, config)
            if params is not None:
                changed = changed.with_rope(args.rope, base=args.rope_base, **params)
        except _Usage:
            raise
        except (TypeError, ValueError) as e:
            raise _Usage(f"argument --rope: {e}") from e
    return {"directory": directory, "config": config, "changed": changed, "task": task, "options": options,
            "depths": depths, "prompt_len": prompt_len}


def _prepare_pretrained(args) -> dict:
    """``--pretrained``'s checks, before anything is loaded: name, lengths, rope flags, ``--sinks`` and the package."""
    import types

    from longctx_lab.lm.niah.pretrained import MAX_PROMPT_LENGTH
    from longctx_lab.lm.pretrained import pretrained_available, pretrained_spec, unavailable_message

    try:
        spec = pretrained_spec(args.pretrained)
    except (TypeError, ValueError) as e:
        raise _Usage(f"argument --pretrained: {e}") from e
    for flag in ("task", "task_option", "max_new_text_tokens"):
        if getattr(args, flag) is not None:
            raise _Usage(f"argument --{flag.replace('_', '-')}: not used with --pretrained (its task is the natural "
                         "passkey)")
    if args.sinks is not None and args.window is None:
        raise _Usage("argument --sinks: needs --window W (sinks are kept beside a sliding window)")
    too_long = [n for n in args.lengths if n > MAX_PROMPT_LENGTH]
    if too_long:
        raise _Usage(f"argument --lengths: at most {MAX_PROMPT_LENGTH} tokens with --pretrained, got {too_long[0]}")
    if args.rope_base is not None:
        raise _Usage("argument --rope-base: not used with --pretrained (the trained base stays)")
    params = _rope_params(args, types.SimpleNamespace(max_positions=spec.trained_context))
    if not pretrained_available(args.pretrained):
        raise _Usage(f"argument --pretrained: {unavailable_message(args.pretrained)}")
    depths = args.depths if args.depths is not None else [0.0, 0.25, 0.5, 0.75, 1.0]
    return {"spec": spec, "rope_params": params, "depths": depths}


def _run_pretrained(args, prep, command: str) -> int:
    from longctx_lab.lm.niah.pretrained import run_pretrained_niah
    from longctx_lab.lm.pretrained import load_pretrained

    model, tokenizer = load_pretrained(args.pretrained, backend="tinylm")
    model = model.to(args.device)
    result = run_pretrained_niah(model, tokenizer, lengths=args.lengths, depths=prep["depths"], trials=args.trials,
                                 seed=args.seed, rope=args.rope, rope_params=prep["rope_params"], window=args.window,
                                 sinks=args.sinks or 0, show_progress=not args.no_progress)
    model_name = f"pretrained {args.pretrained} ({prep['spec'].trained_context} trained context)"
    for flag in ("rope", "factor", "window", "sinks"):
        if getattr(args, flag) is not None:
            model_name += f", {flag} {getattr(args, flag)}"
    return _write(args, result, command, model_name, "passkey in natural filler")


def _write(args, result, command: str, model_name: str, shown: str) -> int:
    from longctx_lab.lm.niah import plot_heatmap, write_json

    prefix = Path(args.out)
    if prefix.suffix in (".json", ".png"):
        prefix = prefix.with_suffix("")
    json_path = write_json(result, prefix.with_name(prefix.name + ".json"), command=command, device=args.device,
                           model=model_name, threshold=args.threshold)
    png_path = prefix.with_name(prefix.name + ".png")
    plot_heatmap(result, png_path, threshold=args.threshold)
    print(f"{shown}, {args.trials} trials per cell, exact match; model: {model_name}")
    print(_table(result, args.threshold))
    print(f"wrote {json_path} and {png_path}")
    return 0


def _merge(results):
    """One :class:`NIAHResult` of per-length results over the same depths (trial seeds depend on the length only,
    so this equals a single grid)."""
    from longctx_lab.lm.niah import NIAHResult

    first = results[0]
    lengths = [r.lengths[0] for r in results]
    accuracy = [[r.accuracy[i][0] for r in results] for i in range(len(first.depths))]
    records = [rec for r in results for rec in r.records]
    return NIAHResult(first.task, lengths, first.depths, first.trials, first.seed, first.options, accuracy, records)


def _table(result, threshold: float) -> str:
    head = "depth \\ length".ljust(16) + "".join(f"{n:>8}" for n in result.lengths)
    rows = [("-" if d is None else f"{d:.2f}").ljust(16) + "".join(f"{a:>8.2f}" for a in row)
            for d, row in zip(result.depths, result.accuracy, strict=True)]
    by_length = "mean".ljust(16) + "".join(f"{a:>8.2f}" for a in result.by_length().values())
    eff = result.effective_length(threshold)
    tail = f"effective length at {threshold:.1%} (RULER): {eff if eff is not None else 'none (the shortest fails)'}"
    return "\n".join([head, *rows, by_length, tail])


def run(args) -> int:
    """Run ``longctx-lab niah`` (module docstring); returns the exit status."""
    command = command_line("niah", args)
    try:
        prep = _prepare(args)
    except _Usage as e:
        print(f"longctx-lab niah: error: {e}", file=sys.stderr)
        return 2
    if args.pretrained is not None:
        return _run_pretrained(args, prep, command)
    from longctx_lab.lm.niah import TinyLMAdapter, run_niah

    task, options, depths = prep["task"], prep["options"], prep["depths"]
    grid = {"depths": depths, "trials": args.trials, "seed": args.seed, "show_progress": not args.no_progress,
            **options}
    if args.hf is not None:
        from longctx_lab.lm.niah.hf import load_hf_adapter

        kwargs = {"max_new_text_tokens": args.max_new_text_tokens} if args.max_new_text_tokens else {}
        adapter = load_hf_adapter(args.hf, device=args.device, **kwargs)
        model_name = f"hf {args.hf}"
        result = run_niah(adapter, task, lengths=args.lengths, **grid)
    else:
        from longctx_lab.lm.model import TinyLM, load_model

        model = base = load_model(prep["directory"], device=args.device)
        config = prep["changed"]
        if args.window is not None:  # the layers hold their window: a new model with the same weights
            model = TinyLM(config).to(base.device)
            model.load_state_dict(base.state_dict())
            model.eval()
        elif args.rope is not None:
            model.set_rope(config)
        model_name = f"tiny-lm {prep['directory']} ({base.config.name}, {base.config.n_params():,} parameters)"
        if args.window is not None:
            model_name += f", window {args.window}"
        if args.rope is not None:
            model_name += f", rope {config.rope_scheme} {config.rope_params}"
        if args.rope == "dynamic":  # the schedule is frozen: one length at a time, at that length's prompt
            parts = []
            for length in sorted(args.lengths):
                params = dict(config.rope_params, seq_len=prep["prompt_len"][length])
                model.set_rope(config.with_rope("dynamic", **params))
                parts.append(run_niah(TinyLMAdapter(model), task, lengths=[length], **grid))
            result = _merge(parts)
        else:
            result = run_niah(TinyLMAdapter(model), task, lengths=args.lengths, **grid)
    return _write(args, result, command, model_name, f"{task} {options}" if options else task)
