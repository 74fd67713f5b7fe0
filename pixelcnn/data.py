"""Data sets as integer images: MNIST, binarized MNIST, Fashion-MNIST, CIFAR-10, downsampled
ImageNet (32x32, 64x64), image folders, and a VQ-VAE's discrete codes (codes:FILE).

Every data set is held in memory as one integer tensor [N, C, H, W] of sub-pixels in
[0, levels) (uint8; codes with more than 256 levels: int16, or int32 above 2**15) plus long
labels [N], and yields (x, y) pairs. Files are found under one data root (`data_dir`, else
$PIXELCNN_DATA, else ./data), in our layout or torchvision's; where a network exists,
missing files are downloaded from the standard URLs. Every file is checked against the
original's md5: a mismatch warns, and `dataset.data_verified` (which every result must carry)
is True only when every file matched a known checksum. Downsampled ImageNet is never
downloaded (image-net.org needs a login) and has no known checksums; codes files have none.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import re
import tarfile
import urllib.request
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Optional

import numpy as np
import torch

MNIST_URLS = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
FASHION_URLS = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
IDX_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
MD5 = {  # the sums torchvision checks
    "MNIST": {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
              "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
              "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
              "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
    "FashionMNIST": {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                     "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                     "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                     "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
    "cifar": {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
              "data_batch_1": "c99cafc152244af753f735de768cd75f",
              "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
              "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
              "data_batch_4": "634d18415352ddfa80567beed471001a",
              "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
              "test_batch": "40351d587109b95175f43aff81a1287e"},
    # The exact subset (../shared/datasets/cifar10/build_cifar10.py: the first 1,017 original
    # images of every batch) is re-pickled, so its files have no original sums: these are
    # md5(data bytes + uint8 labels) of its contents.
    "cifar-exact": {"data_batch_1": "269df4d92718901bed09021908159da9",
                    "data_batch_2": "03d298056a1119bd7f1860bfd7500e79",
                    "data_batch_3": "d0ab1b83cfe83d6414126367cc6045be",
                    "data_batch_4": "30298118fd06e2c87eb9fb942ec8fa53",
                    "data_batch_5": "a3e99a3bb47a79690e3309f326956b85",
                    "test_batch": "9cc4b8b1fd1424b0f6c7bb4f3729a6c8"},
}
CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# Downsampled ImageNet (Chrabaszcz, Loshchilov & Hutter 2017), the npz archives unzipped:
# the official folder names of each split; the train batches train_data_batch_1..10.npz are
# split over the folders (64x64: part1 and part2), the test split is val_data.npz.
IMAGENET_FOLDERS = {32: {"train": ("Imagenet32_train_npz",), "test": ("Imagenet32_val_npz",)},
                    64: {"train": ("Imagenet64_train_part1_npz", "Imagenet64_train_part2_npz"),
                         "test": ("Imagenet64_val_npz",)}}
IMAGENET_URL = "https://image-net.org/download-images.php"
IMAGENET_TRAIN_BATCHES = 10
IMAGENET_CLASSES = 1000
DATASETS = ("mnist", "binarized-mnist", "fashion-mnist", "cifar", "cifar-exact", "imagenet32",
            "imagenet64", "folder:PATH", "codes:PATH")
PATH_DATASETS = tuple(d[:-len("PATH")] for d in DATASETS if d.endswith(":PATH"))   # prefixes
CODE_EXTS = (".npy", ".npz", ".pt")
CODES_TEST_FRACTION = 0.05   # codes:FILE without a test file: the last 5% are the test split
ALIASES = {"bmnist": "binarized-mnist", "binary-mnist": "binarized-mnist",
           "fashion": "fashion-mnist", "fmnist": "fashion-mnist", "cifar10": "cifar",
           "cifar10-exact": "cifar-exact", "imagenet-32": "imagenet32",
           "imagenet-64": "imagenet64"}
TIMEOUT = 10  # seconds per download request: never hang without a network
SHARED = Path("../shared/datasets")   # the offline copies beside a checkout (the README's path)


class DataUnavailable(FileNotFoundError):
    """The data set's files are not on disk and could not be downloaded."""


class ImageDataset(torch.utils.data.Dataset):
    """Integer images in memory: item i is (x [C, H, W] in [0, levels), y long).

    `images` is uint8 [N, C, H, W] for up to 256 levels; codes with more levels are int16 (up
    to 2**15 levels) or int32 (see `code_dtype`): consumers take .long() where they need it.

    Indexing with a list of indices returns a whole batch at once (see `make_loader`).
    `binarize`: the images hold intensities 0..255 and each item is a Bernoulli(intensity/255)
    draw; the training split redraws them every epoch (`set_epoch`), other splits draw once
    from a fixed seed so the test set is the same every time.
    """

    def __init__(self, images, labels, *, name, split, levels, num_classes, data_verified,
                 binarize=False, seed=0):
        self.images, self.labels = images, labels   # uint8/int16/int32 [N, C, H, W], long [N]
        self.name, self.split, self.levels = name, split, levels
        self.num_classes, self.data_verified = num_classes, data_verified
        self.binarize, self.seed = binarize, seed
        self.in_channels, self.image_size = images.shape[1], tuple(images.shape[2:])
        self.set_epoch(0, force=True)

    def set_epoch(self, epoch: int, force: bool = False):
        """Redraw the dynamic binarization for this epoch (training split only)."""
        if not self.binarize:
            self._x = self.images
            return
        if not (force or self.split == "train"):
            return
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        u = torch.randint(0, 255, self.images.shape, generator=g, dtype=torch.uint8)
        self._x = (u < self.images).to(torch.uint8)         # P(1) = intensity / 255

    def take(self, n: Optional[int]) -> "ImageDataset":
        """The first n images (all if n is None)."""
        if n is None or n >= len(self):
            return self
        return ImageDataset(self.images[:n], self.labels[:n], name=self.name, split=self.split,
                            levels=self.levels, num_classes=self.num_classes,
                            data_verified=self.data_verified, binarize=self.binarize,
                            seed=self.seed)

    def info(self) -> dict:
        """What a result computed on this data must record."""
        return {"dataset": self.name, "split": self.split, "n": len(self), "levels": self.levels,
                "image_size": list(self.image_size), "data_verified": self.data_verified}

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self._x[i], self.labels[i]


# ---------------------------------------------------------------------------- locating files

def data_root(data_dir=None) -> Path:
    """--data-dir, else $PIXELCNN_DATA, else ./data."""
    return Path(data_dir or os.environ.get("PIXELCNN_DATA") or "data").expanduser()


def md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, expected: Optional[str], what: str) -> bool:
    """True if path's md5 is the original's; otherwise warn and return False."""
    got = md5(path) if expected else None
    if expected and got == expected:
        return True
    why = f"md5 {got} does not match the original {what} file ({expected})" if expected \
        else f"there is no known md5 for it ({what})"
    warnings.warn(f"{path}: {why}; results computed on this data are marked "
                  "data_verified=false", stacklevel=3)
    return False


def download(urls, dest: Path, expected: Optional[str]) -> Optional[str]:
    """Fetch dest.name from the first mirror that serves it with the right md5; None if done,
    else the reason it failed. Short timeouts: no network means a quick failure."""
    tmp = dest.with_name(dest.name + ".part")
    errors = []
    for base in urls:
        url = base + dest.name if base.endswith("/") else base
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
                dest.parent.mkdir(parents=True, exist_ok=True)   # only once a server answers
                with open(tmp, "wb") as f:
                    while block := r.read(1 << 20):
                        f.write(block)
        except OSError as e:       # URLError, timeouts, refused connections, disk errors
            errors.append(f"{url}: {getattr(e, 'reason', e)}")
            continue
        if expected and md5(tmp) != expected:
            errors.append(f"{url}: md5 mismatch")
            continue
        os.replace(tmp, dest)
        print(f"downloaded {url} -> {dest}")
        return None
    tmp.unlink(missing_ok=True)
    return "; ".join(errors)


def root_origin(data_dir=None) -> str:
    return "--data-dir" if data_dir else "$PIXELCNN_DATA" if os.environ.get("PIXELCNN_DATA") \
        else "the default ./data"


def not_found(what: str, root: Path, origin: str, searched, reason: str,
              extra: str = "") -> DataUnavailable:
    lines = [f"{what} not found under the data root {root} (from {origin}). Searched:"]
    lines += [f"  {p}" for p in searched]
    lines.append(f"Download: {reason}.")
    if extra:
        lines.append(extra)
    example = SHARED if SHARED.is_dir() and SHARED.resolve() != root.resolve() and not extra \
        else None
    lines.append("Fix: pass --data-dir DIR" + (f" (e.g. --data-dir {SHARED})" if example else "")
                 + " or set PIXELCNN_DATA=DIR, where DIR holds the files in one of the layouts "
                 "above.")
    return DataUnavailable("\n".join(lines))


# ---------------------------------------------------------------------------- MNIST-like

def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzipped or not): images uint8 [N, H, W] or labels uint8 [N]."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path} is a corrupt or truncated gzip file ({e}); delete it "
                             "and download it again") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 8:
        raise ValueError(f"{path} is not a uint8 idx file (bad header {raw[:4].hex()})")
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: header says {shape}, found {data.size} values")
    return data.reshape(shape)


def load_idx_pair(folder: str, split: str, root: Path, origin: str, download_ok: bool, urls):
    """images uint8 [N, 1, 28, 28], labels, verified for MNIST ("MNIST") or "FashionMNIST"."""
    names = IDX_FILES[split]
    dirs = [root / folder / "raw", root / folder, root / folder.lower(), root]

    def find():
        for d in dirs:
            found = [d / n if (d / n).is_file() else d / n[:-3] for n in names]
            if all(p.is_file() for p in found):
                return found
    paths = find()
    reason = "disabled (download=False)"
    if paths is None and download_ok:
        reason = None
        for n in names:
            reason = reason or download(urls, dirs[0] / n, MD5[folder][n])
        paths = find()
    if paths is None:
        raise not_found(f"{folder} ({split} split)", root, origin,
                        [f"{d}/{{{', '.join(names)}}}" for d in dirs], reason or "failed")
    ok = all([verify(p, MD5[folder].get(p.name), folder) for p in paths])   # warn for each
    images, labels = (read_idx(p) for p in paths)
    return torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.astype(np.int64)), ok


# ---------------------------------------------------------------------------- CIFAR-10

def unpickle_batch(blob: bytes, where):
    """A CIFAR-10 python batch -> data uint8 [N, 3, 32, 32], labels int64 [N]."""
    try:
        d = pickle.loads(blob, encoding="bytes")
        data = np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(d[b"labels"], np.int64)
        assert len(labels) == len(data)
    except Exception as e:   # unpickling errors, missing keys, wrong sizes
        raise ValueError(f"{where} is not a readable CIFAR-10 batch ({type(e).__name__}: "
                         f"{str(e)[:100]}); delete it and rebuild or download it") from None
    return data, labels


def load_cifar(split: str, root: Path, origin: str, download_ok: bool, exact: bool):
    """images uint8 [N, 3, 32, 32], labels, verified; from a batches folder or the tarball."""
    batches = CIFAR_BATCHES[split]
    if exact:
        dirs = [root / "cifar-10-exact-subset" / "cifar-10-batches-py",
                root / "cifar10" / "cifar-10-exact-subset" / "cifar-10-batches-py"]
        tars = []
    else:
        dirs = [root / "cifar-10-batches-py", root / "cifar10" / "cifar-10-batches-py",
                root / "CIFAR10" / "cifar-10-batches-py"]
        tars = [root / "cifar-10-python.tar.gz", root / "cifar10" / "cifar-10-python.tar.gz"]

    def find():
        for d in dirs:
            if all((d / b).is_file() for b in batches):
                return d
        return next((t for t in tars if t.is_file()), None)
    where = find()
    reason = "disabled (download=False)" if not exact else \
        "not available (the exact subset is built locally, see below)"
    if where is None and download_ok and not exact:
        reason = download([CIFAR_URL], tars[0], MD5["cifar"]["cifar-10-python.tar.gz"])
        if reason is None:
            with tarfile.open(tars[0]) as t:
                t.extractall(root, filter="data")
        where = find()
    if where is None:
        builder = SHARED / "cifar10" / "build_cifar10.py"
        hint = (f"CIFAR-10 exists here only as stand-ins: build them as the README does, "
                f"`python {builder} data`, and use the default root ./data (or --data-dir "
                "data). It writes the hybrid full set, whose md5s do NOT match, and the exact "
                "subset that --dataset cifar-exact reads." if builder.is_file() else "")
        raise not_found(f"CIFAR-10{' exact subset' if exact else ''} ({split} split)", root, origin,
                        [f"{d}/{{{', '.join(batches)}}}" for d in dirs] + [str(t) for t in tars],
                        reason or "failed", hint)
    parts, ok = [], True
    if where.is_dir():
        for b in batches:
            blob = (where / b).read_bytes()
            data, labels = unpickle_batch(blob, where / b)
            if exact:
                got = hashlib.md5(data.tobytes() + labels.astype(np.uint8).tobytes()).hexdigest()
                if got != MD5["cifar-exact"][b]:
                    ok = False
                    warnings.warn(f"{where / b}: contents (md5 {got}) are not the exact CIFAR-10 "
                                  "subset; results computed on this data are marked "
                                  "data_verified=false", stacklevel=2)
            else:
                ok &= verify(where / b, MD5["cifar"][b], "CIFAR-10")
            parts.append((data, labels))
    else:
        ok = verify(where, MD5["cifar"][where.name], "CIFAR-10")
        try:
            with tarfile.open(where) as t:
                for b in batches:
                    blob = t.extractfile(f"cifar-10-batches-py/{b}").read()
                    parts.append(unpickle_batch(blob, f"{where}:{b}"))
        except (tarfile.TarError, OSError, EOFError, KeyError, zlib.error) as e:
            raise ValueError(f"{where} is not a readable CIFAR-10 tarball ({e}); delete it and "
                             "download it again") from None
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    return images, labels, ok


# ---------------------------------------------------------------------------- ImageNet 32/64

def imagenet_dirs(size: int, split: str, root: Path):
    """The candidate layouts, in search order, each a tuple of folders read together: the
    official folder names under root and under root/imagenetS, then root/imagenetS itself."""
    official = IMAGENET_FOLDERS[size][split]
    sub = root / f"imagenet{size}"
    return [tuple(root / f for f in official), tuple(sub / f for f in official), (sub,)]


def imagenet_files(size: int, split: str, root: Path):
    """The split's .npz files in the first layout that has any (train batches sorted by number:
    batch_10 after batch_9, any subset of them), else None."""
    for dirs in imagenet_dirs(size, split, root):
        if split == "test":
            files = [d / "val_data.npz" for d in dirs if (d / "val_data.npz").is_file()]
            if files:
                return files[:1]
            continue
        numbered = {}
        for d in dirs:
            for f in d.glob("train_data_batch_*.npz") if d.is_dir() else ():
                m = re.fullmatch(r"train_data_batch_(\d+)\.npz", f.name)
                if not (m and f.is_file()):
                    continue
                k = int(m.group(1))
                if k in numbered:
                    raise ValueError(f"train batch {k} of ImageNet{size}x{size} is there twice, "
                                     f"{numbered[k]} and {f}: delete one of them")
                numbered[k] = f
        if numbered:
            return [numbered[k] for k in sorted(numbered)]
    return None


def npy_header(f):
    """(shape, dtype) from the header of an open .npy file; None for header versions numpy
    reads only whole (3.0)."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        return None
    return shape, dtype


def npz_shape(z: zipfile.ZipFile, key: str, path: Path):
    """(shape, dtype) of array `key` in an open .npz without reading its values."""
    with z.open(key + ".npy") as f:
        header = npy_header(f)
    if header is None:      # rare (utf-8 headers): read the array itself
        with np.load(path, allow_pickle=False) as npz:
            a = npz[key]
        header = a.shape, a.dtype
    return header


def imagenet_batch_info(path: Path, size: int):
    """A Downsampled ImageNet .npz checked without reading its images: (number of images,
    labels 0-based int64). ValueError naming the file and the fix if it is not one."""
    fix = (f"delete it and download it again from {IMAGENET_URL} (the ImageNet{size}x{size} "
           "npz archives)")
    try:
        with zipfile.ZipFile(path) as z:
            keys = {n[:-4] for n in z.namelist() if n.endswith(".npy")}
            missing = [k for k in ("data", "labels") if k not in keys]
            if missing:
                raise ValueError(f"{path} is not a Downsampled ImageNet batch: it has no "
                                 f"{' or '.join(repr(k) for k in missing)} array (it holds: "
                                 f"{', '.join(sorted(keys)) or 'nothing'}); {fix}")
            shape, dtype = npz_shape(z, "data", path)
        with np.load(path, allow_pickle=False) as npz:
            labels = np.asarray(npz["labels"])
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path} is not a readable .npz file ({type(e).__name__}: "
                         f"{str(e)[:100]}); {fix}") from None
    except ValueError as e:
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path} is not a readable Downsampled ImageNet batch "
                         f"({str(e)[:100]}); {fix}") from None
    row = 3 * size * size
    if len(shape) != 2 or shape[1] != row:
        other = {3 * s * s: s for s in (8, 16, 32, 64)}.get(shape[-1] if shape else None)
        hint = f" (rows of {other}x{other} images: use --dataset imagenet{other})" \
            if other and other != size and other in IMAGENET_FOLDERS else \
            f" (rows of {other}x{other} images)" if other and other != size else ""
        raise ValueError(f"{path}: 'data' has shape {tuple(shape)}, but ImageNet{size}x{size} "
                         f"rows hold 3*{size}*{size} = {row} values, shape [N, {row}]{hint}; "
                         f"{fix}")
    if not (np.issubdtype(dtype, np.integer) or dtype == np.bool_):
        raise ValueError(f"{path}: 'data' is {dtype}, not uint8 pixel values; {fix}")
    if labels.ndim != 1 or labels.shape[0] != shape[0]:
        raise ValueError(f"{path}: {shape[0]} images but 'labels' has shape "
                         f"{tuple(labels.shape)}; {fix}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: 'labels' are {labels.dtype}, not integers 1..1000; {fix}")
    if len(labels) and (labels.min() < 1 or labels.max() > IMAGENET_CLASSES):
        zero = " (0-based? the official files count classes from 1)" \
            if labels.min() == 0 and labels.max() < IMAGENET_CLASSES else ""
        raise ValueError(f"{path}: labels range over {labels.min()}..{labels.max()}, not "
                         f"1..{IMAGENET_CLASSES}{zero}; {fix}")
    return shape[0], labels.astype(np.int64) - 1


def load_imagenet(size: int, split: str, root: Path, origin: str):
    """images uint8 [N, 3, size, size], labels 0..999, verified (always False: no known sums).

    The batches are read one at a time into one preallocated tensor, so the peak memory is
    the data set plus one batch file: ImageNet32 train is 1.28M x 3 KB = 3.8 GB, ImageNet64
    train 1.28M x 12 KB = 15.1 GB (plus its largest batch, about 1.6 GB, while loading)."""
    files = imagenet_files(size, split, root)
    if files is None:
        folders = IMAGENET_FOLDERS[size]
        wanted = "{train_data_batch_1..10.npz}" if split == "train" else "val_data.npz"
        searched = [f"{d}/{wanted}" for dirs in imagenet_dirs(size, split, root) for d in dirs]
        train = " and ".join(f"DIR/{f}/" for f in folders["train"])
        layout = (f"Put the unzipped npz archives in this layout: {train} holding "
                  f"train_data_batch_1.npz .. train_data_batch_10.npz"
                  f"{' between them' if len(folders['train']) > 1 else ''}, and "
                  f"DIR/{folders['test'][0]}/val_data.npz (or all the .npz files directly in "
                  f"DIR/imagenet{size}/). Any subset of the train batches will do for a try.")
        raise not_found(f"Downsampled ImageNet {size}x{size} ({split} split)", root, origin,
                        searched, "not possible, the files need an image-net.org login: sign "
                        f"in at {IMAGENET_URL} and use \"Download downsampled image data "
                        "(32x32, 64x64)\"", layout)
    infos = [imagenet_batch_info(f, size) for f in files]
    n = sum(k for k, _ in infos)
    if split == "train":
        numbers = [int(re.search(r"\d+", f.name).group()) for f in files]
        folders = sorted({str(f.parent) for f in files})
        print(f"imagenet{size}: {len(files)} of the {IMAGENET_TRAIN_BATCHES} train batches "
              f"found (batch {', '.join(map(str, numbers))}; {n:,} images) in "
              f"{', '.join(folders)}" + ("" if len(files) >= IMAGENET_TRAIN_BATCHES else
                                         ": a subset, not the full ImageNet training set"),
              flush=True)
    ok = verify(files[0].parent, None, f"Downsampled ImageNet {size}x{size}")
    images = torch.empty((n, 3, size, size), dtype=torch.uint8)
    labels = torch.from_numpy(np.concatenate([lab for _, lab in infos]))
    start = 0
    for f, (k, _) in zip(files, infos):
        try:
            with np.load(f, allow_pickle=False) as npz:
                data = npz["data"]
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as e:
            raise ValueError(f"{f} is not a readable .npz file ({type(e).__name__}: "
                             f"{str(e)[:100]}); delete it and download it again from "
                             f"{IMAGENET_URL}") from None
        if data.dtype != np.uint8:
            if data.size and (data.min() < 0 or data.max() > 255):
                raise ValueError(f"{f}: 'data' values range over {data.min()}..{data.max()}, "
                                 f"not 0..255; delete it and download it again from "
                                 f"{IMAGENET_URL}")
            data = data.astype(np.uint8)
        # row = all size*size red values, then green, then blue
        images[start:start + k] = torch.from_numpy(data.reshape(k, 3, size, size))
        start += k
        del data
    return images, labels, ok


# ---------------------------------------------------------------------------- image folders

def load_folder(path: Path, split: str, image_size: int):
    """Images under path (or path/<split> if it exists), resized (shorter side) and
    centre-cropped to image_size. Class = the sub-folder an image is in (none if flat).
    Without path/train and path/test, every 10th image (sorted by path) is the test split."""
    from PIL import Image
    if not path.is_dir():
        raise DataUnavailable(f"image folder {path} does not exist; pass --dataset folder:DIR "
                              "with DIR holding images (optionally in class sub-folders, and "
                              "optionally split into DIR/train and DIR/test)")
    base = path / split if (path / split).is_dir() else path
    files = sorted(p for p in base.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if base == path:
        files = [f for i, f in enumerate(files) if (i % 10 == 9) == (split == "test")]
    if not files:
        raise DataUnavailable(f"no {split} images ({', '.join(sorted(IMAGE_EXTS))}) in {base}"
                              + ("" if base != path else " (the test split is every 10th image: "
                                 "use 10 or more, or make train/ and test/ sub-folders)"))
    classes = sorted({str(f.parent.relative_to(base)) for f in files})
    pil = [Image.open(f) for f in files]
    grey = all(im.mode in ("1", "L", "LA", "I", "I;16") for im in pil)
    out = np.empty((len(files), 1 if grey else 3, image_size, image_size), np.uint8)
    for k, im in enumerate(pil):
        im = im.convert("L" if grey else "RGB")
        w, h = im.size
        s = image_size / min(w, h)
        im = im.resize((max(image_size, round(w * s)), max(image_size, round(h * s))),
                       Image.BICUBIC)
        left, top = (im.size[0] - image_size) // 2, (im.size[1] - image_size) // 2
        a = np.asarray(im.crop((left, top, left + image_size, top + image_size)))
        out[k] = a[None] if grey else a.transpose(2, 0, 1)
    labels = [classes.index(str(f.parent.relative_to(base))) for f in files]
    num_classes = len(classes) if classes != ["."] else None
    return torch.from_numpy(out), torch.tensor(labels), num_classes


# ---------------------------------------------------------------------------- discrete codes

def code_dtype(levels: int) -> torch.dtype:
    """The smallest tensor dtype holding values in [0, levels): uint8 up to 256 levels, int16
    up to 2**15, else int32."""
    return torch.uint8 if levels <= 256 else torch.int16 if levels <= 2 ** 15 else torch.int32


CODES_FORMAT = ("integer codes [N, H, W] or [N, C, H, W] (C = 1 or 3), optionally with labels "
                "[N]: a .npy of the codes; an .npz with arrays 'codes' and optionally 'labels'; "
                "or a .pt of a tensor, or of a dict {'codes': ..., 'labels': ...}")
NUMPY_DTYPES = {torch.uint8: np.uint8, torch.int16: np.int16, torch.int32: np.int32}


def ragged(path: Path, what: str) -> ValueError:
    return ValueError(f"{path}: {what} is an object array (ragged, or Python objects), not an "
                      "integer array; save one rectangular integer array, e.g. "
                      "np.stack(codes).astype(np.int64)")


def not_integer(path: Path, what: str, dtype) -> ValueError:
    if what == "codes":
        return ValueError(f"{path}: codes are {dtype}, not integers: they must be codebook "
                          "indices 0..K-1 (e.g. codes.astype(np.int64) if they are whole "
                          f"numbers); save {CODES_FORMAT}")
    return ValueError(f"{path}: labels are {dtype}, not integer classes 0..num_classes-1; "
                      "save them as integers (or leave them out)")


def read_codes_file(path: Path):
    """(codes, labels or None) as the file stores them (numpy arrays, unchecked; a .npy is
    memory-mapped). DataUnavailable if missing, ValueError if unreadable or not in the format
    (`CODES_FORMAT`)."""
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise DataUnavailable(f"codes file {path} {what}; pass --dataset codes:FILE with FILE "
                              f"holding {CODES_FORMAT}")
    ext = path.suffix.lower()
    if ext not in CODE_EXTS:
        raise ValueError(f"{path}: codes must be in a {', '.join(CODE_EXTS)} file, not "
                         f"{ext or 'a file without an extension'}; save {CODES_FORMAT}")
    unreadable = f"{path} is not a readable {ext} file"
    fix = f"save {CODES_FORMAT}"
    try:
        if ext == ".npy":
            with open(path, "rb") as f:
                header = npy_header(f)
            if header and header[1].hasobject:
                raise ragged(path, "the array")
            return np.load(path, mmap_mode="r", allow_pickle=False), None
        if ext == ".npz":
            with zipfile.ZipFile(path) as z:
                keys = sorted(n[:-4] for n in z.namelist() if n.endswith(".npy"))
                key = "codes" if "codes" in keys else keys[0] if len(keys) == 1 \
                    and keys[0] != "labels" else "x" if "x" in keys else "data" \
                    if "data" in keys else None
                if key is None:
                    raise ValueError(f"{path} has no codes array: it holds "
                                     f"{', '.join(map(repr, keys)) or 'no arrays'}, not 'codes' "
                                     "(nor 'x', 'data' or a single array); save it with "
                                     "np.savez(FILE, codes=CODES, labels=LABELS)")
                for k in [key] + ["labels"] * ("labels" in keys):
                    header = npz_shape(z, k, path)
                    if header[1].hasobject:
                        raise ragged(path, f"array {k!r}")
            with np.load(path, allow_pickle=False) as npz:
                return npz[key], npz["labels"] if "labels" in keys else None
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except ValueError as e:
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{unreadable} ({str(e)[:100]}); {fix}") from None
    except Exception as e:   # zip, pickle and I/O errors, truncated files
        first = (str(e).splitlines() or [""])[0][:100]
        raise ValueError(f"{unreadable} ({type(e).__name__}: {first}); {fix}") from None
    if isinstance(blob, dict):
        if "codes" not in blob:
            raise ValueError(f"{path} holds a dict without 'codes' (keys: "
                             f"{', '.join(map(repr, blob)) or 'none'}); save "
                             "torch.save({'codes': CODES, 'labels': LABELS}, FILE)")
        codes, labels = blob["codes"], blob.get("labels")
    else:
        codes, labels = blob, None
    for what, t in (("codes", codes), ("labels", labels)):
        if t is not None and not isinstance(t, torch.Tensor):
            raise ValueError(f"{path}: the {what} are a {type(t).__name__}, not a tensor; {fix}")
        if t is not None and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
            raise not_integer(path, what, t.dtype)       # (bfloat16 has no numpy dtype)
    return codes.detach().numpy(), None if labels is None else labels.detach().numpy()


def check_codes(path: Path, codes: np.ndarray, labels):
    """(codes [N, C, H, W] (C = 1 or 3), labels int64 [N] or None, the largest code), checked:
    integers, non-negative, the right shapes; ValueError naming the file, the fault and the
    fix."""
    fix = f"save {CODES_FORMAT}"
    if codes.dtype == np.bool_ or not np.issubdtype(codes.dtype, np.integer):
        raise not_integer(path, "codes", codes.dtype)
    if codes.ndim == 3:
        codes = codes[:, None]
    if codes.ndim != 4 or codes.shape[1] not in (1, 3):
        why = f"{codes.shape[1]} channels" if codes.ndim == 4 else f"{codes.ndim} dimensions"
        raise ValueError(f"{path}: codes have shape {list(codes.shape)} ({why}), but must be "
                         "[N, H, W] or [N, C, H, W] with C = 1 or 3 (the channel counts the "
                         f"models take); {fix}")
    if not len(codes) or not codes.size:
        raise ValueError(f"{path}: codes have shape {list(codes.shape)}: no images; {fix}")
    low, top = int(codes.min()), int(codes.max())
    if low < 0:
        raise ValueError(f"{path}: codes go down to {low}, but codebook indices are 0..K-1 (a "
                         f"padding or ignore value?); {fix}")
    if top >= 2 ** 31 - 1:
        raise ValueError(f"{path}: codes go up to {top}: more levels than int32 holds")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.integer):
            raise not_integer(path, "labels", labels.dtype)
        if labels.shape != (len(codes),):
            raise ValueError(f"{path}: {len(codes)} images but labels have shape "
                             f"{list(labels.shape)}; labels must be [N], one per image")
        if labels.min() < 0:
            raise ValueError(f"{path}: labels go down to {labels.min()}, but classes are "
                             "0..num_classes-1")
        labels = labels.astype(np.int64)
    return codes, labels, top


def load_codes(path: Path, split: str, levels: Optional[int], test_path: Optional[Path],
               test_fraction: Optional[float]):
    """The split of a codes file as (images [N, C, H, W] of `code_dtype(levels)`, labels long
    [N], levels, num_classes, verified=False); see `load_dataset`. Levels and num_classes come
    from both splits, so the train and test sets always agree."""
    if test_path is not None and test_fraction is not None:
        raise ValueError("give either a test file or a test fraction for codes, not both")
    fraction = CODES_TEST_FRACTION if test_fraction is None else test_fraction
    if not 0 < fraction < 1:
        raise ValueError(f"the test fraction must be in (0, 1), got {fraction}")
    codes, labels, top = check_codes(path, *read_codes_file(path))
    if test_path is not None:
        test = check_codes(test_path, *read_codes_file(test_path))
        top = max(top, test[2])
        if test[0].shape[1:] != codes.shape[1:]:
            raise ValueError(f"the test codes {test_path} are [N, C, H, W] = "
                             f"{list(test[0].shape)}, the train codes {path} "
                             f"{list(codes.shape)}: the C, H, W must match")
        if (test[1] is None) != (labels is None):
            has, lacks = (path, test_path) if test[1] is None else (test_path, path)
            raise ValueError(f"{has} has labels but {lacks} has none: give both files labels "
                             "or neither")
        parts = [(codes, labels), test[:2]]
    else:
        n_test = max(1, round(len(codes) * fraction))
        if n_test >= len(codes):
            raise ValueError(f"{path} holds {len(codes)} images: too few to split off a test "
                             f"fraction of {fraction} and keep a train split; pass a test file")
        cut = len(codes) - n_test
        parts = [(codes[:cut], None if labels is None else labels[:cut]),
                 (codes[cut:], None if labels is None else labels[cut:])]
    files = str(path) + (f" and {test_path}" if test_path is not None else "")
    if levels is None:
        levels = max(2, top + 1)
        warnings.warn(f"codes:{path}: levels={levels} was inferred from the largest code in "
                      f"{files} ({top}): codebook entries never used above it would be "
                      "missed; pass --levels K (levels=K), K the codebook size, to be sure",
                      stacklevel=3)
    elif levels < 2 or levels <= top:
        raise ValueError(f"levels={levels} is too small for the codes in {files}: they go up "
                         f"to {top}; pass --levels K with K the codebook size (at least "
                         f"{max(2, top + 1)})")
    num_classes = None if labels is None else max(int(lab.max()) + 1 for _, lab in parts)
    ok = verify(test_path if split == "test" and test_path is not None else path, None,
                "codes file")
    images, lab = parts[split == "test"]
    images = torch.from_numpy(images.astype(NUMPY_DTYPES[code_dtype(levels)], order="C"))
    lab = torch.zeros(len(images), dtype=torch.long) if lab is None else torch.from_numpy(lab)
    return images, lab, levels, num_classes, ok


# ---------------------------------------------------------------------------- public API

def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, C, size, size] (antialiased bilinear)."""
    if tuple(images.shape[2:]) == (size, size):
        return images
    out = [torch.nn.functional.interpolate(images[i:i + 4096].float(), (size, size),
                                           mode="bilinear", antialias=True, align_corners=False)
           for i in range(0, len(images), 4096)]
    return torch.cat(out).round().clamp(0, 255).to(torch.uint8)


def quantize(images: torch.Tensor, levels: int) -> torch.Tensor:
    """uint8 values 0..255 -> 0..levels-1 (x * levels // 256), in place, a chunk at a time (no
    full-size int16 copy of a large data set)."""
    for i in range(0, len(images), 1024):
        chunk = images[i:i + 1024]
        chunk.copy_(chunk.to(torch.int32).mul_(levels).div_(256, rounding_mode="floor"))
    return images


def canonical(name: str) -> str:
    """The data set's canonical name (aliases resolved; folder:PATH and codes:PATH as given);
    ValueError if unknown."""
    if name.startswith(PATH_DATASETS):
        if name.startswith("codes:") and not name[len("codes:"):]:
            raise ValueError(f"dataset {name!r} names no file: pass --dataset codes:FILE with "
                             f"FILE holding {CODES_FORMAT}")
        return name
    name = ALIASES.get(name.lower(), name.lower())
    if name not in DATASETS or name.endswith(":PATH"):
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} "
                         f"(aliases: {', '.join(sorted(ALIASES))})")
    return name


def load_dataset(name: str, split: str = "train", data_dir=None, levels: Optional[int] = None,
                 image_size: Optional[int] = None, download: bool = True, seed: int = 0,
                 test_path=None, test_fraction: Optional[float] = None) -> ImageDataset:
    """The named data set's split as an ImageDataset.

    name: mnist | binarized-mnist | fashion-mnist | cifar | cifar-exact | imagenet32 |
    imagenet64 | folder:PATH | codes:PATH.
    levels: values per sub-pixel (default 256; binarized MNIST: 2), reduced from 256 by
    x * levels // 256. image_size: resize to image_size x image_size (folders: default 32).
    seed: the binarization seed of the training split (the test split always uses seed 0).
    download: fetch missing files where a network exists (never for ImageNet, which needs a
    login). imagenet32 / imagenet64: Downsampled ImageNet (1000 classes, labels 0..999, the
    test split is the validation set), held in RAM: train 3.8 GB (32x32) or 15 GB (64x64),
    more while --image-size resizes it; see `load_imagenet`.

    codes:PATH: a VQ-VAE's discrete codes, integers [N, H, W] (one channel) or [N, C, H, W]
    (C = 1 or 3) with optional labels [N], in a .npy (the codes only), an .npz (arrays
    'codes', else 'x', 'data' or its only array, and optionally 'labels') or a .pt (a
    tensor, or a dict with 'codes' and optionally 'labels'). The codes are categories: never
    quantised nor resized (image_size must be None or their own size). levels: the codebook
    size K, which must exceed every code; None infers max code + 1 with a warning (entries
    never used above it would be missed). Up to 256 levels the images are uint8, then int16
    (up to 2**15) or int32. The test split is test_path when given (the train split is then
    the whole of PATH); otherwise the LAST test_fraction of PATH (default 0.05:
    round(N * test_fraction) images, at least 1), and the train split the rest: in file
    order, no shuffling, the same every time. Levels and num_classes (max label + 1, None
    without labels) are taken over both splits. Never verified (no reference checksums).
    test_path and test_fraction are for codes only.
    """
    name = canonical(name)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if name.startswith("codes:"):
        path = Path(name[len("codes:"):]).expanduser()
        images, labels, levels, num_classes, ok = load_codes(
            path, split, levels, None if test_path is None else Path(test_path).expanduser(),
            test_fraction)
        if image_size is not None and tuple(images.shape[2:]) != (image_size, image_size):
            raise ValueError(f"image_size={image_size} (--image-size) with codes: the codes in "
                             f"{path} are {images.shape[2]}x{images.shape[3]}, and resizing "
                             "codebook indices (categories) is meaningless; drop --image-size")
        return ImageDataset(images, labels, name=name, split=split, levels=levels,
                            num_classes=num_classes, data_verified=ok)
    if test_path is not None or test_fraction is not None:
        raise ValueError(f"test_path / test_fraction (--test-data / --test-fraction) are for "
                         f"codes:FILE data sets only; {name} has its own test split")
    root, origin = data_root(data_dir).resolve(), root_origin(data_dir)
    binarize = name == "binarized-mnist"
    default_levels = 2 if binarize else 256
    levels = levels or default_levels
    if binarize and levels != 2:
        raise ValueError(f"binarized-mnist has levels=2, got levels={levels}")
    if not 2 <= levels <= 256:
        raise ValueError(f"levels must be in [2, 256], got {levels}")
    num_classes = 10
    if name in ("mnist", "binarized-mnist"):
        images, labels, ok = load_idx_pair("MNIST", split, root, origin, download, MNIST_URLS)
    elif name == "fashion-mnist":
        images, labels, ok = load_idx_pair("FashionMNIST", split, root, origin, download, FASHION_URLS)
    elif name in ("cifar", "cifar-exact"):
        images, labels, ok = load_cifar(split, root, origin, download, exact=name == "cifar-exact")
    elif name in ("imagenet32", "imagenet64"):
        images, labels, ok = load_imagenet(int(name[-2:]), split, root, origin)
        num_classes = IMAGENET_CLASSES
    else:
        path = Path(name[len("folder:"):]).expanduser()
        images, labels, num_classes = load_folder(path, split, image_size or 32)
        ok = False   # no original checksums exist for a user's folder
    if image_size:
        images = resize(images, image_size)
    if levels < 256 and not binarize:
        images = quantize(images, levels)
    return ImageDataset(images, labels, name=name, split=split, levels=levels,
                        num_classes=num_classes, data_verified=ok, binarize=binarize,
                        seed=seed if split == "train" else 0)


def make_loader(dataset: ImageDataset, batch_size: int, shuffle: bool = False,
                seed: Optional[int] = None, workers: int = 0, device=None,
                drop_last: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader of (x [B, C, H, W] of the data set's dtype, y long [B]) batches. Whole
    batches are indexed at once (no per-item collation); `seed` fixes the shuffle order."""
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    base = torch.utils.data.RandomSampler(dataset, generator=g) if shuffle \
        else torch.utils.data.SequentialSampler(dataset)
    batches = torch.utils.data.BatchSampler(base, batch_size, drop_last)
    pin = device is not None and torch.device(device).type == "cuda"
    return torch.utils.data.DataLoader(dataset, sampler=batches, batch_size=None,
                                       num_workers=workers, pin_memory=pin)
