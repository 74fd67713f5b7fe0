"""Checkpoints: round trip of config, weights and metadata (tensors included); corrupt,
truncated and foreign files give a ValueError naming the file."""
import pytest
import torch

import pixelcnn
from conftest import make_model


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
