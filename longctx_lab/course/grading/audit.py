"""Submission audit: flag answers that tamper with the grader, and graded cells that were damaged.

nbgrader is not a sandbox: an answer cell runs in the same kernel as the tests that grade it. After
``nbgrader collect``, an instructor runs ``longctx-lab audit <assignment>`` in the course directory.
For every student under ``submitted/`` and every cell of the assignment's notebooks it compares the
submission with the release (``exercises/``, or the source in ``solutions/`` with its hidden tests
stripped) by ``grade_id`` and reports, per student and task:

code flags (answer cells and any cell the student added)
  ``package``   imports, names or calls the course package ``longctx_lab`` (the reference implementations)
  ``grading``   touches the grading helpers (``grading``, ``longctx_lab.course.grading``)
  ``ipython``   ``get_ipython``, input/AST transformers, kernel events, magics or shell commands
  ``patch``     assigns attributes of ``math``/``torch``/``numpy``/``sys``/``os``/``builtins``..., rebinds a
                builtin or a name a locked cell defines, or uses ``setattr``/``exec``/``eval``/``ctypes``
  ``tracing``   ``sys.settrace``/``setprofile``/``monitoring`` (the grader records package calls with these)
  ``signal``    the ``signal`` module (time limits and interrupts)
  ``exit``      ``os._exit``, ``sys.exit``, ``exit``/``quit``, ``os.kill``/``abort``
structure flags
  ``missing``, ``duplicated``  a graded cell of the release is absent, or present more than once
  ``edited``    a locked cell's source differs from the release
  ``metadata``  a cell's nbgrader metadata (grade, solution, locked, points) differs from the release
  ``stripped``  a cell holds a graded cell's source without its nbgrader metadata
  ``unknown``   a cell carries a ``grade_id`` the release does not have

The result is a list of :class:`Flag`; :func:`format_table` prints it, :func:`write_csv` writes it.
A flag is a reason to look at the submission, not a verdict.
"""

from __future__ import annotations

import ast
import builtins
import csv
import re
from dataclasses import astuple, dataclass, fields
from pathlib import Path

CODE_FLAGS = ("package", "grading", "ipython", "patch", "tracing", "signal", "exit")
STRUCTURE_FLAGS = ("missing", "duplicated", "edited", "metadata", "stripped", "unknown")
_PATCHABLE = {"math", "cmath", "torch", "numpy", "builtins", "sys", "os", "operator", "functools", "random",
              "IPython", "ipykernel", "nbgrader", "nbclient", "triton", "longctx_lab", "importlib", "threading"}
_DANGER_IMPORTS = {"ctypes": "patch", "posix": "exit", "signal": "signal", "IPython": "ipython",
                   "ipykernel": "ipython", "nbgrader": "grading", "nbclient": "ipython", "jupyter_client": "ipython",
                   "gc": "patch", "inspect": "patch"}
_IPYTHON_ATTRS = {"input_transformers_cleanup", "input_transformers_post", "input_transformer_manager",
                  "ast_transformers", "events", "run_cell", "run_line_magic", "run_cell_magic", "register_magics",
                  "user_ns", "user_global_ns", "set_custom_exc"}
_CALL_FLAGS = {("os", "_exit"): "exit", ("os", "kill"): "exit", ("os", "killpg"): "exit", ("os", "abort"): "exit",
               ("sys", "exit"): "exit", ("sys", "settrace"): "tracing", ("sys", "setprofile"): "tracing",
               ("sys", "monitoring"): "tracing", ("threading", "settrace"): "tracing",
               ("threading", "setprofile"): "tracing", ("sys", "modules"): "patch", ("sys", "_getframe"): "patch",
               ("os", "fork"): "exit", ("os", "environ"): "patch"}
_DYNAMIC = {"setattr": "patch", "delattr": "patch", "exec": "patch", "eval": "patch", "compile": "patch",
            "__import__": "package", "globals": "patch", "vars": "patch", "exit": "exit", "quit": "exit",
            "get_ipython": "ipython"}
_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[ \t]*\n?", re.S | re.M)


@dataclass(frozen=True)
class Flag:
    """One finding: ``student``'s ``notebook``, the ``task`` and ``cell`` (grade_id) it concerns, the ``flag``
    (one of ``CODE_FLAGS`` + ``STRUCTURE_FLAGS``) and a ``detail`` for the instructor."""

    student: str
    notebook: str
    task: str
    cell: str
    flag: str
    detail: str


# ---- code ------------------------------------------------------------------------------------------------

def code_flags(source: str, protected: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """``[(flag, detail)]`` for one cell's code. ``protected``: names that locked cells define (rebinding
    them at the top level is flagged)."""
    if not isinstance(source, str):
        raise TypeError(f"source must be a str, got {type(source).__name__}")
    found: list[tuple[str, str]] = []
    lines = source.splitlines()
    if any(line.lstrip().startswith(("%", "!")) for line in lines) or "get_ipython" in source:
        if any(line.lstrip().startswith(("%", "!")) for line in lines):
            found.append(("ipython", "IPython magic or shell command"))
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        python = TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - fall back to the raw text
        python = source
    try:
        tree = ast.parse(python)
    except SyntaxError as exc:
        found.append(("patch", f"does not parse as Python ({exc.msg}, line {exc.lineno}): checked as text"))
        for word, flag in (("longctx_lab", "package"), ("grading", "grading"), ("get_ipython", "ipython"),
                           ("signal", "signal"), ("_exit", "exit"), ("sys.exit", "exit"), ("settrace", "tracing"),
                           ("setprofile", "tracing")):
            if word in source:
                found.append((flag, f"mentions {word}"))
        return _unique(found)
    _Visitor(found, protected).visit(tree)
    return _unique(found)


def _unique(items):
    return list(dict.fromkeys(items))


class _Visitor(ast.NodeVisitor):
    def __init__(self, found: list, protected: frozenset[str]):
        self.found = found
        self.protected = protected
        self.aliases: dict[str, str] = {}  # bound name -> module it stands for
        self.depth = 0  # 0: top level of the cell

    def flag(self, flag: str, detail: str) -> None:
        self.found.append((flag, detail))

    # imports
    def visit_Import(self, node):
        for alias in node.names:
            root = alias.name.split(".")[0]
            bound = alias.asname or root
            self.aliases[bound] = alias.name if alias.asname else root
            self._check_module(alias.name)
            if alias.asname and self.depth == 0 and alias.asname != alias.name.split(".")[-1]:
                self._check_rebind(alias.asname)

    def visit_ImportFrom(self, node):
        module = node.module or ""
        self._check_module(module, [a.name for a in node.names])
        for alias in node.names:
            bound = alias.asname or alias.name
            self.aliases[bound] = f"{module}.{alias.name}"
            if self.depth == 0:
                self._check_rebind(bound)

    def _check_module(self, module: str, names=()):
        root = module.split(".")[0]
        if root == "longctx_lab":
            what = ", ".join(names) if names else module
            if module == "longctx_lab.course.grading" or list(names) == ["grading"]:
                self.flag("grading", f"imports the grading helpers ({module} {what})")
            else:
                self.flag("package", f"imports {module} ({what})")
        elif root in _DANGER_IMPORTS:
            self.flag(_DANGER_IMPORTS[root], f"imports {module}")

    # names and attributes
    def _resolve(self, node) -> list[str] | None:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "get_ipython":
            return ["get_ipython", *reversed(parts)]
        if not isinstance(node, ast.Name):
            return None
        base = self.aliases.get(node.id, node.id).split(".")
        return [*base, *reversed(parts)]

    def visit_Name(self, node):
        if node.id == "grading" or self.aliases.get(node.id, "").startswith("longctx_lab.course.grading"):
            if isinstance(node.ctx, ast.Load):
                self.flag("grading", "uses the grading helpers")
        elif self.aliases.get(node.id, "").startswith("longctx_lab"):
            self.flag("package", f"uses {self.aliases[node.id]}")
        if node.id == "get_ipython":
            self.flag("ipython", "calls get_ipython()")
        if node.id in ("__builtins__", "__builtin__"):
            self.flag("patch", f"uses {node.id}")
        if isinstance(node.ctx, (ast.Store, ast.Del)) and self.depth == 0:
            self._check_rebind(node.id)

    def visit_Attribute(self, node):
        chain = self._resolve(node)
        if chain:
            root = chain[0]
            if isinstance(node.ctx, (ast.Store, ast.Del)) and root in _PATCHABLE | {"get_ipython"}:
                self.flag("patch" if root != "get_ipython" else "ipython", f"assigns {'.'.join(chain)}")
            if root == "longctx_lab" and chain[:2] != ["longctx_lab", "grading"]:
                self.flag("package", f"uses {'.'.join(chain)}")
            if set(chain[1:]) & _IPYTHON_ATTRS and (root in ("get_ipython", "IPython") or "shell" in chain):
                self.flag("ipython", f"uses {'.'.join(chain)}")
            for i in range(len(chain) - 1):
                key = (chain[i], chain[i + 1])
                if key in _CALL_FLAGS and (i == 0 or chain[0] in ("os", "sys", "threading")):
                    self.flag(_CALL_FLAGS[key], f"uses {'.'.join(chain[: i + 2])}")
            if root == "signal":
                self.flag("signal", f"uses {'.'.join(chain)}")
            if chain[-1] in ("input_transformers_cleanup", "input_transformers_post", "ast_transformers"):
                self.flag("ipython", f"uses {'.'.join(chain)}")
        self.generic_visit(node)

    def visit_Call(self, node):
        if isinstance(node.func, ast.Name) and node.func.id in _DYNAMIC and node.func.id not in self.aliases:
            flag = _DYNAMIC[node.func.id]
            self.flag(flag, f"calls {node.func.id}()")
            if node.func.id in ("setattr", "delattr") and node.args:
                target = self._resolve(node.args[0])
                if target and target[0] in _PATCHABLE:
                    self.flag("patch", f"{node.func.id} on {'.'.join(target)}")
        self.generic_visit(node)

    def visit_Constant(self, node):
        if isinstance(node.value, str):
            for word, flag in (("longctx_lab", "package"), ("get_ipython", "ipython"),
                               ("BEGIN HIDDEN TESTS", "grading")):
                if word in node.value:
                    self.flag(flag, f"a string mentions {word}")

    # scopes
    def _nested(self, node):
        if self.depth == 0:
            self._check_rebind(node.name)
        for decorator in getattr(node, "decorator_list", []):
            self.visit(decorator)
        self.depth += 1
        for child in node.body:
            self.visit(child)
        self.depth -= 1
        for default in getattr(getattr(node, "args", None), "defaults", []) or []:
            self.visit(default)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _nested

    def visit_Lambda(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    def _check_rebind(self, name: str):
        if name in self.protected:
            self.flag("patch", f"rebinds {name}, which a locked cell defines")
        elif name in _BUILTIN_NAMES:
            self.flag("patch", f"rebinds the builtin {name}")


_BUILTIN_NAMES = frozenset(n for n in dir(builtins) if not n.startswith("_")) - {"copyright", "credits", "license"}


def defined_names(source: str) -> set[str]:
    """Names bound at the top level of ``source`` (functions, classes, assignments, imports)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


# ---- structure -------------------------------------------------------------------------------------------

def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _norm(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _task(grade_id: str) -> str:
    match = re.match(r"(task\d+)", grade_id)
    return match.group(1) if match else grade_id


def release_cells(source_nb) -> list:
    """The cells of the release made from ``source_nb``: hidden tests stripped (solutions are not compared)."""
    import nbformat  # an instructor's tool: `longctx-lab --help` must not need it (installed wheel, no nbgrader)

    cells = []
    for cell in source_nb.cells:
        cell = nbformat.from_dict(dict(cell))
        if _meta(cell).get("grade") and cell.cell_type == "code":
            cell.source = _HIDDEN.sub("", cell.source)
        cells.append(cell)
    return cells


def audit_notebook(submitted, release: list, *, student: str, notebook: str) -> list[Flag]:
    """Flags for one submitted notebook against the ``release`` cells (:func:`release_cells`)."""
    flags: list[Flag] = []
    by_id = {_meta(c)["grade_id"]: c for c in release if _meta(c).get("grade_id")}
    order = [gid for gid in by_id]
    locked_ids = {gid for gid, c in by_id.items() if not _meta(c).get("solution")}
    protected = frozenset(name for gid in locked_ids if by_id[gid].cell_type == "code"
                          for name in defined_names(by_id[gid].source))
    seen: dict[str, int] = {}

    def add(task, cell_id, flag, detail):
        flags.append(Flag(student, notebook, task, cell_id, flag, detail))

    previous = order[0] if order else ""
    for cell in submitted.cells:
        meta = _meta(cell)
        gid = meta.get("grade_id")
        if gid:
            seen[gid] = seen.get(gid, 0) + 1
            if gid not in by_id:
                add(_task(gid), gid, "unknown", "a cell with a grade_id the release does not have")
            else:
                ref = by_id[gid]
                if seen[gid] == 2:
                    add(_task(gid), gid, "duplicated", "this graded cell appears more than once")
                for key in ("grade", "solution", "locked", "points"):
                    if bool(meta.get(key)) != bool(_meta(ref).get(key)) or (
                            key == "points" and meta.get(key) != _meta(ref).get(key)):
                        add(_task(gid), gid, "metadata", f"nbgrader '{key}' is {meta.get(key)!r}, release has "
                                                         f"{_meta(ref).get(key)!r}")
                if cell.cell_type != ref.cell_type:
                    add(_task(gid), gid, "metadata", f"cell type {cell.cell_type}, release has {ref.cell_type}")
                elif gid in locked_ids and _norm(cell.source) != _norm(ref.source):
                    add(_task(gid), gid, "edited", "the source of this locked cell differs from the release")
            previous = gid
            is_answer = bool(meta.get("solution")) or gid not in locked_ids or gid not in by_id
        else:
            stripped = [g for g, ref in by_id.items() if ref.cell_type == cell.cell_type and _norm(ref.source)
                        and _norm(ref.source) == _norm(cell.source)]
            for g in stripped:
                add(_task(g), g, "stripped", "this cell holds the graded cell's source without its nbgrader metadata")
            is_answer = not stripped
        if cell.cell_type == "code" and is_answer:
            label = gid or f"cell added after {previous}"
            ref = by_id.get(gid) if gid else None
            if ref is not None and gid in locked_ids and _norm(cell.source) == _norm(ref.source):
                continue
            for flag, detail in code_flags(cell.source, protected - defined_names(_own_answer(gid, by_id))):
                add(_task(gid or previous), label, flag, detail)
    for gid in order:
        if gid not in seen:
            stripped = any(f.flag == "stripped" and f.cell == gid for f in flags)
            if not stripped:
                add(_task(gid), gid, "missing", "this graded cell of the release is not in the submission")
    return flags


def _own_answer(gid, by_id) -> str:
    cell = by_id.get(gid)
    return cell.source if cell is not None and _meta(cell).get("solution") else ""


def audit_assignment(course: Path, assignment: str, *, submitted_dir: str = "submitted",
                     source_dir: str = "solutions") -> list[Flag]:
    """Flags for every student's submission of ``assignment`` under ``course/submitted_dir``."""
    course = Path(course)
    source = course / source_dir / assignment
    if not isinstance(assignment, str) or not assignment or not source.is_dir():
        raise ValueError(f"assignment must name a folder of {course / source_dir}, got {assignment!r}")
    sources = sorted(source.glob("*.ipynb"))
    if not sources:
        raise ValueError(f"assignment {assignment!r} has no notebook in {source}")
    base = course / submitted_dir
    if not base.is_dir():
        raise ValueError(f"submitted_dir {base} does not exist: run `nbgrader collect {assignment}` first")
    import nbformat

    flags: list[Flag] = []
    for student_dir in sorted(p for p in base.iterdir() if (p / assignment).is_dir()):
        for path in sources:
            release = release_cells(nbformat.read(path, as_version=4))
            target = student_dir / assignment / path.name
            if not target.is_file():
                flags.append(Flag(student_dir.name, path.stem, "-", "-", "missing", "notebook not submitted"))
                continue
            try:
                nb = nbformat.read(target, as_version=4)
            except Exception as exc:  # noqa: BLE001 - a broken file is a finding, not a crash
                flags.append(Flag(student_dir.name, path.stem, "-", "-", "metadata", f"unreadable notebook: {exc}"))
                continue
            flags += audit_notebook(nb, release, student=student_dir.name, notebook=path.stem)
    return flags


def students(course: Path, assignment: str, submitted_dir: str = "submitted") -> list[str]:
    base = Path(course) / submitted_dir
    return sorted(p.name for p in base.iterdir() if (p / assignment).is_dir()) if base.is_dir() else []


def format_table(flags: list[Flag], everyone: list[str] = ()) -> str:
    """A plain-text table of ``flags``, and a line for each student in ``everyone`` without any."""
    header = ("student", "notebook", "task", "cell", "flag", "detail")
    rows = [header] + [astuple(f) for f in flags]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r[:-1], widths)) + "  " + str(r[-1]) for r in rows]
    flagged = {f.student for f in flags}
    clean = [s for s in everyone if s not in flagged]
    if not flags:
        lines = ["no flags"]
    if clean:
        lines.append("no flags: " + ", ".join(clean))
    return "\n".join(lines) + "\n"


def write_csv(flags: list[Flag], path: Path) -> None:
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f.name for f in fields(Flag)])
        writer.writerows(astuple(f) for f in flags)


def add_arguments(parser) -> None:
    parser.add_argument("assignment", help="assignment (chapter folder), e.g. ch01_quadratic_wall")
    parser.add_argument("--course", type=Path, default=Path("."), help="course directory (default: .)")
    parser.add_argument("--submitted", default="submitted", help="collected submissions, relative to the course")
    parser.add_argument("--source", default="solutions", help="source notebooks, relative to the course")
    parser.add_argument("--csv", type=Path, default=None,
                        help="CSV to write (default: audit-<assignment>.csv in the course directory)")


def run(args) -> int:
    """``longctx-lab audit``: print the table, write the CSV; exit status 1 when anything is flagged."""
    flags = audit_assignment(args.course, args.assignment, submitted_dir=args.submitted, source_dir=args.source)
    out = args.csv or args.course / f"audit-{args.assignment}.csv"
    write_csv(flags, out)
    print(format_table(flags, students(args.course, args.assignment, args.submitted)), end="")
    print(f"{len(flags)} flag(s); CSV written to {out}")
    return 1 if flags else 0
