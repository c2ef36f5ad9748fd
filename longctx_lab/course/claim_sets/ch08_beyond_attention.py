"""Chapter 8: the articles' claims about attention's alternatives (Linformer, Performer, state-space models,
compressive memory), checked.

Every ``computed`` value or piece of evidence comes from the package, here and now: Linformer's shapes
(:func:`longctx_lab.mixers.linformer_attention`), Performer's error
(:func:`longctx_lab.mixers.performer_error_vs_features`), decode states measured at two context lengths
(:func:`longctx_lab.lm.model.forward_with_state`), the article's own compression arithmetic, and the recorded
``bench retrieval`` (:func:`longctx_lab.course.beyond_attention.retrieval_table`, shipped). Sentences
judged by earlier chapters are not judged again here.
"""

from __future__ import annotations

import torch

from longctx_lab.course.beyond_attention import load_retrieval, retrieval_table
from longctx_lab.course.claims import SEED_ARCHITECTURE, SEED_PRODUCTION, ClaimCheck, check_statement
from longctx_lab.lm.model import LMConfig, TinyLM, forward_with_state, init_decode_state
from longctx_lab.mixers import linformer_attention, performer_error_vs_features

__all__ = ["claims", "compression_ratios", "linformer_shapes", "state_bytes_at"]


def linformer_shapes(n: int = 512, head_dim: int = 64, k_proj: int = 32) -> dict:
    """Shapes through Linformer's projection: keys ``(n, head_dim)`` become ``(k_proj, head_dim)``."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, n, head_dim, generator=gen) for _ in range(3))
    e = torch.randn(k_proj, n, generator=gen) / n ** 0.5
    out = linformer_attention(q, k, v, e, e)
    return {"keys": tuple(k.shape[-2:]), "projected_keys": tuple((e @ k).shape[-2:]), "output": tuple(out.shape[-2:])}


def state_bytes_at(kind: str, contexts=(64, 1024), d_model: int = 64) -> dict[int, int]:
    """Measured decode-state bytes of a two-layer ``kind`` TinyLM after each context length."""
    config = LMConfig(vocab_size=64, d_model=d_model, n_layers=2, n_heads=4, max_positions=max(contexts),
                      mixers=None if kind == "attention" else (kind, kind))
    model = TinyLM(config, seed=0).eval()
    out = {}
    for n in contexts:
        state = init_decode_state(model, 1, capacity=n)
        forward_with_state(model, torch.zeros(1, n, dtype=torch.long), state)
        out[n] = state.nbytes()
    return out


def compression_ratios(n: int = 131_072, d: int = 128) -> dict:
    """The article's ratio ``n / c`` at its own two boundary cases, and the ratio of numbers ``n d / c``."""
    return {"no_compression": {"c": n * d, "article": n / (n * d), "numbers": n * d / (n * d)},
            "single_vector": {"c": d, "article": n / d, "numbers": n * d / d}}


def claims() -> list[ClaimCheck]:
    shapes = linformer_shapes()
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, 128, 16, generator=gen, dtype=torch.float64) * 0.5 for _ in range(3))
    perf = performer_error_vs_features(q, k, v, [8, 128], seeds=(0, 1, 2))
    memory = state_bytes_at("compressive")
    ssm = state_bytes_at("ssm")
    attention = state_bytes_at("attention")
    ratio = compression_ratios()
    rag = {(r["setting"], r["strategy"]): r for r in retrieval_table(load_retrieval())}
    lo, hi = sorted(memory)
    return [
        check_statement(
            "Linformer: project keys and values to lower dimensions", verdict="misleading",
            source=SEED_ARCHITECTURE, stated="Project keys and values to lower dimensions",
            evidence=f"linformer_attention: keys {shapes['keys']} (positions x features) -> E K "
            f"{shapes['projected_keys']}; output {shapes['output']}",
            explanation="Linformer shrinks the sequence axis (n positions -> k mixtures of positions), not the "
            "feature dimension, which stays head_dim. Each mixture blends keys from every position, future ones "
            "included, so the published layer cannot be causal and fixes n: it is an encoder technique, not a "
            "decoder's."),
        check_statement(
            "Performer: kernel-based approximation of softmax attention", verdict="correct",
            source=SEED_ARCHITECTURE, stated="Kernel-based approximation of softmax attention",
            evidence=f"relative error vs exact softmax attention (float64, 128 positions, head_dim 16): "
            f"{perf[0]['mean_error']:.3f} with 8 random features, {perf[1]['mean_error']:.3f} with 128",
            explanation="FAVOR+ writes exp(q.k) as an expectation over positive random features, so attention "
            "becomes linear attention in feature space; the estimate is unbiased and its error falls about as "
            "1/sqrt(features). It approximates, it is not exact: the error never reaches zero."),
        check_statement(
            "Compressive memories store a fixed-size compressed state that grows sublinearly with context length",
            verdict="misleading", source=SEED_PRODUCTION,
            stated="a fixed-size compressed state that grows sublinearly with context length",
            evidence=f"decode state measured after {lo:,} and {hi:,} tokens (two layers, d_model 64): compressive "
            f"memory {memory[lo]:,} and {memory[hi]:,} B; selective SSM {ssm[lo]:,} and {ssm[hi]:,} B; attention "
            f"{attention[lo]:,} and {attention[hi]:,} B",
            explanation="Fixed-size means it does not grow at all, and the measurement agrees: the memory's bytes "
            "are the same at every length (sublinear growth would be a different design, e.g. a memory that "
            "adds slots). What grows is the number of tokens squeezed into the same bytes."),
        check_statement(
            "The compression ratio is n/c; if c = n*d (no compression), we recover full attention",
            verdict="wrong", source=SEED_PRODUCTION, stated="the compression ratio is n/c",
            evidence=f"n = 131,072 tokens of d = 128: at c = n*d the article's n/c is "
            f"{ratio['no_compression']['article']:.4f} (= 1/d), the ratio of numbers n*d/c is "
            f"{ratio['no_compression']['numbers']:.0f}; at c = d, n/c = {ratio['single_vector']['article']:,.0f} "
            f"but n*d/c = {ratio['single_vector']['numbers']:,.0f}",
            explanation="c counts dimensions (numbers) while n counts tokens of d numbers each. The article's own "
            "boundary case, c = n*d is 'no compression', needs the ratio n*d/c, which is 1 there; n/c gives 1/d. "
            "Measured in numbers, a memory of d x d (Infini-attention's M) holds n*d/d^2 = n/d tokens' worth "
            "per number."),
        check_statement(
            "No compressive memory system has been demonstrated at production scale as of early 2025",
            verdict="misleading", source=SEED_PRODUCTION,
            stated="No compressive memory system has been demonstrated at production scale as of early 2025",
            evidence=f"the mechanism measured here: a fixed decode state ({ssm[hi]:,} B for the SSM, "
            f"{memory[hi]:,} B for the compressive memory, at {hi:,} tokens); published models built on it: "
            "Jamba 1.5 (AI21, August 2024: Mamba layers with one attention layer in eight, 256K context), "
            "MiniMax-01 (January 2025: linear 'lightning' attention with one softmax layer in eight, 456B "
            "parameters)",
            explanation="True of Infini-attention and Titans by name: neither has a released production model. "
            "But fixed-size recurrent states, the same compression, ship in production hybrids by early 2025; "
            "each keeps some softmax attention layers, which is what this chapter's MQAR hybrid shows."),
        check_statement(
            "Layer 5, retrieval: the context window handles the working memory, retrieval the long-term store",
            verdict="misleading", source=SEED_PRODUCTION,
            stated="The context window handles the working memory; retrieval handles the long-term knowledge store",
            evidence="bench retrieval, SmolLM2-135M, fraction right [worst, best seed] and mean prompt tokens: "
            + "; ".join(f"{setting} document, {strategy}: {r['accuracy']:.2f} [{r['min']:.2f}, {r['max']:.2f}], "
                        f"{r['prompt_tokens']:,.0f} tokens"
                        for (setting, strategy), r in rag.items()),
            explanation="Right about documents beyond the window: there truncation never saw the facts and "
            "retrieval found most of them. But the split is not that clean: on a document that fits, retrieval's "
            "shorter prompts did at least as well as the whole document in the window, whose wrong answers were "
            f"mostly another fact's code ({rag['fits', 'full']['trials']} questions per cell, seeds far apart: a "
            "hint, not a law). Retrieval is also a way to choose what goes into the working memory."),
    ]
