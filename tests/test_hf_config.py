"""Shipped Hugging Face configs read into ModelConfig, checked against `transformers` models built from them.

No download: parameter counts come from the full model built on the meta device (no memory), KV bytes
from a `DynamicCache` after a prefill of the same config with two layers and a tiny MLP (random
weights), scaled back by the layer count.
"""

import copy
import json
import math

import pytest
import torch
from transformers import CONFIG_MAPPING, AutoModelForCausalLM, DynamicCache

from longctx_lab.core import configs, cost
from longctx_lab.lm.hf.config import from_hf_config, read_hf_config, shipped_configs

SHIPPED = sorted(shipped_configs())


def hf_config(raw: dict):
    return CONFIG_MAPPING[raw["model_type"]].from_dict(copy.deepcopy(raw))


def rounding_tolerance(published: float) -> float:
    """Half a unit of the third significant digit: what a count printed as 8.03B or 46.7B can hide."""
    return 0.5 * 10 ** (math.floor(math.log10(published)) - 2)


def test_every_shipped_config_has_a_source_and_a_published_count():
    assert len(SHIPPED) >= 5
    for name, entry in shipped_configs().items():
        assert entry["url"].startswith("https://huggingface.co/") and entry["model_id"] in entry["url"]
        assert entry["params_source"] and entry["published_params"] > 0
        assert read_hf_config(name)["model_type"] in ("llama", "mistral", "mixtral", "qwen2", "gemma2")
    families = {read_hf_config(n)["model_type"] for n in SHIPPED}
    assert families == {"llama", "mistral", "mixtral", "qwen2", "gemma2"}


@pytest.mark.parametrize("name", SHIPPED)
def test_parameter_count_equals_the_transformers_model(name):
    raw = read_hf_config(name)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config(raw))
    total = sum(p.numel() for p in model.parameters())  # a tied LM head is one parameter, counted once
    m = from_hf_config(name)
    assert configs.n_params(m) == total
    assert abs(total - m.published_params) <= rounding_tolerance(m.published_params)
    experts = sum(p.numel() for n, p in model.named_parameters() if ".experts." in n)
    assert (experts > 0) == (m.n_experts > 1)
    if experts:  # active = everything but the experts a token is not routed to
        idle = experts * (m.n_experts - m.experts_per_token) // m.n_experts
        assert configs.n_params(m, active=True) == total - idle
        published_active = shipped_configs()[name]["published_active_params"]
        assert abs(total - idle - published_active) <= rounding_tolerance(published_active)


def _variants():
    """The shipped configs, plus window layouts the shipped files do not exercise."""
    out = [(n, read_hf_config(n)) for n in SHIPPED]
    qwen = dict(read_hf_config("qwen2-7b-instruct"), use_sliding_window=True, sliding_window=4096, max_window_layers=20)
    gemma = dict(read_hf_config("gemma-2-2b-it"), layer_types=["full_attention"] * 20 + ["sliding_attention"] * 6)
    mistral = dict(read_hf_config("mistral-7b-v0.1"), sliding_window=None)
    return out + [("qwen2 sliding from layer 20", qwen), ("gemma2 explicit layer_types", gemma),
                  ("mistral without window", mistral)]


@pytest.mark.parametrize("label, raw", _variants(), ids=[v[0] for v in _variants()])
def test_window_layers_match_the_transformers_cache_layout(label, raw):
    cache = DynamicCache(config=hf_config(raw))
    windows = sorted(getattr(layer, "sliding_window", None) or 0 for layer in cache.layers)
    m = from_hf_config(raw)
    assert len(windows) == m.n_layers
    ours = sorted([m.sliding_window] * m.n_sliding_layers + [0] * (m.n_layers - m.n_sliding_layers))
    assert windows == ours


def _small(raw: dict, **changes) -> dict:
    """Two layers, a 16-wide MLP and a tiny vocabulary; heads, KV heads and head_dim as published."""
    m = from_hf_config(raw)
    return dict(raw, num_hidden_layers=2, hidden_size=2 * m.n_heads, head_dim=m.head_dim, intermediate_size=16,
                vocab_size=64, **changes)


def _prefill_cache_bytes(raw: dict, n_tokens: int, batch: int, dtype: torch.dtype) -> tuple[int, DynamicCache]:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(hf_config(raw)).to(dtype).eval()
    ids = torch.randint(0, raw["vocab_size"], (batch, n_tokens))
    with torch.no_grad():
        cache = model(ids, use_cache=True).past_key_values
    assert isinstance(cache, DynamicCache)
    size = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    return size, cache


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("dtype, kv_dtype", [(torch.bfloat16, "bf16"), (torch.float32, "fp32")])
def test_kv_bytes_per_token_equal_a_dynamic_cache_after_prefill(name, dtype, kv_dtype):
    raw = read_hf_config(name)
    small = _small(raw)
    n_tokens, batch = 5, 2  # shorter than every window: each layer holds every token
    size, _ = _prefill_cache_bytes(small, n_tokens, batch, dtype)
    full = from_hf_config(name)
    per_token = cost.kv_cache_bytes_for(full, 1, dtype=kv_dtype)
    # scaled back: the small cache holds 2 of the model's n_layers layers, each as wide as the real one
    assert size * full.n_layers == per_token * n_tokens * batch * small["num_hidden_layers"]
    assert cost.kv_cache_bytes_for(from_hf_config(small), n_tokens, dtype=kv_dtype, batch=batch) == size


@pytest.mark.parametrize("name", ["mistral-7b-v0.1", "gemma-2-2b-it"])
def test_sliding_layers_stop_growing_at_the_window(name):
    window, n_tokens, batch = 4, 9, 2
    small = _small(read_hf_config(name), sliding_window=window)
    size, cache = _prefill_cache_bytes(small, n_tokens, batch, torch.float32)
    m = from_hf_config(small)
    assert m.n_sliding_layers >= 1
    held = sorted(layer.keys.shape[-2] for layer in cache.layers)
    assert held == sorted([window - 1] * m.n_sliding_layers + [n_tokens] * (m.n_layers - m.n_sliding_layers))
    # the course keeps the w keys the newest query reads; transformers keeps w - 1 between calls
    per_layer_token = 2 * m.n_kv_heads * m.head_dim * 4 * batch
    ours = cost.kv_cache_bytes_for(m, n_tokens, dtype="fp32", batch=batch)
    assert size == ours - m.n_sliding_layers * per_layer_token
    assert cost.kv_cache_bytes_for(m, 10**6, dtype="fp32", batch=batch) - ours == \
        (m.n_layers - m.n_sliding_layers) * per_layer_token * (10**6 - n_tokens)


def _llama() -> dict:
    return read_hf_config("llama-3.1-8b")


@pytest.mark.parametrize("change, exc, words", [
    (lambda c: c.pop("num_hidden_layers"), ValueError, "must have key 'num_hidden_layers'"),
    (lambda c: c.update(num_hidden_layers="32"), TypeError, "key 'num_hidden_layers' must be an integer, got str"),
    (lambda c: c.update(num_hidden_layers=0), ValueError, "key 'num_hidden_layers' must be an integer >= 1, got 0"),
    (lambda c: c.update(num_attention_heads=30), ValueError, "'num_attention_heads' (30) must be a multiple of "
                                                             "'num_key_value_heads' (8)"),
    (lambda c: c.update(hidden_size=4100), ValueError, "key 'head_dim' is missing and hidden_size 4100"),
    (lambda c: c.update(model_type="gpt2"), ValueError, "key 'model_type' must be one of"),
    (lambda c: c.pop("model_type"), ValueError, "key 'model_type' must be one of .* got None"),
    (lambda c: c.update(quantization_config={"quant_method": "awq"}), ValueError, "key 'quantization_config'"),
    (lambda c: c.update(mlp_bias=True), ValueError, "key 'mlp_bias'"),
    (lambda c: c.update(attention_bias="no"), TypeError, "key 'attention_bias' must be a bool"),
    (lambda c: c.update(rope_theta=-1.0), ValueError, "key 'rope_theta' must be > 0"),
    (lambda c: c.update(rope_scaling=[8.0]), TypeError, "key 'rope_scaling' must be an object"),
    (lambda c: c.update(layer_types=["full_attention"] * 32), ValueError, "key 'layer_types' is not supported"),
])
def test_malformed_or_unsupported_configs_name_the_key(change, exc, words):
    raw = _llama()
    change(raw)
    with pytest.raises(exc, match=words.replace("(", r"\(").replace(")", r"\)")):
        from_hf_config(raw)


def test_more_key_errors_for_windows_and_experts():
    gemma = dict(read_hf_config("gemma-2-2b-it"), layer_types=["sliding_attention"] * 3)
    with pytest.raises(ValueError, match="'layer_types' must be a list of 26"):
        from_hf_config(gemma)
    mixtral = dict(read_hf_config("mixtral-8x7b-v0.1"), num_experts_per_tok=9)
    with pytest.raises(ValueError, match="'num_experts_per_tok' must be <= num_local_experts \\(8\\), got 9"):
        from_hf_config(mixtral)
    mixtral.pop("num_local_experts")
    with pytest.raises(ValueError, match="must have key 'num_local_experts'"):
        from_hf_config(mixtral)
    with pytest.raises(ValueError, match="key 'sliding_window' must be an integer >= 1, got 0"):
        from_hf_config(dict(read_hf_config("mistral-7b-v0.1"), sliding_window=0))


def test_files_and_names(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama",')
    with pytest.raises(ValueError, match="is not valid JSON"):
        from_hf_config(path)
    path.write_text("[1, 2]")
    with pytest.raises(TypeError, match="must hold a JSON object, got list"):
        from_hf_config(path)
    with pytest.raises(ValueError, match="config must be a path to a config.json or one of the shipped configs"):
        from_hf_config("llama-9")
    with pytest.raises(TypeError, match="config must be a path or a shipped config name, got int"):
        read_hf_config(3)
    path.write_text(json.dumps(_llama()))
    m = from_hf_config(path)
    assert m.published_params is None and m.source == str(path)
    shipped = from_hf_config("llama-3.1-8b")
    assert shipped.published_params == 8.03e9 and shipped.source.endswith("Llama-3.1-8B/blob/main/config.json")
    assert (m.n_layers, m.n_kv_heads, m.head_dim, m.rope_scaling) == (32, 8, 128, shipped.rope_scaling)
    assert shipped.rope_scaling["rope_type"] == "llama3" and shipped.rope_theta == 500000.0


def test_rope_parameters_of_transformers_5_are_read():
    raw = _llama()
    scaling = raw.pop("rope_scaling")
    raw["rope_parameters"] = {**scaling, "rope_theta": raw.pop("rope_theta")}
    m = from_hf_config(raw)
    assert m.rope_theta == 500000.0 and m.rope_scaling == scaling
