"""longctx_lab.lm.model.hf.from_hf / config_from_hf: a Hugging Face Llama or Mistral (built from a config with
seeded random weights, never downloaded) into a TinyLM; its logits against the Hugging Face model's own."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from longctx_lab.lm.model import TinyLM  # noqa: E402
from longctx_lab.lm.model.hf import config_from_hf, from_hf, to_hf  # noqa: E402

COMMON = dict(vocab_size=40, hidden_size=48, intermediate_size=56, num_hidden_layers=2, num_attention_heads=6,
              num_key_value_heads=2, head_dim=8, max_position_embeddings=64, rms_norm_eps=3e-6)


def _hf(kind="llama", seed=0, **changes):
    torch.manual_seed(seed)
    args = {**COMMON, **changes}
    if kind == "llama":
        cfg = transformers.LlamaConfig(**args, attention_bias=False, mlp_bias=False)
        model = transformers.LlamaForCausalLM(cfg)
    else:
        model = transformers.MistralForCausalLM(transformers.MistralConfig(**args))
    with torch.no_grad():  # norms are ones at init: make them count
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model.double().eval()


def _tokens(seq=20, vocab=40, seed=0):
    return torch.randint(0, vocab, (2, seq), generator=torch.Generator().manual_seed(seed))


def _assert_logits_equal(ours, hf, tokens):
    with torch.no_grad():
        a, b = ours(tokens), hf(tokens).logits
    # Hugging Face computes the RoPE angles in float32 (error ~ position * 6e-8): a float64 model agrees to ~1e-6.
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind, changes", [
    ("llama", {}),
    ("llama", {"tie_word_embeddings": True}),
    ("llama", {"rope_parameters": {"rope_type": "default", "rope_theta": 100_000.0}}),
    ("llama", {"rope_parameters": {"rope_type": "yarn", "rope_theta": 5_000.0, "factor": 2.0,
                                   "original_max_position_embeddings": 16}}),
    ("llama", {"rope_parameters": {"rope_type": "linear", "rope_theta": 10_000.0, "factor": 3.0}}),
    ("mistral", {"sliding_window": 5}),
])
def test_from_hf_logits_equal_the_hugging_face_model(kind, changes):
    hf = _hf(kind, **changes)
    ours = from_hf(hf)
    assert isinstance(ours, TinyLM) and not ours.training
    assert ours.config.tied_embeddings == hf.config.tie_word_embeddings
    _assert_logits_equal(ours, hf, _tokens())


def test_from_hf_reads_the_config_fields():
    hf = _hf("mistral", sliding_window=7, rope_parameters={"rope_type": "default", "rope_theta": 321.0})
    cfg = config_from_hf(hf.config)
    got = (cfg.vocab_size, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.mlp_hidden,
           cfg.max_positions, cfg.norm_eps, cfg.rope_base, cfg.window(0), cfg.rope_layout)
    want = (COMMON["vocab_size"], COMMON["hidden_size"], COMMON["num_hidden_layers"], COMMON["num_attention_heads"],
            COMMON["num_key_value_heads"], COMMON["head_dim"], COMMON["intermediate_size"],
            COMMON["max_position_embeddings"], COMMON["rms_norm_eps"], 321.0, 7, "halves")
    assert got == want
    assert config_from_hf(hf.config.to_dict()) == cfg  # a config.json dict reads the same


def test_from_hf_with_a_state_dict_and_a_config_json_dict():
    """The weight cache's path: config.json as a dict plus the tensors under Hugging Face's names (no lm_head when
    tied), no transformers model built."""
    hf = _hf(tie_word_embeddings=True, seed=3)
    state = {k: v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    ours = from_hf(hf.config.to_dict(), state, dtype=torch.float64)
    assert ours.lm_head.weight is ours.embed_tokens.weight
    _assert_logits_equal(ours, hf, _tokens(seed=1))


def test_from_hf_then_to_hf_round_trips_the_weights():
    hf = _hf(seed=5)
    back = to_hf(from_hf(hf))
    theirs, mine = hf.state_dict(), back.state_dict()
    assert set(theirs) == set(mine)
    for key in theirs:
        assert torch.equal(theirs[key], mine[key]), key


def test_from_hf_dtype():
    hf = _hf(seed=1)
    ours = from_hf(hf, dtype=torch.float32)
    assert ours.dtype == torch.float32 and ours.lm_head.weight.dtype == torch.float32
    assert all(p.device.type == "cpu" for p in ours.parameters())
    assert ours.rope[0].device.type == "cpu" and ours.rope[0].dtype == torch.float64


@pytest.mark.parametrize("changes, exc, words", [
    ({"attention_bias": True}, ValueError, "config's attention_bias must be False (TinyLM has no biases), got True"),
    ({"hidden_act": "gelu"}, ValueError, "config's hidden_act must be 'silu' (SwiGLU), got 'gelu'"),
    ({"model_type": "gpt2"}, ValueError, "config's model_type must be one of ('llama', 'mistral'), got 'gpt2'"),
    ({"rope_parameters": {"rope_type": "proportional", "rope_theta": 1.0}}, ValueError,
     "config's rope_type must be one of"),
])
def test_config_from_hf_refuses_what_tinylm_cannot_be(changes, exc, words):
    cfg = {**transformers.LlamaConfig(**COMMON).to_dict(), **changes}
    with pytest.raises(exc) as info:
        config_from_hf(cfg)
    assert words in str(info.value)


def test_from_hf_bad_input():
    hf = _hf(seed=2)
    with pytest.raises(TypeError, match="config must be a transformers PretrainedConfig or its config.json as a dict, "
                                        "got int"):
        config_from_hf(3)
    with pytest.raises(TypeError, match="model_or_config must be a transformers model when state_dict is None, got "
                                        "dict"):
        from_hf({"model_type": "llama"})
    with pytest.raises(TypeError, match="dtype must be a floating-point torch.dtype or None, got torch.int64"):
        from_hf(hf, dtype=torch.int64)
    state = dict(hf.state_dict())
    state.pop("model.layers.1.mlp.up_proj.weight")
    with pytest.raises(ValueError, match=r"missing \['layers.1.mlp.up_proj.weight'\], unexpected \[\]"):
        from_hf(hf.config, state)
    state = dict(hf.state_dict())
    state["model.norm.weight"] = torch.ones(3)
    with pytest.raises(ValueError, match=r"state_dict\['norm.weight'\] must have shape \(48,\), got \(3,\)"):
        from_hf(hf.config, state)
