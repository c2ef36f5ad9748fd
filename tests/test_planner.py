"""The planner and `longctx-lab plan`, against per-layer brute force and hand arithmetic from the raw config.json.

The per-layer references below walk the layers one by one (a window list, not the planner's window
groups) and count with exact integers.
"""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longctx_lab.cli import main
from longctx_lab.core import cost
from longctx_lab.core.configs import LLAMA3_70B, MISTRAL_7B, ModelConfig, n_params
from longctx_lab.lm.hf.config import read_hf_config
from longctx_lab.lm.hf.planner import Plan, plan

BYTES = {"fp32": 4, "bf16": 2, "fp8": 1, "int4": 0.5}
GiB = 2**30


@st.composite
def models(draw):
    kv = draw(st.integers(1, 8))
    layers = draw(st.integers(1, 12))
    window = draw(st.one_of(st.none(), st.integers(1, 64)))
    return ModelConfig(
        name="drawn", n_layers=layers, n_heads=kv * draw(st.integers(1, 4)), n_kv_heads=kv,
        head_dim=draw(st.sampled_from([8, 64, 128, 256])), hidden_size=draw(st.integers(8, 512)),
        intermediate_size=draw(st.integers(1, 1024)), vocab_size=draw(st.integers(1, 4096)), max_context=4096,
        rope_theta=1e4, published_params=None, source="hypothesis", sliding_window=window,
        sliding_window_layers=None if window is None else draw(st.integers(0, layers)),
        tied_embeddings=draw(st.booleans()),
    )


def layer_windows(m: ModelConfig) -> list:
    """One entry per layer: its window, or None. Which layers slide does not matter to any cost."""
    return [m.sliding_window] * m.n_sliding_layers + [None] * (m.n_layers - m.n_sliding_layers)


def kv_reference(m: ModelConfig, n: int, dtype: str, batch: int = 1) -> float:
    return sum(2 * batch * m.n_kv_heads * m.head_dim * (n if w is None else min(n, w)) * BYTES[dtype]
               for w in layer_windows(m))


@given(m=models(), n=st.integers(0, 300), dtype=st.sampled_from(sorted(BYTES)), batch=st.integers(1, 4))
def test_kv_bytes_sum_every_layer_with_its_own_window(m, n, dtype, batch):
    assert cost.kv_cache_bytes_for(m, n, dtype=dtype, batch=batch) == int(kv_reference(m, n, dtype, batch))


@given(m=models(), context=st.integers(1, 300))
def test_attention_flops_per_token_count_the_keys_each_layer_reads(m, context):
    p = plan(m, context=context)
    keys = sum(context if w is None else min(context, w) for w in layer_windows(m))
    assert p.flops_per_token["attention_scores"] == 4 * m.n_heads * m.head_dim * keys
    h, q, kv = m.hidden_size, m.n_heads * m.head_dim, m.n_kv_heads * m.head_dim
    assert p.flops_per_token["attention_proj"] == 2 * m.n_layers * (2 * h * q + 2 * h * kv)
    assert p.flops_per_token["mlp"] == 2 * m.n_layers * 3 * h * m.intermediate_size
    assert p.flops_per_token["lm_head"] == 2 * m.vocab_size * h  # tied or not, the head is a matmul
    assert p.flops_per_token["total"] == sum(v for k, v in p.flops_per_token.items() if k != "total")


@given(m=models(), n=st.integers(1, 200))
def test_prefill_flops_sum_the_per_layer_masks(m, n):
    per_token = sum(cost.matmul_flops_per_token(m).values())
    attention = sum(4 * m.n_heads * m.head_dim * cost.attended_pairs(n, causal=True, window=w)
                    for w in layer_windows(m))
    assert cost.prefill_flops(m, n) == per_token * n + attention


def test_decode_step_reads_w_keys_in_a_window_layer():
    step = cost.decode_step(MISTRAL_7B, 100_000, batch=1)
    matmuls = sum(cost.matmul_flops_per_token(MISTRAL_7B).values())
    assert step["flops"] - matmuls == 4 * 32 * 32 * 128 * 4096  # the newest query sees w = 4096 keys
    full = cost.decode_step(LLAMA3_70B, 999)
    assert full["flops"] - sum(cost.matmul_flops_per_token(LLAMA3_70B).values()) == 4 * 80 * 64 * 128 * 1000


@given(m=models(), context=st.integers(1, 500), batch=st.integers(1, 8), dtype=st.sampled_from(sorted(BYTES)),
       kv_dtype=st.sampled_from(sorted(BYTES)), weights_share=st.floats(0.8, 1.25), kv_share=st.floats(0.0, 3.0))
def test_what_fits_is_the_exact_boundary(m, context, batch, dtype, kv_dtype, weights_share, kv_share):
    weights = int(n_params(m) * BYTES[dtype])  # n_params is checked against transformers in test_hf_config
    kv = int(kv_reference(m, context, kv_dtype))
    gib = (weights / weights_share + kv_share * batch * kv) / GiB  # GPUs around the weights and the batch's cache
    p = plan(m, context=context, batch=batch, dtype=dtype, kv_dtype=kv_dtype, gpu_mem_gib=gib)
    gpu = int(gib * GiB)
    assert p.weights_bytes == weights and p.gpu_mem_bytes == gpu
    if weights > gpu:
        assert p.fits is False and p.max_context is None and p.max_batch is None
        assert p.verdict.startswith("does not fit: the weights alone")
        return
    assert p.fits == (weights + batch * kv <= gpu)
    assert p.verdict.startswith("fits" if p.fits else "does not fit")
    assert p.max_batch >= 0 and weights + p.max_batch * kv <= gpu < weights + (p.max_batch + 1) * kv

    def need(n):
        return weights + int(kv_reference(m, n, kv_dtype, batch))

    if p.max_context_unbounded:
        assert m.n_sliding_layers == m.n_layers and need(10**9) <= gpu and p.max_context is None
    else:
        assert p.max_context >= 0 and need(p.max_context + 1) > gpu
        assert p.max_context == 0 or need(p.max_context) <= gpu


def test_plan_of_a_shipped_config_against_hand_arithmetic():
    raw = read_hf_config("llama-3.1-8b")
    layers, kv_heads = raw["num_hidden_layers"], raw["num_key_value_heads"]
    head_dim = raw["hidden_size"] // raw["num_attention_heads"]
    p = plan("llama-3.1-8b", context=131072, batch=4, dtype="bf16", kv_dtype="fp8", gpu_mem_gib=80)
    assert p.kv_bytes_per_token == 2 * layers * kv_heads * head_dim * 1
    assert p.kv_bytes_per_sequence == p.kv_bytes_per_token * 131072 and p.kv_bytes_batch == 4 * p.kv_bytes_per_sequence
    assert p.weights_bytes == 2 * p.params_total and p.fits
    assert p.max_batch == (80 * GiB - p.weights_bytes) // p.kv_bytes_per_sequence
    assert any("beyond max_position_embeddings 131,072" in n for n in p.notes)
    # Gemma 2: head_dim 256 (not hidden/heads = 288); half the layers stop at the 4096 window
    g = plan("gemma-2-2b-it", context=8192, kv_dtype="bf16")
    assert g.kv_bytes_per_token == 2 * 26 * 4 * 256 * 2
    assert g.kv_bytes_per_sequence == 2 * 4 * 256 * 2 * (13 * 8192 + 13 * 4096)
    mixtral = plan("mixtral-8x7b-v0.1", context=4096, gpu_mem_gib=80)
    assert mixtral.params_active < mixtral.params_total and not mixtral.fits and mixtral.max_batch is None


def test_all_window_model_is_unbounded_when_its_window_fits():
    p = plan("mistral-7b-v0.1", context=1_000_000, batch=2, gpu_mem_gib=24)
    assert p.max_context_unbounded and p.max_context is None and p.fits
    assert p.kv_bytes_per_sequence == 2 * 32 * 8 * 128 * 2 * 4096
    tight = plan("mistral-7b-v0.1", context=100, batch=64, gpu_mem_gib=14)  # 13.5 GiB of weights
    assert not tight.max_context_unbounded and 0 < tight.max_context < 4096


def test_not_one_sequence_fits_is_said_not_hidden():
    p = plan("llama-3.1-8b", context=131072, gpu_mem_gib=16)  # 14.96 GiB of weights, 16 GiB of KV per sequence
    assert p.fits is False and p.max_batch == 0
    assert "not one sequence of 131,072 tokens fits" in p.verdict
    assert p.max_context == (16 * GiB - p.weights_bytes) // p.kv_bytes_per_token


@pytest.mark.parametrize("kwargs, exc, words", [
    ({"context": 0}, ValueError, "context must be an integer >= 1, got 0"),
    ({"context": -5}, ValueError, "context must be an integer >= 1, got -5"),
    ({"context": 1.5}, TypeError, "context must be an integer, got float"),
    ({"batch": 0}, ValueError, "batch must be an integer >= 1, got 0"),
    ({"dtype": "fp7"}, ValueError, "dtype must be one of .* got 'fp7'"),
    ({"kv_dtype": "q3"}, ValueError, "kv_dtype must be one of .* got 'q3'"),
    ({"gpu_mem_gib": 0}, ValueError, "gpu_mem_gib must be > 0"),
    ({"gpu_mem_gib": "80"}, TypeError, "gpu_mem_gib must be a real number"),
])
def test_bad_arguments_name_the_argument(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        plan("llama-3.1-8b", **kwargs)


def test_table_html_and_dict_carry_the_same_numbers():
    p = plan("qwen2-7b-instruct", context=32768, batch=64, gpu_mem_gib=80)
    assert isinstance(p, Plan) and not p.fits
    text, page = p.table(), p._repr_html_()
    assert "does not fit" in text and "does not fit" in page and text.startswith("model")
    assert cost.fmt_bytes(p.kv_bytes_per_token) in text and f"{p.max_batch:,}" in text
    d = json.loads(json.dumps(p.to_dict()))
    assert d["kv_bytes_per_token"] == 2 * 28 * 4 * 128 * 2 and d["max_batch"] == p.max_batch


def test_cli_text(capsys):
    assert main(["plan", "mistral-7b-v0.1", "--context", "32768", "--batch", "8", "--gpu-mem", "24"]) == 0
    out = capsys.readouterr().out
    assert "128 KiB" in out  # 2 * 32 layers * 8 KV heads * 128 * 2 bytes = 131072 B per token
    assert "512 MiB" in out  # capped at the 4096 window: 131072 * 4096 B per sequence
    assert "fits:" in out and "not limited by memory" in out


def test_cli_json_and_does_not_fit(capsys):
    assert main(["plan", "mixtral-8x7b-v0.1", "--context", "4096", "--dtype", "bf16", "--gpu-mem", "80", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["fits"] is False and d["max_context"] is None and d["max_batch"] is None
    assert d["verdict"].startswith("does not fit")
    assert d["kv_bytes_per_sequence"] == 2 * 32 * 8 * 128 * 2 * 4096
    assert main(["plan", "mixtral-8x7b-v0.1", "--dtype", "int4", "--kv-dtype", "fp8", "--gpu-mem", "80", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["fits"] is True and d["context"] == 32768 and d["kv_dtype"] == "fp8"


def test_cli_reads_a_config_file(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(read_hf_config("gemma-2-2b-it")))
    assert main(["plan", str(path), "--context", "100", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["source"] == str(path) and d["kv_bytes_per_sequence"] == 2 * 26 * 4 * 256 * 2 * 100


@pytest.mark.parametrize("argv, words", [
    (["--context", "0"], "context must be an integer >= 1, got 0"),
    (["--dtype", "fp7"], "dtype must be one of"),
    (["--kv-dtype", "fp7"], "kv_dtype must be one of"),
    (["--gpu-mem", "-1"], "gpu_mem_gib must be > 0"),
])
def test_cli_errors(argv, words, capsys):
    assert main(["plan", "llama-3.1-8b", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and words in captured.err


def test_cli_malformed_config(tmp_path, capsys):
    raw = read_hf_config("llama-3.1-8b")
    del raw["num_hidden_layers"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    assert main(["plan", str(path)]) == 2
    assert "'num_hidden_layers'" in capsys.readouterr().err
    assert main(["plan", "no-such-model"]) == 2
    assert "shipped configs" in capsys.readouterr().err


def test_readme_example_is_what_the_command_prints(capsys):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("```console\n$ longctx-lab plan ", 1)[1].split("```", 1)[0]
    command, printed = block.split("\n", 1)
    assert main(["plan", *command.split()]) == 0
    assert capsys.readouterr().out == printed
