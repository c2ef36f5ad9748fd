"""Cached decoding gives the logits of recomputing from scratch, for every cache kind.

Reference: :func:`recompute_logits`, one causal no-cache forward over the generated sequence, whose row ``p``
is what a model recomputing from scratch after ``p + 1`` tokens computes (the model is causal: test_model_lm).

Tolerances, and why:
- float64: 1e-10 (the paths differ only in summation order; measured ~1e-15).
- float32: 1e-5 * max(1, max |logit|) (measured ~2e-7 for logits of magnitude ~1: a few ulps of accumulated
  round-off through two layers; 1e-5 leaves 50x room and still catches a wrong position or key, >= 1e-2).
- quantized caches, against the float model: the stored keys/values are off by at most half a step,
  ``absmax / (2 qmax)`` of their group (qmax 127 for int8, 7 for int4), and the logits move in proportion to
  the step: measured max |logit error| / std(logits) ~ 2.2 / (2 qmax) over seeds (int8 <= 0.009, int4 <= 0.17;
  the int4/int8 ratio, ~18, is qmax's 127/7). The test allows 4 / (2 qmax) (int8 1.6%, int4 29%).
- quantized caches, exactly: with per-token scales and no full-precision window, the cached model is the float
  model whose keys/values are rounded to the grid right after RoPE; a float64 recomputation that rounds them
  the same way (written independently here) matches within 1e-7, not 1e-10, because the cache computes codes
  and read-back values ``code * scale`` in float32 even for a float64 cache (``quantize``/``dequantize`` call
  ``.float()``): float32 round-off of the values (relative 6e-8), measured 5e-9 on the logits, while the
  quantization error itself is >= 1e-5 here (asserted, so the comparison can tell the two apart).
"""

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import longctx_lab.lm.model.layers as layers
from longctx_lab.attention.reference import naive_attention
from longctx_lab.lm.model import CACHE_KINDS, LMConfig, TinyLM, generate, make_caches, recompute_logits
from longctx_lab.lm.model.generate import sample_next

BASE = LMConfig(vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16, mlp_hidden=48)
FLOAT_KINDS = ("contiguous", "rolling", "paged")
QUANT_KINDS = ("quantized-int8", "quantized-int4", "kivi", "kivi-int8")
SMALL_KIVI = {"residual": 4, "group_size": 4}  # so that a short test quantizes most of its tokens


def _prompts(lengths, vocab=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths]


def _errors(model, out):
    """Per sequence: (max |cached - recomputed| over the decoded steps, std of the recomputed logits)."""
    rows = []
    for s, seq in enumerate(out.sequences):
        n, new = len(out.prompts[s]), len(out.new_tokens[s])
        ref = recompute_logits(model, seq)[n - 1:n - 1 + new]
        assert out.logits[s].shape == ref.shape
        rows.append((float((out.logits[s].to(ref.dtype) - ref).abs().max()), float(ref.std()), float(ref.abs().max())))
    return rows


def _options(kind):
    return SMALL_KIVI if kind.startswith("kivi") else {}


@pytest.mark.parametrize("kind", CACHE_KINDS)
def test_every_kind_float32_ragged_gqa_with_a_window_layer(kind):
    config = dataclasses.replace(BASE, sliding_window=[5, None])
    model = TinyLM(config, seed=1)
    out = generate(model, _prompts([11, 3, 7]), 9, cache=kind, prefill_chunk=4, **_options(kind))
    assert [len(t) for t in out.new_tokens] == [9, 9, 9]
    for err, std, top in _errors(model, out):
        if kind in FLOAT_KINDS:
            assert err <= 1e-5 * max(1.0, top)
        else:
            qmax = 127 if kind.endswith("int8") else 7
            assert err / std <= 4 / (2 * qmax)


@settings(max_examples=25)
@given(
    kv=st.sampled_from([1, 2, 4]),
    windows=st.lists(st.sampled_from([None, 2, 5]), min_size=2, max_size=2),
    lengths=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    new=st.integers(1, 5),
    chunk=st.one_of(st.none(), st.integers(1, 4)),
    kind=st.sampled_from(FLOAT_KINDS),
    seed=st.integers(0, 3),
)
def test_cached_decoding_is_recomputation_float64(kv, windows, lengths, new, chunk, kind, seed):
    model = TinyLM(dataclasses.replace(BASE, n_kv_heads=kv, sliding_window=windows), seed=seed).double()
    out = generate(model, _prompts(lengths, seed=seed), new, cache=kind, prefill_chunk=chunk, block_size=3)
    for err, _, _ in _errors(model, out):
        assert err <= 1e-10


def _fake_quant_attention(bits):
    """The no-cache attention with keys/values rounded per (token, head) to a symmetric absmax grid."""
    top = 2 ** (bits - 1) - 1

    def grid(x):
        s = x.abs().amax(-1, keepdim=True) / top
        return torch.where(s > 0, torch.clamp(torch.round(x / torch.where(s > 0, s, 1)), -top, top) * s, x)

    def attention(q, k, v, *, window=None):
        g = q.shape[1] // k.shape[1]
        k, v = grid(k).repeat_interleave(g, 1), grid(v).repeat_interleave(g, 1)
        return naive_attention(q, k, v, causal=True, window=window)

    return attention


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("windows", [[None, None], [3, None]])
def test_per_token_quantized_cache_is_the_rounded_model_exactly(bits, windows, monkeypatch):
    model = TinyLM(dataclasses.replace(BASE, n_kv_heads=1, sliding_window=windows), seed=2).double()
    out = generate(model, _prompts([10, 4]), 6, cache=f"quantized-int{bits}", prefill_chunk=3)
    float_err = max(e for e, _, _ in _errors(model, out))
    monkeypatch.setattr(layers, "cached_attention", _fake_quant_attention(bits))
    exact_err = max(e for e, _, _ in _errors(model, out))
    assert exact_err <= 1e-7 and float_err > 1e-5


@pytest.mark.parametrize("kind", QUANT_KINDS)
def test_quantized_error_is_within_the_stated_bound_over_seeds(kind):
    qmax = 127 if kind.endswith("int8") else 7
    worst = 0.0
    for seed in range(3):
        model = TinyLM(dataclasses.replace(BASE, sliding_window=[4, None]), seed=seed)
        out = generate(model, _prompts([30, 12], seed=seed), 10, cache=kind, prefill_chunk=8, **_options(kind))
        worst = max([worst] + [err / std for err, std, _ in _errors(model, out)])
    assert 0 < worst <= 4 / (2 * qmax)


def test_forked_continuations_share_the_prefix_and_match_recomputation():
    # Parallel sampling: prefill slot 0, fork it into slot 1 on every layer (paged: shared blocks, copy-on-write).
    model = TinyLM(BASE, seed=3).double()
    prompt = _prompts([7])[0]
    for kind in ("paged", "contiguous"):
        caches = make_caches(BASE, kind, batch=2, capacity=16, dtype=torch.float64, block_size=4)
        model(torch.tensor([prompt]), caches=caches, seq_ids=[0])
        for c in caches:
            c.fork(0, 1)
        if kind == "paged":
            assert caches[0].allocator.num_used == 2  # 7 tokens in blocks of 4, held once
        nxt = torch.tensor([[5], [9]])
        logits = model(nxt, caches=caches, seq_ids=[0, 1])[:, -1]
        for s in range(2):
            ref = recompute_logits(model, prompt + [int(nxt[s])])[-1]
            torch.testing.assert_close(logits[s], ref, rtol=0, atol=1e-10)


def test_sampling_is_seeded_and_greedy_is_argmax():
    model = TinyLM(BASE, seed=0)
    prompts = _prompts([5, 8])
    a = generate(model, prompts, 12, temperature=1.5, top_k=10, seed=7)
    b = generate(model, prompts, 12, temperature=1.5, top_k=10, seed=7)
    c = generate(model, prompts, 12, temperature=1.5, top_k=10, seed=8)
    assert a.new_tokens == b.new_tokens != c.new_tokens
    greedy = generate(model, prompts, 6)
    assert greedy.new_tokens == greedy.logits.argmax(-1).tolist()
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    draws = {int(sample_next(logits, temperature=1.0, top_k=2, generator=torch.Generator().manual_seed(i)))
             for i in range(50)}
    assert draws == {1, 3}  # top_k keeps the two largest only


def test_the_caches_hold_only_kv_heads_and_the_sizes_asked_for():
    config = dataclasses.replace(BASE, n_kv_heads=1, sliding_window=[4, None])
    out = generate(TinyLM(config), _prompts([6, 2]), 3, cache="rolling")
    rolling, contiguous = out.caches
    assert (type(rolling).__name__, rolling.slots, rolling.kv_heads) == ("RollingKVCache", 4 + 6 - 1, 1)
    assert (type(contiguous).__name__, contiguous.capacity) == ("ContiguousKVCache", 9)
    assert contiguous.lengths.tolist() == [8, 4]  # the last new token is never fed back
    paged = make_caches(config, "paged", batch=3, capacity=10, block_size=4)[0]
    assert (paged.num_blocks, paged.max_blocks_per_seq) == (3 * math.ceil(10 / 4), 3)


def test_bad_arguments_are_named():
    model = TinyLM(BASE)
    with pytest.raises(ValueError, match=r"prompts\[1\] must hold token ids in \[0, 40\), got \[3, 40\]"):
        generate(model, [[1], [3, 40]], 2)
    with pytest.raises(ValueError, match=r"prompts\[0\] must be a non-empty list of token ids, got \[\]"):
        generate(model, [[]], 2)
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 1, got 0"):
        generate(model, [[1]], 0)
    with pytest.raises(ValueError, match="kind must be one of"):
        generate(model, [[1]], 2, cache="ring")
    with pytest.raises(ValueError, match="temperature must be >= 0.0, got -1.0"):
        generate(model, [[1]], 2, temperature=-1.0)
    with pytest.raises(TypeError, match="residual"):
        make_caches(BASE, "contiguous", residual=3)
    caches = make_caches(BASE, "contiguous", batch=2, capacity=8)
    with pytest.raises(ValueError, match=r"seq_ids must name 1 distinct slots \(one per row of tokens\) in \[0, 2\), "
                                         r"got \[2\]"):
        model(torch.tensor([[1]]), caches=caches, seq_ids=[2])
    with pytest.raises(ValueError, match=r"caches must hold one KVCache per layer \(n_layers=2\)"):
        model(torch.tensor([[1]]), caches=caches[:1])
    with pytest.raises(ValueError, match=r"caches\[0\] must hold kv_heads=2, head_dim=16 in torch.float32"):
        model(torch.tensor([[1]]), caches=make_caches(BASE, "contiguous", dtype=torch.float64))
    model(torch.tensor([[1, 2]]), caches=caches, seq_ids=[0])
    caches[0].free(0)
    with pytest.raises(ValueError, match="caches must agree on every slot's length"):
        model(torch.tensor([[1]]), caches=caches, seq_ids=[0])
    full = make_caches(BASE, "contiguous", capacity=2)
    model(torch.tensor([[1, 2]]), caches=full)
    with pytest.raises(ValueError, match="capacity is 2 tokens per sequence"):
        model(torch.tensor([[3]]), caches=full)
