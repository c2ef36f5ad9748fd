"""ModelConfig rejects impossible shapes with errors that name the field; param_counts adds up to n_params."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab.core import configs
from longctx_lab.core.configs import LLAMA3_8B, MISTRAL_7B, ModelConfig


@pytest.mark.parametrize("changes, exc, words", [
    ({"n_kv_heads": 5}, ValueError, "n_heads must be a multiple of n_kv_heads (grouped-query attention), "
                                    "got n_heads 32 and n_kv_heads 5"),
    ({"n_kv_heads": 0}, ValueError, "n_kv_heads must be an integer >= 1, got 0"),
    ({"n_layers": 0}, ValueError, "n_layers must be an integer >= 1, got 0"),
    ({"head_dim": -128}, ValueError, "head_dim must be an integer >= 1, got -128"),
    ({"hidden_size": 4096.0}, TypeError, "hidden_size must be an integer, got float 4096.0"),
    ({"vocab_size": True}, TypeError, "vocab_size must be an integer, got bool"),
    ({"max_context": 0}, ValueError, "max_context must be an integer >= 1, got 0"),
    ({"n_experts": 2, "experts_per_token": 3}, ValueError, "experts_per_token must be <= n_experts (2), got 3"),
    ({"sliding_window": 0}, ValueError, "sliding_window must be an integer >= 1, got 0"),
    ({"sliding_window_layers": 4}, ValueError, "sliding_window_layers needs a sliding_window"),
    ({"sliding_window": 4096, "sliding_window_layers": 33}, ValueError,
     "sliding_window_layers must be <= n_layers (32), got 33"),
    ({"rope_theta": 0.0}, ValueError, "rope_theta must be > 0"),
    ({"published_params": -1.0}, ValueError, "published_params must be > 0"),
    ({"name": ""}, TypeError, "name must be a non-empty string"),
    ({"tied_embeddings": 1}, TypeError, "tied_embeddings must be a bool, got int 1"),
    ({"qkv_bias": "yes"}, TypeError, "qkv_bias must be a bool"),
    ({"norms_per_layer": -1}, ValueError, "norms_per_layer must be an integer >= 0, got -1"),
    ({"rope_scaling": [8.0]}, TypeError, "rope_scaling must be a dict or None, got list"),
])
def test_impossible_configs_are_rejected_naming_the_field(changes, exc, words):
    with pytest.raises(exc, match=words.replace("(", r"\(").replace(")", r"\)")):
        dataclasses.replace(LLAMA3_8B, **changes)


@given(kv=st.integers(1, 16), group=st.integers(1, 8), extra=st.integers(0, 7))
def test_heads_must_be_a_multiple_of_kv_heads(kv, group, extra):
    heads = kv * group + extra
    if extra % kv == 0:
        m = dataclasses.replace(LLAMA3_8B, n_heads=heads, n_kv_heads=kv)
        assert m.group_size * kv == heads
    else:
        with pytest.raises(ValueError, match=f"got n_heads {heads} and n_kv_heads {kv}"):
            dataclasses.replace(LLAMA3_8B, n_heads=heads, n_kv_heads=kv)


def test_published_params_may_be_unknown():
    assert dataclasses.replace(LLAMA3_8B, published_params=None).published_params is None


def test_window_groups_split_the_layers():
    assert LLAMA3_8B.window_groups == ((None, 32),) and LLAMA3_8B.n_sliding_layers == 0
    assert MISTRAL_7B.window_groups == ((4096, 32),) and MISTRAL_7B.n_sliding_layers == 32
    half = dataclasses.replace(MISTRAL_7B, sliding_window_layers=13)
    assert half.window_groups == ((None, 19), (4096, 13))
    assert dataclasses.replace(MISTRAL_7B, sliding_window_layers=0).window_groups == ((None, 32),)


@pytest.mark.parametrize("key", sorted(configs.MODELS))
def test_param_counts_add_up_to_n_params(key):
    m = configs.MODELS[key]
    for active in (False, True):
        parts = configs.param_counts(m, active=active)
        assert sum(parts.values()) == configs.n_params(m, active=active)
        assert min(parts.values()) >= 0
    h = m.hidden_size
    # hand count of one layer's attention: q and o are h x (heads * head_dim), k and v are h x (kv_heads * head_dim)
    attention = 2 * h * m.n_heads * m.head_dim + 2 * h * m.n_kv_heads * m.head_dim
    assert configs.param_counts(m)["attention"] == m.n_layers * attention


def test_biases_and_extra_norms_are_counted():
    base = configs.param_counts(LLAMA3_8B)
    biased = configs.param_counts(dataclasses.replace(LLAMA3_8B, qkv_bias=True, o_bias=True, norms_per_layer=4))
    assert biased["attention"] - base["attention"] == 32 * ((32 + 2 * 8) * 128 + 4096)
    assert biased["norms"] - base["norms"] == 32 * 2 * 4096
    tied = configs.param_counts(dataclasses.replace(LLAMA3_8B, tied_embeddings=True))
    assert tied["lm_head"] == 0 and tied["embedding"] == 128256 * 4096
    with pytest.raises(TypeError, match="active must be a bool"):
        configs.param_counts(LLAMA3_8B, active=1)


def test_every_published_model_is_a_valid_config():
    for m in configs.MODELS.values():
        assert isinstance(m, ModelConfig)
        assert dataclasses.replace(m) == m  # re-validates
