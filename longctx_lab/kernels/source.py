"""The source text of the Triton kernels, for reading them in the chapter (no triton import needed).

``kernel_source("attn_fwd_kernel")`` returns that function from :mod:`.flash_kernels`, decorator
included, exactly as it is in the file the tests run.
"""

from __future__ import annotations

import ast
from pathlib import Path

KERNEL_FILE = Path(__file__).with_name("flash_kernels.py")


def _jit_functions() -> list[ast.FunctionDef]:
    tree = ast.parse(KERNEL_FILE.read_text())
    return [node for node in tree.body if isinstance(node, ast.FunctionDef)
            and any(ast.unparse(d) == "triton.jit" for d in node.decorator_list)]


def kernel_names() -> list[str]:
    """Names of the ``@triton.jit`` functions in ``flash_kernels.py``, in file order."""
    return [node.name for node in _jit_functions()]


def kernel_source(name: str) -> str:
    """Source of the function ``name`` in ``flash_kernels.py``, with its ``@triton.jit`` line."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    text = KERNEL_FILE.read_text()
    for node in _jit_functions():
        if node.name == name:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            return "\n".join(text.splitlines()[first - 1 : node.end_lineno])
    raise ValueError(f"name must be one of {kernel_names()}, got {name!r}")
