"""longctx_lab: the implementations behind the longctx-lab course.

One folder per concept; imports flow down this list, never up (``tests/test_layout.py`` checks it):

- ``cli/``: the ``longctx-lab`` command and its subcommands; ``cli/bench/``, the benchmark recorders.
- ``course/``: what the notebooks show and grade: quizzes, claim checks, chapter figures and helpers,
  and ``course/grading/`` (the checks exercises call, the nbgrader preprocessors, the audit).
- ``lm/``: language models: the course's tiny one (``lm/model``), its synthetic tasks (``lm/tasks``),
  training (``lm/train``), needle-in-a-haystack evaluation (``lm/niah``), context-extension experiments
  (``lm/extension``); and Hugging Face's (``lm/hf``: the course's attention inside ``transformers``, reading
  a ``config.json``, the memory planner).
- ``distributed/``: ring and all-gather attention over ``torch.distributed`` processes.
- ``kvcache/``: KV caches behind one interface (contiguous, rolling, paged, quantized).
- ``kernels/``: the Triton kernels (FlashAttention forward and backward, flash-decoding) and the dispatcher
  that picks Triton or the PyTorch path.
- ``attention/``: attention in PyTorch: masks, the reference, online softmax, the tiled algorithm, sparsity,
  receptive fields, and measuring attention's time and memory.
- ``rope/``: positions: absolute, rotary, and RoPE scaling schemes (PI, NTK, dynamic NTK, YaRN, Llama 3).
- ``mixers/``: token mixers beyond attention behind one interface: linear attention, Performer, Linformer,
  a selective state-space layer (Mamba-style), a compressive memory (Infini-attention-style).
- ``core/``: what every layer uses: argument validation, display (progress bars, plot style), published
  model shapes and their cost arithmetic, the environment report.

Where a new piece goes: a kernel in ``kernels/``, a cache in ``kvcache/``, a RoPE scheme in ``rope/``, a token
mixer in ``mixers/``, a task in ``lm/tasks/``, a chapter helper in ``course/``, a check that exercises call in
``course/grading/``.
Shapes, masks, units, seeds and error messages follow docs/conventions.md; a module's docstring states only
where it differs.
"""

__version__ = "0.1.0"
