"""Run `longctx-lab bench decode-cpu` from a checkout: `.venv/bin/python benchmarks/bench_decode_cpu.py [options]`.

The benchmark lives in `longctx_lab/cli/bench/decode_cpu.py` so the console script and this file share it; results go
to `benchmarks/results/decode-cpu.json` with the command, machine, versions and date.
"""

import sys

from longctx_lab.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "decode-cpu", *sys.argv[1:]]))
