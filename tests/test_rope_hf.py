"""longctx_lab.rope against Hugging Face transformers (the pinned 5.23.0).

Frequencies: our float64 schedules vs ``transformers.modeling_rope_utils.ROPE_INIT_FUNCTIONS``
(float32) for configs drawn by hypothesis. Application: ``apply_rope`` vs the Llama, GPT-NeoX
(partial rotary), GPT-J and Cohere (interleaved) ``apply_rotary_pos_emb`` functions, and vs the
Llama rotary-embedding module (including the dynamic update and YaRN's attention scaling).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

transformers = pytest.importorskip("transformers")

from transformers import LlamaConfig  # noqa: E402
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # noqa: E402
from transformers.models.cohere.modeling_cohere import apply_rotary_pos_emb as cohere_apply  # noqa: E402
from transformers.models.gpt_neox.modeling_gpt_neox import GPTNeoXRotaryEmbedding  # noqa: E402
from transformers.models.gpt_neox.modeling_gpt_neox import apply_rotary_pos_emb as neox_apply  # noqa: E402
from transformers.models.gptj.modeling_gptj import apply_rotary_pos_emb as gptj_apply  # noqa: E402
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding  # noqa: E402
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb as llama_apply  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from longctx_lab import rope  # noqa: E402

hf_logging.set_verbosity_error()


RTOL = 1e-5  # HF computes in float32

# --- strategies -------------------------------------------------------------------------------

head_dims = st.sampled_from([8, 16, 32, 64, 80, 96, 128, 256])
partials = st.sampled_from([1.0, 1.0, 0.5, 0.25])
bases = st.floats(2.0, 7.0).map(lambda e: float(round(10**e, 3)))
factors = st.floats(1.0, 64.0)
originals = st.sampled_from([256, 512, 2048, 4096, 8192, 32768])


@st.composite
def geometry(draw):
    """(head_dim, partial_rotary_factor) with an even rotary dimension >= 4."""
    head_dim = draw(head_dims)
    partial = draw(partials.filter(lambda p: int(head_dim * p) >= 4 and int(head_dim * p) % 2 == 0))
    return head_dim, partial


def hf_config(head_dim, rope_parameters, max_position_embeddings=4096):
    return LlamaConfig(
        hidden_size=head_dim * 2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=head_dim,
        max_position_embeddings=max_position_embeddings,
        rope_parameters=dict(rope_parameters),
    )


def assert_freqs_equal(ours, hf):
    inv_ours, att_ours = ours
    inv_hf, att_hf = hf
    assert inv_ours.dtype == torch.float64
    assert inv_ours.shape == inv_hf.shape
    torch.testing.assert_close(inv_ours, inv_hf.to(torch.float64), rtol=RTOL, atol=0.0)
    assert att_ours == pytest.approx(float(att_hf), rel=1e-12)


def test_transformers_is_the_pinned_version():
    """The comparisons below are against this exact version (constraints.txt); v4 had another config layout."""
    assert transformers.__version__ == "5.23.0"


# --- frequencies vs ROPE_INIT_FUNCTIONS --------------------------------------------------------


@given(geometry(), bases)
def test_default_matches_hf(geom, base):
    head_dim, partial = geom
    cfg = hf_config(head_dim, {"rope_type": "default", "rope_theta": base, "partial_rotary_factor": partial})
    assert_freqs_equal(
        rope.default_rope(head_dim, base, partial_rotary_factor=partial),
        GPTNeoXRotaryEmbedding.compute_default_rope_parameters(cfg),
    )


@given(geometry(), bases, factors)
def test_linear_matches_hf(geom, base, factor):
    head_dim, partial = geom
    params = {"rope_type": "linear", "rope_theta": base, "factor": factor, "partial_rotary_factor": partial}
    cfg = hf_config(head_dim, params)
    assert_freqs_equal(
        rope.linear_rope(head_dim, base, factor=factor, partial_rotary_factor=partial),
        ROPE_INIT_FUNCTIONS["linear"](cfg),
    )


@given(geometry(), bases, factors, originals, st.one_of(st.none(), st.integers(1, 300_000)))
def test_dynamic_matches_hf(geom, base, factor, max_pos, seq_len):
    head_dim, partial = geom
    params = {"rope_type": "dynamic", "rope_theta": base, "factor": factor, "partial_rotary_factor": partial}
    cfg = hf_config(head_dim, params, max_position_embeddings=max_pos)
    ours = rope.dynamic_ntk_rope(
        head_dim, base, factor=factor, max_position_embeddings=max_pos, seq_len=seq_len,
        partial_rotary_factor=partial,
    )
    assert_freqs_equal(ours, ROPE_INIT_FUNCTIONS["dynamic"](cfg, seq_len=seq_len))


@given(geometry(), bases, st.integers(1, 64), originals)
def test_static_ntk_is_hf_dynamic_frozen_at_target(geom, base, int_factor, max_pos):
    """HF has no static NTK; its dynamic rule with factor 1 at length s*L is the static NTK base change at s."""
    head_dim, partial = geom
    params = {"rope_type": "dynamic", "rope_theta": base, "factor": 1.0, "partial_rotary_factor": partial}
    cfg = hf_config(head_dim, params, max_position_embeddings=max_pos)
    hf = ROPE_INIT_FUNCTIONS["dynamic"](cfg, seq_len=int_factor * max_pos)
    assert_freqs_equal(rope.ntk_rope(head_dim, base, factor=int_factor, partial_rotary_factor=partial), hf)


@st.composite
def yarn_params(draw):
    beta_slow = draw(st.floats(0.25, 4.0))
    beta_fast = beta_slow + draw(st.floats(0.5, 64.0))
    p = {"factor": draw(factors), "beta_fast": beta_fast, "beta_slow": beta_slow, "truncate": draw(st.booleans())}
    choice = draw(st.sampled_from(["auto", "explicit", "mscale"]))
    if choice == "explicit":
        p["attention_factor"] = draw(st.floats(0.5, 2.0))
    elif choice == "mscale":
        p["mscale"] = draw(st.floats(0.1, 2.0))
        p["mscale_all_dim"] = draw(st.floats(0.1, 2.0))
    return p


@given(geometry(), bases, originals, yarn_params())
def test_yarn_matches_hf(geom, base, original, p):
    head_dim, partial = geom
    params = {"rope_type": "yarn", "rope_theta": base, "original_max_position_embeddings": original,
              "partial_rotary_factor": partial, **p}
    cfg = hf_config(head_dim, params, max_position_embeddings=int(original * p["factor"]) + 1)
    ours = rope.yarn_rope(head_dim, base, original_max_position_embeddings=original,
                          partial_rotary_factor=partial, **p)
    assert_freqs_equal(ours, ROPE_INIT_FUNCTIONS["yarn"](cfg))


@given(geometry(), bases, factors, originals, st.floats(0.25, 2.0), st.floats(0.5, 8.0))
def test_llama3_matches_hf(geom, base, factor, original, low, gap):
    head_dim, partial = geom
    params = {"rope_type": "llama3", "rope_theta": base, "factor": factor, "low_freq_factor": low,
              "high_freq_factor": low + gap, "original_max_position_embeddings": original,
              "partial_rotary_factor": partial}
    cfg = hf_config(head_dim, params, max_position_embeddings=int(original * factor) + 1)
    ours = rope.llama3_rope(head_dim, base, factor=factor, low_freq_factor=low, high_freq_factor=low + gap,
                            original_max_position_embeddings=original, partial_rotary_factor=partial)
    assert_freqs_equal(ours, ROPE_INIT_FUNCTIONS["llama3"](cfg))


@given(geometry(), bases, originals, st.data())
def test_longrope_matches_hf(geom, base, original, data):
    head_dim, partial = geom
    n = int(head_dim * partial) // 2
    per_pair = st.lists(st.floats(1.0, 64.0), min_size=n, max_size=n)
    short, long = data.draw(per_pair), data.draw(per_pair)
    max_pos = original * data.draw(st.sampled_from([1, 2, 4, 16]))
    seq_len = data.draw(st.one_of(st.none(), st.integers(1, 2 * max_pos)))
    explicit = data.draw(st.one_of(st.none(), st.floats(1.0, 32.0)))
    params = {"rope_type": "longrope", "rope_theta": base, "short_factor": short, "long_factor": long,
              "original_max_position_embeddings": original, "partial_rotary_factor": partial}
    if explicit is not None:
        params["factor"] = explicit
    cfg = hf_config(head_dim, params, max_position_embeddings=max_pos)
    ours = rope.longrope_rope(head_dim, base, short_factor=short, long_factor=long,
                              original_max_position_embeddings=original, factor=explicit,
                              max_position_embeddings=max_pos, seq_len=seq_len, partial_rotary_factor=partial)
    assert_freqs_equal(ours, ROPE_INIT_FUNCTIONS["longrope"](cfg, seq_len=seq_len))


LLAMA_31 = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}


def test_llama31_published_config_reproduces_hf():
    """Llama 3.1 8B's config.json: head_dim 128 (4096 / 32 heads), max_position_embeddings 131072."""
    cfg = LlamaConfig(hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
                      max_position_embeddings=131072, rope_parameters=dict(LLAMA_31))
    hf = ROPE_INIT_FUNCTIONS["llama3"](cfg)
    assert_freqs_equal(rope.llama3_rope(128), hf)  # our defaults are the published values
    assert_freqs_equal(rope.from_hf_rope_parameters(LLAMA_31, 128), hf)
    # and the module that Llama uses at run time agrees too
    module = LlamaRotaryEmbedding(cfg)
    torch.testing.assert_close(rope.llama3_rope(128)[0], module.inv_freq.to(torch.float64), rtol=RTOL, atol=0.0)
    # what the scheme does to Llama 3.1: 64 pairs, some kept, some divided by 8, a band between
    labels = rope.classify_pairs(rope.llama3_rope(128)[0], rope.default_rope(128, 500000.0)[0], 8.0)
    assert {"extrapolate", "interpolate", "blend"} == set(labels)
    assert labels == sorted(labels, key=["extrapolate", "blend", "interpolate"].index)


@pytest.mark.parametrize(
    "params, max_pos",
    [
        ({"rope_type": "default", "rope_theta": 10000.0}, 2048),
        ({"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}, 2048),
        ({"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}, 2048),
        ({"rope_type": "yarn", "rope_theta": 10000.0, "factor": 16.0, "original_max_position_embeddings": 4096}, 65536),
        (LLAMA_31, 131072),
    ],
)
def test_from_hf_rope_parameters(params, max_pos):
    cfg = hf_config(64, params, max_position_embeddings=max_pos)
    module = LlamaRotaryEmbedding(cfg)
    inv, att = rope.from_hf_rope_parameters(dict(params), 64, max_position_embeddings=max_pos)
    torch.testing.assert_close(inv, module.inv_freq.to(torch.float64), rtol=RTOL, atol=0.0)
    assert att == pytest.approx(module.attention_scaling)


# --- application vs apply_rotary_pos_emb -------------------------------------------------------


@given(geometry(), bases, st.integers(1, 3), st.integers(1, 24), st.integers(0, 10**6), st.booleans())
def test_apply_rope_matches_hf_apply(geom, base, batch, seq, seed, per_batch_positions):
    """Same cos/sin into HF's application functions (float64): halves (Llama / NeoX partial) and interleaved."""
    head_dim, partial = geom
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, 3, seq, head_dim, generator=gen, dtype=torch.float64)
    k = torch.randn(batch, 3, seq, head_dim, generator=gen, dtype=torch.float64)
    shape = (batch, seq) if per_batch_positions else (seq,)
    positions = torch.randint(0, 100_000, shape, generator=gen)
    inv_freq, _ = rope.default_rope(head_dim, base, partial_rotary_factor=partial)
    rotary_dim = 2 * inv_freq.numel()
    pos_b = positions.expand(batch, seq)
    angles = pos_b[..., None].double() * inv_freq  # (batch, seq, r/2), computed independently here

    emb = torch.cat((angles, angles), dim=-1)
    if partial == 1.0:
        hf_q, hf_k = llama_apply(q, k, emb.cos(), emb.sin())
    else:
        hf_q, hf_k = neox_apply(q, k, emb.cos(), emb.sin())
    torch.testing.assert_close(rope.apply_rope(q, positions, inv_freq), hf_q, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(rope.apply_rope(k, positions, inv_freq), hf_k, rtol=1e-12, atol=1e-12)

    # interleaved: GPT-J takes (batch, seq, heads, rotary_dim) and sin/cos of (batch, seq, rotary_dim/2)
    q_bshd = q.transpose(1, 2)[..., :rotary_dim]
    gptj = gptj_apply(q_bshd, angles.sin(), angles.cos()).transpose(1, 2)
    ours = rope.apply_rope(q, positions, inv_freq, layout="interleaved")
    torch.testing.assert_close(ours[..., :rotary_dim], gptj, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours[..., rotary_dim:], q[..., rotary_dim:], rtol=0, atol=0)
    if partial == 1.0:
        inter = angles.repeat_interleave(2, dim=-1)
        co_q, _ = cohere_apply(q, k, inter.cos(), inter.sin())  # Cohere rotates in float32
        torch.testing.assert_close(ours, co_q, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("rope_type", ["default", "linear", "yarn", "llama3"])
def test_apply_rope_matches_hf_rotary_module_float32(rope_type):
    """End to end in float32: our inv_freq + apply_rope vs LlamaRotaryEmbedding + apply_rotary_pos_emb."""
    params = {
        "default": {"rope_type": "default", "rope_theta": 10000.0},
        "linear": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
        "yarn": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 8.0, "original_max_position_embeddings": 512},
        "llama3": dict(LLAMA_31, original_max_position_embeddings=512),
    }[rope_type]
    cfg = hf_config(64, params, max_position_embeddings=4096)
    module = LlamaRotaryEmbedding(cfg)
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 64, 64, generator=gen)
    positions = torch.arange(1000, 1064)
    cos, sin = module(q, positions[None].expand(2, -1))
    hf_q, _ = llama_apply(q, q, cos, sin)
    inv, att = rope.from_hf_rope_parameters(dict(params), 64, max_position_embeddings=4096)
    ours = rope.apply_rope(q, positions, inv, attention_factor=att)
    assert ours.dtype == torch.float32
    # HF forms angles in float32 (error ~ position * 6e-8 rad); ours in float64
    torch.testing.assert_close(ours, hf_q, rtol=1e-4, atol=2e-4)
    if rope_type == "yarn":
        assert att == pytest.approx(module.attention_scaling) and att > 1


def test_dynamic_module_update_matches_current_length():
    """HF's rotary module recomputes dynamic-NTK frequencies from max(position_ids) + 1; ours takes seq_len."""
    params = {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 4.0}
    cfg = hf_config(32, params, max_position_embeddings=1024)
    module = LlamaRotaryEmbedding(cfg)
    x = torch.zeros(1, 1, 1, 32)
    for length in (100, 1024, 3000, 5000, 700):
        module(x, torch.arange(length)[None])
        ours, _ = rope.dynamic_ntk_rope(32, 10000.0, factor=4.0, max_position_embeddings=1024, seq_len=length)
        torch.testing.assert_close(ours, module.inv_freq.to(torch.float64), rtol=RTOL, atol=0.0)
