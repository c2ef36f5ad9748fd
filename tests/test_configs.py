"""Published configs: shapes consistent, parameter counts recomputed from shapes match the published ones."""

import pytest

from longctx_lab.core import configs


@pytest.mark.parametrize("key", sorted(configs.MODELS))
def test_parameter_count_matches_published(key):
    m = configs.MODELS[key]
    assert configs.n_params(m) == pytest.approx(m.published_params, rel=0.01)
    assert m.head_dim * m.n_heads == m.hidden_size
    assert m.n_heads % m.n_kv_heads == 0
    assert m.source


def test_mixtral_active_parameters():
    assert configs.n_params(configs.MIXTRAL_8X7B, active=True) == pytest.approx(12.9e9, rel=0.01)


def test_mistral_uses_8_kv_heads_and_a_4096_window():
    assert configs.MISTRAL_7B.n_kv_heads == 8 and configs.MISTRAL_7B.sliding_window == 4096
    assert configs.MIXTRAL_8X7B.sliding_window is None


def test_memory_hierarchy_is_ordered_fastest_first():
    for gpu in configs.GPUS.values():
        bw = [lvl.bandwidth for lvl in configs.memory_hierarchy(gpu) if lvl.bandwidth]
        assert bw == sorted(bw, reverse=True)
    assert configs.A100_80GB_SXM.smem_bandwidth == pytest.approx(19.5e12, rel=0.01)  # FlashAttention paper: 19 TB/s


def test_get_model_errors():
    with pytest.raises(ValueError, match="name must be one of"):
        configs.get_model("gpt-5")
    with pytest.raises(TypeError):
        configs.get_model(3)
    with pytest.raises(TypeError, match="config must be a ModelConfig"):
        configs.n_params("llama")
