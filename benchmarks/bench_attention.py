"""Run `longctx-lab bench attention` from a checkout: `.venv/bin/python benchmarks/bench_attention.py [options]`.

The benchmark itself lives in `longctx_lab/cli/bench/attention.py` so the console script and this file share it;
results are recorded under `benchmarks/results/` as JSON with the command, machine, versions and date.
"""

import sys

from longctx_lab.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "attention", *sys.argv[1:]]))
