"""Run `longctx-lab bench notebooks` from a checkout: `.venv/bin/python benchmarks/bench_notebooks.py [options]`.

The benchmark itself lives in `longctx_lab/cli/bench/notebooks.py` so the console script and this file share it;
results are recorded under `benchmarks/results/` as JSON with the command, machine, versions and date.
"""

import sys

from longctx_lab.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "notebooks", *sys.argv[1:]]))
