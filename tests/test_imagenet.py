"""Downsampled ImageNet (imagenet32, imagenet64) from tiny files in the official .npz format:
the row layout, 0-based labels, numeric batch order, the folder layouts searched, the error for
missing files (never a download) and for damaged ones, levels / image_size, and a class-
conditional training run and its evaluation."""
import math
import urllib.request
import warnings

import numpy as np
import pytest
import torch

from datafixtures import IMAGENET_TRAIN, IMAGENET_VAL, imagenet_batch, write_imagenet
from pixelcnn import data as D


def load(*args, **kw):
    """load_dataset, swallowing the no-known-md5 warning that every ImageNet load gives."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return D.load_dataset(*args, **kw)


def as_images(batch, size):
    """The official rows as [N, 3, size, size], written out plane by plane (R, G, B)."""
    rows = batch["data"]
    s2 = size * size
    return np.stack([np.stack([r[c * s2:(c + 1) * s2].reshape(size, size) for c in range(3)])
                     for r in rows])


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """ImageNet is never downloaded: any attempt fails the test."""
    def refuse(*a, **k):
        raise AssertionError("tried to download")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


# ---------------------------------------------------------------- loading

@pytest.mark.parametrize("size,batches", [(32, (1, 2, 10)), (64, (2, 7, 10))])
def test_official_layout(tmp_path, capsys, size, batches):
    """64x64: batch 2 in part1, 7 and 10 in part2; read in numeric order (10 after 7 and 2)."""
    written = write_imagenet(tmp_path, size, batches=batches, n=5, n_val=4)
    name = f"imagenet{size}"
    with pytest.warns(UserWarning, match="no known md5"):
        train = D.load_dataset(name, "train", data_dir=tmp_path)
    printed = capsys.readouterr().out
    assert f"3 of the 10 train batches found (batch {', '.join(map(str, batches))}; 15 images)" \
        in printed and "subset" in printed
    with pytest.warns(UserWarning, match="no known md5"):
        test = D.load_dataset(name, "test", data_dir=tmp_path)
    for ds, split, n in ((train, "train", 15), (test, "test", 4)):
        assert (ds.name, ds.split, len(ds), ds.num_classes) == (name, split, n, 1000)
        assert (ds.in_channels, ds.image_size, ds.levels) == (3, (size, size), 256)
        assert ds.data_verified is False and ds.info()["data_verified"] is False
        assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
        x, y = ds[0]
        assert x.shape == (3, size, size) and y.dtype == torch.int64
    expect = [b for _, b in written["train"]]                    # numeric order
    assert [k for k, _ in written["train"]] == sorted(batches)
    assert np.array_equal(train.images.numpy(),
                          np.concatenate([as_images(b, size) for b in expect]))
    assert np.array_equal(train.labels.numpy(), np.concatenate([b["labels"] for b in expect]) - 1)
    assert np.array_equal(test.images.numpy(), as_images(written["test"], size))
    assert np.array_equal(test.labels.numpy(), np.array(written["test"]["labels"]) - 1)
    # the row layout, pixel by pixel: red plane first, then green, then blue
    row, s2 = written["test"]["data"][1], size * size
    assert test.images[1, 0, 0, 1] == row[1]
    assert test.images[1, 1, 0, 0] == row[s2]
    assert test.images[1, 2, size - 1, size - 1] == row[3 * s2 - 1]
    assert test.images[1, 0, 1, 0] == row[size]


def test_channel_order_from_solid_colours(tmp_path):
    """A pure red, a pure green and a pure blue image stay so."""
    s2 = 32 * 32
    data = np.zeros((3, 3 * s2), np.uint8)
    for c in range(3):
        data[c, c * s2:(c + 1) * s2] = 255
    (tmp_path / "imagenet32").mkdir()
    np.savez(tmp_path / "imagenet32" / "val_data.npz", data=data, labels=[1, 2, 1000])
    ds = load("imagenet32", "test", data_dir=tmp_path)
    means = ds.images.float().mean((2, 3))
    assert torch.equal(means, 255 * torch.eye(3))
    assert ds.labels.tolist() == [0, 1, 999]


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("layout", ["nested", "flat"])
def test_other_layouts(tmp_path, size, layout):
    """root/imagenetS/<official folders> and root/imagenetS/*.npz."""
    written = write_imagenet(tmp_path, size, batches=(3, 9, 10), n=2, n_val=3, layout=layout)
    train = load(f"imagenet{size}", "train", data_dir=tmp_path)
    test = load(f"imagenet{size}", "test", data_dir=tmp_path)
    assert len(train) == 6 and len(test) == 3
    assert np.array_equal(train.images.numpy(),
                          np.concatenate([as_images(b, size) for _, b in written["train"]]))
    assert np.array_equal(test.labels.numpy(), np.array(written["test"]["labels"]) - 1)


def test_data_root_from_environment_and_one_batch(tmp_path, monkeypatch, capsys):
    """$PIXELCNN_DATA works as for every data set; a single train batch is enough."""
    write_imagenet(tmp_path, 32, batches=(4,), n=3)
    monkeypatch.setenv("PIXELCNN_DATA", str(tmp_path))
    assert len(load("imagenet32", "train")) == 3
    assert "1 of the 10 train batches found (batch 4; 3 images)" in capsys.readouterr().out


def test_names_and_aliases():
    assert D.canonical("ImageNet32") == "imagenet32" and D.canonical("imagenet-64") == "imagenet64"
    assert "imagenet32" in D.DATASETS and "imagenet64" in D.DATASETS
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*imagenet32.*imagenet64"):
        D.canonical("imagenet")


def test_levels_and_image_size(tmp_path):
    written = write_imagenet(tmp_path, 32, batches=(1,), n=3, n_val=2)
    images = torch.from_numpy(as_images(written["test"], 32))
    ds = load("imagenet32", "test", data_dir=tmp_path, levels=4)
    assert ds.levels == 4 and torch.equal(ds.images, (images.int() * 4 // 256).to(torch.uint8))
    ds = load("imagenet32", "train", data_dir=tmp_path, image_size=16, levels=16)
    assert ds.image_size == (16, 16) and len(ds) == 3 and int(ds.images.max()) < 16
    assert ds.num_classes == 1000


def test_quantize_every_value():
    """The chunked in-place quantisation is x * levels // 256 for every value and level."""
    x = torch.arange(256, dtype=torch.uint8).repeat(2, 1)
    for levels in range(2, 257):
        assert torch.equal(D.quantize(x.clone(), levels)[0],
                           (torch.arange(256) * levels // 256).to(torch.uint8)), levels


# ---------------------------------------------------------------- missing and damaged files

@pytest.mark.parametrize("size", [32, 64])
def test_missing_files_say_where_to_get_them(tmp_path, size):
    """download=True (the default) still never tries the network: a login is needed."""
    with pytest.raises(D.DataUnavailable) as e:
        D.load_dataset(f"imagenet{size}", "train", data_dir=tmp_path / "nowhere")
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    assert "https://image-net.org/download-images.php" in msg
    assert "Download downsampled image data (32x32, 64x64)" in msg and "login" in msg
    for folder in IMAGENET_TRAIN[size]:
        assert str(tmp_path / "nowhere" / folder) in msg                  # searched
        assert str(tmp_path / "nowhere" / f"imagenet{size}" / folder) in msg
        assert f"DIR/{folder}/" in msg                                     # the layout to use
    assert f"DIR/{IMAGENET_VAL[size]}/val_data.npz" in msg
    assert "train_data_batch_1" in msg and "--data-dir" in msg and "PIXELCNN_DATA" in msg
    # the test split alone is looked for in the validation folders
    write_imagenet(tmp_path / "trainonly", size, batches=(1,), n=1)
    (tmp_path / "trainonly" / IMAGENET_VAL[size] / "val_data.npz").unlink()
    with pytest.raises(D.DataUnavailable, match="val_data.npz"):
        load(f"imagenet{size}", "test", data_dir=tmp_path / "trainonly")


def damage(path, how):
    good = imagenet_batch(4, 32, seed=1)
    if how == "no labels":
        np.savez(path, data=good["data"], mean=good["mean"])
    elif how == "no data":
        np.savez(path, labels=good["labels"])
    elif how == "64x64 rows":
        np.savez(path, data=imagenet_batch(4, 64, seed=1)["data"], labels=good["labels"])
    elif how == "label count":
        np.savez(path, data=good["data"], labels=good["labels"][:3])
    elif how == "0-based labels":
        np.savez(path, data=good["data"], labels=[0, 5, 999, 3])
    elif how == "label 1001":
        np.savez(path, data=good["data"], labels=[1, 5, 1001, 3])
    elif how == "not a zip":
        path.write_bytes(b"not an npz file at all")
    elif how == "truncated":
        np.savez(path, **good)
        path.write_bytes(path.read_bytes()[:2000])


@pytest.mark.parametrize("how,match", [
    ("no labels", "no 'labels' array"), ("no data", "no 'data' array"),
    ("64x64 rows", "3\\*32\\*32 = 3072.*use --dataset imagenet64"),
    ("label count", "4 images but 'labels' has shape"),
    ("0-based labels", "0..999, not 1..1000 \\(0-based"),
    ("label 1001", "1..1001, not 1..1000"),
    ("not a zip", "not a readable .npz"), ("truncated", "not a readable")])
def test_damaged_files(tmp_path, how, match):
    write_imagenet(tmp_path, 32, batches=(1, 2), n=4)
    bad = tmp_path / IMAGENET_TRAIN[32][0] / "train_data_batch_2.npz"
    damage(bad, how)
    with pytest.raises(ValueError, match=match) as e:
        load("imagenet32", "train", data_dir=tmp_path)
    assert str(bad) in str(e.value) and "download it again" in str(e.value)


def test_a_batch_twice_is_refused(tmp_path):
    write_imagenet(tmp_path, 64, batches=(1, 6), n=1)
    np.savez(tmp_path / IMAGENET_TRAIN[64][1] / "train_data_batch_1.npz",
             **imagenet_batch(1, 64, seed=5))
    with pytest.raises(ValueError, match="train batch 1 .* twice"):
        load("imagenet64", "train", data_dir=tmp_path)


# ---------------------------------------------------------------- training on it

def test_class_conditional_training_and_evaluation(tmp_path):
    """pixelcnn.train --dataset imagenet32 --cond class, then pixelcnn.evaluate on its
    checkpoint: finite bits/dim, 1000 classes, data_verified false."""
    from pixelcnn.evaluate import main as evaluate_main
    from pixelcnn.train import main as train_main
    write_imagenet(tmp_path, 32, batches=(1, 2, 10), n=4, n_val=4)
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = train_main(["--dataset", "imagenet32", "--data-dir", str(tmp_path), "--preset",
                          "tiny", "--cond", "class", "--epochs", "1", "--batch-size", "4",
                          "--out", str(out), "--sample-every", "0", "--n-samples", "1",
                          "--progress", "off", "--device", "cpu"])
        assert math.isfinite(res["bits_per_dim"]) and res["n"] == 4
        assert res["dataset"] == "imagenet32" and res["data_verified"] is False
        assert res["config"]["num_classes"] == 1000 and res["config"]["in_channels"] == 3
        ev = evaluate_main(["--checkpoint", str(out / "checkpoint.pt"), "--data-dir",
                            str(tmp_path), "--progress", "off", "--device", "cpu"])
    assert ev["dataset"] == "imagenet32" and ev["n"] == 4 and ev["data_verified"] is False
    assert ev["bits_per_dim"] == pytest.approx(res["bits_per_dim"], rel=1e-4)
