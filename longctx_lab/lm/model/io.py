"""Save and load a :class:`~longctx_lab.lm.model.TinyLM`: a directory with ``config.json`` and ``model.pt``.

``config.json`` holds ``{"format": "longctx-lab/tiny-lm", "version": 1, "config": LMConfig.to_dict(),
"metadata": {...}}`` (``metadata``: anything JSON-able, e.g. the command that trained the model);
``model.pt`` the state dict (``torch.save``; read back with ``weights_only=True``, so loading runs no code).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from longctx_lab.lm.model.config import LMConfig
from longctx_lab.lm.model.transformer import TinyLM

__all__ = ["FORMAT", "load_metadata", "load_model", "save_model", "shipped_checkpoint"]

FORMAT = "longctx-lab/tiny-lm"
VERSION = 1


def save_model(model: TinyLM, directory, *, metadata: dict | None = None) -> Path:
    """Write ``directory/config.json`` and ``directory/model.pt`` (creating ``directory``); returns it."""
    if not isinstance(model, TinyLM):
        raise TypeError(f"model must be a TinyLM, got {type(model).__name__}")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict or None, got {type(metadata).__name__}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, "config": model.config.to_dict(),
               "dtype": str(model.dtype).replace("torch.", ""), "metadata": metadata or {}}
    (directory / "config.json").write_text(json.dumps(payload, indent=1) + "\n")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, directory / "model.pt")
    return directory


def _read(directory) -> dict:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"directory must hold a config.json written by save_model, got {directory!s}")
    payload = json.loads(path.read_text())
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path} must have format {FORMAT!r}, got {payload.get('format')!r}")
    return payload


def load_metadata(directory) -> dict:
    """The ``metadata`` dict stored by :func:`save_model`."""
    return _read(directory)["metadata"]


def load_model(directory, *, device=None) -> TinyLM:
    """The model :func:`save_model` wrote to ``directory`` (same config, weights and dtype), in eval mode."""
    payload = _read(directory)
    config = LMConfig.from_dict(payload["config"])
    dtype = getattr(torch, payload.get("dtype", "float32"))
    model = TinyLM(config).to(dtype)
    state = torch.load(Path(directory) / "model.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    if device is not None:
        model = model.to(device)
    return model.eval()


def shipped_checkpoint(name: str = "passkey-128") -> Path:
    """The directory of a checkpoint shipped with the package (``longctx_lab/lm/checkpoints/<name>``, package
    data: present in a wheel or a Binder install too); ``ValueError`` naming the shipped ones otherwise."""
    root = Path(__file__).resolve().parents[1] / "checkpoints"
    names = sorted(d.name for d in root.iterdir() if (d / "config.json").is_file()) if root.is_dir() else []
    if not isinstance(name, str) or name not in names:
        raise ValueError(f"name must be one of the shipped checkpoints {names}, got {name!r}")
    return root / name
