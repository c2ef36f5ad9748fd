"""Benchmarks behind `longctx-lab bench <name>`: each module exposes add_arguments(parser) and run(args)."""
