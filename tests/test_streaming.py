"""Chunked perplexity through caches (full, window, window + sinks) on a small random TinyLM, against full
forwards without a cache."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from longctx_lab.lm.model import LMConfig, TinyLM
from longctx_lab.lm.streaming import (
    chunked_nll,
    full_caches,
    python_docs_text,
    segment_perplexity,
    sink_caches,
)

CONFIG = LMConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=8, mlp_hidden=48,
                  init_std=0.3)


def _model(config=CONFIG) -> TinyLM:
    return TinyLM(config, seed=3).eval()


def _reference_nll(model: TinyLM, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0].double()
    return torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="none")


IDS = torch.randint(0, 50, (61,), generator=torch.Generator().manual_seed(0)).tolist()


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_full_caches_equal_one_forward(chunk):
    model = _model()
    torch.testing.assert_close(chunked_nll(model, IDS, chunk=chunk, show_progress=False), _reference_nll(model, IDS),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("chunk", [1, 5])
def test_window_cache_equals_a_windowed_model(chunk):
    model = _model()
    windowed = TinyLM(dataclasses.replace(CONFIG, sliding_window=9)).eval()
    windowed.load_state_dict(model.state_dict())
    got = chunked_nll(model, IDS, sink_caches(model, 9, chunk=chunk), chunk=chunk, show_progress=False)
    torch.testing.assert_close(got, _reference_nll(windowed, IDS), atol=1e-5, rtol=1e-5)


def test_sinks_chunking_is_invisible_and_a_long_window_is_full_attention():
    model = _model()
    one = chunked_nll(model, IDS, sink_caches(model, 9, sinks=3, chunk=1), chunk=1, show_progress=False)
    six = chunked_nll(model, IDS, sink_caches(model, 9, sinks=3, chunk=6), chunk=6, show_progress=False)
    torch.testing.assert_close(one, six, atol=1e-5, rtol=1e-5)
    window_only = chunked_nll(model, IDS, sink_caches(model, 9, chunk=6), chunk=6, show_progress=False)
    assert not torch.allclose(one[20:], window_only[20:])  # the sinks change what late tokens see
    long = chunked_nll(model, IDS, sink_caches(model, 80, sinks=3, chunk=8), chunk=8, show_progress=False)
    torch.testing.assert_close(long, _reference_nll(model, IDS), atol=1e-5, rtol=1e-5)


def test_segment_perplexity_is_exp_of_the_mean():
    nll = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    rows = segment_perplexity(nll, 2)
    assert [(r["start"], r["stop"]) for r in rows] == [(0, 2), (2, 4), (4, 5)]
    assert rows[1]["perplexity"] == pytest.approx(torch.exp(torch.tensor(2.5)).item())


def test_bad_input():
    model = _model()
    with pytest.raises(ValueError, match="ids"):
        chunked_nll(model, [3], show_progress=False)
    with pytest.raises(TypeError, match="model"):
        chunked_nll("model", IDS)
    with pytest.raises(ValueError, match="window"):
        sink_caches(TinyLM(dataclasses.replace(CONFIG, sliding_window=4)), 8)
    caches = full_caches(model, 70)
    chunked_nll(model, IDS, caches, show_progress=False)
    with pytest.raises(ValueError, match="empty"):
        chunked_nll(model, IDS, caches, show_progress=False)
    with pytest.raises(ValueError, match="segment"):
        segment_perplexity(torch.ones(3), 0)


def test_python_docs_text_is_long_prose():
    text = python_docs_text()
    assert len(text) > 300_000 and "the" in text.split()[:2000]
