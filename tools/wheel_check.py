"""The `wheel` stage of `make test` (issue 21, "the wheel is the product"): build, install cleanly, run the chapters.

1. ``python -m build``: the sdist, then the wheel built *from the sdist* (so a file the sdist misses fails here).
2. The wheel holds every module, ``py.typed``, the shipped checkpoint, the shipped Hugging Face configs, the recorded
   results the chapters read (``longctx_lab.core.recorded``) and LICENSE if the repository has one; the sdist holds
   no ``tests/`` (MANIFEST.in leaves them out on purpose: they need the whole repository).
3. A fresh ``python -m venv`` in a temporary directory; ``pip install <wheel> -c constraints.txt`` (runtime
   dependencies only; torch resolves to the pinned build).
4. From a directory outside the repository: ``longctx-lab --help``, ``env --no-probe``, ``plan``, ``niah --shipped``,
   a few ``train`` steps and ``ring --procs 2``, each on small sizes.
5. ipykernel + nbclient + nbformat (the kernel machinery, not the package's dependencies) into that venv, then every
   chapter ``notebooks/ch*.ipynb``, copied outside the repository, executed against the install; an injected first
   cell asserts that ``longctx_lab`` comes from the venv and that no path of the checkout is on ``sys.path``.

Any failure stops the check with one line naming the step and the reason, then the tail of its output. The last line
is a summary with the seconds of each step. Temporary directories are removed (``--keep`` keeps them).

    python tools/wheel_check.py [--keep] [--skip-notebooks]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "longctx_lab"
#: CLI checks: (label, arguments after ``longctx-lab``); ``{work}`` is the scratch directory outside the repository.
COMMANDS: list[tuple[str, list[str]]] = [
    ("--version", ["--version"]),
    ("--help", ["--help"]),
    ("env", ["env", "--no-probe"]),
    ("plan", ["plan", "llama-3.1-8b", "--context", "8192"]),
    ("niah", ["niah", "--shipped", "passkey-128", "--out", "{work}/niah", "--lengths", "64,128", "--depths", "0,1",
              "--trials", "2", "--no-progress"]),
    ("train", ["train", "--out", "{work}/ckpt", "--steps", "3", "--batch-size", "4", "--seq-len", "32", "--threads",
               "1", "--no-progress"]),
    ("ring", ["ring", "--procs", "2", "--seq-len", "64", "--heads", "2", "--kv-heads", "1", "--head-dim", "16",
              "--timeout", "60"]),
]
#: Checks run only when ``longctx-lab --help`` lists their flag (none at present: ``--version`` is required).
OPTIONAL_COMMANDS: list[tuple[str, list[str]]] = []
#: What the kernel machinery adds to the venv (not the package's dependencies), pinned by constraints.txt.
KERNEL_PACKAGES = ["ipykernel", "nbclient", "nbformat"]
#: Phrases a chapter prints when a recorded result is not found: the installed package must always have them.
MISSING_RECORD = re.compile(r"no recorded|recorded benchmark file found")
NOTEBOOK_TIMEOUT_S = 300
#: pip, pinned by constraints.txt; no byte-compiling of torch's thousands of files (a minute on 2 cores).
PIP_INSTALL = ["-m", "pip", "install", "-q", "--no-compile", "--disable-pip-version-check",
               "-c", str(ROOT / "constraints.txt")]
PARALLEL_NOTEBOOKS = 2

# The kernel's first cell, injected into each copied chapter: the package must come from the venv, never the checkout.
GUARD_CELL = """\
import os, sys
import longctx_lab
_prefix, _root = {prefix!r}, {root!r}
assert os.path.realpath(sys.prefix) == os.path.realpath(_prefix), f"kernel runs {{sys.prefix}}, not the test venv"
assert os.path.realpath(longctx_lab.__file__).startswith(os.path.realpath(_prefix) + os.sep), longctx_lab.__file__
assert not [p for p in sys.path if p and os.path.realpath(p).startswith(os.path.realpath(_root) + os.sep)], sys.path
print("longctx_lab from", longctx_lab.__file__)
"""

# Run by the venv's python, one notebook per process: execute it, write it back, exit 1 on a cell error.
RUNNER = """\
import sys, nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
path, timeout = sys.argv[1], int(sys.argv[2])
nb = nbformat.read(path, as_version=4)
try:
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
except CellExecutionError as exc:
    print(str(exc)[-3000:])
    sys.exit(1)
finally:
    nbformat.write(nb, path)
"""


class CheckFailed(Exception):
    def __init__(self, step: str, reason: str, output: str = ""):
        super().__init__(f"{step}: {reason}")
        self.step, self.reason, self.output = step, reason, output


def run(step: str, cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    """Run ``cmd``; its output, or :class:`CheckFailed` naming ``step`` with the output's tail."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or "") + (exc.stderr or "") if isinstance(exc.stdout, str) else ""
        raise CheckFailed(step, f"timed out after {timeout:.0f} s: {' '.join(cmd)}", out) from None
    out = proc.stdout + proc.stderr
    if proc.returncode:
        raise CheckFailed(step, f"exit {proc.returncode}: {' '.join(cmd)}", out)
    return out


def clean_env(tmp: Path) -> dict[str, str]:
    """The environment of everything run against the install: nothing pointing at the checkout or its venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "JUPYTER_PATH", "PYTHONSTARTUP")}
    env.update(PYTHONUNBUFFERED="1", PYTHONNOUSERSITE="1", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
               MPLBACKEND="Agg", JUPYTER_DATA_DIR=str(tmp / "jupyter-data"),  # no user-level kernelspec wins
               JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"), IPYTHONDIR=str(tmp / "ipython"),
               MPLCONFIGDIR=str(tmp / "mpl"))
    return env


# ------------------------------------------------------------------------------------------------ steps

def build(tmp: Path) -> tuple[Path, Path]:
    """The sdist and the wheel (built from the sdist) in ``tmp/dist``."""
    dist = tmp / "dist"
    egg_info = ROOT / f"{PACKAGE}.egg-info"
    had_egg_info = egg_info.exists()
    try:
        run("build", [sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        if not had_egg_info:  # the sdist step writes it into the checkout
            shutil.rmtree(egg_info, ignore_errors=True)
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        got = [p.name for p in dist.iterdir()]
        raise CheckFailed("build", f"expected one wheel and one sdist in {dist}, got {got}")
    return wheels[0], sdists[0]


def expected_in_wheel() -> list[str]:
    """Paths the wheel must hold: every module, py.typed, and the data the package reads."""
    sys.path.insert(0, str(ROOT))
    try:
        from longctx_lab.core.recorded import SHIPPED
    finally:
        sys.path.remove(str(ROOT))
    pkg = ROOT / PACKAGE
    modules = [p for p in pkg.rglob("*.py") if "__pycache__" not in p.parts]
    data = [pkg / "py.typed", *sorted((pkg / "lm" / "hf" / "shipped_configs").glob("*.json")),
            *sorted(p for p in (pkg / "lm" / "checkpoints").rglob("*") if p.is_file()),
            *(pkg / "core" / "recorded" / name for name in SHIPPED)]
    if not any((pkg / "lm" / "checkpoints").rglob("model.pt")):
        raise CheckFailed("contents", "no shipped checkpoint (lm/checkpoints/*/model.pt) in the checkout")
    return sorted(str(p.relative_to(ROOT)) for p in modules + data)


def check_contents(wheel: Path, sdist: Path) -> str:
    import tarfile

    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [p for p in expected_in_wheel() if p not in names]
    if (ROOT / "LICENSE").is_file() and not any(Path(n).name.startswith("LICENSE") for n in names):
        missing.append("LICENSE (in *.dist-info/licenses/)")
    if missing:
        raise CheckFailed("contents", f"the wheel lacks {len(missing)} file(s): {', '.join(missing[:8])}")
    with tarfile.open(sdist) as tar:
        sdist_names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
    if any(n.startswith("tests/") for n in sdist_names):
        raise CheckFailed("contents", "the sdist holds tests/ (MANIFEST.in prunes them: they need the repository)")
    return (f"wheel {wheel.stat().st_size / 2**20:.1f} MiB ({len(names)} files), "
            f"sdist {sdist.stat().st_size / 2**20:.1f} MiB (no tests/)")


def make_venv(tmp: Path, wheel: Path, env: dict[str, str]) -> Path:
    venv = tmp / "venv"
    run("venv", [sys.executable, "-m", "venv", str(venv)], cwd=tmp, env=env)
    py = venv / "bin" / "python"
    run("install", [str(py), *PIP_INSTALL, str(wheel)], cwd=tmp, env=env, timeout=900)
    return venv


def check_commands(venv: Path, work: Path, env: dict[str, str]) -> tuple[list[str], list[str]]:
    """Run COMMANDS (and each OPTIONAL_COMMANDS entry whose flag ``--help`` lists); the labels run and skipped."""
    exe = str(venv / "bin" / "longctx-lab")
    out = run("import", [str(venv / "bin" / "python"), "-c",
                         "import longctx_lab, sys\n"
                         "from longctx_lab.core.recorded import SHIPPED, recorded_result\n"
                         "assert all(recorded_result(n) for n in SHIPPED)\n"
                         "print(longctx_lab.__file__)"], cwd=work, env=env)
    if not Path(out.strip().splitlines()[-1]).resolve().is_relative_to(venv.resolve()):
        raise CheckFailed("import", f"longctx_lab imported from {out.strip()}, not from the test venv {venv}", out)
    help_text = run("--help", [exe, "--help"], cwd=work, env=env)
    done = []
    for label, args in COMMANDS + [(lbl, a) for lbl, a in OPTIONAL_COMMANDS if lbl in help_text]:
        run(f"longctx-lab {label}", [exe, *(a.format(work=work) for a in args)], cwd=work, env=env, timeout=300)
        done.append(label)
    skipped = [lbl for lbl, _ in OPTIONAL_COMMANDS if lbl not in done]
    return done, [f"{s} (not in --help yet)" for s in skipped]


def run_notebooks(venv: Path, tmp: Path, env: dict[str, str]) -> int:
    import nbformat  # the checkout's dev environment has it; only used to inject the guard cell

    start = time.monotonic()
    py = str(venv / "bin" / "python")
    run("kernel packages", [py, *PIP_INSTALL, *KERNEL_PACKAGES], cwd=tmp, env=env, timeout=600)
    run("kernelspec", [py, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"], cwd=tmp, env=env)
    print(f"kernel packages installed in {time.monotonic() - start:.0f} s", flush=True)
    nb_dir = tmp / "notebooks"
    nb_dir.mkdir()
    chapters = sorted((ROOT / "notebooks").glob("ch*.ipynb"))
    if not chapters:
        raise CheckFailed("notebooks", "no notebooks/ch*.ipynb in the checkout")
    guard = GUARD_CELL.format(prefix=str(venv), root=str(ROOT))
    copies = []
    for src in chapters:
        nb = nbformat.read(src, as_version=4)
        nb.cells.insert(0, nbformat.v4.new_code_cell(guard))
        dst = nb_dir / src.name
        nbformat.write(nb, dst)
        copies.append(dst)
    runner = tmp / "run_notebook.py"
    runner.write_text(RUNNER)

    def execute(path: Path) -> tuple[Path, float, str | None, str]:
        start = time.monotonic()
        try:
            run(f"notebook {path.name}", [py, str(runner), str(path), str(NOTEBOOK_TIMEOUT_S)], cwd=nb_dir, env=env,
                timeout=NOTEBOOK_TIMEOUT_S + 60)
        except CheckFailed as exc:
            return path, time.monotonic() - start, exc.reason, exc.output
        outputs = "\n".join(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
                            for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"
                            for o in c.get("outputs", []) if o.get("output_type") == "stream")
        found = MISSING_RECORD.search(outputs)
        if found:
            line = next(ln for ln in outputs.splitlines() if found.group(0) in ln)
            return path, time.monotonic() - start, f"a recorded result was not found: {line.strip()[:200]}", outputs
        return path, time.monotonic() - start, None, ""

    results = []
    with ThreadPoolExecutor(PARALLEL_NOTEBOOKS) as pool:
        for future in as_completed([pool.submit(execute, path) for path in copies]):
            path, seconds, reason, _ = future.result()
            print(f"  {path.name}: {'ok' if reason is None else 'FAIL'} in {seconds:.1f} s", flush=True)
            results.append(future.result())
    failed = [(p, r, o) for p, _, r, o in results if r is not None]
    if failed:
        path, reason, output = failed[0]
        raise CheckFailed(f"notebook {path.name}", reason + (f" (and {len(failed) - 1} more)" if len(failed) > 1
                                                             else ""), output)
    return len(results)


# ------------------------------------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and say where it is")
    parser.add_argument("--skip-notebooks", action="store_true", help="stop after the command-line checks")
    args = parser.parse_args(argv)

    start = time.monotonic()
    times: dict[str, float] = {}
    tmp = Path(tempfile.mkdtemp(prefix="longctx-wheel-"))
    if tmp.resolve().is_relative_to(ROOT):
        raise SystemExit(f"the temporary directory {tmp} lies inside the repository {ROOT}: set TMPDIR elsewhere")
    work = tmp / "work"
    work.mkdir()
    env = clean_env(tmp)
    step = "build"

    def timed(name: str, fn, *a):
        nonlocal step
        step = name
        t0 = time.monotonic()
        result = fn(*a)
        times[name] = time.monotonic() - t0
        return result

    try:
        wheel, sdist = timed("build", build, tmp)
        sizes = timed("contents", check_contents, wheel, sdist)
        print(f"build {times['build']:.0f} s;", end=" ", flush=True)
        print(f"built {wheel.name} and {sdist.name}: {sizes}")
        venv = timed("install", make_venv, tmp, wheel, env)
        print(f"installed the wheel in a clean venv in {times['install']:.0f} s", flush=True)
        done, skipped = timed("commands", check_commands, venv, work, env)
        print(f"longctx-lab from the installed wheel, run in {work}: {', '.join(done)}"
              + (f"; skipped {', '.join(skipped)}" if skipped else ""))
        n_nb = 0 if args.skip_notebooks else timed("notebooks", run_notebooks, venv, tmp, env)
    except CheckFailed as exc:
        tail = "\n".join(exc.output.strip().splitlines()[-40:])
        print(f"{tail}\nwheel check FAILED at {exc.step}: {exc.reason} (after {time.monotonic() - start:.0f} s)")
        return 1
    except Exception as exc:  # noqa: BLE001 - any surprise is a failure with a one-line reason
        print(f"wheel check FAILED at {step}: {type(exc).__name__}: {exc} (after {time.monotonic() - start:.0f} s)")
        return 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
    print(f"wheel check ok in {time.monotonic() - start:.0f} s: built, installed in a clean venv, "
          f"{len(done)} commands ok, {n_nb} chapters executed against the install ({steps})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
