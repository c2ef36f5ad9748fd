"""FlashAttention in Triton, and the dispatcher that picks Triton or the PyTorch path.

- :func:`flash_attention`, :func:`flash_attention_with_lse` (:mod:`.dispatch`): what notebooks and
  models call; Triton on CUDA, the tiled PyTorch path on CPU, same semantics and errors.
- :mod:`.flash_kernels`: the ``@triton.jit`` kernels (forward, backward pre-pass, dK/dV, dQ).
- :mod:`.flash`: their launchers and the autograd Function.
- :mod:`.config`: tile sizes per GPU architecture, and the head-dim padding (any head dim from 1 to 256 runs on
  the kernels, in tiles padded to the next power of two; the PyTorch path takes any); :mod:`.aot`:
  ahead-of-time compile check.
- :mod:`.interpreter`: run the real forward kernel on CPU in a ``TRITON_INTERPRET=1`` subprocess.
- :func:`decode_attention`, :func:`decode_attention_with_lse` (:mod:`.decode_dispatch`): one decode step over
  a contiguous or paged KV cache's tensors; flash-decoding kernels in :mod:`.decode_kernels`, launchers and
  split heuristic in :mod:`.decode` (:func:`longctx_lab.kvcache.decode_attention_from_cache` takes a cache).

- :func:`triton_available`, :func:`triton_unavailable_message`: where Triton is missing (macOS and Windows have
  no triton wheels) a chapter's kernel cell prints the message and shows the PyTorch path's result instead.
  Modules that import triton at module level (``flash``, ``flash_kernels``, ``decode``, ``decode_kernels``) are
  imported only by the dispatchers, inside ``try``; everything else here runs without triton.

Names are imported lazily so that ``import longctx_lab.kernels.aot`` does not pull in torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "flash_attention": "longctx_lab.kernels.dispatch",
    "flash_attention_with_lse": "longctx_lab.kernels.dispatch",
    "select_backend": "longctx_lab.kernels.dispatch",
    "triton_available": "longctx_lab.kernels.dispatch",
    "triton_unavailable_message": "longctx_lab.kernels.dispatch",
    "run_forward_interpreted": "longctx_lab.kernels.interpreter",
    "decode_attention": "longctx_lab.kernels.decode_dispatch",
    "decode_attention_with_lse": "longctx_lab.kernels.decode_dispatch",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
