"""environment.yml (Binder) must agree with pyproject.toml (ranges) and constraints.txt (exact pins)."""

import re
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        name, _, version = line.partition("==")
        pins[canonicalize_name(name)] = version.strip()
    return pins


def _env_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return _pins(pip_section)


def _pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + list(project["optional-dependencies"]["dev"])
    return {canonicalize_name(Requirement(r).name): Requirement(r) for r in reqs}


def test_binder_installs_every_runtime_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    missing = runtime - set(_env_pins())
    assert not missing, f"environment.yml lacks runtime dependencies {sorted(missing)}"


def test_binder_versions_equal_constraints_and_fit_pyproject_ranges():
    constraints = _pins((ROOT / "constraints.txt").read_text().splitlines())
    requirements = _pyproject_requirements()
    for name, version in _env_pins().items():
        pinned = constraints.get(name)
        assert pinned == version, f"{name}: environment.yml has {version}, constraints.txt {pinned}"
        if name in requirements:
            spec = requirements[name].specifier
            assert Version(version) in spec or Version(re.sub(r"\+.*", "", version)) in spec, (
                f"{name}=={version} is outside pyproject's range {spec}")


def test_python_version_agrees():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    from packaging.specifiers import SpecifierSet

    assert Version(python.split("=")[1]) in SpecifierSet(requires)
