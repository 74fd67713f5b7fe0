"""Training: a tiny model overfits one batch; the CLI trains on fixtures, writes a checkpoint,
samples, metrics and results; --resume continues exactly; bad input exits 2 with a message."""
import argparse
import copy
import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

import pixelcnn
from datafixtures import write_cifar, write_folder, write_mnist
from pixelcnn import checkpoint
from pixelcnn.train import TrainState, lr_at, main, resumed_state, save_checkpoint, train_step

pytestmark = pytest.mark.filterwarnings("ignore:.*data_verified=false:UserWarning")


def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    model = pixelcnn.build(pixelcnn.preset("tiny", in_channels=1, levels=16))
    x = torch.randint(0, 16, (8, 1, 8, 8))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(100):
        loss = pixelcnn.bits_per_dim(model(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 3.9 and losses[-1] < 0.5 * losses[0], losses[::10]


def test_lr_schedules():
    a = argparse.Namespace(lr=1.0, warmup=4, schedule="exp", lr_decay=0.5)
    assert [lr_at(s, a, 10) for s in range(4)] == [0.25, 0.5 * 0.5, 0.75 * 0.25, 0.125]
    a.schedule, a.warmup = "cosine", 0
    assert lr_at(0, a, 11) == 1.0 and lr_at(10, a, 11) == pytest.approx(0.1)
    assert lr_at(5, a, 11) == pytest.approx(0.55)
    a.schedule = "constant"
    assert lr_at(7, a, 11) == 1.0


def same(a, b) -> bool:
    """Nested dicts/lists of tensors and plain values equal, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(same, a, b))
    return a == b


def test_train_state_round_trips(tmp_path):
    """Two steps straight == one step, state_dict() (in memory, or through a checkpoint file),
    a new TrainState with other weights and another RNG state that loads it, one step: the
    same weights, Adam state, step, epoch and RNG, bit for bit."""
    config = pixelcnn.preset("tiny", in_channels=1, levels=16)
    args = argparse.Namespace(lr=0.01, warmup=2, schedule="exp", lr_decay=0.999, clip=1.0)
    cpu = torch.device("cpu")

    def step(state):       # the batch comes from the RNG: a resume must restore it too
        x = torch.randint(0, 16, (4, 1, 8, 8))
        return train_step(state, x, torch.zeros(4, dtype=torch.long), args, 10, amp=False)

    torch.manual_seed(0)
    a = TrainState(pixelcnn.build(config), args.lr, cpu)
    step(a)
    a.epoch = 1
    memory = copy.deepcopy(a.state_dict())
    save_checkpoint(a, tmp_path / "c.pt", note="kept")
    loss, norm = step(a)
    straight = copy.deepcopy(a.state_dict())
    assert straight["step"] == 2 and loss.ndim == 0 and norm > 0
    assert not same(straight["model"], memory["model"])                 # step 2 did train
    payload = checkpoint.load_payload(tmp_path / "c.pt")
    assert set(payload["metadata"]) == {"optimizer", "step", "epoch", "batch", "world_size",
                                        "rng", "note", "versions"}
    for seed, saved in [(1, memory), (2, resumed_state(payload))]:
        torch.manual_seed(seed)
        b = TrainState(pixelcnn.build(config), args.lr, cpu)
        b.load_state_dict(saved)
        step(b)
        assert same(b.state_dict(), straight), seed


@pytest.fixture
def root(tmp_path):
    write_mnist(tmp_path, n_train=40, n_test=12, size=8)
    return tmp_path


def train(root, out, *extra):
    argv = ["--dataset", "mnist", "--preset", "tiny", "--data-dir", str(root), "--out", str(out),
            "--batch-size", "8", "--limit-train", "24", "--limit-test", "8", "--n-samples", "4",
            "--warmup", "2", "--lr", "0.01", "--no-download", "--progress", "off", *extra]
    return main(argv)


def test_one_epoch_writes_everything(root, capsys):
    out = root / "run"
    res = train(root, out, "--epochs", "1", "--log-every", "1")
    printed = capsys.readouterr().out
    settings = printed[:printed.index("\nepoch 1")].splitlines()       # compact settings first
    assert settings[0].startswith(f"run: {out}") and len(settings) <= 6, settings
    assert "3 layers" in printed and str(out / "config.json") in printed
    config = json.loads((out / "config.json").read_text())             # everything, resolved
    assert config["config"]["layers"] == 3 and config["args"]["dataset"] == "mnist"
    assert {p.name for p in out.iterdir()} >= {"checkpoint.pt", "samples_epoch001.png",
                                                "metrics.jsonl", "results.json", "config.json"}
    assert Image.open(out / "samples_epoch001.png").size == (2 * 10 + 2,) * 2   # 2x2 grid of 8x8
    model, meta = pixelcnn.load(out / "checkpoint.pt", return_metadata=True)
    assert meta["dataset"] == "mnist" and meta["epoch"] == 1 and meta["step"] == 3
    assert meta["data_verified"] is False and "torch" in meta["versions"]
    assert meta["bits_per_dim"] == pytest.approx(res["bits_per_dim"])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train_bpd" in r] == [1, 2, 3]
    assert rows[-1]["test_bpd"] == pytest.approx(res["bits_per_dim"]) and "images_per_s" in rows[-1]
    saved = json.loads((out / "results.json").read_text())
    assert saved["data_verified"] is False and saved["n"] == 8 and saved["epoch"] == 1


def test_checkpoint_metadata_keys(root):
    """The checkpoint's metadata keeps the keys that --resume, tests and bench/ship.py read."""
    train(root, root / "k", "--epochs", "1", "--sample-every", "0")
    _, meta = pixelcnn.load(root / "k" / "checkpoint.pt", return_metadata=True)
    assert set(meta) == {"dataset", "split", "epoch", "step", "bits_per_dim",
                         "bits_per_dim_stderr", "test_n", "data_verified", "image_size", "args",
                         "optimizer", "rng", "versions", "batch", "world_size", "weights"}
    assert len(meta["rng"]) == 1 and set(meta["rng"][0]) == {"torch", "cuda"}   # one per rank
    assert meta["weights"] == "raw" and meta["world_size"] == 1 and meta["batch"] == 0
    assert set(meta["optimizer"]) == {"state", "param_groups"} and meta["split"] == "test"


@pytest.mark.parametrize("dataset,cond", [("binarized-mnist", "none"), ("mnist", "class")])
def test_resume_is_exact(root, dataset, cond):
    """2 epochs straight == 1 epoch, then --resume for the second (weights and Adam state)."""
    extra = ["--dataset", dataset, "--cond", cond, "--sample-every", "0"]
    train(root, root / "a", "--epochs", "2", *extra)
    train(root, root / "b", "--epochs", "1", *extra)
    first = pixelcnn.load(root / "b" / "checkpoint.pt")
    main(["--resume", str(root / "b" / "checkpoint.pt"), "--epochs", "2", "--progress", "off"])
    a, meta_a = pixelcnn.load(root / "a" / "checkpoint.pt", return_metadata=True)
    b, meta_b = pixelcnn.load(root / "b" / "checkpoint.pt", return_metadata=True)
    assert (meta_a["epoch"], meta_a["step"]) == (meta_b["epoch"], meta_b["step"]) == (2, 6)
    assert meta_b["args"]["cond"] == cond and a.config == b.config
    changed = False
    for (k, wa), wb, w1 in zip(a.state_dict().items(), b.state_dict().values(),
                               first.state_dict().values()):
        assert torch.equal(wa, wb), k
        changed |= not torch.equal(wa, w1)
    assert changed                                                   # epoch 2 did train
    sa, sb = meta_a["optimizer"]["state"], meta_b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    assert meta_a["bits_per_dim"] == meta_b["bits_per_dim"]


def test_epochs_0_evaluates_and_samples(root):
    out = root / "e0"
    res = train(root, out, "--epochs", "0", "--model", "pixelcnn")   # naive sampling: 8x8
    assert (out / "samples.png").is_file() and not (out / "checkpoint.pt").exists()
    assert res["n"] == 8 and res["bits_per_dim"] > 7


def test_autoencoder_and_class_conditional(root):
    res = train(root, root / "ae", "--epochs", "1", "--cond", "autoencoder")
    model = pixelcnn.load(root / "ae" / "checkpoint.pt")
    assert model.config.model == "autoencoder" and model.config.cond_dim == 10
    assert Image.open(root / "ae" / "samples_epoch001.png").size == (4 * 10 + 2, 2 * 10 + 2)
    assert res["bits_per_dim"] > 0
    train(root, root / "cls", "--epochs", "1", "--cond", "class", "--cond-dim", "3")
    assert pixelcnn.load(root / "cls" / "checkpoint.pt").config.num_classes == 10


def run_bad(root, capsys, *argv):
    with pytest.raises(SystemExit) as e:
        train(root, root / "bad", "--epochs", "1", *argv)
    assert e.value.code == 2
    return capsys.readouterr().err


def test_bad_input(root, capsys, tmp_path):
    assert "unknown dataset 'svhn'" in run_bad(root, capsys, "--dataset", "svhn")
    err = run_bad(root, capsys, "--dataset", "fashion-mnist")
    assert str(root / "FashionMNIST" / "raw") in err and "PIXELCNN_DATA" in err
    write_cifar(root / "cifar-10-batches-py", n=2)
    assert "must split evenly into the 3 colour groups" in \
        run_bad(root, capsys, "--dataset", "cifar", "--channels", "10")
    write_folder(root / "flat", n=12, classes=None)
    assert "has no class labels" in run_bad(root, capsys, "--dataset", f"folder:{root / 'flat'}",
                                            "--cond", "class")
    assert "--batch-size must be >= 1" in run_bad(root, capsys, "--batch-size", "0")
    assert "invalid choice: 'vq'" in run_bad(root, capsys, "--cond", "vq")
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 truncated")
    assert "corrupt or truncated" in run_bad(root, capsys, "--resume", str(tmp_path / "bad.pt"))
    train(root, root / "ok", "--epochs", "1", "--sample-every", "0")
    assert "--channels" in run_bad(root, capsys, "--resume", str(root / "ok" / "checkpoint.pt"),
                                   "--channels", "24")
    if not torch.cuda.is_available():
        assert "CUDA is not available" in run_bad(root, capsys, "--device", "cuda")


def test_python_m_train(root):
    """`python -m pixelcnn.train` trains; bad input is a message and exit 2, no traceback."""
    cmd = [sys.executable, "-m", "pixelcnn.train", "--dataset", "mnist", "--preset", "tiny",
           "--data-dir", str(root), "--out", str(root / "sub"), "--epochs", "1",
           "--batch-size", "16", "--limit-train", "16", "--limit-test", "4", "--n-samples", "1"]
    ok = subprocess.run(cmd, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (root / "sub" / "checkpoint.pt").is_file() and "bits/dim over 4 images" in ok.stdout
    bad = subprocess.run(cmd[:3] + ["--dataset", "mnist", "--data-dir", str(root / "none"),
                                    "--no-download"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert str(root / "none" / "MNIST" / "raw") in bad.stderr


def test_bad_sample_method_fails_before_training(root, capsys, monkeypatch):
    """A sampler that cannot run is refused up front: no step taken, no folder written."""
    import pixelcnn.train as train_module
    monkeypatch.setattr(train_module, "make_loader", lambda *a, **k: pytest.fail("data loaded"))
    assert "--sample-method must be one of" in run_bad(root, capsys, "--sample-method", "bogus")
    if not torch.cuda.is_available():
        err = run_bad(root, capsys, "--sample-method", "triton")
        assert "--sample-method triton cannot sample" in err and "available here" in err
    assert not (root / "bad").exists()


def test_default_runs_never_overwrite(root, monkeypatch, capsys):
    """Two runs with the default --out leave two folders; the first one's files unchanged.
    An explicit --out that holds another run is refused; --resume continues in its own."""
    monkeypatch.chdir(root)
    argv = ["--dataset", "mnist", "--preset", "tiny", "--data-dir", str(root), "--batch-size",
            "8", "--limit-train", "16", "--limit-test", "4", "--n-samples", "1", "--no-download",
            "--progress", "off", "--epochs", "1"]
    main(argv)
    first = root / "runs" / "mnist-gated-none-tiny"
    before = {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()}
    main(argv + ["--channels", "12"])
    second = root / "runs" / "mnist-gated-none-tiny-2"
    assert (second / "checkpoint.pt").is_file()
    assert {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()} == before
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(argv + ["--out", str(first)])
    assert "already holds a run" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()} == before
    main(["--resume", str(second / "checkpoint.pt"), "--epochs", "2", "--data-dir", str(root)])
    assert pixelcnn.load(second / "checkpoint.pt", return_metadata=True)[1]["epoch"] == 2
