"""The command line outside the repository (issue 21): ``--help`` and ``--version`` import no compute code,
and ``audit`` without the grading tools says how to install them.

Each check runs in a fresh interpreter (``sys.modules`` of this one already holds torch). The speed of
``longctx-lab --help`` is a benchmark, not a test: these tests check only what gets imported.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import longctx_lab
from longctx_lab.cli import _bench_modules, main

ROOT = Path(__file__).resolve().parents[1]
#: What a learner's ``longctx-lab --help`` must not pay for.
HEAVY = ("torch", "numpy", "matplotlib", "nbformat", "transformers", "triton")

_PROBE = """
import sys
HEAVY = sys.argv.pop(1).split(",")
from longctx_lab.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    assert e.code in (0, None), e.code
print("LOADED", " ".join(m for m in HEAVY if m in sys.modules), file=sys.stderr)
"""


def _python(*args: str, **kwargs) -> subprocess.CompletedProcess:
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]  # this checkout, not an installed copy
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          **kwargs)


def _loaded(argv: list[str]) -> list[str]:
    proc = _python("-c", _PROBE, ",".join(HEAVY), *argv)
    assert proc.returncode == 0, proc.stderr
    line = [x for x in proc.stderr.splitlines() if x.startswith("LOADED")][-1]
    return line.split()[1:]


LIGHT_COMMANDS = [["--help"], ["--version"], ["env", "--help"], ["audit", "--help"], ["bench", "--help"]] + [
    ["bench", name.replace("_", "-"), "--help"] for name in sorted(_bench_modules())]


@pytest.mark.parametrize("argv", LIGHT_COMMANDS, ids=" ".join)
def test_help_imports_no_compute_package(argv):
    loaded = _loaded(argv)
    assert not loaded, f"`longctx-lab {' '.join(argv)}` imported {', '.join(loaded)} (import it inside the function " \
                       "that runs the command, not at module level or while building the parser)"


@pytest.mark.parametrize("command", ["env", "plan", "audit", "train", "ring", "niah", "bench"])
def test_every_subcommand_still_has_its_arguments(command, capsys):
    """The arguments added when a subcommand is chosen show in its --help."""
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: longctx-lab {command}")
    assert {"env": "--no-probe", "plan": "--gpu-mem", "audit": "--submitted", "train": "--seq-len", "ring": "--procs",
            "niah": "--lengths", "bench": "decode-cpu"}[command] in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])  # the console script's entry point
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"longctx-lab {longctx_lab.__version__}\n"
    proc = _python("-m", "longctx_lab", "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"longctx-lab {longctx_lab.__version__}\n"


def test_audit_without_nbformat_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['nbformat'] = None\n"  # `import nbformat` now raises ImportError
            "from longctx_lab.cli import main\n"
            f"sys.exit(main(['audit', 'ch01_quadratic_wall', '--course', {str(tmp_path)!r}]))")
    proc = _python("-c", code)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("longctx-lab audit: error:") and 'pip install "longctx-lab[grading]"' in lines[0]


def test_grading_checks_import_without_the_grading_tools():
    """Exercises call ``longctx_lab.course.grading`` (in Colab too): it needs neither nbformat nor nbgrader."""
    proc = _python("-c", "import sys; sys.modules['nbformat'] = sys.modules['nbgrader'] = None\n"
                         "from longctx_lab.course import grading\n"
                         "grading.check_close(1.0, 1.0, name='x')")
    assert proc.returncode == 0, proc.stderr
