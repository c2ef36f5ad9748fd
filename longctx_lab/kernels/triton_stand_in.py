"""Stand-ins for ``triton`` and ``triton.language`` where Triton is not available (macOS and Windows have no
triton wheels), so that an exercise that writes a ``@triton.jit`` kernel still runs there.

``from longctx_lab.kernels.triton_stand_in import tl, triton``: ``triton.jit`` keeps the function (a
:class:`StandInKernel`), the names a kernel's signature uses (``tl.constexpr``, ``tl.float32``...) resolve, and
``triton.cdiv`` computes. Launching the kernel (``kernel[grid](...)``) raises ``RuntimeError`` with
:func:`longctx_lab.kernels.triton_unavailable_message`'s line: no kernel runs here. Imports neither torch nor
triton.
"""

from __future__ import annotations

__all__ = ["StandInKernel", "tl", "triton"]


class StandInKernel:
    """What ``triton.jit`` returns here: the function, kept; launching it raises ``RuntimeError``."""

    def __init__(self, fn):
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "kernel")
        self.__doc__ = getattr(fn, "__doc__", None)

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            from longctx_lab.kernels.dispatch import triton_unavailable_message

            why = triton_unavailable_message() or "Triton is not available here"
            raise RuntimeError(f"cannot launch {self.__name__}: {why}")

        return launch

    def __repr__(self) -> str:
        return f"<StandInKernel {self.__name__} (Triton is not available here)>"


class _Name:
    """A ``triton.language`` name (``tl.constexpr``, ``tl.float32``...): it resolves, and does nothing."""

    def __init__(self, qualname: str):
        self._qualname = qualname

    def __repr__(self) -> str:
        return f"<stand-in {self._qualname}>"


class _Module:
    def __init__(self, name: str, **attrs):
        self.__name__ = name
        self.__dict__.update(attrs)

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Name(f"{self.__name__}.{attr}")

    def __repr__(self) -> str:
        return f"<stand-in module {self.__name__!r} (Triton is not available here)>"


def _jit(fn=None, **options):
    """``@triton.jit`` and ``@triton.jit(...)``."""
    return StandInKernel(fn) if fn is not None else StandInKernel


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


tl = _Module("triton.language")
triton = _Module("triton", jit=_jit, cdiv=_cdiv, language=tl, __version__="not available")
