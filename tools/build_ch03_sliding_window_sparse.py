"""Write notebooks/ch03_sliding_window_sparse.ipynb and its nbgrader source notebook.

Run from the repository root: ``.venv/bin/python tools/build_ch03_sliding_window_sparse.py``, then
``make exercises``. The notebooks are stored without outputs; the logic they call lives in the package.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.colab_cell import canonical_source  # noqa: E402
from tools.nbgrader_cells import code as g_code  # noqa: E402
from tools.nbgrader_cells import markdown as g_markdown  # noqa: E402
from tools.nbgrader_cells import notebook, solution, tests, write  # noqa: E402

NAME = "ch03_sliding_window_sparse"


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text.strip())


def py(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(text.strip())


CHAPTER = [
    md(r"""
# Chapter 3 — Sliding-window and sparse attention

**What you will learn.** How to describe an attention pattern as a small rule `mask(q_idx, kv_idx)` instead of a
giant boolean matrix; the patterns long-context models use (causal, sliding window, dilated, prefix-LM, Longformer,
BigBird, packed documents, axial) and how to combine them; what a *tiled* kernel really computes for each pattern
(tiles are skipped, computed whole, or computed and masked); the exact number of attended pairs for each pattern;
how far information can travel through a stack of sliding-window layers, computed exactly and measured with
gradients; and the rolling-buffer KV cache that lets a sliding-window model decode with fixed memory.

**What you need.** A CPU is enough: this notebook runs in about a minute on 2 cores and needs no GPU. Every
function it calls lives in `longctx_lab.attention` (`mask_predicates`, `block_sparsity`, `sparse_cost`,
`receptive_field`) and `longctx_lab.kvcache.rolling`, each tested against independent references. Every number in
the text is printed by a cell, and the source articles' claims are checked beside our own computation at the end.
"""),
    py(canonical_source()),  # the course-wide install cell (tools/colab_cell.py)
    py(r"""
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle
from tqdm.auto import tqdm

from longctx_lab.attention import block_sparsity as bs
from longctx_lab.attention import mask_predicates as mp
from longctx_lab.attention import sparse_cost as sc
from longctx_lab.attention.receptive_field import (
    effective_range,
    gradient_influence,
    reachability,
    receptive_field_bounds,
    receptive_field_size,
)
from longctx_lab.attention.reference import naive_attention
from longctx_lab.claim_sets import ch03_sliding_window_sparse as article
from longctx_lab.claims import show_claims
from longctx_lab.configs import MISTRAL_7B
from longctx_lab.cost import GB, fmt_bytes
from longctx_lab.kvcache.rolling import RollingKVCache, decode_with_rolling_cache, rolling_slot
from longctx_lab.plots import loglog_axes, mask_image, use_course_style

torch.manual_seed(0)
use_course_style()
"""),
    md(r"""
## 1. A mask is a rule, not a matrix

The course's convention (the same as Hugging Face's `sliding_window` and flash-attn's `window_size=(w-1, 0)`):
with a causal **window of $w$ keys**, the query at position $p$ sees keys $j$ with

$$p - w < j \le p,$$

itself and the $w-1$ keys before it. We write every mask as a predicate over absolute positions. It can be
evaluated on a pair of integers, on broadcast tensors of positions, or turned into the dense matrix for pictures.
A kernel evaluates the rule only on the tile it is working on, because the dense matrix for a long sequence is
bigger than the keys and values themselves:
"""),
    py(r"""
window = mp.sliding_window_predicate(4)
print(window, "| query 10 sees key 7:", bool(window(10, 7)), "| key 6:", bool(window(10, 6)))
print(window.dense(8).int())
for n in (32_768, 131_072):
    print(f"dense boolean mask at n = {n:,}: {fmt_bytes(n * n)}")
"""),
    md(r"""
## 2. The patterns

* **causal**: $j \le p$. **Sliding window**: causal and $p - j < w$; the *bidirectional* window keeps $|p-j| < w$.
* **dilated window**: $w$ keys spaced $d$ apart, $j = p - m d$ for $m = 0..w-1$: same cost, longer reach.
* **prefix-LM**: the first $P$ positions (a prompt) see each other both ways; the rest is causal.
* **Longformer**: a window plus a few *global* tokens that see, and are seen by, every position.
* **BigBird**: blocks of $b$ tokens; each query block sees its neighbouring blocks, the global blocks, and a few
  *random* key blocks drawn with a fixed seed.
* **packed documents**: several documents concatenated into one training row must not see each other.
* **axial**: lay the sequence out on a grid and attend along its row, then along its column.

Patterns combine with `&` (both rules must hold) and `|` (either may).
"""),
    py(r"""
n = 48
docs = [20, 12, 16]
masks = {
    "causal": mp.causal_predicate(),
    "sliding window w=8": mp.sliding_window_predicate(8),
    "bidirectional window w=8": mp.sliding_window_predicate(8, causal=False),
    "dilated w=6, d=3": mp.dilated_window_predicate(6, 3),
    "prefix-LM, P=16": mp.prefix_lm_predicate(16),
    "Longformer w=4, globals 0 and 24": mp.longformer_predicate(4, [0, 24], n),
    "BigBird b=8, seed 0": mp.bigbird_predicate(n, 8, window_blocks=3, global_blocks=1, random_blocks=1, seed=0),
    "packed documents, causal": mp.document_predicate(docs),
    "axial: rows of 8": mp.axial_predicate(8, "row"),
    "axial: columns": mp.axial_predicate(8, "col"),
    "window 8 & documents": mp.sliding_window_predicate(8) & mp.document_predicate(docs, causal=False),
    "causal window 4 | global token 0": (
        mp.sliding_window_predicate(4) | mp.longformer_predicate(1, [0], n, causal=True)
    ),
}
fig, axes = plt.subplots(3, 4, figsize=(14, 10.8))
for ax, (name, pred) in zip(axes.flat, masks.items()):
    dense = pred.dense(n)
    mask_image(ax, dense, title=f"{name}\n{int(dense.sum())} pairs", xlabel="key j", ylabel="query p")
fig.tight_layout()
plt.show()
"""),
    md(r"""
Each pattern is exact attention over its set of keys: the rows are ordinary softmaxes, just over fewer keys. The
package's reference attention with each dense mask agrees with PyTorch's `scaled_dot_product_attention` (given the
same explicit mask) to float64 rounding:
"""),
    py(r"""
gen = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(1, 2, n, 16, generator=gen, dtype=torch.float64) for _ in range(3))
worst = max(
    float((naive_attention(q, k, v, mask=p.dense(n)) - F.scaled_dot_product_attention(q, k, v, attn_mask=p.dense(n)))
          .abs().max())
    for p in masks.values()
)
print(f"largest |difference| over the {len(masks)} masks: {worst:.1e}")
"""),
    md(r"""
## 3. What a tiled kernel computes

FlashAttention (chapter 4) walks the score matrix in tiles of `block_q` × `block_k` pairs. For each tile the mask
decides: **empty** (skip it: no loads, no FLOPs), **full** (compute it, no mask needed) or **partial** (compute
the whole tile, then mask it element by element). So a kernel's work is the number of non-empty tiles times the tile
size, not the number of attended pairs. Below, the tiles of each pattern with blocks of 8 (green = full,
orange = partial, no frame = skipped):
"""),
    py(r"""
TILE_COLOURS = {bs.PARTIAL: "#e9a03b", bs.FULL: "#2a9d8f"}


def draw_tiles(ax, pred, n, block, title=""):
    mask_image(ax, pred.dense(n), title=title, xlabel="key j", ylabel="query p")
    classes = bs.classify_blocks(pred, block, q_len=n)
    for qb, row in enumerate(classes.tolist()):
        for kb, cls in enumerate(row):
            if cls != bs.EMPTY:
                ax.add_patch(Rectangle((kb * block - 0.5, qb * block - 0.5), block, block, fill=False,
                                       edgecolor=TILE_COLOURS[cls], lw=2))


block = 8
print(f"tiles of {block} x {block} pairs over n = {n} positions")
fig, axes = plt.subplots(3, 4, figsize=(14, 10.8))
print(f"{'mask':<38} {'empty':>5} {'partial':>7} {'full':>5} {'attended':>8} {'computed':>8} {'useful':>7}")
for ax, (name, pred) in zip(axes.flat, masks.items()):
    s = bs.block_stats(pred, block, q_len=n)
    draw_tiles(ax, pred, n, block, title=f"{name}\n{s.n_partial} partial, {s.n_full} full")
    print(f"{name:<38} {s.n_empty:>5} {s.n_partial:>7} {s.n_full:>5} {s.attended_pairs:>8} "
          f"{s.computed_pairs:>8} {s.tile_efficiency:>7.0%}")
fig.tight_layout()
plt.show()
"""),
    md(r"""
"useful" is the fraction of the computed pairs that the mask keeps. A pattern built from whole tiles (BigBird, whose
block here equals the tile; axial rows) wastes nothing, because every tile it touches is full. Thin diagonal bands
(a dilated window, Longformer's window, axial columns) waste most of each tile they touch. This is why block-sparse
patterns such as BigBird are defined on blocks in the first place: the sparsity a kernel can exploit is the sparsity
of tiles, not of single pairs.

## 4. Exact cost versus sequence length

Counting by diagonals gives closed forms. A causal window of $w$ keys over $n \ge w$ tokens keeps

$$\text{pairs} = n w - \frac{w(w-1)}{2},$$

because the first $w - 1$ queries see fewer than $w$ keys. Causal attention keeps $n(n+1)/2$, a bidirectional
window $n(2w - 1) - w(w - 1)$, a dilated window $n w - d\,w(w-1)/2$ once $n$ exceeds its reach $(w-1)d$ (the same
$w$ keys per query, spread out), prefix-LM $P^2 + (n(n+1) - P(P+1))/2$. The cell checks each closed form against
the count of the dense mask, then against an exact count from the predicate at a length where the dense mask would
not fit:
"""),
    py(r"""
closed = {
    "causal": sc.pairs_causal(n),
    "sliding window w=8": sc.pairs_sliding_window(n, 8),
    "bidirectional window w=8": sc.pairs_sliding_window(n, 8, causal=False),
    "dilated w=6, d=3": sc.pairs_dilated_window(n, 6, 3),
    "prefix-LM, P=16": sc.pairs_prefix_lm(n, 16),
    "packed documents, causal": sc.pairs_documents(docs),
}
for name, value in closed.items():
    print(f"{name:<28} closed form {value:>6,}   dense count {sc.count_pairs(masks[name].dense(n)):>6,}")
axial_dense = sc.count_pairs(masks["axial: rows of 8"].dense(n)) + sc.count_pairs(masks["axial: columns"].dense(n))
print(f"{'axial rows + columns':<28} closed form {sc.axial_pairs(n // 8, 8):>6,}   dense count {axial_dense:>6,}")
big, w = 200_000, 512
print(f"\nn = {big:,} (a dense mask would take {fmt_bytes(big * big)}), causal window w = {w}:\n"
      f"closed form {sc.pairs_sliding_window(big, w):,}, "
      f"counted from the predicate tile by tile {sc.count_pairs(mp.sliding_window_predicate(w), big, chunk=128):,}")
"""),
    md(r"""
Forward FLOPs are $4 \cdot d_\text{head}$ per attended pair (two matrix products, 2 FLOPs per multiply-add).
The solid lines are exact counts; the markers are what a kernel with 128 × 128 tiles computes, measured with
`block_stats` (skipped tiles cost nothing, every other tile costs a whole tile):
"""),
    py(r"""
head_dim, w, tile = 128, 1024, 128
ns = [2**k for k in range(10, 21)]
ax = loglog_axes(xlabel="sequence length n", ylabel="forward FLOPs per head",
                 title=f"attention cost, head_dim {head_dim}")
ax.plot(ns, [sc.flops_from_pairs(sc.pairs_full(m), head_dim) for m in ns], label="full $n^2$")
ax.plot(ns, [sc.flops_from_pairs(sc.pairs_causal(m), head_dim) for m in ns], label="causal")
ax.plot(ns, [sc.flops_from_pairs(sc.pairs_sliding_window(m, w), head_dim) for m in ns], label=f"causal window {w}")
ax.plot(ns, [sc.flops_from_pairs(sc.pairs_sliding_window(m, 128), head_dim) for m in ns], label="causal window 128")
tiled_ns = [2**k for k in range(10, 15)]
tiled_causal, tiled_window = [], []
for m in tqdm(tiled_ns, desc="tiling"):
    tiled_causal.append(bs.block_stats(mp.causal_predicate(), tile, q_len=m, head_dim=head_dim).flops_tiled)
    tiled_window.append(bs.block_stats(mp.sliding_window_predicate(w), tile, q_len=m, head_dim=head_dim).flops_tiled)
ax.plot(tiled_ns, tiled_causal, "o", color="C1", label="causal, 128-tiles")
ax.plot(tiled_ns, tiled_window, "s", color="C2", label=f"window {w}, 128-tiles")
ax.legend(fontsize=8)
plt.show()
s = bs.block_stats(mp.sliding_window_predicate(w), tile, q_len=tiled_ns[-1])
print(f"window {w} at n = {tiled_ns[-1]:,} with {tile}-tiles: {s.tile_efficiency:.1%} of the computed pairs are kept")
s = bs.block_stats(mp.sliding_window_predicate(128), tile, q_len=tiled_ns[-1])
print(f"window 128 at n = {tiled_ns[-1]:,} with {tile}-tiles: {s.tile_efficiency:.1%} of the computed pairs are kept")
"""),
    md(r"""
The full and causal curves grow as $n^2$, the windows as $n$: once $n \gg w$ the window's cost per token is fixed.
Tiles cost something extra: the band of a window cuts diagonally through the tiles it touches.

**The "400×" claim.** One article computes $200\text{K}^2 / (200\text{K} \times 512)$ and calls it a 400× reduction.
A decoder LM is causal, though: without the window it would already skip the upper triangle. The fair comparison
is causal window against causal attention, and a tiled kernel realises less than the exact ratio:
"""),
    py(r"""
n_claim, w_claim = 200_000, 512
print(f"full n^2 / (n w):                       {sc.pairs_full(n_claim) / (n_claim * w_claim):.1f}x")
print(f"bidirectional window vs full (exact):   {sc.window_reduction(n_claim, w_claim, causal=False):.1f}x")
print(f"causal window vs causal (exact):        {sc.window_reduction(n_claim, w_claim):.1f}x")
r = article.tiled_reduction(n=8192, w=w_claim, block=128)
print(f"at n = 8,192 with 128-tiles: exact {r['exact']:.2f}x, what the kernel gains {r['tiled']:.2f}x")
"""),
    md(r"""
## 5. Receptive field through depth

One window layer lets output $p$ read inputs $p-w+1..p$. In the next layer each of those read $w-1$ further back,
so after $L$ layers output $p$ can depend on inputs

$$\max(0,\ p - L(w-1))\ ..\ p:\qquad L(w-1)+1 \text{ positions, not } L \cdot w.$$

Exactly which inputs reach which outputs is a boolean matrix power: $i$ depends on $j$ after $L$ layers when
$(M^L)_{ij} > 0$. The pictures show $M, M^2, M^3, M^4$ for $w = 4$:
"""),
    py(r"""
w_small, n_small = 4, 40
reach = reachability(mp.sliding_window_predicate(w_small).dense(n_small), 4)
fig, axes = plt.subplots(1, 4, figsize=(14, 3.8))
for layer, ax in enumerate(axes, start=1):
    span = int(reach[layer - 1, -1].sum())
    mask_image(ax, reach[layer - 1], title=f"{layer} layer(s): last row reaches {span}", xlabel="input j",
               ylabel="output p")
    print(f"L = {layer}: exact reach of the last output {span}, L(w-1)+1 = {receptive_field_size(w_small, layer)}")
fig.tight_layout()
plt.show()
"""),
    md(r"""
**Measured, not just counted.** Build a transformer stack with random weights (pre-norm attention with this
window mask and an MLP, residual connections, float64) and differentiate one output with respect to every input.
Masked attention weights are exact zeros, so the gradient is exactly zero outside the reachable set, and it is
non-zero inside it. Its *size* shows something the count cannot: how much each input actually matters.
"""),
    py(r"""
w_g, layers_g = 16, 8
n_g = 160
query = n_g - 1
mask_g = mp.sliding_window_predicate(w_g).dense(n_g)
influence = gradient_influence(mask_g, layers_g, query, seed=0)
reach_g = reachability(mask_g, layers_g)[:, query]
print(f"{'L':>2} {'exact reach':>11} {'gradient support':>16} {'L(w-1)+1':>8} {'90% of influence within':>24}")
for layer in range(layers_g):
    print(f"{layer + 1:>2} {int(reach_g[layer].sum()):>11} {int((influence[layer] > 0).sum()):>16} "
          f"{receptive_field_size(w_g, layer + 1):>8} {effective_range(influence[layer], query, mass=0.9):>24}")
fig, ax = plt.subplots()
distance = torch.arange(n_g).flip(0)
for layer in (0, 1, 3, 7):
    nz = influence[layer] > 0
    ax.semilogy(distance[nz], influence[layer][nz], ".-", ms=3, label=f"L = {layer + 1}")
ax.set(xlabel="distance from the output position", ylabel="|gradient|", title=f"window {w_g}, random weights")
ax.legend()
plt.show()
"""),
    md(r"""
The support of the gradient grows by $w - 1$ per layer, exactly as counted, but the influence falls off steeply
with distance: far inputs reach the output only through chains of softmax averages, each one diluting them. The
range holding 90% of the influence grows much more slowly than the span.

**Mistral 7B.** Its published config (`configs.MISTRAL_7B`) has 32 layers and a window of 4,096. The article
multiplies them; the exact span for the implementation's window, and for the paper's wording ("positions $i - W$ to
$i$", which is $W + 1$ keys) are:
"""),
    py(r"""
W, L = MISTRAL_7B.sliding_window, MISTRAL_7B.n_layers
print(f"{MISTRAL_7B.name}: {L} layers, window {W}, max_position_embeddings {MISTRAL_7B.max_context:,}")
print(f"L x W                                      = {L * W:,}")
print(f"exact span, window of W keys  L(W-1)+1     = {receptive_field_size(W, L):,}")
print(f"exact span, paper's i-W..i    L W + 1      = {receptive_field_size(W + 1, L):,}")
for layer in (1, 2):
    lo, hi = receptive_field_bounds(50_000, W, layer)
    print(f"token 50,000 after {layer} layer(s): inputs {lo:,}..{hi:,} ({hi - lo + 1:,} tokens)")
"""),
    md(r"""
## 6. The rolling-buffer KV cache

Decoding token $t$ with a window of $w$ never reads a key older than $t - w + 1$. So the cache needs only $w$ slots:
token $t$ goes to slot $t \bmod w$ and overwrites token $t - w$, which no later query can see. The slots are not in
time order once the buffer wraps, and they need not be: attention sums over keys, so reordering keys and values
together changes nothing (positions were already applied to the keys by RoPE before caching).
"""),
    py(r"""
cache = RollingKVCache(4, batch=1, kv_heads=1, head_dim=1, dtype=torch.float64)
for t in range(10):
    cache.append(torch.full((1, 1, 1, 1), float(t), dtype=torch.float64), torch.zeros(1, 1, 1, 1, dtype=torch.float64))
    print(f"token {t}: written to slot {rolling_slot(t, 4)}, slots hold positions {cache.contents()[2].tolist()}")
"""),
    md(r"""
Decoding token by token through the buffer gives the same output as attention over the whole sequence with the
window mask (here with grouped-query attention: 4 query heads share 2 KV heads), and differs from plain causal
attention as soon as the sequence is longer than the window:
"""),
    py(r"""
gen = torch.Generator().manual_seed(1)
q = torch.randn(1, 4, 64, 16, generator=gen, dtype=torch.float64)
k, v = (torch.randn(1, 2, 64, 16, generator=gen, dtype=torch.float64) for _ in range(2))
decoded = decode_with_rolling_cache(q, k, v, window=8)
print(f"{q.shape[1]} query heads share {k.shape[1]} KV heads; {q.shape[2]} tokens decoded through 8 slots")
print(f"max |rolling decode - window attention| = "
      f"{float((decoded - naive_attention(q, k, v, causal=True, window=8)).abs().max()):.1e}")
print(f"max |rolling decode - full causal attention| = "
      f"{float((decoded - naive_attention(q, k, v, causal=True)).abs().max()):.2f}")
"""),
    md(r"""
**How much memory?** The article's table uses $H = 32$ KV heads for Mistral 7B; the published config has
grouped-query attention with 8 KV heads. Both tables (fp16, all 32 layers, K and V):
"""),
    py(r"""
for title, rows in article.rolling_tables().items():
    print(title)
    print(f"  {'tokens':>9} {'full cache':>12} {'rolling':>9} {'saved':>6}")
    for r in rows:
        print(f"  {r['seq_len']:>9,} {r['full_bytes'] / GB:>9.2f} GB {r['rolling_bytes'] / GB:>6.2f} GB "
              f"{r['saved']:>6.1%}")
"""),
    md(r"""
## 7. Explore: window and tile size

Move the sliders to change the window of a causal sliding-window mask and the tile size of the kernel. The
sliders need a live Jupyter kernel with widgets; the static figure printed first shows one setting, so a rendered
page still shows the idea.
"""),
    py(r"""
def explore(window=12, block=16, n=96):
    pred = mp.sliding_window_predicate(window)
    s = bs.block_stats(pred, block, q_len=n)
    fig, ax = plt.subplots(figsize=(5, 5))
    draw_tiles(ax, pred, n, block, title=f"window {window}, tiles {block}x{block}")
    plt.show()
    print(f"attended {s.attended_pairs:,} = n w - w(w-1)/2 = {sc.pairs_sliding_window(n, window):,}; "
          f"computed {s.computed_pairs:,} ({s.tile_efficiency:.0%} useful); {s.n_empty} of {s.n_tiles} tiles skipped")


explore()  # the static fallback

try:
    import ipywidgets as widgets

    widgets.interact(explore, window=widgets.IntSlider(value=12, min=1, max=96),
                     block=widgets.Dropdown(options=[4, 8, 16, 32], value=16), n=widgets.fixed(96))
except ImportError:
    print("ipywidgets is not installed: the static figure above is the fallback")
"""),
    md(r"""
## 8. What the articles say

Each row sets a claim from the two source articles beside the package's computation; a number's verdict follows
from the two values. Conventions matter: "receptive field" counts differ by one per layer depending on whether a
window of $w$ holds $w$ keys (the implementation) or $w + 1$ (the paper's wording), and a fair "reduction" for a
decoder compares against causal attention.
"""),
    py(r"""
show_claims(article.claims())
"""),
    md(r"""
## Quiz
"""),
    py(r"""
from longctx_lab.quiz import show_quiz
from longctx_lab.quizzes.ch03_sliding_window_sparse import QUIZ

show_quiz(QUIZ)
"""),
]


SOLUTION = [
    g_markdown(r"""
# Chapter 3 exercises — sliding windows and rolling caches

Four tasks, 10 points. Write your code between the lines that say `# YOUR CODE HERE` (delete the
`raise NotImplementedError()` line). Each task is followed by a test cell: run it to check your answer. Some
tests are hidden and run only when your notebook is graded, so test your function on other inputs too.

Convention (as in the chapter): with a causal window of `window` keys, the query at position `i` sees the keys
`j` with `i - window < j <= i` (itself and the `window - 1` before it). Positions count from 0.
""", "intro"),
    g_code(r"""
import torch

from longctx_lab import grading
""", "setup"),
    g_markdown(r"""
## Task 1 (3 points): build a sliding-window mask

Write `sliding_window_mask(n, window)` returning a boolean `torch.Tensor` of shape `(n, n)` whose entry `[i, j]` is
`True` when query `i` may attend to key `j`.
""", "task1_text"),
    solution(r"""
def sliding_window_mask(n, window):
    ### BEGIN SOLUTION
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    return (j <= i) & (i - j < window)
    ### END SOLUTION
""", "task1_mask"),
    tests(r"""
expected = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=torch.bool)
grading.check_tensor(grading.call(sliding_window_mask, 4, 2), expected, name="sliding_window_mask(4, 2)")
### BEGIN HIDDEN TESTS
from longctx_lab.attention.masks import sliding_window_mask as reference

for n, w in ((1, 1), (7, 1), (5, 9), (33, 6), (64, 64)):
    got = grading.call(sliding_window_mask, n, w)
    grading.check_tensor(got, reference(n, w), name=f"sliding_window_mask({n}, {w})")
### END HIDDEN TESTS
""", "task1_tests", points=3),
    g_markdown(r"""
## Task 2 (3 points): count the attended pairs

Write `window_pairs(n, window)` returning, as an `int`, the exact number of `True` entries of
`sliding_window_mask(n, window)`, without building the mask (it must work for `n = 10**9`). Careful with the first
queries, which see fewer than `window` keys, and with `window > n`.
""", "task2_text"),
    solution(r"""
def window_pairs(n, window):
    ### BEGIN SOLUTION
    if n <= window:
        return n * (n + 1) // 2
    return n * window - window * (window - 1) // 2
    ### END SOLUTION
""", "task2_pairs"),
    tests(r"""
grading.check_number(grading.call(window_pairs, 5, 2), 9, name="window_pairs(5, 2)",
                     hint="query 0 sees one key, the others two")
grading.check_number(grading.call(window_pairs, 3, 10), 6, name="window_pairs(3, 10)",
                     hint="a window longer than the sequence is plain causal attention")
### BEGIN HIDDEN TESTS
from longctx_lab.attention.sparse_cost import pairs_sliding_window

for n, w in ((1, 1), (1000, 1), (4096, 4096), (4097, 4096), (10**9, 4096), (200_000, 512)):
    grading.check_number(grading.call(window_pairs, n, w), pairs_sliding_window(n, w), rel_tol=0,
                         name=f"window_pairs({n}, {w})")
### END HIDDEN TESTS
""", "task2_tests", points=3),
    g_markdown(r"""
## Task 3 (2 points): the rolling buffer

A rolling-buffer KV cache with `window` slots writes token `t` into slot `t % window`. Write
`slot_contents(t, window)` returning a list: after tokens `0, 1, ..., t` have been written, entry `s` is the
position of the token that slot `s` holds. The list has one entry per slot written so far (`min(t + 1, window)`
entries). Example: `slot_contents(5, 4) == [4, 5, 2, 3]`.
""", "task3_text"),
    solution(r"""
def slot_contents(t, window):
    ### BEGIN SOLUTION
    filled = min(t + 1, window)
    # slot s last received the largest position <= t that is congruent to s mod window
    return [t - ((t - s) % window) for s in range(filled)]
    ### END SOLUTION
""", "task3_slots"),
    tests(r"""
def _as_list(value, name):
    if not isinstance(value, (list, tuple)):
        raise AssertionError(f"{name} should return a list, got {type(value).__name__}")
    return [int(x) for x in value]


got = _as_list(grading.call(slot_contents, 5, 4), "slot_contents(5, 4)")
assert got == [4, 5, 2, 3], "slot_contents(5, 4) is wrong: token t goes to slot t % window"
got = _as_list(grading.call(slot_contents, 1, 4), "slot_contents(1, 4)")
assert got == [0, 1], "slot_contents(1, 4) is wrong: only the slots written so far are listed"
### BEGIN HIDDEN TESTS
from longctx_lab.kvcache.rolling import RollingKVCache

for w in (1, 3, 8):
    cache = RollingKVCache(w, batch=1, kv_heads=1, head_dim=1, dtype=torch.float64)
    for t in range(30):
        cache.append(torch.zeros(1, 1, 1, 1, dtype=torch.float64), torch.zeros(1, 1, 1, 1, dtype=torch.float64))
        got = _as_list(grading.call(slot_contents, t, w), f"slot_contents({t}, {w})")
        assert got == cache.contents()[2].tolist(), f"slot_contents({t}, {w}) is wrong"
### END HIDDEN TESTS
""", "task3_tests", points=2),
    g_markdown(r"""
## Task 4 (2 points): the receptive field of a stack

With `layers` stacked causal sliding-window layers (each with the same `window`, and residual connections), how
many input positions can the output at a position far from the start depend on? Write
`receptive_span(window, layers)` returning an `int`. (Think about how far back each layer reaches.)
""", "task4_text"),
    solution(r"""
def receptive_span(window, layers):
    ### BEGIN SOLUTION
    return layers * (window - 1) + 1
    ### END SOLUTION
""", "task4_span"),
    tests(r"""
grading.check_number(grading.call(receptive_span, 3, 1), 3, name="receptive_span(3, 1)",
                     hint="one layer sees the window itself")
grading.check_number(grading.call(receptive_span, 1, 5), 1, name="receptive_span(1, 5)",
                     hint="a window of one key only sees itself")
### BEGIN HIDDEN TESTS
from longctx_lab.attention.mask_predicates import sliding_window_predicate
from longctx_lab.attention.receptive_field import reachability

for w, L in ((2, 3), (4, 4), (5, 2)):
    n = L * (w - 1) + 5
    exact = int(reachability(sliding_window_predicate(w).dense(n), L)[-1, -1].sum())
    grading.check_number(grading.call(receptive_span, w, L), exact, rel_tol=0, name=f"receptive_span({w}, {L})",
                         hint="count the hops: how far back does each layer reach?")
grading.check_number(grading.call(receptive_span, 4096, 32), 131_041, rel_tol=0, name="receptive_span(4096, 32)")
### END HIDDEN TESTS
""", "task4_tests", points=2),
]

WRONG = {
    # forgets that the first window - 1 queries see fewer keys (and that window may exceed n)
    "task2_pairs": "def window_pairs(n, window):\n    return n * window",
}


def main() -> int:
    import json

    out = ROOT / "solutions" / NAME
    out.mkdir(parents=True, exist_ok=True)
    for cells, path in ((CHAPTER, ROOT / "notebooks" / f"{NAME}.ipynb"), (SOLUTION, out / f"{NAME}.ipynb")):
        write(notebook(cells), path)  # positional cell ids: rebuilding gives no diff
    (ROOT / "tests" / "grading" / f"{NAME}_wrong.json").write_text(json.dumps(WRONG, indent=1) + "\n")
    print("wrote the chapter, the nbgrader source and the wrong-answer file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
