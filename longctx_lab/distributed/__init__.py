"""Ring attention over ``torch.distributed`` (gloo on CPU): one sequence sharded over P processes.

See docs/conventions.md for shapes, GQA and the LSE. Modules, one concept each:

- :mod:`.layouts`: which sequence chunks a rank holds (``"plain"`` contiguous, ``"zigzag"`` balanced), the
  checks of one rank's call (:func:`.layouts.check_shard_call`),
  the causal rule between two chunks, and the attended pairs (work) per rank.
- :mod:`.merge`: the numerically stable merge of two partial ``(out, lse)`` results.
- :mod:`.ring`: :func:`ring_attention`, forward and backward (an autograd Function), run inside a process group.
- :mod:`.allgather`: :func:`all_gather_attention`, Llama 3's all-gather context parallelism (second algorithm).
- :mod:`.launcher`: :func:`launch` spawns P CPU processes (start method ``spawn``, loopback, timeouts) and
  :func:`run_ring_cases` / :func:`ring_attention_gathered` run ring attention on full tensors and gather the result.
- :mod:`.demo`: :func:`run_ring_demo` (per-rank time, memory, bytes; also under torchrun), which the command
  ``longctx-lab ring`` (:mod:`longctx_lab.cli.ring`) runs.
- :mod:`.cost_model`: per-device memory, bytes sent and the transfer/compute overlap condition vs P.
"""

from longctx_lab.distributed.allgather import all_gather_attention
from longctx_lab.distributed.cost_model import (
    LINKS,
    article_example,
    min_block_tokens,
    overlap,
    ring_communication,
    ring_memory,
)
from longctx_lab.distributed.demo import RankRecord, RingReport, run_ring_demo
from longctx_lab.distributed.launcher import RingCase, launch, ring_attention_gathered, run_ring_cases
from longctx_lab.distributed.layouts import LAYOUTS, chunks_of_rank, pair_rule, shard, unshard, work_per_rank
from longctx_lab.distributed.merge import merge_partials
from longctx_lab.distributed.ring import ring_attention

__all__ = [
    "LAYOUTS",
    "LINKS",
    "RankRecord",
    "RingReport",
    "article_example",
    "min_block_tokens",
    "overlap",
    "ring_communication",
    "ring_memory",
    "run_ring_demo",
    "all_gather_attention",
    "RingCase",
    "chunks_of_rank",
    "launch",
    "merge_partials",
    "pair_rule",
    "ring_attention",
    "ring_attention_gathered",
    "run_ring_cases",
    "shard",
    "unshard",
    "work_per_rank",
]
