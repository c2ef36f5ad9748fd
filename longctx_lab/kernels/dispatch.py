"""``flash_attention``: one entry point that runs the Triton kernels on a GPU and PyTorch elsewhere.

Which implementation runs (``backend="auto"``):

- CUDA tensors and a working ``triton``: the Triton kernels of :mod:`longctx_lab.kernels.flash_kernels`
  (bfloat16, and float32 at head dims past 128, need sm_80 or newer; on older GPUs they go to the PyTorch
  path: :func:`~longctx_lab.kernels.config.triton_fits`).
- CPU tensors in a process where ``TRITON_INTERPRET=1`` was set before ``triton`` was imported:
  the same Triton kernels, executed by the Triton interpreter (slow; for tests and tiny demos).
- CPU tensors otherwise (float16, bfloat16, float32), where PyTorch's fused CPU FlashAttention kernel
  (the one SDPA runs, ``torch.ops.aten._scaled_dot_product_flash_attention_for_cpu``, which also
  returns the LSE and has a backward) computes exactly the same thing: no ``window``, and either not
  ``causal`` or ``causal`` with ``q_len == kv_len`` (SDPA's causal mask is top-left aligned, which is the
  bottom-right alignment only for a square), and no NaN in ``q``, ``k`` or ``v`` (checked per call,
  one ``isnan`` pass over the inputs). Reported as ``"torch-sdpa"``. GQA: K/V are expanded to the query
  heads (``repeat_interleave``, query head ``h`` reads KV head ``h // group``); autograd sums the
  expanded heads' gradients back over each group. It is there for speed: training a small model on
  a CPU spends most of its time in attention, and the fused kernel is the fastest on this path.
- float64 (any device), and everything else (windows, ``causal`` with ``q_len != kv_len``, inputs with
  a NaN): the tiled PyTorch implementation, :func:`longctx_lab.attention.tiled.tiled_attention` (same
  algorithm as the kernels, same semantics), reported as ``"torch"``. The Triton kernels have no
  float64: ``backend="triton"`` refuses it with a ``TypeError``.

``backend="triton"`` or ``"torch"`` forces one of them (``"triton"`` raises when it cannot run;
``"torch"`` is always the tiled reference, never SDPA). Every path validates the arguments the same
way and raises the same errors.

Head dims. Every path takes any ``head_dim >= 1`` up to :data:`~longctx_lab.kernels.config.MAX_TRITON_HEAD_DIM`
(256): the Triton kernels pad their tiles to the next power of two (at least 16) and mask the padding, so
the head dims of real models (64, 80, 96, 128, 256) and odd ones (24, 40) all run there. Past 256 the policy
is the one above: ``"auto"`` runs the PyTorch family (on CUDA too: the tiled path; SDPA on the CPU where it
computes the same thing),
``"triton"`` raises a ``ValueError`` naming ``head_dim``. The default ``scale`` is ``1 / sqrt(head_dim)`` of the
true head dim, never of the padded tile.

Why inputs with a NaN never take the SDPA route: what a NaN reaches is then decided by one
implementation, the tiled reference, whose rules (docs/conventions.md and its module docstring) the
NaN tests pin down on every path. The fused kernel is not worse by the conventions' letter (measured:
a NaN in ``v`` at key 20 of a causal 40 x 40 makes all 40 output rows NaN through ``0 * NaN``, as a
dense computation does), but it is a second behaviour to promise; one ``isnan`` pass is cheap.
On NaN-free inputs the two paths agree to rounding.
"""

from __future__ import annotations

import math

import torch

from longctx_lab.attention.tiled import tiled_attention
from longctx_lab.core.validate import check_bool, check_number, check_optional_int, check_qkv
from longctx_lab.kernels.config import MAX_TRITON_HEAD_DIM, triton_fits

try:  # triton is an optional dependency (extras "gpu" and "dev"); macOS and Windows have no triton wheels
    from longctx_lab.kernels import flash as _flash
    from longctx_lab.kernels.flash_kernels import is_interpreted as _is_interpreted

    _TRITON_IMPORT_ERROR: str | None = None
except ImportError as _error:  # exercised by the notebooks-no-triton stage (tests/no_triton)
    _flash = None
    _TRITON_IMPORT_ERROR = str(_error) or type(_error).__name__

    def _is_interpreted() -> bool:
        return False


SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
#: What the Triton kernels take (compiled or interpreted); float64 runs only on the PyTorch path.
TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
BACKENDS = ("auto", "triton", "torch")
#: What the CPU's fused SDPA route takes (float64 stays on the tiled path, the float64 reference).
SDPA_DTYPES = (torch.float16, torch.bfloat16, torch.float32)

#: The interpreter bug behind the bf16 refusal (tl.dot on bf16 returns wrong values, no error).
BF16_INTERPRETER_ISSUE = "https://github.com/triton-lang/triton/issues/11584"


def triton_available() -> bool:
    """True when ``triton`` imports and the kernels are defined (compiled or interpreted)."""
    return _flash is not None


def triton_unavailable_message() -> str:
    """One line for a chapter's kernel cell where :func:`triton_available` is False: Triton is not available on this
    platform (and why), and the cell shows the PyTorch path's result instead. Empty where Triton is available."""
    if _flash is not None:
        return ""
    import importlib.util
    import platform

    why = ("triton is not installed; pip wheels exist for Linux only, on Linux: pip install 'longctx-lab[gpu]'"
           if importlib.util.find_spec("triton") is None else f"import triton failed: {_TRITON_IMPORT_ERROR}")
    return (f"Triton is not available on this platform ({platform.system() or 'unknown'}: {why}); "
            f"showing the PyTorch path's result instead")


def interpreter_active() -> bool:
    """True when the kernels were defined under the Triton interpreter (``TRITON_INTERPRET=1`` at import)."""
    return _flash is not None and _is_interpreted()


def _validate(q, k, v, causal, window, scale, backend):
    check_qkv(q, k, v)
    head_dim = q.shape[-1]
    check_bool("causal", causal)
    window = check_optional_int("window", window, minimum=1)
    if scale is None:
        scale = 1.0 / math.sqrt(head_dim)
    else:
        scale = check_number("scale", scale, exclusive_minimum=0)
    if q.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"q, k and v must be float16, bfloat16, float32 or float64, got dtype {q.dtype}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return window, scale


def select_backend(
    q: torch.Tensor,
    backend: str = "auto",
    *,
    k: torch.Tensor | None = None,
    v: torch.Tensor | None = None,
    causal: bool = False,
    window: int | None = None,
    decode: bool = False,
) -> str:
    """Name of the implementation :func:`flash_attention` would run for ``q`` (and ``k``, ``v``, the mask), or
    with ``decode=True`` :func:`~longctx_lab.kernels.decode_dispatch.decode_attention` (no backward kernels, so
    no :func:`~longctx_lab.kernels.config.triton_fits` rule).

    Returns ``"triton"`` (compiled, CUDA), ``"triton-interpreter"`` (CPU, ``TRITON_INTERPRET=1``),
    ``"torch-sdpa"`` (CPU, PyTorch's fused kernel: see the module docstring for when) or ``"torch"``
    (the tiled path; always for float64 and for ``backend="torch"``). The SDPA route depends on ``k``'s
    length, ``causal``, ``window`` and on NaN in the inputs, so it is reported only when ``k`` and ``v``
    are given; with ``q`` alone the answer is ``"torch"`` where the PyTorch family runs. A head dim
    (``q.shape[-1]``) past :data:`~longctx_lab.kernels.config.MAX_TRITON_HEAD_DIM` goes to the PyTorch family
    (SDPA or tiled, by the same rule as on a CPU).
    Raises ``ValueError`` when ``backend="triton"`` cannot run on this input (a head dim past 256 included),
    ``TypeError`` for float64 with ``backend="triton"``, and ``TypeError`` for bfloat16 under the interpreter
    (it would silently return wrong values).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    if q.dtype not in TRITON_DTYPES:
        if backend == "triton":
            raise TypeError(
                f"backend='triton' needs q, k and v in float16, bfloat16 or float32 (the Triton kernels have no "
                f"{q.dtype}), got dtype {q.dtype}; use backend='torch' or 'auto' (the PyTorch path takes float64)"
            )
        return "torch"
    head_dim_ok = q.shape[-1] <= MAX_TRITON_HEAD_DIM
    if not head_dim_ok and backend == "triton":
        raise ValueError(
            f"backend='triton' needs head_dim (the last dimension of q, k and v) <= {MAX_TRITON_HEAD_DIM}, the "
            f"widest tile of the Triton kernels, got head_dim {q.shape[-1]}; use backend='torch' or 'auto' "
            f"(the PyTorch path takes any head dim)"
        )
    interpreted = interpreter_active()
    if head_dim_ok and interpreted and q.device.type == "cpu":
        if q.dtype == torch.bfloat16:
            raise TypeError(
                "q, k and v must be float16 or float32 under the Triton interpreter (TRITON_INTERPRET=1), got dtype "
                f"torch.bfloat16: the interpreter's bf16 tl.dot returns wrong values without an error "
                f"({BF16_INTERPRETER_ISSUE}); use float16/float32, or a process without TRITON_INTERPRET "
                "(the PyTorch path)"
            )
        return "triton-interpreter"
    compiled_cuda = head_dim_ok and triton_available() and not interpreted and q.device.type == "cuda"
    if compiled_cuda:
        major, minor = torch.cuda.get_device_capability(q.device)
        if q.dtype == torch.bfloat16 and major < 8:
            if backend == "triton":
                raise ValueError(f"backend='triton' needs sm_80 or newer for bfloat16, got device {q.device}")
            return "torch"
        if not decode and not triton_fits(10 * major + minor, q.shape[-1], q.element_size()):
            if backend == "triton":
                raise ValueError(
                    f"backend='triton' needs sm_80 or newer for float32 at head_dim > 128 (64 KiB of shared memory "
                    f"per block cannot hold the backward's float32 tiles 256 wide), got head_dim {q.shape[-1]} on "
                    f"device {q.device} (sm_{major}{minor}); use float16 or backend='auto' (the PyTorch path)"
                )
            return "torch"
        return "triton"
    if backend == "triton":
        raise ValueError(
            "backend='triton' needs CUDA tensors and triton, or CPU tensors with TRITON_INTERPRET=1 set before "
            f"triton was imported; got q on {q.device}, triton "
            f"{'available' if triton_available() else 'not importable'}, interpreter "
            f"{'on' if interpreted else 'off'}"
        )
    if k is not None and v is not None and _sdpa_computes_the_same(q, k, v, causal, window):
        return "torch-sdpa"
    return "torch"


def _sdpa_computes_the_same(q, k, v, causal, window) -> bool:
    """True when the fused CPU kernel gives what the tiled path gives (module docstring): CPU, a dtype
    it takes, no window, a top-left causal mask equal to the bottom-right one, and no NaN input."""
    if q.device.type != "cpu" or q.dtype not in SDPA_DTYPES or window is not None:
        return False
    if causal and q.shape[2] != k.shape[2]:
        return False
    return not bool(q.isnan().any() or k.isnan().any() or v.isnan().any())


def _sdpa_attention(q, k, v, causal, scale):
    """``(out, lse)`` from PyTorch's fused CPU FlashAttention kernel; GQA by expanding K/V to the query heads."""
    group = q.shape[1] // k.shape[1]
    if group > 1:
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, causal, attn_mask=None, scale=scale
    )
    return out, lse.detach().to(torch.float32).contiguous()


def flash_attention_with_lse(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    window: int | None = None,
    scale: float | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention and its log-sum-exp: ``(out, lse)``.

    ``out`` is ``(batch, heads, q_len, head_dim)`` in the input dtype and differentiable
    (``loss.backward()`` fills ``q.grad``, ``k.grad``, ``v.grad``); ``lse`` is ``(batch, heads, q_len)``
    float32 (float64 for float64 inputs), natural log, not differentiable. See the module docstring for
    masks, GQA and alignment.
    """
    window, scale = _validate(q, k, v, causal, window, scale, backend)
    chosen = select_backend(q, backend, k=k, v=v, causal=causal, window=window)
    if chosen == "torch-sdpa":
        return _sdpa_attention(q, k, v, causal, scale)
    if chosen == "torch":
        out, lse = tiled_attention(q, k, v, causal=causal, window=window, scale=scale, return_lse=True)
        return out, lse
    return _flash.attention(q, k, v, causal=causal, window=window, scale=scale)


def flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    window: int | None = None,
    scale: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """``softmax(scale * q k^T + mask) v`` without materialising the ``(q_len, kv_len)`` matrix.

    Returns ``(batch, heads, q_len, head_dim)`` in the input dtype, differentiable. Arguments and
    conventions: module docstring. Use :func:`flash_attention_with_lse` to get the LSE too.
    """
    return flash_attention_with_lse(q, k, v, causal=causal, window=window, scale=scale, backend=backend)[0]
