"""Resolve the course's install plan for other platforms and Pythons from the public index (PyPI) alone.

``pip install --dry-run --platform ... --python-version ...`` checks that wheels exist for the target, but
pip still evaluates environment markers (``platform_system == "Linux"``, ``python_version < "3.11"``) for
the machine it runs on: resolving torch for macOS from Linux would then ask for triton and CUDA wheels
that macOS never installs. So each resolution runs pip in a subprocess whose marker environment is the
target's (pip's vendored ``packaging.markers.default_environment`` replaced), with pip's user and site
configuration ignored (``PIP_CONFIG_FILE=/dev/null``, no find-links, ``--isolated``) and
``--index-url https://pypi.org/simple``: what a user's pip on that machine would do, minus the download.

Plans (see the Makefile's ``setup`` recipe):

``dev``      ``pip install -e ".[dev]"`` without constraints (what Windows users and own environments do)
``locked``   ``make setup`` with torch from PyPI (macOS, Linux with an NVIDIA GPU): constraints.txt with the
             torch pin's local label dropped (``torch==2.13.0``) and the triton pin dropped (torch's own
             requirement decides)
``cpu``      ``make setup`` on Linux without an NVIDIA GPU, torch left out (it comes from PyTorch's CPU index,
             not PyPI): [dev] minus torch, plus the CPU build's own dependencies, constraints.txt as make uses
             it there (triton pinned). Resolving PyPI's Linux torch instead would make pip read the metadata
             of several GB of CUDA wheels per combination.
``runtime``  the package's runtime dependencies only (the Colab install cell), optionally with constraints
             (``tests/data/colab-packages.txt``) standing for what is already installed

Usage::

    python tools/install_plan.py                   # every platform x Python, all plans; a table; exit 1 on failure
    python tools/install_plan.py --plan dev --python 3.14 --platform macos-arm64
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INDEX = "https://pypi.org/simple"

#: Pythons the course supports: requires-python in pyproject.toml must be exactly this range. The values are
#: the patch releases resolved for (soupsieve, via nbconvert, needs 3.11.5 or newer; networkx excludes 3.14.1).
FULL_VERSIONS = {"3.10": "3.10.19", "3.11": "3.11.14", "3.12": "3.12.12", "3.13": "3.13.9", "3.14": "3.14.2"}
PYTHONS = tuple(FULL_VERSIONS)
#: The package (runtime dependencies) supports all of PYTHONS; `make` and the [dev]/[grading] extras need 3.11
#: (nbgrader 0.9.6, transformers 5, numpy 2.4, Sphinx 9 require it), as does constraints.txt (made on 3.11).
DEV_PYTHONS = tuple(p for p in PYTHONS if p != "3.10")


def _manylinux(arch: str) -> list[str]:
    return [f"manylinux_2_{minor}_{arch}" for minor in range(28, 16, -1)] + [f"manylinux2014_{arch}"]


#: name -> (pip --platform tags, marker environment values)
PLATFORMS: dict[str, tuple[list[str], dict[str, str]]] = {
    "linux-x86_64": (_manylinux("x86_64"), {"platform_system": "Linux", "sys_platform": "linux",
                                            "platform_machine": "x86_64", "os_name": "posix"}),
    "linux-aarch64": (_manylinux("aarch64"), {"platform_system": "Linux", "sys_platform": "linux",
                                              "platform_machine": "aarch64", "os_name": "posix"}),
    "macos-arm64": ([f"macosx_{major}_0_arm64" for major in range(15, 10, -1)],
                    {"platform_system": "Darwin", "sys_platform": "darwin", "platform_machine": "arm64",
                     "os_name": "posix"}),
    "windows-amd64": (["win_amd64"], {"platform_system": "Windows", "sys_platform": "win32",
                                      "platform_machine": "AMD64", "os_name": "nt"}),
}

# Run by the child interpreter: pip with the target's marker environment.
_PIP_WITH_ENVIRONMENT = """\
import json, sys
import pip._vendor.packaging.markers as markers
target = json.loads(sys.argv[1])
markers.default_environment = lambda: dict(target)
from pip._internal.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def marker_environment(platform: str, python: str) -> dict[str, str]:
    full = FULL_VERSIONS.get(python, f"{python}.0")
    return {"implementation_name": "cpython", "implementation_version": full, "platform_python_implementation":
            "CPython", "platform_release": "", "platform_version": "", "python_version": python,
            "python_full_version": full, **PLATFORMS[platform][1]}


def _requirement_lines(extra: str | None) -> list[str]:
    """pyproject's runtime dependencies, plus ``extra``'s (self-references like longctx-lab[grading] expanded)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    extras = project.get("optional-dependencies", {})
    todo, seen = ([extra] if extra else []), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for line in extras[name]:
            own = re.match(r"longctx-lab\[([\w,\s-]+)\]\s*$", line)
            if own:
                todo.extend(part.strip() for part in own.group(1).split(","))
            else:
                lines.append(line)
    return lines


def locked_constraints(text: str, torch: str = "pypi") -> str:
    """constraints.txt as ``make setup`` uses it: ``torch`` is ``pypi`` (pin without its local label, triton
    pin dropped), ``cpu`` (pin kept, triton kept) or ``keep`` (torch and triton pins dropped)."""
    out = []
    for line in text.splitlines():
        name = re.split(r"[=<>!~;\s\[]", line.strip(), maxsplit=1)[0].lower()
        if name == "torch":
            if torch == "keep":
                continue
            if torch == "pypi":
                line = re.sub(r"\+[\w.]+", "", line)
        elif name == "triton" and torch in ("pypi", "keep"):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def resolve(platform: str, python: str, requirements: list[str], constraints: str | None = None,
            timeout: float = 600) -> dict:
    """Dry-run pip for the target; {'ok', 'install': {name: version}, 'error', 'unresolved', 'seconds'}."""
    tags, _ = PLATFORMS[platform]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        args = ["install", "--isolated", "--dry-run", "--ignore-installed", "--progress-bar", "off",
                "--report", str(report), "--only-binary=:all:", "--implementation", "cp",
                "--python-version", FULL_VERSIONS.get(python, python),
                "--index-url", INDEX, "--timeout", "15", "--retries", "2", "--disable-pip-version-check"]
        # (--use-feature=fast-deps, metadata by HTTP range requests where the index serves no PEP 658 metadata,
        # stalled under concurrency behind this network's PyPI proxy: not used)
        for tag in tags:
            args += ["--platform", tag]
        if constraints is not None:
            (Path(tmp) / "constraints.txt").write_text(constraints)
            args += ["-c", str(Path(tmp) / "constraints.txt")]
        args += requirements
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        env["PIP_CONFIG_FILE"] = os.devnull
        start = time.monotonic()
        # niced: `make test` runs these beside its other stages, which need the CPU more than pip does
        nice = ["nice", "-n", "10"] if shutil.which("nice") else []
        proc = subprocess.run([*nice, sys.executable, "-c", _PIP_WITH_ENVIRONMENT,
                               json.dumps(marker_environment(platform, python)), *args],
                              capture_output=True, text=True, env=env, timeout=timeout)
        seconds = time.monotonic() - start
        if proc.returncode == 0 and report.exists():
            data = json.loads(report.read_text())
            install = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in data["install"]}
            return {"ok": True, "install": install, "error": "", "unresolved": None, "seconds": seconds}
    error = (proc.stdout + proc.stderr).strip()
    found = re.search(r"no matching distributions available for your environment:\s*\n\s*(\S+)", error) or \
        re.search(r"No matching distribution found for (\S+)", error) or re.search(
        r"Cannot install (.+?) because", error) or re.search(r"conflict is caused by:\s*\n\s*(.+)", error)
    unresolved = found.group(1).strip() if found else None
    return {"ok": False, "install": {}, "error": error, "unresolved": unresolved, "seconds": seconds}


#: what the CPU build of torch requires (its wheel's Requires-Dist), resolved in its place by the cpu plan
TORCH_CPU_DEPENDENCIES = ["filelock", "typing-extensions>=4.10.0", "setuptools", "sympy>=1.13.3", "networkx>=2.5.1",
                          "jinja2", "fsspec>=0.8.5"]
#: accelerate (in the [pretrained] extra) requires torch>=2.6, which the cpu plan takes from PyTorch's CPU index, not
#: PyPI: its other requirements (accelerate 1.16's Requires-Dist) are resolved in its place, as torch's are
ACCELERATE_DEPENDENCIES = ["numpy>=1.17", "packaging>=20.0", "psutil", "pyyaml", "huggingface_hub>=0.21.0",
                           "safetensors>=0.4.3"]


def plan(name: str) -> tuple[list[str], str | None]:
    if name == "dev":
        return _requirement_lines("dev"), None
    if name == "cpu":
        requirements = [r for r in _requirement_lines("dev") if not re.match(r"(torch|accelerate)\b", r)]
        constraints = locked_constraints((ROOT / "constraints.txt").read_text(), "cpu")
        constraints = "".join(line + "\n" for line in constraints.splitlines() if not line.startswith("torch=="))
        return requirements + TORCH_CPU_DEPENDENCIES + ACCELERATE_DEPENDENCIES, constraints
    if name == "locked":
        return _requirement_lines("dev"), locked_constraints((ROOT / "constraints.txt").read_text(), "pypi")
    if name == "runtime":
        return _requirement_lines(None), None
    raise ValueError(f"unknown plan {name!r}: dev, locked or runtime")


def pypi_reachable(timeout: float = 10) -> str | None:
    """None when PyPI's simple index answers, else why not."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{INDEX}/pip/", timeout=timeout) as response:
            response.read(1)
        return None
    except OSError as exc:
        return f"{INDEX} cannot be reached: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", action="append", choices=["dev", "locked", "cpu", "runtime"])
    parser.add_argument("--python", action="append", choices=PYTHONS + ("3.15",))
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORMS))
    parser.add_argument("--jobs", type=int, default=8)
    args = parser.parse_args(argv)
    combos = [(p, plat, py) for p in args.plan or ["dev", "locked", "runtime"] for plat in args.platform or PLATFORMS
              for py in args.python or (PYTHONS if p == "runtime" else DEV_PYTHONS)]
    start = time.monotonic()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda c: resolve(c[1], c[2], *plan(c[0])), combos))
    failed = 0
    for (p, plat, py), result in zip(combos, results, strict=True):
        status = "ok" if result["ok"] else f"FAIL: {result['unresolved'] or result['error'].splitlines()[-1:]}"
        extra = f" torch {result['install'].get('torch')} triton {result['install'].get('triton', '-')}"
        print(f"{p:<8} {plat:<14} {py:<5} {result['seconds']:6.1f}s {status}{extra if result['ok'] else ''}")
        failed += not result["ok"]
    print(f"{len(combos)} resolutions in {time.monotonic() - start:.1f} s, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
