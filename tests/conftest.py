"""Shared pytest set-up: a deterministic hypothesis profile, one torch thread per test process, and
``TRITON_INTERPRET`` set (or removed) before any test module imports the kernels (``kernel_env.py``)."""

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings
from kernel_env import configure_triton_env

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=30,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    """``TRITON_INTERPRET`` before any test module imports the kernels (see ``tests/kernel_env.py``)."""
    configure_triton_env(config.getoption("markexpr", "") or "", list(config.args), Path(config.rootpath))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Test tensors are tiny and two pytest workers share two cores: thread hand-offs would cost more than
    the work (the first call of a mask test took 22 s with 2 threads on a busy machine, 0.13 s with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    """Where triton cannot be installed (macOS, Windows: no wheels), the Triton and ahead-of-time compile tests
    are skipped with the reason, so ``make test`` still passes there; the kernel chapters' no-triton path is
    tested by the ``notebooks-no-triton`` stage everywhere."""
    kernel_items = [item for item in items if item.get_closest_marker("triton") or item.get_closest_marker("aot")]
    if not kernel_items:
        return
    try:  # after pytest_configure, so TRITON_INTERPRET is already decided
        import triton  # noqa: F401
    except ImportError as exc:
        skip = pytest.mark.skip(reason=f"triton cannot be imported ({exc}; no wheels for this platform)")
        for item in kernel_items:
            item.add_marker(skip)
