"""Hugging Face interop: the course's attention inside ``transformers`` models, and configs read as the
planner needs them.

- :mod:`.attention`: ``register()`` makes ``attn_implementation="longctx_lab"`` run
  :func:`longctx_lab.kernels.flash_attention` inside a ``transformers`` model; ``compare_with_sdpa``.
- :mod:`.config`: read a ``config.json`` (Llama, Mistral, Mixtral, Qwen2, Gemma 2) into a
  :class:`longctx_lab.core.configs.ModelConfig`; published ones ship in ``shipped_configs/`` with their
  sources in ``shipped_configs/index.json``.
- :mod:`.planner`: ``plan(config, context=..., batch=..., ...)``: weights, KV cache, FLOPs per token and
  what fits on a GPU (``longctx-lab plan``).

Converting the course's own model to and from ``transformers`` lives with the model
(:mod:`longctx_lab.lm.model.hf`).
"""
