"""longctx_lab.lm.hf.attention on the Triton kernels: tiny HF models against ``sdpa`` (Triton interpreter on CPU, or
compiled with ``LONGCTX_LAB_KERNEL_DEVICE=cuda``). The unit stage tests the same adapter on the PyTorch path
(``tests/test_hf_attention.py``). float32 (the kernels' dot products are IEEE there); tolerance ``1e-4`` absolute on
logits up to ~6 (the PyTorch path measures up to 6e-6).
"""

from __future__ import annotations

import copy

import pytest
import torch

transformers = pytest.importorskip("transformers")

from kernel_env import skip_where_triton_does_not_fit  # noqa: E402
from transformers import AutoModelForCausalLM, DynamicCache, LlamaConfig, MistralConfig, Qwen2Config  # noqa: E402

from longctx_lab.kernels.dispatch import select_backend  # noqa: E402
from longctx_lab.lm.hf.attention import NAME, register  # noqa: E402

pytestmark = pytest.mark.triton

SMALL = dict(vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             initializer_range=0.2, max_position_embeddings=64, head_dim=16)
CONFIGS = {
    "llama": lambda **c: LlamaConfig(**{**SMALL, "num_key_value_heads": 4, **c}),
    "mistral-window-5": lambda **c: MistralConfig(**{**SMALL, "num_key_value_heads": 2, "sliding_window": 5, **c}),
    "qwen2-gqa-4": lambda **c: Qwen2Config(**{**SMALL, "num_key_value_heads": 1, **c}),
}


def twins(config, device):
    register()
    out = []
    for impl in ("sdpa", NAME):
        torch.manual_seed(0)
        out.append(AutoModelForCausalLM.from_config(copy.deepcopy(config), attn_implementation=impl).to(device).eval())
    return out


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_prefill_and_cached_generation_on_the_triton_kernels(name, device):
    ref, ours = twins(CONFIGS[name](), device)
    assert select_backend(torch.zeros(1, device=device)) != "torch"  # the kernels run, not the PyTorch path
    prompt = torch.randint(0, 96, (1, 20), generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        torch.testing.assert_close(ours(prompt).logits, ref(prompt).logits, rtol=0, atol=1e-4)
        runs = [m.generate(prompt[:, :7], attention_mask=torch.ones_like(prompt[:, :7]),
                           past_key_values=DynamicCache(config=m.config), max_new_tokens=5, min_new_tokens=5,
                           do_sample=False, output_logits=True, return_dict_in_generate=True, pad_token_id=0)
                for m in (ref, ours)]
    assert torch.equal(runs[1].sequences, runs[0].sequences)
    torch.testing.assert_close(torch.stack(runs[1].logits), torch.stack(runs[0].logits), rtol=0, atol=1e-4)


@pytest.mark.parametrize("head_dim", [24, 80, 256])
def test_head_dims_of_real_models_run_on_the_triton_kernels(head_dim, device):
    """Head dims that are not powers of two (80, Phi-2's; 24) and 256 (Gemma's) run in padded tiles: one layer,
    one prompt, logits equal to sdpa's."""
    skip_where_triton_does_not_fit(head_dim, torch.float32, device)
    ref, ours = twins(CONFIGS["qwen2-gqa-4"](num_hidden_layers=1, head_dim=head_dim), device)
    prompt = torch.randint(0, 96, (1, 9), generator=torch.Generator().manual_seed(head_dim)).to(device)
    assert select_backend(torch.zeros(1, 1, 1, head_dim, device=device)) != "torch"
    with torch.no_grad():
        torch.testing.assert_close(ours(prompt).logits, ref(prompt).logits, rtol=0, atol=1e-4)
