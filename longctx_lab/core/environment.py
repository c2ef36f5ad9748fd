"""What this machine has, and what the course will use on it (``longctx-lab env``).

Three things a learner needs to know before running a chapter, whatever the machine (a laptop,
Binder, Colab with or without a GPU):

- the versions of the packages the course uses, and **which of them lie outside the ranges
  longctx-lab declares** (:func:`version_problems`, read from the installed package metadata, so
  the ranges are exactly those of ``pyproject.toml``), each with the command that fixes it. A chapter
  (:func:`describe_runtime`) checks only what the chapters run: the runtime dependencies and the extras of
  :data:`RUNTIME_EXTRAS` (``gpu``: triton). The developer tools (extras ``dev``, ``grading``: ipykernel,
  transformers, nbgrader, pytest...) are checked by ``longctx-lab env`` only: a learner on Colab is never told
  to reinstall the kernel the notebook runs in;
- whether a CUDA GPU is there and which attention path runs (Triton kernels, or PyTorch: its fused
  SDPA kernel or the tiled path), printed by :func:`describe_runtime` (what the chapters' install cell calls, see
  ``tools/colab_cell.py``);
- the full report of ``longctx-lab env`` (:func:`report` and :func:`format_report`).
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass

PACKAGES = ("torch", "triton", "numpy", "matplotlib", "jupyterlab", "ipywidgets", "jupyterquiz", "nbgrader",
            "transformers")

#: The distribution name whose metadata declares the supported ranges.
DISTRIBUTION = "longctx-lab"
#: Extras whose packages the chapters use at run time where they are installed. The others (``dev``,
#: ``grading``) hold the tools that build, test and grade the course; only ``longctx-lab env`` checks them.
RUNTIME_EXTRAS = frozenset({"gpu"})


def installed_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or ``None`` when it is not installed."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {type(name).__name__} {name!r}")
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str | None]:
    return {name: installed_version(name) for name in PACKAGES}


@dataclass(frozen=True)
class VersionProblem:
    """A declared dependency that is missing or installed at a version outside its declared range."""

    package: str
    installed: str | None  # None: not installed
    required: str  # the specifier, e.g. ">=2.4,<2.16"
    extra: str | None  # None for a runtime dependency, else the extra ("dev", "gpu") declaring it

    @property
    def fix(self) -> str:
        """The command that installs a version inside the range (``make setup`` in a clone of the course)."""
        pip = f"pip install '{self.package}{self.required}'"
        return f"{pip}  (in a clone of the course: make setup)"

    def describe(self) -> str:
        where = "" if self.extra is None else f" (extra '{self.extra}')"
        if self.installed is None:
            return f"{self.package} is not installed; longctx-lab needs {self.package}{self.required}{where}"
        return (f"{self.package} {self.installed} is outside the range longctx-lab declares: "
                f"{self.package}{self.required}{where}")


_OPERATOR_ORDER = {"===": 0, "==": 0, "~=": 1, ">=": 2, ">": 2, "!=": 3, "<=": 4, "<": 4}


def specifier_text(specifier) -> str:
    """A specifier set written lower bound first (``>=2.4,<2.16``), as ``pyproject.toml`` writes ranges."""
    specs = sorted(specifier, key=lambda s: (_OPERATOR_ORDER.get(s.operator, 5), s.version))
    return ",".join(str(s) for s in specs)


def declared_requirements(distribution: str = DISTRIBUTION) -> list[tuple[object, str | None]]:
    """``(Requirement, extra)`` pairs declared by ``distribution`` for this Python (extra ``None`` = runtime).

    Read from the installed metadata (``importlib.metadata.requires``). A requirement declared by
    several extras (``triton`` in ``gpu`` and ``dev``) appears once per extra. Raises
    ``PackageNotFoundError`` when ``distribution`` is not installed.
    """
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    if not isinstance(distribution, str) or not distribution:
        raise TypeError(f"distribution must be a non-empty string, got {type(distribution).__name__} "
                        f"{distribution!r}")
    pairs: list[tuple[object, str | None]] = []
    base_env = default_environment()
    for line in md.requires(distribution) or []:
        req = Requirement(line)
        if req.marker is None:
            pairs.append((req, None))
            continue
        if req.marker.evaluate({**base_env, "extra": ""}):
            pairs.append((req, None))
            continue
        for extra in md.metadata(distribution).get_all("Provides-Extra") or []:
            if req.marker.evaluate({**base_env, "extra": extra}):
                pairs.append((req, extra))
    return pairs


def version_problems(distribution: str = DISTRIBUTION, *, runtime_only: bool = False) -> list[VersionProblem]:
    """Every declared dependency that is missing (runtime ones) or installed outside its declared range.

    Runtime dependencies must be installed and in range. Dependencies of the extras (``dev``,
    ``gpu``, ``grading``) are optional: they are checked where they are installed. With ``runtime_only``,
    only the runtime dependencies and those of :data:`RUNTIME_EXTRAS` are checked (what the chapters run; a
    package that a runtime extra and ``dev`` both declare is checked against the runtime extra's range).
    Versions with a local label (``2.13.0+cpu``, ``2.5.1+cu121``) are compared by their public part, as pip
    does. Returns an empty list when ``distribution`` itself is not installed (nothing declares a range then).
    """
    from packaging.version import InvalidVersion, Version

    if not isinstance(runtime_only, bool):
        raise TypeError(f"runtime_only must be a bool, got {type(runtime_only).__name__} {runtime_only!r}")
    try:
        requirements = declared_requirements(distribution)
    except md.PackageNotFoundError:
        return []
    if runtime_only:
        requirements = [(req, extra) for req, extra in requirements if extra is None or extra in RUNTIME_EXTRAS]
    problems: list[VersionProblem] = []
    seen: set[tuple[str, str]] = set()
    for req, extra in requirements:
        key = (req.name.lower(), specifier_text(req.specifier))
        if key in seen:
            continue
        version = installed_version(req.name)
        if version is None:
            if extra is None:
                seen.add(key)
                problems.append(VersionProblem(req.name, None, key[1], None))
            continue
        seen.add(key)
        try:
            ok = req.specifier.contains(Version(version), prereleases=True)
        except InvalidVersion:
            ok = False
        if not ok:
            problems.append(VersionProblem(req.name, version, key[1], extra))
    return problems


def format_problems(problems: list[VersionProblem]) -> str:
    """The lines ``longctx-lab env`` prints about out-of-range packages (empty string when there are none)."""
    if not isinstance(problems, list):
        raise TypeError(f"problems must be a list of VersionProblem, got {type(problems).__name__}")
    if not problems:
        return ""
    lines = [f"Versions    {len(problems)} package(s) outside the ranges longctx-lab declares:"]
    for p in problems:
        if not isinstance(p, VersionProblem):
            raise TypeError(f"problems must hold VersionProblem items, got {type(p).__name__}")
        lines.append(f"  ! {p.describe()}")
        lines.append(f"    fix: {p.fix}")
    if any(p.package == "torch" for p in problems):
        lines.append("  (torch: keep a CUDA build if you have one, choosing a version in the range; "
                     "on a CPU-only machine `make setup` installs the CPU build)")
    return "\n".join(lines)


_INTERPRETER_PROBE = r"""
import os
os.environ["TRITON_INTERPRET"] = "1"
import torch, triton, triton.language as tl

@triton.jit
def add_one(x_ptr, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    m = offs < n
    tl.store(x_ptr + offs, tl.load(x_ptr + offs, mask=m) + 1, mask=m)

x = torch.arange(5, dtype=torch.float32)
add_one[(1,)](x, 5, BLOCK=8)
assert x.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0], x
print("ok")
"""


def triton_interpreter_works(timeout: float = 120) -> tuple[bool, str]:
    """Run a tiny Triton kernel on a CPU tensor under ``TRITON_INTERPRET=1`` in a fresh process."""
    try:
        proc = subprocess.run([sys.executable, "-c", _INTERPRETER_PROBE], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "TRITON_INTERPRET": "1"})
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout} s"
    if proc.returncode == 0 and proc.stdout.strip().endswith("ok"):
        return True, "ran a kernel on CPU"
    return False, (proc.stderr.strip().splitlines() or ["failed"])[-1]


def _attention_path(cuda: bool, has_triton: bool) -> str:
    if cuda and has_triton:
        return "Triton kernels on the GPU"
    if cuda:
        return "pure-PyTorch tiled path on the GPU (install triton for the kernels: pip install 'longctx-lab[gpu]')"
    return ("PyTorch on the CPU: its fused SDPA kernel where that computes the same thing (no window, causal only "
            "when q_len == kv_len), else the tiled path (same API and results as the Triton kernels)")


def report(*, probe_interpreter: bool = True) -> dict:
    """Everything ``longctx-lab env`` prints, as a dict (JSON-serialisable)."""
    import torch

    info: dict = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "packages": package_versions(),
        "cuda_available": torch.cuda.is_available(),
    }
    if info["cuda_available"]:
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = f"{props.name} (sm_{props.major}{props.minor}, {props.total_memory / 2**30:.1f} GiB)"
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
    else:
        info["gpu"] = None
    has_triton = info["packages"]["triton"] is not None
    if probe_interpreter and has_triton:
        info["triton_interpreter"] = triton_interpreter_works()
    info["attention_path"] = _attention_path(info["cuda_available"], has_triton)
    info["version_problems"] = [{**asdict(p), "fix": p.fix} for p in version_problems()]
    return info


def _problems_from(info: dict) -> list[VersionProblem]:
    rows = info.get("version_problems", [])
    return [VersionProblem(r["package"], r["installed"], r["required"], r["extra"]) for r in rows]


def format_report(info: dict) -> str:
    if not isinstance(info, dict):
        raise TypeError(f"info must be the dict returned by report(), got {type(info).__name__}")
    lines = [f"Python      {info['python']} on {info['platform']}", f"CPU threads {info['cpu_threads']}"]
    for name, version in info["packages"].items():
        lines.append(f"  {name:<13} {version or 'not installed'}")
    lines.append(f"GPU         {info['gpu'] or 'none (CUDA not available)'}")
    if "triton_interpreter" in info:
        ok, detail = info["triton_interpreter"]
        lines.append(f"Triton interpreter {'works' if ok else 'FAILS'}: {detail}")
    elif info["packages"]["triton"] is None:
        lines.append("Triton      not installed: the PyTorch path is used (pip install 'longctx-lab[gpu]')")
    lines.append(f"Attention   {info['attention_path']}")
    problems = _problems_from(info)
    lines.append(format_problems(problems) if problems else
                 "Versions    every installed package is inside the ranges longctx-lab declares")
    return "\n".join(lines)


def runtime_description() -> str:
    """What will run where: the GPU (or none), the attention path, and any out-of-range package the chapters
    run (``version_problems(runtime_only=True)``: developer tools are left to ``longctx-lab env``).

    Quick (no subprocess, no Triton import), so every chapter's install cell can afford it.
    """
    import torch

    has_triton = importlib.util.find_spec("triton") is not None
    cuda = torch.cuda.is_available()
    if cuda:
        props = torch.cuda.get_device_properties(0)
        gpu = f"{props.name} (sm_{props.major}{props.minor}, {props.total_memory / 2**30:.1f} GiB)"
        bf16 = "" if props.major >= 8 else "; bfloat16 needs sm_80+, so bfloat16 attention uses the PyTorch path"
    else:
        gpu, bf16 = "none (CUDA not available): everything runs on the CPU", ""
    lines = [f"longctx-lab runtime: torch {torch.__version__}, triton "
             f"{installed_version('triton') or 'not installed'}",
             f"GPU         {gpu}",
             f"Attention   {_attention_path(cuda, has_triton)}{bf16}"]
    problems = format_problems(version_problems(runtime_only=True))
    lines.append(problems or "Versions    every package the chapters use is inside the ranges longctx-lab declares")
    return "\n".join(_wrap(line) for text in lines for line in text.splitlines())


def _wrap(line: str, width: int = 88) -> str:
    """``line`` folded at ``width`` columns, continuation lines indented under the text after its label, so
    the description fits a notebook cell and the book's page without scrolling sideways."""
    import textwrap

    label = line[:12] if line[:12].strip() and line[11:12] == " " else ""
    return textwrap.fill(line, width=width, subsequent_indent=" " * len(label), break_on_hyphens=False,
                         break_long_words=False)


def describe_runtime() -> None:
    """Print :func:`runtime_description` (what each chapter's install cell calls)."""
    print(runtime_description())
