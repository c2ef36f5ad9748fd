"""Ahead-of-time compile of the Triton kernels (FlashAttention, decode) for GPU targets, without a GPU.

``triton.compile(ASTSource(fn, signature, constexprs, attrs), target=GPUTarget("cuda", cc, 32))``
runs the whole Triton pipeline (TTIR, TTGIR, LLVM IR, PTX, and ``ptxas`` to a cubin) for a chosen
architecture without touching a device. The metadata of the result gives the shared memory one
thread block needs, which must fit the architecture's limit (:data:`SHARED_MEMORY_LIMIT`) or the
launch would fail on a real GPU. :func:`compile_matrix` compiles the variants a run can produce
with the tile sizes :func:`longctx_lab.kernels.config.kernel_config` picks for that architecture.

Variants. Everything a launch turns into a constexpr is a separate compile: ``HEAD_DIM``, the
tiles, ``IS_CAUSAL``, ``HAS_WINDOW``, ``DOT_PRECISION`` (fp32 inputs) and the element type. Triton also
specialises an integer argument equal to 1 into a constant, so ``GROUP == 1`` (multi-head) and
``GROUP > 1`` (grouped-query) are different programs too: ``gqa=False`` compiles ``GROUP`` as the
constant 1, ``gqa=True`` as a runtime ``i32``.

Decode kernels (:mod:`longctx_lab.kernels.decode_kernels`): a handful of variants per architecture
(:func:`decode_variant_matrix`), with the tiles of :func:`~longctx_lab.kernels.config.decode_kernel_config`;
``paged`` is the block-table variant of the split kernel.

Command line (used by ``tests/kernels_aot``, in a process without ``TRITON_INTERPRET``)::

    python -m longctx_lab.kernels.aot --cc 80 --kernel fwd [--json benchmarks/results/aot-compile.json]

prints one JSON object per compiled variant and merges them into the JSON file. This module imports
triton but not torch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from longctx_lab.kernels.config import (
    DECODE_KERNELS,
    KERNELS,
    ROW_SHARED_MEMORY_LIMIT,
    SHARED_MEMORY_LIMIT,
    KernelConfig,
    config_row,
    decode_kernel_config,
    kernel_config,
    padded_head_dim,
)

#: Architectures the course targets: T4 (Colab), A100, H100.
TARGET_CCS: tuple[int, ...] = (75, 80, 90)
#: Head dims of real models that are not one of the course's powers of two (80: Phi-2; 96: Phi-3) and the widest
#: tile (256: Gemma), compiled for sm_80 only: each adds one compile per kernel (measured: about 1.3 s of CPU each).
PADDED_HEAD_DIMS: tuple[int, ...] = (80, 96, 256)

_ELEM_BYTES = {"fp16": 2, "bf16": 2, "fp32": 4}
_DATA_POINTERS = {"Q", "K", "V", "Out", "DO", "DQ", "DK", "DV"}
_FP32_POINTERS = {"Lse", "Delta", "OPart", "LsePart"}
_I32_POINTERS = {"Lengths", "BlockTable"}
_INT_ARGS = {"H", "GROUP", "M", "N", "WINDOW", "Q_LEN", "PAGE", "NUM_SPLITS"}
#: Strides that need not be multiples of 16 (a block table's row is max_blocks entries long).
_PLAIN_STRIDES = {"stride_tb"}
#: The stacked query rows (group * q_len) a decode variant is compiled for: one decode query of MHA, or of
#: a group of 8 query heads (Llama-3's), both inside one 16-row tile.
_DECODE_ROWS = {False: 1, True: 8}


@dataclass(frozen=True)
class Variant:
    """One compile: a kernel, an element type, a head dim and the mask/GQA flags (``paged``: decode only)."""

    kernel: str
    dtype: str
    head_dim: int
    causal: bool = False
    window: bool = False
    gqa: bool = False
    paged: bool = False

    @property
    def key(self) -> str:
        if self.kernel in ("bwd_preprocess", "decode_merge"):
            return f"{self.kernel}/{self.dtype}/d{self.head_dim}"
        if self.kernel == "decode_split":  # always causal
            return (f"{self.kernel}/{self.dtype}/d{self.head_dim}/{'window' if self.window else 'causal'}/"
                    f"{'gqa' if self.gqa else 'mha'}/{'paged' if self.paged else 'contiguous'}")
        mask = ("causal" if self.causal else "full") + ("+window" if self.window else "")
        return f"{self.kernel}/{self.dtype}/d{self.head_dim}/{mask}/{'gqa' if self.gqa else 'mha'}"


def variant_matrix(cc: int, kernel: str) -> list[Variant]:
    """The variants compiled per architecture and kernel.

    Every combination of the causal, window and GQA flags in fp16 and in bf16 (not on sm_75, which
    has no bf16 tensor cores) at head dim 128; fp16 at head dims 16, 32 and 64 (smaller tiles of the
    same code); fp32 (twice the bytes per tile) at 128. On sm_80 only (:data:`PADDED_HEAD_DIMS`, the
    aot stage's time): fp16 at 80 and 96 (128-wide tiles with the padding columns masked, a different
    program) and at 256 (the widest tiles). The flags change the generated code (loop bounds, masks)
    but not the tiles.
    """
    if kernel in DECODE_KERNELS:
        return decode_variant_matrix(cc, kernel)
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS + DECODE_KERNELS}, got {kernel!r}")
    dtypes16 = ["fp16"] + (["bf16"] if cc >= 80 else [])
    wide = PADDED_HEAD_DIMS if cc == 80 else ()
    if kernel == "bwd_preprocess":
        return [Variant(kernel, dt, 128) for dt in [*dtypes16, "fp32"]] + [Variant(kernel, "fp16", d) for d in wide]
    flags = [(c, w, g) for c in (False, True) for w in (False, True) for g in (False, True)]
    out = [Variant(kernel, dt, 128, causal=c, window=w, gqa=g) for dt in dtypes16 for c, w, g in flags]
    out += [Variant(kernel, "fp16", d, causal=True, window=True, gqa=True) for d in (16, 32, 64, *wide)]
    out.append(Variant(kernel, "fp32", 128, causal=True, window=False, gqa=True))
    return out


def decode_variant_matrix(cc: int, kernel: str) -> list[Variant]:
    """The few decode variants compiled per architecture (the aot stage's time budget allows a handful).

    Split kernel: fp16 at head dim 128 with a window and GQA on every architecture; head dim 256 (the
    largest K/V tiles) on every architecture; bf16 on sm_80/sm_90 (paged on sm_90); the paged variant,
    head dim 16 and fp32 (full-precision products) on sm_80. Merge kernel: fp16 at head dim 128 (it has no
    tiles: one row per program). Head dims 80 and 96 (split and merge, padded to 128) on sm_80.
    """
    if kernel not in DECODE_KERNELS:
        raise ValueError(f"kernel must be one of {DECODE_KERNELS}, got {kernel!r}")
    if kernel == "decode_merge":
        return [Variant(kernel, "fp16", 128)] + ([Variant(kernel, "fp16", d) for d in (80, 96)] if cc == 80 else [])
    out = [Variant(kernel, "fp16", 128, causal=True, window=True, gqa=True),
           Variant(kernel, "fp16", 256, causal=True, gqa=True)]
    if cc == 80:
        out += [Variant(kernel, "bf16", 128, causal=True, gqa=True),
                Variant(kernel, "fp16", 128, causal=True, gqa=True, paged=True),
                Variant(kernel, "fp16", 16, causal=True),
                Variant(kernel, "fp32", 128, causal=True, gqa=True),
                *(Variant(kernel, "fp16", d, causal=True, window=True, gqa=True) for d in (80, 96))]
    if cc == 90:
        out.append(Variant(kernel, "bf16", 128, causal=True, gqa=True, paged=True))
    return out


def _signature_and_constants(fn, variant: Variant, cc: int, cfg: KernelConfig | None):
    if variant.kernel in DECODE_KERNELS:
        cfg = cfg or decode_kernel_config(variant.kernel, cc, variant.head_dim, _ELEM_BYTES[variant.dtype],
                                          rows=_DECODE_ROWS[variant.gqa])
    else:
        cfg = cfg or kernel_config(variant.kernel, cc, variant.head_dim, _ELEM_BYTES[variant.dtype])
    constexpr_values = {
        "HEAD_DIM": variant.head_dim,
        "BLOCK_D": padded_head_dim(variant.head_dim),
        "BLOCK_M": cfg.block_m,
        "BLOCK_N": cfg.block_n,
        "IS_CAUSAL": variant.causal,
        "HAS_WINDOW": variant.window,
        "PAGED": variant.paged,
        "DOT_PRECISION": "ieee" if variant.dtype == "fp32" else "tf32",
    }
    signature: dict[str, str] = {}
    constexprs: dict[str, object] = {}
    attrs: dict[tuple[int, ...], list] = {}
    for index, param in enumerate(fn.params):
        name = param.name
        if param.is_constexpr:
            signature[name] = "constexpr"
            constexprs[name] = constexpr_values[name]
        elif name == "GROUP" and not variant.gqa:
            signature[name] = "constexpr"  # what the JIT does with an int argument equal to 1
            constexprs[name] = 1
        elif name in _DATA_POINTERS:
            signature[name] = f"*{variant.dtype}"
            attrs[(index,)] = [["tt.divisibility", 16]]
        elif name in _FP32_POINTERS:
            signature[name] = "*fp32"
            attrs[(index,)] = [["tt.divisibility", 16]]
        elif name in _I32_POINTERS:
            signature[name] = "*i32"
            attrs[(index,)] = [["tt.divisibility", 16]]
        elif name in _PLAIN_STRIDES:
            signature[name] = "i32"
        elif name.startswith("stride_"):
            signature[name] = "i32"
            if variant.head_dim % 16 == 0:  # strides of contiguous tensors are multiples of head_dim
                attrs[(index,)] = [["tt.divisibility", 16]]
        elif name in _INT_ARGS:
            signature[name] = "i32"
        elif name == "sm_scale":
            signature[name] = "fp32"
        else:  # a new kernel argument must be classified here, not guessed
            raise ValueError(f"don't know the AOT type of argument {name!r} of {fn.__name__}")
    return signature, constexprs, attrs, cfg


def compile_variant(variant: Variant, cc: int, config: KernelConfig | None = None) -> dict:
    """Compile one variant for ``sm_<cc>``. Returns a record with the shared memory and the launch config.

    ``config`` replaces the configuration of :func:`~longctx_lab.kernels.config.kernel_config` (to try tiles).

    The record's ``error`` is ``None`` on success, else the compiler's message (first 2000 characters).
    """
    import triton
    from triton.backends.compiler import GPUTarget

    from longctx_lab.kernels.decode_kernels import DECODE_KERNEL_FUNCTIONS
    from longctx_lab.kernels.flash_kernels import KERNEL_FUNCTIONS, is_interpreted

    if is_interpreted():
        raise RuntimeError("TRITON_INTERPRET=1 was set when the kernels were defined: AOT compiles need real kernels")
    if variant.dtype == "bf16" and cc < 80:
        raise ValueError(f"bf16 needs sm_80 or newer, got cc {cc}")
    fn = {**KERNEL_FUNCTIONS, **DECODE_KERNEL_FUNCTIONS}[variant.kernel]
    signature, constexprs, attrs, cfg = _signature_and_constants(fn, variant, cc, config)
    record = {"cc": cc, "key": variant.key, **asdict(variant), **cfg.as_dict(), "shared": None,
              "limit": SHARED_MEMORY_LIMIT[cc], "row_limit": ROW_SHARED_MEMORY_LIMIT[config_row(cc)],
              "error": None}
    if variant.kernel not in DECODE_KERNELS:
        del record["paged"]  # a decode-only flag: the FlashAttention entries keep their fields
    if variant.kernel in ("bwd_preprocess", "decode_merge"):
        record["block_n"] = None
    start = time.perf_counter()
    try:
        src = triton.compiler.ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs)
        compiled = triton.compile(src, target=GPUTarget("cuda", cc, 32),
                                  options={"num_warps": cfg.num_warps, "num_stages": cfg.num_stages})
        record["shared"] = int(compiled.metadata.shared)
    except Exception as exc:  # report every failing variant, not only the first
        record["error"] = f"{type(exc).__name__}: {exc}"[:2000]
    record["seconds"] = round(time.perf_counter() - start, 2)
    return record


def compile_matrix(cc: int, kernels: tuple[str, ...] = KERNELS) -> list[dict]:
    """Compile :func:`variant_matrix` for every kernel in ``kernels`` on ``sm_<cc>``."""
    if cc not in SHARED_MEMORY_LIMIT:
        raise ValueError(f"cc must be one of {sorted(SHARED_MEMORY_LIMIT)}, got {cc!r}")
    return [compile_variant(v, cc) for kernel in kernels for v in variant_matrix(cc, kernel)]


def write_report(records: list[dict], path: str | os.PathLike) -> dict:
    """Merge ``records`` into the JSON report at ``path`` (created if missing) and return the report.

    Entries are keyed ``sm_<cc>/<variant key>``; the entries of every (cc, kernel) pair present in
    ``records`` are replaced as a whole, so variants dropped from the matrix disappear. Concurrent
    writers (parallel test workers) are serialised with a lock file in the temp directory. Compile times are left out so
    the file only changes when a result changes.
    """
    import fcntl

    import triton

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = {(r["cc"], r["kernel"]) for r in records}
    lock_name = "longctx-aot-" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16] + ".lock"
    with open(Path(tempfile.gettempdir(), lock_name), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        report = json.loads(path.read_text()) if path.exists() else {}
        entries = {
            k: e for k, e in report.get("entries", {}).items() if (e["cc"], e["kernel"]) not in groups
        }
        for r in records:
            entries[f"sm_{r['cc']}/{r['key']}"] = {k: v for k, v in r.items() if k not in ("key", "seconds")}
        report = {
            "what": "shared memory per thread block of each Triton kernel variant (FlashAttention, decode), "
                    "compiled ahead of time "
                    "with triton.compile(ASTSource(...), target=GPUTarget('cuda', cc, 32)); no GPU involved",
            "command": "python -m longctx_lab.kernels.aot --cc CC --kernel KERNEL --json <this file>",
            "triton": triton.__version__,
            "limits_bytes": {f"sm_{cc}": SHARED_MEMORY_LIMIT[cc] for cc in TARGET_CCS},
            "entries": dict(sorted(entries.items())),
        }
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(report, indent=1, sort_keys=False) + "\n")
        tmp.replace(path)
    return report


def format_table(records: list[dict]) -> str:
    """A human-readable table: arch, variant, tiles, warps/stages, shared memory vs limit, compile seconds."""
    lines = [f"{'arch':<6} {'variant':<44} {'tiles':>7} {'w/s':>4} {'shared':>8} {'limit':>7} {'sec':>5}"]
    for r in records:
        tiles = f"{r['block_m']}x{r['block_n']}" if r["block_n"] else f"{r['block_m']}"
        shared = "ERROR" if r["error"] else f"{r['shared'] / 1024:.1f}K"
        lines.append(
            f"sm_{r['cc']:<3} {r['key']:<44} {tiles:>7} {r['num_warps']}/{r['num_stages']:<2} "
            f"{shared:>8} {r['limit'] // 1024:>6}K {r['seconds']:>5.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cc", type=int, action="append", choices=TARGET_CCS,
                        help="compute capability (repeatable; default: all of %(default)s)")
    parser.add_argument("--kernel", action="append", choices=KERNELS + DECODE_KERNELS,
                        help="kernel (repeatable; default: all)")
    parser.add_argument("--json", help="merge the results into this JSON report")
    parser.add_argument("--table", action="store_true", help="print a table to stderr as well")
    args = parser.parse_args(argv)
    records = []
    for cc in args.cc or TARGET_CCS:
        records += compile_matrix(cc, tuple(args.kernel or KERNELS + DECODE_KERNELS))
    for r in records:
        print(json.dumps(r), flush=True)
    if args.table:
        print(format_table(records), file=sys.stderr)
    if args.json:
        write_report(records, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
