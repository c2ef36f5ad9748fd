"""Copy the recorded results the chapters read from ``benchmarks/results/`` into the package (``make recorded``).

``longctx-lab bench ...`` records into ``benchmarks/results/`` of a checkout; the chapters read the copies shipped
in ``longctx_lab/core/recorded/`` (``longctx_lab.core.recorded.SHIPPED`` names them), so that a wheel or a Colab
install has them too. After re-recording one, run this and commit both copies; ``tests/test_recorded.py`` fails,
naming the file, while the two differ.

    python tools/refresh_recorded.py            # copy every shipped file that differs
    python tools/refresh_recorded.py --check    # exit 1, naming each file that differs; copy nothing
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: read SHIPPED from this checkout, not an installed copy
    sys.path.insert(0, str(ROOT))

from longctx_lab.core.recorded import CHECKOUT_DIR, SHIPPED  # noqa: E402

PACKAGE_DIR = ROOT / "longctx_lab" / "core" / "recorded"


def differences(root: Path = ROOT) -> list[str]:
    """One line per shipped file whose package copy is missing or differs from ``benchmarks/results/``."""
    package_dir = root / "longctx_lab" / "core" / "recorded"
    lines = []
    for name in SHIPPED:
        source, copy = root / CHECKOUT_DIR / name, package_dir / name
        if not source.is_file():
            lines.append(f"{CHECKOUT_DIR}/{name} is missing (record it with longctx-lab bench)")
        elif not copy.is_file():
            lines.append(f"{copy.relative_to(root)} is missing: run `make recorded`")
        elif source.read_bytes() != copy.read_bytes():
            lines.append(f"{copy.relative_to(root)} differs from {CHECKOUT_DIR}/{name}: run `make recorded`")
    extra = sorted(p.name for p in package_dir.glob("*.json") if p.name not in SHIPPED)
    lines += [f"{(package_dir / n).relative_to(root)} is not in SHIPPED (longctx_lab/core/recorded/__init__.py)"
              for n in extra]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report differences (exit 1 if any)")
    args = parser.parse_args(argv)
    diffs = differences()
    if args.check or not diffs:
        for line in diffs:
            print(line)
        print(f"{len(SHIPPED) - len(diffs)} of {len(SHIPPED)} shipped recorded results match {CHECKOUT_DIR}/")
        return 1 if diffs else 0
    for name in SHIPPED:
        source, copy = ROOT / CHECKOUT_DIR / name, PACKAGE_DIR / name
        if not source.is_file():
            print(f"{CHECKOUT_DIR}/{name} is missing: record it with longctx-lab bench first", file=sys.stderr)
            return 1
        if not copy.is_file() or source.read_bytes() != copy.read_bytes():
            shutil.copyfile(source, copy)
            print(f"copied {CHECKOUT_DIR}/{name} -> {copy.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
