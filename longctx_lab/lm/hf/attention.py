"""The course's attention kernels as a Hugging Face ``transformers`` attention implementation.

After :func:`register`, any ``transformers`` model whose attention goes through ``ALL_ATTENTION_FUNCTIONS``
(Llama, Mistral, Qwen2, ...) runs it on :func:`longctx_lab.kernels.dispatch.flash_attention`::

    from longctx_lab.lm.hf.attention import register
    register()                                   # -> "longctx_lab"
    model = AutoModelForCausalLM.from_config(config, attn_implementation="longctx_lab")

Importing this module (or ``longctx_lab``) does not import ``transformers``; :func:`register` does.

Shapes, GQA, bottom-right alignment and windows follow docs/conventions.md. What is particular here:

- Hugging Face calls ``attention_forward(module, query, key, value, attention_mask, dropout=, scaling=,
  sliding_window=, softcap=, is_causal=, ...)`` with ``query`` ``(batch, heads, q_len, head_dim)`` and ``key``,
  ``value`` ``(batch, kv_heads, kv_len, head_dim)``; it returns ``(attn_output, None)``, ``attn_output``
  ``(batch, q_len, heads, head_dim)`` (transposed, as every HF attention function). K/V are never repeated
  for GQA (the dispatcher reads KV head ``h // group``); ``module.num_key_value_groups`` must agree.
- ``sliding_window=w`` is the course's ``window=w`` (``p - w < j <= p``, ``w`` keys, docs/conventions.md);
  ``scaling`` is the dispatcher's ``scale``.
- Masks. :func:`register` also registers ``transformers``' ``sdpa_mask`` for the same name, so the model
  hands over ``None`` where the mask is plain causal and a 4-D boolean mask ``(batch, 1, q_len, kv_len)``
  otherwise. ``None``: causal (or ``is_causal=False``: full) attention, bottom-right aligned; with
  ``q_len > 1`` and ``kv_len > q_len`` the keys are cut to the first ``q_len``, as ``sdpa_attention_forward``
  does (an empty static cache at prefill). A given mask (boolean, or additive float of zeros and
  ``-inf``/``finfo.min``) is compared with the mask the kernels apply (:func:`longctx_lab.attention.masks.build_mask`
  for ``causal``, ``window``): equal, it runs; different (padding, packed sequences, any custom mask), it is
  refused with a ``ValueError`` that shows the first differing entry. Nothing else is computed. Trailing keys
  that no query sees (the unfilled slots of a static cache) are cut first, so ``StaticCache`` works too.
  A model whose ``attn_implementation`` has no HF mask function (the attention function registered by hand)
  is refused: HF would drop its padding masks before the call.
- Refused, with an error naming the option: ``softcap``, ``dropout > 0``, ``output_attentions=True``,
  ``position_bias``, attention sinks (``s_aux``/``sinks``), a paged ``cache``, a bidirectional sliding window,
  and any other keyword this adapter does not know that is not ``None``/``False``.
- Any head dim (64, 80, 96, 128, 256, ...): every call goes to :func:`~longctx_lab.kernels.dispatch.flash_attention`,
  whose Triton kernels take head dims up to 256 (padded to a power of two) and whose PyTorch path takes any;
  past 256 ``backend="auto"`` runs the PyTorch path and ``backend="triton"`` raises (the dispatcher's policy).
"""

from __future__ import annotations

import copy
import functools
import math

import torch

from longctx_lab.attention.masks import build_mask
from longctx_lab.core.validate import check_number, check_optional_int, check_tensor
from longctx_lab.kernels.dispatch import BACKENDS, flash_attention

__all__ = ["NAME", "attention_forward", "compare_with_sdpa", "register"]

#: The ``attn_implementation`` name :func:`register` uses by default.
NAME = "longctx_lab"

#: Keywords HF passes that do not change what attention computes (masks, positions and caches reach the
#: adapter as ``attention_mask`` and the already-rotated, already-cached ``key``/``value``).
_IGNORED_KWARGS = frozenset(
    {"use_cache", "position_ids", "cache_position", "past_key_values", "past_key_value", "layer_idx",
     "output_hidden_states", "return_dict", "position_embeddings"}
)

_FALLBACK = "use attn_implementation='sdpa' or 'eager' for this model or input"


def _refuse_unsupported(dropout, softcap, kwargs) -> None:
    if softcap is not None:
        raise ValueError(f"softcap (attention logit softcapping) is not implemented by the course's kernels, got "
                         f"softcap={softcap!r}; use attn_implementation='eager' (sdpa has no softcapping either)")
    if dropout is None or isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
        raise TypeError(f"dropout must be a number, got {type(dropout).__name__} {dropout!r}")
    if dropout != 0:
        raise ValueError(f"dropout must be 0 (the course's kernels have no attention dropout; HF passes the "
                         f"config's attention_dropout in training mode), got dropout={dropout!r}; call "
                         f"model.eval(), set attention_dropout=0.0, or {_FALLBACK}")
    if kwargs.get("output_attentions"):
        raise ValueError("output_attentions=True is not supported: the course's kernels never build the attention "
                         "weights; use attn_implementation='eager' to get them")
    for key in ("position_bias", "s_aux", "sinks", "cache"):
        if kwargs.get(key) is not None:
            raise ValueError(f"{key} is not implemented by the course's kernels, got {key} of type "
                             f"{type(kwargs[key]).__name__}; {_FALLBACK}")
    for key, value in kwargs.items():
        if key in _IGNORED_KWARGS or key in ("output_attentions", "position_bias", "s_aux", "sinks", "cache"):
            continue
        if value is not None and value is not False:
            raise TypeError(f"keyword {key!r} is not one the longctx_lab attention implements, got {key}="
                            f"{type(value).__name__}; {_FALLBACK}")


def _allowed(attention_mask: torch.Tensor, batch: int, heads: int, q_len: int, kv_len: int) -> torch.Tensor:
    """A 4-D boolean (``True`` = attend) view of an HF mask, after checking its shape and values."""
    check_tensor("attention_mask", attention_mask)
    shape = tuple(attention_mask.shape)
    if (attention_mask.ndim != 4 or shape[-2:] != (q_len, kv_len) or shape[0] not in (1, batch)
            or shape[1] not in (1, heads)):
        raise ValueError(f"attention_mask must have shape ({batch} or 1, 1 or {heads}, {q_len}, {kv_len}) "
                         f"(batch, heads, q_len, kv_len), got {shape}")
    if attention_mask.dtype == torch.bool:
        return attention_mask
    if not attention_mask.is_floating_point():
        raise TypeError(f"attention_mask must be boolean or an additive float mask, got dtype {attention_mask.dtype}")
    keep = attention_mask == 0
    masked = torch.isneginf(attention_mask) | (attention_mask == torch.finfo(attention_mask.dtype).min)
    if not bool((keep | masked).all()):
        bad = attention_mask[~(keep | masked)].flatten()[0].item()
        raise ValueError(f"attention_mask must hold only 0 (attend) and -inf/finfo.min (masked): an additive bias is "
                         f"not implemented by the course's kernels, got the value {bad!r}; {_FALLBACK}")
    return keep


def _check_mask(attention_mask, batch, heads, q_len, kv_len, causal, window) -> int:
    """The number of keys to attend over, ``n <= kv_len``; raises unless ``attention_mask`` is exactly the mask the
    kernels apply for ``causal``, ``window`` over the first ``n`` keys. Causal masks may end in keys no query sees
    (the unfilled slots of HF's static caches): they are cut, which changes nothing."""
    allowed = _allowed(attention_mask, batch, heads, q_len, kv_len)
    n = kv_len
    if causal:
        seen = allowed.flatten(0, 2).any(dim=0).nonzero()
        if len(seen) and q_len <= int(seen[-1]) + 1:
            n = int(seen[-1]) + 1
    expected = build_mask(q_len, n, causal=causal, window=window, device=allowed.device)
    if expected is None:
        expected = torch.ones(q_len, n, dtype=torch.bool, device=allowed.device)
    differs = allowed[..., :n] != expected
    if bool(differs.any()):
        b, h, i, j = (int(x) for x in differs.nonzero()[0])
        raise ValueError(
            f"attention_mask is not the mask the course's kernels apply (causal={causal}, window={window}, "
            f"bottom-right aligned, q_len={q_len}, kv_len={n}): at batch {b}, head {h}, query {i}, key {j} "
            f"it gives {bool(allowed[b, h, i, j])}, the kernels {bool(expected[i, j])}. Padding masks, packed "
            f"sequences and custom masks are not implemented; pass a batch without padding, or {_FALLBACK}"
        )
    return n


def _check_mask_function(module) -> None:
    """Raise if the model's ``attn_implementation`` has no HF mask function: HF would then drop padding masks
    and hand over ``None`` (registering :func:`attention_forward` by hand, without :func:`register`)."""
    impl = getattr(getattr(module, "config", None), "_attn_implementation", None)
    if impl is None:
        return
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS  # loaded already: HF is calling us

    if impl not in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
        raise ValueError(f"attn_implementation {impl!r} has no mask function in transformers' AttentionMaskInterface, "
                         f"so padding masks would never reach the kernels; register it with "
                         f"longctx_lab.lm.hf.attention.register({impl!r})")


def attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    sliding_window: int | None = None,
    softcap: float | None = None,
    is_causal: bool | None = None,
    *,
    backend: str = "auto",
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """One HF attention call on the course's kernels (the signature of ``sdpa_attention_forward``).

    ``query`` ``(batch, heads, q_len, head_dim)``, ``key``/``value`` ``(batch, kv_heads, kv_len, head_dim)``,
    ``attention_mask`` ``None`` or 4-D (module docstring). Returns ``(attn_output, None)`` with ``attn_output``
    ``(batch, q_len, heads, head_dim)``, contiguous, in the input dtype; differentiable. ``backend`` goes to the
    dispatcher (:func:`register` fixes it). Everything it does not implement raises ``ValueError``/``TypeError``.
    """
    _refuse_unsupported(dropout, softcap, kwargs)
    _check_mask_function(module)
    for name, t in (("query", query), ("key", key), ("value", value)):
        check_tensor(name, t, ndim=4)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    batch, heads, q_len, head_dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    groups = getattr(module, "num_key_value_groups", None)
    if groups is not None and (kv_heads == 0 or groups * kv_heads != heads):
        raise ValueError(f"module.num_key_value_groups must equal query heads / key heads ({heads} / {kv_heads}), "
                         f"got {groups}")
    causal = bool(getattr(module, "is_causal", True) if is_causal is None else is_causal)
    window = check_optional_int("sliding_window", sliding_window, minimum=1)
    scale = 1.0 / math.sqrt(head_dim) if scaling is None else check_number("scaling", scaling, exclusive_minimum=0)
    if window is not None and not causal:
        raise ValueError(f"sliding_window={window} with is_causal=False (a bidirectional window: HF counts "
                         f"|q - k| <= w, the course |p - j| < w) is not implemented; {_FALLBACK}")
    if attention_mask is None:
        if causal and q_len > 1 and kv_len > q_len:
            # HF's convention for a mask-free call with more keys than queries (an empty static cache at prefill):
            # the queries are the first q_len positions; sdpa_attention_forward cuts the keys the same way.
            key, value, kv_len = key[:, :, :q_len], value[:, :, :q_len], q_len
        elif causal and q_len > kv_len:
            raise ValueError(f"attention_mask=None with q_len ({q_len}) > kv_len ({kv_len}) has no HF meaning the "
                             f"kernels implement (sdpa would align the causal mask top-left); {_FALLBACK}")
    else:
        kv_len = _check_mask(attention_mask, batch, heads, q_len, kv_len, causal, window)
        key, value = key[:, :, :kv_len], value[:, :, :kv_len]
    out = flash_attention(query, key, value, causal=causal, window=window, scale=scale, backend=backend)
    return out.transpose(1, 2).contiguous(), None


def register(name: str = NAME, *, backend: str = "auto") -> str:
    """Register :func:`attention_forward` (with ``backend``) as HF attention implementation ``name``, and
    ``transformers``' ``sdpa_mask`` as its mask function (without one, HF would drop padding masks and hand
    over ``None``). Idempotent; returns ``name``, for ``attn_implementation=name``. Imports ``transformers``."""
    if not isinstance(name, str) or not name or name in ("sdpa", "eager") or name.startswith("flash_attention"):
        raise ValueError(f"name must be a new attn_implementation name such as {NAME!r}, got {name!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    forward = attention_forward if backend == "auto" else functools.partial(attention_forward, backend=backend)
    AttentionInterface.register(name, forward)
    AttentionMaskInterface.register(name, sdpa_mask)
    return name


def compare_with_sdpa(
    config,
    *,
    prompt_len: int = 12,
    new_tokens: int = 8,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> dict:
    """Build ``config`` (a ``transformers`` config, random weights, seeded) twice, with ``sdpa`` and with the
    course's kernels, and decode greedily from one seeded prompt with HF's ``DynamicCache``.

    Returns ``{"prefill_max_abs_diff", "step_max_abs_diff", "tokens_equal", "tokens"}``: the largest logit
    difference of the prompt's forward pass and over the decode steps' logits, whether the generated tokens
    agree, and the ``sdpa`` model's tokens ``(1, prompt_len + new_tokens)``.
    """
    from transformers import AutoModelForCausalLM

    name = register()
    models = {}
    for impl in ("sdpa", name):
        torch.manual_seed(seed)
        # from_config writes attn_implementation into the config it is given: one copy per model
        model = AutoModelForCausalLM.from_config(copy.deepcopy(config), attn_implementation=impl)
        models[impl] = model.to(dtype).eval()
    prompt = torch.randint(0, config.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(seed))
    runs = {}
    with torch.no_grad():
        for impl, model in models.items():
            out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                                 min_new_tokens=new_tokens, do_sample=False, output_logits=True,
                                 return_dict_in_generate=True, pad_token_id=0)
            runs[impl] = (model(prompt).logits, torch.stack(out.logits), out.sequences)
    (pre_a, step_a, seq_a), (pre_b, step_b, seq_b) = runs["sdpa"], runs[name]
    return {
        "prefill_max_abs_diff": float((pre_a - pre_b).abs().max()),
        "step_max_abs_diff": float((step_a - step_b).abs().max()),
        "tokens_equal": bool(torch.equal(seq_a, seq_b)),
        "tokens": seq_a,
    }
