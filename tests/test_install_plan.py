"""The install plan: what `make setup` and `pip install -e ".[dev]"` install, checked without installing.

The ``packaging``-marked tests resolve the plan from PyPI alone (no pip configuration, no find-links) for
every supported platform x Python, in threads (network bound), once per session, with pip's cache; the
failure names the package that did not resolve. They need PyPI: under CI=true an unreachable PyPI fails
them, elsewhere it skips them. The unmarked tests check the pieces (constraints rewriting, torch's source,
the Python check) offline.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import install_plan  # noqa: E402
import install_torch  # noqa: E402

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONSTRAINTS = (ROOT / "constraints.txt").read_text()
COLAB = ROOT / "tests" / "data" / "colab-packages.txt"
#: Colab's packages the course's install cell must leave as they are
COLAB_KEPT = ("torch", "triton", "ipywidgets", "numpy", "ipykernel", "transformers")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------- offline


def test_requires_python_is_the_tested_range():
    spec = SpecifierSet(PYPROJECT["project"]["requires-python"])
    tested = [f"3.{minor}" for minor in range(6, 20) if f"3.{minor}" in spec]
    assert tuple(tested) == install_plan.PYTHONS, (
        f"requires-python admits {tested} but tools/install_plan.py resolves for {install_plan.PYTHONS}")


def test_ruff_target_is_the_oldest_supported_python():
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py" + install_plan.PYTHONS[0].replace(".", "")


def _constraint_names(text: str) -> dict[str, Requirement]:
    reqs = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith(("#", "-")):
            req = Requirement(line)
            reqs.setdefault(canonicalize_name(req.name), req)
    return reqs


def test_constraints_lines_parse_and_triton_is_linux_only():
    reqs = _constraint_names(CONSTRAINTS)
    triton = reqs["triton"]
    for system, machine, expected in [("Linux", "x86_64", True), ("Linux", "aarch64", True),
                                      ("Darwin", "arm64", False), ("Windows", "AMD64", False)]:
        env = {"platform_system": system, "platform_machine": machine, "python_version": "3.11"}
        assert triton.marker is not None and triton.marker.evaluate(env) is expected, (system, machine)


def test_triton_is_required_only_where_it_publishes_wheels():
    project = PYPROJECT["project"]
    lines = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    tritons = [Requirement(r) for r in lines if Requirement(r).name == "triton"]
    assert tritons, "no extra declares triton"
    for req in tritons:
        assert req.marker is not None, f"{req} has no platform marker"
        for system, machine, expected in [("Linux", "x86_64", True), ("Linux", "aarch64", True),
                                          ("Linux", "ppc64le", False), ("Darwin", "arm64", False),
                                          ("Windows", "AMD64", False)]:
            env = {"platform_system": system, "platform_machine": machine}
            assert req.marker.evaluate(env) is expected, (str(req), system, machine)


def test_locked_constraints_per_torch_source():
    pypi = _constraint_names(install_plan.locked_constraints(CONSTRAINTS, "pypi"))
    cpu = _constraint_names(install_plan.locked_constraints(CONSTRAINTS, "cpu"))
    keep = _constraint_names(install_plan.locked_constraints(CONSTRAINTS, "keep"))
    pinned = _constraint_names(CONSTRAINTS)["torch"]
    assert "+" in str(pinned.specifier), "constraints.txt is expected to pin the CPU build (a +cpu local label)"
    assert str(cpu["torch"].specifier) == str(pinned.specifier) and "triton" in cpu
    assert "+" not in str(pypi["torch"].specifier) and "triton" not in pypi
    assert "torch" not in keep and "triton" not in keep
    # everything else untouched
    assert set(keep) | {"torch", "triton"} == set(cpu) == set(pypi) | {"triton"}


@pytest.mark.parametrize("present,system,gpu,expected", [
    (True, "Linux", False, "keep"), (True, "Darwin", False, "keep"), (False, "Linux", False, "cpu"),
    (False, "Linux", True, "pypi"), (False, "Darwin", False, "pypi")])
def test_torch_source(present, system, gpu, expected):
    assert install_torch.choose(present, system, gpu) == expected


def test_torch_pin_is_read_from_constraints():
    assert install_torch.pinned_torch(CONSTRAINTS) == str(_constraint_names(CONSTRAINTS)["torch"].specifier)[2:]


def test_cpu_probe_is_bounded_on_an_unreachable_host():
    import time

    start = time.monotonic()
    why = install_torch.reachable("http://192.0.2.1/", timeout=1.0)  # TEST-NET-1: never answers
    assert why is not None and time.monotonic() - start < 5


def test_check_python_accepts_this_python():
    assert _load("check_python").problem() is None


@pytest.mark.parametrize("version,word", [((3, 9, 18), "too old"), ((3, 15, 0), "too new")])
def test_check_python_names_an_unsupported_python(monkeypatch, version, word):
    check = _load("check_python")
    monkeypatch.setattr(sys, "version_info", version)
    message = check.problem()
    assert word in message and "Python 3.11 to 3.14" in message and "\n" not in message


def test_check_python_sends_python_3_10_to_the_package_alone(monkeypatch):
    check = _load("check_python")
    monkeypatch.setattr(sys, "version_info", (3, 10, 13))
    message = check.problem()
    assert "too old for make" in message and "pip install -e ." in message


def test_make_needs_the_pythons_the_dev_plan_is_resolved_for():
    check = _load("check_python")
    assert "{}.{}".format(*check.MAKE_MIN) == install_plan.DEV_PYTHONS[0]


def test_check_python_names_a_missing_venv(monkeypatch):
    check = _load("check_python")
    monkeypatch.setitem(sys.modules, "ensurepip", None)  # as on Debian without python3.X-venv
    message = check.problem()
    assert "ensurepip" in message and f"apt-get install python3.{sys.version_info[1]}-venv" in message
    assert check.problem(check_venv=False) is None


def test_check_python_runs_on_an_old_python():
    """It must be able to say "too old", so it must run there: any Python 3.8 or 3.9 found on PATH."""
    import glob
    import shutil

    pyenv = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.[89].*/bin/python3")))
    for old in ["python3.9", "python3.8", *pyenv]:
        if not shutil.which(old) or subprocess.run([old, "-c", "pass"], capture_output=True).returncode:
            continue
        proc = subprocess.run([old, "tools/check_python.py"], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 1 and "too old" in proc.stdout and proc.stderr == "", proc
        return
    pytest.skip("no Python 3.8 or 3.9 runs here")


# ------------------------------------------------------------------------------------------ resolution

#: On the Pythons the dev tools support: `make setup` on GPU-less Linux (cpu plan: torch comes from the CPU
#: index), on macOS (locked plan, PyPI's torch), `pip install -e ".[dev]"` on Windows (dev plan). On the older
#: ones, the package alone (runtime plan), Linux left out for the same reason as PyPI's Linux torch below.
#: PyPI's Linux torch (locked plan on Linux: a GPU machine) is left out: without PEP 658 metadata on the index
#: (this network's proxy) pip reads the metadata of several GB of CUDA wheels per combination, and concurrent
#: runs stall; `python tools/install_plan.py --plan locked --platform linux-x86_64` checks it by hand.
COMBOS = [(plan, platform, python) for platform in install_plan.PLATFORMS for python in install_plan.PYTHONS
          for plan in [("runtime" if python not in install_plan.DEV_PYTHONS else "cpu" if platform.startswith("linux")
                        else "dev" if platform == "windows-amd64" else "locked")]
          if not (plan == "runtime" and platform.startswith("linux"))]


@pytest.fixture(scope="session")
def pypi():
    why = install_plan.pypi_reachable()
    if why is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true and {why}: the install plan cannot be checked")
        pytest.skip(why)


@pytest.fixture(scope="session")
def resolutions(pypi):
    """Every combination resolved once, all at once: each resolution waits mostly on PyPI (pip revalidates
    every index page it reads, one request after another), little on the CPU; pip's cache is shared."""
    with ThreadPoolExecutor(4) as pool:  # beside the other stages of `make test` (tools/stages.py)
        futures = {combo: pool.submit(install_plan.resolve, combo[1], combo[2], *install_plan.plan(combo[0]))
                   for combo in COMBOS}
        return {combo: future.result() for combo, future in futures.items()}


def _explain(result: dict) -> str:
    tail = "\n".join(result["error"].splitlines()[-12:])
    return f"does not resolve from PyPI alone: {result['unresolved'] or '(see pip output)'}\n{tail}"


@pytest.mark.packaging
@pytest.mark.parametrize("plan,platform,python", COMBOS, ids=["-".join(c) for c in COMBOS])
def test_install_plan_resolves_from_pypi(resolutions, plan, platform, python):
    result = resolutions[(plan, platform, python)]
    assert result["ok"], f"{plan} plan on {platform}, Python {python} " + _explain(result)
    install = result["install"]
    assert "longctx-lab" not in install and ("torch" in install) is (plan != "cpu")
    linux = platform.startswith("linux")  # [dev] asks for triton there
    assert ("triton" in install) is linux, f"triton {'missing' if linux else 'installed'} on {platform}"
    if plan == "cpu":  # the pinned triton beside the CPU build
        assert install["triton"] == str(_constraint_names(CONSTRAINTS)["triton"].specifier)[2:]
    if plan == "locked":
        # the lock's torch (its public version) wherever the lock applies
        assert install["torch"] == install_torch.pinned_torch(CONSTRAINTS).split("+")[0]


def _colab_snapshot() -> tuple[str, dict[str, str]]:
    text = COLAB.read_text()
    python = re.search(r"^# python (\d+\.\d+)", text, re.M).group(1)
    return python, {canonicalize_name(r.name): str(r.specifier)[2:] for r in _constraint_names(text).values()}


def test_colab_snapshot_lists_what_the_cell_must_keep():
    python, pins = _colab_snapshot()
    assert python == "3.13"
    assert {"torch": "2.11.0", "triton": "3.6.0", "ipywidgets": "7.7.1"}.items() <= pins.items()
    assert set(COLAB_KEPT) <= set(pins)


@pytest.mark.packaging
def test_colab_install_keeps_colabs_torch_triton_and_widgets(pypi):
    """The install cell (runtime dependencies only) against Colab's packages as constraints: it resolves, so
    pip on Colab finds every installed version inside the ranges and replaces none of them."""
    python, pins = _colab_snapshot()
    # the runtime dependencies plus the [gpu] extra's triton range (Colab's triton must be inside it too) and the
    # [pretrained] extra the cell installs (Colab's transformers must be inside its range)
    gpu = install_plan._requirement_lines("gpu")
    requirements = gpu + [r for r in install_plan._requirement_lines("pretrained") if r not in gpu]
    result = install_plan.resolve("linux-x86_64", python, requirements, COLAB.read_text())
    assert result["ok"], "the Colab install would replace one of Colab's packages: " + _explain(result)
    changed = {name: (pins[name], result["install"].get(name)) for name in COLAB_KEPT
               if result["install"].get(name) not in (None, pins[name])}
    assert not changed, f"the install cell would change {changed} on Colab"
