"""Chapter 5 quiz: the KV cache, GQA/MQA, paged and quantized caches. Numeric keys are computed by the package
(planner, cost, kvcache)."""

import torch

from longctx_lab.core.configs import LLAMA31_70B
from longctx_lab.core.cost import decode_step, kv_cache_bytes
from longctx_lab.course.quiz import ChoiceQuestion, NumericQuestion, Option, Quiz
from longctx_lab.kvcache import ContiguousKVCache, PagedKVCache, quantized_kv_cache_bytes
from longctx_lab.lm.hf.planner import plan


def _kv_head_read_by(query_head: int, heads: int = 32, kv_heads: int = 8) -> float:
    """Which KV head a query head reads, found by running attention over a cache whose KV head ``j`` holds ``j``."""
    cache = ContiguousKVCache(1, batch=1, kv_heads=kv_heads, head_dim=16)
    values = torch.arange(kv_heads, dtype=torch.float32).view(1, kv_heads, 1, 1).expand(1, kv_heads, 1, 16)
    cache.append(torch.zeros(1, kv_heads, 1, 16), values.contiguous())
    out = cache.attend(torch.zeros(1, heads, 1, 16))
    return float(out[0, query_head, 0, 0])


def _unused_paged_slots(tokens: int = 100, block_size: int = 16) -> float:
    cache = PagedKVCache(block_size, 16, batch=1, kv_heads=1, head_dim=1)
    cache.append(torch.zeros(1, 1, tokens, 1), torch.zeros(1, 1, tokens, 1))
    return float(len(cache.blocks_of(0)) * block_size - tokens)


_INT4_RATIO = kv_cache_bytes(4096, n_layers=1, n_kv_heads=1, head_dim=128, dtype="fp16") / quantized_kv_cache_bytes(
    4096, n_kv_heads=1, head_dim=128, bits=4, dtype="fp16")

QUIZ = Quiz(
    chapter="ch05_kv_cache_gqa",
    title="Chapter 5: the KV cache, GQA/MQA, paged and quantized caches",
    questions=(
        NumericQuestion(
            prompt="Llama 3.1 8B (32 layers, 8 KV heads of dimension 128) caches keys and values in bf16. How many "
            "bytes of KV cache does one token add?",
            answer=float(plan("llama-3.1-8b").kv_bytes_per_token),
            rel_tol=0.001,
            unit="bytes",
            explanation="2 (K and V) x 32 layers x 8 KV heads x 128 x 2 bytes = 131,072 bytes, 128 KiB per token.",
            computed_by="plan('llama-3.1-8b').kv_bytes_per_token",
        ),
        NumericQuestion(
            prompt="Mistral 7B v0.1 uses a 4,096-token sliding window in all 32 layers (8 KV heads of 128). How many "
            "GB (1e9 bytes) of bf16 KV cache does one sequence hold at its full context of 32,768 tokens?",
            answer=plan("mistral-7b-v0.1").kv_bytes_per_sequence / 1e9,
            rel_tol=0.01,
            unit="GB",
            explanation="A windowed layer keeps only the last 4,096 tokens (a rolling buffer): 2 x 32 x 8 x 128 x "
            "4,096 x 2 bytes = 0.54 GB, whatever the context.",
            computed_by="plan('mistral-7b-v0.1').kv_bytes_per_sequence / 1e9",
        ),
        NumericQuestion(
            prompt="32 query heads share 8 KV heads (GQA, the course convention). Which KV head (0-7) does query "
            "head 13 read?",
            answer=_kv_head_read_by(13),
            rel_tol=0.001,
            explanation="Group size 32 / 8 = 4; query head h reads KV head h // 4, so heads 12-15 read KV head 3.",
            computed_by="attention through ContiguousKVCache whose KV head j holds the value j (_kv_head_read_by)",
        ),
        NumericQuestion(
            prompt="A paged cache with 16-token blocks holds a sequence of 100 tokens. How many token slots of its "
            "blocks are allocated but unused?",
            answer=_unused_paged_slots(),
            rel_tol=0.001,
            unit="slots",
            explanation="100 tokens need ceil(100 / 16) = 7 blocks = 112 slots; 12 are unused, all in the last "
            "block. A paged cache never wastes more than block_size - 1 slots per sequence.",
            computed_by="PagedKVCache(16, ...) after a 100-token append: len(blocks_of(0)) * 16 - 100",
        ),
        NumericQuestion(
            prompt="An int4 cache with one fp16 scale per token and KV head, head_dim 128: how many times smaller than "
            "the fp16 cache is it (fp16 bytes / int4 bytes)?",
            answer=_INT4_RATIO,
            rel_tol=0.01,
            unit="x",
            explanation="Per token and head: 128 x 2 = 256 bytes in fp16, 128 / 2 = 64 bytes of codes plus a 2-byte "
            "scale in int4, so 256 / 66 = 3.88x, a little less than 4.",
            computed_by="kv_cache_bytes(fp16) / quantized_kv_cache_bytes(bits=4, axis='token')",
        ),
        NumericQuestion(
            prompt="Llama 3.1 70B decodes one token (batch 1, bf16) with 8,192 tokens cached. About how many FLOPs "
            "does the step do per byte it reads from memory (weights plus KV cache)?",
            answer=decode_step(LLAMA31_70B, 8192)["intensity"],
            rel_tol=0.15,
            unit="FLOP/byte",
            explanation="About 1 (1.13 with the attention over the cache): each 2-byte weight is read once and used "
            "in one multiply-add, 2 FLOPs, for the one token. An H100's ridge point is near 300 FLOPs per byte, so "
            "the step is memory-bound. Any answer from 1 to 1.3 is accepted.",
            computed_by="decode_step(LLAMA31_70B, 8192)['intensity']",
        ),
        ChoiceQuestion(
            prompt="What does a paged KV cache (PagedAttention) save compared with a contiguous cache that reserves "
            "the maximum length for every request?",
            options=(
                Option("The memory reserved for tokens a request has not produced (or never will), and fragmentation",
                       correct=True,
                       explanation="Blocks are taken as tokens arrive; at most one partially filled block per "
                       "sequence is unused."),
                Option("Bytes per token: each token is stored in fewer bytes",
                       explanation="A token's keys and values take exactly the same bytes in a block."),
                Option("Attention FLOPs: fewer keys are read per query",
                       explanation="Every cached key is still read; only where it lives changes."),
                Option("Nothing: it is only faster", explanation="Its point is memory: more sequences fit."),
            ),
        ),
        ChoiceQuestion(
            prompt="KIVI quantizes keys per channel but values per token. Why per channel for keys?",
            options=(
                Option("A few key channels carry outliers in every token, so one scale per token spends its "
                       "range on them", correct=True,
                       explanation="A per-channel scale gives the outlier channels their own range; the chapter's "
                       "sweep shows the error drop."),
                Option("Keys are larger than values", explanation="They have the same shape."),
                Option("Per-channel scales use fewer bytes",
                       explanation="Their bytes are similar; the choice is about error."),
                Option("Values cannot be quantized per channel",
                       explanation="They can; errors in values average out over the softmax, so per token suffices."),
            ),
        ),
        ChoiceQuestion(
            prompt="A server decodes a batch of sequences with the same model, each sequence with its own cache. It "
            "doubles the batch at the same context. What happens to the bytes one decode step reads?",
            options=(
                Option("The KV-cache part doubles, the weights part stays the same", correct=True,
                       explanation="The weights are read once per step and shared by every sequence of the batch; "
                       "each sequence's cache is its own and is read in full."),
                Option("Both parts double",
                       explanation="The weights are read once per step whatever the batch: that is why batching "
                       "makes decoding cheaper per token."),
                Option("Nothing changes: the step is memory-bound",
                       explanation="Memory-bound says bytes set the time; the cache bytes still grow with the "
                       "number of sequences."),
                Option("The weights part doubles, the cache part stays the same",
                       explanation="The other way round: the weights are shared, the caches are not."),
            ),
        ),
        ChoiceQuestion(
            prompt="Multi-head latent attention (DeepSeek-V2) caches one compressed latent per token and layer, plus "
            "a small key that carries the rotary position. Why keep the position apart from the latent?",
            options=(
                Option("A rotation that depends on the position would sit between the query and the key's "
                       "up-projection, so the up-projection could no longer be folded into the query projection",
                       correct=True,
                       explanation="Folding the up-projection into the query is what lets MLA attend over the "
                       "latents without rebuilding every head's keys; a position-dependent rotation in between "
                       "breaks it, so the rotary part gets its own small key shared by all heads."),
                Option("The latent has too few numbers to hold a position",
                       explanation="Size is not the issue: the latent could carry position information; the "
                       "problem is the position-dependent rotation applied after the up-projection."),
                Option("Values need the rotary position too",
                       explanation="RoPE rotates queries and keys only; values are not rotated."),
                Option("It makes the cache smaller than keeping the position in the latent",
                       explanation="The separate key adds numbers to the cache (64 per token and layer in "
                       "DeepSeek-V2); it is a cost paid to keep the folding."),
            ),
        ),
    ),
)
