"""The recorded benchmark results the chapters read, shipped with the package (issue 21: the wheel is the product).

``longctx-lab bench ...`` records into ``benchmarks/results/`` of a checkout; the files a chapter reads are copied
here, next to this module, by ``make recorded`` (``tools/refresh_recorded.py``), and a lint test checks that the
two copies agree byte for byte. Read them only through this module, which finds them with
:mod:`importlib.resources`, so that a wheel, an sdist or a Colab install reads the same bytes as a checkout:

- :func:`recorded_result`: the JSON as a dict.
- :func:`recorded_file`: the file itself (a :class:`~importlib.resources.abc.Traversable`; a path on disk in an
  ordinary install).

``SHIPPED`` names the files, and which chapter reads each.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importlib.resources.abc is 3.11+; importlib.abc.Traversable on 3.10
    from importlib.resources.abc import Traversable

__all__ = ["CHECKOUT_DIR", "SHIPPED", "recorded_file", "recorded_result"]

#: The files shipped, each with what reads it. A file here is a copy of ``benchmarks/results/<name>``.
SHIPPED: dict[str, str] = {
    "attention-cpu.json": "chapter 4 (longctx_lab.attention.measure.recorded_benchmark), "
                          "`longctx-lab bench attention`",
    "decode-cpu.json": "chapter 5 (longctx_lab.cli.bench.decode_cpu.load_decode_results), "
                       "`longctx-lab bench decode-cpu`",
    "ch06-extension.json": "chapters 6 and 7 (longctx_lab.lm.extension.summary.load_results), "
                           "`longctx-lab bench ch06-extension`",
    "ch08-beyond-attention.json": "chapter 8 (longctx_lab.course.beyond_attention.load_ch08), `longctx-lab bench ch08`",
    "retrieval.json": "chapter 8 (longctx_lab.course.beyond_attention.load_retrieval), `longctx-lab bench retrieval`",
    "pretrained-cpu.json": "chapters 3, 5, 6 and 7 (SmolLM2-135M: sinks, KV cache, NIAH grid, the cliff past 8K), "
                           "`longctx-lab bench pretrained`",
}
#: Where ``longctx-lab bench`` records them in a checkout, relative to the repository root.
CHECKOUT_DIR = "benchmarks/results"


def recorded_file(name: str) -> Traversable:
    """The shipped copy of ``benchmarks/results/<name>``; ``ValueError`` naming the shipped files for any other name."""
    if not isinstance(name, str) or name not in SHIPPED:
        raise ValueError(f"name must be one of the recorded results shipped with longctx_lab "
                         f"({', '.join(SHIPPED)}), got {name!r}")
    return files(__name__) / name


def recorded_result(name: str) -> dict:
    """The shipped recorded result ``name`` (see ``SHIPPED``), parsed from JSON."""
    data = json.loads(recorded_file(name).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{name} must hold a JSON object, got {type(data).__name__} "
                         "(re-record it with longctx-lab bench)")
    return data
