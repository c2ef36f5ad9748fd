"""Decode attention on a GPU: effective HBM bandwidth of the flash-decoding kernels vs SDPA and flash-attn.

``longctx-lab bench decode`` times one decode step (``q_len`` queries per sequence, default 1) over a KV
cache of ``context`` tokens per sequence, for contexts 1K-128K and batches 1-64 (default: Llama-3-8B's
attention shape, 32 query heads over 8 KV heads of 128, fp16 and bf16), with

- ``triton``: the flash-decoding kernels over a contiguous cache (:func:`longctx_lab.kernels.decode.forward`,
  the launcher :func:`longctx_lab.kernels.decode_dispatch.decode_attention` calls after validating; it is
  called once through the dispatcher first, and its output compared with SDPA's),
- ``triton-paged``: the same kernels over a paged cache (``--page-size`` tokens per block, shuffled blocks),
- ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention(..., enable_gqa=True)``, whatever backend it
  picks (every sequence is ``context`` long, so no mask is needed),
- ``flash-attn`` / ``flash-attn-paged``: ``flash_attn.flash_attn_with_kvcache`` (contiguous, or with its
  ``block_table``) when the package is installed; recorded as skipped otherwise.

Every sequence has the same length, so every implementation reads the same bytes: ``2 * batch * context *
kv_heads * head_dim * element_size`` of K and V plus the queries and outputs
(:func:`decode_bytes`). Effective bandwidth is those bytes over the median time of Triton's ``do_bench``
(L2 flushed between runs), printed as a percentage of the device's datasheet HBM bandwidth
(:data:`longctx_lab.core.configs.GPUS`, or :data:`EXTRA_HBM_BANDWIDTH` for devices that table does not list).
Cases whose caches would not fit in ``--memory-fraction`` of the free memory are recorded as skipped.

Without a CUDA GPU it says so and records nothing. File: ``benchmarks/results/decode-gpu-<device>.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from longctx_lab.cli.bench.attention import _driver_version, _header, _peak_spec, _write, triton_head_dim

IMPLS = ("triton", "triton-paged", "sdpa", "flash-attn", "flash-attn-paged")
DEFAULT_CONTEXTS = (1024, 4096, 16384, 32768, 65536, 131072)
DEFAULT_BATCHES = (1, 8, 32, 64)

#: HBM bandwidth (bytes/s) of GPUs the course's table (:data:`longctx_lab.core.configs.GPUS`) does not list.
EXTRA_HBM_BANDWIDTH: dict[str, tuple[float, str]] = {
    "H200": (4.8e12, "NVIDIA H200 datasheet (4.8 TB/s HBM3e, 141 GB)"),
}


def add_arguments(parser) -> None:
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"), help="where the JSON goes")
    parser.add_argument("--contexts", type=int, nargs="+", default=list(DEFAULT_CONTEXTS),
                        help="tokens per sequence in the cache")
    parser.add_argument("--batches", type=int, nargs="+", default=list(DEFAULT_BATCHES), help="sequences per step")
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--head-dim", type=triton_head_dim, default=128)
    parser.add_argument("--q-len", type=int, default=1, help="queries per sequence (1: plain decoding)")
    parser.add_argument("--page-size", type=int, default=256,
                        help="tokens per block of the paged caches (flash-attn needs a multiple of 256)")
    parser.add_argument("--dtypes", nargs="+", default=["float16", "bfloat16"], choices=("float16", "bfloat16"))
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    parser.add_argument("--memory-fraction", type=float, default=0.7,
                        help="skip a case whose caches need more than this fraction of the free GPU memory")


def decode_bytes(batch: int, heads: int, kv_heads: int, q_len: int, context: int, head_dim: int,
                 element_size: int) -> int:
    """HBM bytes one decode step must move at least: K and V of every cached token once, q read, out written."""
    kv = 2 * batch * kv_heads * context * head_dim * element_size
    qo = 2 * batch * heads * q_len * head_dim * element_size
    return kv + qo


def hbm_bandwidth(device_name: str) -> tuple[float, str] | None:
    """``(bytes/s, source)`` of the device's datasheet HBM bandwidth, or None when unknown."""
    spec = _peak_spec(device_name)
    if spec is not None:
        return spec.hbm_bandwidth, spec.source
    for key, value in EXTRA_HBM_BANDWIDTH.items():
        if key in device_name.upper():
            return value
    return None


def _flash_attn():
    try:
        from flash_attn import flash_attn_with_kvcache
    except ImportError:
        return None
    return flash_attn_with_kvcache


def _cache_bytes(impl: str, batch: int, kv_heads: int, context: int, head_dim: int, elem: int, page: int) -> int:
    """Device bytes one case allocates: K and V (a paged pool rounds each sequence up to whole blocks), twice for
    the Triton rows (their correctness check gathers a copy for SDPA)."""
    tokens = -(-context // page) * page if impl.endswith("paged") else context
    return 2 * batch * kv_heads * tokens * head_dim * elem * (2 if impl.startswith("triton") else 1)


def _bottom_right_mask(q_len: int, context: int, device):
    """Causal mask of the last ``q_len`` positions (None for one query: it sees every key)."""
    import torch

    if q_len == 1:
        return None
    i = torch.arange(q_len, device=device)[:, None] + context - q_len
    return torch.arange(context, device=device)[None, :] <= i


def _build(impl, batch, heads, kv_heads, q_len, context, head_dim, dtype, page_size, seed=0, device="cuda"):
    """One implementation's inputs: ``(call, check, reference, info)``. ``call()`` is what is timed, ``check()``
    the first call (through the dispatcher for Triton), returning ``(batch, heads, q_len, head_dim)``;
    ``reference()`` SDPA over the same keys (Triton rows only, else None); ``info`` goes into the row.
    ``device="cpu"`` runs the Triton rows under the interpreter (the smoke test of this function)."""
    import torch
    import torch.nn.functional as F

    from longctx_lab.kernels import decode
    from longctx_lab.kernels.decode_dispatch import decode_attention

    torch.manual_seed(seed)
    dev = torch.device(device)
    q = torch.randn(batch, heads, q_len, head_dim, device=dev, dtype=dtype)
    scale = head_dim ** -0.5
    lengths = [context] * batch
    lengths_dev = torch.full((batch,), context, dtype=torch.int32, device=dev)
    blocks_per_seq = -(-context // page_size)
    mask = _bottom_right_mask(q_len, context, dev)

    def shuffled_table():
        perm = torch.randperm(batch * blocks_per_seq, device=dev).to(torch.int32)
        return perm.reshape(batch, blocks_per_seq)

    if impl in ("triton", "triton-paged"):
        if impl == "triton":
            k = torch.randn(batch, kv_heads, context, head_dim, device=dev, dtype=dtype)
            v = torch.randn_like(k)
            table = None
        else:
            k = torch.randn(batch * blocks_per_seq, kv_heads, page_size, head_dim, device=dev, dtype=dtype)
            v = torch.randn_like(k)
            table = shuffled_table()
        cfg = decode.split_config(q, kv_heads)
        row_blocks = -(-(heads // kv_heads * q_len) // cfg.block_m)
        splits = decode.choose_num_splits(batch * kv_heads * row_blocks, context, cfg.block_n, decode.num_sms(q.device))

        def call():
            return decode.forward(q, k, v, lengths_dev, block_table=table, window=None, scale=scale,
                                  max_keys=context, num_splits=splits)[0]

        def check():
            return decode_attention(q, k, v, lengths, block_table=table, backend="triton")

        def reference():  # SDPA over the same keys, gathered
            if table is None:
                kk, vv = k, v
            else:
                idx = table.long()
                kk, vv = (p[idx].permute(0, 2, 1, 3, 4).reshape(batch, kv_heads, -1, head_dim)[:, :, :context]
                          for p in (k, v))
            return F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask, scale=scale, enable_gqa=True)

        return call, check, reference, {"num_splits": splits, "block_n": cfg.block_n, "block_m": cfg.block_m}

    if impl == "sdpa":
        k = torch.randn(batch, kv_heads, context, head_dim, device=dev, dtype=dtype)
        v = torch.randn_like(k)

        def call():
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=True)

        return call, call, None, {}

    fa = _flash_attn()
    qf = q.transpose(1, 2).contiguous()  # flash-attn layout: (batch, seq, heads, head_dim)
    if impl == "flash-attn":
        kf = torch.randn(batch, context, kv_heads, head_dim, device=dev, dtype=dtype)
        table = None
    else:
        kf = torch.randn(batch * blocks_per_seq, page_size, kv_heads, head_dim, device=dev, dtype=dtype)
        table = shuffled_table()
    vf = torch.randn_like(kf)

    def call():
        return fa(qf, kf, vf, cache_seqlens=lengths_dev, block_table=table, softmax_scale=scale, causal=True)

    return call, lambda: call().transpose(1, 2), None, {}


def _measure(impl, batch, heads, kv_heads, q_len, context, head_dim, dtype, args) -> dict:
    import torch
    from triton.testing import do_bench

    elem = torch.empty((), dtype=dtype).element_size()
    row = {"impl": impl, "batch": batch, "context": context, "heads": heads, "kv_heads": kv_heads, "q_len": q_len,
           "head_dim": head_dim, "dtype": str(dtype).replace("torch.", "")}
    if impl.startswith("flash-attn") and _flash_attn() is None:
        row.update(status="skipped", reason="flash_attn is not installed")
        return row
    if impl.startswith("flash-attn") and dtype not in (torch.float16, torch.bfloat16):
        row.update(status="skipped", reason="flash-attn takes fp16/bf16 only")
        return row
    need = _cache_bytes(impl, batch, kv_heads, context, head_dim, elem, args.page_size)
    free, _ = torch.cuda.mem_get_info()
    if need > args.memory_fraction * free:
        row.update(status="skipped", reason=f"needs about {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free")
        return row
    try:
        call, check, reference, info = _build(impl, batch, heads, kv_heads, q_len, context, head_dim, dtype,
                                              args.page_size)
        row.update(info)
        with torch.no_grad():
            out = check()  # through the dispatcher (validation included): compile, warm up
            if reference is not None:
                row["max_abs_diff_vs_sdpa"] = (out.float() - reference().float()).abs().max().item()
            torch.cuda.synchronize()
            row["ms"] = do_bench(call, warmup=25, rep=100, return_mode="median")
        moved = decode_bytes(batch, heads, kv_heads, q_len, context, head_dim, elem)
        row["bytes"] = moved
        row["gb_per_s"] = moved / (row["ms"] * 1e-3) / 1e9
        row["status"] = "ok"
    except torch.cuda.OutOfMemoryError:
        row.update(status="oom")
    except RuntimeError as exc:  # e.g. an SDPA backend or flash-attn without a kernel for this GPU or shape
        row.update(status="error", reason=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    finally:
        torch.cuda.empty_cache()
    return row


def _print_row(row: dict) -> None:
    head = f"{row['impl']:<17} {row['dtype']:<9} {row['batch']:>5} {row['context']:>7}"
    if row["status"] != "ok":
        print(f"{head} {row['status']}: {row.get('reason', '')}")
        return
    pct = f"{row['pct_peak_hbm']:6.1f}" if "pct_peak_hbm" in row else f"{'-':>6}"
    splits = row.get("num_splits", "")
    print(f"{head} {row['ms']:9.4f} {row['gb_per_s']:9.1f} {pct} {splits!s:>6}")


def run_gpu(args) -> dict | None:
    """Run the benchmark; returns the payload, or None (and says why) when there is no CUDA GPU."""
    import torch

    if not torch.cuda.is_available():
        print("bench decode: no CUDA GPU on this machine (torch.cuda.is_available() is False): skipped, "
              "no GPU numbers measured or recorded.")
        return None
    from longctx_lab.kernels.dispatch import interpreter_active, triton_available

    impls = list(args.impls)
    if not triton_available() or interpreter_active():
        print("bench decode: the compiled Triton kernels are not available (triton missing or TRITON_INTERPRET=1): "
              "the triton rows are skipped.")
        impls = [i for i in impls if not i.startswith("triton")]
    name = torch.cuda.get_device_name()
    major, minor = torch.cuda.get_device_capability()
    peak = hbm_bandwidth(name)
    print(f"bench decode on {name} (sm_{major}{minor}); HBM peak: "
          + (f"{peak[0] / 1e12:.2f} TB/s ({peak[1]})" if peak else "unknown (not in the course's table)"))
    print(f"{'impl':<17} {'dtype':<9} {'batch':>5} {'context':>7} {'ms':>9} {'GB/s':>9} {'%peak':>6} {'splits':>6}")
    rows = []
    for dtype_name in args.dtypes:
        dtype = getattr(torch, dtype_name)
        if dtype == torch.bfloat16 and major < 8:
            print(f"bfloat16 skipped: sm_{major}{minor} has no bf16 tensor cores")
            continue
        for context in args.contexts:
            for batch in args.batches:
                for impl in impls:
                    row = _measure(impl, batch, args.heads, args.kv_heads, args.q_len, context, args.head_dim,
                                   dtype, args)
                    if row["status"] == "ok" and peak:
                        row["pct_peak_hbm"] = 100 * row["gb_per_s"] * 1e9 / peak[0]
                    rows.append(row)
                    _print_row(row)
    payload = {
        **_header(args),
        "device": name,
        "compute_capability": f"{major}.{minor}",
        "driver": _driver_version(),
        "cuda_runtime": torch.version.cuda,
        "flash_attn": _flash_attn_version(),
        "peak_hbm_bandwidth": peak[0] if peak else None,
        "peak_source": peak[1] if peak else None,
        "bytes_convention": "2 * batch * kv_heads * context * head_dim * element_size (K and V once) "
                            "+ 2 * batch * heads * q_len * head_dim * element_size (q read, out written)",
        "time_convention": "triton.testing.do_bench median (L2 flushed between runs); triton rows time the "
                           "launcher (split + merge kernels) after one validated call through the dispatcher",
        "rows": rows,
    }
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    _write(args.out_dir / f"decode-gpu-{slug}.json", payload)
    return payload


def _flash_attn_version() -> str | None:
    try:
        import flash_attn
    except ImportError:
        return None
    return getattr(flash_attn, "__version__", "unknown")


def run(args) -> int:
    for name in ("contexts", "batches"):
        bad = [n for n in getattr(args, name) if n < 1]
        if bad:
            raise ValueError(f"--{name} must be positive integers, got {bad}")
    for name in ("heads", "kv_heads", "q_len", "page_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.heads % args.kv_heads:
        raise ValueError(f"--heads must be a multiple of --kv-heads ({args.kv_heads}), got {args.heads}")
    if not 0 < args.memory_fraction <= 1:
        raise ValueError(f"--memory-fraction must be in (0, 1], got {args.memory_fraction}")
    run_gpu(args)
    return 0


if __name__ == "__main__":  # python -m longctx_lab.cli.bench.decode [...]
    _parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
