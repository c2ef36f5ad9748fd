"""Launch configurations (tile sizes, warps, pipeline stages) of the FlashAttention kernels.

One table decides the configuration for every GPU architecture the course targets, and the
ahead-of-time compile tests (``tests/kernels_aot``) compile exactly these configurations for
sm_75, sm_80 and sm_90, so a configuration that would overflow shared memory fails CI on a
machine without a GPU. This module imports neither torch nor triton: flash-decoding's split count
(:func:`choose_num_splits`) is here too, so that it runs where triton does not.

Shared memory on the chip is what limits the tiles: a ``BLOCK_N x HEAD_DIM`` tile of K and one of
V per pipeline stage, plus the layout conversions the compiler stages through shared memory.
The per-block limits used by the tests are :data:`SHARED_MEMORY_LIMIT`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from longctx_lab.core.validate import check_int

#: Largest head dim the Triton kernels (FlashAttention forward, backward and decode) take. Every head dim from 1
#: to this one runs: the head-dim axis of the tiles is padded to :func:`padded_head_dim` and the padded columns
#: are masked (read as 0, never written). The PyTorch path takes any head dim.
MAX_TRITON_HEAD_DIM = 256

#: The widths the head-dim axis of a tile takes (:func:`padded_head_dim`): powers of two from 16, the smallest
#: ``tl.dot`` reduction, to :data:`MAX_TRITON_HEAD_DIM`. The configuration tables have one answer per width.
TILE_HEAD_DIMS: tuple[int, ...] = (16, 32, 64, 128, 256)

#: Largest dynamic shared memory one thread block may use, in bytes (CUDA programming guide,
#: "Technical Specifications per Compute Capability"): Turing 64 KiB, A100 163 KiB, H100 227 KiB.
SHARED_MEMORY_LIMIT: dict[int, int] = {75: 64 * 1024, 80: 163 * 1024, 86: 99 * 1024, 89: 99 * 1024, 90: 227 * 1024}

#: The tile table has three rows; every architecture uses one of them (:func:`config_row`). A row's
#: configurations must fit the smallest limit among the architectures that use it: the sm_80 row also
#: serves sm_86/sm_89 (RTX 30xx/A10, L4/RTX 40xx) and sm_120 (RTX 50xx), which have 99 KiB per block.
ROW_SHARED_MEMORY_LIMIT: dict[int, int] = {75: 64 * 1024, 80: 99 * 1024, 90: 227 * 1024}

#: The kernels, in the order a forward + backward pass launches them.
KERNELS: tuple[str, ...] = ("fwd", "bwd_preprocess", "bwd_dkdv", "bwd_dq")

#: Tile size used under the Triton interpreter (CPU tests, the chapter notebook): small tiles make
#: ragged tails and multi-block loops appear on tiny inputs.
INTERPRETER_BLOCK = 16


@dataclass(frozen=True)
class KernelConfig:
    """Tile sizes and launch options of one kernel launch.

    ``block_m`` is the query-tile height, ``block_n`` the key-tile height; ``num_warps`` and
    ``num_stages`` are Triton's launch options (``num_stages`` = depth of the software pipeline
    that prefetches the next K/V or Q/dO tile into shared memory).
    """

    block_m: int
    block_n: int
    num_warps: int
    num_stages: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def check_triton_head_dim(head_dim: int) -> int:
    """``head_dim`` as an int if the Triton kernels take it (1 to :data:`MAX_TRITON_HEAD_DIM`), else ``ValueError``."""
    head_dim = check_int("head_dim", head_dim, minimum=1)
    if head_dim > MAX_TRITON_HEAD_DIM:
        raise ValueError(f"head_dim must be <= {MAX_TRITON_HEAD_DIM} on the Triton path (the kernels hold a whole "
                         f"head in one tile, padded to a power of two), got {head_dim}; the PyTorch path "
                         f"(backend='torch') takes any head dim")
    return head_dim


def padded_head_dim(head_dim: int) -> int:
    """Width of the kernels' tiles along the head dim: the next power of two >= ``head_dim``, at least 16.

    ``tl.arange`` needs a power of two and ``tl.dot`` a reduction of at least 16, so head dim 80 runs in
    128-wide tiles and 24 in 32-wide ones; the columns past ``head_dim`` are loaded as 0 (they add nothing
    to ``q . k`` or to ``p @ v``) and never stored. ``ValueError`` past :data:`MAX_TRITON_HEAD_DIM`.
    """
    head_dim = check_triton_head_dim(head_dim)
    return max(16, 1 << (head_dim - 1).bit_length())


def triton_fits(cc: int, head_dim: int, elem_bytes: int) -> bool:
    """Whether the FlashAttention kernels' tiles (forward and backward) for ``head_dim`` and ``elem_bytes`` fit the
    shared memory of ``sm_<cc>``.

    False only for float32 (``elem_bytes`` 4) at head dims padded to 256 before sm_80: Turing has 64 KiB per
    block, and the backward's float32 tiles 256 wide need more whatever their height (the dK/dV kernel 66,560
    bytes at 16 x 16 tiles, compiled for sm_75 when this table was chosen). The dispatcher's ``flash_attention``
    runs those inputs on the PyTorch path, as it does bfloat16 there. The decode kernels fit everywhere (49,152
    bytes for that case).
    """
    return not (cc < 80 and elem_bytes == 4 and padded_head_dim(head_dim) == 256)


def config_row(cc: int) -> int:
    """The row of the tile table compute capability ``cc`` uses: 75 (Turing and older), 90 (Hopper),
    80 (everything else from Ampere on: its tiles fit the 99 KiB of the consumer parts)."""
    cc = check_int("cc", cc, minimum=70)
    if cc < 80:
        return 75
    if cc == 90:
        return 90
    return 80


def kernel_config(kernel: str, cc: int | None, head_dim: int, elem_bytes: int) -> KernelConfig:
    """The launch configuration of ``kernel`` on compute capability ``cc`` (``None`` = interpreter).

    ``kernel`` is one of :data:`KERNELS`; ``head_dim`` 1 to :data:`MAX_TRITON_HEAD_DIM` (the tiles are
    chosen for its :func:`padded_head_dim`); ``elem_bytes`` the input element size (2 for fp16/bf16, 4 for
    fp32: fp32 tiles take twice the shared memory, so they get fewer pipeline stages or smaller tiles).

    The numbers start from the configurations Triton's fused-attention tutorial and
    FlashAttention-2 use (128x64 forward tiles on A100/H100, 32x128 key-major tiles for dK/dV) and
    were cut down where the ahead-of-time compiles showed shared memory above (or at) the limit;
    ``benchmarks/results/aot-compile.json`` records what each one needs. They are compile-checked,
    not tuned on hardware: no GPU was available when they were chosen.
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    width = padded_head_dim(head_dim)
    if elem_bytes not in (2, 4):
        raise ValueError(f"elem_bytes must be 2 (fp16/bf16) or 4 (fp32), got {elem_bytes!r}")
    if cc is None:
        b = INTERPRETER_BLOCK
        return KernelConfig(block_m=b, block_n=b, num_warps=1, num_stages=1)
    arch = config_row(cc)
    if width == 256:
        return _config_256(kernel, arch, elem_bytes == 4)
    big_d = width == 128
    fp32 = elem_bytes == 4

    if kernel == "bwd_preprocess":
        return KernelConfig(block_m=128, block_n=1, num_warps=4, num_stages=1)

    if kernel == "fwd":
        if arch == 75:
            # Turing: 64 KiB of shared memory per block and no cp.async, so smaller key tiles.
            if fp32:
                return KernelConfig(64, 16, 4, 1) if big_d else KernelConfig(64, 32, 4, 1)
            return KernelConfig(64, 32 if big_d else 64, 4, 2)
        if fp32:
            return KernelConfig(64, 32, 8, 2)
        return KernelConfig(128, 64, 8 if big_d else 4, 2 if big_d else 3)

    if kernel == "bwd_dkdv":
        # Key-major: a BLOCK_N x HEAD_DIM tile of K and V stays resident; Q and dO tiles stream past.
        if arch == 75:
            if fp32:
                return KernelConfig(16 if big_d else 32, 32, 8 if big_d else 4, 1)
            return KernelConfig(32, 32, 8, 1) if big_d else KernelConfig(32, 64, 4, 1)
        if fp32:
            return KernelConfig(32, 64, 8, 1) if arch == 90 else KernelConfig(16, 64, 8, 1)
        return KernelConfig(32, 64, 8, 2) if big_d else KernelConfig(32, 128, 4, 3)

    # bwd_dq: query-major, K and V tiles stream past a resident Q/dO tile.
    if arch == 75:
        if fp32:
            return KernelConfig(16 if big_d else 32, 32, 8 if big_d else 4, 1)
        return KernelConfig(32, 32, 8, 1) if big_d else KernelConfig(64, 32, 4, 1)
    if fp32:
        return KernelConfig(64, 32, 8, 1)
    return KernelConfig(64, 32, 8, 2) if big_d else KernelConfig(128, 64, 4, 2)


def _config_256(kernel: str, arch: int, fp32: bool) -> KernelConfig:
    """Tiles for head dims padded to 256 (129 to 256): a 256-wide row of Q, K or V is twice the bytes of a
    128-wide one, so the tiles are half as tall (or the pipeline one stage shallower) as at 128. Chosen with
    :func:`longctx_lab.kernels.aot.compile_variant` on sm_75, sm_80 and sm_90 (fp16 and fp32); sm_80's fp16 ones
    are compiled by ``tests/kernels_aot``. float32 on sm_75 does not fit (:func:`triton_fits`)."""
    if kernel == "bwd_preprocess":
        return KernelConfig(block_m=64, block_n=1, num_warps=4, num_stages=1)
    if kernel == "fwd":
        if arch == 75:  # fp16 49,152 bytes; fp32 (16 x 16 tiles) too, but its backward does not fit
            return KernelConfig(16 if fp32 else 32, 16, 4, 1)
        if fp32:
            return KernelConfig(32, 32 if arch == 90 else 16, 8, 1)
        return KernelConfig(64, 32, 8, 2)
    if kernel == "bwd_dkdv":
        if arch == 75 or fp32:
            return KernelConfig(16, 16 if arch == 75 else 32, 8, 1)
        return KernelConfig(16, 32, 8, 2 if arch == 90 else 1)
    if arch == 75 or fp32:  # bwd_dq
        return KernelConfig(16 if arch == 75 else 32, 16, 8, 1)
    return KernelConfig(32, 32, 8, 2 if arch == 90 else 1)


# ------------------------------------------------------------------------------------------- decode

#: The decode kernels: the split pass (one program per split of a sequence's keys), then the LSE merge.
DECODE_KERNELS: tuple[str, ...] = ("decode_split", "decode_merge")


def decode_block_m(rows: int, cc: int | None, head_dim: int) -> int:
    """Height of the decode query tile for ``rows = group * q_len`` stacked query rows (>= 16 for ``tl.dot``).

    The next power of two, capped (16 under the interpreter, so row blocks appear on small inputs; 32 where the
    head dim is padded to 256 and 64 below it on a GPU, so the fp32 accumulator fits in registers); more rows
    take more row blocks.
    """
    rows = check_int("rows", rows, minimum=1)
    cap = 16 if cc is None else (32 if padded_head_dim(head_dim) > 128 else 64)
    return min(max(16, 1 << (rows - 1).bit_length()), cap)


def decode_kernel_config(kernel: str, cc: int | None, head_dim: int, elem_bytes: int, rows: int = 1) -> KernelConfig:
    """Launch configuration of a decode kernel on compute capability ``cc`` (``None`` = interpreter).

    ``kernel`` is one of :data:`DECODE_KERNELS`, ``head_dim`` 1 to :data:`MAX_TRITON_HEAD_DIM` (tiles chosen
    for its :func:`padded_head_dim` ``d``), ``elem_bytes`` 2 or 4, ``rows`` the stacked query rows
    ``group * q_len`` (:func:`decode_block_m`). Decoding reads each K/V
    tile once, so the split kernel is bound by memory bandwidth: the tiles only need to be large enough to
    keep loads in flight (``num_stages`` of them) within shared memory: ``2 * block_n * d * elem_bytes``
    bytes per stage, at most 32 KiB in all on sm_75 (64 KiB per block), 64 KiB on the sm_80 row (99 KiB on
    sm_86/89) and 96 KiB on sm_90, leaving room for the compiler's layout conversions. The merge kernel handles
    one query row per program (``block_m``/``block_n`` unused, 1). Compile-checked (``tests/kernels_aot``), not
    tuned on hardware.
    """
    if kernel not in DECODE_KERNELS:
        raise ValueError(f"kernel must be one of {DECODE_KERNELS}, got {kernel!r}")
    width = padded_head_dim(head_dim)
    if elem_bytes not in (2, 4):
        raise ValueError(f"elem_bytes must be 2 (fp16/bf16) or 4 (fp32), got {elem_bytes!r}")
    if kernel == "decode_merge":
        return KernelConfig(block_m=1, block_n=1, num_warps=1 if width <= 128 else 2, num_stages=1)
    block_m = decode_block_m(rows, cc, head_dim)
    if cc is None:
        return KernelConfig(block_m=block_m, block_n=INTERPRETER_BLOCK, num_warps=1, num_stages=1)
    # keys per tile so that one K + V stage is 16 KiB on sm_75 and 32 KiB from sm_80 on (16 to 128 keys);
    # two stages in flight, three on Hopper's 227 KiB, fewer where the smallest tile would pass the budget
    row = config_row(cc)
    stage_bytes = (16 if row == 75 else 32) * 1024
    budget = {75: 32, 80: 64, 90: 96}[row] * 1024
    block_n = max(16, min(128, stage_bytes // (2 * width * elem_bytes)))
    num_stages = max(1, min(3 if row == 90 else 2, budget // (2 * block_n * width * elem_bytes)))
    return KernelConfig(block_m=block_m, block_n=block_n, num_warps=4, num_stages=num_stages)


# ---- flash-decoding's split count (no triton needed: chapters and benchmarks call it anywhere)

#: Most splits one sequence's keys are cut into (the merge reads one partial result per split).
MAX_SPLITS = 128
#: A split gets at least this many key tiles, so its fixed cost (loading Q, writing a partial) stays small.
MIN_TILES_PER_SPLIT = 4


def choose_num_splits(programs: int, max_keys: int, block_n: int, sms: int, *, max_splits: int = MAX_SPLITS) -> int:
    """How many splits each sequence's keys get, flash-decoding's heuristic in its simplest form.

    ``programs`` is the number of programs without splitting (``batch * kv_heads * row_blocks``), ``max_keys``
    the most keys one sequence's queries may see (its length, or ``q_len - 1 + window`` under a window),
    ``block_n`` the key tile, ``sms`` the streaming multiprocessors. Without splits a decode step with few
    sequences leaves most of the GPU idle while each program walks a long cache; splitting multiplies the
    programs until there are about two per SM, never cutting a split below :data:`MIN_TILES_PER_SPLIT` tiles
    and never beyond ``max_splits``. Returns 1 when ``programs`` already fills the GPU or the cache is short.
    """
    programs = check_int("programs", programs, minimum=1)
    max_keys = check_int("max_keys", max_keys, minimum=0)
    block_n = check_int("block_n", block_n, minimum=1)
    sms = check_int("sms", sms, minimum=1)
    max_splits = check_int("max_splits", max_splits, minimum=1)
    wanted = -(-2 * sms // programs)  # ceil: programs per SM about two
    tiles = -(-max_keys // block_n)
    return max(1, min(wanted, tiles // MIN_TILES_PER_SPLIT, max_splits))
