"""Ring and all-gather attention across spawned gloo processes against float64 single-process attention.

Every launch has its own ``timeout`` (the launcher's deadline and the process group's timeout), so no
test can hang. One launch per world size runs every case (spawning costs ~3 s), and each case is checked
against :func:`longctx_lab.attention.reference.naive_attention` in float64 over the gathered sequence.
"""

from __future__ import annotations

import os
import time

import pytest
import torch
import torch.distributed as dist

from longctx_lab.attention.reference import naive_attention
from longctx_lab.distributed import (
    RingCase,
    all_gather_attention,
    launch,
    ring_attention,
    ring_attention_gathered,
    run_ring_cases,
    work_per_rank,
)

pytestmark = pytest.mark.distributed

TIMEOUT = 60.0  # seconds per launch
# float32 ring vs float64 reference: merge and gradients accumulate in float32 (ring of 4 blocks, 32 keys)
F32_TOL = {"atol": 2e-5, "rtol": 1e-4}
F64_TOL = {"atol": 1e-12, "rtol": 1e-10}

SEQ, HEAD_DIM = 16, 16
CASES = [
    (algorithm, dtype, layout, causal, heads)
    for algorithm in ("ring", "allgather")
    for dtype in (torch.float64, torch.float32)
    for layout in ("plain", "zigzag")
    for causal in (False, True)
    for heads in ((4, 4), (4, 2))  # MHA and GQA (group 2)
    if (dtype == torch.float64 or heads == (4, 2)) and (algorithm == "ring" or heads == (4, 2))
]
IDS = [f"{a}-{d}-{lay}-{'causal' if c else 'full'}-h{h[0]}kv{h[1]}" for a, d, lay, c, h in CASES]
RING = [i for i, case in enumerate(CASES) if case[0] == "ring"]


def _tensors(dtype, heads, seed):
    g = torch.Generator().manual_seed(seed)
    h, hk = heads
    q = torch.randn(2, h, SEQ, HEAD_DIM, generator=g, dtype=torch.float64)
    k = torch.randn(2, hk, SEQ, HEAD_DIM, generator=g, dtype=torch.float64)
    v = torch.randn(2, hk, SEQ, HEAD_DIM, generator=g, dtype=torch.float64)
    do = torch.randn(2, h, SEQ, HEAD_DIM, generator=g, dtype=torch.float64)
    return q, k, v, do


def _case(i):
    algorithm, dtype, layout, causal, heads = CASES[i]
    q, k, v, do = (t.to(dtype) for t in _tensors(dtype, heads, seed=i))
    return RingCase(q, k, v, causal=causal, layout=layout, grad_out=do, algorithm=algorithm)


@pytest.fixture(scope="module", params=[2, 4], ids=lambda p: f"P{p}")
def ring_results(request):
    start = time.monotonic()
    results = run_ring_cases([_case(i) for i in range(len(CASES))], request.param, timeout=TIMEOUT)
    assert time.monotonic() - start < TIMEOUT
    return request.param, results


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_ring_matches_float64_reference(ring_results, i):
    _, dtype, layout, causal, heads = CASES[i]
    q, k, v, do = (t.requires_grad_() for t in _tensors(dtype, heads, seed=i))
    ref = naive_attention(q, k, v, causal=causal)
    ref.backward(do.detach())
    got = ring_results[1][i]
    tol = F64_TOL if dtype == torch.float64 else F32_TOL
    for name, want in (("out", ref), ("dq", q.grad), ("dk", k.grad), ("dv", v.grad)):
        assert got[name].dtype == dtype, name
        assert got[name].shape == want.shape, name
        torch.testing.assert_close(got[name].double(), want.detach(), **tol, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("i", RING, ids=[IDS[i] for i in RING])
def test_ring_counts_work_and_messages(ring_results, i):
    """Each rank's measured attended pairs equal work_per_rank; P - 1 K/V messages forward, 2P - 1 backward."""
    world, results = ring_results
    _, dtype, layout, causal, (heads, kv_heads) = CASES[i]
    stats = results[i]["stats"]
    assert [s["pairs"] for s in stats] == work_per_rank(SEQ, world, layout, causal=causal)
    kv_bytes = 2 * 2 * kv_heads * (SEQ // world) * HEAD_DIM * torch.finfo(dtype).bits // 8  # K and V of one shard
    for s in stats:
        assert (s["forward_messages"], s["backward_messages"]) == (world - 1, 2 * world - 1)
        assert (s["forward_bytes"], s["backward_bytes"]) == ((world - 1) * kv_bytes, (2 * world - 1) * kv_bytes)


def test_zigzag_balances_measured_causal_work(ring_results):
    """Measured in the run (P = 2 and 4): zigzag busiest/idlest rank ratio 1, plain's >= world_size."""
    world = ring_results[0]
    pairs = {}
    for i, (algorithm, dtype, layout, causal, heads) in enumerate(CASES):
        if algorithm == "ring" and causal and dtype == torch.float64 and heads == (4, 4):
            pairs[layout] = [s["pairs"] for s in ring_results[1][i]["stats"]]
    assert max(pairs["zigzag"]) / min(pairs["zigzag"]) == 1.0
    assert max(pairs["plain"]) / min(pairs["plain"]) >= world


def test_gathered_single_case_without_grad():
    q, k, v, _ = _tensors(torch.float64, (2, 1), seed=99)  # MQA, no backward
    got = ring_attention_gathered(q, k, v, world_size=2, causal=True, layout="zigzag", scale=0.3, timeout=TIMEOUT)
    assert set(got) == {"out", "stats"}
    assert [s["forward_messages"] for s in got["stats"]] == [1, 1] and "backward_messages" not in got["stats"][0]
    torch.testing.assert_close(got["out"], naive_attention(q, k, v, causal=True, scale=0.3), **F64_TOL)


def test_raising_rank_fails_fast_with_its_traceback():
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"rank 1 of 2 raised:(.|\n)*asked to fail"):
        run_ring_cases([_case(0)], 2, timeout=TIMEOUT, fail_rank=1)
    assert time.monotonic() - start < 20, "the other rank must be stopped, not waited for until the deadline"


def _die_on_rank_1():
    if dist.get_rank() == 1:
        os._exit(3)
    t = torch.zeros(1)
    dist.recv(t, 1)  # would block for the process group's timeout
    return t


def _sleep_forever():
    time.sleep(3600)


def test_dying_rank_fails_fast():
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"rank 1 of 2 exited with code 3"):
        launch(_die_on_rank_1, 2, timeout=TIMEOUT)
    assert time.monotonic() - start < 20


def test_hanging_ranks_time_out():
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"ranks \[0, 1\] of 2 did not finish within timeout=6"):
        launch(_sleep_forever, 2, timeout=6)
    assert time.monotonic() - start < 15


@pytest.mark.parametrize(
    ("seq", "world_size", "layout", "match"),
    [
        (10, 4, "plain", r"seq_len must be divisible by 4 \(world_size=4 ranks x 1 chunk\(s\).*got 10"),
        (12, 4, "zigzag", r"seq_len must be divisible by 8 \(world_size=4 ranks x 2 chunk\(s\).*got 12"),
        (16, 0, "plain", r"world_size must be an integer >= 1, got 0"),
        (16, 2, "spiral", r"layout must be one of \('plain', 'zigzag'\), got 'spiral'"),
        (16, 2, "plain:tree", r"algorithm must be one of \('ring', 'allgather'\), got 'tree'"),
    ],
)
def test_bad_world_size_length_or_layout(seq, world_size, layout, match):
    q = torch.randn(1, 2, seq, 16)
    layout, _, algorithm = layout.partition(":")
    with pytest.raises(ValueError, match=match):
        run_ring_cases([RingCase(q, q, q, layout=layout, algorithm=algorithm or "ring")], world_size, timeout=5)


def test_ring_attention_needs_a_process_group():
    q = torch.randn(1, 2, 8, 16)
    with pytest.raises(RuntimeError, match="initialised torch.distributed process group"):
        ring_attention(q, q, q)
    with pytest.raises(ValueError, match="divisible by 2 for layout 'zigzag', got 7"):
        ring_attention(q[:, :, :7], q[:, :, :7], q[:, :, :7], layout="zigzag")
    with pytest.raises(RuntimeError, match="initialised torch.distributed process group"):
        all_gather_attention(q, q, q)
    with pytest.raises(TypeError, match="stats must be a dict or None, got list"):
        ring_attention(q, q, q, stats=[])
