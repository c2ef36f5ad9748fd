"""longctx_lab.lm.model: LMConfig validation, TinyLM forward (against Hugging Face Llama/Mistral and a float64
hand-written reference), seeded init, save/load round trip."""

import dataclasses
import json
import re

import pytest
import torch

from longctx_lab.attention.reference import naive_attention
from longctx_lab.lm.model import LMConfig, TinyLM, load_metadata, load_model, save_model
from longctx_lab.rope import apply_rope

SMALL = LMConfig(vocab_size=48, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16, mlp_hidden=40)


def _tokens(batch, seq, vocab=48, seed=0):
    return torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("changes, exc, words", [
    ({"n_kv_heads": 3}, ValueError, "n_heads must be a multiple of n_kv_heads (grouped-query attention), "
                                    "got n_heads 4 and n_kv_heads 3"),
    ({"n_kv_heads": 0}, ValueError, "n_kv_heads must be an integer >= 1, got 0"),
    ({"vocab_size": 0}, ValueError, "vocab_size must be an integer >= 1, got 0"),
    ({"d_model": 32.0}, TypeError, "d_model must be an integer, got float 32.0"),
    ({"head_dim": 15}, ValueError, "head_dim must be even (RoPE rotates pairs of features), got 15"),
    ({"head_dim": None, "d_model": 30}, ValueError, "d_model must be a multiple of n_heads when head_dim is not given"),
    ({"mlp": "relu"}, ValueError, "mlp must be one of ('swiglu', 'gelu'), got 'relu'"),
    ({"rope_scheme": "xpos"}, ValueError, "rope_scheme must be one of"),
    ({"rope_params": [2.0]}, TypeError, "rope_params must be a dict of the scheme's keyword arguments, got list"),
    ({"rope_scheme": "linear"}, TypeError, "rope_params {} do not fit rope_scheme 'linear'"),
    ({"rope_scheme": "linear", "rope_params": {"factor": 0.5}}, ValueError, "factor must be >= 1.0, got 0.5"),
    ({"rope_params": {"fator": 2.0}}, TypeError, "fator"),
    ({"rope_layout": "pairs"}, ValueError, "rope_layout must be one of ('halves', 'interleaved'), got 'pairs'"),
    ({"sliding_window": 0}, ValueError, "sliding_window must be an integer >= 1, got 0"),
    ({"sliding_window": [4]}, ValueError, "sliding_window must list one entry per layer (n_layers=2), got 1 entries"),
    ({"sliding_window": [4, 0]}, ValueError, "sliding_window[1] must be an integer >= 1, got 0"),
    ({"sliding_window": [4, 2.5]}, TypeError, "sliding_window[1] must be None or an integer >= 1, got float 2.5"),
    ({"sliding_window": "4"}, TypeError, "sliding_window must be None, an integer or a list"),
    ({"norm_eps": 0.0}, ValueError, "norm_eps must be > 0"),
    ({"tied_embeddings": 1}, TypeError, "tied_embeddings must be a bool, got int 1"),
    ({"name": ""}, TypeError, "name must be a non-empty string"),
])
def test_bad_configs_are_rejected_naming_the_field(changes, exc, words):
    with pytest.raises(exc, match=re.escape(words)):
        dataclasses.replace(SMALL, **changes)


def test_config_defaults_windows_and_json_round_trip():
    c = LMConfig(vocab_size=10, d_model=64, n_layers=3, n_heads=4, sliding_window=[None, 8, None])
    assert (c.n_kv_heads, c.head_dim, c.mlp_hidden, c.group_size) == (4, 16, 256, 1)
    assert [c.window(i) for i in range(3)] == [None, 8, None]
    with pytest.raises(ValueError, match=r"layer must be in \[0, 3\), got 3"):
        c.window(3)
    assert LMConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert LMConfig(vocab_size=10, d_model=64, n_layers=3, n_heads=4, sliding_window=8).sliding_window == (8, 8, 8)
    with pytest.raises(ValueError, match=r"data has keys LMConfig does not know: \['n_embd'\]"):
        LMConfig.from_dict({**c.to_dict(), "n_embd": 3})


@pytest.mark.parametrize("mlp, tied", [("swiglu", True), ("gelu", False)])
def test_n_params_counts_the_module(mlp, tied):
    c = dataclasses.replace(SMALL, mlp=mlp, tied_embeddings=tied)
    model = TinyLM(c)
    assert c.n_params() == sum(p.numel() for p in model.parameters())  # parameters() counts a tied matrix once


# ----------------------------------------------------------------------------- forward
def _reference_logits(model: TinyLM, tokens: torch.Tensor) -> torch.Tensor:
    """Float64 forward written out from the definitions (dense masks, repeat_interleave GQA, float64 RoPE)."""
    c, sd = model.config, {k: v.double() for k, v in model.state_dict().items()}
    inv_freq, factor = c.rope_frequencies()

    def rms(x, w):
        return w * x / torch.sqrt((x * x).mean(-1, keepdim=True) + c.norm_eps)

    b, n = tokens.shape
    x = sd["embed_tokens.weight"][tokens]
    pos = torch.arange(n)
    for i in range(c.n_layers):
        p = f"layers.{i}."
        h = rms(x, sd[p + "input_layernorm.weight"])
        q = (h @ sd[p + "self_attn.q_proj.weight"].T).view(b, n, c.n_heads, c.head_dim).transpose(1, 2)
        k = (h @ sd[p + "self_attn.k_proj.weight"].T).view(b, n, c.n_kv_heads, c.head_dim).transpose(1, 2)
        v = (h @ sd[p + "self_attn.v_proj.weight"].T).view(b, n, c.n_kv_heads, c.head_dim).transpose(1, 2)
        q = apply_rope(q, pos, inv_freq, layout=c.rope_layout, attention_factor=factor)
        k = apply_rope(k, pos, inv_freq, layout=c.rope_layout, attention_factor=factor)
        g = c.group_size
        o = naive_attention(q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1), causal=True, window=c.window(i))
        x = x + o.transpose(1, 2).reshape(b, n, -1) @ sd[p + "self_attn.o_proj.weight"].T
        h = rms(x, sd[p + "post_attention_layernorm.weight"])
        up = h @ sd[p + "mlp.up_proj.weight"].T
        act = torch.nn.functional.silu(h @ sd[p + "mlp.gate_proj.weight"].T) * up if c.mlp == "swiglu" else \
            torch.nn.functional.gelu(up)
        x = x + act @ sd[p + "mlp.down_proj.weight"].T
    return rms(x, sd["norm.weight"]) @ sd["lm_head.weight"].T


@pytest.mark.parametrize("changes", [
    {},
    {"n_kv_heads": 1, "mlp": "gelu", "tied_embeddings": False},
    {"n_kv_heads": 4, "sliding_window": [3, None], "rope_layout": "interleaved"},
    {"rope_scheme": "yarn", "rope_params": {"factor": 4.0, "original_max_position_embeddings": 16}},
    {"rope_scheme": "linear", "rope_params": {"factor": 2.0, "partial_rotary_factor": 0.5}, "head_dim": 8},
])
def test_forward_matches_a_float64_reference_written_from_the_definitions(changes):
    model = TinyLM(dataclasses.replace(SMALL, **changes), seed=3).double()
    tokens = _tokens(2, 13)
    with torch.no_grad():
        got = model(tokens)
    assert got.shape == (2, 13, 48) and got.dtype == torch.float64
    torch.testing.assert_close(got, _reference_logits(model, tokens), rtol=0, atol=1e-12)


def test_float32_forward_is_the_float64_one_within_round_off():
    model = TinyLM(SMALL, seed=1)
    tokens = _tokens(2, 40)
    with torch.no_grad():
        got, ref = model(tokens), model.double()(tokens)
    torch.testing.assert_close(got.double(), ref, rtol=0, atol=1e-5)


def test_the_model_is_causal_and_seeded():
    a, b = TinyLM(SMALL, seed=5), TinyLM(SMALL, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(TinyLM(SMALL, seed=6).embed_tokens.weight, a.embed_tokens.weight)
    state = torch.random.get_rng_state()
    TinyLM(SMALL, seed=7)
    assert torch.equal(state, torch.random.get_rng_state())  # init leaves the global RNG alone
    tokens = _tokens(1, 12)
    changed = tokens.clone()
    changed[0, 8] = (changed[0, 8] + 1) % 48
    with torch.no_grad():
        x, y = a(tokens), a(changed)
    torch.testing.assert_close(x[:, :8], y[:, :8], rtol=0, atol=0)
    assert not torch.allclose(x[:, 8:], y[:, 8:])


def test_the_window_bounds_what_a_window_only_model_sees():
    # Two layers of window 3: position p depends on tokens p - 4 .. p only (receptive field 2 * (3 - 1) + 1).
    model = TinyLM(dataclasses.replace(SMALL, sliding_window=3), seed=2).double()
    tokens = _tokens(1, 12)
    changed = tokens.clone()
    changed[0, 2] = (changed[0, 2] + 1) % 48
    with torch.no_grad():
        x, y = model(tokens), model(changed)
    assert not torch.allclose(x[0, 6], y[0, 6])
    torch.testing.assert_close(x[0, 7:], y[0, 7:], rtol=0, atol=1e-12)


def test_forward_rejects_bad_tokens():
    model = TinyLM(SMALL)
    with pytest.raises(ValueError, match=r"tokens must be ids in \[0, 48\), got values in \[0, 48\]"):
        model(torch.tensor([[0, 48]]))
    with pytest.raises(ValueError, match=r"tokens must be a \(batch, seq>=1\) int64 tensor"):
        model(torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="tokens must be a torch.Tensor, got list"):
        model([[1, 2]])
    with pytest.raises(ValueError, match="seq_ids needs caches"):
        model(torch.tensor([[1]]), seq_ids=[0])


def test_set_rope_changes_only_the_schedule():
    model = TinyLM(SMALL, seed=0).double()
    tokens = _tokens(1, 20)
    with torch.no_grad():
        before = model(tokens)
        model.set_rope(SMALL.with_rope("linear", factor=2.0))
        after = model(tokens)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, _reference_logits(model, tokens), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"differ from the model's only in its rope_\* fields, got differences in "
                                         r"\['n_kv_heads'\]"):
        model.set_rope(dataclasses.replace(SMALL, n_kv_heads=4))


# ----------------------------------------------------------------------------- save / load
def test_save_load_round_trip(tmp_path):
    model = TinyLM(dataclasses.replace(SMALL, sliding_window=[4, None], tied_embeddings=False), seed=9)
    save_model(model, tmp_path / "ckpt", metadata={"command": "test"})
    loaded = load_model(tmp_path / "ckpt")
    assert loaded.config == model.config and load_metadata(tmp_path / "ckpt") == {"command": "test"}
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)
    tokens = _tokens(2, 9)
    with torch.no_grad():
        torch.testing.assert_close(loaded(tokens), model(tokens), rtol=0, atol=0)
    tied = TinyLM(SMALL).double()
    save_model(tied, tmp_path / "tied")
    back = load_model(tmp_path / "tied")
    assert back.dtype == torch.float64 and back.lm_head.weight is back.embed_tokens.weight
    with pytest.raises(FileNotFoundError, match="must hold a config.json written by save_model"):
        load_model(tmp_path / "nothing")


# ----------------------------------------------------------------------------- Hugging Face
transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("changes", [
    {},
    {"n_kv_heads": 1, "tied_embeddings": False},
    {"sliding_window": 5},  # Mistral: every layer one window
    {"rope_scheme": "llama3", "rope_base": 500_000.0, "rope_params": {"factor": 8.0, "low_freq_factor": 1.0,
                                                                       "high_freq_factor": 4.0,
                                                                       "original_max_position_embeddings": 16}},
    {"rope_scheme": "yarn", "rope_params": {"factor": 4.0, "original_max_position_embeddings": 16}},
])
def test_logits_equal_a_hugging_face_model_with_the_same_weights(changes):
    from longctx_lab.lm.model.hf import to_hf

    model = TinyLM(dataclasses.replace(SMALL, **changes), seed=4).double()
    hf = to_hf(model)
    tokens = _tokens(2, 24)
    with torch.no_grad():
        ours, theirs = model(tokens), hf(tokens).logits
    # Hugging Face computes inv_freq (and the angles) in float32: angle error ~ position * 6e-8 * inv_freq.
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours, theirs.double(), rtol=0, atol=10 * float((ours - theirs).abs().max()) + 1e-12)


def test_to_hf_refuses_what_has_no_twin():
    from longctx_lab.lm.model.hf import hf_config

    with pytest.raises(ValueError, match="one window for every layer"):
        hf_config(dataclasses.replace(SMALL, sliding_window=[4, None]))
    with pytest.raises(ValueError, match="to have a Hugging Face twin, got 'gelu'"):
        hf_config(dataclasses.replace(SMALL, mlp="gelu"))
