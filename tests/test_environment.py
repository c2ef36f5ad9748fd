"""The learner's environment check: packages outside the declared ranges are named, with a fix."""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from longctx_lab.cli import main
from longctx_lab.core import environment

BIN = Path(sys.executable).parent


def _fake_versions(monkeypatch, overrides: dict[str, str | None]) -> None:
    real = environment.installed_version

    def fake(name: str) -> str | None:
        return overrides[name] if name in overrides else real(name)

    monkeypatch.setattr(environment, "installed_version", fake)


def test_ranges_come_from_the_installed_metadata():
    pairs = environment.declared_requirements()
    runtime = {req.name: req for req, extra in pairs if extra is None}
    assert "torch" in runtime and "numpy" in runtime
    # torch's declared range as the installed metadata has it
    declared = next(Requirement(r) for r in md.requires("longctx-lab") if r.startswith("torch"))
    assert environment.specifier_text(runtime["torch"].specifier) == environment.specifier_text(declared.specifier)
    extras = {extra for _, extra in pairs if extra is not None}
    assert {"dev", "gpu"} <= extras
    assert ("triton", "gpu") in {(req.name, extra) for req, extra in pairs}


def test_this_environment_has_no_problems():
    assert environment.version_problems() == []


def test_specifier_text_puts_the_lower_bound_first():
    req = Requirement("torch<2.16,>=2.4")
    assert environment.specifier_text(req.specifier) == ">=2.4,<2.16"


def test_out_of_range_runtime_package_is_named_with_a_fix(monkeypatch):
    _fake_versions(monkeypatch, {"torch": "2.1.0+cu118"})
    problems = environment.version_problems()
    assert [p.package for p in problems] == ["torch"]
    (p,) = problems
    assert p.installed == "2.1.0+cu118" and p.extra is None
    assert "pip install 'torch>=2.4,<2.16'" in p.fix and "make setup" in p.fix
    text = environment.format_problems(problems)
    assert "torch 2.1.0+cu118 is outside the range" in text and "fix: pip install 'torch>=2.4,<2.16'" in text


def test_too_new_dev_package_is_named_and_missing_dev_package_is_not(monkeypatch):
    _fake_versions(monkeypatch, {"pytest": "10.0.0", "ruff": None})
    problems = {p.package: p for p in environment.version_problems()}
    assert set(problems) == {"pytest"}
    assert problems["pytest"].extra == "dev" and problems["pytest"].required == ">=8,<10"


def test_missing_runtime_package_is_named(monkeypatch):
    _fake_versions(monkeypatch, {"numpy": None})
    (p,) = environment.version_problems()
    assert p.package == "numpy" and p.installed is None
    assert "numpy is not installed" in p.describe()


def test_local_version_label_inside_the_range_is_accepted(monkeypatch):
    _fake_versions(monkeypatch, {"torch": "2.5.1+cu121", "triton": "3.1.0"})
    assert environment.version_problems() == []


def test_report_and_env_command_show_the_problem(monkeypatch, capsys):
    _fake_versions(monkeypatch, {"numpy": "3.0.0"})
    info = environment.report(probe_interpreter=False)
    assert info["version_problems"][0]["package"] == "numpy"
    json.dumps(info)  # the --json output stays serialisable
    assert main(["env", "--no-probe"]) == 0
    out = capsys.readouterr().out
    assert "numpy 3.0.0 is outside the range longctx-lab declares: numpy>=1.26,<3" in out
    assert "fix: pip install 'numpy>=1.26,<3'" in out


def test_env_command_says_all_in_range_here():
    out = subprocess.run([str(BIN / "longctx-lab"), "env", "--no-probe"], capture_output=True, text=True,
                         check=True).stdout
    assert "every installed package is inside the ranges longctx-lab declares" in out


def test_describe_runtime_says_what_runs_where(monkeypatch, capsys):
    _fake_versions(monkeypatch, {"matplotlib": "3.7.0"})
    text = environment.runtime_description()
    assert environment.describe_runtime() is None
    assert capsys.readouterr().out.strip() == text.strip()
    assert "GPU" in text and "Attention" in text
    assert ("Triton kernels" in text) or ("PyTorch tiled path" in text)
    assert "matplotlib 3.7.0 is outside the range" in text


DEV_TOOLS = {"ipykernel": "6.17.1", "transformers": "4.44.0", "nbgrader": "0.8.0", "pytest": "7.0.0",
             "jupyterlab": "3.6.0"}


def test_chapters_check_only_what_they_run(monkeypatch):
    """Colab's ipykernel and transformers lie outside the dev ranges: a chapter must not tell a learner to
    reinstall them (upgrading ipykernel can break the runtime); ``longctx-lab env`` still names them."""
    _fake_versions(monkeypatch, {**DEV_TOOLS, "torch": "2.1.0", "triton": "3.0.0"})
    text = " ".join(environment.runtime_description().split())  # folded at 88 columns: compare the words
    for name in DEV_TOOLS:
        assert name not in text, f"the chapters' runtime check names the dev tool {name}:\n{text}"
    assert "torch 2.1.0 is outside the range" in text
    assert "triton 3.0.0 is outside the range" in text and "(extra 'gpu')" in text
    runtime = {p.package for p in environment.version_problems(runtime_only=True)}
    assert runtime == {"torch", "triton"}
    everything = {p.package for p in environment.version_problems()}
    assert everything >= {"torch", "triton", *DEV_TOOLS}
    info = environment.report(probe_interpreter=False)
    assert {p["package"] for p in info["version_problems"]} == everything


def test_runtime_extras_are_declared_and_dev_is_not_one():
    declared = md.metadata(environment.DISTRIBUTION).get_all("Provides-Extra")
    assert environment.RUNTIME_EXTRAS <= set(declared)
    assert "dev" not in environment.RUNTIME_EXTRAS and "grading" not in environment.RUNTIME_EXTRAS
    runtime = {req.name for req, extra in environment.declared_requirements()
               if extra is None or extra in environment.RUNTIME_EXTRAS}
    assert not runtime & {"ipykernel", "transformers", "nbgrader", "nbformat", "pytest"}


def test_runtime_description_is_quiet_when_the_chapters_packages_are_in_range(monkeypatch):
    _fake_versions(monkeypatch, DEV_TOOLS)
    assert "every package the chapters use is inside the ranges" in environment.runtime_description()


def test_unknown_distribution_declares_nothing():
    assert environment.version_problems("no-such-distribution-longctx") == []


@pytest.mark.parametrize("bad", [None, "", 3])
def test_bad_arguments_raise_type_error_naming_them(bad):
    with pytest.raises(TypeError, match="distribution"):
        environment.declared_requirements(bad)
    with pytest.raises(TypeError, match="name"):
        environment.installed_version(bad)


def test_format_problems_rejects_non_lists():
    with pytest.raises(TypeError, match="problems"):
        environment.format_problems("torch")
    with pytest.raises(TypeError, match="info"):
        environment.format_report([])


def test_runtime_only_must_be_a_bool():
    with pytest.raises(TypeError, match="runtime_only"):
        environment.version_problems(runtime_only="yes")


def test_the_runtime_description_fits_a_page(monkeypatch):
    """Every chapter prints it in cell 1: no line may scroll sideways in the book (88 columns)."""
    from longctx_lab.core import environment

    long = [line for line in environment.runtime_description().splitlines() if len(line) > 88]
    assert not long, long
    assert environment._wrap("Attention   " + "word " * 40).splitlines()[1].startswith(" " * 12 + "word")
