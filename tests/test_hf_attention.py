"""longctx_lab.lm.hf.attention against Hugging Face's own ``sdpa`` implementation (transformers 5.23.0).

Tiny models built from configs with random weights (no download). ``initializer_range=0.2`` (HF's default is
0.02) so that the attention weights are far from uniform: with near-uniform weights a wrong window or scale
would hardly move the logits (a window off by one moves them by ~8). Tolerances, absolute, on logits up to ~6:
float32 ``5e-5`` (the two implementations sum in different orders; measured up to 6e-6, prefill and decode steps);
float64 ``1e-11`` (measured 0 on the logits, ~1e-15 on one attention call, whose tests use ``1e-12``).
"""

from __future__ import annotations

import copy
import math
import subprocess
import sys
import types

import pytest
import torch

transformers = pytest.importorskip("transformers")

from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    DynamicCache,
    Gemma2Config,
    LlamaConfig,
    MistralConfig,
    Qwen2Config,
)
from transformers.integrations.sdpa_attention import sdpa_attention_forward  # noqa: E402
from transformers.masking_utils import causal_mask_function, sdpa_mask, sliding_window_causal_mask_function  # noqa: E402

from longctx_lab.attention.masks import build_mask  # noqa: E402
from longctx_lab.kernels.dispatch import flash_attention  # noqa: E402
from longctx_lab.lm.hf import attention as hf_attention  # noqa: E402
from longctx_lab.lm.hf.attention import NAME, attention_forward, compare_with_sdpa, register  # noqa: E402

ATOL = {torch.float32: 5e-5, torch.float64: 1e-11}
SMALL = dict(vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             initializer_range=0.2, max_position_embeddings=128)


@pytest.fixture(scope="module", autouse=True)
def _registered():
    register()


def llama(**changes):
    return LlamaConfig(**{**SMALL, "num_key_value_heads": 4, "head_dim": 16, **changes})


def mistral(**changes):
    return MistralConfig(**{**SMALL, "num_key_value_heads": 2, "head_dim": 16, "sliding_window": 5, **changes})


def qwen2(**changes):
    return Qwen2Config(**{**SMALL, "num_key_value_heads": 1, "head_dim": 16, **changes})


def qwen2_hybrid(**changes):
    """Qwen2 with a full layer then a sliding one (``layer_types``): two masks per forward pass."""
    return qwen2(**{"use_sliding_window": True, "sliding_window": 4, "max_window_layers": 1, "num_key_value_heads": 2,
                    **changes})


CONFIGS = {"llama": llama, "mistral-window-5": mistral, "qwen2-gqa-4": qwen2, "qwen2-full-then-window-4": qwen2_hybrid}


def twins(config, dtype=torch.float32, seed=0):
    """The same random weights under ``sdpa`` and under the course's kernels (one config copy each:
    ``from_config`` writes ``attn_implementation`` into the config it is given)."""
    out = []
    for impl in ("sdpa", NAME):
        torch.manual_seed(seed)
        out.append(AutoModelForCausalLM.from_config(copy.deepcopy(config), attn_implementation=impl).to(dtype).eval())
    assert out[1].config._attn_implementation == NAME and out[0].config._attn_implementation == "sdpa"
    return out


def tokens(batch, length, vocab=96, seed=1):
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def greedy(model, prompt, new_tokens):
    with torch.no_grad():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), past_key_values=DynamicCache(
            config=model.config), max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
            output_logits=True, return_dict_in_generate=True, pad_token_id=0)
    return out.sequences, torch.stack(out.logits)


# ----------------------------------------------------------------------------------------------- models
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_prefill_logits_equal_sdpa(name, dtype):
    ref, ours = twins(CONFIGS[name](), dtype)
    ids = tokens(2, 24)
    with torch.no_grad():
        expected, got = ref(ids).logits, ours(ids).logits
    assert expected.abs().max() > 1  # logits that a wrong mask would move
    torch.testing.assert_close(got, expected, rtol=0, atol=ATOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_cached_greedy_generation_equals_sdpa(name, dtype):
    """HF's DynamicCache (sliding layers keep w - 1 keys for Mistral): the decode steps see q_len = 1 and the
    cache's kv_len, bottom-right aligned. Same tokens, per-step logits within tolerance."""
    ref, ours = twins(CONFIGS[name](), dtype)
    prompt = tokens(1, 9)
    seq_ref, logits_ref = greedy(ref, prompt, 10)
    seq, logits = greedy(ours, prompt, 10)
    assert torch.equal(seq, seq_ref)
    torch.testing.assert_close(logits, logits_ref, rtol=0, atol=ATOL[dtype])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_static_cache_generation_equals_sdpa(name):
    """HF's StaticCache: a mask-free prefill over the whole empty cache (keys cut to q_len, as sdpa does), then
    decode masks whose last keys are unfilled slots (cut: no query sees them)."""
    ref, ours = twins(CONFIGS[name]())
    prompt = tokens(1, 7)
    runs = []
    for model in (ref, ours):
        with torch.no_grad():
            out = model.generate(prompt, attention_mask=torch.ones_like(prompt), cache_implementation="static",
                                 max_new_tokens=6, min_new_tokens=6, do_sample=False, output_logits=True,
                                 return_dict_in_generate=True, pad_token_id=0)
        runs.append((out.sequences, torch.stack(out.logits)))
    assert torch.equal(runs[1][0], runs[0][0])
    torch.testing.assert_close(runs[1][1], runs[0][1], rtol=0, atol=ATOL[torch.float32])


def test_chunked_prefill_over_a_cache_equals_sdpa():
    """q_len > 1 over a non-empty cache (q_len != kv_len, a mask from HF): the sliding model, second chunk."""
    ref, ours = twins(mistral(sliding_window=6), torch.float64)
    ids = tokens(1, 20)
    results = []
    for model in (ref, ours):
        cache = DynamicCache(config=model.config)
        with torch.no_grad():
            model(ids[:, :8], past_key_values=cache, use_cache=True)
            results.append(model(ids[:, 8:], past_key_values=cache, use_cache=True).logits)
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=ATOL[torch.float64])


@pytest.mark.parametrize("head_dim", [64, 80, 96, 128, 256])
def test_head_dims_of_real_models_on_the_cpu_path(head_dim):
    ref, ours = twins(qwen2(num_hidden_layers=1, num_key_value_heads=2, head_dim=head_dim, hidden_size=64))
    ids = tokens(1, 20)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, ref(ids).logits, rtol=0, atol=ATOL[torch.float32])
    seq_ref, logits_ref = greedy(ref, ids[:, :6], 4)
    seq, logits = greedy(ours, ids[:, :6], 4)
    assert torch.equal(seq, seq_ref)
    torch.testing.assert_close(logits, logits_ref, rtol=0, atol=ATOL[torch.float32])


def test_compare_with_sdpa_reports_agreement():
    result = compare_with_sdpa(mistral(), prompt_len=10, new_tokens=6)
    assert result["tokens_equal"] and result["tokens"].shape == (1, 16)
    assert 0 <= result["prefill_max_abs_diff"] < ATOL[torch.float32]
    assert 0 <= result["step_max_abs_diff"] < ATOL[torch.float32]


# -------------------------------------------------------------------- the adapter against sdpa, call by call
def module(heads, kv_heads, is_causal=True):
    return types.SimpleNamespace(num_key_value_groups=heads // kv_heads, is_causal=is_causal, layer_idx=0)


@pytest.mark.parametrize("head_dim", [16, 64, 80, 96, 128, 256])
@pytest.mark.parametrize("q_len,kv_len,window", [(13, 13, None), (13, 13, 4), (1, 9, 4), (3, 11, 5), (1, 7, None)])
def test_one_call_equals_sdpa_attention_forward(head_dim, q_len, kv_len, window):
    """HF's own mask (``sdpa_mask``, positions ``kv_len - q_len ..``) given to both; GQA 6 heads over 2; float64,
    which always takes the PyTorch path."""
    gen = torch.Generator().manual_seed(head_dim + q_len)
    q = torch.randn(2, 6, q_len, head_dim, dtype=torch.float64, generator=gen)
    k, v = (torch.randn(2, 2, kv_len, head_dim, dtype=torch.float64, generator=gen) for _ in range(2))
    fn = causal_mask_function if window is None else sliding_window_causal_mask_function(window)
    mask = sdpa_mask(batch_size=2, q_length=q_len, kv_length=kv_len, q_offset=kv_len - q_len, mask_function=fn,
                     local_size=window)
    scaling = 0.7 / math.sqrt(head_dim)
    mod = module(6, 2)
    expected, _ = sdpa_attention_forward(mod, q, k, v, mask, scaling=scaling, sliding_window=window)
    got, weights = attention_forward(mod, q, k, v, mask, scaling=scaling, sliding_window=window)
    assert weights is None and got.shape == (2, q_len, 6, head_dim) and got.is_contiguous()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("window", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("q_len,kv_len", [(12, 12), (1, 12), (4, 12)])
def test_hf_sliding_window_mask_is_the_course_window(window, q_len, kv_len):
    """The off-by-one: HF's ``sliding_window=w`` (Mistral's mask function) is the course's ``window=w``
    (``p - w < j <= p``), not ``w + 1`` keys, at prefill and at decode positions."""
    hf = sdpa_mask(batch_size=1, q_length=q_len, kv_length=kv_len, q_offset=kv_len - q_len,
                   mask_function=sliding_window_causal_mask_function(window), allow_is_causal_skip=False)
    assert torch.equal(hf[0, 0], build_mask(q_len, kv_len, causal=True, window=window))
    assert int(hf[0, 0, -1].sum()) == min(window, kv_len)


def test_the_window_reaching_the_kernels_is_hf_s(monkeypatch):
    """What the adapter passes to the dispatcher for a Mistral layer (a mutation to window + 1 fails here too)."""
    seen = []

    def spy(q, k, v, **kw):
        seen.append(kw)
        return flash_attention(q, k, v, **kw)

    monkeypatch.setattr(hf_attention, "flash_attention", spy)
    _, ours = twins(mistral(sliding_window=5))
    with torch.no_grad():
        ours(tokens(1, 12))
    assert seen and all(kw["window"] == 5 and kw["causal"] and kw["scale"] == 16 ** -0.5 for kw in seen)


# ------------------------------------------------------------------------------------------------ refusals
def test_softcapping_is_refused_gemma2():
    config = Gemma2Config(**{**SMALL, "num_key_value_heads": 2, "head_dim": 16, "sliding_window": 4,
                             "query_pre_attn_scalar": 16, "attn_logit_softcapping": 50.0})
    model = AutoModelForCausalLM.from_config(config, attn_implementation=NAME).eval()
    with pytest.raises(ValueError, match=r"softcap .* not implemented .* got softcap=50\.0; use attn_implementation="
                                         r"'eager'"):
        model(tokens(1, 8))


def test_padding_mask_is_refused():
    _, ours = twins(llama())
    ids = tokens(2, 8)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # left padding
    with pytest.raises(ValueError, match=r"attention_mask is not the mask the course's kernels apply .* batch 0, "
                                         r"head 0, query 0, key 0 .* Padding masks"):
        ours(ids, attention_mask=mask)


def test_right_padding_is_refused_too():
    """Trailing masked keys are cut only when no query of the batch sees them: one padded row is refused."""
    _, ours = twins(llama())
    ids = tokens(2, 8)
    mask = torch.ones_like(ids)
    mask[1, -2:] = 0
    with pytest.raises(ValueError, match=r"attention_mask is not the mask .* batch 1, head 0, query 6, key 6"):
        ours(ids, attention_mask=mask)


def test_a_mask_of_ones_is_no_padding():
    ref, ours = twins(llama())
    ids = tokens(2, 8)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, attention_mask=torch.ones_like(ids)).logits, ref(ids).logits,
                                   rtol=0, atol=ATOL[torch.float32])


def test_dropout_in_training_is_refused():
    _, ours = twins(llama(attention_dropout=0.1))
    ours.train()
    with pytest.raises(ValueError, match=r"dropout must be 0 .* got dropout=0\.1"):
        ours(tokens(1, 8))
    ours.eval()  # HF passes dropout=0.0 in eval mode
    ours(tokens(1, 8))


def test_output_attentions_is_refused():
    _, ours = twins(llama())
    with pytest.raises(ValueError, match=r"output_attentions=True is not supported"):
        ours(tokens(1, 8), output_attentions=True)


def _qkv(q_len=6, kv_len=6, heads=4, kv_heads=2, d=16):
    return torch.randn(1, heads, q_len, d), torch.randn(1, kv_heads, kv_len, d), torch.randn(1, kv_heads, kv_len, d)


@pytest.mark.parametrize("mask,error,pattern", [
    (torch.zeros(1, 1, 6, 6), ValueError, r"query 0, key 1 it gives True, the kernels False"),  # additive: all seen
    (torch.ones(1, 1, 6, 6, dtype=torch.bool), ValueError, r"query 0, key 1 it gives True, the kernels False"),
    (torch.ones(6, 6, dtype=torch.bool), ValueError, r"attention_mask must have shape \(1 or 1, 1 or 4, 6, 6\)"),
    (torch.ones(1, 1, 6, 6, dtype=torch.int64), TypeError, r"boolean or an additive float mask, got dtype torch.int64"),
    (torch.full((1, 1, 6, 6), 0.5).triu(1), ValueError, r"additive bias is not implemented .* got the value 0\.5"),
])
def test_custom_masks_are_refused(mask, error, pattern):
    q, k, v = _qkv()
    with pytest.raises(error, match=pattern):
        attention_forward(module(4, 2), q, k, v, mask)


def test_an_additive_causal_mask_is_accepted():
    q, k, v = _qkv()
    keep = build_mask(6, 6, causal=True)
    additive = torch.zeros(1, 1, 6, 6).masked_fill(~keep, torch.finfo(torch.float32).min)
    expected, _ = sdpa_attention_forward(module(4, 2), q, k, v, additive)
    got, _ = attention_forward(module(4, 2), q, k, v, additive)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kwargs,error,pattern", [
    ({"softcap": 30.0}, ValueError, r"softcap .* got softcap=30\.0"),
    ({"dropout": 0.2}, ValueError, r"dropout must be 0 .* got dropout=0\.2"),
    ({"dropout": None}, TypeError, r"dropout must be a number, got NoneType None"),
    ({"output_attentions": True}, ValueError, r"output_attentions=True"),
    ({"position_bias": torch.zeros(1, 4, 6, 6)}, ValueError, r"position_bias is not implemented"),
    ({"s_aux": torch.zeros(4)}, ValueError, r"s_aux is not implemented"),
    ({"cu_seq_lens_q": torch.tensor([0, 3, 6])}, TypeError, r"keyword 'cu_seq_lens_q' is not one .* implements"),
    ({"sliding_window": 0}, ValueError, r"sliding_window must be an integer >= 1, got 0"),
    ({"scaling": -1.0}, ValueError, r"scaling must be > 0, got -1\.0"),
    ({"sliding_window": 3, "is_causal": False}, ValueError, r"sliding_window=3 with is_causal=False"),
    ({"backend": "cuda"}, ValueError, r"backend must be one of \('auto', 'triton', 'torch'\), got 'cuda'"),
])
def test_unsupported_options_are_refused(kwargs, error, pattern):
    q, k, v = _qkv()
    with pytest.raises(error, match=pattern):
        attention_forward(module(4, 2), q, k, v, None, **kwargs)


def test_inconsistent_gqa_module_is_refused():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"num_key_value_groups must equal query heads / key heads \(4 / 2\), got 4"):
        attention_forward(module(4, 1), q, k, v, None)


def test_mask_free_call_with_more_queries_than_keys_is_refused():
    q, k, v = _qkv(q_len=6, kv_len=4)
    with pytest.raises(ValueError, match=r"q_len \(6\) > kv_len \(4\)"):
        attention_forward(module(4, 2), q, k, v, None)


def test_mask_free_prefill_over_an_empty_static_cache_equals_sdpa():
    """No mask, q_len > 1, kv_len > q_len: HF means the first q_len keys (sdpa cuts the rest)."""
    q, k, v = _qkv(q_len=5, kv_len=9)
    expected, _ = sdpa_attention_forward(module(4, 2), q, k, v, None)
    got, _ = attention_forward(module(4, 2), q, k, v, None)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_head_dim_past_256_runs_on_the_pytorch_path_and_is_refused_on_triton():
    """The dispatcher's policy, through the adapter: "auto" falls back to PyTorch, "triton" names head_dim."""
    q, k, v = _qkv(q_len=5, kv_len=5, d=320)
    expected, _ = sdpa_attention_forward(module(4, 2), q, k, v, None)
    got, _ = attention_forward(module(4, 2), q, k, v, None)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"backend='triton' needs head_dim .* <= 256, .* got head_dim 320"):
        attention_forward(module(4, 2), q, k, v, None, backend="triton")


def test_register_is_idempotent_and_checks_its_arguments():
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    assert register() == register() == NAME
    assert AttentionInterface._global_mapping[NAME] is attention_forward
    assert ALL_MASK_ATTENTION_FUNCTIONS._global_mapping[NAME] is sdpa_mask
    with pytest.raises(ValueError, match=r"name must be a new attn_implementation name .* got 'sdpa'"):
        register("sdpa")
    with pytest.raises(ValueError, match=r"backend must be one of .* got 'gpu'"):
        register(backend="gpu")


def test_registered_without_a_mask_function_is_refused():
    """AttentionInterface alone: HF would hand over None for a padded batch; the adapter refuses to run."""
    from transformers import AttentionInterface

    AttentionInterface.register("lone_kernels", attention_forward)
    try:
        model = AutoModelForCausalLM.from_config(llama(), attn_implementation="lone_kernels").eval()
        with pytest.raises(ValueError, match=r"'lone_kernels' has no mask function .*register\('lone_kernels'\)"):
            model(tokens(1, 8))
    finally:
        del AttentionInterface._global_mapping["lone_kernels"]


def test_importing_longctx_lab_does_not_import_transformers():
    code = ("import sys, longctx_lab, longctx_lab.lm.hf.attention\n"
            "sys.exit(1 if 'transformers' in sys.modules else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
