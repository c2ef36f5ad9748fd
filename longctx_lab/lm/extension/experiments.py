"""The chapter-6 context-extension experiments: each function runs one experiment for one seed, returns a dict.

Every function trains the course's tiny model (:func:`longctx_lab.lm.train.train` with the passkey recipe,
:func:`model_config`) and scores it with :func:`longctx_lab.lm.extension.evaluate.evaluate_grid`. Each returns
``{"seed": s, "seconds": t, "grids": {method: grid}, ...}`` where a grid is ``{"lengths", "depths",
"accuracy"}`` (``accuracy[i][j]`` at ``depths[i]``, ``lengths[j]``); :mod:`.summary` reads these. ``settings``
is a dict like :data:`FULL` or :data:`QUICK` (missing keys take :data:`FULL`'s values).

- :func:`run_scaling` (a): train at ``L``; read ``L, 2L, 4L, 8L`` with no scaling, PI, NTK, dynamic NTK and
  YaRN applied at inference (:mod:`.schemes`; the static ones at the target factor 8); a short fine-tune at
  ``2L`` with PI (factor 2) from the trained model (progressive extension); training from scratch at ``2L``
  for the same number of steps.
- :func:`run_variable_length` (b): the same steps at a fixed length ``L`` and at lengths drawn in
  ``[lo, L]`` per step; both read at lengths up to and beyond ``L``.
- :func:`run_yarn_beta` (c): the trained model read at ``2L`` and ``4L`` with YaRN (factor = length / L) for
  each ``beta_fast``; :func:`yarn_pair_table` says which pairs YaRN keeps, blends or interpolates.
- :func:`run_sliding_window` (d): a model whose two layers attend over a window ``w`` (trained at lengths in
  ``[window_train_lo, L]``: at a fixed ``L`` most needles lie beyond the window and the model learned nothing
  in 800 steps, loss at chance), read at ``L`` with the needle at many depths; each depth's needle distance
  (:func:`~.evaluate.needle_distance`) against the window ``w - 1`` and the two-layer reach ``2 (w - 1)``
  (:mod:`longctx_lab.attention.receptive_field`).

Models are trained with ``threads`` intra-op threads and no progress bar of their own (the benchmark shows
one over the whole run).
"""

from __future__ import annotations

import time

from longctx_lab.core.validate import check_int
from longctx_lab.lm.extension.evaluate import evaluate_grid, needle_distance
from longctx_lab.lm.extension.schemes import INFERENCE_METHODS, scheme_config
from longctx_lab.lm.model import LMConfig, TinyLM
from longctx_lab.lm.train import train

__all__ = ["FULL", "QUICK", "model_config", "run_scaling", "run_sliding_window", "run_variable_length",
           "run_yarn_beta", "settings_with", "train_base", "yarn_pair_table"]

#: The recorded run's settings (``longctx-lab bench ch06-extension``).
FULL = {
    "train_len": 64,            # L
    "steps": 800,
    "finetune_steps": 200,      # fine-tune at 2L, and from scratch at 2L
    "factors": [1, 2, 4, 8],    # read at L * factor
    "target_factor": 8,         # the static schemes' factor
    "depths": [0.0, 0.25, 0.5, 0.75, 1.0],
    "trials": 10,
    "variable_lo": 16,          # variable-length training draws lengths in [variable_lo, L]
    "short_lengths": [16, 32, 48, 64, 96, 128],
    "beta_fast": [2, 4, 8, 16, 32],
    "beta_slow": 1.0,
    "yarn_factors": [2, 4],
    "window": 16,
    "window_train_lo": 16,      # the window model trains at lengths in [window_train_lo, L]: short contexts
                                # put the needle inside the window often enough to learn the copy at all
    "window_depths": [round(i / 12, 4) for i in range(13)],
    "window_trials": 16,
    "n_digits": 3,
    "threads": 1,               # on 2 cores shared with other work, 1 thread ran 4-5x faster than 2
}

#: A seconds-long smoke run (tiny steps and trials): numbers in [0, 1], nothing learned.
QUICK = {**FULL, "train_len": 16, "steps": 3, "finetune_steps": 2, "factors": [1, 2], "target_factor": 2,
         "depths": [0.0, 1.0], "trials": 2, "variable_lo": 12, "short_lengths": [12, 16], "beta_fast": [2, 32],
         "yarn_factors": [2], "window": 4, "window_train_lo": 12, "window_depths": [0.0, 1.0], "window_trials": 2,
         "batch_size": 4,
         "threads": 1}


def settings_with(settings: dict | None) -> dict:
    """:data:`FULL` updated with ``settings`` (unknown keys are a ``ValueError``)."""
    if settings is None:
        return dict(FULL)
    if not isinstance(settings, dict):
        raise TypeError(f"settings must be a dict or None, got {type(settings).__name__}")
    unknown = sorted(set(settings) - set(FULL) - {"batch_size"})
    if unknown:
        raise ValueError(f"settings has keys the experiments do not know: {unknown} (known: {sorted(FULL)})")
    return {**FULL, **settings}


#: The experiments' model: the one ``benchmarks/results/ch06-extension.json`` was recorded with (wider than the
#: shipped checkpoint's :data:`longctx_lab.lm.train.PASSKEY_MODEL`, whose recipe came later; both are 2-layer RoPE).
EXPERIMENT_MODEL = {"d_model": 128, "n_layers": 2, "n_heads": 4, "mlp_hidden": 512}


def model_config(train_len: int, *, sliding_window=None) -> LMConfig:
    """:data:`EXPERIMENT_MODEL` with ``max_positions = train_len``."""
    from longctx_lab.lm.tasks import VOCAB

    train_len = check_int("train_len", train_len, minimum=1)
    return LMConfig(vocab_size=VOCAB.size, max_positions=train_len, sliding_window=sliding_window,
                    **EXPERIMENT_MODEL)


def _train(config, s: dict, seed: int, seq_len, steps: int, **kw):
    extra = {"batch_size": s["batch_size"]} if "batch_size" in s else {}
    return train(config, seq_len=seq_len, steps=steps, seed=seed, threads=s["threads"], show_progress=False,
                 task_options={"n_digits": s["n_digits"]}, **extra, **kw)


def train_base(seed: int, settings: dict | None = None):
    """The fixed-length model of one seed (``steps`` steps at ``train_len``): the ``TrainResult`` that
    :func:`run_scaling`, :func:`run_variable_length` and :func:`run_yarn_beta` share."""
    s = settings_with(settings)
    seed = check_int("seed", seed, minimum=0)
    return _train(model_config(s["train_len"]), s, seed, s["train_len"], s["steps"])


def _grid(model, lengths, depths, trials, s: dict, seed: int) -> dict:
    r = evaluate_grid(model, "passkey", lengths=lengths, depths=depths, trials=trials, seed=_eval_seed(seed),
                      n_digits=s["n_digits"])
    return {"lengths": r.lengths, "depths": r.depths, "accuracy": r.accuracy}


def _with(model: TinyLM, config: LMConfig) -> TinyLM:
    out = TinyLM(config)
    out.load_state_dict(model.state_dict())
    return out.eval()


def _eval_seed(seed: int) -> int:
    return 1_000 + seed  # evaluation samples differ per seed too (and never equal the training stream)


def _final_loss(result) -> float:
    tail = result.losses[-10:]
    return sum(tail) / len(tail)


def run_scaling(seed: int, settings: dict | None = None, *, base=None) -> dict:
    """Experiment (a) for one seed (module docstring). ``base``: an already trained ``TrainResult`` at ``L``
    (so (a), (b) and (c) share one model per seed); trained here when ``None``."""
    s = settings_with(settings)
    seed = check_int("seed", seed, minimum=0)
    start = time.perf_counter()
    L = s["train_len"]
    lengths = [L * f for f in s["factors"]]
    if base is None:
        base = train_base(seed, s)
    grids = {}
    for method in INFERENCE_METHODS:
        acc_cols = []
        for n in lengths:
            cfg = scheme_config(base.model.config, method, train_len=L, eval_len=n, factor=s["target_factor"])
            acc_cols.append(_grid(_with(base.model, cfg), [n], s["depths"], s["trials"], s, seed))
        grids[method] = _merge_columns(acc_cols)
    two = 2 * L
    pi2 = model_config(two).with_rope("linear", factor=2.0)
    tuned = _train(pi2, s, seed, two, s["finetune_steps"], init=base.model)
    grids["finetune-pi-2L"] = _grid(tuned.model, lengths, s["depths"], s["trials"], s, seed)
    scratch = _train(model_config(two), s, seed, two, s["finetune_steps"])
    grids["scratch-2L"] = _grid(scratch.model, lengths, s["depths"], s["trials"], s, seed)
    return {"seed": seed, "seconds": time.perf_counter() - start, "train_len": L, "lengths": lengths,
            "target_factor": s["target_factor"], "steps": s["steps"], "finetune_steps": s["finetune_steps"],
            "final_loss": {"base": _final_loss(base), "finetune-pi-2L": _final_loss(tuned),
                           "scratch-2L": _final_loss(scratch)},
            "grids": grids}


def _merge_columns(grids: list[dict]) -> dict:
    """One grid from single-length grids over the same depths (columns in order)."""
    depths = grids[0]["depths"]
    acc = [[g["accuracy"][i][0] for g in grids] for i in range(len(depths))]
    return {"lengths": [g["lengths"][0] for g in grids], "depths": depths, "accuracy": acc}


def run_variable_length(seed: int, settings: dict | None = None, *, base=None) -> dict:
    """Experiment (b) for one seed: fixed-length ``L`` vs lengths in ``[variable_lo, L]``, same steps, read
    at ``short_lengths`` (module docstring). ``base``: the fixed-length ``TrainResult`` if already trained."""
    s = settings_with(settings)
    seed = check_int("seed", seed, minimum=0)
    start = time.perf_counter()
    L = s["train_len"]
    if base is None:
        base = train_base(seed, s)
    variable = _train(model_config(L), s, seed, (s["variable_lo"], L), s["steps"])
    lengths = s["short_lengths"]
    grids = {"fixed": _grid(base.model, lengths, s["depths"], s["trials"], s, seed),
             "variable": _grid(variable.model, lengths, s["depths"], s["trials"], s, seed)}
    return {"seed": seed, "seconds": time.perf_counter() - start, "train_len": L,
            "variable_range": [s["variable_lo"], L],
            "final_loss": {"fixed": _final_loss(base), "variable": _final_loss(variable)}, "grids": grids}


def yarn_pair_table(head_dim: int, base: float, train_len: int, beta_fast: float, beta_slow: float = 1.0) -> dict:
    """Which rotary pairs YaRN keeps, blends or interpolates for a model trained at ``train_len``.

    Per pair ``i`` (``head_dim // 2`` of them): the wavelength ``2 pi / theta_i`` (chapter 2's
    :func:`longctx_lab.rope.wavelengths`), the turns it makes in ``train_len`` tokens, and YaRN's ramp
    value (0: kept, 1: fully interpolated) from :func:`longctx_lab.rope.yarn_correction_range`. A pair is
    kept only when it turns more than about ``beta_fast`` times in ``train_len``, i.e. its wavelength is
    below ``train_len / beta_fast``. Returns lists and the counts ``kept``, ``blended``, ``interpolated``.
    """
    from longctx_lab import rope

    head_dim = check_int("head_dim", head_dim, minimum=2)
    train_len = check_int("train_len", train_len, minimum=1)
    inv_freq, _ = rope.default_rope(head_dim, base)
    wl = rope.wavelengths(inv_freq)
    turns = rope.turns_in_context(inv_freq, train_len)
    low, high = rope.yarn_correction_range(head_dim, base, train_len, beta_fast, beta_slow)
    ramp = rope.yarn_ramp(low, high, head_dim // 2)
    labels = ["kept" if g == 0 else "interpolated" if g == 1 else "blended" for g in ramp.tolist()]
    return {"beta_fast": float(beta_fast), "beta_slow": float(beta_slow), "train_len": train_len,
            "wavelengths": wl.tolist(), "turns": turns.tolist(), "ramp": ramp.tolist(), "labels": labels,
            "short_wavelengths": int((wl < train_len / beta_fast).sum()),
            "kept": labels.count("kept"), "blended": labels.count("blended"),
            "interpolated": labels.count("interpolated")}


def run_yarn_beta(seed: int, settings: dict | None = None, *, base=None) -> dict:
    """Experiment (c) for one seed: YaRN with each ``beta_fast`` at ``L * yarn_factors`` (module docstring)."""
    s = settings_with(settings)
    seed = check_int("seed", seed, minimum=0)
    start = time.perf_counter()
    L = s["train_len"]
    if base is None:
        base = train_base(seed, s)
    cfg = base.model.config
    grids = {}
    for beta in s["beta_fast"]:
        cols = []
        for f in s["yarn_factors"]:
            yc = scheme_config(cfg, "yarn", train_len=L, eval_len=L * f, factor=f, beta_fast=beta,
                               beta_slow=s["beta_slow"])
            cols.append(_grid(_with(base.model, yc), [L * f], s["depths"], s["trials"], s, seed))
        grids[f"beta_fast={beta:g}"] = _merge_columns(cols)
    pairs = {f"{beta:g}": yarn_pair_table(cfg.head_dim, cfg.rope_base, L, beta, s["beta_slow"])
             for beta in s["beta_fast"]}
    return {"seed": seed, "seconds": time.perf_counter() - start, "train_len": L, "beta_fast": list(s["beta_fast"]),
            "factors": list(s["yarn_factors"]), "grids": grids, "pairs": pairs}


def run_sliding_window(seed: int, settings: dict | None = None) -> dict:
    """Experiment (d) for one seed: a window-``w`` model read at ``L`` over ``window_depths`` (module
    docstring). ``distances[i]``: the needle distance at ``window_depths[i]``."""
    from longctx_lab.attention.receptive_field import receptive_field_size
    from longctx_lab.lm.tasks import make_sample

    s = settings_with(settings)
    seed = check_int("seed", seed, minimum=0)
    start = time.perf_counter()
    L, w = s["train_len"], s["window"]
    windowed = _train(model_config(L, sliding_window=w), s, seed, (s["window_train_lo"], L), s["steps"])
    depths = s["window_depths"]
    grid = _grid(windowed.model, [L], depths, s["window_trials"], s, seed)
    distances = [needle_distance(make_sample("passkey", L, d, seed=0, n_digits=s["n_digits"])) for d in depths]
    return {"seed": seed, "seconds": time.perf_counter() - start, "train_len": L, "window": w,
            "layers": windowed.model.config.n_layers, "one_layer_reach": w - 1,
            "reach": receptive_field_size(w, windowed.model.config.n_layers) - 1, "distances": distances,
            "window_train_range": [s["window_train_lo"], L], "final_loss": {"window": _final_loss(windowed)},
            "grids": {"window": grid}}
