"""python -m pixelcnn.sample: grids of samples and of completions, and its bad input."""
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pixelcnn
from datafixtures import write_mnist
from helpers import make_model
from pixelcnn.sample_cli import main


@pytest.fixture
def grey_checkpoint(tmp_path):
    model = make_model(dtype=torch.float32, in_channels=1, channels=4, layers=2, num_classes=10)
    return pixelcnn.save(model, tmp_path / "m.pt", dataset="mnist", image_size=[8, 8])


def run(argv, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # fixture data fails the md5 check
        main([str(a) for a in argv])
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_samples_grid(grey_checkpoint, tmp_path, capsys):
    out = run(["--checkpoint", grey_checkpoint, "--n", 6, "--out", tmp_path / "g.png",
               "--class", 3, "--temperature", 0.9], capsys)
    assert out["size"] == [8, 8] and out["n"] == 6
    w, h = Image.open(tmp_path / "g.png").size
    assert w == 3 * 8 + 4 * 2 and h == 2 * 8 + 3 * 2        # 3 x 2 grid, 2-pixel padding


def test_completion_grid(grey_checkpoint, tmp_path, capsys):
    write_mnist(tmp_path / "data")
    out = run(["--checkpoint", grey_checkpoint, "--n", 4, "--complete", "test", "--rows", 3,
               "--data-dir", tmp_path / "data", "--out", tmp_path / "c.png"], capsys)
    assert out["n"] == 4
    w, h = Image.open(tmp_path / "c.png").size
    assert w == 4 * 8 + 5 * 2                               # original | completion, twice


@pytest.mark.parametrize("argv,message", [
    (["--n", "0"], "--n must be >= 1"),
    (["--class", "12"], "--class must be in [0, 10)"),
    (["--complete", "test", "--rows", "9", "--n", "2"], "--rows must be in [0, 8]"),
    (["--method", "fast"], "method must be one of"),
], ids=["n", "class", "rows", "method"])
def test_bad_input(grey_checkpoint, tmp_path, capsys, argv, message):
    write_mnist(tmp_path / "data")
    with pytest.raises(SystemExit) as e:
        run(["--checkpoint", grey_checkpoint, "--data-dir", tmp_path / "data"] + argv, capsys)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_corrupt_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(bad)])
    assert "corrupt or truncated" in capsys.readouterr().err


def test_python_dash_m(grey_checkpoint, tmp_path):
    r = subprocess.run([sys.executable, "-m", "pixelcnn.sample", "--checkpoint",
                        str(grey_checkpoint), "--n", "2", "--out", str(tmp_path / "s.png")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s.png").is_file()


def test_module_import_keeps_the_function_callable():
    """Importing the CLI module leaves `pixelcnn.sample` the sampling function (no module
    rebinds or patches itself: the CLI lives in pixelcnn.sample_cli, and `python -m
    pixelcnn.sample` runs the entry file without binding it to the package)."""
    import pixelcnn.sample_cli  # noqa: F401
    from pixelcnn.sampling import sample
    assert pixelcnn.sample is sample
    model = make_model(dtype=torch.float32, in_channels=1, channels=4, layers=2)
    assert pixelcnn.sample(model, 2, (3, 3), method="cached").shape == (2, 1, 3, 3)
    done = subprocess.run([sys.executable, "-c", "import runpy, sys, pixelcnn; sys.argv = "
                           "['x', '--help']; code = 0\ntry: runpy.run_module('pixelcnn.sample', "
                           "run_name='__main__')\nexcept SystemExit as e: code = e.code\n"
                           "print(code, callable(pixelcnn.sample))"],
                          capture_output=True, text=True)
    assert done.stdout.split()[-2:] == ["0", "True"], done.stderr


# Per-image uniforms, batches, the .npz, EMA weights (issue 13 item 7). The torchrun runs are
# in test_sample_distributed.py.

def spec_uniforms(seed, n, shape):
    """Image k's uniforms as documented: torch.rand(C, H, W) in float32 from a Generator
    seeded with SeedSequence([seed, k]).generate_state(1)."""
    gens = (torch.Generator().manual_seed(int(np.random.SeedSequence([seed, k])
                                              .generate_state(1)[0])) for k in range(n))
    return torch.stack([torch.rand(shape, generator=g, dtype=torch.float32) for g in gens])


def npz_of(out):
    with np.load(out["npz"]) as f:
        return {k: f[k] for k in f.files}


def test_image_uniforms_follow_the_spec():
    from pixelcnn.sample_cli import image_uniforms
    u = image_uniforms(7, range(4), (3, 2, 5))
    assert u.dtype == torch.float32 and u.shape == (4, 3, 2, 5)
    assert torch.equal(u, spec_uniforms(7, 4, (3, 2, 5)))
    assert torch.equal(image_uniforms(7, [2, 3], (3, 2, 5)), u[2:])      # k alone, not the batch
    assert not torch.equal(image_uniforms(8, range(4), (3, 2, 5)), u)


def test_images_do_not_depend_on_batch_size_or_n(grey_checkpoint, tmp_path, capsys):
    base = ["--checkpoint", grey_checkpoint, "--method", "cached", "--seed", 3]
    a = run(base + ["--n", 5, "--batch-size", 2, "--out", tmp_path / "a.png"], capsys)
    b = run(base + ["--n", 5, "--batch-size", 5, "--out", tmp_path / "b.png"], capsys)
    c = run(base + ["--n", 3, "--out", tmp_path / "c.png"], capsys)
    assert a["npz"] == str(tmp_path / "a.npz") and a["batch_size"] == 2 and c["batch_size"] == 3
    assert a["weights"] == "raw" and a["ranks"] == 1 and a["grid_images"] == 5
    za, zb, zc = npz_of(a), npz_of(b), npz_of(c)
    assert za["samples"].dtype == np.uint8 and za["samples"].shape == (5, 1, 8, 8)
    assert np.array_equal(za["samples"], zb["samples"])
    assert np.array_equal(za["samples"][:3], zc["samples"])
    assert za["labels"].tolist() == [0, 1, 2, 3, 4]                        # k % num_classes
    assert int(za["seed"]) == 3 and str(za["method"]) == "cached"
    assert str(za["checkpoint"]) == str(grey_checkpoint) and str(za["weights"]) == "raw"
    # the images are those of pixelcnn.sample with the documented per-image uniforms
    model = pixelcnn.load(grey_checkpoint)
    direct = pixelcnn.sample(model, 5, (8, 8), method="naive", y=torch.arange(5),
                             uniforms=spec_uniforms(3, 5, (1, 8, 8)))
    assert np.array_equal(za["samples"], direct.numpy())


def test_completion_npz_and_batches(grey_checkpoint, tmp_path, capsys):
    write_mnist(tmp_path / "data")
    base = ["--checkpoint", grey_checkpoint, "--n", 5, "--complete", "test", "--rows", 3,
            "--data-dir", tmp_path / "data", "--method", "cached"]
    a = npz_of(run(base + ["--batch-size", 2, "--out", tmp_path / "a.png"], capsys))
    b = npz_of(run(base + ["--out", tmp_path / "b.png"], capsys))
    assert np.array_equal(a["samples"], b["samples"])
    assert a["originals"].shape == a["samples"].shape == (5, 1, 8, 8)
    assert np.array_equal(a["samples"][..., :3, :], a["originals"][..., :3, :])   # kept rows
    assert int(a["rows"]) == 3 and str(a["split"]) == "test" and len(a["data_index"]) == 5
    assert len(a["labels"]) == 5                              # each image's own class


def test_autoencoder_batches(tmp_path, capsys):
    write_mnist(tmp_path / "data")
    model = make_model("autoencoder", dtype=torch.float32, in_channels=1, channels=4, layers=2,
                       cond_dim=3)
    ckpt = pixelcnn.save(model, tmp_path / "ae.pt", dataset="mnist", image_size=[8, 8])
    base = ["--checkpoint", ckpt, "--n", 4, "--data-dir", tmp_path / "data"]
    a = npz_of(run(base + ["--batch-size", 3, "--out", tmp_path / "a.png"], capsys))
    b = npz_of(run(base + ["--out", tmp_path / "b.png"], capsys))
    assert np.array_equal(a["samples"], b["samples"]) and a["originals"].shape == (4, 1, 8, 8)
    w, _ = Image.open(tmp_path / "a.png").size
    assert w == 4 * 8 + 5 * 2                                 # data | sample, twice


def test_ema_weights_by_default(tmp_path, capsys):
    raw = make_model(dtype=torch.float32, in_channels=1, channels=4, layers=2, seed=0)
    ema = make_model(dtype=torch.float32, in_channels=1, channels=4, layers=2, seed=1)
    ckpt = pixelcnn.save(raw, tmp_path / "m.pt", image_size=[8, 8], ema=ema.state_dict())
    u = spec_uniforms(0, 4, (1, 8, 8))
    want = {w: pixelcnn.sample(m, 4, (8, 8), method="cached", uniforms=u).numpy()
            for w, m in (("ema", ema), ("raw", raw))}
    assert not np.array_equal(want["ema"], want["raw"])       # the test can tell them apart
    base = ["--checkpoint", ckpt, "--n", 4, "--method", "cached"]
    out = run(base + ["--out", tmp_path / "e.png"], capsys)
    assert out["weights"] == "ema" and np.array_equal(npz_of(out)["samples"], want["ema"])
    out = run(base + ["--no-ema", "--out", tmp_path / "r.png"], capsys)
    assert out["weights"] == "raw" and np.array_equal(npz_of(out)["samples"], want["raw"])
    assert str(npz_of(out)["weights"]) == "raw" and "labels" not in npz_of(out)


def test_large_n_grid_shows_the_first_1024(tmp_path, capsys):
    model = make_model(dtype=torch.float32, in_channels=1, channels=2, layers=1)
    ckpt = pixelcnn.save(model, tmp_path / "m.pt", image_size=[2, 2])
    out = run(["--checkpoint", ckpt, "--n", 1030, "--method", "cached", "--out",
               tmp_path / "big.png"], capsys)
    assert out["grid_images"] == 1024 and "1024 of the 1030" in out["grid_note"]
    assert npz_of(out)["samples"].shape == (1030, 1, 2, 2)
    w, h = Image.open(tmp_path / "big.png").size
    assert w == h == 32 * 2 + 33 * 2                           # 32 x 32 tiles


def test_default_outputs_never_replace_a_pair(grey_checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "samples").mkdir(parents=True)
    (tmp_path / "runs" / "samples" / "m.npz").write_bytes(b"earlier")      # a lone npz
    out = run(["--checkpoint", grey_checkpoint, "--n", 2, "--method", "cached"], capsys)
    assert out["out"] == str(Path("runs/samples/m-2.png"))
    assert out["npz"] == str(Path("runs/samples/m-2.npz"))
    assert (tmp_path / "runs/samples/m.npz").read_bytes() == b"earlier"


def test_torchrun_friendly_arguments():
    """torchrun's parser refuses `--n` (an ambiguous abbreviation of its own options): -n and
    a `--` separator both work."""
    from pixelcnn.sample_cli import parse_args
    assert parse_args(["--checkpoint", "c", "-n", "7"]).n == 7
    args = parse_args(["--", "--checkpoint", "c", "--n", "7", "--no-ema", "--dist-backend",
                       "gloo", "--batch-size", "3"])
    assert (args.n, args.ema, args.dist_backend, args.batch_size) == (7, False, "gloo", 3)


@pytest.mark.parametrize("argv,message", [
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--dist-backend", "mpi"], "invalid choice"),
    (["--out", "x.npz"], "give the PNG grid's path"),
], ids=["batch-size", "seed", "backend", "out-npz"])
def test_bad_new_options(grey_checkpoint, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        main(["--checkpoint", str(grey_checkpoint)] + argv)
    assert e.value.code == 2 and message in capsys.readouterr().err
