"""A Hugging Face causal LM as a NIAH adapter (needs ``transformers``; nothing is downloaded here).

:class:`HFCausalLMAdapter` decodes greedily with ``model.generate(do_sample=False)``. Two modes:

- ``tokenizer=None``: the prompt's :data:`longctx_lab.lm.tasks.VOCAB` ids are the model's ids (a model trained on
  the tasks' vocabulary, e.g. :func:`longctx_lab.lm.model.hf.to_hf` of a TinyLM); returns the ``max_new_tokens``
  new ids.
- with a tokenizer: the prompt is :meth:`VOCAB.decode` text (``"<bos> w3 .. pass = 1 2 .. <q> pass <a>"``),
  tokenized without added special tokens; the model generates up to ``max_new_text_tokens`` tokens, the
  text is split on whitespace and the first ``max_new_tokens`` words are mapped back to VOCAB ids. A word
  outside the vocabulary (or a missing one) becomes ``-1``, which never matches: nothing is dropped silently.

:func:`load_hf_adapter` takes a model name or local path (``from_pretrained``) for a user with a real model.
Conventions and errors: docs/conventions.md.
"""

from __future__ import annotations

from longctx_lab.core.validate import check_int
from longctx_lab.lm.tasks import VOCAB

__all__ = ["HFCausalLMAdapter", "load_hf_adapter"]


class HFCausalLMAdapter:
    """Greedy answers of a ``transformers`` causal LM (module docstring)."""

    def __init__(self, model, tokenizer=None, *, max_new_text_tokens: int | None = None):
        if not callable(getattr(model, "generate", None)):
            raise TypeError(f"model must be a transformers causal LM with .generate, got {type(model).__name__}")
        if tokenizer is None and model.config.vocab_size < VOCAB.size:
            raise ValueError(f"model.config.vocab_size must be >= VOCAB.size = {VOCAB.size} when tokenizer is None, "
                             f"got {model.config.vocab_size}")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_new_text_tokens = check_int("max_new_text_tokens", max_new_text_tokens, minimum=1) \
            if max_new_text_tokens is not None else None

    def predict(self, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
        import torch

        max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=1)
        device = next(self.model.parameters()).device
        if self.tokenizer is None:
            ids = torch.tensor([list(prompt_ids)], device=device)
            budget = max_new_tokens
        else:
            ids = self.tokenizer(VOCAB.decode(list(prompt_ids)), add_special_tokens=False,
                                 return_tensors="pt")["input_ids"].to(device)
            budget = self.max_new_text_tokens or 4 * max_new_tokens
        with torch.no_grad():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=budget,
                                      min_new_tokens=budget, do_sample=False, pad_token_id=0)
        new = out[0, ids.shape[1]:].tolist()
        if self.tokenizer is None:
            return new
        words = self.tokenizer.decode(new, skip_special_tokens=False).split()[:max_new_tokens]
        ids_back = [VOCAB.tokens.index(w) if w in VOCAB.tokens else -1 for w in words]
        return ids_back + [-1] * (max_new_tokens - len(ids_back))


def load_hf_adapter(name_or_path: str, *, device: str = "cpu", **kwargs) -> HFCausalLMAdapter:
    """``AutoModelForCausalLM`` and ``AutoTokenizer`` from ``name_or_path`` (a hub name or a local directory)."""
    import transformers

    if not isinstance(name_or_path, str) or not name_or_path:
        raise ValueError(f"name_or_path must be a model name or directory, got {name_or_path!r}")
    model = transformers.AutoModelForCausalLM.from_pretrained(name_or_path).to(device)
    tokenizer = transformers.AutoTokenizer.from_pretrained(name_or_path)
    return HFCausalLMAdapter(model, tokenizer, **kwargs)
