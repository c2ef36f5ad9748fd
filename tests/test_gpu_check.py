"""`make gpu-check` (benchmarks/gpu_check.py): what it does without CUDA, and its CUDA path with stand-in commands.

No GPU here: the CUDA path is driven with torch.cuda patched and the two commands (native kernel tests, GPU
benchmark) replaced by small scripts, so the orchestration, the JUnit parsing, the verdict, the budget and the
record are what is tested; the real commands are checked for what they would run.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("benchmarks_gpu_check", REPO / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = gpu_check  # dataclasses look their module up there
_spec.loader.exec_module(gpu_check)


def test_no_cuda_and_no_gpu_prints_one_line_and_exits_0(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu_check.shutil, "which", lambda name: None)
    assert gpu_check.main(["--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "no CUDA GPU" in out and "nothing checked" in out
    assert list(tmp_path.iterdir()) == []


def test_gpu_listed_but_torch_cannot_use_it_exits_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu_check, "nvidia_smi_gpus", lambda: [{"name": "NVIDIA A100-SXM4-80GB", "driver": "550.54"}])
    assert gpu_check.main(["--out-dir", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "NVIDIA A100-SXM4-80GB" in out and "CPU-only torch" in out
    assert list(tmp_path.iterdir()) == []


def test_the_real_commands_run_the_native_kernel_tests_and_the_gpu_benchmark(tmp_path):
    cmd = gpu_check.kernel_test_command(tmp_path / "j.xml", workers=4)
    assert cmd[:3] == [sys.executable, "-m", "pytest"] and cmd[cmd.index("-m", 3) + 1] == "triton"
    assert "tests/kernels" in cmd and f"--junitxml={tmp_path / 'j.xml'}" in cmd and cmd[-2:] == ["-n", "4"]
    assert "-n" not in gpu_check.kernel_test_command(tmp_path / "j.xml", workers=1)
    bench = gpu_check.bench_command(tmp_path)
    assert bench[3:] == ["bench", "attention", "--part", "gpu", "--out-dir", str(tmp_path)]


def _fake_cuda(monkeypatch, name="Fake GPU 9000"):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    monkeypatch.setattr(gpu_check, "nvidia_smi_gpus", lambda: [{"name": name, "driver": "999.1"}])


def _fake_bench(monkeypatch, rows, exit_code=0):
    script = textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        out = Path(sys.argv[1]) / "attention-gpu-fake-gpu-9000.json"
        out.write_text(json.dumps({{"rows": {rows!r}}}))
        sys.exit({exit_code})
    """)
    monkeypatch.setattr(gpu_check, "bench_command", lambda out_dir: [sys.executable, "-c", script, str(out_dir)])


def test_cuda_path_fails_on_a_kernel_mismatch_and_records_it(monkeypatch, tmp_path, capsys):
    """Real pytest on a stand-in test file (one pass, one mismatch, one skip) run the way the kernel tests are."""
    tests = tmp_path / "t" / "test_standin.py"
    tests.parent.mkdir()
    tests.write_text(textwrap.dedent("""
        import os, pytest
        def test_native_env():
            assert os.environ["LONGCTX_LAB_KERNEL_DEVICE"] == "cuda" and "TRITON_INTERPRET" not in os.environ
        def test_mismatch():
            assert 1.0 == 2.0, "kernel != reference"
        @pytest.mark.skip(reason="interpreter only")
        def test_skipped():
            pass
    """))
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # must not reach the native tests
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # the stand-in needs none: 0.7 s instead of 3-10 s
    monkeypatch.setattr(gpu_check, "kernel_test_command", lambda junit, workers: [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tests.parent),
        str(tests), f"--junitxml={junit}"])
    _fake_cuda(monkeypatch)
    _fake_bench(monkeypatch, [{"impl": "triton", "status": "ok"}])
    out_dir = tmp_path / "results"
    assert gpu_check.main(["--out-dir", str(out_dir), "--workers", "1"]) == 1
    record = json.loads((out_dir / "gpu-check-fake-gpu-9000.json").read_text())
    assert record["verdict"] == "fail" and "kernel tests failed" in record["reasons"][0]
    summary = record["steps"][0]["details"]["summary"]
    assert (summary["passed"], summary["failures"], summary["skipped"]) == (1, 1, 1)
    assert summary["failed_tests"] == ["test_standin::test_mismatch"]
    assert "FAILED: kernel tests failed" in capsys.readouterr().out


def test_cuda_path_passes_and_records_gpu_driver_and_versions(monkeypatch, tmp_path):
    junit_xml = '<testsuites><testsuite tests="3" failures="0" errors="0" skipped="1"/></testsuites>'
    script = f"import sys; open(sys.argv[1], 'w').write({junit_xml!r})"
    monkeypatch.setattr(gpu_check, "kernel_test_command", lambda junit, workers: [sys.executable, "-c", script,
                                                                                  str(junit)])
    _fake_cuda(monkeypatch)
    _fake_bench(monkeypatch, [{"impl": "triton", "status": "ok"}, {"impl": "sdpa-flash", "status": "error"}])
    out_dir = tmp_path / "results"
    assert gpu_check.main(["--out-dir", str(out_dir)]) == 0
    record = json.loads((out_dir / "gpu-check-fake-gpu-9000.json").read_text())
    assert record["verdict"] == "pass" and record["reasons"] == []
    assert (record["device"], record["compute_capability"], record["driver"]) == ("Fake GPU 9000", "9.0", "999.1")
    assert record["torch"] == torch.__version__ and "triton" in record and "cuda_runtime" in record
    assert record["steps"][1]["details"]["summary"]["rows_by_status"] == {"triton:ok": 1, "sdpa-flash:error": 1}


def test_a_triton_row_that_did_not_run_fails_the_check(monkeypatch, tmp_path):
    junit_xml = '<testsuite tests="1" failures="0" errors="0" skipped="0"/>'
    script = f"import sys; open(sys.argv[1], 'w').write({junit_xml!r})"
    monkeypatch.setattr(gpu_check, "kernel_test_command", lambda junit, workers: [sys.executable, "-c", script,
                                                                                  str(junit)])
    _fake_cuda(monkeypatch)
    _fake_bench(monkeypatch, [{"impl": "triton", "status": "error", "n": 65536, "reason": "out of resources"}])
    assert gpu_check.main(["--out-dir", str(tmp_path)]) == 1
    record = json.loads((tmp_path / "gpu-check-fake-gpu-9000.json").read_text())
    assert "1 triton benchmark rows did not run" in record["reasons"][0]


def test_run_step_kills_the_command_at_the_budget():
    step = gpu_check.Step("sleep", [sys.executable, "-c", "import time; time.sleep(60)"])
    start = time.monotonic()
    gpu_check.run_step(step, timeout=0.5)
    assert step.timed_out and step.returncode is None and time.monotonic() - start < 10
    late = gpu_check.run_step(gpu_check.Step("late", [sys.executable, "-c", "pass"]), timeout=0)
    assert late.timed_out and late.details["not_run"] == "no time left in the budget"
    reasons = gpu_check.verdict(step, late)
    assert reasons == ["kernel tests ran past the time budget", "benchmark not run: no time left in the budget"]


@pytest.mark.parametrize("argv,message", [(["--budget-s", "0"], "--budget-s must be > 0"),
                                          (["--workers", "0"], "--workers must be >= 1")])
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        gpu_check.main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err
