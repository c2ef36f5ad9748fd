"""Write notebooks/ch04_flash_attention.ipynb, its nbgrader source notebook and the prepared wrong answer.

Run from the repository root: ``.venv/bin/python tools/build_ch04_flash_attention.py``, then
``make exercises``. The notebooks are stored without outputs; the logic they call lives in the package
(``longctx_lab.attention.online_softmax``, ``.tiled``, ``.naive_tiled_snippet``, ``longctx_lab.kernels``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools import colab_cell  # noqa: E402
from tools.nbgrader_cells import code as g_code  # noqa: E402
from tools.nbgrader_cells import markdown as g_markdown  # noqa: E402
from tools.nbgrader_cells import notebook, solution, tests, write  # noqa: E402

NAME = "ch04_flash_attention"
CHAPTER: list[nbformat.NotebookNode] = []


def md(text: str) -> None:
    CHAPTER.append(nbformat.v4.new_markdown_cell(text.strip()))


def code(text: str) -> None:
    CHAPTER.append(nbformat.v4.new_code_cell(text.strip()))


md(r"""
# Chapter 4 — FlashAttention: from online softmax to Triton kernels

**What you will learn.** How softmax can be computed in one streaming pass (the *online softmax*: a running max
and a running sum, rescaled as you go); how that turns attention into a loop over tiles that never builds the
$n \times n$ score matrix; which tiles a causal or sliding-window mask lets a kernel skip; why the tiled schedule
moves far fewer bytes between HBM and the chip (IO complexity, with A100 and H100 numbers); how the backward pass
recomputes the probabilities from one number per row (the FlashAttention-2 equations); how grouped-query attention
reads shared K/V heads without copying them; and what the real Triton kernel of this course looks like, run on
your CPU through the Triton interpreter.

**What you need.** A CPU is enough: every cell runs on 2 cores in under two minutes. A GPU is optional; the last
section measures the Triton kernel only if one is present and prints no GPU number otherwise. Everything here calls
`longctx_lab.attention` (the PyTorch implementation) and `longctx_lab.kernels` (the Triton kernels and the
dispatcher that picks one or the other).
""")

code(colab_cell.canonical_source())

code(r"""
import datetime
import importlib.util

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.colors import ListedColormap
from matplotlib.ticker import MaxNLocator
from tqdm.auto import tqdm

from longctx_lab import configs, cost
from longctx_lab.attention import naive_tiled_snippet as snippet
from longctx_lab.attention.masks import build_mask
from longctx_lab.attention.online_softmax import empty_state, finalize, merge_states, update_state
from longctx_lab.attention.reference import naive_attention
from longctx_lab.attention.tiled import (
    flash_block_sizes,
    standard_attention_hbm_bytes,
    tile_map,
    tiled_attention,
    tiled_attention_forward,
    tiled_hbm_bytes,
)
from longctx_lab.claim_sets import ch04_flash_attention as article
from longctx_lab.claims import show_claims
from longctx_lab.measure import fit_power_law, machine_description, measure_attention
from longctx_lab.plots import loglog_axes, use_course_style

use_course_style()
torch.manual_seed(0)
print(machine_description())
""")

md(r"""
## 1. Online softmax

For one query row with scores $s_1, \dots, s_n$, softmax is $p_j = e^{s_j - m} / \ell$ with $m = \max_j s_j$
(subtracting the max keeps every exponent $\le 0$, so nothing overflows) and $\ell = \sum_j e^{s_j - m}$.
Attention wants $o = \sum_j p_j v_j$. The trouble: $m$ needs *all* the scores before the first exponential.

The fix is to keep a running state $(m, \ell, a)$ over the keys seen so far, all measured against the current max:
$\ell = \sum_{j\,\text{seen}} e^{s_j - m}$ and $a = \sum_{j\,\text{seen}} e^{s_j - m} v_j$. When a new block of
scores $s_B$ arrives, let $m' = \max(m, \max s_B)$. Every old term $e^{s_j - m}$ must become $e^{s_j - m'}$, which
is the old term times $\alpha = e^{m - m'} \le 1$:

$$\ell \leftarrow \alpha\,\ell + \sum_{j \in B} e^{s_j - m'}, \qquad
a \leftarrow \alpha\,a + \sum_{j \in B} e^{s_j - m'} v_j, \qquad m \leftarrow m'.$$

At the end $o = a / \ell$ and the log-sum-exp is $\mathrm{lse} = m + \log \ell$. Two states over *disjoint* key
sets merge the same way, with $m = \max(m_1, m_2)$ and weights $e^{m_1 - m}$, $e^{m_2 - m}$: the merge is exact,
associative and commutative, so keys can be visited in any grouping and any order (split-KV decoding and ring
attention rely on that). Below, a row of 12 scores streams by in blocks of 4.
""")

code(r"""
gen = torch.Generator().manual_seed(0)
scores = torch.randn(1, 12, generator=gen, dtype=torch.float64) * 3
values = torch.randn(12, 2, generator=gen, dtype=torch.float64)

state = empty_state((1,), 2, dtype=torch.float64)
history = []
for start in range(0, 12, 4):
    state = update_state(state, scores[:, start:start + 4], values[start:start + 4])
    history.append((start + 4, float(state.m), float(state.l)))
    print(f"after {start + 4:2d} keys: running max m = {float(state.m):6.3f}, running sum l = {float(state.l):7.4f}")

out, lse = finalize(state)
exact = torch.softmax(scores, -1) @ values
print(f"streamed output vs softmax(s) @ v: max error {(out - exact).abs().max().item():.1e}")
print(f"streamed lse vs torch.logsumexp:    error {(lse - torch.logsumexp(scores, -1)).abs().item():.1e}")

# The same keys as three partial states merged in a different order: still exact.
parts = [update_state(empty_state((1,), 2, dtype=torch.float64), scores[:, a:b], values[a:b])
         for a, b in ((0, 5), (5, 7), (7, 12))]
merged = merge_states(parts[2], merge_states(parts[0], parts[1]))
print(f"merge of 3 partial states (order 3, 1, 2): max error {(finalize(merged)[0] - exact).abs().max().item():.1e}")

fig, ax = plt.subplots(figsize=(7.5, 3.2))
ax.bar(range(12), scores[0].numpy(), color="#9bb7d4", label="scores $s_j$")
ax.step([0] + [h[0] for h in history], [history[0][1]] + [h[1] for h in history], where="pre", color="#d1495b",
        label="running max $m$ (after each block)")
for b in (4, 8):
    ax.axvline(b - 0.5, color="gray", ls=":", lw=1)
ax.set_xlabel("key index j (blocks of 4)")
ax.legend(loc="lower left");
""")

md(r"""
## 2. The articles' tiled snippet, and why it is wrong

One of the articles this course grew from prints a "conceptual" FlashAttention: for each query block and each key
block it computes `softmax(Q_block @ K_block.T)`, multiplies by `V_block`, and **adds** the block results into the
output. `longctx_lab.attention.naive_tiled_snippet` implements it as written (with the 3-D transpose written
`transpose(-2, -1)` so that it runs). Each block's softmax sums to 1 on its own, so a row's weights sum to the
*number of key blocks*, and every block gets equal say however small its scores. Online softmax is exactly the
missing piece: it weights each block by its share $e^{m_B}\ell_B / \sum e^{m_{B'}}\ell_{B'}$ of the softmax mass.
""")

code(r"""
n, d = 512, 64
blocks = [512, 256, 128, 64, 32]
rows = [snippet.snippet_error(n, d, b) for b in blocks]
for b, r in zip(blocks, rows):
    print(f"block {b:3d}: {r['n_key_blocks']:2d} key blocks, row weights sum to {r['snippet_row_weight_sum']:5.2f}, "
          f"relative error {r['snippet_relative_error']:6.2f}; "
          f"online-softmax fix: max error {r['fixed_max_abs_error']:.1e}")

fig, ax = plt.subplots(figsize=(6.5, 3.4))
ax.plot([r["n_key_blocks"] for r in rows], [r["snippet_relative_error"] for r in rows], "o-", label="articles' snippet")
ax.plot([r["n_key_blocks"] for r in rows], [max(r["fixed_max_abs_error"], 1e-17) for r in rows], "s-",
        label="same loops + online softmax")
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("number of key blocks (n = 512)")
ax.set_ylabel("error vs exact attention")
ax.legend();
""")

code(r"""
show_claims([c for c in article.claims() if "snippet" in c.claim])
""")

md(r"""
## 3. The tiled forward pass, and which tiles it skips

`tiled_attention_forward(q, k, v, causal=, window=, block_q=, block_k=)` is FlashAttention-2's forward in
PyTorch: for each block of `block_q` query rows, it walks the key blocks, computes one `block_q x block_k` tile of
scores, masks it if it straddles a mask edge, and folds it into the running state of §1. It returns the output and
the LSE, shape `(batch, heads, q_len)`, float32.

A mask lets the kernel do less. With `causal=True` a query block never needs key blocks to its right; with a
sliding window `window=w` (query at position $p$ sees keys $p - w < j \le p$, flash-attn's
`window_size=(w-1, 0)`) it also skips blocks too far to the left. Tiles entirely outside the mask are never loaded;
tiles cut by the mask edge are loaded and masked element by element; the rest need no mask. With
`q_len < kv_len` the queries are the *last* positions (bottom-right alignment, as in a KV-cache prefill chunk).
""")

code(r"""
cases = {
    "full, n = 512": dict(q_len=512),
    "causal": dict(q_len=512, causal=True),
    "causal, window 128": dict(q_len=512, causal=True, window=128),
    "bidirectional window 96": dict(q_len=512, window=96),
    "causal, 128 new queries\nover 512 keys": dict(q_len=128, kv_len=512, causal=True),
}
cmap = ListedColormap(["#f2f2f2", "#e9a03b", "#1f5aa6"])
fig, axes = plt.subplots(1, len(cases), figsize=(14, 3.4))
for ax, (title, kw) in zip(axes, cases.items()):
    tiles = tile_map(**kw, block_q=32, block_k=32)
    ax.imshow(tiles, cmap=cmap, vmin=0, vmax=2, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("key block")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(False)
    visited = int((tiles > 0).sum())
    print(f"{title.replace(chr(10), ' '):<42} loads {visited:3d} of {tiles.numel():3d} tiles "
          f"({visited / tiles.numel():.0%}), {int((tiles == 1).sum()):3d} of them masked")
axes[0].set_ylabel("query block")
fig.suptitle("32 x 32 tiles: grey = skipped, orange = loaded and masked, blue = loaded, no mask", fontsize=11)
fig.tight_layout();
""")

md(r"""
Causal attention loads about half the tiles, and a window makes the count linear in $n$: a band of constant
width. Does the tiled loop give the same numbers as textbook attention? Below it is compared with a float64
naive reference and with PyTorch's `scaled_dot_product_attention` (SDPA) in float32, on a shape with lengths that
are not multiples of the block, grouped-query heads (8 query heads sharing 2 KV heads) and a causal window.
The yardstick follows flash-attn's tests: our error against float64 should be no larger than a small multiple of
SDPA's own float32 error.
""")

code(r"""
gen = torch.Generator().manual_seed(1)
q64 = torch.randn(2, 8, 200, 64, generator=gen, dtype=torch.float64)
k64, v64 = (torch.randn(2, 2, 200, 64, generator=gen, dtype=torch.float64) for _ in range(2))
q, k, v = q64.float(), k64.float(), v64.float()
kw = dict(causal=True, window=50)

out, lse = tiled_attention_forward(q, k, v, **kw, block_q=64, block_k=64)
ref = naive_attention(q64, k64, v64, **kw)
mask = build_mask(200, 200, **kw)
sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
scores = (q64 @ k64.repeat_interleave(4, dim=1).transpose(-2, -1) / 8).masked_fill(~mask, float("-inf"))
print(f"output: tiled vs float64 {(out - ref).abs().max().item():.2e};  SDPA float32 vs float64 "
      f"{(sdpa - ref).abs().max().item():.2e}")
print(f"LSE:    tiled vs float64 logsumexp {(lse - torch.logsumexp(scores, -1)).abs().max().item():.2e}")
""")

md(r"""
## 4. IO complexity: why tiling is faster on a GPU

Tiling does not save arithmetic. Forward attention is $4 n^2 d$ FLOPs per head either way (causal: about half).
What it saves is *traffic* between HBM (the GPU's large, slow memory) and on-chip SRAM (shared memory: small and
about ten times faster). Textbook attention runs as three kernels, each a trip through HBM:
$S = QK^\top$ (write $n^2$), $P = \mathrm{softmax}(S)$ (read and write $n^2$), $O = PV$ (read $n^2$): about
$4n^2$ elements, against $4n^2d$ FLOPs, or about $d/2$ FLOPs per byte in fp16. The tiled schedule reads each
query block once and the K and V blocks once per query block, and never writes a score:
about $4n^2 d / B_q$ bytes, so its arithmetic intensity is about $B_q$ FLOPs per byte. Below are the datasheet
numbers (sources in `longctx_lab.configs`) and FlashAttention's rule for the tile size that fits in SRAM.
""")

code(r"""
for gpu in (configs.A100_80GB_SXM, configs.H100_SXM):
    bq, bk = flash_block_sizes(gpu.smem_per_sm_bytes, 64)
    print(f"{gpu.name}: SRAM {gpu.smem_per_sm_bytes // 1024} KiB per SM x {gpu.n_sms} SMs "
          f"= {cost.fmt_bytes(gpu.smem_per_sm_bytes * gpu.n_sms)} at {gpu.smem_bandwidth / 1e12:.1f} TB/s; "
          f"HBM {cost.fmt_bytes(gpu.hbm_bytes)} at {gpu.hbm_bandwidth / 1e12:.2f} TB/s; "
          f"(SRAM/HBM bandwidth {gpu.smem_bandwidth / gpu.hbm_bandwidth:.1f}x); "
          f"ridge point {gpu.ridge_intensity:.0f} FLOP/byte; FlashAttention-1 tiles for d = 64: {bq} x {bk}")
    print(f"   source: {gpu.source}")
""")

code(r"""
gpu = configs.A100_80GB_SXM
ns = [2**p for p in range(9, 17)]
d = 64
std = [standard_attention_hbm_bytes(n, head_dim=d) for n in ns]
til = [tiled_hbm_bytes(n, head_dim=d, block_q=128, block_k=64) for n in ns]
flops = [cost.attention_flops(n, d) for n in ns]

fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4))
loglog_axes(a1, xlabel="sequence length n", ylabel="HBM bytes, one head, fp16", title="Memory traffic")
a1.plot(ns, std, "o-", label="textbook (3 kernels)")
a1.plot(ns, til, "s-", label="tiled, 128 x 64 tiles")
a1.legend()
loglog_axes(a2, xlabel="sequence length n", ylabel="seconds (roofline lower bound)", title=f"{gpu.name}, d = {d}")
a2.plot(ns, [cost.time_lower_bound(f, b, gpu) for f, b in zip(flops, std)], "o-", label="textbook")
a2.plot(ns, [cost.time_lower_bound(f, b, gpu) for f, b in zip(flops, til)], "s-", label="tiled")
a2.plot(ns, [f / gpu.peak_flops_16bit for f in flops], "k--", lw=1, label="FLOPs at peak")
a2.legend()
i = ns.index(4096)
print(f"n = 4096: textbook {std[i] / 1e6:.0f} MB, tiled {til[i] / 1e6:.0f} MB for {flops[i] / 1e9:.2f} GFLOP; "
      f"intensity {flops[i] / std[i]:.0f} vs {flops[i] / til[i]:.0f} FLOP/byte (ridge {gpu.ridge_intensity:.0f})")
m = article.speed_model()
print(f"roofline bounds at n = 4096: textbook {m['standard_seconds'] * 1e6:.0f} us, tiled "
      f"{m['flash_seconds'] * 1e6:.0f} us: a model, not a measurement")
""")

md(r"""
The textbook version sits far left of the ridge point: memory-bound, its time set by HBM bytes. The tiled version
has an intensity close to the ridge, so its time approaches the FLOP bound. This model ignores the L2 cache
(which catches many of the repeated K/V reads) and the softmax's own cost, so treat it as a direction, not a
promise. The speed claims of the articles are checked against it below; we print no GPU measurement we did not
make.

## 5. The backward pass: recompute, don't store

Autograd for textbook attention keeps the $n \times n$ probability matrix $P$ for the backward pass. The tiled
version keeps only $Q, K, V$, the output $O$ and the LSE (one number per row), and rebuilds each tile of $P$ when it
needs it: $P_{ij} = \exp(s_{ij} - \mathrm{lse}_i)$. With $\delta_i = \sum_c dO_{ic} O_{ic}$ (one pass over the
output, the "pre-pass"), FlashAttention-2's backward is, for every tile the forward visited:

$$dV_j \mathrel{+}= P_{ij}^\top dO_i,\quad dP_{ij} = dO_i V_j^\top,
\quad dS_{ij} = P_{ij} \circ (dP_{ij} - \delta_i),
\quad dQ_i \mathrel{+}= \tfrac{1}{\sqrt d}\, dS_{ij} K_j,
\quad dK_j \mathrel{+}= \tfrac{1}{\sqrt d}\, dS_{ij}^\top Q_i.$$

($\delta_i$ replaces $\sum_j P_{ij} dP_{ij}$, the softmax-Jacobian term, because
$\sum_j P_{ij} dP_{ij} = dO_i \cdot O_i$.)
The outer loop runs over key blocks so that $dK_j$ and $dV_j$ stay on chip; with grouped-query attention the
query heads of a group are stacked into one tile, so their contributions to the shared $dK$, $dV$ add up in the
same matrix product, and K/V are never copied per query head.
""")

code(r"""
leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
ref_leaves = [t.clone().requires_grad_(True) for t in (q64, k64, v64)]
dout = torch.randn(q.shape, generator=gen)
tiled_attention(*leaves, **kw).backward(dout)
naive_attention(*ref_leaves, **kw).backward(dout.double())
sdpa_leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
F.scaled_dot_product_attention(*sdpa_leaves, attn_mask=mask, enable_gqa=True).backward(dout)
for name, a, r, s in zip(("dQ", "dK", "dV"), leaves, ref_leaves, sdpa_leaves):
    print(f"{name}: tiled vs float64 {(a.grad - r.grad).abs().max().item():.2e};  SDPA float32 vs float64 "
          f"{(s.grad - r.grad).abs().max().item():.2e};  shape {tuple(a.grad.shape)}")
""")

code(r"""
lengths = [128, 256, 512, 1024]
saved = {name: [article.saved_for_backward_bytes(fn, n) for n in lengths] for name, fn in
         (("naive", lambda q, k, v: naive_attention(q, k, v)), ("tiled", lambda q, k, v: tiled_attention(q, k, v)))}
ax = loglog_axes(xlabel="sequence length n", ylabel="bytes kept for backward", title="What autograd stores (d = 16)")
for name, ys in saved.items():
    p = fit_power_law(lengths, ys)[0]
    ax.plot(lengths, ys, "o-", label=f"{name}: grows as n^{p:.2f}")
    print(f"{name}: {ys} bytes kept for backward, exponent {p:.2f}")
ax.legend();
""")

code(r"""
show_claims([c for c in article.claims() if "memory" in c.claim or "Recomputing" in c.claim])
""")

md(r"""
A query row can also see *no* key at all: with `causal=True` and more queries than keys, the first
`q_len - kv_len` rows sit before key 0. Softmax of an empty row is undefined; the tiled path (like flash-attn and
the Triton kernel) returns zeros with LSE $= -\infty$ and zero gradients, never NaN:
""")

code(r"""
qq = torch.randn(1, 1, 6, 16, generator=gen, requires_grad=True)
kk = torch.randn(1, 1, 4, 16, generator=gen, requires_grad=True)
o, l = tiled_attention(qq, kk, kk, causal=True, return_lse=True)
o.sum().backward()
print("LSE per row:", [round(x, 3) for x in l[0, 0].tolist()])
print("rows of zeros:", int((o[0, 0] == 0).all(-1).sum()), "| any NaN in output or grads:",
      bool(torch.isnan(o).any() or torch.isnan(qq.grad).any() or torch.isnan(kk.grad).any()))
""")

md(r"""
## 6. Measured on this machine

How do memory and time behave on this CPU? `measure_attention` runs each implementation in a fresh process and
reads the operating system's peak-memory high-water mark: naive attention (materialises the matrix), PyTorch's
SDPA (a fused CPU kernel) and our tiled PyTorch loop (one head, $d = 64$, float32). If the course's recorded CPU
benchmark (`benchmarks/results/attention-cpu.json`, from `longctx-lab bench`) is present, its device and date are
printed as well.
""")

code(r"""
sizes = [512, 1024, 2048, 4096]
when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
runs = {impl: measure_attention(sizes, impl=impl, head_dim=64, repeats=2)
        for impl in tqdm(["naive", "sdpa", "tiled"], desc="measuring")}
print(f"measured {when} on {machine_description()}")

fig, (a_t, a_m) = plt.subplots(1, 2, figsize=(12, 4))
for impl, rs in runs.items():
    a_t.plot(sizes, [r.seconds for r in rs], "o-", label=impl)
    a_m.plot(sizes, [max(r.peak_bytes, 4096) for r in rs], "o-", label=impl)
for ax, label in ((a_t, "seconds per call"), (a_m, "peak extra memory (bytes, < 4 KiB drawn at 4 KiB)")):
    loglog_axes(ax, xlabel="sequence length n", ylabel=label)
    ax.legend()
for impl, rs in runs.items():
    print(f"{impl:>5}: peak extra memory " + ", ".join(f"{cost.fmt_bytes(r.peak_bytes).split(' (')[0]}" for r in rs)
          + f"; {rs[-1].seconds * 1e3:.1f} ms at n = {sizes[-1]}")
p_naive = fit_power_law(sizes, [r.peak_bytes for r in runs["naive"]])[0]
tiled_peak = max(r.peak_bytes for r in runs["tiled"])
print(f"naive memory grows as n^{p_naive:.2f}; the tiled loop never needs more than "
      f"{cost.fmt_bytes(tiled_peak).split(' (')[0]} extra (tile-sized buffers, near the method's resolution)")
naive, tiled = runs["naive"][-1], runs["tiled"][-1]
print(f"tiled / naive at n = {sizes[-1]}: memory {tiled.peak_bytes / naive.peak_bytes:.2f}x, "
      f"time {tiled.seconds / naive.seconds:.2f}x")

import json
from pathlib import Path

import longctx_lab

recorded = Path(longctx_lab.__file__).resolve().parents[1] / "benchmarks" / "results" / "attention-cpu.json"
if recorded.exists():
    data = json.loads(recorded.read_text())
    print("recorded benchmark:", {key: data[key] for key in ("device", "date", "command") if key in data})
else:
    print("no recorded CPU benchmark file found; the plots above are this run's measurements")
""")

md(r"""
On a CPU the tiled loop is written in Python, one small matrix product per tile, so at the largest size it is
slower than naive attention (whose one big matrix product runs at full speed; the ratio is printed above), while its
memory stays nearly flat. The memory
result carries over to GPUs; the speed result does not, because there the bottleneck is HBM traffic, which is what
the tiled schedule removes. That is the honest reading of the articles' speed claim:
""")

code(r"""
show_claims([c for c in article.claims(runs["naive"] + runs["tiled"]) if "faster" in c.claim or "FLOPs" in c.claim
             or "approximat" in c.claim])
""")

md(r"""
## 7. The Triton kernel, run on this CPU

`longctx_lab.kernels` holds the same algorithm as Triton kernels: one program per (query block, batch x head),
online softmax in float32 registers, key blocks outside the causal/window band skipped (the same rule as
`tile_map` above), GQA by indexing KV head `h // group`. On a GPU, `longctx_lab.kernels.flash_attention` compiles
and runs them; on a CPU it runs the tiled PyTorch path of this chapter. Triton also has an *interpreter*
(`TRITON_INTERPRET=1`, set before `triton` is imported) that executes the kernel's Python source with NumPy: slow,
but it runs the real kernel, masks and pointer arithmetic included. `run_forward_interpreted` does that in a
fresh process on a tiny input; we compare it with the tiled PyTorch path. (The interpreter computes bfloat16
`tl.dot` wrongly, without an error, so the course refuses bfloat16 there.)
""")

code(r"""
if importlib.util.find_spec("triton") is None:
    print("triton is not installed here (pip install triton): skipping the interpreter demo")
else:
    from longctx_lab.kernels import run_forward_interpreted

    g = torch.Generator().manual_seed(2)
    tq = torch.randn(1, 4, 40, 16, generator=g)
    tk, tv = (torch.randn(1, 2, 40, 16, generator=g) for _ in range(2))
    for kw_t in (dict(causal=True), dict(causal=True, window=12)):
        out_t, lse_t = run_forward_interpreted(tq, tk, tv, **kw_t, block_m=16, block_n=16)
        out_p, lse_p = tiled_attention_forward(tq, tk, tv, **kw_t, block_q=16, block_k=16)
        print(f"{kw_t}: Triton kernel (interpreted) vs tiled PyTorch: output {(out_t - out_p).abs().max().item():.1e}, "
              f"LSE {(lse_t - lse_p).abs().max().item():.1e}")
""")

md(r"""
### Reading the kernels

The kernels live in `longctx_lab/kernels/flash_kernels.py`; the cells below print them from that file, so what you
read is what the tests run. Start with the loop bounds, because that is where masked tiles are *skipped*: for the
query tile that starts at row `start_m`, `_key_range` computes the keys that *some* row of the tile may see
(`lo`, `hi`: the union of the rows' bands) and the keys that *every* row sees (`full_lo`, `full_hi`: their
intersection), from the causal and window rules with the bottom-right shift `N - M`. `_split_range` rounds these to
tile boundaries and returns `(start, a, b, end)`: tiles before `start` and after `end` are never loaded,
`[a, b)` are loaded without any mask, and only the edge tiles `[start, a)` and `[b, end)` build a mask.
""")

code(r"""
from IPython.display import Markdown, display

from longctx_lab.kernels.source import kernel_source


def show_kernel(name):
    display(Markdown(f"```python\n{kernel_source(name)}\n```"))


show_kernel("_key_range")
""")

md(r"""
The forward kernel is one program per (query tile, batch x head). It finds its KV head as `h // GROUP` and offsets
the K and V pointers there: grouped-query attention costs no copy. It loads its query tile once, runs the online
softmax over the three key ranges (masked edge, unmasked interior, masked edge), and finally divides by the running
sum and stores the LSE. The kernel works in base 2 (`exp2`, with $\log_2 e$ folded into the scale, which is cheaper
on the GPU) and converts the LSE back to a natural log with $\ln 2$ at the end.
""")

code(r"""show_kernel("attn_fwd_kernel")""")

md(r"""
`_fwd_tiles` is section 2's online softmax, a tile at a time, in float32 registers: `m_i` is the running maximum,
`l_i` the running sum, `acc` the unnormalised output. Each new tile raises the maximum, rescales the old sum and
output by `alpha` $= 2^{m_\text{old} - m_\text{new}}$, and adds the tile's contribution. A row that has seen no key
yet has maximum $-\infty$; the kernel subtracts 0 instead, so `exp2` returns 0 rather than NaN.
""")

code(r"""show_kernel("_fwd_tiles")""")

md(r"""
The backward pass has three kernels. A pre-pass computes $\Delta_i = \sum_d dO_{id} O_{id}$ per row. Then one
program per *key* tile (`attn_bwd_dkdv_kernel`) walks the query tiles that can see it (`_query_range`, the mirror
of `_key_range`), rebuilds $P = \exp(S - \text{LSE})$ from the saved LSE instead of storing it, and accumulates
$dV \mathrel{+}= P^\top dO$ and $dK \mathrel{+}= dS^\top Q$ with $dS = P \circ (dP - \Delta)$, $dP = dO\,V^\top$.
For grouped-query attention that program loops over the query heads of its group, so the gradient of a shared K/V
head is summed in registers and written once. Finally `attn_bwd_dq_kernel` walks the same key tiles as the forward
and accumulates $dQ \mathrel{+}= dS\,K$. Here is the inner loop of the dK/dV kernel:
""")

code(r"""show_kernel("_dkdv_tiles")""")

md(r"""
### On a GPU (optional)

With a CUDA device, the next cell times the compiled Triton kernel against SDPA at a few lengths and prints what it
measured, with the device name. Without one it says so and prints nothing else: the course shows no GPU number
that was not measured.
""")

code(r"""
if not torch.cuda.is_available():
    print("no CUDA device: no GPU measurements in this run")
else:
    from longctx_lab.kernels import flash_attention

    name = torch.cuda.get_device_name()
    for n in (1024, 4096, 8192):
        qg = torch.randn(1, 16, n, 64, device="cuda", dtype=torch.float16)
        for label, fn in (("triton", lambda x=qg: flash_attention(x, x, x, causal=True)),
                          ("sdpa", lambda x=qg: F.scaled_dot_product_attention(x, x, x, is_causal=True))):
            fn()
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(10):
                fn()
            end.record()
            torch.cuda.synchronize()
            ms = start.elapsed_time(end) / 10
            tflops = cost.attention_flops(n, 64, n_heads=16, causal=True) / (ms * 1e-3) / 1e12
            print(f"{name}, n = {n}, causal fp16: {label:>6} {ms:.3f} ms, {tflops:.1f} TFLOP/s")
""")

md(r"""
## Summary

* Online softmax keeps a running max and sum per row and rescales them when the max grows; partial states over
  disjoint keys merge exactly. The articles' tiled snippet lacks exactly this and is wrong by a factor close to the
  number of key blocks.
* The tiled forward never holds the $n \times n$ matrix; its extra memory is $O(n)$ and its FLOPs are unchanged,
  except that causal and window masks let whole tiles be skipped.
* On a GPU the win is HBM traffic: about $B_q$ FLOPs per byte instead of about $d/2$.
* The backward pass rebuilds $P$ from the LSE, tile by tile, for one extra matrix product (about 17% more FLOPs
  in forward + backward), not a doubling.

The exercise for this chapter has you write the merge of two softmax states, a tiled forward, and a small Triton
kernel, checked on your CPU.

## Quiz
""")

code(r"""
from longctx_lab.quiz import show_quiz
from longctx_lab.quizzes.ch04_flash_attention import QUIZ

show_quiz(QUIZ)
""")


SOLUTION = [
    g_markdown(r"""
# Chapter 4 exercises — FlashAttention from the inside

Three tasks, 10 points, in the style of Triton-Puzzles: each states a spec, the chapter's package is the
reference, and the checks run on your CPU (Triton through its interpreter). Write your code between the lines
that say `# YOUR CODE HERE` (delete the `raise NotImplementedError()` line), then run the test cell below it.
Some tests are hidden and run only when the notebook is graded, so try your code on other inputs too.

Conventions (as in the chapter): a partial softmax state over some keys is `(m, l, acc)` with `m` the max score
seen, `l = sum_j exp(s_j - m)` and `acc = sum_j exp(s_j - m) v_j`; a state that has seen no key has
`m = -inf`, `l = 0`, `acc = 0`. The log-sum-exp of a row is `m + log(l)`.
""", "intro"),
    g_code(r"""
import os

import torch

# The Triton interpreter must be switched on before triton is imported (no GPU needed).
if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

import math

import triton
import triton.language as tl

from longctx_lab import grading

torch.manual_seed(0)
print("Triton", triton.__version__, "| interpreter:", os.environ.get("TRITON_INTERPRET") == "1")
""", "setup"),
    g_markdown(r"""
## Task 1 (3 points): merge two partial softmax states

Write `merge(a, b)` for two states `a = (m_a, l_a, acc_a)` and `b = (m_b, l_b, acc_b)` computed over *disjoint*
sets of keys (for the same query rows). `m` and `l` have shape `(rows,)`, `acc` has shape `(rows, d)`. Return the
state `(m, l, acc)` over the union of the keys. Requirements: exact (up to rounding) for any scores, including
scores of +-1000; merging with an empty state (`m = -inf`, `l = 0`, `acc = 0`) returns the other state; never NaN.
""", "task1_text"),
    solution(r"""
def merge(a, b):
    m_a, l_a, acc_a = a
    m_b, l_b, acc_b = b
    ### BEGIN SOLUTION
    m = torch.maximum(m_a, m_b)
    m_safe = torch.where(torch.isneginf(m), torch.zeros_like(m), m)  # both empty: avoid -inf - (-inf)
    w_a = torch.exp(m_a - m_safe)
    w_b = torch.exp(m_b - m_safe)
    return m, w_a * l_a + w_b * l_b, w_a[:, None] * acc_a + w_b[:, None] * acc_b
    ### END SOLUTION
""", "task1_merge"),
    tests(r"""
def _state(scores, values):
    # partial state of one block of keys, computed directly
    m = scores.max(dim=-1).values
    p = torch.exp(scores - m[:, None])
    return m, p.sum(-1), p @ values


def _check_merge(scores, values, cut, name):
    got = grading.call(merge, _state(scores[:, :cut], values[:cut]), _state(scores[:, cut:], values[cut:]))
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        raise AssertionError(f"{name}: merge should return a tuple (m, l, acc)")
    m, l, acc = got
    grading.check_tensor(m, scores.max(-1).values, name=f"{name}: m")
    grading.check_tensor(acc / l[:, None], torch.softmax(scores, -1) @ values, name=f"{name}: acc / l")


s = torch.tensor([[0.0, 1.0, 2.0, 3.0], [3.0, 2.0, 1.0, 0.0]], dtype=torch.float64)
vals = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]], dtype=torch.float64)
_check_merge(s, vals, 2, "two rows, split 2 + 2")
### BEGIN HIDDEN TESTS
from longctx_lab.attention.online_softmax import SoftmaxState, merge_states

g = torch.Generator().manual_seed(1)
for rows, n, d, cut, spread in ((3, 10, 4, 3, 1.0), (5, 33, 8, 30, 1000.0), (1, 2, 1, 1, 50.0)):
    s = torch.randn(rows, n, generator=g, dtype=torch.float64) * spread
    vals = torch.randn(n, d, generator=g, dtype=torch.float64)
    _check_merge(s, vals, cut, f"{rows} rows, {n} keys, spread {spread}")
    a, b = _state(s[:, :cut], vals[:cut]), _state(s[:, cut:], vals[cut:])
    m, l, acc = grading.call(merge, a, b)
    ref = merge_states(SoftmaxState(*a), SoftmaxState(*b))
    grading.check_tensor(l, ref.l, name="l (relative to the merged max)", atol=1e-9, rtol=1e-9)
empty = (torch.full((2,), float("-inf"), dtype=torch.float64), torch.zeros(2, dtype=torch.float64),
         torch.zeros(2, 3, dtype=torch.float64))
other = _state(torch.tensor([[1.0, 2.0], [-5.0, 0.0]], dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64))
for x, y, name in ((empty, other, "empty + state"), (other, empty, "state + empty")):
    m, l, acc = grading.call(merge, x, y)
    grading.check_tensor(l, other[1], name=f"{name}: l")
    grading.check_tensor(acc, other[2], name=f"{name}: acc")
m, l, acc = grading.call(merge, empty, empty)
assert torch.isneginf(m).all(), "empty + empty: m should stay -inf"
grading.check_tensor(l, torch.zeros(2, dtype=torch.float64), name="empty + empty: l")
grading.check_tensor(acc, torch.zeros(2, 3, dtype=torch.float64), name="empty + empty: acc")
### END HIDDEN TESTS
""", "task1_tests", points=3),
    g_markdown(r"""
## Task 2 (4 points): a tiled forward pass in PyTorch

Write `tiled_forward(q, k, v, block_k)` for one head: `q` is `(n_q, d)`, `k` and `v` are `(n_k, d)`, no mask,
scale `1 / sqrt(d)`. Return `(out, lse)`: `out = softmax(q k^T / sqrt(d)) v` of shape `(n_q, d)` and `lse`, the
natural-log log-sum-exp of each row of scaled scores, shape `(n_q,)`. The catch: **never build the `n_q x n_k`
score matrix.** Loop over blocks of `block_k` keys (the last block may be shorter), and keep a running state per
query row (you may call your `merge` from task 1). The hidden tests watch the size of every tensor you create.
""", "task2_text"),
    solution(r"""
def tiled_forward(q, k, v, block_k):
    ### BEGIN SOLUTION
    n_q, d = q.shape
    scale = 1.0 / math.sqrt(d)
    state = (torch.full((n_q,), float("-inf"), dtype=q.dtype), torch.zeros(n_q, dtype=q.dtype),
             torch.zeros(n_q, d, dtype=q.dtype))
    for start in range(0, k.shape[0], block_k):
        s = (q @ k[start:start + block_k].T) * scale  # one (n_q, block_k) tile
        m = s.max(dim=-1).values
        p = torch.exp(s - m[:, None])
        state = merge(state, (m, p.sum(-1), p @ v[start:start + block_k]))
    m, l, acc = state
    return acc / l[:, None], m + torch.log(l)
    ### END SOLUTION
""", "task2_tiled"),
    tests(r"""
def _reference(q, k, v):
    s = q @ k.T / math.sqrt(q.shape[1])
    return torch.softmax(s, -1) @ v, torch.logsumexp(s, -1)


def _check_tiled(n_q, n_k, d, block_k, seed, name):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(n, d, generator=g, dtype=torch.float64) for n in (n_q, n_k, n_k))
    got = grading.call(tiled_forward, q, k, v, block_k)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise AssertionError(f"{name}: tiled_forward should return a tuple (out, lse)")
    out_ref, lse_ref = _reference(q, k, v)
    grading.check_tensor(got[0], out_ref, name=f"{name}: out", atol=1e-9)
    grading.check_tensor(got[1], lse_ref, name=f"{name}: lse", atol=1e-9)


_check_tiled(4, 8, 2, 4, 0, "n_q=4, n_k=8, block 4")
### BEGIN HIDDEN TESTS
from torch.utils._python_dispatch import TorchDispatchMode


class _Largest(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for r in result if isinstance(result, (tuple, list)) else (result,):
            if isinstance(r, torch.Tensor):
                self.numel = max(self.numel, r.numel())
        return result


for n_q, n_k, d, block_k in ((5, 37, 4, 8), (1, 1, 3, 16), (16, 100, 8, 1), (7, 64, 16, 64), (3, 65, 4, 64)):
    _check_tiled(n_q, n_k, d, block_k, n_k, f"n_q={n_q}, n_k={n_k}, d={d}, block {block_k}")
g = torch.Generator().manual_seed(5)
q = torch.randn(50, 16, generator=g, dtype=torch.float64) * 20  # large scores: subtract the running max
k, v = (torch.randn(300, 16, generator=g, dtype=torch.float64) for _ in range(2))
with _Largest() as rec:
    got = grading.call(tiled_forward, q, k, v, 32)
grading.check_tensor(got[0], _reference(q, k, v)[0], name="large scores: out", atol=1e-9)
assert rec.numel < 50 * 300, (
    f"tiled_forward built a tensor of {rec.numel} elements, as large as the 50 x 300 score matrix: "
    "compute one (n_q, block_k) tile at a time")
### END HIDDEN TESTS
""", "task2_tests", points=4),
    g_markdown(r"""
## Task 3 (3 points): a Triton kernel — streaming log-sum-exp of each row

The forward kernel of the chapter keeps, for a block of query rows, a running max `m_i` and a running sum `l_i`
while it walks the key blocks. Write that loop in Triton for a plain matrix: program `pid` handles rows
`pid * BLOCK_M ... pid * BLOCK_M + BLOCK_M - 1` of `S` (`n_rows x n_cols`, row stride `stride_row`, float32), walks
the columns in blocks of `BLOCK_N` and stores `LSE[row] = log(sum_j exp(S[row, j]))` for every real row.
`n_rows` and `n_cols` need not be multiples of the blocks: mask the loads (a column beyond `n_cols` must count as
`exp(-inf) = 0`) and the store. Scores can be large (+-1000): never exponentiate without subtracting the running
max. Useful: `tl.program_id`, `tl.arange`, `tl.load(ptr, mask=..., other=...)`, `tl.where`, `tl.max(x, axis=1)`,
`tl.sum(x, axis=1)`, `tl.maximum`, `tl.exp`, `tl.log`, `tl.full`, `tl.zeros`, `tl.store(ptr, x, mask=...)`.
The launcher `row_logsumexp` below is given.
""", "task3_text"),
    solution(r"""
@triton.jit
def row_lse_kernel(S, LSE, n_rows, n_cols, stride_row, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    ### BEGIN SOLUTION
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n_rows
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    for start in range(0, n_cols, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        col_ok = cols < n_cols
        s = tl.load(S + rows[:, None] * stride_row + cols[None, :], mask=row_ok[:, None] & col_ok[None, :],
                    other=0.0)
        s = tl.where(col_ok[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        l_i = l_i * tl.exp(m_i - m_new) + tl.sum(tl.exp(s - m_new[:, None]), axis=1)
        m_i = m_new
    tl.store(LSE + rows, m_i + tl.log(l_i), mask=row_ok)
    ### END SOLUTION
""", "task3_kernel"),
    g_code(r"""
def row_logsumexp(s, block_m=16, block_n=16):
    # Launch row_lse_kernel on a float32 (n_rows, n_cols) tensor; returns the (n_rows,) log-sum-exp.
    s = s.contiguous().float()
    out = torch.empty(s.shape[0], dtype=torch.float32, device=s.device)
    grid = (triton.cdiv(s.shape[0], block_m),)
    row_lse_kernel[grid](s, out, s.shape[0], s.shape[1], s.stride(0), BLOCK_M=block_m, BLOCK_N=block_n)
    return out
""", "task3_launcher"),
    tests(r"""
x = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
grading.check_tensor(grading.call(row_logsumexp, x), torch.logsumexp(x, -1), name="row_logsumexp(2 x 4)",
                     atol=1e-5)
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(3)
for rows, cols, bm, bn, spread in ((1, 1, 16, 16, 1.0), (17, 33, 16, 16, 1.0), (5, 100, 16, 32, 1000.0),
                                   (40, 16, 16, 16, 5.0), (3, 70, 16, 16, 300.0)):
    x = torch.randn(rows, cols, generator=g) * spread
    got = grading.call(row_logsumexp, x, bm, bn)
    grading.check_tensor(got, torch.logsumexp(x.double(), -1).float(), name=f"row_logsumexp({rows} x {cols}, "
                         f"spread {spread}, blocks {bm}/{bn})", atol=1e-4, rtol=1e-5)
### END HIDDEN TESTS
""", "task3_tests", points=3),
]

WRONG = {
    # adds the two sums without rescaling them to the common max: right only when m_a == m_b
    "task1_merge": (
        "def merge(a, b):\n"
        "    m_a, l_a, acc_a = a\n"
        "    m_b, l_b, acc_b = b\n"
        "    return torch.maximum(m_a, m_b), l_a + l_b, acc_a + acc_b"
    ),
}


def main() -> int:
    out = ROOT / "solutions" / NAME
    out.mkdir(parents=True, exist_ok=True)
    for cells, path in ((CHAPTER, ROOT / "notebooks" / f"{NAME}.ipynb"), (SOLUTION, out / f"{NAME}.ipynb")):
        write(notebook(cells), path)  # positional cell ids: rebuilding gives no diff
    (ROOT / "tests" / "grading" / f"{NAME}_wrong.json").write_text(json.dumps(WRONG, indent=1) + "\n")
    print("wrote the chapter, the nbgrader source and the wrong-answer file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
