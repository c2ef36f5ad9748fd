"""Grading: the checks exercise notebooks call (this module), and the nbgrader machinery beside it.

Beside these checks: :mod:`.nbgrader_release` (release without the source's jupytext pairing),
:mod:`.nbgrader_execute` (autograding that survives a dead kernel), :mod:`.nbgrader_sanitize` (answers that
damage graded cells), :mod:`.nbgrader_feedback` (hidden tests stay hidden in feedback) and :mod:`.audit`
(``longctx-lab audit``). A new check that exercises call goes in this module.

Checks used in exercise notebooks: readable hints for learners, never the answer itself.

Every helper raises ``AssertionError`` with a message a learner can act on (nbgrader counts an
AssertionError as a failed test, so one bad answer fails only the test cell it is checked in).

:func:`call` runs the learner's function under a per-call time limit and turns whatever goes wrong
(an exception, ``SystemExit``, ``KeyboardInterrupt``, ``os._exit``, a crash, an endless loop, a call
into the course package's own implementation) into such an ``AssertionError``.

How the time limit is enforced. On Linux the call runs in a *forked* child process: the parent waits
on a pipe for at most ``time_limit`` seconds, then kills the child with ``SIGKILL``. That is the only
approach that stops every runaway: a signal-based timer (``signal.setitimer`` raising in the main
thread) is defeated by ``except BaseException: pass`` inside the loop, by a student who ignores or
replaces the signal handler, and by a long call into C that never returns to the interpreter; a
thread cannot be killed at all. The fork also contains the damage of a call: ``sys.exit``,
``os._exit`` or a segfault ends the child, not the kernel, and whatever the call patches (the grading
helpers, ``math``, its own arguments) is patched in the child only. Forking is cheap (copy on write,
a few milliseconds), and the child runs with one torch thread (an OpenMP pool does not survive a
fork). The return value travels back pickled, after conversion to plain data (numbers, strings,
lists, tuples, dicts, plain tensors and arrays) *inside* the child, so an object with a
lying ``__eq__`` or ``__float__`` cannot reach the checks.

Where a fork is unsafe (CUDA already initialised in the kernel, a platform without ``fork``) the call
runs in-process under ``signal.setitimer`` (main thread only) instead: the same messages, but a
runaway that swallows the timer's exception is then stopped only by nbgrader's cell timeout.

While the learner's function runs, a profile hook records every function of the ``longctx_lab``
package that gets called (this module excepted): an answer that delegates to the package's own
implementation (the reference it is checked against) fails with a message saying so.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import math
import numbers
import os
import pickle
import select
import signal
import sys
import threading
import time
import warnings

import torch

#: seconds one call of a learner's function may take unless the test cell says otherwise
DEFAULT_TIME_LIMIT = 5.0
#: "auto" (fork where safe, else in-process), "fork" or "inprocess"
ISOLATION = os.environ.get("LONGCTX_GRADING_ISOLATION", "auto")

_REAL_EXIT = os._exit  # kept before any learner code can replace it: the child must always end here
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # longctx_lab/
_THIS_FILE = os.path.abspath(__file__)
_MAX_ECHO = 10_000  # characters of a call's printed output echoed back from the child


class _TimeLimit(BaseException):
    """Raised by the in-process timer; a BaseException so that ``except Exception`` does not swallow it."""


class _Unusable(Exception):
    """The learner's return value is not plain data the checks can use."""


# ---- the call ---------------------------------------------------------------------------------------------

def call(fn, *args, name: str | None = None, time_limit: float | None = DEFAULT_TIME_LIMIT,
         allow_package: tuple[str, ...] = (), **kwargs):
    """Call the learner's ``fn(*args, **kwargs)`` and return its result, as plain data.

    ``time_limit`` (seconds, ``None`` for none) bounds the call; ``allow_package`` lists module names of
    ``longctx_lab`` the function may use (by default none: the package is the reference). Any failure is
    an ``AssertionError`` whose message names ``name`` (default: the function's ``__name__``).
    """
    label = name or getattr(fn, "__name__", "your function")
    if not callable(fn):
        raise AssertionError(f"{label} should be a function, but it is a {type(fn).__name__}")
    if time_limit is not None and (isinstance(time_limit, bool) or not isinstance(time_limit, numbers.Real)
                                   or not time_limit > 0):
        raise ValueError(f"time_limit must be a positive number of seconds or None, got {time_limit!r}")
    if isinstance(allow_package, str) or not all(isinstance(m, str) for m in allow_package):
        raise TypeError(f"allow_package must be a tuple of module names, got {allow_package!r}")
    if _use_fork():
        outcome = _call_forked(fn, args, kwargs, time_limit, tuple(allow_package))
    else:
        outcome = _call_in_process(fn, args, kwargs, time_limit, tuple(allow_package))
    return _settle(outcome, label, time_limit)


def _use_fork() -> bool:
    if ISOLATION not in ("auto", "fork", "inprocess"):
        raise ValueError(f"ISOLATION must be 'auto', 'fork' or 'inprocess', got {ISOLATION!r}")
    if ISOLATION == "inprocess" or not hasattr(os, "fork"):
        return False
    if ISOLATION == "fork":
        return True
    if not sys.platform.startswith("linux"):
        return False  # macOS: forking a process that loaded system frameworks is unsafe
    return not (torch.cuda.is_available() and torch.cuda.is_initialized())


def _settle(outcome: tuple, label: str, time_limit):
    kind, payload, delegated = outcome
    if delegated:
        names = ", ".join(sorted(delegated)[:3])
        raise AssertionError(f"{label} called the course package's own implementation ({names}): the package is "
                             "the reference your answer is checked against, so write the computation yourself")
    if kind == "ok":
        return payload
    if kind == "timeout":
        raise AssertionError(f"{label} did not finish within {time_limit:g} s (the time limit of one call in this "
                             "task): look for an endless loop, or an algorithm too slow for these sizes")
    if kind == "not_implemented":
        raise AssertionError(f"{label} is not written yet: replace the NotImplementedError line")
    if kind == "exit":
        raise AssertionError(f"{label} tried to stop the program (SystemExit {payload}): return a value instead "
                             "of calling exit() or sys.exit()")
    if kind == "interrupt":
        raise AssertionError(f"{label} raised KeyboardInterrupt: return a value instead of interrupting")
    if kind == "died":
        raise AssertionError(f"{label} ended the process it ran in ({payload}) before returning: do not call "
                             "os._exit(), and check for a crash")
    if kind == "unusable":
        raise AssertionError(f"{label} returned something the checks cannot use: {payload}")
    if kind == "error":
        raise AssertionError(f"{label} raised {payload}")
    raise RuntimeError(f"unknown call outcome {kind!r}")  # pragma: no cover - a bug in this module


def _run(fn, args, kwargs, allowed: tuple[str, ...], deadline_guard) -> tuple:
    """Run ``fn`` with the package-use recorder on; classify the outcome. Shared by both isolation modes."""
    delegated: set[str] = set()
    seen: dict = {}

    def in_package(code) -> bool:
        inside = seen.get(code)
        if inside is None:
            path = "<" if code.co_filename.startswith("<") else os.path.abspath(code.co_filename)
            inside = seen[code] = path.startswith(_PACKAGE_DIR + os.sep) and path != _THIS_FILE
        return inside

    def profile(frame, event, arg):
        # record the entry points into the package: package code called from code outside it
        if event != "call" or not in_package(frame.f_code):
            return
        caller = frame.f_back
        if caller is not None and in_package(caller.f_code):
            return
        module = frame.f_globals.get("__name__", "")
        if not any(module == m or module.startswith(m + ".") for m in allowed):
            code = frame.f_code
            delegated.add(f"{module}.{getattr(code, 'co_qualname', code.co_name)}")

    previous = sys.getprofile()
    try:
        with deadline_guard():
            sys.setprofile(profile)
            threading.setprofile(profile)
            try:
                value = fn(*args, **kwargs)
                value = _plain(value)
            finally:
                sys.setprofile(previous)
                threading.setprofile(previous)  # type: ignore[arg-type]
        outcome = ("ok", value)
    except _TimeLimit:
        outcome = ("timeout", None)
    except NotImplementedError:
        outcome = ("not_implemented", None)
    except _Unusable as exc:
        outcome = ("unusable", str(exc))
    except SystemExit as exc:
        outcome = ("exit", "" if exc.code is None else repr(exc.code))
    except KeyboardInterrupt:
        outcome = ("interrupt", None)
    except Exception as exc:  # noqa: BLE001 - any learner error becomes a hint
        outcome = ("error", _describe(exc))
    return (*outcome, sorted(delegated))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if len(text) > 500:
        text = text[:500] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _call_in_process(fn, args, kwargs, time_limit, allowed) -> tuple:
    @contextlib.contextmanager
    def guard():
        if time_limit is None or threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_alarm(signum, frame):
            raise _TimeLimit()

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, float(time_limit))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    return _run(fn, args, kwargs, allowed, guard)


def _call_forked(fn, args, kwargs, time_limit, allowed) -> tuple:
    parent = os.getpid()
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "process is multi-threaded": handled below
        pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        status = 0
        try:
            os.close(read_end)
            _die_with(parent)
            _child(fn, args, kwargs, allowed, write_end)
        except BaseException:  # noqa: BLE001 - nothing may escape the child
            status = 3
        finally:
            _REAL_EXIT(status)
    os.close(write_end)
    chunks: list[bytes] = []
    finished = False
    try:
        deadline = None if time_limit is None else time.monotonic() + float(time_limit)
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            ready, _, _ = select.select([read_end], [], [], remaining)
            if not ready:
                break
            chunk = os.read(read_end, 1 << 20)
            if not chunk:
                finished = True
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        if not finished:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if not finished:
        return ("timeout", None, [])
    data = b"".join(chunks)
    if not data:
        if os.WIFSIGNALED(status):
            how = f"killed by signal {os.WTERMSIG(status)}"
        else:
            how = f"exit status {os.WEXITSTATUS(status)}"
        return ("died", how, [])
    kind, payload, delegated, out, err = pickle.loads(data)
    if out:
        sys.stdout.write(out)
    if err:
        sys.stderr.write(err)
    return (kind, payload, delegated)


def _die_with(parent: int) -> None:
    """Linux: have the kernel SIGKILL this child when its parent (the notebook kernel) dies."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:
        _REAL_EXIT(4)


def _child(fn, args, kwargs, allowed, write_end) -> None:
    faulthandler.disable()  # a crash of the answer is reported by the parent, not dumped into the notebook
    torch.set_num_threads(1)  # the parent's OpenMP pool did not survive the fork
    out, err = io.StringIO(), io.StringIO()
    sys.stdout, sys.stderr = out, err  # the kernel's streams belong to threads that the fork left behind
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    kind, payload, delegated = _run(fn, args, kwargs, allowed, contextlib.nullcontext)
    try:
        data = pickle.dumps((kind, payload, delegated, out.getvalue()[:_MAX_ECHO], err.getvalue()[:_MAX_ECHO]))
    except Exception as exc:  # noqa: BLE001
        data = pickle.dumps(("unusable", f"it could not be sent back ({_describe(exc)})", delegated, "", ""))
    view = memoryview(data)
    while view:
        view = view[os.write(write_end, view):]
    os.close(write_end)


def _plain(value, depth: int = 0):
    """``value`` as plain data (exact builtin types, plain tensors and arrays), or :class:`_Unusable`."""
    if depth > 20:
        raise _Unusable("it is nested too deeply")
    if value is None or type(value) in (bool, int, float, complex, str, bytes):
        return value
    if isinstance(value, torch.Tensor):
        plain = value.detach()
        if type(plain) is not torch.Tensor:
            plain = plain.as_subclass(torch.Tensor)
        if type(plain) is not torch.Tensor:
            raise _Unusable(f"a {type(value).__name__}, a tensor subclass: return a plain torch.Tensor")
        return plain.clone()
    if type(value) in (list, tuple) or isinstance(value, tuple):  # tuples include torch.return_types
        items = [_plain(v, depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {_plain(k, depth + 1): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if isinstance(value, numpy.generic):
            return _plain(value.item(), depth + 1)
        if isinstance(value, numpy.ndarray):
            if value.dtype == object:
                raise _Unusable("a numpy array of Python objects: return numbers or a tensor")
            return numpy.array(value, copy=True)
    raise _Unusable(f"a {type(value).__name__}; return numbers, lists, tuples or tensors")


# ---- the checks -------------------------------------------------------------------------------------------

def check_close(value, expected, *, name: str, rel_tol: float = 1e-6, hint: str = "", units: bool = False,
                 integer: bool = False) -> None:
    """``value`` must be a finite real number within ``rel_tol`` of ``expected``.

    Two integers are compared exactly (no float rounding), so ``rel_tol=0`` tells ``10**18`` from
    ``10**18 + 1``. ``integer=True`` also demands an ``int``. With ``units=True`` a value off by a power of
    ten or of two, or by GB/GiB, gets a hint about units; otherwise the message says only how far off.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if isinstance(expected, torch.Tensor) and expected.numel() == 1:
        expected = expected.item()
    if isinstance(expected, bool) or not isinstance(expected, numbers.Real):
        raise TypeError(f"expected must be a real number, got {type(expected).__name__}")
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise AssertionError(f"{name} should be a number, got {type(value).__name__}")
    if integer and not isinstance(value, numbers.Integral):
        raise AssertionError(f"{name} should be an int, got {type(value).__name__} {value!r}")
    if isinstance(value, numbers.Integral) and isinstance(expected, numbers.Integral):
        value, expected = int(value), int(expected)
        diff = abs(value - expected)
        if diff == 0 or (rel_tol > 0 and diff <= rel_tol * abs(expected)):
            return
    else:
        as_float = float(value)
        if math.isnan(as_float) or math.isinf(as_float):
            raise AssertionError(f"{name} is {as_float}: check for a division by zero or an overflow")
        if math.isclose(as_float, float(expected), rel_tol=rel_tol, abs_tol=0.0 if expected else 1e-12):
            return
    message = f"{name} is {'too high' if value > expected else 'too low'}"
    if value and expected and (value > 0) == (expected > 0):
        ratio = float(value) / float(expected)
        log10, log2 = math.log10(ratio), math.log2(ratio)
        if abs(log10 - round(log10)) < 0.01 and round(log10) != 0:
            message += f" by a factor of 10^{round(log10)}"
            message += ": check units and prefixes" if units else ""
        elif abs(log2 - round(log2)) < 0.01 and round(log2) != 0:
            message += f" by a factor of 2^{round(log2)}"
            message += ": check bytes per element, K and V, or a halving" if units else ""
        elif units and (abs(ratio - (2**30 / 1e9)) < 1e-3 or abs(ratio - (1e9 / 2**30)) < 1e-3):
            message += ": GB (1e9) and GiB (2**30) differ by 7.4%"
        elif abs(ratio - 1) < 1e-3:
            message += " by a little (a rounding or off-by-one error?)"
    raise AssertionError(message + (f". Hint: {hint}" if hint else ""))


def check_tensor(value, expected: torch.Tensor, *, name: str, atol: float = 1e-5, rtol: float = 1e-5,
                 dtype: bool = True) -> None:
    """``value`` must be a plain tensor of ``expected``'s shape (and dtype, unless ``dtype=False``), close to it,
    without NaN. A boolean ``expected`` is compared exactly."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if not isinstance(expected, torch.Tensor):
        raise TypeError(f"expected must be a torch.Tensor, got {type(expected).__name__}")
    if not isinstance(value, torch.Tensor):
        raise AssertionError(f"{name} should be a torch.Tensor, got {type(value).__name__}")
    if type(value) is not torch.Tensor:
        raise AssertionError(f"{name} should be a plain torch.Tensor, got the subclass {type(value).__name__}")
    if tuple(value.shape) != tuple(expected.shape):
        raise AssertionError(f"{name} has shape {tuple(value.shape)}, expected {tuple(expected.shape)}")
    value = value.detach().cpu()
    if value.dtype == torch.bool and expected.dtype != torch.bool:
        raise AssertionError(f"{name} is boolean, expected numbers")
    if expected.dtype == torch.bool:
        if value.dtype != torch.bool:
            raise AssertionError(f"{name} should be a boolean tensor, got dtype {value.dtype}")
        wrong = int((value != expected.cpu()).sum())
        if wrong:
            raise AssertionError(f"{name} differs from the expected mask in {wrong} of {value.numel()} entries")
        return
    if value.is_complex() or expected.is_complex():
        raise AssertionError(f"{name} has dtype {value.dtype}, expected {expected.dtype}")
    if dtype and value.dtype != expected.dtype:
        raise AssertionError(f"{name} has dtype {value.dtype}, expected {expected.dtype}: compute in (or convert "
                             f"to) {expected.dtype}")
    if torch.isnan(value).any():
        raise AssertionError(f"{name} contains NaN (not a number): look for 0/0, inf - inf, or exp() of a large "
                             "number")
    expected = expected.detach().cpu()
    if not torch.allclose(value.double(), expected.double(), atol=atol, rtol=rtol):
        diff = (value.double() - expected.double()).abs()
        err = diff.nan_to_num(nan=math.inf).max().item()
        raise AssertionError(f"{name} is off by up to {err:.3g} (tolerance {atol:g} + {rtol:g} x |expected|)")
