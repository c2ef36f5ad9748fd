"""The TinyLM with per-layer token mixers (chapter 8): configs, decode == forward, measured state bytes, the
training loop on MQAR, save/load, and the named errors (longctx_lab.lm.model.{config,mixer_layers,recurrent})."""

from __future__ import annotations

import pytest
import torch

from longctx_lab.lm.model import (
    LMConfig,
    MixerLayer,
    ShortConv,
    TinyLM,
    forward_with_state,
    hybrid_mixers,
    init_decode_state,
    load_model,
    make_caches,
    save_model,
)
from longctx_lab.lm.tasks import VOCAB
from longctx_lab.lm.train import train


def _config(mixers, d_model=32, **kw):
    return LMConfig(vocab_size=VOCAB.size, d_model=d_model, n_layers=len(mixers), n_heads=2, mlp_hidden=64,
                    max_positions=64, mixers=mixers, **kw)


def test_hybrid_mixers_puts_attention_every_k():
    assert hybrid_mixers("ssm", 4, 2) == ("ssm", "attention", "ssm", "attention")
    assert hybrid_mixers("linear", 3, 3) == ("linear", "linear", "attention")
    assert hybrid_mixers("linear", 2) == ("linear", "linear")
    with pytest.raises(ValueError, match="every"):
        hybrid_mixers("ssm", 4, 0)


def test_config_checks_and_json():
    plain = LMConfig(vocab_size=57, d_model=32, n_layers=2, n_heads=2)
    assert plain.mixers == ("attention", "attention") and plain.all_attention
    assert "mixers" not in plain.to_dict()  # configs written before chapter 8 read back unchanged
    mixed = _config(("ssm", "attention"), mixer_options={"d_state": 8})
    assert mixed.mixer(0) == "ssm" and not mixed.all_attention
    assert LMConfig.from_dict(mixed.to_dict()) == mixed
    with pytest.raises(ValueError, match="one entry per layer"):
        LMConfig(vocab_size=57, d_model=32, n_layers=2, n_heads=2, mixers=("ssm",))
    with pytest.raises(ValueError, match=r"mixers\[1\] must be one of"):
        _config(("ssm", "mamba"))
    with pytest.raises(TypeError, match="mixers must be None or a list"):
        LMConfig(vocab_size=57, d_model=32, n_layers=2, n_heads=2, mixers="ssm")
    with pytest.raises(TypeError, match="mixer_options must be a dict"):
        _config(("ssm", "ssm"), mixer_options=[1])
    with pytest.raises(ValueError, match="mixer_conv"):
        _config(("linear", "linear"), mixer_conv=-1)


@pytest.mark.parametrize("mixers", [("linear", "attention"), ("ssm", "attention"), ("compressive", "linear"),
                                    ("performer", "performer")])
def test_layers_and_parameter_count(mixers):
    config = _config(mixers)
    model = TinyLM(config, seed=0)
    kinds = ["attention" if not isinstance(layer, MixerLayer) else layer.kind for layer in model.layers]
    assert kinds == list(mixers)
    assert config.n_params() == sum(p.numel() for p in model.parameters())
    again = TinyLM(config, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(),
                                                    strict=True))


def test_short_conv_is_causal_and_steps_like_its_forward():
    torch.manual_seed(0)
    conv = ShortConv(6, 3).double()
    x = torch.randn(2, 9, 6, dtype=torch.float64)
    y, _ = conv(x)
    w = conv.weight[:, 0]  # (d, kernel)
    padded = torch.cat([torch.zeros(2, 2, 6, dtype=torch.float64), x], 1)
    ref = torch.stack([(padded[:, t: t + 3] * w.T).sum(1) for t in range(9)], 1)  # independent loop
    torch.testing.assert_close(y, ref)
    state, steps = None, []
    for t in range(9):
        out, state = conv(x[:, t: t + 1], state)
        steps.append(out)
    torch.testing.assert_close(torch.cat(steps, 1), y)
    assert torch.equal(ShortConv(6, 0)(x)[0], x)


@pytest.mark.parametrize(("mixers", "attention_conv"), [
    (hybrid_mixers("ssm", 4, 2), 0), (("linear", "attention"), 0), (("compressive", "attention"), 0),
    (("performer", "linear"), 0), (("attention", "attention"), 4), (("ssm", "attention"), 3)])
def test_decode_equals_forward(mixers, attention_conv):
    model = TinyLM(_config(mixers, attention_conv=attention_conv), seed=1).double().eval()
    tokens = torch.randint(0, VOCAB.size, (2, 23), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(tokens)
    state = init_decode_state(model, 2, capacity=32)
    parts = [forward_with_state(model, tokens[:, :7], state)]      # prefill, then one token at a time
    parts += [forward_with_state(model, tokens[:, t: t + 1], state) for t in range(7, 23)]
    torch.testing.assert_close(torch.cat(parts, 1), full, rtol=1e-9, atol=1e-9)
    assert state.length == 23


def test_mixer_state_bytes_are_constant_and_the_cache_grows_with_capacity():
    model = TinyLM(_config(("ssm", "attention", "linear")), seed=0).eval()
    sizes = {}
    for n in (16, 64):
        state = init_decode_state(model, 1, capacity=n)
        forward_with_state(model, torch.randint(0, VOCAB.size, (1, n)), state)
        sizes[n] = state.layer_bytes()
    assert sizes[16][0] == sizes[64][0] > 0 and sizes[16][2] == sizes[64][2] > 0
    assert sizes[64][1] == 4 * sizes[16][1]
    kv = 2 * 64 * model.config.n_kv_heads * model.config.head_dim * 4  # keys and values, float32
    assert sizes[64][1] == kv


def test_training_a_mixer_model_lowers_the_loss():
    config = _config(hybrid_mixers("linear", 2, 2))
    result = train(config, task="mqar", seq_len=24, steps=30, batch_size=8, lr=3e-3, warmup=5, seed=0,
                   task_options={"n_pairs": [2, 4]}, threads=1, show_progress=False)
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert last < first - 0.2, (first, last)


def test_attention_conv_is_a_short_convolution_before_the_attention():
    plain = _config(("attention", "attention"))
    conv = _config(("attention", "attention"), attention_conv=4)
    assert "attention_conv" not in plain.to_dict() and LMConfig.from_dict(conv.to_dict()) == conv
    model = TinyLM(conv, seed=0)
    assert conv.n_params() == sum(p.numel() for p in model.parameters()) == plain.n_params() + 2 * 4 * 32
    # with the convolution the identity (weight 1 on the current token), the layer is the plain one
    reference = TinyLM(plain, seed=0)
    with torch.no_grad():
        for layer in model.layers:
            layer.conv.weight.zero_()
            layer.conv.weight[:, 0, -1] = 1.0
    reference.load_state_dict({k: v for k, v in model.state_dict().items() if ".conv." not in k})
    tokens = torch.randint(0, VOCAB.size, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), reference(tokens))
    state = init_decode_state(model, 1, capacity=8)
    forward_with_state(model, tokens[:1, :8], state)
    kv = 2 * 8 * conv.n_kv_heads * conv.head_dim * 4
    assert state.layer_bytes() == [kv + 3 * 32 * 4] * 2  # the KV cache plus the convolution's last 3 inputs
    with pytest.raises(ValueError, match="attention_conv"):
        _config(("attention", "attention"), attention_conv=-1)
    with pytest.raises(ValueError, match="decode it with longctx_lab.lm.model.recurrent"):
        model(tokens[:1], caches=make_caches(conv, batch=1, capacity=16))


def test_save_and_load_keep_the_mixers(tmp_path):
    model = TinyLM(_config(("ssm", "attention"), mixer_options={"d_state": 4}), seed=3)
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.config == model.config
    tokens = torch.randint(0, VOCAB.size, (1, 10))
    with torch.no_grad():
        torch.testing.assert_close(again(tokens), model(tokens))


def test_errors_are_named():
    model = TinyLM(_config(("linear", "attention")), seed=0)
    with pytest.raises((TypeError, ValueError)):
        model(torch.zeros(1, 3, dtype=torch.long), caches=make_caches(model.config, batch=1, capacity=8))
    with pytest.raises(ValueError, match="keeps a state, not a KV cache"):
        model.layers[0](torch.zeros(1, 3, 32), cache=object())
    state = init_decode_state(model, 2, capacity=8)
    with pytest.raises(ValueError, match="batch=1 rows"):
        forward_with_state(model, torch.zeros(1, 3, dtype=torch.long), state)
    with pytest.raises(ValueError, match="tokens must be ids"):
        forward_with_state(model, torch.full((2, 1), 999), state)
    with pytest.raises(TypeError, match="state must be a DecodeState"):
        forward_with_state(model, torch.zeros(2, 1, dtype=torch.long), [])


def test_every_parameter_of_an_ssm_hybrid_gets_a_gradient_and_moves():
    """A detached tensor, an unregistered or frozen parameter in the SSM layer or its TinyLM integration fails here."""
    model = TinyLM(_config(("ssm", "attention"), mixer_options={"expand": 1, "d_state": 8}), seed=0)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    tokens = torch.randint(0, VOCAB.size, (4, 24), generator=torch.Generator().manual_seed(0))
    loss = torch.nn.functional.cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten())
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, name
    torch.optim.AdamW(model.parameters(), lr=1e-3).step()
    assert [n for n, p in model.named_parameters() if torch.equal(p.detach(), before[n])] == []


def test_an_ssm_layer_learns_to_copy_the_previous_token():
    """Through the block's own convolution (no attention anywhere): the loss falls from chance to near zero."""
    torch.manual_seed(0)
    model = TinyLM(_config(("ssm",), mixer_options={"expand": 2, "d_state": 8}), seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(150):
        tokens = torch.randint(0, 16, (16, 32), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(tokens)[:, 1:].flatten(0, 1), tokens[:, :-1].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 2.5 and sum(losses[-10:]) / 10 < 0.5, (losses[0], losses[-10:])


def test_a_model_with_mixers_or_attention_conv_has_no_hugging_face_twin():
    pytest.importorskip("transformers")
    from longctx_lab.lm.model.hf import hf_config

    for config in (_config(("linear", "attention")), _config(("attention", "attention"), attention_conv=4)):
        with pytest.raises(ValueError, match="no attention_conv to have a Hugging Face twin"):
            hf_config(config)
