"""RoPE frequency schedules: one small function per scheme, and a registry of them.

Every function returns ``(inv_freq, attention_factor)`` like Hugging Face ``transformers``'
``modeling_rope_utils``:

- ``inv_freq`` is a 1-D float64 tensor of length ``rotary_dim // 2``. Entry ``i`` is the angle (in
  radians) by which pair ``i`` of the rotated dimensions turns per position step, for
  ``i = 0 .. rotary_dim/2 - 1``. Default RoPE has ``inv_freq[i] = base ** (-2 i / rotary_dim)``:
  pair 0 turns 1 radian per token whatever the base, the last pair turns slowest.
- ``attention_factor`` is a float that multiplies ``cos`` and ``sin`` (so both q and k), hence the
  attention logits by ``attention_factor ** 2``. It is 1.0 except for YaRN and LongRoPE.

``rotary_dim = int(head_dim * partial_rotary_factor)`` must be even; the first ``rotary_dim``
features of each head are rotated, the rest pass through (GPT-NeoX / Phi convention).

The computation is done in float64 so that the schedules are exact references; Hugging Face does
the same arithmetic in float32, which our tests allow for.

Names follow Hugging Face where it has the scheme: ``original_max_position_embeddings`` is the
context length the model was pre-trained at, ``factor`` the extension ratio ``new / original``.
``"ntk"`` (static NTK-aware base change) has no Hugging Face counterpart: it is the "dynamic" rule
frozen at one target length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from longctx_lab.core.validate import check_bool, check_int, check_number

__all__ = [
    "ROPE_SCHEMES",
    "default_rope",
    "from_hf_rope_parameters",
    "dynamic_ntk_rope",
    "linear_rope",
    "llama3_rope",
    "longrope_rope",
    "ntk_base",
    "ntk_rope",
    "rope_frequencies",
    "rotary_dim_of",
    "yarn_attention_factor",
    "yarn_correction_range",
    "yarn_ramp",
    "yarn_rope",
]


# ---------------------------------------------------------------------------------------------
# shared pieces


def rotary_dim_of(head_dim: int, partial_rotary_factor: float = 1.0) -> int:
    """Number of rotated features per head: ``int(head_dim * partial_rotary_factor)``, which must be even."""
    head_dim = check_int("head_dim", head_dim, minimum=2)
    partial_rotary_factor = check_number(
        "partial_rotary_factor", partial_rotary_factor, exclusive_minimum=0.0, maximum=1.0
    )
    dim = int(head_dim * partial_rotary_factor)
    if dim < 2 or dim % 2:
        if partial_rotary_factor == 1.0:
            raise ValueError(f"head_dim must be even (RoPE rotates pairs of features), got {head_dim}")
        raise ValueError(
            "the rotary dimension int(head_dim * partial_rotary_factor) must be an even number >= 2, "
            f"got int({head_dim} * {partial_rotary_factor}) = {dim}"
        )
    return dim


def _base(base) -> float:
    return check_number("base", base, exclusive_minimum=0.0)


def _factor(factor) -> float:
    return check_number("factor", factor, minimum=1.0)


def _exponents(dim: int) -> torch.Tensor:
    """``2 i / dim`` for ``i = 0 .. dim/2 - 1`` in float64."""
    return torch.arange(0, dim, 2, dtype=torch.float64) / dim


def _default_inv_freq(dim: int, base: float) -> torch.Tensor:
    return base ** (-_exponents(dim))


# ---------------------------------------------------------------------------------------------
# the schemes


def default_rope(head_dim: int, base: float = 10_000.0, *, partial_rotary_factor: float = 1.0):
    """Original RoPE (Su et al., RoFormer): ``inv_freq[i] = base ** (-2 i / d)``, ``i = 0 .. d/2 - 1``.

    ``d`` is the rotary dimension. Returns ``(inv_freq, 1.0)``.
    """
    dim = rotary_dim_of(head_dim, partial_rotary_factor)
    return _default_inv_freq(dim, _base(base)), 1.0


def linear_rope(head_dim: int, base: float = 10_000.0, *, factor: float, partial_rotary_factor: float = 1.0):
    """Position interpolation (PI, Chen et al. 2023): every frequency divided by ``factor``.

    Dividing every ``inv_freq`` by ``s`` is the same as feeding positions ``m / s`` to default RoPE:
    a context ``s`` times longer is squeezed back into the angle range seen in training.
    Returns ``(inv_freq, 1.0)``.
    """
    factor = _factor(factor)
    inv_freq, _ = default_rope(head_dim, base, partial_rotary_factor=partial_rotary_factor)
    return inv_freq / factor, 1.0


def ntk_base(base: float, factor: float, rotary_dim: int) -> float:
    """The NTK-aware base: ``base * factor ** (d / (d - 2))``.

    With that base the slowest pair (``i = d/2 - 1``) turns exactly ``factor`` times slower than
    before, while pair 0 still turns 1 radian per token: low frequencies are interpolated, high
    frequencies kept, with a geometric blend in between.
    """
    base = _base(base)
    factor = _factor(factor)
    rotary_dim = check_int("rotary_dim", rotary_dim, minimum=4)
    if rotary_dim % 2:
        raise ValueError(f"rotary_dim must be even, got {rotary_dim}")
    return base * factor ** (rotary_dim / (rotary_dim - 2))


def ntk_rope(head_dim: int, base: float = 10_000.0, *, factor: float, partial_rotary_factor: float = 1.0):
    """Static NTK-aware scaling (bloc97, 2023): default RoPE with the base raised by :func:`ntk_base`.

    The rotary dimension must be >= 4 (with one pair the exponent ``d / (d - 2)`` is undefined).
    Returns ``(inv_freq, 1.0)``.
    """
    dim = rotary_dim_of(head_dim, partial_rotary_factor)
    new_base = ntk_base(base, factor, dim)
    return _default_inv_freq(dim, new_base), 1.0


def dynamic_ntk_rope(
    head_dim: int,
    base: float = 10_000.0,
    *,
    factor: float,
    max_position_embeddings: int,
    seq_len: int | None = None,
    partial_rotary_factor: float = 1.0,
):
    """Dynamic NTK scaling: the NTK base change recomputed for the current length.

    ``L = max(seq_len, max_position_embeddings)`` (``seq_len=None`` means the trained length) and
    ``base' = base * (factor * L / max_position_embeddings - (factor - 1)) ** (d / (d - 2))``.
    Up to the trained length nothing changes; beyond it the base grows with the sequence, so a
    short prompt keeps the original frequencies (this is Hugging Face's ``"dynamic"`` rule, where
    ``seq_len`` is ``max(position_ids) + 1``). Returns ``(inv_freq, 1.0)``.
    """
    factor = _factor(factor)
    base = _base(base)
    max_position_embeddings = check_int("max_position_embeddings", max_position_embeddings, minimum=1)
    if seq_len is None:
        seq_len = max_position_embeddings
    seq_len = check_int("seq_len", seq_len, minimum=1)
    dim = rotary_dim_of(head_dim, partial_rotary_factor)
    if dim < 4:
        raise ValueError(f"dynamic NTK needs a rotary dimension >= 4, got {dim}")
    length = max(seq_len, max_position_embeddings)
    ratio = factor * length / max_position_embeddings - (factor - 1.0)
    new_base = base * ratio ** (dim / (dim - 2))
    return _default_inv_freq(dim, new_base), 1.0


def yarn_attention_factor(factor: float, mscale: float | None = None, mscale_all_dim: float | None = None) -> float:
    """YaRN's attention temperature, returned as the factor that multiplies cos and sin.

    ``0.1 * ln(factor) + 1`` (Peng et al. 2023, eq. for ``sqrt(1/t)``); the logits are multiplied
    by its square ``1/t``. With DeepSeek-style ``mscale``/``mscale_all_dim`` both given (and
    non-zero), the ratio ``m(factor, mscale) / m(factor, mscale_all_dim)`` with
    ``m(s, k) = 0.1 * k * ln(s) + 1``. ``factor <= 1`` gives 1.
    """
    factor = check_number("factor", factor, exclusive_minimum=0.0)

    def m(scale: float, k: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * k * math.log(scale) + 1.0

    if mscale is not None:
        mscale = check_number("mscale", mscale)
    if mscale_all_dim is not None:
        mscale_all_dim = check_number("mscale_all_dim", mscale_all_dim)
    if mscale and mscale_all_dim:
        return float(m(factor, mscale) / m(factor, mscale_all_dim))
    return float(m(factor))


def yarn_correction_range(
    rotary_dim: int,
    base: float,
    original_max_position_embeddings: int,
    beta_fast: float = 32.0,
    beta_slow: float = 1.0,
    *,
    truncate: bool = True,
) -> tuple[float, float]:
    """Pair indices ``(low, high)`` where YaRN's ramp starts and ends.

    Pair ``i`` makes ``r(i) = L / (2 pi base^(2i/d))`` full turns over the original context ``L``.
    ``low`` is the (fractional) index where ``r = beta_fast`` (pairs before it turn many times in
    ``L``: keep them), ``high`` where ``r = beta_slow`` (pairs after it turn less than ``beta_slow``
    times: interpolate them fully). ``truncate`` floors ``low`` and ceils ``high`` as the YaRN
    reference code and Hugging Face do; the result is clamped to ``[0, d - 1]`` as there.
    """
    rotary_dim = check_int("rotary_dim", rotary_dim, minimum=2)
    base = _base(base)
    original_max_position_embeddings = check_int(
        "original_max_position_embeddings", original_max_position_embeddings, minimum=1
    )
    beta_fast = check_number("beta_fast", beta_fast, exclusive_minimum=0.0)
    beta_slow = check_number("beta_slow", beta_slow, exclusive_minimum=0.0)
    if beta_fast <= beta_slow:
        raise ValueError(f"beta_fast must be > beta_slow, got beta_fast={beta_fast} and beta_slow={beta_slow}")
    check_bool("truncate", truncate)
    if base == 1.0:
        raise ValueError("base must differ from 1 for YaRN (every pair would turn at the same speed), got 1.0")

    def index_for(turns: float) -> float:
        return rotary_dim * math.log(original_max_position_embeddings / (turns * 2 * math.pi)) / (2 * math.log(base))

    low, high = index_for(beta_fast), index_for(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0), min(high, rotary_dim - 1)


def yarn_ramp(low: float, high: float, n_pairs: int) -> torch.Tensor:
    """Linear ramp over pair indices: 0 up to ``low``, 1 from ``high`` on, linear in between.

    Returns a float64 tensor of length ``n_pairs``; entry ``i`` is the share of *interpolation*
    that pair ``i`` receives in YaRN (0 = keep the original frequency, 1 = divide it by the factor).
    If ``low == high`` the ramp is a step (``high`` is nudged by 0.001 as in the reference code).
    """
    low = check_number("low", low)
    high = check_number("high", high)
    n_pairs = check_int("n_pairs", n_pairs, minimum=1)
    if high < low:
        raise ValueError(f"high must be >= low, got low={low} and high={high}")
    if high == low:
        high += 0.001
    idx = torch.arange(n_pairs, dtype=torch.float64)
    return ((idx - low) / (high - low)).clamp(0.0, 1.0)


def yarn_rope(
    head_dim: int,
    base: float = 10_000.0,
    *,
    factor: float,
    original_max_position_embeddings: int,
    beta_fast: float = 32.0,
    beta_slow: float = 1.0,
    attention_factor: float | None = None,
    mscale: float | None = None,
    mscale_all_dim: float | None = None,
    truncate: bool = True,
    partial_rotary_factor: float = 1.0,
):
    """YaRN (Peng et al. 2023): NTK-by-parts interpolation plus an attention temperature.

    Per pair ``i`` with ramp value ``g_i`` from :func:`yarn_ramp` over :func:`yarn_correction_range`:
    ``inv_freq[i] = (1 - g_i) * theta_i + g_i * theta_i / factor``. Fast pairs (many turns in the
    original context) are kept, slow pairs are interpolated like PI, the ones between are blended.
    ``attention_factor`` defaults to :func:`yarn_attention_factor`. Returns
    ``(inv_freq, attention_factor)``.
    """
    if original_max_position_embeddings is None:
        raise ValueError(
            "original_max_position_embeddings is required for YaRN (the pre-training context length "
            "that sets where the ramp lies), got None"
        )
    factor = _factor(factor)
    base = _base(base)
    dim = rotary_dim_of(head_dim, partial_rotary_factor)
    low, high = yarn_correction_range(
        dim, base, original_max_position_embeddings, beta_fast, beta_slow, truncate=truncate
    )
    if attention_factor is None:
        attention_factor = yarn_attention_factor(factor, mscale, mscale_all_dim)
    else:
        attention_factor = check_number("attention_factor", attention_factor, exclusive_minimum=0.0)
    theta = _default_inv_freq(dim, base)
    interp_share = yarn_ramp(low, high, dim // 2)
    inv_freq = theta * (1.0 - interp_share) + (theta / factor) * interp_share
    return inv_freq, float(attention_factor)


def llama3_rope(
    head_dim: int,
    base: float = 500_000.0,
    *,
    factor: float = 8.0,
    low_freq_factor: float = 1.0,
    high_freq_factor: float = 4.0,
    original_max_position_embeddings: int = 8192,
    partial_rotary_factor: float = 1.0,
):
    """Llama 3.1's frequency rescaling (``rope_type="llama3"``; defaults are the published values).

    With ``L = original_max_position_embeddings`` and wavelength ``lambda_i = 2 pi / theta_i``:
    pairs with ``lambda_i < L / high_freq_factor`` are kept, pairs with
    ``lambda_i > L / low_freq_factor`` are divided by ``factor`` (PI), and in between
    ``inv_freq = (1 - a) theta / factor + a theta`` with ``a = (L / lambda - low) / (high - low)``.
    Returns ``(inv_freq, 1.0)``.
    """
    factor = _factor(factor)
    low_freq_factor = check_number("low_freq_factor", low_freq_factor, exclusive_minimum=0.0)
    high_freq_factor = check_number("high_freq_factor", high_freq_factor, exclusive_minimum=0.0)
    if high_freq_factor <= low_freq_factor:
        raise ValueError(
            f"high_freq_factor must be > low_freq_factor, got high_freq_factor={high_freq_factor} "
            f"and low_freq_factor={low_freq_factor}"
        )
    original = check_int("original_max_position_embeddings", original_max_position_embeddings, minimum=1)
    theta, _ = default_rope(head_dim, base, partial_rotary_factor=partial_rotary_factor)
    wavelen = 2 * math.pi / theta
    low_freq_wavelen = original / low_freq_factor
    high_freq_wavelen = original / high_freq_factor
    keep_share = ((original / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)).clamp(0.0, 1.0)
    inv_freq = (1.0 - keep_share) * theta / factor + keep_share * theta
    # Exactly as the reference: strict inequalities select the kept / fully interpolated bands.
    inv_freq = torch.where(wavelen < high_freq_wavelen, theta, inv_freq)
    inv_freq = torch.where(wavelen > low_freq_wavelen, theta / factor, inv_freq)
    return inv_freq, 1.0


def longrope_rope(
    head_dim: int,
    base: float = 10_000.0,
    *,
    short_factor: Sequence[float],
    long_factor: Sequence[float],
    original_max_position_embeddings: int,
    factor: float | None = None,
    max_position_embeddings: int | None = None,
    attention_factor: float | None = None,
    seq_len: int | None = None,
    partial_rotary_factor: float = 1.0,
):
    """LongRoPE-style per-pair factors (Ding et al. 2024; Phi-3 ``rope_type="longrope"``).

    ``inv_freq[i] = theta_i / f_i`` with ``f = long_factor`` when ``seq_len`` exceeds
    ``original_max_position_embeddings`` and ``f = short_factor`` otherwise (``seq_len=None``:
    short). The factors come from a search in the paper; here they are inputs, one per pair
    (``rotary_dim // 2`` values, each > 0). ``factor`` defaults to
    ``max_position_embeddings / original_max_position_embeddings``; the default attention factor is
    ``sqrt(1 + ln(factor) / ln(original))`` (1 when ``factor <= 1``). Returns
    ``(inv_freq, attention_factor)``.
    """
    if original_max_position_embeddings is None:
        raise ValueError("original_max_position_embeddings is required for LongRoPE, got None")
    original = check_int("original_max_position_embeddings", original_max_position_embeddings, minimum=2)
    dim = rotary_dim_of(head_dim, partial_rotary_factor)
    theta = _default_inv_freq(dim, _base(base))
    factors = {}
    for name, values in (("short_factor", short_factor), ("long_factor", long_factor)):
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, torch.Tensor)):
            raise TypeError(f"{name} must be a sequence of {dim // 2} numbers, got {type(values).__name__}")
        t = torch.as_tensor([float(v) for v in values], dtype=torch.float64)
        if t.numel() != dim // 2:
            raise ValueError(f"{name} must have rotary_dim // 2 = {dim // 2} entries, got {t.numel()}")
        if not torch.isfinite(t).all() or (t <= 0).any():
            raise ValueError(f"{name} entries must be finite and > 0, got {values!r}")
        factors[name] = t
    if factor is None:
        if max_position_embeddings is None:
            raise ValueError(
                "LongRoPE needs factor or max_position_embeddings to set the attention factor, got neither"
            )
        max_position_embeddings = check_int("max_position_embeddings", max_position_embeddings, minimum=1)
        factor = max_position_embeddings / original
    factor = check_number("factor", factor, exclusive_minimum=0.0)
    if attention_factor is None:
        attention_factor = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
    else:
        attention_factor = check_number("attention_factor", attention_factor, exclusive_minimum=0.0)
    if seq_len is not None:
        seq_len = check_int("seq_len", seq_len, minimum=1)
    use_long = seq_len is not None and seq_len > original
    ext = factors["long_factor"] if use_long else factors["short_factor"]
    return theta / ext, float(attention_factor)


# ---------------------------------------------------------------------------------------------
# registry

ROPE_SCHEMES: dict[str, Callable[..., tuple[torch.Tensor, float]]] = {
    "default": default_rope,
    "linear": linear_rope,
    "ntk": ntk_rope,
    "dynamic": dynamic_ntk_rope,
    "yarn": yarn_rope,
    "llama3": llama3_rope,
    "longrope": longrope_rope,
}


def rope_frequencies(
    scheme: str, head_dim: int, base: float | None = None, **params
) -> tuple[torch.Tensor, float]:
    """Look ``scheme`` up in :data:`ROPE_SCHEMES` and call it: ``(inv_freq, attention_factor)``.

    ``base=None`` uses the scheme's own default (10,000, or 500,000 for ``"llama3"``). ``params``
    are the scheme's keyword arguments (``factor``, ``original_max_position_embeddings``...); an
    argument the scheme does not take is a ``TypeError`` naming it.
    """
    if not isinstance(scheme, str):
        raise TypeError(f"scheme must be a string, got {type(scheme).__name__} {scheme!r}")
    if scheme not in ROPE_SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(ROPE_SCHEMES)}, got {scheme!r}")
    fn = ROPE_SCHEMES[scheme]
    return fn(head_dim, **params) if base is None else fn(head_dim, base, **params)


# Keys of a Hugging Face ``rope_parameters`` dict that each scheme reads (besides rope_type/rope_theta).
_HF_KEYS: dict[str, tuple[str, ...]] = {
    "default": ("partial_rotary_factor",),
    "linear": ("factor", "partial_rotary_factor"),
    "dynamic": ("factor", "partial_rotary_factor"),
    "yarn": (
        "factor", "original_max_position_embeddings", "beta_fast", "beta_slow", "attention_factor",
        "mscale", "mscale_all_dim", "truncate", "partial_rotary_factor",
    ),
    "llama3": (
        "factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings", "partial_rotary_factor",
    ),
    "longrope": (
        "short_factor", "long_factor", "original_max_position_embeddings", "factor", "attention_factor",
        "partial_rotary_factor",
    ),
}


def from_hf_rope_parameters(
    rope_parameters: dict,
    head_dim: int,
    *,
    max_position_embeddings: int | None = None,
    seq_len: int | None = None,
) -> tuple[torch.Tensor, float]:
    """``(inv_freq, attention_factor)`` for a Hugging Face ``config.rope_parameters`` dict.

    E.g. Llama 3.1: ``{"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
    "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}``
    with ``head_dim=128``. ``max_position_embeddings`` (the config's) is needed by ``"dynamic"``
    and by YaRN/LongRoPE configs that omit ``factor``; ``seq_len`` is the current length for
    ``"dynamic"`` and ``"longrope"``. Keys that are ``None`` count as absent, as in Hugging Face.
    """
    if not isinstance(rope_parameters, dict):
        raise TypeError(f"rope_parameters must be a dict, got {type(rope_parameters).__name__}")
    rope_type = rope_parameters.get("rope_type", rope_parameters.get("type", "default"))
    if rope_type not in _HF_KEYS:
        raise ValueError(f"rope_parameters['rope_type'] must be one of {sorted(_HF_KEYS)}, got {rope_type!r}")
    base = rope_parameters.get("rope_theta", 10_000.0)
    params = {k: rope_parameters[k] for k in _HF_KEYS[rope_type] if rope_parameters.get(k) is not None}
    if rope_type == "dynamic":
        if max_position_embeddings is None:
            raise ValueError("max_position_embeddings is required for rope_type 'dynamic', got None")
        params.update(max_position_embeddings=max_position_embeddings, seq_len=seq_len)
    elif rope_type == "yarn" and "factor" not in params:
        if max_position_embeddings is None:
            raise ValueError("YaRN parameters without 'factor' need max_position_embeddings, got None")
        params["factor"] = max_position_embeddings / params["original_max_position_embeddings"]
    elif rope_type == "longrope":
        params.update(max_position_embeddings=max_position_embeddings, seq_len=seq_len)
    return rope_frequencies(rope_type, head_dim, base, **params)
