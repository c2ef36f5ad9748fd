"""The wheel and the sdist: one version, the MIT license inside both, the metadata pip reads, tests left out.

Builds both with the setuptools in this environment (no network; setuptools >= 77 as build-system.requires
says) from a copy of the working tree, once per module.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = re.search(r'^__version__ = "([^"]+)"', (ROOT / "longctx_lab" / "__init__.py").read_text(), re.M).group(1)

_BUILD = """\
import sys
from setuptools import build_meta
out = sys.argv[1]
print(build_meta.build_sdist(out))
print(build_meta.build_wheel(out))
"""


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    import setuptools

    need = Requirement(PYPROJECT["build-system"]["requires"][0]).specifier
    if Version(setuptools.__version__) not in need:
        pytest.skip(f"setuptools {setuptools.__version__} here; the build needs {need}")
    tmp = tmp_path_factory.mktemp("build")
    tree = tmp / "src"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tree / name)
    out = tmp / "dist"
    proc = subprocess.run([sys.executable, "-c", _BUILD, str(out)], cwd=tree, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sdist,), (wheel,) = out.glob("*.tar.gz"), out.glob("*.whl")
    return sdist, wheel


def _wheel_metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(zf.read(name).decode()), zf.namelist()


def test_one_version_source():
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "longctx_lab.__version__"}
    citation = (ROOT / "CITATION.cff").read_text()
    assert re.search(rf"^version: {re.escape(VERSION)}$", citation, re.M), "CITATION.cff's version differs"
    assert f"## [{VERSION}]" in (ROOT / "CHANGELOG.md").read_text(), "CHANGELOG.md has no entry for it"


def test_citation_is_valid_cff():
    import yaml

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):  # required by CFF 1.2.0
        assert cff.get(key), key
    assert all("name" in a or "family-names" in a for a in cff["authors"])
    assert cff["license"] == PYPROJECT["project"]["license"] == "MIT"


def test_changelog_keeps_an_unreleased_section():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text and "keepachangelog.com" in text


def test_license_is_mit_with_the_projects_copyright():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 The longctx-lab authors" in text
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]


def test_wheel_metadata(dists):
    _, wheel = dists
    meta, names = _wheel_metadata(wheel)
    assert meta["Version"] == VERSION
    assert meta["License-Expression"] == "MIT"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "LICENSE is not in the wheel"
    assert SpecifierSet(meta["Requires-Python"]) == SpecifierSet(PYPROJECT["project"]["requires-python"])
    requires = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    assert {"packaging", "psutil"} <= {r.name for r in requires if r.marker is None}
    extras = set(meta.get_all("Provides-Extra"))
    assert {"dev", "gpu", "grading", "pretrained"} <= extras
    assert not any(n.startswith("tests/") for n in names)


def test_sdist_builds_the_package_and_leaves_the_tests_out(dists):
    sdist, _ = dists
    with tarfile.open(sdist) as tf:
        names = [n.split("/", 1)[1] for n in tf.getnames() if "/" in n]
    for needed in ("pyproject.toml", "LICENSE", "README.md", "CHANGELOG.md", "CITATION.cff",
                   "longctx_lab/__init__.py"):
        assert needed in names, f"{needed} is not in the sdist"
    for left_out in ("tests/", "notebooks/", "solutions/", "tools/"):
        assert not any(n.startswith(left_out) for n in names), f"{left_out} is in the sdist (MANIFEST.in prunes it)"
