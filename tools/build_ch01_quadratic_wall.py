"""Write notebooks/ch01_quadratic_wall.ipynb and its nbgrader source solutions/ch01_quadratic_wall/.

The committed notebooks are what learners and tests use; this script is how they were written. Run from the
repository root: ``.venv/bin/python tools/build_ch01_quadratic_wall.py``, then ``make exercises`` and
``.venv/bin/python tools/colab_cell.py --write``. Cell ids are positional, so an unchanged rebuild gives no diff.
"""

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.colab_cell import canonical_source  # noqa: E402
from tools.nbgrader_cells import code as graded_code  # noqa: E402
from tools.nbgrader_cells import markdown, notebook, solution, tests, write  # noqa: E402


def md(s):
    return nbformat.v4.new_markdown_cell(s.strip())

def code(s):
    return nbformat.v4.new_code_cell(s.strip())



def nb(cells):
    n = nbformat.v4.new_notebook()
    n.cells = cells
    n.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    n.metadata["language_info"] = {"name": "python"}
    return n

COLAB = canonical_source()


cells = [
md(r"""
# Chapter 1 — The quadratic wall

**What you will learn.** Why attention's cost grows with the square of the sequence length; how to count its
FLOPs and bytes exactly; how big a KV cache gets for real models; why a GPU's memory hierarchy, not its FLOPs,
sets the pace of long-context inference; and why *prefill* and *decode* behave so differently.

**What you need.** A CPU is enough (this notebook runs in well under two minutes on 2 cores). Every number in
the text below is printed by a cell, and every claim we quote from the two articles this course grew from is
checked beside our own computation.
"""),
code(COLAB),
code("""
import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from longctx_lab import configs, cost
from longctx_lab.claim_sets import ch01_quadratic_wall as article
from longctx_lab.claims import show_claims
from longctx_lab.measure import fit_power_law, machine_description, measure_attention
from longctx_lab.plots import loglog_axes, use_course_style

use_course_style()
torch.manual_seed(0)
print(machine_description())
"""),
md(r"""
## 1. Counting the cost

For one head, attention computes $S = QK^\top$ (an $n \times n$ matrix of scores), a row-wise softmax
$P = \mathrm{softmax}(S/\sqrt{d})$, and $O = PV$. Each of the two matrix products does one multiply-add
(2 FLOPs) per (query, key) pair per head dimension, so

$$\text{FLOPs}_\text{forward} = 4 \cdot B \cdot H \cdot d \cdot \text{pairs},\qquad
\text{pairs} = n^2 \text{ (full)},\quad \tfrac{n(n+1)}{2} \text{ (causal)}.$$

Stored naively, the score matrix alone takes $B \cdot H \cdot n^2$ elements. `longctx_lab.cost` counts both
exactly; here is the score matrix of *one head* at the article's sequence lengths, in both decimal GB and binary GiB
(the articles mix the two).
"""),
code("""
lengths = [2048, 8192, 32768, 131072, 200_000]
for n in lengths:
    fp32 = cost.attention_matrix_bytes(n, dtype="fp32")
    print(f"n = {n:>7,}: {n * n / 1e9:7.2f} billion scores, fp32 {cost.fmt_bytes(fp32)}")

n = np.logspace(10, 21, 60, base=2).astype(int)
ax = loglog_axes(xlabel="sequence length n", ylabel="bytes", title="One head's score matrix vs GPU memory")
for dtype in ("fp32", "fp16"):
    ax.plot(n, [cost.attention_matrix_bytes(int(x), dtype=dtype) for x in n], label=f"score matrix, {dtype}")
ax.axhline(80e9, color="k", ls="--", lw=1, label="80 GB: one A100/H100")
ax.legend();
"""),
md(r"""
## 2. The wall, measured on this machine

A formula is a claim too, so let us *measure*. `measure_attention` runs naive attention (the textbook version that
materialises the score matrix) in a fresh process for growing $n$ and records the time and the operating system's
peak-memory high-water mark. For contrast it also runs PyTorch's `scaled_dot_product_attention`, whose CPU
kernel is tiled like FlashAttention. We fit $y = c\,n^p$ on log-log axes.
"""),
code("""
sizes = [1024, 1536, 2048, 3072, 4096, 6144]
runs = {impl: measure_attention(sizes, impl=impl, head_dim=64, repeats=5)
        for impl in tqdm(["naive", "sdpa"], desc="measuring")}

fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4))
for impl, rows in runs.items():
    ns = [r.seq_len for r in rows]
    ax_t.plot(ns, [r.seconds for r in rows], "o-", label=impl)
    ax_m.plot(ns, [max(r.peak_bytes, 1) for r in rows], "o-", label=impl)
model = [2 * cost.attention_matrix_bytes(x, dtype="fp32") for x in sizes]
ax_m.plot(sizes, model, "k--", lw=1, label="model: scores + weights, 2 n² x 4 B")
for ax, label in ((ax_t, "seconds per call"), (ax_m, "peak extra memory (bytes)")):
    loglog_axes(ax, xlabel="sequence length n", ylabel=label)
    ax.legend()

naive = runs["naive"]
p_mem, _, r2_mem = fit_power_law([r.seq_len for r in naive], [r.peak_bytes for r in naive])
p_time, _, r2_time = fit_power_law([r.seq_len for r in naive], [r.seconds for r in naive])
print(f"naive attention, n = {sizes[0]}..{sizes[-1]}: memory ~ n^{p_mem:.2f} (R² {r2_mem:.3f}), "
      f"time ~ n^{p_time:.2f} (R² {r2_time:.3f})")
print(f"peak memory at n = {sizes[-1]}: naive {cost.fmt_bytes(naive[-1].peak_bytes)}, "
      f"sdpa {cost.fmt_bytes(runs['sdpa'][-1].peak_bytes)}; model {cost.fmt_bytes(model[-1])}")
"""),
md(r"""
The memory exponent comes out close to 2: double the sequence, quadruple the memory, exactly as the cost model
says (the dashed line is the model's two $n^2$ float32 matrices, scores and softmax weights). Time is a noisier
measurement (anything else running on the machine disturbs it, and at small $n$ fixed overheads dominate), so
compare its printed exponent with 2 yourself: over a wider range of $n$ it approaches 2 or exceeds it, once the
matrix no longer fits in the CPU caches. The tiled SDPA kernel keeps its extra memory small and nearly flat: it
never holds the whole matrix. How that works is chapter 4's subject.

### What the articles say about the matrix size
"""),
code("show_claims(article.attention_matrix_claims())"),
md(r"""
## 3. The KV cache

When a model generates text it keeps every past token's keys and values, for every layer and every *KV* head:

$$\text{KV bytes} = 2 \cdot B \cdot L \cdot H_{kv} \cdot d \cdot n \cdot \text{bytes per element}.$$

It grows linearly in $n$, but with large constants. Grouped-query attention (GQA) divides it by the number of
query heads per KV head; a sliding-window model (Mistral 7B) keeps only the last $w$ tokens.
"""),
code("""
contexts = np.logspace(10, 20, 40, base=2).astype(int)
ax = loglog_axes(xlabel="context length (tokens)", ylabel="bytes (bf16, batch 1)", title="KV cache per sequence")
for key in ("llama3.1-8b", "llama3.1-70b", "llama3.1-405b", "mistral-7b"):
    m = configs.get_model(key)
    ax.plot(contexts, [cost.kv_cache_bytes_for(m, int(c), dtype="bf16") for c in contexts], label=m.name)
ax.axhline(80e9, color="k", ls="--", lw=1, label="80 GB")
ax.legend()
for key in ("llama3.1-8b", "llama3.1-70b", "llama3.1-405b"):
    m = configs.get_model(key)
    print(f"{m.name:>15}: {cost.fmt_bytes(cost.kv_cache_bytes_for(m, 131072, dtype='bf16'))} at 128K tokens, "
          f"weights {cost.fmt_bytes(cost.weights_bytes(m, dtype='bf16'))}")
"""),
code("show_claims(article.kv_cache_claims())"),
md(r"""
The first article's code is a good example of why this course computes everything: its own formula,
run as written, prints ten times the number shown under it. (The formula also uses the full model width
$d_\text{model}$, i.e. one KV head per query head, the multi-head attention case.)

## 4. Attention FLOPs at extreme lengths
"""),
code("show_claims(article.flops_claims())"),
md(r"""
## 5. The GPU memory hierarchy

Memory closer to the compute units is smaller and faster. FlashAttention exists because on-chip SRAM is about an
order of magnitude faster than HBM. The first article's table has this backwards (its "registers" and L2 are
slower than HBM). Below are datasheet numbers (sources in `longctx_lab.configs`), with the SRAM bandwidth derived
from 128 bytes per clock per SM.
"""),
code("""
fig, ax = plt.subplots(figsize=(9, 3.8))
article_numbers = {"registers": 1000e9, "L2": 500e9, "HBM": 1935e9, "host RAM over PCIe": 25e9}
for i, gpu in enumerate((configs.A100_80GB_SXM, configs.H100_SXM)):
    levels = [lvl for lvl in configs.memory_hierarchy(gpu) if lvl.bandwidth]
    ax.barh([j + 0.38 * i for j in range(len(levels))], [lvl.bandwidth for lvl in levels], height=0.36,
            label=gpu.name)
    for lvl in levels:
        size = cost.fmt_bytes(lvl.capacity_bytes) if np.isfinite(lvl.capacity_bytes) else "-"
        print(f"{gpu.name:>14} {lvl.name:<27} {lvl.bandwidth / 1e9:>9,.0f} GB/s  capacity {size}")
ax.set_yticks([j + 0.19 for j in range(len(levels))], [lvl.name for lvl in levels])
ax.set_xscale("log")
ax.set_xlabel("bandwidth (bytes/s)")
ax.invert_yaxis()
ax.legend()
ax.set_title("Fastest at the top: each level away from the cores is slower");
"""),
code("show_claims(article.hierarchy_claims())"),
md(r"""
## 6. Prefill and decode: two different machines

*Prefill* processes the whole prompt at once: every weight matrix multiplies $n$ tokens, so each byte of
weights read from HBM is used $n$ times. *Decode* produces one token per step: each weight is read once and used
once. The ratio of FLOPs to bytes moved, the **arithmetic intensity**, decides which resource limits the speed.
The roofline says attainable FLOP/s $=\min(\text{peak},\ \text{intensity} \times \text{bandwidth})$.
"""),
code("""
intensity = np.logspace(-1, 4, 200)
ax = loglog_axes(xlabel="arithmetic intensity (FLOPs / byte)", ylabel="attainable FLOP/s", title="Roofline")
ax.set_xscale("log")
for gpu in (configs.A100_80GB_SXM, configs.H100_SXM):
    ax.plot(intensity, [cost.roofline(i, peak_flops=gpu.peak_flops_16bit, bandwidth=gpu.hbm_bandwidth)
                        for i in intensity], label=f"{gpu.name} (ridge {gpu.ridge_intensity:.0f})")
m = configs.LLAMA3_70B
decode_i = cost.decode_step(m, 8192)["intensity"]
prefill_i = cost.matmul_intensity(4096, m.hidden_size, m.hidden_size)
for x, name in ((decode_i, "decode, batch 1"), (prefill_i, "prefill, 4096-token prompt")):
    ax.axvline(x, color="gray", ls=":", lw=1)
    ax.annotate(name, (x, 1e12), rotation=90, va="bottom", ha="right")
ax.legend(loc="lower right")
print(f"decode step intensity (Llama 3 70B, 8K context): {decode_i:.2f} FLOPs/byte")
print(f"prefill weight matmul intensity (4096 tokens x {m.hidden_size}^2): {prefill_i:.0f} FLOPs/byte")
"""),
md(r"""
Decode sits far left of the ridge: it is **memory-bound**, and its time per token is roughly the bytes it must
read (weights plus the KV cache) divided by HBM bandwidth. Prefill sits right of the ridge: **compute-bound**,
its time roughly FLOPs divided by peak. How do prefill FLOPs grow with the prompt? Below: the model's prefill
FLOPs and their local growth exponent $\mathrm{d}\log F/\mathrm{d}\log n$ (1 = linear, 2 = quadratic).
"""),
code("""
m = configs.LLAMA3_70B
ns = np.logspace(np.log10(1_000), np.log10(1_000_000), 40).astype(int)
flops = np.array([cost.prefill_flops(m, int(x)) for x in ns], dtype=float)
slope = np.gradient(np.log(flops), np.log(ns))
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
loglog_axes(a1, xlabel="prompt length n", ylabel="prefill FLOPs", title=m.name)
a1.plot(ns, flops)
a1.plot(ns, flops[0] * ns / ns[0], "k--", lw=1, label="linear from n = 1,000")
a1.legend()
a2.semilogx(ns, slope)
a2.set_xlabel("prompt length n")
a2.set_ylabel("local exponent")
a2.set_ylim(0.9, 2.0)
for n_, t in ((2_000, "2K"), (200_000, "200K")):
    t_model = cost.time_lower_bound(cost.prefill_flops(m, n_), cost.weights_bytes(m), configs.H100_SXM)
    print(f"{t:>5} prompt: exponent {np.interp(n_, ns, slope):.2f}; compute-bound TTFT lower bound on one "
          f"H100 {t_model:.2f} s (real systems reach perhaps half of peak)")
"""),
code("show_claims(article.serving_claims())"),
md(r"""
## Summary

* Exact attention costs $4BHd \cdot \text{pairs}$ FLOPs and, naively, $BHn^2$ stored scores: quadratic in $n$,
  as the measurement on this machine confirmed.
* The KV cache grows linearly with context, but for 70B-class models it reaches tens to hundreds of GB;
  GQA and windows shrink it.
* On-chip SRAM is an order of magnitude faster than HBM. Decode is memory-bound, prefill compute-bound, and
  prefill time turns quadratic at long contexts.

Next: chapter 2 (positions and RoPE scaling), then chapters 3 and 4, which attack the $n^2$ itself.

## Quiz
"""),
code("""
from longctx_lab.quiz import show_quiz
from longctx_lab.quizzes.ch01_quadratic_wall import QUIZ

show_quiz(QUIZ)
"""),
]
write(nb(cells), ROOT / "notebooks" / "ch01_quadratic_wall.ipynb")


solution_cells = [
markdown(r"""
# Chapter 1 exercises — counting the cost of attention

Three tasks, 8 points. Write your code between the lines that say `# YOUR CODE HERE` (delete the
`raise NotImplementedError()` line). Each task is followed by a test cell: run it to check your answer. Some
tests are hidden and run only when your notebook is graded, so test your function on other inputs too.

Use plain Python arithmetic (no imports needed). Sizes are in **bytes**; 1 GB = 1e9 bytes.
""", "intro"),
graded_code("""
from longctx_lab import grading
""", "setup"),
markdown(r"""
## Task 1 (3 points): the size of a KV cache

A decoder keeps, for every layer, every KV head and every past token, one key and one value vector of
`head_dim` numbers. Write `kv_cache_bytes(seq_len, n_layers, n_kv_heads, head_dim, bytes_per_element, batch=1)`
returning the number of bytes as an `int`.
""", "task1_text"),
solution("""
def kv_cache_bytes(seq_len, n_layers, n_kv_heads, head_dim, bytes_per_element, batch=1):
    ### BEGIN SOLUTION
    return int(2 * batch * n_layers * n_kv_heads * head_dim * seq_len * bytes_per_element)
    ### END SOLUTION
""", "task1_kv_cache"),
tests("""
# A tiny model: 2 layers, 1 KV head of dim 4, 3 tokens, fp16.
grading.check_number(grading.call(kv_cache_bytes, 3, 2, 1, 4, 2), 96, name="kv_cache_bytes(3, 2, 1, 4, 2)",
                     hint="count both K and V")
### BEGIN HIDDEN TESTS
from longctx_lab.configs import LLAMA3_70B, MISTRAL_7B
from longctx_lab.cost import kv_cache_bytes as reference

for m, n, b in ((LLAMA3_70B, 131072, 1), (MISTRAL_7B, 4096, 8), (LLAMA3_70B, 1, 3)):
    got = grading.call(kv_cache_bytes, n, m.n_layers, m.n_kv_heads, m.head_dim, 2, batch=b)
    want = reference(n, n_layers=m.n_layers, n_kv_heads=m.n_kv_heads, head_dim=m.head_dim, dtype="bf16", batch=b)
    grading.check_number(got, want, name=f"kv_cache_bytes for {m.name} at {n} tokens, batch {b}")
### END HIDDEN TESTS
""", "task1_tests", points=3),
markdown(r"""
## Task 2 (3 points): attention FLOPs, with and without a causal mask

Count a multiply-add as 2 FLOPs. One attention layer's forward pass does $QK^\top$ and $PV$ for every
(query, key) pair it keeps, over `head_dim`, for every head. With `causal=True`, query $i$ (counting from 0)
keeps keys $0..i$; count the pairs **exactly**, not as $n^2/2$.
Write `attention_forward_flops(seq_len, head_dim, n_heads, causal)` returning an `int`.
""", "task2_text"),
solution("""
def attention_forward_flops(seq_len, head_dim, n_heads, causal):
    ### BEGIN SOLUTION
    pairs = seq_len * (seq_len + 1) // 2 if causal else seq_len * seq_len
    return 4 * n_heads * head_dim * pairs
    ### END SOLUTION
""", "task2_flops"),
tests("""
grading.check_number(grading.call(attention_forward_flops, 4, 8, 1, False), 512,
                     name="attention_forward_flops(4, 8, 1, False)", hint="two matmuls, 2 FLOPs per multiply-add")
grading.check_number(grading.call(attention_forward_flops, 4, 8, 1, True), 320,
                     name="attention_forward_flops(4, 8, 1, True)", hint="row i keeps i + 1 keys")
### BEGIN HIDDEN TESTS
from longctx_lab.cost import attention_flops

for n, d, h, c in ((1, 64, 1, True), (4097, 128, 32, True), (1000, 128, 16, False), (10**7, 128, 16, True)):
    grading.check_number(grading.call(attention_forward_flops, n, d, h, c), attention_flops(n, d, n_heads=h, causal=c),
                         name=f"attention_forward_flops({n}, {d}, {h}, {c})")
### END HIDDEN TESTS
""", "task2_tests", points=3),
markdown(r"""
## Task 3 (2 points): the longest sequence whose score matrix fits

Naive attention stores the full `(n_heads, n, n)` score matrix. Write
`largest_n(budget_bytes, n_heads, bytes_per_element)` returning the largest integer `n` for which that matrix
fits in `budget_bytes` (0 if not even `n = 1` fits). Beware of floating-point square roots at the boundary.
""", "task3_text"),
solution("""
import math


def largest_n(budget_bytes, n_heads, bytes_per_element):
    ### BEGIN SOLUTION
    n = math.isqrt(int(budget_bytes // (n_heads * bytes_per_element)))
    while n > 0 and n * n * n_heads * bytes_per_element > budget_bytes:
        n -= 1
    return n
    ### END SOLUTION
""", "task3_largest_n"),
tests("""
grading.check_number(grading.call(largest_n, 80e9, 1, 2), 200000, name="largest_n(80e9, 1, 2)")
### BEGIN HIDDEN TESTS
from longctx_lab.cost import max_seq_len_within

for budget, h, b in ((80e9, 64, 2), (24 * 2**30, 32, 4), (1, 1, 2), (2**31, 1, 2), (2**31 - 1, 1, 2)):
    want = max_seq_len_within(budget, lambda n, h=h, b=b: n * n * h * b)
    grading.check_number(grading.call(largest_n, budget, h, b), want, name=f"largest_n({budget}, {h}, {b})")
### END HIDDEN TESTS
""", "task3_tests", points=2),
]
write(notebook(solution_cells), ROOT / "solutions" / "ch01_quadratic_wall" / "ch01_quadratic_wall.ipynb")
