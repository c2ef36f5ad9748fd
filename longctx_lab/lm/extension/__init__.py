"""Context extension of the course's tiny passkey model (chapter 6, issue 15): experiments, summaries, figures.

Public API (what the chapter-6 notebook calls)::

    from longctx_lab.lm.extension import summary, plots
    results = summary.load_results()                     # the shipped copy of benchmarks/results/ch06-extension.json
    seeds = results["experiments"]["scaling"]["seeds"]   # one dict per seed
    print(summary.format_table(seeds))                   # method x length, "mean [min-max]" over seeds
    summary.method_spread(seeds)                         # {method: {"by_length": {L: spread}, "mean_accuracy"...}}
    summary.spread([0.9, 1.0, 0.8])                      # {"mean", "min", "max", "n"}
    plots.plot_method_heatmaps(seeds)                    # one heatmap per method (mean over seeds)
    plots.plot_by_length(seeds)                          # accuracy vs length, min-max band
    plots.plot_beta_fast(results["experiments"]["yarn_beta"]["seeds"])
    plots.plot_window_distance(results["experiments"]["sliding_window"]["seeds"])
    plots.plot_wavelengths(32, 10_000.0, 64, beta_fast=(32, 4))   # the model: head_dim 32, base 10 000, L 64

Modules, one concept each:

- :mod:`.evaluate`: :func:`evaluate_grid` (the NIAH grid of :func:`longctx_lab.lm.niah.run_niah`, same samples,
  scored by teacher forcing in batches), :func:`needle_distance`.
- :mod:`.schemes`: :func:`scheme_config`, the RoPE schedule of each inference-time method
  (:data:`INFERENCE_METHODS`: none, pi, ntk, dynamic, yarn).
- :mod:`.experiments`: one function per experiment and seed (:func:`run_scaling`, :func:`run_variable_length`,
  :func:`run_yarn_beta`, :func:`run_sliding_window`), :func:`yarn_pair_table`, settings :data:`FULL` /
  :data:`QUICK`.
- :mod:`.summary`: spreads over seeds and tables from the JSON.
- :mod:`.plots`: the figures (matplotlib ``Figure`` objects).

The benchmark ``longctx-lab bench ch06-extension [--seeds 3] [--quick]``
(:mod:`longctx_lab.cli.bench.ch06_extension`) runs everything and writes the JSON.

JSON format (``benchmarks/results/ch06-extension.json``)::

    {"command", "device", "date", "versions": {...}, "torch_threads", "load_average", "quick": bool,
     "complete": bool (false while seeds are still running), "seeds": [0, 1, 2], "settings": {...FULL...},
     "seconds": wall time of the whole run,
     "runs": [{"command", "date", "seconds", "settings", "experiments": [names]}, ...] (every invocation; a
              ``--only`` run replaces those experiments and keeps the others; ``settings`` at the top level are
              the first run's, an experiment's come from the last run listing it),
     "experiments": {
       "scaling" | "variable_length" | "yarn_beta" | "sliding_window": {
         "seeds": [ {"seed": s, "seconds": t, "grids": {method: GRID}, ...experiment's extras} ],
         "spread": {method: {"lengths", "depths", "by_length": {"L": {"mean", "min", "max", "n"}},
                             "mean_accuracy": [[...]]}}}}}

    GRID = {"lengths": [L...], "depths": [d...], "accuracy": [[acc at depths[i], lengths[j]]]}

Methods per experiment: ``scaling``: none, pi, ntk, dynamic, yarn (inference-time, static factor
``target_factor``), finetune-pi-2L, scratch-2L; extras ``train_len``, ``lengths``, ``final_loss``.
``variable_length``: fixed, variable; extras ``variable_range``. ``yarn_beta``: ``beta_fast=B`` for each B;
extras ``pairs`` ({B: :func:`yarn_pair_table`}), ``factors``. ``sliding_window``: window (one length, the
training length, many depths); extras ``window``, ``distances`` (per depth), ``one_layer_reach`` (w - 1),
``reach`` (layers * (w - 1)).
"""

from longctx_lab.lm.extension.evaluate import evaluate_grid, needle_distance
from longctx_lab.lm.extension.schemes import INFERENCE_METHODS, scheme_config

__all__ = ["INFERENCE_METHODS", "evaluate_grid", "needle_distance", "scheme_config"]
