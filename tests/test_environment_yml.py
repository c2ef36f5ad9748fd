"""environment.yml (Binder) must agree with pyproject.toml (ranges) and constraints.txt (exact pins)."""

import re
import sys
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines) -> dict[str, str]:  # markers (after ";") ignored
    pins = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        name, _, version = line.split(";")[0].partition("==")
        pins[canonicalize_name(name)] = version.strip()
    return pins


def _env_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return _pins(pip_section)


def _pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra
                                            if not r.startswith("longctx-lab[")]
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


# --------------------------------------------------------------------------- what the chapters import at run time

#: import name -> distribution name where they differ and importlib.metadata cannot tell (not installed here)
IMPORT_TO_DISTRIBUTION = {"IPython": "ipython", "yaml": "PyYAML", "PIL": "pillow", "sklearn": "scikit-learn"}
FIRST_PARTY = {"longctx_lab", "tools"}


def _top_level_imports(source: str) -> tuple[set[str], set[str]]:
    """(top-level module names, dotted first-party modules) imported at module level (also inside if/try)."""
    import ast

    tree = ast.parse(source)
    names, own = set(), set()
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If | ast.Try):
            todo.extend(node.body + node.orelse + getattr(node, "finalbody", [])
                        + [n for h in getattr(node, "handlers", []) for n in h.body])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names.add(alias.name.split(".")[0])
                own.add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
            own.update([node.module] + [f"{node.module}.{alias.name}" for alias in node.names])
    return names, {m for m in own if m.split(".")[0] == "longctx_lab"}


def _notebook_sources() -> list[str]:
    """The code cells of every chapter's MyST text source, magics and cell options left out."""
    cells = []
    for md in sorted((ROOT / "notebooks").glob("*.md")):
        for block in re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```", md.read_text(), re.M | re.S):
            lines = [line for line in block.splitlines() if not re.match(r"\s*[%!]|:\w[\w-]*:|---$", line)]
            cells.append("\n".join(lines))
    return cells


def _module_file(dotted: str) -> Path | None:
    path = ROOT.joinpath(*dotted.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def runtime_imports() -> set[str]:
    """Third-party top-level imports of the chapters and of every package module they load (followed)."""
    third, todo, seen = set(), [], set()
    for cell in _notebook_sources():
        names, own = _top_level_imports(cell)
        third |= names
        todo.extend(own)
    while todo:
        dotted = todo.pop()
        parts = dotted.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__, a/b/c
            module = ".".join(parts[:i])
            if module in seen:
                continue
            seen.add(module)
            path = _module_file(module)
            if path is not None:
                names, own = _top_level_imports(path.read_text())
                third |= names
                todo.extend(own)
    stdlib = set(sys.stdlib_module_names)
    return {name for name in third if name not in stdlib and name not in FIRST_PARTY}


def _distribution(import_name: str) -> str:
    from importlib.metadata import packages_distributions

    if import_name in IMPORT_TO_DISTRIBUTION:
        return IMPORT_TO_DISTRIBUTION[import_name]
    dists = packages_distributions().get(import_name)
    return dists[0] if dists else import_name


def test_runtime_imports_are_found():
    found = runtime_imports()
    assert {"torch", "numpy", "matplotlib"} <= found, found


def test_binder_pins_every_package_a_chapter_imports():
    pinned = set(_env_pins())
    missing = {name: _distribution(name) for name in runtime_imports()
               if canonicalize_name(_distribution(name)) not in pinned}
    assert not missing, f"environment.yml pins no version of {missing} (import name: distribution)"
