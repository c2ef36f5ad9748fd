"""Adapters: what the NIAH harness calls to get a model's answer.

An adapter is anything with ``predict(prompt_ids, max_new_tokens) -> list[int]``: given one prompt (a list of
ids of :data:`longctx_lab.lm.tasks.VOCAB`) it returns exactly ``max_new_tokens`` ids, greedily (the harness asks
for ``len(answer)`` tokens and scores by exact match). Provided here:

- :class:`TinyLMAdapter`: a :class:`longctx_lab.lm.model.TinyLM`, greedy through :func:`longctx_lab.lm.model.generate`;
- :class:`OracleAdapter`: reads the answer out of the prompt (:func:`longctx_lab.lm.tasks.solve`), scores 100%;
- :class:`ConstantAdapter`: always the same token, the chance baseline.

Conventions and errors: docs/conventions.md.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from longctx_lab.core.validate import check_int
from longctx_lab.lm.tasks import VOCAB, check_task, solve

__all__ = ["Adapter", "ConstantAdapter", "OracleAdapter", "TinyLMAdapter"]


@runtime_checkable
class Adapter(Protocol):
    def predict(self, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
        """``max_new_tokens`` greedy ids following ``prompt_ids``."""


class TinyLMAdapter:
    """Greedy decoding of a :class:`~longctx_lab.lm.model.TinyLM` whose vocabulary holds :data:`VOCAB`'s ids."""

    def __init__(self, model, *, cache: str = "contiguous"):
        from longctx_lab.lm.model import TinyLM

        if not isinstance(model, TinyLM):
            raise TypeError(f"model must be a TinyLM, got {type(model).__name__}")
        if model.config.vocab_size < VOCAB.size:
            raise ValueError(f"model.config.vocab_size must be >= VOCAB.size = {VOCAB.size}, got "
                             f"{model.config.vocab_size}")
        self.model, self.cache = model, cache

    def predict(self, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
        from longctx_lab.lm.model import generate

        max_new_tokens = check_int("max_new_tokens", max_new_tokens, minimum=1)
        out = generate(self.model, [list(prompt_ids)], max_new_tokens, cache=self.cache, keep_logits=False)
        return out.new_tokens[0]


class OracleAdapter:
    """The task's reference solver (:func:`longctx_lab.lm.tasks.solve`): what a perfect reader answers."""

    def __init__(self, task: str, *, n_common: int | None = None):
        self.task, self.n_common = check_task(task), n_common

    def predict(self, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
        check_int("max_new_tokens", max_new_tokens, minimum=1)
        return solve(self.task, prompt_ids, n_common=self.n_common)


class ConstantAdapter:
    """Always ``token`` (default the digit ``0``), ``max_new_tokens`` times: the chance baseline."""

    def __init__(self, token: int | None = None):
        self.token = VOCAB.digits[0] if token is None else check_int("token", token, minimum=0)

    def predict(self, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
        return [self.token] * check_int("max_new_tokens", max_new_tokens, minimum=1)
