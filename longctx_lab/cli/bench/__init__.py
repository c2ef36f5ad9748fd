"""Benchmarks behind `longctx-lab bench <name>`: each module exposes add_arguments(parser) and run(args).

A new benchmark is a module here; it records JSON with command, device, versions and date under
``benchmarks/results/``.
"""
