"""The Hugging Face adapter of longctx_lab.lm.niah: a TinyLM converted with to_hf answers as the TinyLM adapter
does; a tiny random Llama with a tokenizer built here (no download) goes through the text path."""

from __future__ import annotations

import pytest

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from longctx_lab.lm.model import LMConfig, TinyLM  # noqa: E402
from longctx_lab.lm.model.hf import to_hf  # noqa: E402
from longctx_lab.lm.niah import TinyLMAdapter, run_niah  # noqa: E402
from longctx_lab.lm.niah.hf import HFCausalLMAdapter  # noqa: E402
from longctx_lab.lm.tasks import VOCAB, make_sample  # noqa: E402


def test_hf_ids_match_tinylm():
    model = TinyLM(LMConfig(vocab_size=VOCAB.size, d_model=32, n_layers=2, n_heads=2, max_positions=256), seed=1)
    hf, tiny = HFCausalLMAdapter(to_hf(model)), TinyLMAdapter(model)
    for seed in range(3):
        s = make_sample("multikey", 48, 0.5, seed=seed)
        assert hf.predict(s.prompt, len(s.answer)) == tiny.predict(s.prompt, len(s.answer))


def _word_tokenizer():
    vocab = {t: i for i, t in enumerate(VOCAB.tokens)}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tok.decoder = tokenizers.decoders.WordPiece(prefix="##")  # joins words with spaces
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>")


def test_hf_text_path_with_local_tokenizer():
    cfg = transformers.LlamaConfig(vocab_size=VOCAB.size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256)
    model = transformers.LlamaForCausalLM(cfg)
    tokenizer = _word_tokenizer()
    s = make_sample("passkey", 40, 0.5, seed=0)
    assert tokenizer(VOCAB.decode(s.prompt), add_special_tokens=False)["input_ids"] == s.prompt
    adapter = HFCausalLMAdapter(model, tokenizer, max_new_text_tokens=len(s.answer))
    ids = HFCausalLMAdapter(model).predict(s.prompt, len(s.answer))
    # the word tokenizer is one word per id, so the text path returns what the id path does
    assert adapter.predict(s.prompt, len(s.answer)) == ids
    result = run_niah(adapter, "passkey", lengths=[32], depths=[0.0, 1.0], trials=2, show_progress=False)
    assert all(len(r["prediction"]) == len(r["answer"]) for r in result.records)


def test_hf_bad_model():
    with pytest.raises(TypeError, match="model must be a transformers causal LM"):
        HFCausalLMAdapter(object())
