"""Outputs: default outputs go to git-ignored runs/, a second run never replaces the first
one's files, and a wrong --data-dir creates nothing."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pixelcnn
from datafixtures import write_mnist
from helpers import make_model
from pixelcnn.cli import fresh

ROOT = Path(__file__).resolve().parent.parent


def git_status():
    try:
        return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                              cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")


def test_fresh_numbers_taken_paths(tmp_path):
    assert fresh(tmp_path / "a.png") == tmp_path / "a.png"
    (tmp_path / "a.png").touch()
    (tmp_path / "a-2.png").touch()
    assert fresh(tmp_path / "a.png") == tmp_path / "a-3.png"
    (tmp_path / "run").mkdir()
    assert fresh(tmp_path / "run") == tmp_path / "run-2"


def test_main_command_leaves_the_checkout_clean(tmp_path):
    """The README's main command, `python -m bench.sample` from the repository root with
    default outputs (a tiny model and settings here), leaves `git status` as it was."""
    ckpt = tmp_path / "tiny.pt"
    pixelcnn.save(make_model(dtype=torch.float32), ckpt, dataset="cifar", image_size=[4, 4])
    before = git_status()
    runs = set((ROOT / "runs" / "bench").glob("*"))
    cmd = [sys.executable, "-m", "bench.sample", "--checkpoint", str(ckpt), "--batch-sizes",
           "1", "--naive-steps", "1", "--repeat", "1", "--gate-size", "2", "2", "--gate-batch",
           "1", "--methods", "naive,cached", "--device", "cpu", "--threads", "1",
           "--no-download", "--data-dir", str(tmp_path / "no-data"), "--samples-per-method", "1"]
    env = {**os.environ, "PIXELCNN_DATA": str(tmp_path / "no-data")}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    written = set((ROOT / "runs" / "bench").glob("*")) - runs
    try:
        assert git_status() == before
        assert any(p.suffix == ".json" for p in written), done.stdout[-1000:]
        assert not (tmp_path / "no-data").exists()            # a wrong --data-dir: no folders
    finally:
        for p in written:
            p.unlink()


def test_sample_cli_default_outputs_never_collide(tmp_path, monkeypatch, capsys):
    from pixelcnn.sample_cli import main
    ckpt = tmp_path / "m.pt"
    pixelcnn.save(make_model(dtype=torch.float32, in_channels=1, levels=4), ckpt,
                  image_size=[3, 3])
    monkeypatch.chdir(tmp_path)
    outs = []
    for _ in range(2):
        main(["--checkpoint", str(ckpt), "--n", "2", "--method", "auto", "--device", "cpu"])
        outs.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert [o["out"] for o in outs] == [str(Path("runs/samples/m.png")),
                                        str(Path("runs/samples/m-2.png"))]
    assert outs[0]["method"] != "auto"                        # the method actually used
    assert all((tmp_path / o["out"]).is_file() for o in outs)


@pytest.mark.filterwarnings("ignore:.*data_verified=false:UserWarning")
def test_evaluate_cli_says_what_it_does(tmp_path, capsys):
    """Without a terminal, evaluate prints a start line before the long work."""
    from pixelcnn.evaluate import main
    write_mnist(tmp_path, n_train=4, n_test=4, size=8)
    ckpt = tmp_path / "m.pt"
    pixelcnn.save(make_model(dtype=torch.float32, in_channels=1, levels=256), ckpt,
                  dataset="mnist", image_size=[8, 8])
    main(["--checkpoint", str(ckpt), "--data-dir", str(tmp_path), "--no-download",
          "--threads", "1"])
    out = capsys.readouterr().out
    assert out.startswith("scoring 4 images of mnist (test) on cpu...")
