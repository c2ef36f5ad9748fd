"""Token mixers beyond attention (chapter 8): linear attention, Performer, Linformer, a selective state-space
layer and a compressive memory, as functional kernels plus ``nn.Module`` wrappers behind one interface.

Every causal mixer maps ``(batch, seq, d_model)`` to the same, decodes one token at a time from a state whose
size does not grow with the sequence, and reports that state's bytes (:class:`TokenMixer`). Build one with
:func:`build_mixer`. Attention itself stays the TinyLM's own layer (``longctx_lab.lm.model``).
"""

from longctx_lab.mixers.base import MIXER_KINDS, TokenMixer, build_mixer, state_bytes
from longctx_lab.mixers.compressive import CompressiveMemoryMixer, CompressiveState, infini_attention
from longctx_lab.mixers.linear_attention import (
    LinearAttentionMixer,
    LinearAttentionState,
    elu_plus_one,
    linear_attention_chunked,
    linear_attention_quadratic,
    linear_attention_recurrent,
)
from longctx_lab.mixers.linformer import LinformerMixer, linformer_attention
from longctx_lab.mixers.performer import (
    PerformerMixer,
    favor_features,
    orthogonal_random_features,
    performer_attention,
    performer_error_vs_features,
)
from longctx_lab.mixers.ssm import (
    SelectiveSSMMixer,
    SSMState,
    selective_scan_chunked,
    selective_scan_reference,
    selective_scan_sequential,
)

__all__ = [
    "MIXER_KINDS",
    "CompressiveMemoryMixer",
    "CompressiveState",
    "LinearAttentionMixer",
    "LinearAttentionState",
    "LinformerMixer",
    "PerformerMixer",
    "SSMState",
    "SelectiveSSMMixer",
    "TokenMixer",
    "build_mixer",
    "elu_plus_one",
    "favor_features",
    "infini_attention",
    "linear_attention_chunked",
    "linear_attention_quadratic",
    "linear_attention_recurrent",
    "linformer_attention",
    "orthogonal_random_features",
    "performer_attention",
    "performer_error_vs_features",
    "selective_scan_chunked",
    "selective_scan_reference",
    "selective_scan_sequential",
    "state_bytes",
]
