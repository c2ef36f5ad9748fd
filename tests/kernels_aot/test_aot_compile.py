"""Every FlashAttention kernel variant compiles for sm_75 (fp16/fp32), sm_80 and sm_90 and fits in shared memory.

Runs ``python -m longctx_lab.kernels.aot`` (triton.compile with a GPUTarget, no GPU needed) per
(architecture, kernel), prints the shared memory of each variant (``pytest -s`` or ``-rP`` shows
it) and merges it into ``benchmarks/results/aot-compile.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from longctx_lab.kernels.aot import PADDED_HEAD_DIMS, TARGET_CCS, format_table, variant_matrix
from longctx_lab.kernels.config import KERNELS, ROW_SHARED_MEMORY_LIMIT, SHARED_MEMORY_LIMIT, config_row

pytestmark = pytest.mark.aot


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("cc", TARGET_CCS)
def test_kernel_variants_compile_and_fit_shared_memory(cc, kernel, compile_env, report_path):
    proc = subprocess.run(
        [sys.executable, "-m", "longctx_lab.kernels.aot", "--cc", str(cc), "--kernel", kernel,
         "--json", str(report_path)],
        env=compile_env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    print(f"\n{format_table(records)}")

    expected = {v.key for v in variant_matrix(cc, kernel)}
    assert {r["key"] for r in records} == expected
    assert not any(r["dtype"] == "bf16" for r in records if cc < 80), "sm_75 has no bf16"
    failed = [f"{r['key']}: {r['error']}" for r in records if r["error"]]
    assert not failed, "compile failed:\n" + "\n".join(failed)
    limit = SHARED_MEMORY_LIMIT[cc]
    too_big = [f"{r['key']}: {r['shared']} B > {limit} B" for r in records if r["shared"] > limit]
    assert not too_big, f"shared memory above the sm_{cc} limit:\n" + "\n".join(too_big)
    # the same tiles run on the other architectures of this table row (sm_86/89/120 for the sm_80 row)
    row_limit = ROW_SHARED_MEMORY_LIMIT[config_row(cc)]
    too_big = [f"{r['key']}: {r['shared']} B > {row_limit} B" for r in records if r["shared"] > row_limit]
    assert not too_big, f"shared memory above {row_limit} B, the smallest limit of the sm_{cc} table row:\n" + (
        "\n".join(too_big))

    report = json.loads(report_path.read_text())
    for r in records:
        entry = report["entries"][f"sm_{cc}/{r['key']}"]
        assert entry["shared"] == r["shared"] and entry["limit"] == limit


@pytest.mark.parametrize("kernel", KERNELS)
def test_head_dims_of_real_models_are_compiled_for_one_architecture(kernel):
    """80 and 96 (padded to 128-wide tiles, the padding masked) and 256 (the widest tiles), fp16, on sm_80 only."""
    assert PADDED_HEAD_DIMS == (80, 96, 256)
    assert {v.head_dim for v in variant_matrix(80, kernel)} >= set(PADDED_HEAD_DIMS)
    assert not {v.head_dim for cc in (75, 90) for v in variant_matrix(cc, kernel)} & set(PADDED_HEAD_DIMS)
