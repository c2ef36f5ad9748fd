"""Passkey in natural filler (lm/niah/natural.py) with a stand-in character tokenizer, scoring through an oracle
and a constant decoder, and the RoPE schedules set at inference (lm/niah/decoding.py) against transformers'."""

from __future__ import annotations

import copy

import pytest
import torch

from longctx_lab.lm.niah import natural
from longctx_lab.lm.niah.natural import FILLER, make_natural_sample, read_key, run_natural_niah


class CharTokenizer:
    """One id per character (its code point): decode(encode(text)) == text, lengths easy to reason about."""

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]

    def decode(self, ids):
        return "".join(chr(i) for i in ids)


TOK = CharTokenizer()


@pytest.mark.parametrize("length", [400, 1000, 2345])
def test_prompt_length_key_and_needle(length):
    sample = make_natural_sample(TOK, length, 0.5, seed=7)
    text = TOK.decode(sample.prompt)
    longest = max(len(s) + 1 for s in FILLER)
    assert length - longest < len(sample.prompt) <= length
    assert len(sample.key) == 5 and sample.key[0] != "0" and sample.key.isdigit()
    assert text.count(sample.key) == 2 and text.endswith(natural.QUESTION)
    assert text[sample.needle_position:].startswith(" The pass key is " + sample.key)


def test_depth_moves_the_needle_and_seeds_repeat():
    positions = [make_natural_sample(TOK, 1500, d, seed=1).needle_position for d in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert positions == sorted(positions) and positions[0] < positions[-1]
    first = make_natural_sample(TOK, 1500, 0.0, seed=1)
    assert TOK.decode(first.prompt[:first.needle_position]) == natural.INSTRUCTION
    assert make_natural_sample(TOK, 900, 0.3, seed=5) == make_natural_sample(TOK, 900, 0.3, seed=5)
    keys = {make_natural_sample(TOK, 900, 0.3, seed=s).key for s in range(20)}
    assert len(keys) > 15


def test_read_key():
    assert read_key(" 48213. Remember") == "48213"
    assert read_key(" the pass key") is None
    with pytest.raises(TypeError, match="text"):
        read_key(5)


@pytest.mark.parametrize(("args", "word"), [((0, 0.5), "length"), ((150, 0.5), "length"), ((500, 1.5), "depth")])
def test_bad_input(args, word):
    with pytest.raises(ValueError, match=word):
        make_natural_sample(TOK, *args)
    with pytest.raises(TypeError, match="tokenizer"):
        make_natural_sample(object(), 500, 0.5)


def test_grid_scores_exact_match(monkeypatch):
    from longctx_lab.lm.niah import decoding

    def oracle(model, prompt, n, **options):
        text = TOK.decode(prompt)
        return TOK.encode(" " + read_key(text) + ". Re")[:n]

    monkeypatch.setattr(decoding, "greedy_tokens", oracle)
    result = run_natural_niah(None, TOK, lengths=[500, 800], depths=[0.0, 1.0], trials=2, show_progress=False,
                              max_new_tokens=6)
    assert result.accuracy == [[1.0, 1.0], [1.0, 1.0]] and result.effective_length() == 800
    assert len({r["seed"] for r in result.records}) == 8
    monkeypatch.setattr(decoding, "greedy_tokens", lambda model, prompt, n, **o: TOK.encode(" 11111"))
    wrong = run_natural_niah(None, TOK, lengths=[500], depths=[0.5], trials=3, show_progress=False)
    assert wrong.accuracy == [[0.0]] and wrong.task == "passkey-natural"


def _tiny_llama():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                   rope_parameters={"rope_type": "default", "rope_theta": 100000.0})
    return transformers.LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize(("scheme", "hf"), [
    ("linear", {"rope_type": "linear", "factor": 2.0}),
    ("yarn", {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 256}),
    ("none", {"rope_type": "default"}),
])
def test_inference_rope_on_transformers_equals_its_own(scheme, hf):
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    from longctx_lab.lm.niah.decoding import set_inference_rope

    model = _tiny_llama()
    before = model.model.rotary_emb.inv_freq.clone()
    restore = set_inference_rope(model, scheme, factor=2.0 if scheme != "none" else None)
    cfg = copy.deepcopy(model.config)
    cfg.rope_parameters = {"rope_theta": 100000.0, **hf}
    ref = LlamaRotaryEmbedding(cfg)
    torch.testing.assert_close(model.model.rotary_emb.inv_freq, ref.inv_freq, atol=1e-7, rtol=1e-6)
    assert model.model.rotary_emb.attention_scaling == pytest.approx(ref.attention_scaling)
    restore()
    assert torch.equal(model.model.rotary_emb.inv_freq, before)


def test_greedy_tokens_on_transformers_and_refused_options():
    from longctx_lab.lm.niah.decoding import greedy_tokens

    model = _tiny_llama()
    out = greedy_tokens(model, [1, 2, 3, 4], 3)
    with torch.no_grad():
        first = int(model(torch.tensor([[1, 2, 3, 4]])).logits[0, -1].argmax())
    assert len(out) == 3 and out[0] == first
    with pytest.raises(ValueError, match="sinks"):
        greedy_tokens(model, [1, 2], 2, sinks=4)
    with pytest.raises(TypeError, match="model"):
        greedy_tokens(object(), [1], 1)


def test_pretrained_grid_window_sinks_and_rope_on_a_small_tinylm():
    """run_pretrained_niah's options on a random TinyLM over the character ids: a window longer than the prompt
    (with or without sinks) decodes what full attention decodes; the RoPE schedule is restored afterwards."""
    from longctx_lab.lm.model import LMConfig, TinyLM
    from longctx_lab.lm.niah.pretrained import run_pretrained_niah

    model = TinyLM(LMConfig(vocab_size=128, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=8,
                            mlp_hidden=48, max_positions=256, init_std=0.3), seed=1).eval()
    grid = {"lengths": [300], "depths": [0.5], "trials": 1, "show_progress": False}
    full = run_pretrained_niah(model, TOK, **grid)
    long_window = run_pretrained_niah(model, TOK, window=512, sinks=2, prefill_chunk=64, **grid)
    assert full.records[0]["prediction"] == long_window.records[0]["prediction"]
    short = run_pretrained_niah(model, TOK, window=16, sinks=2, prefill_chunk=32, **grid)
    assert short.options["window"] == 16 and short.options["sinks"] == 2
    rope = model.rope
    dynamic = run_pretrained_niah(model, TOK, rope="dynamic", rope_params={"factor": 2.0}, **grid)
    assert dynamic.options["rope_params"]["max_position_embeddings"] == 256
    assert model.config.rope_scheme == "default" and torch.equal(model.rope[0], rope[0])
    with pytest.raises(ValueError, match="sinks"):
        run_pretrained_niah(model, TOK, sinks=2, **grid)
