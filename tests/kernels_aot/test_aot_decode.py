"""The decode kernels (split and merge) compile for sm_75, sm_80 and sm_90 and fit in shared memory.

A handful of variants per architecture (:func:`longctx_lab.kernels.aot.decode_variant_matrix`), so the aot
stage grows by seconds, not minutes; merged into ``benchmarks/results/aot-compile.json`` like the forward
and backward kernels.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from longctx_lab.kernels.aot import TARGET_CCS, decode_variant_matrix, format_table
from longctx_lab.kernels.config import DECODE_KERNELS, ROW_SHARED_MEMORY_LIMIT, config_row

pytestmark = pytest.mark.aot


@pytest.mark.parametrize("cc", TARGET_CCS)
def test_decode_variants_compile_and_fit_shared_memory(cc, compile_env, report_path):
    cmd = [sys.executable, "-m", "longctx_lab.kernels.aot", "--cc", str(cc), "--json", str(report_path)]
    for kernel in DECODE_KERNELS:
        cmd += ["--kernel", kernel]
    proc = subprocess.run(cmd, env=compile_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    print(f"\n{format_table(records)}")

    expected = {v.key for kernel in DECODE_KERNELS for v in decode_variant_matrix(cc, kernel)}
    assert {r["key"] for r in records} == expected
    assert any(r["paged"] for r in records) or cc == 75, "a paged variant on sm_80 and sm_90"
    assert not any(r["dtype"] == "bf16" for r in records if cc < 80), "sm_75 has no bf16"
    failed = [f"{r['key']}: {r['error']}" for r in records if r["error"]]
    assert not failed, "compile failed:\n" + "\n".join(failed)
    # the tiles of a table row run on every architecture of that row: the smallest limit applies
    row_limit = ROW_SHARED_MEMORY_LIMIT[config_row(cc)]
    too_big = [f"{r['key']}: {r['shared']} B > {row_limit} B" for r in records if r["shared"] > row_limit]
    assert not too_big, f"shared memory above {row_limit} B (sm_{cc} table row):\n" + "\n".join(too_big)

    report = json.loads(report_path.read_text())
    for r in records:
        assert report["entries"][f"sm_{cc}/{r['key']}"]["shared"] == r["shared"]


def test_decode_variant_matrix_is_small_and_rejects_other_kernels():
    sizes = {cc: sum(len(decode_variant_matrix(cc, k)) for k in DECODE_KERNELS) for cc in TARGET_CCS}
    assert sizes == {75: 3, 80: 11, 90: 4}  # the aot stage's time budget: a handful per architecture
    with pytest.raises(ValueError, match=r"kernel must be one of \('decode_split', 'decode_merge'\), got 'fwd'"):
        decode_variant_matrix(80, "fwd")
