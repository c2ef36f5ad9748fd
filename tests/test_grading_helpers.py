"""longctx_lab.course.grading: per-call time limit, contained faults, delegation detection, readable checks."""

from __future__ import annotations

import math
import os
import signal
import sys
import time

import pytest
import torch

from longctx_lab.core import cost
from longctx_lab.course import grading

MODES = ["fork", "inprocess"]


@pytest.fixture(params=MODES)
def mode(request, monkeypatch):
    monkeypatch.setattr(grading, "ISOLATION", request.param)
    return request.param


def _fails(fn, *args, match: str, **kwargs) -> str:
    with pytest.raises(AssertionError, match=match) as info:
        grading.call(fn, *args, **kwargs)
    return str(info.value)


# ---- call: results ----------------------------------------------------------------------------------------

def test_call_returns_plain_results(mode):
    def answer(x, *, scale):
        return x * scale, [1, 2.5, "s"], {"k": (3,)}

    out = grading.call(answer, torch.arange(3.0), scale=2.0)
    assert torch.equal(out[0], torch.tensor([0.0, 2.0, 4.0])) and type(out[0]) is torch.Tensor
    assert out[1:] == ([1, 2.5, "s"], {"k": (3,)})
    # numpy scalars and torch's named tuples come back as plain numbers and tuples
    m = grading.call(lambda t: t.max(dim=0), torch.tensor([1.0, 3.0]))
    assert type(m) is tuple and float(m[0]) == 3.0


def test_call_rejects_objects_that_could_lie_to_the_checks(mode):
    class Liar:
        def __eq__(self, other):
            return True

        def __float__(self):
            return 96.0

    _fails(lambda: Liar(), match="returned something the checks cannot use: a Liar")
    _fails(lambda: [1, Liar()], match="cannot use: a Liar")


def test_call_echoes_what_the_function_printed(mode, capsys):
    def chatty():
        print("hello from the answer")
        return 1

    assert grading.call(chatty) == 1
    assert "hello from the answer" in capsys.readouterr().out


# ---- call: faults become readable failures ---------------------------------------------------------------

def test_exceptions_and_exits_are_hints(mode):
    def boom():
        raise ValueError("window must be >= 1")

    def not_yet():
        raise NotImplementedError()

    assert _fails(boom, match="raised ValueError: window must be >= 1", name="f(1)").startswith("f(1) raised")
    _fails(not_yet, match="not written yet")
    _fails(sys.exit, 3, match=r"tried to stop the program \(SystemExit 3\)")
    _fails(lambda: exit(), match="SystemExit")

    def interrupted():
        raise KeyboardInterrupt

    _fails(interrupted, match="raised KeyboardInterrupt")
    _fails(42, match="should be a function, but it is a int")


def test_an_endless_loop_is_stopped_at_the_time_limit(mode):
    def spin():
        while True:
            pass

    start = time.monotonic()
    _fails(spin, match=r"did not finish within 0\.3 s", time_limit=0.3)
    assert time.monotonic() - start < 3


def test_a_loop_that_swallows_interrupts_is_killed(monkeypatch):
    """Only the forked child can be stopped when the loop ignores SIGINT and catches every exception."""
    def stubborn():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        while True:
            try:
                time.sleep(0.01)
            except BaseException:  # noqa: BLE001, S110
                pass

    monkeypatch.setattr(grading, "ISOLATION", "fork")
    def mine(signum, frame):  # a handler of our own: SIGINT may already be ignored (a background job)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, mine)
    try:
        start = time.monotonic()
        _fails(stubborn, match="did not finish within 0.5 s", time_limit=0.5)
        assert time.monotonic() - start < 3
        assert signal.getsignal(signal.SIGINT) is mine, "the child's handler leaked into the caller"
    finally:
        signal.signal(signal.SIGINT, previous)


def test_os_exit_and_crashes_end_only_the_child(monkeypatch):
    monkeypatch.setattr(grading, "ISOLATION", "fork")
    _fails(os._exit, 1, match=r"ended the process it ran in \(exit status 1\)")
    _fails(lambda: os.kill(os.getpid(), signal.SIGSEGV), match="killed by signal 11")
    assert grading.call(lambda: 5) == 5  # the caller is alive and well


def test_patches_made_by_the_call_stay_in_the_child(monkeypatch):
    monkeypatch.setattr(grading, "ISOLATION", "fork")
    original_isclose, original_check = math.isclose, grading.check_close

    def cheat():
        math.isclose = lambda *a, **k: True
        grading.check_close = lambda *a, **k: None
        return 0

    assert grading.call(cheat) == 0
    assert math.isclose is original_isclose and grading.check_close is original_check
    with pytest.raises(AssertionError, match="too low"):
        grading.check_close(0, 96, name="x")


def test_arguments_mutated_by_the_call_are_unchanged_for_the_checks(monkeypatch):
    monkeypatch.setattr(grading, "ISOLATION", "fork")
    x = torch.zeros(3)
    grading.call(lambda t: t.fill_(7.0), x)
    assert torch.equal(x, torch.zeros(3))


def test_torch_works_in_the_child_after_the_parent_used_threads(monkeypatch):
    monkeypatch.setattr(grading, "ISOLATION", "fork")
    torch.set_num_threads(2)
    a = torch.randn(300, 300)
    (a @ a).sum()
    out = grading.call(lambda: (torch.randn(500, 500) @ torch.randn(500, 500)).shape, time_limit=20)
    assert tuple(out) == (500, 500)


# ---- call: delegation to the package ----------------------------------------------------------------------

def test_calling_the_package_implementation_is_reported(mode):
    def delegates(n):
        return cost.kv_cache_bytes(n, n_layers=2, n_kv_heads=1, head_dim=4, dtype="fp16")

    message = _fails(delegates, 3, match="course package's own implementation")
    assert "longctx_lab.core.cost.kv_cache_bytes" in message
    assert grading.call(delegates, 3, allow_package=("longctx_lab.core.cost",)) == 96

    def hides_it(n):
        try:
            cost.kv_cache_bytes(n, n_layers=2, n_kv_heads=1, head_dim=4, dtype="fp16")
        except Exception:  # noqa: BLE001
            pass
        return 96

    _fails(hides_it, 3, match="longctx_lab.core.cost")
    assert grading.call(lambda n: 2 * 2 * 1 * 4 * n * 2, 3) == 96  # own arithmetic is fine


def test_call_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match="time_limit must be a positive number"):
        grading.call(len, [], time_limit=0)
    with pytest.raises(TypeError, match="allow_package"):
        grading.call(len, [], allow_package="longctx_lab.core.cost")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(grading, "ISOLATION", "sandbox")
        with pytest.raises(ValueError, match="ISOLATION must be"):
            grading.call(len, [])


# ---- checks -----------------------------------------------------------------------------------------------

def test_check_close_compares_integers_exactly():
    big = 2 * (2**27 + 1) ** 2 - 1  # above 2**53: float rounding would call these equal
    grading.check_close(big, big, name="n", rel_tol=0)
    with pytest.raises(AssertionError, match="too high by a little"):
        grading.check_close(big + 1, big, name="n", rel_tol=0)
    with pytest.raises(AssertionError, match="too low"):
        grading.check_close(10**18 - 1, 10**18, name="n", rel_tol=0)
    with pytest.raises(AssertionError, match="should be an int, got float"):
        grading.check_close(96.0, 96, name="bytes", integer=True)
    grading.check_close(96.0, 96, name="bytes")
    grading.check_close(torch.tensor(2.0), 2.0, name="t")
    grading.check_close(2.0, torch.tensor(2.0, dtype=torch.float64), name="t")  # a 0-d tensor as expected


def test_check_close_units_hint_only_where_units_matter():
    with pytest.raises(AssertionError, match=r"factor of 2\^-1: check bytes per element"):
        grading.check_close(48, 96, name="bytes", units=True)
    with pytest.raises(AssertionError) as plain:
        grading.check_close(48, 96, name="pairs")
    assert "2^-1" in str(plain.value) and "bytes" not in str(plain.value)
    with pytest.raises(AssertionError, match="GiB"):
        grading.check_close(2**30, 1e9, name="size", units=True)
    with pytest.raises(AssertionError, match="hint: count both K and V|Hint: count both K and V"):
        grading.check_close(1, 96, name="x", hint="count both K and V")
    for bad in (float("nan"), float("inf")):
        with pytest.raises(AssertionError, match="division by zero or an overflow"):
            grading.check_close(bad, 1.0, name="x")
    with pytest.raises(AssertionError, match="should be a number, got str"):
        grading.check_close("96", 96, name="x")
    with pytest.raises(TypeError, match="name must be"):
        grading.check_close(1, 1, name="")
    with pytest.raises(TypeError, match="expected must be a real number"):
        grading.check_close(1, "1", name="x")


def test_check_tensor_hints():
    want = torch.zeros(2, 3, dtype=torch.float64)
    grading.check_tensor(torch.zeros(2, 3, dtype=torch.float64), want, name="t")
    with pytest.raises(AssertionError, match="has dtype torch.float32, expected torch.float64"):
        grading.check_tensor(torch.zeros(2, 3), want, name="t")
    grading.check_tensor(torch.zeros(2, 3), want, name="t", dtype=False)
    with pytest.raises(AssertionError, match=r"shape \(3, 2\), expected \(2, 3\)"):
        grading.check_tensor(torch.zeros(3, 2, dtype=torch.float64), want, name="t")
    nan = want.clone()
    nan[0, 0] = float("nan")
    with pytest.raises(AssertionError) as info:
        grading.check_tensor(nan, want, name="t")
    assert "NaN" in str(info.value) and "masked" not in str(info.value)
    with pytest.raises(AssertionError, match="off by up to 1"):
        grading.check_tensor(want + 1, want, name="t")

    class Sneaky(torch.Tensor):
        pass

    with pytest.raises(AssertionError, match="plain torch.Tensor, got the subclass Sneaky"):
        grading.check_tensor(want.as_subclass(Sneaky), want, name="t")
    mask = torch.eye(2, dtype=torch.bool)
    with pytest.raises(AssertionError, match="differs from the expected mask in 4 of 4"):
        grading.check_tensor(~mask, mask, name="m")
    with pytest.raises(AssertionError, match="boolean tensor"):
        grading.check_tensor(mask.int(), mask, name="m")
    with pytest.raises(TypeError, match="expected must be a torch.Tensor"):
        grading.check_tensor(want, [0.0], name="t")
