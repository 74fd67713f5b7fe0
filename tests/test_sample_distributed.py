"""`torchrun -m pixelcnn.sample`: the images split across 2 CPU ranks (gloo) and gathered on
rank 0 are exactly those of one process, and only rank 0 writes (issue 13 item 7)."""
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import pixelcnn
from datafixtures import write_mnist
from helpers import make_model
from pixelcnn.sample_cli import main

pytestmark = pytest.mark.slow        # a torchrun launch: ~10-15 s of process start-up on 2 cores


@pytest.mark.parametrize("method,extra", [
    ("cached", []),
    ("naive", ["--complete", "test", "--rows", "3"]),     # completion shares data images too
], ids=["cached", "naive-completion"])
def test_two_ranks_equal_one_process(tmp_path, capsys, method, extra):
    model = make_model(dtype=torch.float32, in_channels=1, channels=4, layers=2, num_classes=10)
    ckpt = pixelcnn.save(model, tmp_path / "m.pt", dataset="mnist", image_size=[8, 8])
    write_mnist(tmp_path / "data")
    argv = ["--checkpoint", str(ckpt), "-n", "5", "--method", method, "--seed", "4",
            "--data-dir", str(tmp_path / "data")] + extra
    (tmp_path / "dist").mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", "-m", "pixelcnn.sample", *argv,
                           "--batch-size", "2", "--device", "cpu",
                           "--out", str(tmp_path / "dist" / "d.png")],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, done.stdout                  # rank 0 alone prints
    out = lines[0]
    assert out["ranks"] == 2 and out["n"] == 5 and out["method"] == method
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == ["d.npz", "d.png"]
    assert not (tmp_path / "runs").exists()                # no rank wrote a default output

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                    # fixture data fails the md5 check
        main(argv + ["--out", str(tmp_path / "one.png")])
    one = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert one["ranks"] == 1 and one["batch_size"] == 5
    with np.load(out["npz"]) as d, np.load(one["npz"]) as s:
        assert sorted(d.files) == sorted(s.files)
        for key in d.files:
            assert np.array_equal(d[key], s[key]), key
        assert d["samples"].shape == (5, 1, 8, 8)
