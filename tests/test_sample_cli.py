"""python -m pixelcnn.sample: grids of samples and of completions, and its bad input."""
import json
import subprocess
import sys
import warnings

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
