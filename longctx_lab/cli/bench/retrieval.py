"""Retrieval against truncation and the full context on the real model; records benchmarks/results/retrieval.json.

``longctx-lab bench retrieval [--seeds 3] [--facts 5] [--quick]`` hides ``--facts`` access codes in the Python
documentation prose (:mod:`longctx_lab.lm.retrieval`) and asks a pretrained model (default ``smollm2-135m``,
greedy, through the course's TinyLM) for each one, in two settings per seed:

- ``long``: the whole documentation (about 113K tokens with Python 3.11, 14 times the model's trained 8,192):
  ``truncate`` (the first ``--budget`` tokens) against ``retrieve`` (the ``--k`` BM25-best chunks of
  ``--chunk-words`` words, about the same number of tokens);
- ``fits``: the first ``--fits-chars`` characters (a document that fits the context): ``full`` against
  ``truncate`` and ``retrieve``.

The JSON holds the command, device, versions, date, the settings, each seed's records (reply, correct, whether
the fact was in the prompt, prompt tokens, seconds) and per setting and strategy the accuracy over seeds (mean,
min, max) and the mean prompt tokens and seconds. ``--quick`` is a smoke run (one seed, two facts, small
budgets) written to ``retrieval-quick.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

RESULT_NAME = "retrieval.json"

__all__ = ["RESULT_NAME", "add_arguments", "run", "summarise"]


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="smollm2-135m", help="a pretrained model name (default smollm2-135m)")
    parser.add_argument("--seeds", type=int, default=3, help="documents with seeds 0 .. N-1 (default 3)")
    parser.add_argument("--facts", type=int, default=5, help="facts hidden per document (default 5)")
    parser.add_argument("--budget", type=int, default=1024, help="tokens kept by truncation (default 1024)")
    parser.add_argument("--k", type=int, default=4, help="chunks retrieved (default 4)")
    parser.add_argument("--chunk-words", type=int, default=120, help="words per chunk (default 120)")
    parser.add_argument("--fits-chars", type=int, default=14_000,
                        help="characters of the document that must fit the context (default 14000)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--quick", action="store_true", help="one seed, two facts, small budgets: a smoke run")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default benchmarks/results/retrieval.json, -quick with --quick)")
    parser.add_argument("--no-write", action="store_true", help="print only, record nothing")


def summarise(records: list[dict]) -> dict:
    """``{setting: {strategy: {accuracy: {mean, min, max, by_seed}, in_context, prompt_tokens, seconds}}}``."""
    out: dict = {}
    for setting, strategy in sorted({(r["setting"], r["strategy"]) for r in records}):
        rows = [r for r in records if r["setting"] == setting and r["strategy"] == strategy]
        seeds = sorted({r["seed"] for r in rows})
        acc = [sum(r["correct"] for r in rows if r["seed"] == s) / sum(r["seed"] == s for r in rows) for s in seeds]
        out.setdefault(setting, {})[strategy] = {
            "accuracy": {"mean": sum(acc) / len(acc), "min": min(acc), "max": max(acc), "by_seed": acc},
            "in_context": sum(r["in_context"] for r in rows) / len(rows),
            "prompt_tokens": sum(r["prompt_tokens"] for r in rows) / len(rows),
            "seconds": sum(r["seconds"] for r in rows) / len(rows), "trials": len(rows)}
    return out


def run(args) -> int:
    import torch

    from longctx_lab.core.environment import package_versions
    from longctx_lab.core.validate import check_int
    from longctx_lab.lm.niah.decoding import greedy_tokens
    from longctx_lab.lm.pretrained import load_pretrained, pretrained_spec
    from longctx_lab.lm.retrieval import compare_strategies, document_with_facts

    seeds = check_int("--seeds", 1 if args.quick else args.seeds, minimum=1)
    facts_n = check_int("--facts", 2 if args.quick else args.facts, minimum=1)
    budget = check_int("--budget", 256 if args.quick else args.budget, minimum=16)
    k = check_int("--k", 2 if args.quick else args.k, minimum=1)
    chunk_words = check_int("--chunk-words", 60 if args.quick else args.chunk_words, minimum=1)
    fits_chars = check_int("--fits-chars", 2_000 if args.quick else args.fits_chars, minimum=100)
    threads = check_int("--threads", args.threads, minimum=1)
    spec = pretrained_spec(args.model)
    path = args.out or Path("benchmarks/results") / ("retrieval-quick.json" if args.quick else RESULT_NAME)
    argv = getattr(args, "argv", sys.argv[1:])
    before_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    started, load_before = time.perf_counter(), os.getloadavg()
    try:
        model, tokenizer = load_pretrained(args.model)

        def count_tokens(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

        def generate(prompt: str, max_new_tokens: int) -> str:
            ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            if len(ids) > spec.trained_context:
                return "(prompt longer than the trained context: not run)"
            return tokenizer.decode(greedy_tokens(model, ids, max_new_tokens))

        records = []
        for seed in range(seeds):
            for setting, max_chars, strategies in (("long", None, ("truncate", "retrieve")),
                                                   ("fits", fits_chars, ("full", "truncate", "retrieve"))):
                document, facts = document_with_facts(facts_n, seed=seed, max_chars=max_chars)
                rows = compare_strategies(generate, count_tokens, document, facts, strategies=strategies,
                                          budget=budget, chunk_words=chunk_words, k=k)
                records += [dict(r, seed=seed, setting=setting, document_tokens=count_tokens(document))
                            for r in rows]
    finally:
        torch.set_num_threads(before_threads)
    summary = summarise(records)
    command = " ".join(["longctx-lab", *argv]) if argv and argv[0] == "bench" else " ".join(sys.argv)
    date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    payload = {"command": command, "device": "cpu", "date": date, "versions": package_versions(),
               "torch_threads": threads, "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
               "quick": bool(args.quick), "model": args.model, "trained_context": spec.trained_context,
               "settings": {"seeds": seeds, "facts": facts_n, "budget": budget, "k": k, "chunk_words": chunk_words,
                            "fits_chars": fits_chars},
               "seconds": round(time.perf_counter() - started, 1), "summary": summary, "records": records}
    for setting, by in summary.items():
        for strategy, s in by.items():
            print(f"{setting:5} {strategy:9} accuracy {s['accuracy']['mean']:.2f} "
                  f"[{s['accuracy']['min']:.2f}-{s['accuracy']['max']:.2f}]  fact in prompt {s['in_context']:.2f}  "
                  f"{s['prompt_tokens']:.0f} tokens  {s['seconds']:.1f} s")
    if not args.no_write:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=1) + "\n")
        print(f"wrote {path}")
    return 0
