"""Tiny on-disk data sets in the real formats (idx .gz, CIFAR pickles and tarball, Downsampled
ImageNet .npz batches, image folders), and where the real data sets live (../shared/datasets,
or $PIXELCNN_TEST_DATA)."""
import gzip
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(os.environ.get("PIXELCNN_TEST_DATA",
                             Path(__file__).parents[1] / ".." / "shared" / "datasets")).resolve()
needs_real_mnist = pytest.mark.skipif(
    not (SHARED / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"real MNIST not found under {SHARED} (set PIXELCNN_TEST_DATA)")
needs_real_fashion = pytest.mark.skipif(
    not (SHARED / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"real Fashion-MNIST not found under {SHARED} (set PIXELCNN_TEST_DATA)")


def idx_bytes(array: np.ndarray) -> bytes:
    """uint8 array -> idx file bytes (magic 0x08, ndim, big-endian sizes)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(root: Path, folder="MNIST/raw", n_train=40, n_test=12, size=8, seed=0):
    """The four idx .gz files under root/folder; returns the arrays written."""
    rng = np.random.default_rng(seed)
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        (d / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
        (d / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
        arrays[split] = (images, labels)
    return arrays


def cifar_batch(n, seed, name):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    return {b"batch_label": name.encode(), b"labels": labels, b"data": data}


def write_cifar(d: Path, n=6):
    """The six CIFAR-10 python batches (n images each) in folder d; returns them by name."""
    d.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches = {b: cifar_batch(n, i, b) for i, b in enumerate(names)}
    for b, content in batches.items():
        (d / b).write_bytes(pickle.dumps(content))
    return batches


def write_cifar_tarball(path: Path, n=6):
    """cifar-10-python.tar.gz with the batches under cifar-10-batches-py/."""
    batches = {f"data_batch_{i}": cifar_batch(n, i, "x") for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(n, 9, "test")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as t:
        for b, content in batches.items():
            blob = pickle.dumps(content)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{b}")
            info.size = len(blob)
            t.addfile(info, io.BytesIO(blob))
    return batches


def write_folder(d: Path, n=12, classes=("cats", "dogs"), mode="RGB", seed=0):
    """n PNG images of assorted sizes spread over class sub-folders (flat if classes=None)."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    for k in range(n):
        w, h = int(rng.integers(10, 40)), int(rng.integers(10, 40))
        shape = (h, w, 3) if mode == "RGB" else (h, w)
        img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
        sub = d / classes[k % len(classes)] if classes else d
        sub.mkdir(parents=True, exist_ok=True)
        img.save(sub / f"img{k:03d}.png")
    return d


IMAGENET_TRAIN = {32: ("Imagenet32_train_npz",),
                  64: ("Imagenet64_train_part1_npz", "Imagenet64_train_part2_npz")}
IMAGENET_VAL = {32: "Imagenet32_val_npz", 64: "Imagenet64_val_npz"}


def imagenet_batch(n, size, seed, train=True):
    """One Downsampled ImageNet batch as the originals hold it: data uint8 [n, 3*size*size]
    (all red values of an image, then green, then blue), labels a list of ints 1..1000 and,
    in train batches, the mean image."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3 * size * size), dtype=np.uint8)
    out = {"data": data, "labels": [int(v) for v in rng.integers(1, 1001, n)]}
    if train:
        out["mean"] = data.mean(0)
    return out


def write_imagenet(root: Path, size=32, batches=(1, 2, 10), n=5, n_val=4, layout="official"):
    """Downsampled ImageNet npz files (n images per train batch, numbered `batches`; n_val
    validation images) under root. layout: "official" (root/Imagenet32_train_npz/... and
    root/Imagenet32_val_npz/val_data.npz; 64x64: batches 1-5 in ..._part1_npz, the others in
    ..._part2_npz), "nested" (the same under root/imagenetSIZE/) or "flat" (every file in
    root/imagenetSIZE/). Returns {"train": [(number, batch)] in numeric order, "test": batch}."""
    base = root / f"imagenet{size}" if layout in ("nested", "flat") else root
    train_dirs = [base] * 2 if layout == "flat" else [base / f for f in IMAGENET_TRAIN[size]]
    val_dir = base if layout == "flat" else base / IMAGENET_VAL[size]
    out = {"train": []}
    for k in sorted(batches):
        batch = imagenet_batch(n, size, seed=k)
        d = train_dirs[0 if k <= 5 else -1]
        d.mkdir(parents=True, exist_ok=True)
        np.savez(d / f"train_data_batch_{k}.npz", **batch)
        out["train"].append((k, batch))
    out["test"] = imagenet_batch(n_val, size, seed=100, train=False)
    val_dir.mkdir(parents=True, exist_ok=True)
    np.savez(val_dir / "val_data.npz", **out["test"])
    return out


def write_codes(path: Path, n=20, size=4, channels=None, levels=512, num_classes=None, seed=0,
                dtype=np.int64):
    """A VQ-VAE's discrete codes in the format path's suffix names: .npy (the codes only), .npz
    (arrays codes and, with num_classes, labels) or .pt (a dict of tensors codes and labels,
    or with no num_classes the codes tensor alone). Codes [n, size, size], or [n, channels,
    size, size] with channels, uniform in [0, levels) with levels - 1 present (so the inferred
    levels is levels); labels in [0, num_classes). Returns (codes, labels or None)."""
    import torch
    rng = np.random.default_rng(seed)
    shape = (n, size, size) if channels is None else (n, channels, size, size)
    codes = rng.integers(0, levels, shape).astype(dtype)
    codes.flat[seed % codes.size] = levels - 1
    labels = rng.integers(0, num_classes, n) if num_classes else None
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        assert labels is None, "a .npy holds the codes only"
        np.save(path, codes)
    elif path.suffix == ".npz":
        np.savez(path, codes=codes, **({} if labels is None else {"labels": labels}))
    else:
        t = torch.from_numpy(codes)
        torch.save(t if labels is None else {"codes": t, "labels": torch.from_numpy(labels)},
                   path)
    return codes, labels
