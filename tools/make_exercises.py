"""Regenerate ``exercises/<assignment>/`` from ``solutions/<assignment>/`` with ``nbgrader generate_assignment``.

Usage: ``python tools/make_exercises.py [assignment ...] [--out DIR]`` (default: every folder in
``solutions/``, written to ``exercises/``). The gradebook is a throw-away SQLite file, so nothing but
``exercises/`` changes. ``tests/test_exercises.py`` runs this into a temporary folder and fails on drift.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def assignments() -> list[str]:
    return sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir() and list(p.glob("*.ipynb")))


def venv_env() -> dict:
    """The environment with this Python's bin/ first on PATH (nbgrader runs ``alembic`` from PATH)."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def generate(names: list[str], out: Path) -> None:
    nbgrader = Path(sys.executable).parent / "nbgrader"
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            target = out / name
            subprocess.run(
                [str(nbgrader), "generate_assignment", name, "--force", "--quiet",
                 f"--CourseDirectory.root={ROOT}", f"--CourseDirectory.release_directory={out}",
                 f"--db=sqlite:///{tmp}/gradebook.db"],
                cwd=ROOT, check=True, env=venv_env(),
            )
            for extra in target.glob("**/.ipynb_checkpoints"):
                shutil.rmtree(extra)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*")
    parser.add_argument("--out", type=Path, default=ROOT / "exercises")
    args = parser.parse_args(argv)
    names = args.names or assignments()
    unknown = sorted(set(names) - set(assignments()))
    if unknown:
        parser.error(f"no such assignment in solutions/: {unknown}")
    generate(names, args.out.resolve())
    print(f"generated {len(names)} assignment(s) in {args.out}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
