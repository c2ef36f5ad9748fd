"""The sections of ``longctx-lab bench pretrained`` (issue 25's experiments on real weights), one function each.

Every function takes the loaded TinyLM ``model`` (float32, the trained RoPE schedule), its ``tokenizer`` and a
settings dict, and returns a JSON-able dict; the benchmark (:mod:`longctx_lab.cli.bench.pretrained`) records them.
"""

from __future__ import annotations

import time

import torch

from longctx_lab.core.display import progress

__all__ = ["CACHE_LAYOUTS", "attention_section", "extension_section", "kvcache_section", "niah_section",
           "sinks_section"]

#: Cache layouts of section 4: name -> (make_caches kind, options).
CACHE_LAYOUTS = {
    "fp32": ("contiguous", {}),
    "int8-token": ("quantized-int8", {}),
    "int4-token": ("quantized-int4", {}),
    "int4-channel": ("quantized-int4", {"key_axis": "channel", "value_axis": "channel"}),
    "kivi-int4": ("kivi", {}),
}


def niah_section(model, tokenizer, s: dict) -> dict:
    """(1) The passkey grid over ``s["lengths"]`` x ``s["depths"]``: accuracy table, depth curve, effective length."""
    from longctx_lab.lm.niah.pretrained import run_pretrained_niah

    result = run_pretrained_niah(model, tokenizer, lengths=s["lengths"], depths=s["depths"], trials=s["trials"],
                                 seed=s["seed"])
    return result.to_dict()


def extension_section(model, tokenizer, s: dict) -> dict:
    """(2) Past the trained context: each RoPE schedule of ``s["schemes"]`` at factor ``s["factor"]``."""
    from longctx_lab.lm.niah.pretrained import run_pretrained_niah

    out = {}
    for scheme in s["schemes"]:
        rope, params = (None, {}) if scheme == "none" else (scheme, {"factor": s["factor"]})
        result = run_pretrained_niah(model, tokenizer, lengths=s["extension_lengths"], depths=s["extension_depths"],
                                     trials=s["trials"], seed=s["seed"], rope=rope, rope_params=params)
        out[scheme] = result.to_dict()
    return out


def sinks_section(model, tokenizer, s: dict) -> dict:
    """(3) Perplexity of pydoc_data's prose under a window with and without sinks, and with full attention."""
    from longctx_lab.lm.streaming import chunked_nll, python_docs_text, segment_perplexity, sink_caches

    ids = tokenizer.encode(python_docs_text(), add_special_tokens=False)[:s["ppl_tokens"]]
    chunk, window = s["ppl_chunk"], s["window"]
    runs = {"full": None, f"window {window}": 0, f"window {window} + {s['sinks']} sinks": s["sinks"]}
    out = {"tokens": len(ids), "trained_context": model.config.max_positions, "window": window, "sinks": s["sinks"],
           "chunk": chunk, "segment": s["segment"], "runs": {}}
    for name, sinks in runs.items():
        started = time.perf_counter()
        caches = None if sinks is None else sink_caches(model, window, sinks=sinks, chunk=chunk)
        nll = chunked_nll(model, ids, caches, chunk=chunk)
        trained = model.config.max_positions
        out["runs"][name] = {"segments": segment_perplexity(nll, s["segment"]),
                             "perplexity": float(torch.exp(nll.mean())),
                             "perplexity_past_trained": float(torch.exp(nll[trained:].mean()))
                             if nll.numel() > trained else None,
                             "seconds": round(time.perf_counter() - started, 1)}
    return out


def _decode_timing(model, prompt: list[int], steps: int) -> dict:
    """Seconds per new token: with a contiguous cache, and recomputing the whole sequence each step."""
    from longctx_lab.lm.model import make_caches

    tokens = torch.tensor([prompt])
    with torch.no_grad():
        caches = make_caches(model.config, "contiguous", capacity=len(prompt) + steps)
        last = model(tokens, caches=caches)[:, -1]
        cached, started = [], time.perf_counter()
        for _ in range(steps):
            cached.append(int(last.argmax(-1)))
            last = model(torch.tensor([[cached[-1]]]), caches=caches)[:, -1]
        t_cached = (time.perf_counter() - started) / steps
        seq, started = list(prompt), time.perf_counter()
        for _ in range(steps):
            seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
        t_recomputed = (time.perf_counter() - started) / steps
    return {"prompt_tokens": len(prompt), "steps": steps, "seconds_per_token_cached": t_cached,
            "seconds_per_token_recomputed": t_recomputed, "tokens_equal": cached == seq[len(prompt):]}


def _paged_sharing(model, prompt: list[int], requests: int, new_tokens: int, block_size: int = 16) -> dict:
    """One prompt prefilled once in a paged cache, forked to ``requests`` sequences that each decode ``new_tokens``:
    blocks in use against ``requests`` unshared copies."""
    from longctx_lab.lm.model import make_caches

    per_seq = -(-(len(prompt) + new_tokens) // block_size)
    caches = make_caches(model.config, "paged", batch=requests, capacity=len(prompt) + new_tokens,
                         block_size=block_size, num_blocks=requests * per_seq)
    with torch.no_grad():
        last = model(torch.tensor([prompt]), caches=caches, seq_ids=[0])[:, -1]
        for c in caches:
            for r in range(1, requests):
                c.fork(0, r)
        nxt = last.argmax(-1).repeat(requests)[:, None]
        for _ in range(new_tokens):
            nxt = model(nxt, caches=caches)[:, -1].argmax(-1)[:, None]
    shared = sum(c.used_bytes for c in caches)
    per_token = sum(c.nbytes for c in caches) // (requests * per_seq * block_size)
    unshared = requests * per_seq * block_size * per_token
    return {"prompt_tokens": len(prompt), "requests": requests, "new_tokens": new_tokens, "block_size": block_size,
            "bytes_shared": int(shared), "bytes_unshared": int(unshared), "saved": 1 - shared / unshared}


def kvcache_section(model, tokenizer, s: dict) -> dict:
    """(4) The KV cache on real weights: bytes per token against the planner, cached vs recomputed decoding,
    quantized layouts (passkey at ``s["kv_length"]`` and perplexity against the fp32 cache), paged sharing."""
    from longctx_lab.lm.hf.planner import plan
    from longctx_lab.lm.model import make_caches
    from longctx_lab.lm.model.hf import hf_config
    from longctx_lab.lm.niah.decoding import greedy_tokens
    from longctx_lab.lm.niah.harness import trial_seed
    from longctx_lab.lm.niah.natural import make_natural_sample, natural_sentences, read_key
    from longctx_lab.lm.streaming import chunked_nll, python_docs_text

    c = model.config
    n = 1024
    caches = make_caches(c, "contiguous", capacity=n)
    measured = sum(x.nbytes for x in caches) // n
    planned = plan(hf_config(c).to_dict(), context=n, dtype="fp32").kv_bytes_per_token
    out = {"bytes_per_token": {"measured_fp32": int(measured), "planner_fp32": int(planned)}}
    ids = tokenizer.encode(python_docs_text(), add_special_tokens=False)
    out["decode"] = _decode_timing(model, ids[:s["decode_prompt"]], s["decode_steps"])
    pieces = natural_sentences(tokenizer)
    ppl_ids = ids[:s["kv_ppl_tokens"]]
    layouts = {}
    for name, (kind, options) in progress(list(CACHE_LAYOUTS.items()), desc="quantized caches"):
        correct, answers = 0, []
        for t in range(s["trials"]):
            sample = make_natural_sample(tokenizer, s["kv_length"], 0.5, pieces=pieces,
                                         seed=trial_seed(s["seed"], s["kv_length"], 0, t))
            text = tokenizer.decode(greedy_tokens(model, sample.prompt, 8, cache=kind, **options))
            correct += read_key(text) == sample.key
            answers.append({"seed": sample.seed, "answer": sample.key, "prediction": text})
        caches = make_caches(c, kind, capacity=len(ppl_ids), **options)
        nll = chunked_nll(model, ppl_ids, caches, chunk=s["ppl_chunk"], show_progress=False)
        layouts[name] = {"kind": kind, "options": options, "passkey_accuracy": correct / s["trials"],
                         "trials": answers, "perplexity": float(torch.exp(nll.mean())),
                         "bytes_per_token": sum(x.nbytes for x in caches) / len(ppl_ids)}
    base = layouts["fp32"]["perplexity"]
    for v in layouts.values():
        v["perplexity_ratio_to_fp32"] = v["perplexity"] / base
    out["layouts"] = layouts
    out["passkey_length"], out["perplexity_tokens"] = s["kv_length"], len(ppl_ids)
    out["paged"] = _paged_sharing(model, ids[:s["paged_prompt"]], s["paged_requests"], 8)
    return out


def attention_section(model, tokenizer, s: dict) -> dict:
    """(5) The course's attention inside the model against transformers' sdpa on one prompt of
    ``s["attention_tokens"]``: the TinyLM path (the course's dispatcher), transformers with the course's attention
    registered (``auto``: on a CPU the dispatcher's fused-SDPA route; ``torch``: the course's tiled PyTorch kernel),
    and transformers' eager attention for scale."""
    from longctx_lab.lm.hf.attention import register
    from longctx_lab.lm.model.hf import to_hf
    from longctx_lab.lm.streaming import python_docs_text

    ids = torch.tensor([tokenizer.encode(python_docs_text(), add_special_tokens=False)[:s["attention_tokens"]]])
    impls = {"hf_longctx_auto": register(), "hf_longctx_torch": register("longctx_lab_torch", backend="torch"),
             "hf_eager": "eager"}
    with torch.no_grad():
        logits = {"tinylm": model(ids)[0]}
        hf = to_hf(model, attn_implementation="sdpa")
        sdpa = hf(ids).logits[0]
        for name, impl in impls.items():
            hf.set_attn_implementation(impl)
            logits[name] = hf(ids).logits[0]
    scale = float(sdpa.abs().max())
    out = {"tokens": ids.shape[1], "reference": "transformers sdpa, float32", "max_abs_logit": scale}
    for name, a in logits.items():
        err = float((a - sdpa).abs().max())
        out[f"{name}_vs_sdpa"] = {"max_abs": err, "max_rel": err / scale,
                                  "argmax_agree": float((a.argmax(-1) == sdpa.argmax(-1)).double().mean())}
    return out
