"""Data sets: every format read from small fixtures, md5 verification, search paths and their
error messages, downloads (from file:// mirrors), quantisation, binarization, loaders, PNG grids;
and the real MNIST / Fashion-MNIST files when ../shared/datasets has them."""
import gzip
import hashlib
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from datafixtures import (SHARED, needs_real_fashion, needs_real_mnist, write_cifar,
                          write_cifar_tarball, write_folder, write_mnist)
from pixelcnn import data as D
from pixelcnn.images import make_grid, save_grid

def load(*args, **kw):
    """load_dataset, swallowing the md5 warnings that every fixture triggers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return D.load_dataset(*args, **kw)


# ---------------------------------------------------------------- MNIST-like (idx .gz)

@pytest.mark.parametrize("folder", ["MNIST/raw", "MNIST", "mnist", "."])
def test_mnist_layouts(tmp_path, folder):
    arrays = write_mnist(tmp_path, folder)
    for split in ("train", "test"):
        with pytest.warns(UserWarning, match="does not match the original MNIST"):
            ds = D.load_dataset("mnist", split, data_dir=tmp_path, download=False)
        images, labels = arrays[split]
        assert (ds.in_channels, ds.image_size, ds.levels, ds.num_classes) == (1, (8, 8), 256, 10)
        assert (ds.name, ds.split, ds.data_verified) == ("mnist", split, False)
        assert len(ds) == len(images)
        x, y = ds[3]
        assert x.dtype == torch.uint8 and x.shape == (1, 8, 8) and y.dtype == torch.int64
        assert np.array_equal(ds.images[:, 0].numpy(), images)
        assert np.array_equal(ds.labels.numpy(), labels)


def test_fashion_mnist_and_uncompressed_idx(tmp_path):
    arrays = write_mnist(tmp_path, "FashionMNIST/raw")
    for p in (tmp_path / "FashionMNIST/raw").iterdir():         # gunzip: still readable
        p.with_suffix("").write_bytes(gzip.decompress(p.read_bytes()))
        p.unlink()
    with pytest.warns(UserWarning, match="no known md5"):
        ds = D.load_dataset("fashion", "test", data_dir=tmp_path, download=False)
    assert ds.name == "fashion-mnist" and not ds.data_verified
    assert np.array_equal(ds.images[:, 0].numpy(), arrays["test"][0])


def test_md5_match_sets_verified(tmp_path, monkeypatch):
    write_mnist(tmp_path)
    raw = tmp_path / "MNIST/raw"
    sums = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in raw.iterdir()}
    monkeypatch.setitem(D.MD5, "MNIST", sums)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = D.load_dataset("mnist", "train", data_dir=tmp_path, download=False)
    assert ds.data_verified and ds.info()["data_verified"] is True


def test_data_root_order(tmp_path, monkeypatch):
    """--data-dir, else $PIXELCNN_DATA, else ./data."""
    write_mnist(tmp_path / "env", n_test=5)
    write_mnist(tmp_path / "cwd" / "data", n_test=7)
    write_mnist(tmp_path / "arg", n_test=9)
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.delenv("PIXELCNN_DATA", raising=False)
    assert len(load("mnist", "test", download=False)) == 7
    monkeypatch.setenv("PIXELCNN_DATA", str(tmp_path / "env"))
    assert len(load("mnist", "test", download=False)) == 5
    assert len(load("mnist", "test", data_dir=tmp_path / "arg", download=False)) == 9


def test_levels_and_resize(tmp_path):
    arrays = write_mnist(tmp_path)
    ds = load("mnist", "train", data_dir=tmp_path, levels=4, download=False)
    assert ds.levels == 4
    assert np.array_equal(ds.images[:, 0].numpy(), arrays["train"][0].astype(int) * 4 // 256)
    ds = load("mnist", "test", data_dir=tmp_path, image_size=5, download=False)
    assert ds.image_size == (5, 5) and ds.images.dtype == torch.uint8


def test_binarized_mnist(tmp_path):
    write_mnist(tmp_path, n_train=40, n_test=12)
    path = tmp_path / "MNIST/raw/train-images-idx3-ubyte.gz"          # constant intensity 64
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 3, 0, 0, 0, 40, 0, 0, 0, 8, 0, 0, 0, 8])
                                   + bytes([64]) * 40 * 64))
    train = load("binarized-mnist", "train", data_dir=tmp_path, download=False, seed=3)
    assert train.levels == 2 and train.name == "binarized-mnist"
    first = train[list(range(40))][0].clone()
    assert set(first.unique().tolist()) <= {0, 1}
    assert abs(first.float().mean().item() - 64 / 255) < 0.03           # Bernoulli(64/255)
    train.set_epoch(0)
    assert torch.equal(train[list(range(40))][0], first)               # same epoch, same draw
    train.set_epoch(1)
    assert not torch.equal(train[list(range(40))][0], first)           # resampled each epoch
    t1 = load("bmnist", "test", data_dir=tmp_path, download=False)
    t2 = load("binarized-mnist", "test", data_dir=tmp_path, download=False, seed=99)
    t2.set_epoch(5)
    assert torch.equal(t1[list(range(12))][0], t2[list(range(12))][0])  # fixed test set
    with pytest.raises(ValueError, match="levels=2"):
        load("binarized-mnist", "test", data_dir=tmp_path, levels=4, download=False)


def test_corrupt_and_truncated_idx(tmp_path):
    write_mnist(tmp_path)
    p = tmp_path / "MNIST/raw/t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:30])
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        load("mnist", "test", data_dir=tmp_path, download=False)
    p.write_bytes(gzip.compress(bytes([0, 0, 8, 3, 0, 0, 0, 9, 0, 0, 0, 8, 0, 0, 0, 8, 1, 2])))
    with pytest.raises(ValueError, match="truncated"):
        load("mnist", "test", data_dir=tmp_path, download=False)


# ---------------------------------------------------------------- missing data, downloads

def test_missing_data_names_every_path(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "MNIST_URLS", ["http://127.0.0.1:9/"])     # refused at once
    with pytest.raises(D.DataUnavailable) as e:
        D.load_dataset("mnist", "train", data_dir=tmp_path / "nowhere")
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    for sub in ("MNIST/raw", "MNIST", "mnist"):
        assert str(tmp_path / "nowhere" / sub) in msg
    assert "train-images-idx3-ubyte.gz" in msg and "127.0.0.1:9" in msg
    assert "--data-dir" in msg and "PIXELCNN_DATA" in msg and "from --data-dir" in msg
    with pytest.raises(D.DataUnavailable, match="download=False"):
        D.load_dataset("fashion-mnist", "test", data_dir=tmp_path, download=False)


def test_missing_cifar_points_to_the_builder(tmp_path, monkeypatch):
    """The hint names the builder in the README's folder (D.SHARED, ../shared/datasets beside
    a checkout; here a stand-in, so that the test does not depend on where it is cloned)."""
    shared = tmp_path / "shared"
    (shared / "cifar10").mkdir(parents=True)
    (shared / "cifar10" / "build_cifar10.py").write_text("")
    monkeypatch.setattr(D, "SHARED", shared)
    for name in ("cifar", "cifar-exact"):
        with pytest.raises(D.DataUnavailable) as e:
            D.load_dataset(name, "test", data_dir=tmp_path, download=False)
        assert str(shared / "cifar10" / "build_cifar10.py") in str(e.value)
        assert "cifar-10-batches-py" in str(e.value)
    assert str(tmp_path / "cifar10" / "cifar-10-python.tar.gz") in str(e.value) or name == "cifar-exact"


def test_download_from_mirror(tmp_path, monkeypatch):
    """Files come from the first mirror that serves them with the right md5 (file:// here)."""
    write_mnist(tmp_path / "mirror", folder=".")
    sums = {p.name: hashlib.md5(p.read_bytes()).hexdigest()
            for p in (tmp_path / "mirror").iterdir()}
    monkeypatch.setitem(D.MD5, "MNIST", sums)
    monkeypatch.setattr(D, "MNIST_URLS", ["http://127.0.0.1:9/", (tmp_path / "mirror").as_uri() + "/"])
    ds = D.load_dataset("mnist", "test", data_dir=tmp_path / "root")
    assert ds.data_verified and len(ds) == 12
    assert (tmp_path / "root/MNIST/raw/t10k-images-idx3-ubyte.gz").is_file()
    # a mirror serving different bytes is rejected
    monkeypatch.setitem(D.MD5, "MNIST", {k: "0" * 32 for k in sums})
    with pytest.raises(D.DataUnavailable, match="md5 mismatch"):
        D.load_dataset("mnist", "train", data_dir=tmp_path / "other")


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*mnist.*cifar-exact"):
        D.load_dataset("imagenet", "train")
    with pytest.raises(ValueError, match="split"):
        D.load_dataset("mnist", "valid")


# ---------------------------------------------------------------- CIFAR-10

@pytest.mark.parametrize("where", ["cifar-10-batches-py", "cifar10/cifar-10-batches-py"])
def test_cifar_folder(tmp_path, where):
    batches = write_cifar(tmp_path / where)
    with pytest.warns(UserWarning, match="original CIFAR-10"):
        train = D.load_dataset("cifar10", "train", data_dir=tmp_path, download=False)
    test = load("cifar", "test", data_dir=tmp_path, download=False)
    assert (train.in_channels, train.image_size, len(train), len(test)) == (3, (32, 32), 30, 6)
    assert not train.data_verified and train.num_classes == 10
    assert np.array_equal(train.images[6:12].reshape(6, -1).numpy(), batches["data_batch_2"][b"data"])
    assert test.labels.tolist() == batches["test_batch"][b"labels"]


def test_cifar_tarball(tmp_path):
    batches = write_cifar_tarball(tmp_path / "cifar-10-python.tar.gz")
    test = load("cifar", "test", data_dir=tmp_path, download=False)
    assert np.array_equal(test.images.reshape(6, -1).numpy(), batches["test_batch"][b"data"])
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b not a tarball")
    with pytest.raises(ValueError, match="not a readable CIFAR-10 tarball"):
        load("cifar", "test", data_dir=tmp_path, download=False)


def test_cifar_exact_subset(tmp_path, monkeypatch):
    batches = write_cifar(tmp_path / "cifar10/cifar-10-exact-subset/cifar-10-batches-py")
    with pytest.warns(UserWarning, match="not the exact CIFAR-10 subset"):
        ds = D.load_dataset("cifar-exact", "test", data_dir=tmp_path, download=False)
    assert not ds.data_verified and ds.name == "cifar-exact"
    content = batches["test_batch"]
    got = hashlib.md5(content[b"data"].tobytes()
                      + np.array(content[b"labels"], np.uint8).tobytes()).hexdigest()
    monkeypatch.setitem(D.MD5["cifar-exact"], "test_batch", got)      # the known contents
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert D.load_dataset("cifar-exact", "test", data_dir=tmp_path).data_verified
    (tmp_path / "cifar10/cifar-10-exact-subset/cifar-10-batches-py/test_batch").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable CIFAR-10 batch"):
        load("cifar-exact", "test", data_dir=tmp_path)


# ---------------------------------------------------------------- image folders

def test_image_folder(tmp_path):
    write_folder(tmp_path / "imgs", n=20)
    train = D.load_dataset(f"folder:{tmp_path / 'imgs'}", "train", image_size=8, levels=16)
    test = D.load_dataset(f"folder:{tmp_path / 'imgs'}", "test", image_size=8, levels=16)
    assert (len(train), len(test)) == (18, 2)                      # every 10th image is test
    assert (train.in_channels, train.image_size, train.num_classes) == (3, (8, 8), 2)
    assert int(train.images.max()) < 16 and train.levels == 16 and not train.data_verified
    assert set(train.labels.tolist()) == {0, 1}


def test_image_folder_crop_split_and_grey(tmp_path):
    d = tmp_path / "f"
    write_folder(d / "train", n=4, classes=None, mode="L")
    write_folder(d / "test", n=3, classes=None, mode="L", seed=1)
    wide = np.zeros((10, 30), np.uint8)
    wide[:, 10:20] = 200                                           # the centre third is bright
    Image.fromarray(wide).save(d / "test" / "wide.png")
    test = D.load_dataset(f"folder:{d}", "test", image_size=10)
    assert (len(test), test.in_channels, test.num_classes) == (4, 1, None)
    centre = test.images[-1, 0]                                    # sorted last: wide.png
    assert centre.float().mean() > 150                             # centre-cropped, not squeezed
    assert len(D.load_dataset(f"folder:{d}", "train")) == 4
    assert D.load_dataset(f"folder:{d}", "train").image_size == (32, 32)


def test_image_folder_errors(tmp_path):
    with pytest.raises(D.DataUnavailable, match="does not exist"):
        D.load_dataset(f"folder:{tmp_path / 'missing'}", "train")
    write_folder(tmp_path / "few", n=3)
    with pytest.raises(D.DataUnavailable, match="every 10th"):
        D.load_dataset(f"folder:{tmp_path / 'few'}", "test")


# ---------------------------------------------------------------- loaders and grids

def test_make_loader(tmp_path):
    write_mnist(tmp_path, n_train=40)
    ds = load("mnist", "train", data_dir=tmp_path, download=False)
    batches = list(D.make_loader(ds, 16))
    assert [len(x) for x, _ in batches] == [16, 16, 8]
    x, y = batches[0]
    assert x.dtype == torch.uint8 and x.shape == (16, 1, 8, 8) and y.shape == (16,)
    assert torch.equal(torch.cat([x for x, _ in batches]), ds.images)
    order = lambda seed: torch.cat([y for _, y in D.make_loader(ds, 16, shuffle=True, seed=seed)])
    assert torch.equal(order(1), order(1)) and not torch.equal(order(1), order(2))
    assert sorted(order(1).tolist()) == sorted(ds.labels.tolist())
    assert len(ds.take(5)) == 5 and ds.take(None) is ds
    x2 = torch.cat([x for x, _ in D.make_loader(ds, 16, workers=1)])  # batches from a worker
    assert torch.equal(x2, ds.images)


def test_save_grid(tmp_path):
    imgs = torch.zeros(5, 1, 4, 3, dtype=torch.long)
    imgs[2] = 1
    path = save_grid(imgs, tmp_path / "g" / "grid.png", levels=2, nrow=3, pad=1)
    a = np.asarray(Image.open(path))
    assert a.shape == (2 * 5 + 1, 3 * 4 + 1)                        # 2 rows x 3 columns
    assert a[1:5, 9:12].min() == 255 and a[1:5, 1:4].max() == 0     # image 2 white, 0 black
    rgb = make_grid(torch.randint(0, 256, (4, 3, 6, 6)), levels=256)
    assert rgb.shape == (2 * 8 + 2, 2 * 8 + 2, 3)
    with pytest.raises(ValueError, match="N, 1 or 3, H, W"):
        make_grid(torch.zeros(2, 2, 4, 4, dtype=torch.long), levels=2)


# ---------------------------------------------------------------- the real files

@pytest.mark.data
@needs_real_mnist
def test_real_mnist():
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # the originals: no md5 warning
        train = D.load_dataset("mnist", "train", data_dir=SHARED, download=False)
        test = D.load_dataset("binarized-mnist", "test", data_dir=SHARED, download=False)
    assert (len(train), len(test), train.image_size) == (60000, 10000, (28, 28))
    assert train.data_verified and test.data_verified
    assert train.labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert int(train.images.max()) == 255 and set(test[list(range(100))][0].unique().tolist()) == {0, 1}


@pytest.mark.data
@needs_real_fashion
def test_real_fashion_mnist():
    test = D.load_dataset("fashion-mnist", "test", data_dir=SHARED, download=False)
    assert len(test) == 10000 and test.data_verified and test.labels[:3].tolist() == [9, 2, 1]


@pytest.mark.data
@pytest.mark.skipif(not (SHARED / "cifar10" / "build_cifar10.py").is_file(), reason="no builder")
def test_shared_cifar_message():
    """../shared/datasets has only the CIFAR-10 builder: the error says how to use it."""
    with pytest.raises(D.DataUnavailable, match="build_cifar10.py"):
        D.load_dataset("cifar", "test", data_dir=SHARED, download=False)
