"""Checkpoints: the config, the weights and free-form metadata in one torch file.

Loading never unpickles arbitrary objects (weights_only=True). Every checkpoint carries a
sha256 of its contents, checked on load, so a damaged file (flipped bytes in the weights or
the metadata) is always caught instead of silently giving a different model. A corrupt,
truncated, damaged or foreign file gives a ValueError that says which file, what is wrong
with it and what to do.
"""
from __future__ import annotations

import hashlib
import os
import platform
import warnings
from pathlib import Path

import numpy
import torch

from .config import ModelConfig
from .models import build
from .version import __version__

FORMAT = "pixelcnn-checkpoint"
VERSION = 2          # 2: adds payload["sha256"]; version-1 files load with a warning
FIX = "Re-create it, or copy it again from its source."


def versions() -> dict:
    """The library versions a checkpoint was written with."""
    return {"torch": str(torch.__version__), "numpy": str(numpy.__version__),
            "python": platform.python_version(), "pixelcnn": __version__}


def checksum(payload: dict) -> str:
    """sha256 of the payload's config, state_dict and metadata, computed canonically (not over
    the file's bytes, which torch.save does not write reproducibly): dicts in order of repr(key),
    lists and tuples alike, tensors as dtype, shape and raw bytes (streamed, not copied),
    anything else (str, int, float, None, ...) by repr."""
    h = hashlib.sha256()

    def feed(x):
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"tensor {t.dtype} {tuple(t.shape)}\n".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy())   # bytes of any dtype (bfloat16)
        elif isinstance(x, dict):
            h.update(f"dict {len(x)}\n".encode())
            for k, v in sorted(x.items(), key=lambda kv: repr(kv[0])):
                feed(k)
                feed(v)
        elif isinstance(x, (list, tuple)):
            h.update(f"list {len(x)}\n".encode())
            for v in x:
                feed(v)
        else:
            h.update(f"{repr(x)}\n".encode())

    feed({k: payload.get(k) for k in ("config", "state_dict", "metadata")})
    return h.hexdigest()


def save(model, path, **metadata) -> Path:
    """Write model (config + weights) and metadata (data set, epoch, bits/dim, ...) to path,
    with a checksum of all three. Extra tensors (e.g. optimizer state) may be passed as
    metadata. The file is written to path + '.tmp' in the same folder and renamed over path,
    so an interrupted save leaves neither a truncated checkpoint nor the temporary file."""
    if not (hasattr(model, "config") and hasattr(model, "state_dict")):
        raise ValueError(f"save: model must be a pixelcnn model (with .config and .state_dict), "
                         f"got {type(model).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"save: path must be a str or os.PathLike, got {type(path).__name__}")
    if Path(path).is_dir() or str(path).endswith(("/", os.sep)):
        raise ValueError(f"save: {path} is a folder; give a file path such as "
                         f"{Path(path) / 'model.pt'}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata.setdefault("versions", versions())
    payload = {"format": FORMAT, "version": VERSION, "config": model.config.to_dict(),
               "state_dict": model.state_dict(), "metadata": metadata}
    payload["sha256"] = checksum(payload)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)     # gone after os.replace; removed here if the save failed
    return path


def load_payload(path) -> dict:
    """The raw checkpoint dict, validated and its checksum verified; ValueError with the reason
    if it is not one. A version-1 file (no checksum) loads with a warning."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist (or is not a file)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zip, pickle and EOF errors all mean: not a readable checkpoint
        lines = str(e).strip().splitlines()
        why = type(e).__name__ + (f": {lines[0]}" if lines and len(lines[0]) <= 120 else "")
        raise ValueError(f"checkpoint {path} is corrupt or truncated and cannot be read by "
                         f"torch.load ({why}). {FIX}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pixelcnn checkpoint (no '{FORMAT}' header); "
                         "save models with pixelcnn.save")
    if payload.get("version", 0) > VERSION:
        raise ValueError(f"checkpoint {path} has format version {payload['version']}, newer than "
                         f"this pixelcnn reads ({VERSION}); upgrade pixelcnn")
    if "sha256" not in payload and payload.get("version", 0) < 2:
        warnings.warn(f"checkpoint {path} has no checksum (it predates format version 2), so "
                      "it cannot be verified; re-saving it with pixelcnn.save adds a checksum")
    elif payload.get("sha256") != checksum(payload):
        raise ValueError(f"checkpoint {path} is damaged: its contents do not match the sha256 "
                         f"checksum written when it was saved. {FIX}")
    return payload


def load(path, map_location="cpu", return_metadata: bool = False, ema: bool = True):
    """The model saved at path (in eval mode), and its metadata if return_metadata.

    A checkpoint trained with --ema holds two sets of weights: the raw ones (state_dict) and
    their exponential moving average (metadata "ema"). The EMA weights are what a user wants
    to evaluate and sample (they score better), so they load by default; ema=False loads the
    raw ones. metadata["weights"] says which were loaded: "ema" or "raw"."""
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
    metadata = dict(payload.get("metadata", {}))
    metadata["weights"] = "raw"
    if ema and metadata.get("ema") is not None:
        try:
            model.load_state_dict(metadata["ema"])
        except (KeyError, RuntimeError) as e:
            raise ValueError(f"checkpoint {path}: its EMA weights do not match its config "
                             f"{config} ({str(e).splitlines()[0]})") from None
        metadata["weights"] = "ema"
    model.to(map_location).eval()
    return (model, metadata) if return_metadata else model
