"""A notebook panel for :func:`longctx_lab.lm.hf.planner.plan`: pick a model, a context, a batch, dtypes and a GPU.

Where a live front end renders widgets (:func:`longctx_lab.core.display.show_widgets`), dropdowns and sliders
redraw the plan's table on every change. Everywhere else (nbval, the book, a terminal) the static fallback
is the plan of the default settings, printed as :meth:`~longctx_lab.lm.hf.planner.Plan.table`. Either way the
numbers come from the same :func:`~longctx_lab.lm.hf.planner.plan` call as ``longctx-lab plan``.
"""

from __future__ import annotations

from longctx_lab.core.configs import MODELS
from longctx_lab.core.display import show_widgets
from longctx_lab.lm.hf.config import shipped_configs
from longctx_lab.lm.hf.planner import Plan, plan

__all__ = ["planner_choices", "show_planner"]

_DTYPES = ("bf16", "fp16", "fp8", "int8", "int4")


def planner_choices() -> dict[str, object]:
    """The models the panel offers: the course's configs (``configs.MODELS``) and the shipped ``config.json``
    files (by name), label -> what :func:`~longctx_lab.lm.hf.planner.plan` accepts."""
    choices: dict[str, object] = {m.name: m for m in MODELS.values()}
    for key, info in shipped_configs().items():
        choices.setdefault(f"{info['name']} (config.json)", key)
    return choices


def show_planner(model: str = "Llama 3.1 70B", *, context: int = 131_072, batch: int = 1, dtype: str = "bf16",
                 kv_dtype: str = "bf16", gpu_mem_gib: float = 80.0) -> Plan:
    """Show the planner panel (live front end) or print the default plan's table (elsewhere).

    ``model`` is a label of :func:`planner_choices`; the other arguments are :func:`~longctx_lab.lm.hf.planner.plan`'s
    and set the panel's starting values. Returns the plan of those starting values.
    """
    choices = planner_choices()
    if model not in choices:
        raise ValueError(f"model must be one of {sorted(choices)}, got {model!r}")
    first = plan(choices[model], context=context, batch=batch, dtype=dtype, kv_dtype=kv_dtype,
                 gpu_mem_gib=gpu_mem_gib)

    def show(model, context, batch, dtype, kv_dtype, gpu_mem_gib):
        print(plan(choices[model], context=context, batch=batch, dtype=dtype, kv_dtype=kv_dtype,
                   gpu_mem_gib=gpu_mem_gib).table())

    import ipywidgets as widgets

    live = show_widgets(
        show,
        note=f"Interactive planner controls need a live Jupyter kernel with widgets; here is the plan for {model}:",
        model=widgets.Dropdown(options=list(choices), value=model),
        context=widgets.IntText(value=context, step=4096),
        batch=widgets.IntSlider(value=batch, min=1, max=64),
        dtype=widgets.Dropdown(options=_DTYPES, value=dtype),
        kv_dtype=widgets.Dropdown(options=_DTYPES, value=kv_dtype),
        gpu_mem_gib=widgets.Dropdown(options=[16.0, 24.0, 40.0, 48.0, 80.0, 94.0, 141.0, 192.0], value=gpu_mem_gib),
    )
    if not live:
        print(first.table())
    return first
