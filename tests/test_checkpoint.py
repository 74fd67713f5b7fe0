"""Checkpoints: round trip of config, weights and metadata (tensors included); corrupt,
truncated, damaged (flipped bytes) and foreign files give a ValueError naming the file; saves
are atomic and refuse a folder; version-1 files (no checksum) load with a warning."""
import argparse
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

import pixelcnn
from helpers import make_model
from pixelcnn.checkpoint import FORMAT


def largest_tensor_offset(path) -> int:
    """File offset of the middle of the largest tensor's raw bytes (zip member */data/<k>,
    stored uncompressed) in a torch.save file."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if i.filename.split("/")[-2:-1] == ["data"]),
                   key=lambda i: i.file_size)
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)      # local file header: name and extra field lengths
        header = f.read(4)
    start = info.header_offset + 30 + int.from_bytes(header[:2], "little") \
        + int.from_bytes(header[2:], "little")
    return start + info.file_size // 2


@pytest.mark.parametrize("kind,cfg", [("gated", dict(num_classes=3)), ("pixelcnn", {}),
                                      ("autoencoder", dict(cond_dim=4))])
def test_round_trip(tmp_path, kind, cfg):
    model = make_model(kind, dtype=torch.float32, in_channels=3, levels=7, **cfg)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randint(0, 7, (2, 3, 5, 5)), y=torch.tensor([0, 2]) if kind == "gated" else None) \
        .sum().backward()
    opt.step()
    rng = torch.get_rng_state()
    path = pixelcnn.save(model, tmp_path / "sub" / "m.pt", dataset="cifar", epoch=3,
                         optimizer=opt.state_dict(), rng={"torch": rng})
    loaded, meta = pixelcnn.load(path, return_metadata=True)
    assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert meta["dataset"] == "cifar" and meta["epoch"] == 3 and "torch" in meta["versions"]
    assert torch.equal(meta["rng"]["torch"], rng)
    opt2 = torch.optim.Adam(loaded.parameters())
    opt2.load_state_dict(meta["optimizer"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert not list(tmp_path.glob("sub/*.tmp"))                     # written atomically


def test_bad_files(tmp_path):
    model = make_model(dtype=torch.float32)
    path = pixelcnn.save(model, tmp_path / "m.pt")
    blob = path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    cases = {"trunc.pt": "corrupt or truncated", "junk.pt": "corrupt or truncated",
             "foreign.pt": "not a pixelcnn checkpoint", "missing.pt": "does not exist"}
    for name, why in cases.items():
        with pytest.raises(ValueError, match=why) as e:
            pixelcnn.load(tmp_path / name)
        assert name in str(e.value)


def flip(path, offset, n=64):
    """Invert n bytes of the file at offset, in place."""
    with open(path, "r+b") as f:
        f.seek(offset)
        data = f.read(n)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_damaged_weights(tmp_path, dtype):
    path = pixelcnn.save(make_model(dtype=dtype), tmp_path / "m.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # a checksummed file loads silently
        pixelcnn.load(path)
    flip(path, largest_tensor_offset(path) - 32)
    torch.load(path, weights_only=True)                 # torch itself does not notice
    with pytest.raises(ValueError, match="do not match the sha256 checksum") as e:
        pixelcnn.load(path)
    assert "m.pt" in str(e.value) and str(e.value).endswith(".")


def test_damaged_metadata(tmp_path):
    path = pixelcnn.save(make_model(dtype=torch.float32), tmp_path / "m.pt", note="abcdefgh-note")
    blob = path.read_bytes()
    assert blob.count(b"abcdefgh-note") == 1
    path.write_bytes(blob.replace(b"abcdefgh-note", b"abcdefgX-note"))
    assert torch.load(path, weights_only=True)["metadata"]["note"] == "abcdefgX-note"
    with pytest.raises(ValueError, match="m.pt is damaged"):
        pixelcnn.load(path)


def test_save_refuses_bad_arguments(tmp_path):
    model = make_model(dtype=torch.float32)
    (tmp_path / "runs").mkdir()
    with pytest.raises(ValueError, match="runs is a folder; give a file path"):
        pixelcnn.save(model, tmp_path / "runs")
    assert not list(tmp_path.rglob("*.tmp")) and not list((tmp_path / "runs").iterdir())
    with pytest.raises(ValueError, match="model must be a pixelcnn model .*got dict"):
        pixelcnn.save({"weights": 1}, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="path must be a str or os.PathLike, got int"):
        pixelcnn.save(model, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]


def test_interrupted_save(tmp_path, monkeypatch):
    model = make_model(dtype=torch.float32)
    pixelcnn.save(model, tmp_path / "old.pt", epoch=1)

    def interrupted(obj, f):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("No space left on device")
    monkeypatch.setattr(torch, "save", interrupted)
    for name in ("new.pt", "old.pt"):
        with pytest.raises(OSError):
            pixelcnn.save(model, tmp_path / name, epoch=2)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.pt"]   # no target, no tmp
    assert pixelcnn.load(tmp_path / "old.pt", return_metadata=True)[1]["epoch"] == 1


def test_version_1_loads_with_warning(tmp_path):
    model = make_model(dtype=torch.float32)
    torch.save({"format": FORMAT, "version": 1, "config": model.config.to_dict(),
                "state_dict": model.state_dict(), "metadata": {"epoch": 4}}, tmp_path / "v1.pt")
    with pytest.warns(UserWarning, match="cannot be verified; re-saving it with pixelcnn.save"):
        loaded, meta = pixelcnn.load(tmp_path / "v1.pt", return_metadata=True)
    assert meta == {"epoch": 4, "weights": "raw"}        # "weights": which set was loaded
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  loaded.state_dict().values()))


def test_corrupt_message_is_a_sentence(tmp_path):
    blob = pixelcnn.save(make_model(dtype=torch.float32), tmp_path / "m.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(blob[: len(blob) // 2])
    torch.save({"format": FORMAT, "x": argparse.Namespace()}, tmp_path / "unsafe.pt")  # not a weight
    for name in ("trunc.pt", "unsafe.pt"):
        with pytest.raises(ValueError, match="cannot be read by torch.load") as e:
            pixelcnn.load(tmp_path / name)
        message = str(e.value)
        assert message.endswith("Re-create it, or copy it again from its source.")
        assert message.count("(") == message.count(")") and "\n" not in message
