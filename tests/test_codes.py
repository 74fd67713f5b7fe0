"""A VQ-VAE's discrete codes as a data set (codes:FILE): .npy / .npz / .pt files, [N, H, W] and
[N, C, H, W] codes, levels above 256 (int16 storage), inferred and explicit levels, the test
split from a second file or the file's last fraction, every malformed file's error, and a
one-epoch training run on codes."""
import re
import warnings

import numpy as np
import pytest
import torch

from datafixtures import write_codes
from pixelcnn import data as D


def load(*args, **kw):
    """load_dataset, swallowing the inferred-levels and unknown-md5 warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return D.load_dataset(*args, **kw)


def both(path, **kw):
    return load(f"codes:{path}", "train", **kw), load(f"codes:{path}", "test", **kw)


# ---------------------------------------------------------------- formats

def test_names():
    assert "codes:PATH" in D.DATASETS
    assert D.canonical("codes:/some/File.NPY") == "codes:/some/File.NPY"     # kept as given
    with pytest.raises(ValueError, match="names no file"):
        D.canonical("codes:")
    for name in ("CODES:x.npy", "codes:PATH", "folder:PATH"):   # exact prefixes, not entries
        if name.isupper() or name.startswith("CODES"):
            with pytest.raises(ValueError, match="unknown dataset 'codes:x.npy'"):
                D.canonical(name)
    assert D.canonical("codes:PATH") == "codes:PATH"           # a file named PATH
    with pytest.raises(ValueError, match="unknown dataset 'folder'"):
        D.canonical("folder")


def test_npy_codes_one_channel(tmp_path):
    codes, _ = write_codes(tmp_path / "c.npy", n=20, levels=16)
    train, test = both(tmp_path / "c.npy", levels=16)
    assert (len(train), len(test)) == (19, 1)                  # round(20 * 0.05) = 1
    assert (train.in_channels, train.image_size, train.levels) == (1, (4, 4), 16)
    assert train.images.dtype == torch.uint8 and train.num_classes is None
    assert (train.name, train.split, test.split) == (f"codes:{tmp_path / 'c.npy'}", "train", "test")
    assert not train.data_verified and not test.data_verified
    assert np.array_equal(train.images[:, 0].numpy(), codes[:19])     # never quantised
    assert np.array_equal(test.images[:, 0].numpy(), codes[19:])
    x, y = train[[0, 1]]
    assert x.shape == (2, 1, 4, 4) and y.dtype == torch.int64 and y.tolist() == [0, 0]


def test_npz_with_labels(tmp_path):
    codes, labels = write_codes(tmp_path / "c.npz", n=40, levels=8, num_classes=5)
    train, test = both(tmp_path / "c.npz", levels=8)
    assert (len(train), len(test)) == (38, 2)
    assert train.num_classes == test.num_classes == int(labels.max()) + 1
    assert np.array_equal(train.labels.numpy(), labels[:38])
    assert np.array_equal(test.labels.numpy(), labels[38:])
    assert np.array_equal(test.images[:, 0].numpy(), codes[38:])


@pytest.mark.parametrize("key", ["x", "data", "arr_0"])
def test_npz_other_array_names(tmp_path, key):
    codes = np.arange(3 * 2 * 2).reshape(3, 2, 2) % 7
    np.savez(tmp_path / "c.npz", **{key: codes})
    ds = load(f"codes:{tmp_path / 'c.npz'}", "train", levels=7)
    assert np.array_equal(ds.images[:, 0].numpy(), codes[:2])


def test_pt_dict_and_tensor(tmp_path):
    codes, labels = write_codes(tmp_path / "d.pt", n=10, levels=300, num_classes=3)
    train, test = both(tmp_path / "d.pt", levels=300)
    assert train.images.dtype == torch.int16 and train.num_classes == int(labels.max()) + 1
    assert np.array_equal(train.images[:, 0].numpy(), codes[:9])
    assert np.array_equal(test.labels.numpy(), labels[9:])
    codes, _ = write_codes(tmp_path / "t.pt", n=10, levels=12, dtype=np.int32)
    train = load(f"codes:{tmp_path / 't.pt'}", "train", levels=12)
    assert train.images.dtype == torch.uint8 and train.num_classes is None
    assert np.array_equal(train.images[:, 0].numpy(), codes[:9])


def test_three_channel_codes(tmp_path):
    codes, _ = write_codes(tmp_path / "c.npy", n=20, channels=3, levels=64)
    train = load(f"codes:{tmp_path / 'c.npy'}", "train", levels=64)
    assert (train.in_channels, train.image_size) == (3, (4, 4))
    assert np.array_equal(train.images.numpy(), codes[:19])
    codes, _ = write_codes(tmp_path / "one.npy", n=20, channels=1, levels=64)
    assert load(f"codes:{tmp_path / 'one.npy'}", "train", levels=64).in_channels == 1


def test_fortran_order_codes_are_contiguous(tmp_path):
    codes = np.asfortranarray(np.arange(5 * 3 * 3).reshape(5, 3, 3) % 7)
    np.save(tmp_path / "f.npy", codes)
    ds = load(f"codes:{tmp_path / 'f.npy'}", "train", levels=7)
    assert ds.images.is_contiguous() and np.array_equal(ds.images[:, 0].numpy(), codes[:4])


# ---------------------------------------------------------------- levels

def test_many_levels_are_int16_and_exact(tmp_path):
    codes, _ = write_codes(tmp_path / "c.npz", n=20, levels=512)
    assert codes.max() == 511
    train, test = both(tmp_path / "c.npz", levels=512)
    assert train.images.dtype == test.images.dtype == torch.int16 and train.levels == 512
    assert np.array_equal(torch.cat([train.images, test.images])[:, 0].numpy(), codes)
    assert train.take(3).images.dtype == torch.int16
    x, _ = next(iter(D.make_loader(train, 4)))
    assert x.dtype == torch.int16 and int(x.max()) < 512
    assert D.code_dtype(256) == torch.uint8 and D.code_dtype(257) == torch.int16
    assert D.code_dtype(2 ** 15) == torch.int16 and D.code_dtype(2 ** 15 + 1) == torch.int32
    big = np.array([[[0, 40_000]]] * 2)                                  # past int16
    np.save(tmp_path / "big.npy", big)
    ds = load(f"codes:{tmp_path / 'big.npy'}", "train", levels=40_001)
    assert ds.images.dtype == torch.int32 and int(ds.images.max()) == 40_000


@pytest.mark.filterwarnings("ignore:.*no known md5")
def test_inferred_levels_warn(tmp_path):
    write_codes(tmp_path / "c.npy", n=20, levels=100)
    with pytest.warns(UserWarning, match=r"levels=100 was inferred from the largest code.*"
                                         r"never used above it would be missed.*--levels K"):
        ds = D.load_dataset(f"codes:{tmp_path / 'c.npy'}", "train")
    assert ds.levels == 100 and ds.images.dtype == torch.uint8
    np.save(tmp_path / "zeros.npy", np.zeros((4, 2, 2), np.int64))      # at least 2 levels
    assert load(f"codes:{tmp_path / 'zeros.npy'}", "train").levels == 2


def test_inferred_levels_cover_both_splits(tmp_path):
    """The test split's largest code counts too: both splits infer the same levels."""
    codes = np.zeros((20, 2, 2), np.int64)
    codes[-1, 0, 0] = 9                                                 # in the test fraction
    np.save(tmp_path / "c.npy", codes)
    train, test = both(tmp_path / "c.npy")
    assert train.levels == test.levels == 10
    np.save(tmp_path / "a.npy", np.zeros((5, 2, 2), np.int64))
    np.save(tmp_path / "b.npy", np.full((2, 2, 2), 600))
    train, test = both(tmp_path / "a.npy", test_path=tmp_path / "b.npy")
    assert train.levels == test.levels == 601 and train.images.dtype == torch.int16


def test_explicit_levels_too_small(tmp_path):
    write_codes(tmp_path / "c.npy", n=20, levels=512)
    for levels in (256, 511, 1):
        with pytest.raises(ValueError, match=rf"levels={levels} is too small.*c\.npy.*up to "
                                             r"511.*--levels K.*at least 512"):
            load(f"codes:{tmp_path / 'c.npy'}", "train", levels=levels)
    assert load(f"codes:{tmp_path / 'c.npy'}", "train", levels=1024).levels == 1024


# ---------------------------------------------------------------- test split

def test_test_split_from_a_second_file(tmp_path):
    codes, labels = write_codes(tmp_path / "train.npz", n=30, levels=20, num_classes=4)
    tcodes, tlabels = write_codes(tmp_path / "test.npz", n=7, levels=20, num_classes=6, seed=1)
    kw = dict(levels=20, test_path=str(tmp_path / "test.npz"))
    train, test = both(tmp_path / "train.npz", **kw)
    assert (len(train), len(test)) == (30, 7)                  # the train file is all train
    assert np.array_equal(train.images[:, 0].numpy(), codes)
    assert np.array_equal(test.images[:, 0].numpy(), tcodes)
    assert np.array_equal(test.labels.numpy(), tlabels)
    want = int(max(labels.max(), tlabels.max())) + 1               # over both files
    assert train.num_classes == test.num_classes == want


def test_test_split_from_a_fraction(tmp_path):
    codes, labels = write_codes(tmp_path / "c.npz", n=50, levels=20, num_classes=3)
    train, test = both(tmp_path / "c.npz", levels=20, test_fraction=0.2)
    assert (len(train), len(test)) == (40, 10)                 # the last 10, in file order
    assert np.array_equal(train.images[:, 0].numpy(), codes[:40])
    assert np.array_equal(test.images[:, 0].numpy(), codes[40:])
    assert np.array_equal(test.labels.numpy(), labels[40:])
    again = load(f"codes:{tmp_path / 'c.npz'}", "test", levels=20, test_fraction=0.2)
    assert torch.equal(again.images, test.images)             # deterministic
    tiny = load(f"codes:{tmp_path / 'c.npz'}", "test", levels=20, test_fraction=0.001)
    assert len(tiny) == 1 and torch.equal(tiny.images, test.images[-1:])   # at least one
    for f in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"test fraction must be in \(0, 1\)"):
            load(f"codes:{tmp_path / 'c.npz'}", "test", levels=20, test_fraction=f)


def test_test_split_errors(tmp_path):
    write_codes(tmp_path / "one.npy", n=1, levels=4)
    with pytest.raises(ValueError, match=r"one\.npy holds 1 images: too few.*pass a test file"):
        load(f"codes:{tmp_path / 'one.npy'}", "train", levels=4)
    write_codes(tmp_path / "a.npy", n=10, size=4, levels=4)
    write_codes(tmp_path / "b.npy", n=10, size=5, levels=4)
    with pytest.raises(ValueError, match=r"b\.npy are \[N, C, H, W\] = \[10, 1, 5, 5\].*must "
                                         "match"):
        load(f"codes:{tmp_path / 'a.npy'}", "test", levels=4, test_path=tmp_path / "b.npy")
    write_codes(tmp_path / "l.npz", n=10, size=4, levels=4, num_classes=2)
    with pytest.raises(ValueError, match=r"l\.npz has labels but .*a\.npy has none"):
        load(f"codes:{tmp_path / 'a.npy'}", "train", levels=4, test_path=tmp_path / "l.npz")
    with pytest.raises(ValueError, match="not both"):
        load(f"codes:{tmp_path / 'a.npy'}", "train", test_path=tmp_path / "a.npy",
             test_fraction=0.1)
    with pytest.raises(D.DataUnavailable, match=r"codes file .*missing\.npz does not exist"):
        load(f"codes:{tmp_path / 'a.npy'}", "test", test_path=tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="for codes:FILE data sets only"):
        load("mnist", "test", data_dir=tmp_path, test_fraction=0.1, download=False)


def test_image_size_refused(tmp_path):
    write_codes(tmp_path / "c.npy", n=20, size=4, levels=8)
    with pytest.raises(ValueError, match=r"image_size=8.*4x4.*resizing codebook indices.*"
                                         "meaningless.*drop --image-size"):
        load(f"codes:{tmp_path / 'c.npy'}", "train", levels=8, image_size=8)
    # their own size resizes nothing (what evaluate passes back from a checkpoint's metadata)
    assert load(f"codes:{tmp_path / 'c.npy'}", "train", levels=8, image_size=4).image_size == (4, 4)


# ---------------------------------------------------------------- malformed files

def bad(tmp_path, name, match, exc=ValueError, **kw):
    with pytest.raises(exc, match=match) as e:
        load(f"codes:{tmp_path / name}", "train", **kw)
    assert str(tmp_path / name) in str(e.value)                  # every error names the file
    return str(e.value)


def test_bad_codes(tmp_path):
    np.save(tmp_path / "float.npy", np.zeros((4, 2, 2), np.float32))
    bad(tmp_path, "float.npy", r"codes are float32, not integers.*codebook indices.*astype")
    torch.save(torch.zeros(4, 2, 2, dtype=torch.bfloat16), tmp_path / "bf16.pt")
    bad(tmp_path, "bf16.pt", r"codes are torch.bfloat16, not integers")
    np.save(tmp_path / "bool.npy", np.zeros((4, 2, 2), bool))
    bad(tmp_path, "bool.npy", r"codes are bool, not integers")
    torch.save({"codes": torch.ones(4, 2, 2, dtype=torch.bool)}, tmp_path / "bool.pt")
    bad(tmp_path, "bool.pt", r"codes are torch.bool, not integers")
    codes = np.zeros((4, 2, 2), np.int64)
    codes[1, 1, 1] = -1
    np.save(tmp_path / "neg.npy", codes)
    bad(tmp_path, "neg.npy", r"codes go down to -1.*0\.\.K-1")
    for shape, why in (((4, 4), "2 dimensions"), ((2, 4, 2, 2, 2), "5 dimensions"),
                       ((4, 2, 3, 3), "2 channels"), ((4, 4, 3, 3), "4 channels")):
        np.save(tmp_path / "shape.npy", np.zeros(shape, np.int64))
        bad(tmp_path, "shape.npy", re.escape(f"shape {list(shape)} ({why})") +
            r".*\[N, H, W\] or \[N, C, H, W\] with C = 1 or 3")
    np.save(tmp_path / "empty.npy", np.zeros((0, 2, 2), np.int64))
    bad(tmp_path, "empty.npy", "no images")


def test_ragged_codes(tmp_path):
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.zeros((2, 2), int), np.zeros((3, 3), int)
    np.save(tmp_path / "ragged.npy", ragged, allow_pickle=True)
    bad(tmp_path, "ragged.npy", r"object array \(ragged.*np\.stack")
    np.savez(tmp_path / "ragged.npz", codes=ragged)
    bad(tmp_path, "ragged.npz", r"array 'codes' is an object array \(ragged")
    torch.save([torch.zeros(2, 2), torch.zeros(3, 3)], tmp_path / "list.pt")
    bad(tmp_path, "list.pt", r"the codes are a list, not a tensor")


def test_bad_labels(tmp_path):
    codes = np.zeros((4, 2, 2), np.int64)
    for name, labels, match in (
            ("short", np.zeros(3, np.int64), r"4 images but labels have shape \[3\]"),
            ("square", np.zeros((4, 1), np.int64), r"4 images but labels have shape \[4, 1\]"),
            ("neg", np.array([0, 1, -1, 0]), r"labels go down to -1"),
            ("float", np.zeros(4, np.float64), r"labels are float64, not integer classes"),
            ("bool", np.zeros(4, bool), r"labels are bool, not integer classes")):
        np.savez(tmp_path / f"{name}.npz", codes=codes, labels=labels)
        bad(tmp_path, f"{name}.npz", match)
    torch.save({"codes": torch.zeros(4, 2, 2, dtype=torch.long), "labels": torch.zeros(4)},
               tmp_path / "float.pt")
    bad(tmp_path, "float.pt", r"labels are torch.float32, not integer classes")
    torch.save({"codes": torch.zeros(4, 2, 2, dtype=torch.long), "labels": torch.zeros(5).long()},
               tmp_path / "long.pt")
    bad(tmp_path, "long.pt", r"4 images but labels have shape \[5\]")


def test_missing_unreadable_and_unknown_files(tmp_path):
    bad(tmp_path, "missing.npy", "does not exist.*codes:FILE", D.DataUnavailable)
    (tmp_path / "dir.npy").mkdir()
    bad(tmp_path, "dir.npy", "is a folder", D.DataUnavailable)
    for name in ("junk.npy", "junk.npz", "junk.pt"):
        (tmp_path / name).write_bytes(b"not an array at all")
        bad(tmp_path, name, rf"junk\{name[4:]} is not a readable \{name[4:]} file.*save integer")
    np.save(tmp_path / "cut.npy", np.zeros((50, 4, 4), np.int64))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "cut.npy").read_bytes()[:-100])
    bad(tmp_path, "cut.npy", r"is not a readable \.npy file")
    np.save(tmp_path / "c.npy", np.zeros((4, 2, 2), np.int64))
    (tmp_path / "c.txt").write_bytes((tmp_path / "c.npy").read_bytes())
    bad(tmp_path, "c.txt", r"must be in a \.npy, \.npz, \.pt file, not \.txt")


def test_npz_without_codes(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros((4, 2, 2), int), b=np.zeros(4, int))
    bad(tmp_path, "two.npz", r"has no codes array: it holds 'a', 'b'.*np\.savez\(FILE, codes=")
    np.savez(tmp_path / "labels.npz", labels=np.zeros(4, int))
    bad(tmp_path, "labels.npz", r"has no codes array: it holds 'labels'")
    torch.save({"x": torch.zeros(4, 2, 2).long()}, tmp_path / "dict.pt")
    bad(tmp_path, "dict.pt", r"a dict without 'codes' \(keys: 'x'\)")


# ---------------------------------------------------------------- training on codes

def test_train_one_epoch_on_codes(tmp_path):
    """python -m pixelcnn.train --dataset codes:FILE --levels 512 runs end to end, and
    pixelcnn.evaluate scores its checkpoint on the same codes (it passes the recorded
    image_size back: the codes' own size, accepted)."""
    from pixelcnn import evaluate, train
    path = tmp_path / "codes.npz"
    write_codes(path, n=40, size=4, levels=512, num_classes=3)
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train.main(["--dataset", "codes:" + str(path), "--levels", "512", "--preset", "tiny",
                    "--epochs", "1", "--batch-size", "4", "--out", str(out),
                    "--progress", "off", "--sample-every", "0", "--n-samples", "1",
                    "--limit-test", "4"])
        assert (out / "checkpoint.pt").is_file()
        result = evaluate.main(["--checkpoint", str(out / "checkpoint.pt"), "--progress", "off"])
    assert (result["levels"], result["n"], result["data_verified"]) == (512, 2, False)
    assert result["config"]["levels"] == 512 and np.isfinite(result["bits_per_dim"])
