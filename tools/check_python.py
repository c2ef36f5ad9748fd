"""Can this Python build the course's .venv? One line saying what is missing and how to get it, exit 1; else exit 0.

Run by the system Python at the start of `make setup` (and by the Makefile to pick ``PYTHON``), so this file
must run on old Pythons too (3.8 syntax at most: no match, no X | Y annotations) to be able to say "too old".
The supported range is ``requires-python`` in pyproject.toml, raised to MAKE_MIN: the [dev] tools `make`
installs need Python 3.11 (the package alone supports 3.10: ``pip install -e .``).

Usage::

    python3 tools/check_python.py            # prints nothing when fine
    python3 tools/check_python.py --quiet    # exit status only (the Makefile's interpreter search)
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAKE_MIN = (3, 11)


def supported_range():
    """(lowest, first unsupported) minor versions from requires-python, e.g. ((3, 10), (3, 15))."""
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        text = f.read()
    spec = re.search(r'^requires-python\s*=\s*"([^"]+)"', text, re.M).group(1)
    low = re.search(r">=\s*(\d+)\.(\d+)", spec)
    high = re.search(r"<\s*(\d+)\.(\d+)", spec)
    return (int(low.group(1)), int(low.group(2))), (int(high.group(1)), int(high.group(2)))


def problem(check_venv=True):
    """The one-line problem with this interpreter, or None."""
    package_low, high = supported_range()
    low = max(package_low, MAKE_MIN)
    here = sys.version_info[:2]
    name = f"python{here[0]}.{here[1]}"
    supported = f"Python {low[0]}.{low[1]} to {high[0]}.{high[1] - 1}"
    get_one = ("Install one (python.org, or e.g. apt-get install python3.12 python3.12-venv) and run: "
               "make PYTHON=python3.12 setup")
    if package_low <= here < low:
        return (f"{name} ({sys.executable}) is too old for make: the course's tools (nbgrader, transformers 5, "
                f"Sphinx 9) need {supported}. {get_one} (the package alone works here: pip install -e .)")
    if here < low or here >= high:
        return (f"{name} ({sys.executable}) is {'too old' if here < low else 'too new'}: longctx-lab needs "
                f"{supported}. {get_one}")
    if check_venv:
        missing = []
        for module in ("venv", "ensurepip"):
            try:
                __import__(module)
            except ImportError:
                missing.append(module)
        if missing:
            return (f"{name} ({sys.executable}) lacks the module {' and '.join(missing)} that creates .venv with "
                    f"pip: on Debian/Ubuntu run 'sudo apt-get install {name}-venv', elsewhere install Python from "
                    "python.org, then rerun make")
    return None


def main(argv):
    message = problem(check_venv="--no-venv" not in argv)
    if message is None:
        return 0
    if "--quiet" not in argv:
        sys.stdout.write("make: " + message + "\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
