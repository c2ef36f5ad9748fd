"""Makes ``import triton`` fail, as on macOS and Windows (no triton wheels): the ``notebooks-no-triton`` stage
(``tools/stages.py``) puts ``tests/no_triton`` first on ``PYTHONPATH``, so the kernels chapters and their exercises
run as they would there."""

raise ImportError("triton made unimportable for this test")
