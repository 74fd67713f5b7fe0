"""Checkpoints: the config, the weights and free-form metadata in one torch file.

Loading never unpickles arbitrary objects (weights_only=True), and a corrupt, truncated or
foreign file gives a ValueError that says which file and what is wrong with it.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from .config import ModelConfig
from .models import build

FORMAT = "pixelcnn-checkpoint"
VERSION = 1


def versions() -> dict:
    import numpy
    out = {"torch": str(torch.__version__), "numpy": str(numpy.__version__),
           "python": platform.python_version()}
    try:
        from . import __version__
        out["pixelcnn"] = __version__
    except ImportError:
        pass
    return out


def save(model, path, **metadata) -> Path:
    """Write model (config + weights) and metadata (data set, epoch, bits/dim, ...) to path.
    Extra tensors (e.g. optimizer state) may be passed as metadata; the file is written
    atomically, so an interrupted save never leaves a truncated checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata.setdefault("versions", versions())
    payload = {"format": FORMAT, "version": VERSION, "config": model.config.to_dict(),
               "state_dict": model.state_dict(), "metadata": metadata}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_payload(path) -> dict:
    """The raw checkpoint dict, validated; ValueError with the reason if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist (or is not a file)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zip, pickle and EOF errors all mean: not a readable checkpoint
        raise ValueError(f"checkpoint {path} is corrupt or truncated and cannot be read "
                         f"({type(e).__name__}: {str(e)[:200]}); re-create or re-download it") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pixelcnn checkpoint (no '{FORMAT}' header); "
                         "save models with pixelcnn.save")
    if payload.get("version", 0) > VERSION:
        raise ValueError(f"checkpoint {path} has format version {payload['version']}, newer than "
                         f"this pixelcnn reads ({VERSION}); upgrade pixelcnn")
    return payload


def load(path, map_location="cpu", return_metadata: bool = False):
    """The model saved at path (in eval mode), and its metadata if return_metadata."""
    payload = load_payload(path)
    try:
        config = ModelConfig.from_dict(payload["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {path} has an invalid config: {e}") from None
    model = build(config)
    try:
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError) as e:
        raise ValueError(f"checkpoint {path}: weights do not match its config {config} "
                         f"({str(e).splitlines()[0]})") from None
    model.to(map_location).eval()
    return (model, payload.get("metadata", {})) if return_metadata else model
