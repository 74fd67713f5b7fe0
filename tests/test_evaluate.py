"""Likelihood: bits/dim of uniform logits, `evaluate` against a direct computation (plain,
class-conditional, autoencoder, binarized), and the evaluate CLI, bad input included."""
import json
import math
import subprocess
import sys
import warnings

import pytest
import torch

import pixelcnn
from datafixtures import write_cifar, write_mnist
from helpers import make_model
from pixelcnn import data as D
from pixelcnn.evaluate import evaluate, main

pytestmark = pytest.mark.filterwarnings("ignore:.*data_verified=false:UserWarning")


@pytest.mark.parametrize("levels", [2, 7, 256])
def test_uniform_logits_give_log2_levels(levels):
    x = torch.randint(0, levels, (3, 2, 4, 5))
    logits = torch.zeros(3, levels, 2, 4, 5, dtype=torch.float64)
    bpd = pixelcnn.bits_per_dim(logits, x, reduction="none")
    assert bpd.shape == (3,) and torch.allclose(bpd, torch.full((3,), math.log2(levels),
                                                                dtype=torch.float64), rtol=0, atol=1e-12)
    assert abs(pixelcnn.bits_per_dim(logits.float(), x).item() - math.log2(levels)) < 1e-6


@pytest.fixture
def mnist(tmp_path):
    write_mnist(tmp_path, n_train=20, n_test=10, size=6)
    return tmp_path


def fixture_data(root, name="mnist", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return D.load_dataset(name, "test", data_dir=root, download=False, **kw)


@pytest.mark.parametrize("kind,cfg,name", [("gated", {}, "mnist"),
                                           ("gated", dict(num_classes=10), "mnist"),
                                           ("pixelcnn", {}, "binarized-mnist"),
                                           ("autoencoder", dict(cond_dim=3), "mnist")])
def test_evaluate_matches_direct(mnist, kind, cfg, name):
    data = fixture_data(mnist, name)
    model = make_model(kind, dtype=torch.float32, in_channels=1, levels=data.levels, **cfg)
    model.train()
    res = evaluate(model, D.make_loader(data, 4))
    assert model.training                                          # mode restored
    x, y = data[list(range(len(data)))]
    with torch.no_grad():
        bpd = pixelcnn.bits_per_dim(model.eval()(x, y=y if cfg.get("num_classes") else None), x,
                                    reduction="none").double()
    assert res["n"] == 10
    assert res["bits_per_dim"] == pytest.approx(bpd.mean().item(), rel=1e-6)
    assert res["stderr"] == pytest.approx(bpd.std().item() / math.sqrt(10), rel=1e-5)
    if data.levels == 2:
        assert res["nats_per_image"] == pytest.approx(bpd.mean().item() * 36 * math.log(2), rel=1e-6)
    else:
        assert "nats_per_image" not in res


def test_h_conditioned_model_cannot_be_scored(mnist):
    model = make_model("gated", dtype=torch.float32, in_channels=1, cond_dim=3)
    with pytest.raises(ValueError, match="needs h"):
        evaluate(model, D.make_loader(fixture_data(mnist), 4))


@pytest.fixture
def ckpt(mnist):
    model = make_model("gated", dtype=torch.float32, in_channels=1, levels=256)
    return pixelcnn.save(model, mnist / "m.pt", dataset="mnist", epoch=2, image_size=[6, 6])


def test_cli_prints_and_writes_json(mnist, ckpt, capsys):
    out = mnist / "res" / "r.json"
    res = main(["--checkpoint", str(ckpt), "--data-dir", str(mnist), "--limit", "7",
                "--batch-size", "3", "--json", str(out), "--no-download"])
    printed = capsys.readouterr().out
    assert "bits/dim over 7 images" in printed and "NOT verified" in printed
    saved = json.loads(out.read_text())
    assert saved["data_verified"] is False and saved["n"] == 7 and saved["dataset"] == "mnist"
    assert saved["bits_per_dim"] == pytest.approx(res["bits_per_dim"]) and saved["epoch"] == 2


def test_cli_writes_nothing_by_default(mnist, ckpt, monkeypatch):
    monkeypatch.chdir(mnist)
    before = set(mnist.rglob("*"))
    main(["--checkpoint", str(ckpt), "--dataset", "mnist", "--data-dir", str(mnist)])
    assert set(mnist.rglob("*")) == before


def run_bad(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


def test_cli_bad_input(mnist, ckpt, capsys, tmp_path):
    base = ["--checkpoint", str(ckpt), "--data-dir", str(mnist), "--no-download"]
    assert "unknown dataset 'nope'" in run_bad(base + ["--dataset", "nope"], capsys)
    err = run_bad(["--checkpoint", str(ckpt), "--data-dir", str(tmp_path / "empty"),
                   "--no-download"], capsys)
    assert str(tmp_path / "empty" / "MNIST" / "raw") in err and "--data-dir" in err
    (tmp_path / "bad.pt").write_bytes(ckpt.read_bytes()[:100])
    assert "corrupt or truncated" in run_bad(["--checkpoint", str(tmp_path / "bad.pt")], capsys)
    write_cifar(mnist / "cifar-10-batches-py", n=2)
    assert "3 channel(s) but the model expects 1" in run_bad(base + ["--dataset", "cifar"], capsys)
    assert "--limit must be >= 1" in run_bad(base + ["--limit", "0"], capsys)
    assert "the following arguments are required: --checkpoint" in run_bad([], capsys)
    assert "CUDA is not available" in run_bad(base + ["--device", "cuda"], capsys) \
        or torch.cuda.is_available()


def test_python_m_evaluate(mnist, ckpt, tmp_path):
    """`python -m pixelcnn.evaluate` works, and bad input is one line of error, no traceback."""
    ok = subprocess.run([sys.executable, "-m", "pixelcnn.evaluate", "--checkpoint", str(ckpt),
                         "--data-dir", str(mnist), "--limit", "4"], capture_output=True, text=True)
    assert ok.returncode == 0 and "bits/dim over 4 images" in ok.stdout
    (tmp_path / "junk.pt").write_text("junk")
    bad = subprocess.run([sys.executable, "-m", "pixelcnn.evaluate", "--checkpoint",
                          str(tmp_path / "junk.pt")], capture_output=True, text=True)
    assert bad.returncode == 2 and "corrupt" in bad.stderr and "Traceback" not in bad.stderr
