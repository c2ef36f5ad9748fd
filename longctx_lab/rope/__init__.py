"""Rotary position embeddings and the schemes that stretch them to longer contexts (chapter 2).

- :mod:`~longctx_lab.rope.rope`: ``apply_rope`` in the halves (Hugging Face) and interleaved
  (RoFormer/GPT-J/Meta) layouts, layout conversion of activations and q/k weights, partial rotary.
- :mod:`~longctx_lab.rope.scaling`: one function per frequency schedule returning
  ``(inv_freq, attention_factor)`` and the registry ``ROPE_SCHEMES``.
- :mod:`~longctx_lab.rope.analysis`: wavelengths, interpolated/extrapolated pairs, score decay.
- :mod:`~longctx_lab.rope.absolute`: sinusoidal and learned absolute encodings, for contrast.

This package stands alone: it imports only torch and ``longctx_lab.core.validate``.
"""

from longctx_lab.rope.absolute import learned_position_table, sinusoidal_position_embedding
from longctx_lab.rope.analysis import (
    COMPARED_SCHEMES,
    classify_pairs,
    compare_schemes,
    expected_score,
    interpolation_ratio,
    relative_score_table,
    roformer_decay_bound,
    turns_in_context,
    unseen_angle_pairs,
    wavelengths,
)
from longctx_lab.rope.rope import (
    LAYOUTS,
    apply_rope,
    convert_qk_weight,
    halves_to_interleaved,
    interleaved_to_halves,
    rope_angles,
    rope_cos_sin,
    rotate_half,
    rotate_pairs,
)
from longctx_lab.rope.scaling import (
    ROPE_SCHEMES,
    default_rope,
    dynamic_ntk_rope,
    from_hf_rope_parameters,
    linear_rope,
    llama3_rope,
    longrope_rope,
    ntk_base,
    ntk_rope,
    rope_frequencies,
    rotary_dim_of,
    yarn_attention_factor,
    yarn_correction_range,
    yarn_ramp,
    yarn_rope,
)

__all__ = [
    "COMPARED_SCHEMES",
    "LAYOUTS",
    "ROPE_SCHEMES",
    "apply_rope",
    "classify_pairs",
    "compare_schemes",
    "convert_qk_weight",
    "default_rope",
    "dynamic_ntk_rope",
    "expected_score",
    "from_hf_rope_parameters",
    "halves_to_interleaved",
    "interleaved_to_halves",
    "interpolation_ratio",
    "learned_position_table",
    "linear_rope",
    "llama3_rope",
    "longrope_rope",
    "ntk_base",
    "ntk_rope",
    "relative_score_table",
    "roformer_decay_bound",
    "rope_angles",
    "rope_cos_sin",
    "rope_frequencies",
    "rotary_dim_of",
    "rotate_half",
    "rotate_pairs",
    "sinusoidal_position_embedding",
    "turns_in_context",
    "unseen_angle_pairs",
    "wavelengths",
    "yarn_attention_factor",
    "yarn_correction_range",
    "yarn_ramp",
    "yarn_rope",
]
