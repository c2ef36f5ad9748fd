"""``LMConfig``: the shape of the course's small decoder-only transformer, validated on construction.

Fields (all checked in ``__post_init__``; a bad value raises ``TypeError``/``ValueError`` naming the field,
the expectation and the value given, see docs/conventions.md):

- ``vocab_size``, ``d_model`` (residual width), ``n_layers``, ``n_heads``; ``n_kv_heads`` (default
  ``n_heads``; GQA: ``n_heads`` a multiple of it, query head ``h`` reads KV head ``h // group``; MQA is 1);
  ``head_dim`` (default ``d_model // n_heads``, which must then divide exactly; it may differ from
  ``d_model / n_heads`` when given).
- ``mlp``: ``"swiglu"`` (Llama: ``down(silu(gate(x)) * up(x))``) or ``"gelu"`` (``down(gelu(up(x)))``);
  ``mlp_hidden`` its hidden width (default ``4 * d_model``).
- ``rope_scheme`` and ``rope_params``: a scheme of chapter 2's registry
  (:data:`longctx_lab.rope.ROPE_SCHEMES`: ``"default"``, ``"linear"``, ``"ntk"``, ``"dynamic"``, ``"yarn"``,
  ``"llama3"``, ``"longrope"``) and its keyword arguments (``factor``, ``original_max_position_embeddings``,
  ``partial_rotary_factor``...); ``rope_base`` the base ``theta`` (``None``: the scheme's default);
  ``rope_layout`` ``"halves"`` (Hugging Face) or ``"interleaved"``. The schedule is computed once, at
  construction (:meth:`LMConfig.rope_frequencies`): ``"dynamic"`` and ``"longrope"`` therefore use the
  ``seq_len`` given in ``rope_params`` (default: the trained length), frozen, so that cached keys and a
  recomputation agree; to apply a scheme at inference, build a model from a changed config
  (:meth:`LMConfig.with_rope`) and load the same weights.
- ``sliding_window``: ``None`` (every layer global), an int ``w`` (every layer sees keys ``p - w < j <= p``)
  or a sequence of ``n_layers`` entries, each ``None`` or an int (per-layer windows, e.g. Gemma's
  alternation). Stored as a tuple of per-layer values; :meth:`LMConfig.window` reads one layer's.
- ``max_positions``: the context the model is meant for (training length; the default cache capacity of
  generation). Longer inputs are allowed (extrapolation experiments), not truncated.
- ``norm_eps`` (RMSNorm epsilon), ``tied_embeddings`` (the output projection is the embedding matrix),
  ``init_std`` (standard deviation of the seeded normal initialisation), ``name``.
- ``mixers`` (chapter 8): ``None`` (every layer attention) or one entry per layer, ``"attention"`` or a kind
  of :data:`longctx_lab.mixers.MIXER_KINDS` (``"linear"``, ``"performer"``, ``"ssm"``, ``"compressive"``);
  :func:`hybrid_mixers` writes "one attention layer every k". ``mixer_options``: keyword arguments of
  :func:`longctx_lab.mixers.build_mixer` (``chunk_size``, ``d_state``...); ``mixer_conv``: the kernel width
  of the short causal depthwise convolution before each mixer (Mamba's ``d_conv``, Zoology's short
  convolution; 0: none; a mixer with its own, the SSM, gets none). The three are left out of
  :meth:`LMConfig.to_dict` while every layer is attention, so configs written before them read back unchanged.
- ``attention_conv`` (chapter 8): the kernel width of the same short convolution before each *attention*
  layer's attention (0, the default: none, the transformer of chapters 1-7). Chapter 8 gives every mixer the
  same one, so that its recall comparison measures the mixers, not which of them has a convolution. Left out of
  :meth:`LMConfig.to_dict` when 0. Such a model decodes through :mod:`longctx_lab.lm.model.recurrent` (the
  convolution keeps a state), not through the KV caches of chapter 5, and has no Hugging Face twin.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field

from longctx_lab.core.validate import check_bool, check_int, check_number
from longctx_lab.mixers import MIXER_KINDS, build_mixer
from longctx_lab.rope import LAYOUTS, ROPE_SCHEMES, rope_frequencies

__all__ = ["ATTENTION", "MLP_KINDS", "LMConfig", "hybrid_mixers"]

MLP_KINDS = ("swiglu", "gelu")
#: The ``mixers`` entry of a (softmax) attention layer.
ATTENTION = "attention"


def hybrid_mixers(kind: str, n_layers: int, every: int | None = None) -> tuple[str, ...]:
    """``mixers`` for ``n_layers`` layers of ``kind``, with attention at layers ``every - 1, 2 * every - 1,
    ..`` (one attention layer every ``every``; ``None``: no attention layer). ``hybrid_mixers("ssm", 4, 2)``
    is ``("ssm", "attention", "ssm", "attention")``."""
    n_layers = check_int("n_layers", n_layers, minimum=1)
    if every is not None:
        every = check_int("every", every, minimum=1)
    return tuple(ATTENTION if every is not None and (i + 1) % every == 0 else kind for i in range(n_layers))


def _check_window(name: str, value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be None or an integer >= 1, got {type(value).__name__} {value!r}")
    return check_int(name, value, minimum=1)


@dataclass(frozen=True)
class LMConfig:
    """Shape and options of :class:`longctx_lab.lm.model.TinyLM` (module docstring lists every field)."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int | None = None
    head_dim: int | None = None
    mlp_hidden: int | None = None
    mlp: str = "swiglu"
    rope_scheme: str = "default"
    rope_base: float | None = 10_000.0
    rope_params: dict = field(default_factory=dict)
    rope_layout: str = "halves"
    sliding_window: int | tuple | list | None = None
    max_positions: int = 2048
    norm_eps: float = 1e-5
    tied_embeddings: bool = True
    init_std: float = 0.02
    name: str = "tiny-lm"
    mixers: tuple | list | None = None
    mixer_options: dict = field(default_factory=dict)
    mixer_conv: int = 4
    attention_conv: int = 0

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty string, got {type(self.name).__name__} {self.name!r}")
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "max_positions"):
            check_int(name, getattr(self, name), minimum=1)
        put("n_kv_heads", self.n_heads if self.n_kv_heads is None else check_int("n_kv_heads", self.n_kv_heads,
                                                                                  minimum=1))
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads must be a multiple of n_kv_heads (grouped-query attention), got n_heads {self.n_heads} "
                f"and n_kv_heads {self.n_kv_heads}"
            )
        if self.head_dim is None:
            if self.d_model % self.n_heads:
                raise ValueError(
                    f"d_model must be a multiple of n_heads when head_dim is not given (head_dim = d_model // "
                    f"n_heads), got d_model {self.d_model} and n_heads {self.n_heads}"
                )
            put("head_dim", self.d_model // self.n_heads)
        check_int("head_dim", self.head_dim, minimum=2)
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even (RoPE rotates pairs of features), got {self.head_dim}")
        put("mlp_hidden", 4 * self.d_model if self.mlp_hidden is None else check_int("mlp_hidden", self.mlp_hidden,
                                                                                      minimum=1))
        if self.mlp not in MLP_KINDS:
            raise ValueError(f"mlp must be one of {MLP_KINDS}, got {self.mlp!r}")
        if not isinstance(self.rope_scheme, str) or self.rope_scheme not in ROPE_SCHEMES:
            raise ValueError(f"rope_scheme must be one of {sorted(ROPE_SCHEMES)}, got {self.rope_scheme!r}")
        if self.rope_base is not None:
            put("rope_base", check_number("rope_base", self.rope_base, exclusive_minimum=0))
        if not isinstance(self.rope_params, dict):
            raise TypeError(f"rope_params must be a dict of the scheme's keyword arguments, got "
                            f"{type(self.rope_params).__name__} {self.rope_params!r}")
        put("rope_params", dict(self.rope_params))
        if self.rope_layout not in LAYOUTS:
            raise ValueError(f"rope_layout must be one of {LAYOUTS}, got {self.rope_layout!r}")
        put("sliding_window", self._check_windows(self.sliding_window))
        put("norm_eps", check_number("norm_eps", self.norm_eps, exclusive_minimum=0))
        put("init_std", check_number("init_std", self.init_std, exclusive_minimum=0))
        check_bool("tied_embeddings", self.tied_embeddings)
        put("mixers", self._check_mixers(self.mixers))
        if not isinstance(self.mixer_options, dict):
            raise TypeError(f"mixer_options must be a dict of build_mixer's keyword arguments, got "
                            f"{type(self.mixer_options).__name__} {self.mixer_options!r}")
        put("mixer_options", dict(self.mixer_options))
        check_int("mixer_conv", self.mixer_conv, minimum=0)
        check_int("attention_conv", self.attention_conv, minimum=0)
        self.rope_frequencies()  # the scheme's own checks, with the config's field names in the message

    def _check_windows(self, value) -> tuple:
        if value is None or isinstance(value, numbers.Integral):
            w = _check_window("sliding_window", value)
            return (w,) * self.n_layers
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise TypeError(f"sliding_window must be None, an integer or a list of n_layers entries (None or int), "
                            f"got {type(value).__name__} {value!r}")
        if len(value) != self.n_layers:
            raise ValueError(f"sliding_window must list one entry per layer (n_layers={self.n_layers}), "
                             f"got {len(value)} entries: {list(value)!r}")
        return tuple(_check_window(f"sliding_window[{i}]", w) for i, w in enumerate(value))

    def _check_mixers(self, value) -> tuple:
        kinds = (ATTENTION, *MIXER_KINDS)
        if value is None:
            return (ATTENTION,) * self.n_layers
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise TypeError(f"mixers must be None or a list of n_layers entries among {kinds}, got "
                            f"{type(value).__name__} {value!r}")
        if len(value) != self.n_layers:
            raise ValueError(f"mixers must list one entry per layer (n_layers={self.n_layers}), got {len(value)} "
                             f"entries: {list(value)!r}")
        for i, kind in enumerate(value):
            if kind not in kinds:
                raise ValueError(f"mixers[{i}] must be one of {kinds}, got {kind!r}")
        return tuple(value)

    def mixer(self, layer: int) -> str:
        """Token mixer of layer ``layer``: ``"attention"`` or a kind of :data:`longctx_lab.mixers.MIXER_KINDS`."""
        layer = check_int("layer", layer, minimum=0)
        if layer >= self.n_layers:
            raise ValueError(f"layer must be in [0, {self.n_layers}), got {layer}")
        return self.mixers[layer]

    @property
    def all_attention(self) -> bool:
        """Whether every layer is (softmax) attention: the transformer of chapters 1-7."""
        return all(kind == ATTENTION for kind in self.mixers)

    # ------------------------------------------------------------------ derived
    @property
    def group_size(self) -> int:
        """Query heads per KV head: ``n_heads // n_kv_heads``."""
        return self.n_heads // self.n_kv_heads

    def window(self, layer: int) -> int | None:
        """Sliding window of layer ``layer`` (``None``: global attention)."""
        layer = check_int("layer", layer, minimum=0)
        if layer >= self.n_layers:
            raise ValueError(f"layer must be in [0, {self.n_layers}), got {layer}")
        return self.sliding_window[layer]

    def rope_frequencies(self):
        """``(inv_freq, attention_factor)`` of the configured scheme (float64 ``(rotary_dim // 2,)``, float)."""
        try:
            return rope_frequencies(self.rope_scheme, self.head_dim, self.rope_base, **self.rope_params)
        except (TypeError, ValueError) as e:
            what = f"rope_params {self.rope_params!r} do not fit rope_scheme {self.rope_scheme!r}: {e}"
            raise type(e)(what) from e

    def with_rope(self, scheme: str, *, base: float | None = None, **params) -> LMConfig:
        """The same model with another RoPE schedule (the weights do not depend on it)."""
        return dataclasses.replace(self, rope_scheme=scheme, rope_base=self.rope_base if base is None else base,
                                   rope_params=params)

    def n_params(self) -> int:
        """Parameter count of :class:`~longctx_lab.lm.model.TinyLM` with this config (tied embeddings counted once)."""
        d, f = self.d_model, self.mlp_hidden
        attn = d * self.head_dim * (2 * self.n_heads + 2 * self.n_kv_heads)
        mlp = (3 if self.mlp == "swiglu" else 2) * d * f
        mixing = 0
        for kind in self.mixers:  # a mixer's parameters are counted on the module itself
            if kind == ATTENTION:
                mixing += attn + d * self.attention_conv
            else:
                module = build_mixer(kind, d, self.n_heads, **self.mixer_options)
                conv = 0 if getattr(module, "d_conv", 0) else d * self.mixer_conv  # as MixerLayer builds it
                mixing += sum(p.numel() for p in module.parameters()) + conv
        head = 0 if self.tied_embeddings else self.vocab_size * d
        return self.vocab_size * d + mixing + self.n_layers * (mlp + 2 * d) + d + head

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        """Plain JSON-able dict; :meth:`from_dict` inverts it."""
        out = dataclasses.asdict(self)
        windows = list(self.sliding_window)
        out["sliding_window"] = windows[0] if len(set(windows)) == 1 else windows
        if self.all_attention:
            for name in ("mixers", "mixer_options", "mixer_conv"):
                del out[name]
        else:
            out["mixers"] = list(self.mixers)
        if not self.attention_conv:
            del out["attention_conv"]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> LMConfig:
        """Build a config from :meth:`to_dict`'s output; an unknown key is a ``ValueError`` naming it."""
        if not isinstance(data, dict):
            raise TypeError(f"data must be a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"data has keys LMConfig does not know: {unknown} (known: {sorted(known)})")
        return cls(**data)
