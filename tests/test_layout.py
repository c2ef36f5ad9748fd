"""The package's layout (issue 22): a short top level, a docstring per subpackage, imports flowing one way.

Every import in ``longctx_lab/`` is read with :mod:`ast`, lazy ones inside functions included, and so is
every string constant that names a package module (``importlib.import_module`` registries). Each module
belongs to a *unit*: its subpackage (``lm/niah``, ``course/grading``, ``cli/bench``) or, at the top, the
package itself. Units sit in layers; a unit may import its own layer and those below, never above, and the
units' import graph has no cycle. A failure names the importing file and line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.lint

PACKAGE = Path(__file__).resolve().parents[1] / "longctx_lab"
MAX_TOP_LEVEL = 13

#: Layers, bottom first. A unit's layer is that of its longest listed prefix.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("attention", "rope", "mixers"),
    ("kernels",),
    ("kvcache",),
    ("lm", "distributed"),
    ("course",),
    ("cli",),
    ("__main__",),
)
#: The subpackages of compute code: they never import the course, grading, benchmarks or the command line.
COMPUTE = ("core", "attention", "rope", "mixers", "kernels", "kvcache", "lm", "distributed")
#: The one module compute code imports to show something; it imports nothing of the package.
DISPLAY = "longctx_lab.core.display"


@dataclass(frozen=True)
class Edge:
    source: str  # importing module, dotted
    target: str  # imported module, dotted
    file: str  # importing file, relative to the repository
    line: int


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py")) if "__pycache__" not in p.parts}


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest package module that ``name`` is or lies in (``a.b.func`` -> ``a.b``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(path: Path, source: str, modules: dict[str, Path], root: Path = PACKAGE) -> list[Edge]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    top = root.name
    edges = []
    rel = str(path.relative_to(root.parent))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = source.split(".")[: len(source.split(".")) - (node.level - (1 if is_package else 0))]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            names = [stem] + [f"{stem}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(top + "."):
            names = [node.value] if node.value.replace(".", "").replace("_", "").isalnum() else []
        for name in names:
            if name == top or name.startswith(top + "."):
                target = resolve(name, modules)
                if target and target != source:
                    edges.append(Edge(source, target, rel, node.lineno))
    return edges


def all_edges(root: Path = PACKAGE) -> list[Edge]:
    modules = package_modules(root)
    return sorted({e for name, path in modules.items() for e in imports_of(path, name, modules, root)},
                  key=lambda e: (e.file, e.line, e.target))


def unit_of(module: str, root: Path = PACKAGE) -> str:
    """``longctx_lab.lm.niah.harness`` -> ``lm/niah``; a top-level module -> its own name."""
    parts = module.split(".")[1:]
    path = root
    unit = []
    for part in parts:
        path = path / part
        if path.is_dir():
            unit.append(part)
        else:
            break
    return "/".join(unit) or (parts[0] if parts else "")


def layer_of(unit: str, layers=LAYERS) -> int | None:
    """The rank of ``unit``'s layer; the package's own ``__init__`` (``__version__``) sits at the bottom."""
    if unit == "":
        return 0
    best = None
    for rank, names in enumerate(layers):
        for name in names:
            if (unit == name or unit.startswith(name + "/")) and (best is None or len(name) > len(best[1])):
                best = (rank, name)
    return None if best is None else best[0]


def layering_violations(edges: list[Edge], units, layers=LAYERS) -> list[str]:
    out = []
    for e in edges:
        src, dst = units(e.source), units(e.target)
        ls, ld = layer_of(src, layers), layer_of(dst, layers)
        if ls is None or ld is None:
            out.append(f"{e.file}:{e.line}: {src or e.source} or {dst or e.target} belongs to no layer")
        elif ld > ls:
            out.append(f"{e.file}:{e.line}: {src} (layer {ls}) imports {e.target} ({dst}, layer {ld}): "
                       "imports must flow down the layers")
    return out


def unit_cycles(edges: list[Edge], units) -> list[str]:
    """Each cycle between units, as ``a -> b -> a`` with the files of its edges."""
    graph: dict[str, dict[str, Edge]] = {}
    for e in edges:
        a, b = units(e.source), units(e.target)
        if a != b:
            graph.setdefault(a, {}).setdefault(b, e)
    cycles, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == "open":
                ring = stack[stack.index(nxt):] + [nxt]
                files = [f"{graph[x][y].file}:{graph[x][y].line}" for x, y in zip(ring, ring[1:])]
                cycles.append(" -> ".join(ring) + "  (" + ", ".join(files) + ")")
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


# ---- the package ---------------------------------------------------------------------------------------------

def test_the_top_level_is_short():
    entries = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")
    assert len(entries) <= MAX_TOP_LEVEL, f"longctx_lab/ holds {len(entries)} entries, over {MAX_TOP_LEVEL}: {entries}"


def test_every_subpackage_says_what_goes_in_it():
    for init in sorted(PACKAGE.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc.split()) >= 8, f"{init.relative_to(PACKAGE.parent)}: no docstring saying what goes here"


def test_every_top_level_subpackage_has_a_layer():
    for path in PACKAGE.iterdir():
        if path.is_dir() and (path / "__init__.py").exists():
            assert layer_of(path.name) is not None, f"longctx_lab/{path.name}/ is in no layer of tests/test_layout.py"


def test_imports_flow_down_the_layers():
    problems = layering_violations(all_edges(), unit_of)
    assert not problems, "\n".join(problems)


def test_no_cycles_between_subpackages():
    cycles = unit_cycles(all_edges(), unit_of)
    assert not cycles, "import cycles between subpackages:\n" + "\n".join(cycles)


def test_compute_never_imports_the_course_or_the_command_line():
    bad = [f"{e.file}:{e.line}: imports {e.target}" for e in all_edges()
           if unit_of(e.source).split("/")[0] in COMPUTE
           and unit_of(e.target).split("/")[0] in ("course", "cli")]
    assert not bad, "\n".join(bad)


def test_the_display_module_imports_nothing_of_the_package():
    bad = [f"{e.file}:{e.line}: imports {e.target}" for e in all_edges() if e.source == DISPLAY]
    assert not bad, "\n".join(bad)


# ---- the checks themselves, on a made-up package --------------------------------------------------------------

def _write(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "longctx_lab"
    for name, text in files.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pkg


def test_a_lazy_upward_import_is_named_with_its_file(tmp_path):
    pkg = _write(tmp_path, {
        "__init__.py": "", "core/__init__.py": "", "core/display.py": "",
        "course/__init__.py": "", "course/quiz.py": "from longctx_lab.core import display\n",
        "kvcache/__init__.py": "", "kvcache/base.py": "def f():\n    from longctx_lab.course.quiz import x\n",
    })
    edges = all_edges(pkg)
    problems = layering_violations(edges, lambda m: unit_of(m, pkg))
    assert len(problems) == 1 and problems[0].startswith("longctx_lab/kvcache/base.py:2: kvcache")


def test_a_cycle_through_a_lazy_import_and_a_registry_string_is_found(tmp_path):
    pkg = _write(tmp_path, {
        "__init__.py": "", "kernels/__init__.py": "", "kvcache/__init__.py": "",
        "kernels/decode.py": "def f():\n    from ..kvcache import base\n",
        "kvcache/base.py": "MODULES = ('longctx_lab.kernels.decode',)\n",
    })
    cycles = unit_cycles(all_edges(pkg), lambda m: unit_of(m, pkg))
    assert cycles == ["kernels -> kvcache -> kernels  "
                      "(longctx_lab/kernels/decode.py:2, longctx_lab/kvcache/base.py:1)"]
