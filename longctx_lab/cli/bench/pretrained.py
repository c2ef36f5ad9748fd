"""Issue 25's experiments on a real pretrained model (SmolLM2-135M-Instruct, CPU); records
``benchmarks/results/pretrained-cpu.json`` and its figures (``pretrained-cpu-*.png``).

``longctx-lab bench pretrained [--only niah,extension,sinks,kvcache,attention] [--trials 3] [--quick]``:

1. ``niah``: the passkey in natural filler over ``--lengths`` x ``--depths`` (heatmap, depth curve, RULER's
   effective length);
2. ``extension``: past the trained 8K (``--extension-lengths``), the RoPE schedules none, PI (``linear``), NTK,
   dynamic NTK and YaRN at ``--factor``, applied at inference through chapter 2's schedules;
3. ``sinks``: perplexity of pydoc_data's prose over ``--ppl-tokens`` tokens with full attention, a sliding
   ``--window`` alone and with ``--sinks`` attention sinks (StreamingLLM);
4. ``kvcache``: bytes per token against the planner, cached vs recomputed decoding, int8/int4 per-token,
   per-channel and KIVI caches (passkey at ``--kv-length``, perplexity against the fp32 cache), a paged cache
   sharing one prompt;
5. ``attention``: the course's attention inside the model (the TinyLM path, and transformers with the course's
   attention registered), logit differences against transformers' sdpa.

The JSON holds the command, device, versions, date, the settings, every section's seconds and every trial's seed;
it is rewritten after each section, so an interrupted run keeps what it finished (and ``--only`` keeps the other
sections of an existing file, with the command, date, seconds, settings and load average that recorded each, in
``section_runs``). ``--quick`` is a smoke run of a minute or so (short prompts, one trial; its numbers
mean nothing) written to ``pretrained-cpu-quick.json`` unless ``--out`` says otherwise. Needs the model's package
(``longctx-lab niah --pretrained`` names the install command when it is missing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

__all__ = ["FULL", "QUICK", "SECTIONS", "add_arguments", "run"]

MODEL = "smollm2-135m"
SECTIONS = ("niah", "extension", "sinks", "kvcache", "attention")

FULL = {
    "lengths": [1024, 2048, 4096, 8192], "depths": [0.0, 0.25, 0.5, 0.75, 1.0], "trials": 3, "seed": 0,
    "extension_lengths": [12288], "extension_depths": [0.1, 0.5, 0.9], "factor": 2.0,
    "schemes": ["none", "linear", "ntk", "dynamic", "yarn"],
    "ppl_tokens": 12288, "ppl_chunk": 512, "window": 1024, "sinks": 4, "segment": 1024,
    "kv_length": 4096, "kv_ppl_tokens": 2048, "decode_prompt": 1024, "decode_steps": 16,
    "paged_prompt": 1024, "paged_requests": 4, "attention_tokens": 512,
}
QUICK = {
    **FULL, "lengths": [128, 192], "depths": [0.5], "trials": 1, "extension_lengths": [192],
    "extension_depths": [0.5], "schemes": ["none", "yarn"], "ppl_tokens": 192, "ppl_chunk": 64, "window": 32,
    "segment": 64, "kv_length": 128, "kv_ppl_tokens": 64, "decode_prompt": 32, "decode_steps": 2,
    "paged_prompt": 32, "paged_requests": 2, "attention_tokens": 16,
}


def _list(cast, name: str):
    def parse(text: str):
        try:
            values = [cast(x) for x in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a comma-separated list, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"{name} must not be empty, got {text!r}")
        return values
    return parse


def _positive(cast):
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
        return value
    return parse


positive_int, positive_float = _positive(int), _positive(float)


def add_arguments(parser) -> None:
    parser.add_argument("--only", type=_list(str, "--only"), default=list(SECTIONS), metavar="S,S,...",
                        help=f"sections to run, among {','.join(SECTIONS)} (default all)")
    parser.add_argument("--trials", type=positive_int, default=None, help="trials per cell (default 3)")
    parser.add_argument("--lengths", type=_list(int, "--lengths"), default=None, metavar="N,N,...",
                        help="NIAH prompt lengths in tokens (default 1024,2048,4096,8192)")
    parser.add_argument("--depths", type=_list(float, "--depths"), default=None, metavar="D,D,...",
                        help="NIAH needle depths (default 0,0.25,0.5,0.75,1)")
    parser.add_argument("--extension-lengths", type=_list(int, "--extension-lengths"), default=None,
                        metavar="N,N,...", help="lengths past the trained context (default 12288)")
    parser.add_argument("--extension-depths", type=_list(float, "--extension-depths"), default=None,
                        metavar="D,D,...", help="needle depths past the trained context (default 0.1,0.5,0.9)")
    parser.add_argument("--factor", type=positive_float, default=None, help="RoPE scaling factor (default 2)")
    parser.add_argument("--ppl-tokens", type=positive_int, default=None,
                        help="tokens of text for the sinks perplexity (default 12288)")
    parser.add_argument("--window", type=positive_int, default=None, help="sliding window for the sinks (default 1024)")
    parser.add_argument("--sinks", type=positive_int, default=None, help="attention sinks (default 4)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the trials (default 0)")
    parser.add_argument("--threads", type=positive_int, default=2, help="torch threads (default 2)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: short prompts, one trial")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default benchmarks/results/pretrained-cpu.json, -quick with --quick)")
    parser.add_argument("--no-write", action="store_true", help="print only, record nothing")


def settings_from(args) -> dict:
    """The run's settings: FULL (or QUICK) with the arguments given; ``ValueError`` naming a bad one."""
    from longctx_lab.lm.niah.pretrained import check_prompt_lengths

    bad = [s for s in args.only if s not in SECTIONS]
    if bad:
        raise ValueError(f"--only must name sections among {','.join(SECTIONS)}, got {','.join(bad)}")
    s = dict(QUICK if args.quick else FULL)
    for key in ("trials", "lengths", "depths", "extension_lengths", "extension_depths", "factor", "ppl_tokens",
                "window", "sinks", "seed"):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    if s["seed"] < 0:
        raise ValueError(f"--seed must be an integer >= 0, got {s['seed']}")
    for key in ("depths", "extension_depths"):
        if not all(0.0 <= d <= 1.0 for d in s[key]):
            raise ValueError(f"--{key.replace('_', '-')} must be numbers in [0, 1], got {s[key]}")
    for key in ("lengths", "extension_lengths"):
        try:
            s[key] = check_prompt_lengths(s[key])
        except ValueError as e:
            raise ValueError(f"--{key.replace('_', '-')}: {e}") from e
    return s


def run(args) -> int:
    import torch

    from longctx_lab.cli.bench import _pretrained_sections as sections
    from longctx_lab.core.display import progress
    from longctx_lab.core.environment import package_versions
    from longctx_lab.lm.pretrained import load_pretrained, pretrained_available, unavailable_message

    try:
        s = settings_from(args)
    except ValueError as e:
        print(f"longctx-lab bench pretrained: error: {e}", file=sys.stderr)
        return 2
    if not pretrained_available(MODEL):
        print(f"longctx-lab bench pretrained: error: {unavailable_message(MODEL)}", file=sys.stderr)
        return 2
    default = Path("benchmarks/results") / ("pretrained-cpu-quick.json" if args.quick else "pretrained-cpu.json")
    path = args.out or default
    argv = getattr(args, "argv", sys.argv[1:])
    command = " ".join(["longctx-lab", *argv]) if argv and argv[0] == "bench" else " ".join(sys.argv)
    earlier = json.loads(path.read_text()) if path.is_file() and not args.no_write else {}
    kept = {k: v for k, v in earlier.get("sections", {}).items() if k not in args.only}
    kept_runs = {k: v for k, v in earlier.get("section_runs", {}).items() if k in kept}
    started = time.perf_counter()
    load_before = os.getloadavg()
    before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    done: dict = {}
    seconds: dict = {}
    runs: dict = {}  # each section's provenance: a kept section keeps the run that recorded it

    def write(complete: bool) -> None:
        if args.no_write:
            return
        payload = {"command": command, "device": "cpu", "model": MODEL,
                   "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                   "versions": package_versions(), "torch_threads": args.threads,
                   "load_average": {"before": list(load_before), "now": list(os.getloadavg())},
                   "quick": bool(args.quick), "complete": complete, "settings": s, "seconds": seconds,
                   "sections": {**kept, **done}, "section_runs": {**kept_runs, **runs}}
        if complete:
            from longctx_lab.cli.bench._pretrained_figures import write_figures

            payload["figures"] = write_figures(payload["sections"], path.with_suffix(""))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=1) + "\n")

    try:
        t0 = time.perf_counter()
        model, tokenizer = load_pretrained(MODEL, backend="tinylm")
        seconds["load"] = round(time.perf_counter() - t0, 1)
        for name in progress([n for n in SECTIONS if n in args.only], desc="bench pretrained"):
            t0, load = time.perf_counter(), os.getloadavg()
            done[name] = getattr(sections, f"{name}_section")(model, tokenizer, s)
            seconds[name] = round(time.perf_counter() - t0, 1)
            runs[name] = {"command": command, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                          "seconds": seconds[name], "torch_threads": args.threads, "settings": s,
                          "load_average": {"before": list(load), "now": list(os.getloadavg())}}
            write(False)
        write(True)
    finally:
        torch.set_num_threads(before)
    print(f"bench pretrained: {', '.join(done)} in {time.perf_counter() - started:.0f} s ({seconds})")
    _summary(done)
    if not args.no_write:
        print(f"wrote {path}")
    return 0


def _summary(done: dict) -> None:
    if "niah" in done:
        print(f"niah: accuracy by length {done['niah']['by_length']}, by depth "
              f"{[round(x, 2) for x in done['niah']['by_depth']]}, effective length {done['niah']['effective_length']}")
    if "extension" in done:
        print("extension:", {k: v["by_length"] for k, v in done["extension"].items()})
    if "sinks" in done:
        print("sinks:", {k: (round(v["perplexity"], 2), v["perplexity_past_trained"])
                         for k, v in done["sinks"]["runs"].items()})
    if "kvcache" in done:
        kv = done["kvcache"]
        print("kvcache:", kv["bytes_per_token"], {k: (v["passkey_accuracy"], round(v["perplexity_ratio_to_fp32"], 4))
                                                  for k, v in kv["layouts"].items()}, kv["paged"]["saved"])
    if "attention" in done:
        print("attention:", {k: v for k, v in done["attention"].items() if k != "tokens"})
