"""Chapter 2: the seed articles' statements about RoPE, its base and context extension, checked.

Every ``computed``/``evidence`` value comes from :mod:`longctx_lab.rope` (whose frequencies are
tested against Hugging Face ``transformers``), or from running the article's own code.
"""

from __future__ import annotations

from collections import Counter

import torch

from longctx_lab import rope
from longctx_lab.course.claims import (
    SEED_ARCHITECTURE,
    SEED_PRODUCTION,
    ClaimCheck,
    check_stated_number,
    check_statement,
)

# The article's two "context extension" snippets, as printed (indentation restored).
ARTICLE_YARN_SNIPPET = '''
def yarn_scaling(original_scale, target_context, trained_context):
    scale = target_context / trained_context
    # Apply non-uniform scaling: scale less for low frequencies
    low_freq_factor = 1.0
    high_freq_factor = scale
    # Interpolate based on frequency
    return interpolate_frequencies(
        low_freq_factor,
        high_freq_factor,
        temperature=0.5
    )

extended_rope = yarn_scaling(
    original_scale=1.0,
    target_context=200000,
    trained_context=32768
)
'''

ARTICLE_EXTEND_SNIPPET = '''
def extend_rope_context(original_context=4096, new_context=32768):
    scale = new_context / original_context
    # Interpolate position embeddings
    return scale_rope_frequencies(scale)

extend_rope_context()
'''

# Llama 3.1's published rope settings (config.json of meta-llama/Llama-3.1-8B, "rope_scaling").
LLAMA31_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}


def run_snippet(source: str) -> str:
    """Execute an article snippet in an empty namespace; return ``"ran"`` or ``"<Error>: <message>"``."""
    try:
        exec(compile(source, "<article>", "exec"), {})  # noqa: S102 - the article's own, harmless code
    except Exception as exc:  # noqa: BLE001 - reporting what the snippet does is the point
        return f"{type(exc).__name__}: {exc}"
    return "ran"


def theta_formula_claims(head_dim: int = 128, base: float = 10_000.0) -> list[ClaimCheck]:
    ours, _ = rope.default_rope(head_dim, base)
    i0 = torch.arange(0, head_dim // 2, dtype=torch.float64)
    zero_based = 1.0 / base ** (2 * i0 / head_dim)
    one_based = 1.0 / base ** (2 * (i0 + 1) / head_dim)
    err0 = float((zero_based / ours - 1).abs().max())
    ratio1 = float((ours / one_based).mean())
    return [
        check_statement(
            "theta_i = 1 / base^(2i/d) (index range not given)",
            verdict="misleading", source=SEED_PRODUCTION,
            evidence=f"d={head_dim}, base={base:g}: with i = 0..d/2-1 the formula matches our (and Hugging Face's) "
            f"frequencies to {err0:.1e}; read with i = 1..d/2 every frequency is {ratio1:.4f}x too small "
            f"(= base^(2/d)) and the 1 rad/token pair is missing",
            explanation="The formula is right only with a zero-based index i = 0, 1, ..., d/2 - 1 (RoFormer writes "
            "the same thing as base^(-2(i-1)/d) with i = 1..d/2). There are d/2 frequencies, one per pair of "
            "features, and the first is always exactly 1 radian per token.",
        ),
    ]


def base_claims(head_dim: int = 128, context: int = 8192) -> list[ClaimCheck]:
    rows = {}
    for base in (1e-4, 1e4, 5e5, 1e12):
        inv, _ = rope.default_rope(head_dim, base)
        rows[base] = {
            "theta0": float(inv[0]),
            "turning": int((rope.turns_in_context(inv, context) >= 1).sum()),
            "near": float(rope.expected_score(inv, [1])[0]),
        }
    big, std, small = rows[1e12], rows[1e4], rows[1e-4]
    l31 = rows[5e5]
    return [
        check_statement(
            "Raising the base (e.g. to 500,000) makes all rotation frequencies decrease",
            verdict="misleading", source=SEED_PRODUCTION,
            evidence=f"theta_0 = {l31['theta0']:g} rad/token at base 500,000 as at 10,000; the other "
            f"{head_dim // 2 - 1} frequencies decrease",
            explanation="Pair 0 is base^0 = 1 for every base. All other pairs slow down, the slowest the most.",
        ),
        check_statement(
            "base -> infinity: every theta_i -> 0, no rotation at all, position information vanishes",
            verdict="misleading", source=SEED_PRODUCTION,
            evidence=f"base 1e12, d={head_dim}: theta_0 = {big['theta0']:g}; {big['turning']} of {head_dim // 2} "
            f"pairs still make >= 1 turn in {context:,} tokens (base 1e4: {std['turning']})",
            explanation="In the limit every pair except pair 0 stops, so what is left is one pair turning 1 rad per "
            "token: a signal with period 2*pi (about 6 tokens) that cannot tell far positions apart. So position "
            "information does collapse, but not to 'no rotation', and at any finite base many pairs still turn.",
        ),
        check_statement(
            "base -> 0: theta_i -> infinity and rotations become so rapid that adjacent positions look unrelated",
            verdict="correct", source=SEED_PRODUCTION,
            evidence=f"normalised score of a vector with itself one position apart: {std['near']:.3f} at base 1e4, "
            f"{small['near']:.3f} at base 1e-4 (where theta_0 is still {small['theta0']:g} rad/token)",
            explanation="Right in effect: neighbours become unrelated. As for base -> infinity, not every theta_i "
            "moves: theta_0 = base^0 = 1 at every base, and the other pairs alone scramble neighbours. Note that for "
            "base < 1 the frequencies *grow* with i, and that an angle "
            "per token above pi is indistinguishable from its alias (angles are mod 2*pi): 'faster' stops meaning "
            "anything and the pairs simply scramble neighbouring positions.",
        ),
    ]


def extrapolation_claims(head_dim: int = 128, base: float = 10_000.0) -> list[ClaimCheck]:
    train, new = 4096, 32768
    ref, _ = rope.default_rope(head_dim, base)
    pi, _ = rope.linear_rope(head_dim, base, factor=new / train)
    unseen_plain = int(rope.unseen_angle_pairs(ref, ref, train, new).sum())
    unseen_pi = int(rope.unseen_angle_pairs(pi, ref, train, new).sum())
    x = torch.randn(1, 1, 64, head_dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    pos = torch.arange(0, new, new // 64)
    gap = float((rope.apply_rope(x, pos, pi) - rope.apply_rope(x, pos.double() * train / new, ref)).abs().max())
    return [
        check_statement(
            "RoPE trained on 4K (positions 0-4095) works at 32K because the relative pattern holds",
            verdict="wrong", source=SEED_ARCHITECTURE,
            evidence=f"d={head_dim}, base {base:g}: {unseen_plain} of {head_dim // 2} pairs never complete a turn in "
            f"4,096 tokens and meet angles at 32,768 that training never produced (with PI at factor 8: "
            f"{unseen_pi})",
            explanation="The score does depend only on m - n, but distances beyond 4K give the slow pairs rotation "
            "angles the model never saw, and attention breaks down. Position Interpolation (Chen et al. 2023) was "
            "introduced because plain extrapolation fails; chapter 6 shows the failure in a model trained here.",
        ),
        check_statement(
            "Interpolating the rotation frequencies 'compresses' the position space",
            verdict="correct", source=SEED_ARCHITECTURE,
            evidence=f"PI at factor 8 vs default RoPE at positions m/8, 64 positions up to 32K: max difference "
            f"{gap:.1e}; pairs meeting unseen angles at 32K: {unseen_pi}",
            explanation="Dividing every frequency by s is exactly feeding positions m/s: 32K positions are squeezed "
            "into the 0..4K range seen in training. The price: neighbouring tokens are s times closer in angle, "
            "so the model needs a short fine-tune to resolve them ('minimal degradation' is after fine-tuning).",
        ),
    ]


def yarn_snippet_claims() -> list[ClaimCheck]:
    s = 200_000 / 32_768
    factor = rope.yarn_attention_factor(s)
    t = 1.0 / factor**2
    yarn, _ = rope.yarn_rope(128, 10_000.0, factor=s, original_max_position_embeddings=32_768)
    ref, _ = rope.default_rope(128)
    ratio = rope.interpolation_ratio(yarn, ref)
    return [
        check_statement(
            "yarn_scaling(...) and extend_rope_context(...): code that implements YaRN / RoPE extension",
            verdict="wrong", source=SEED_ARCHITECTURE,
            evidence=f"running the snippets: {run_snippet(ARTICLE_YARN_SNIPPET)}; "
            f"{run_snippet(ARTICLE_EXTEND_SNIPPET)}",
            explanation="Both call functions that exist nowhere, so they cannot run; longctx_lab.rope.yarn_rope and "
            "linear_rope are working versions (tested against Hugging Face).",
        ),
        check_statement(
            "YaRN: 'scale less for low frequencies' (low_freq_factor = 1, high_freq_factor = scale)",
            verdict="wrong", source=SEED_ARCHITECTURE,
            evidence=f"YaRN at s = {s:.2f}, d=128: the fastest pair is divided by {float(ratio[0]):.2f}, the slowest "
            f"by {float(ratio[-1]):.2f}",
            explanation="Backwards: YaRN keeps the high frequencies (pairs that turn many times in the trained "
            "context) and interpolates the low frequencies by the full factor.",
        ),
        check_stated_number(
            "YaRN temperature = 0.5", stated="0.5", computed=t, source=SEED_ARCHITECTURE,
            explanation=f"YaRN sets sqrt(1/t) = 0.1 ln(s) + 1; at s = {s:.2f} that is {factor:.3f}, so the logits "
            f"are multiplied by 1/t = {1 / t:.3f} (t = {t:.3f}), a function of the factor, not a constant 0.5.",
        ),
    ]


def llama3_claims() -> list[ClaimCheck]:
    inv, _ = rope.from_hf_rope_parameters(LLAMA31_ROPE, 128)
    ref, _ = rope.default_rope(128, LLAMA31_ROPE["rope_theta"])
    counts = Counter(rope.classify_pairs(inv, ref, LLAMA31_ROPE["factor"]))
    base_ratio = LLAMA31_ROPE["rope_theta"] / 10_000.0
    return [
        check_statement(
            "Llama 3: continue training at 16K, then 32K, then 128K, adjusting the RoPE base at each stage",
            verdict="unsupported", source=SEED_PRODUCTION,
            evidence=f"released Llama 3.1 config: base {LLAMA31_ROPE['rope_theta']:,.0f} ({base_ratio:.0f}x Llama "
            f"2's 10,000) and rope_type 'llama3' with factor 8 over 8,192: of 64 pairs {counts['extrapolate']} "
            f"kept, {counts['interpolate']} divided by 8, {counts['blend']} blended",
            explanation="The Llama 3 paper (Grattafiori et al. 2024) says the base was raised to 500,000 for "
            "pre-training and that context was extended in six stages from 8K to 128K (about 800B tokens). It does "
            "not say the base changed per stage, nor give the intermediate lengths; the released 3.1 weights keep "
            "base 500,000 and add a frequency-dependent rescaling, which is not a base change.",
        ),
    ]


def decay_claims(head_dim: int = 128, base: float = 10_000.0) -> list[ClaimCheck]:
    inv, _ = rope.default_rope(head_dim, base)
    d = torch.arange(0, 20_001)
    score = rope.expected_score(inv, d)
    rises = int((score[1:] > score[:-1]).sum())
    return [
        check_statement(
            "RoPE 'decays attention with distance naturally'",
            verdict="misleading", source=SEED_ARCHITECTURE,
            evidence=f"normalised self-score vs distance (d={head_dim}): {float(score[1]):.2f} at 1, "
            f"{float(score[100]):.2f} at 100, {float(score[10_000]):.2f} at 10,000; it rises again at {rises:,} "
            f"of 20,000 steps and goes negative (min {float(score.min()):.2f})",
            explanation="RoFormer proves a decaying *upper bound*; the score itself oscillates and, for a given "
            "query and key, need not decay at all. Models learn to use (or cancel) it.",
        ),
    ]


def claims() -> list[ClaimCheck]:
    return (
        theta_formula_claims() + base_claims() + extrapolation_claims() + yarn_snippet_claims()
        + llama3_claims() + decay_claims()
    )


__all__ = [
    "ARTICLE_EXTEND_SNIPPET",
    "ARTICLE_YARN_SNIPPET",
    "LLAMA31_ROPE",
    "base_claims",
    "claims",
    "decay_claims",
    "extrapolation_claims",
    "llama3_claims",
    "run_snippet",
    "theta_formula_claims",
    "yarn_snippet_claims",
]
