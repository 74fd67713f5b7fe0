"""The benchmark code itself (bench/): `python -m bench.sample` end to end on a tiny model,
with and without test data, its result files and errors; `python -m bench.compare`; the
shipped default model."""
import json

import pytest
import torch

import pixelcnn
from bench import compare, sample, ship
from bench.common import DEFAULT_CHECKPOINTS
from datafixtures import write_cifar, write_mnist
from helpers import make_model

RECORD_KEYS = {"method", "batch_size", "dtype", "device", "seconds_per_batch", "images_per_s",
               "us_per_step", "speedup_vs_naive", "naive_timing"}
# --threads 1: a small model's matrix products gain nothing from threads, and on a busy
# 2-core machine OpenMP's synchronisation made these tests 20x slower
FAST = ["--size", "6", "6", "--batch-sizes", "1,2", "--naive-steps", "2", "--repeat", "1",
        "--gate-size", "4", "4", "--gate-batch", "2", "--device", "cpu", "--no-download",
        "--threads", "1"]


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()      # bench.sample --threads sets them process-wide
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    pixelcnn.save(make_model(dtype=torch.float32), path, dataset="cifar", image_size=[32, 32])
    return path


def run(tmp_path, checkpoint, *extra):
    return sample.main(["--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"),
                        *FAST, *extra])


def test_sample_with_data(tmp_path, tiny_checkpoint, capsys):
    write_cifar(tmp_path / "data" / "cifar-10-exact-subset" / "cifar-10-batches-py")
    result = run(tmp_path, tiny_checkpoint, "--data-dir", str(tmp_path / "data"))
    stdout = capsys.readouterr().out
    assert "machine: cpu" in stdout and "correctness gate" in stdout and "speedup" in stdout
    assert not result["failed"]
    methods = [m for m in ("naive", "cached", "native") if m not in result["skipped_methods"]]
    assert "triton" in result["skipped_methods"]                  # CPU: skipped with a reason
    assert all(result["gate"][m]["passed"] for m in methods)
    assert result["gate"]["cached"]["identical_rate"] == 1.0
    assert result["gate"]["cached"]["max_abs_dlogits"] < 1e-4
    assert [(r["method"], r["batch_size"]) for r in result["records"]] == \
        [(m, b) for b in (1, 2) for m in methods]
    for r in result["records"]:
        assert RECORD_KEYS <= set(r) and r["naive_timing"] == "extrapolated:2"
        assert r["seconds_per_batch"] > 0 and r["speedup_vs_naive"] > 0
    assert result["data"]["name"].startswith("cifar-exact (CIFAR-10 test, exact subset of 6")
    assert result["data"]["data_verified"] is False                # random stand-in files
    bits = result["bits_per_dim"]
    assert bits["test"]["n"] == 6 and bits["test"]["forwards"]["torch"]["bits_per_dim"] > 0
    tf = bits["teacher_forced"]["bits_per_dim"]
    assert tf["cached"] == pytest.approx(tf["torch"], abs=1e-5)
    assert bits["samples"]["methods"]["cached"]["n"] == 3           # 1 + 2 drawn while timing
    assert "skipped" in bits["samples"]["methods"]["naive"]

    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    stem = files[0].split("-cpu-")[0] + "-cpu-cifar"
    assert f"{stem}.json" in files and f"{stem}.md" in files and f"{stem}-cached.png" in files
    saved = json.loads((tmp_path / "out" / f"{stem}.json").read_text())
    assert set(saved) >= {"machine", "model", "data", "records", "bits_per_dim", "gate"}
    assert {"device", "torch", "triton", "commit", "threads", "dtype"} <= set(saved["machine"])
    assert "| cached | 1 |" in (tmp_path / "out" / f"{stem}.md").read_text()


def test_sample_without_data(tmp_path, tiny_checkpoint, capsys):
    result = run(tmp_path, tiny_checkpoint, "--data-dir", str(tmp_path / "empty"),
                 "--methods", "cached")
    assert "no test data" in result["bits_per_dim"]["test"]["skipped"]
    assert "skipped" in result["data"] and result["data"]["data_verified"] is False
    assert {r["method"] for r in result["records"]} == {"naive", "cached"}
    assert result["bits_per_dim"]["teacher_forced"]["images"] == "random"
    assert "test bits/dim: skipped (no test data" in capsys.readouterr().out


def test_gate_failure_is_not_timed(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    from bench import gate
    real = gate.fast_logits
    monkeypatch.setattr(gate, "fast_logits", lambda *a: real(*a) + 0.1)   # a broken cache
    result = run(tmp_path, tiny_checkpoint, "--data-dir", str(tmp_path), "--methods", "cached")
    assert result["failed"] == ["cached"] and not result["gate"]["cached"]["passed"]
    assert "max |Δlogits|" in result["gate"]["cached"]["why"]
    assert {r["method"] for r in result["records"]} == {"naive"}
    assert "GATE FAILED: cached" in capsys.readouterr().out


@torch.no_grad()
def test_gate_reports_the_cdf_margin_at_each_images_first_difference():
    """cdf_margins: for each image that differs, |u - nearest reference CDF boundary| at its
    first difference in sampling order (row, column, channel), not at a later one."""
    from bench.gate import cdf_margins, first_differences
    model = make_model(dtype=torch.float32, layers=2, in_channels=3, levels=16)
    n, size = 3, (3, 4)
    u = torch.rand(n, 3, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ref = pixelcnn.sample(model, n, size, uniforms=u, method="naive")
    got = ref.clone()
    got[1, 2, 0, 3] = (ref[1, 2, 0, 3] + 1) % 16          # row 0, column 3, channel 2: first
    got[1, 0, 2, 1] = (ref[1, 0, 2, 1] + 1) % 16          # row 2: later
    got[2, 1, 1, 0] = (ref[2, 1, 1, 0] + 1) % 16
    cdf = torch.softmax(model(ref).double(), 1).cumsum(1)[:, :-1]     # [n, V - 1, C, H, W]
    for b, c, i, j in ((1, 2, 0, 3), (2, 1, 1, 0)):                  # plant a near-tie
        u[b, c, i, j] = float(cdf[b, 7, c, i, j]) + 3e-9
    firsts = first_differences(ref, got)
    assert firsts == {1: (0, 3, 2), 2: (1, 0, 1)}
    assert cdf_margins(model, ref, firsts, u) == pytest.approx([3e-9, 3e-9], abs=1e-12)
    assert cdf_margins(model, ref, first_differences(ref, ref), u) == []


@pytest.mark.parametrize("args, message", [
    (["--checkpoint", "TINY", "--methods", "fast"], "unknown method"),
    (["--checkpoint", "TINY", "--methods", "triton"], "CUDA only"),
    (["--checkpoint", "TINY", "--batch-sizes", "0"], "--batch-sizes must be positive"),
    (["--dataset", "mnist"], "no shipped model for --dataset mnist"),
])
def test_sample_bad_input(tmp_path, tiny_checkpoint, capsys, args, message):
    argv = [str(tiny_checkpoint) if a == "TINY" else a for a in args]
    with pytest.raises(SystemExit):
        sample.main(argv + ["--out", str(tmp_path), "--device", "cpu"])
    assert message in capsys.readouterr().err


def test_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit):
        sample.main(["--checkpoint", str(tmp_path / "nope.pt")])
    assert "does not exist" in capsys.readouterr().err


def test_shipped_model():
    """The default model ships, small, with its training command and exact-subset bits/dim."""
    path = DEFAULT_CHECKPOINTS["cifar"]
    assert path.stat().st_size < 20e6
    model, meta = pixelcnn.load(path, return_metadata=True)
    assert meta["dataset"] == "cifar" and meta["image_size"] == [32, 32]
    assert "python -m pixelcnn.train" in meta["train_command"]
    test = meta["test_bits_per_dim"]
    assert test["name"].startswith("cifar-exact") and test["n"] == 1017
    assert 2.5 < test["bits_per_dim"] < 8 and meta["data_verified"] is False


def test_shipped_binarized_mnist_model(tmp_path):
    """Issue 15: the binarized-MNIST model ships small, scored in nats on the 10,000 test
    images with its command, and is bench.sample's default for --dataset binarized-mnist."""
    path = DEFAULT_CHECKPOINTS["binarized-mnist"]
    assert path.stat().st_size < 5e6
    model, meta = pixelcnn.load(path, return_metadata=True)
    assert meta["dataset"] == "binarized-mnist" and model.config.levels == 2
    test = meta["test_bits_per_dim"]
    assert test["n"] == 10000 and test["data_verified"] and 78 < test["nats_per_image"] < 90
    assert meta["train_command"].startswith(
        "python -m pixelcnn.train --dataset binarized-mnist")
    write_mnist(tmp_path / "data", size=28)                 # intensities 0..255, binarized
    out = sample.main(["--dataset", "binarized-mnist", "--data-dir", str(tmp_path / "data"),
                       "--out", str(tmp_path / "out"), *FAST, "--methods", "cached",
                       "--eval-images", "8", "--samples-per-method", "2", "--no-download"])
    assert out["model"]["config"]["levels"] == 2 and not out["failed"]
    assert out["bits_per_dim"]["test"]["n"] == 8     # the gate and the scores: binary images


@pytest.mark.filterwarnings("ignore:.*md5")                  # random stand-in MNIST files
def test_ship(tmp_path):
    """A training run's checkpoint -> a small shipped model with its facts."""
    from pixelcnn import train
    write_mnist(tmp_path / "data")
    train.main(["--dataset", "mnist", "--preset", "tiny", "--data-dir", str(tmp_path / "data"),
                "--out", str(tmp_path / "run"), "--batch-size", "8", "--limit-train", "16",
                "--epochs", "1", "--n-samples", "2", "--no-download", "--progress", "off"])
    facts = ship.main([str(tmp_path / "run" / "checkpoint.pt"), str(tmp_path / "m.pt"),
                       "--test-dataset", "mnist", "--data-dir", str(tmp_path / "data")])
    model, meta = pixelcnn.load(tmp_path / "m.pt", return_metadata=True)
    assert meta["train_command"] == facts["train_command"]
    command = meta["train_command"]
    assert command.startswith("python -m pixelcnn.train --dataset mnist --preset tiny")
    assert "--limit-train 16" in command and "--resume" not in command
    assert meta["test_bits_per_dim"]["n"] == 12 and meta["epochs"] == 1
    assert "optimizer" not in meta
    assert (tmp_path / "m.pt").stat().st_size < (tmp_path / "run" / "checkpoint.pt").stat().st_size


@pytest.mark.filterwarnings("ignore:.*md5")                  # random stand-in MNIST files
def test_ship_keeps_the_better_of_ema_and_raw_weights(tmp_path):
    """A run trained with --ema: both weight sets are scored on the run's own test set (no
    --test-dataset) and the better one ships, its score the one reported."""
    from pixelcnn import train
    write_mnist(tmp_path / "data")
    train.main(["--dataset", "mnist", "--preset", "tiny", "--data-dir", str(tmp_path / "data"),
                "--out", str(tmp_path / "run"), "--batch-size", "8", "--limit-train", "16",
                "--epochs", "1", "--ema", "0.999", "--n-samples", "2", "--no-download",
                "--progress", "off"])
    facts = ship.main([str(tmp_path / "run" / "checkpoint.pt"), str(tmp_path / "m.pt"),
                       "--data-dir", str(tmp_path / "data")])
    scores = facts["weights_scores"]
    assert set(scores) == {"ema", "raw"}
    best = min(scores, key=lambda w: scores[w]["bits_per_dim"])
    assert facts["shipped_weights"] == best
    assert facts["test_bits_per_dim"]["bits_per_dim"] == scores[best]["bits_per_dim"]
    shipped = pixelcnn.load(tmp_path / "m.pt")
    expected = pixelcnn.load(tmp_path / "run" / "checkpoint.pt", ema=best == "ema")
    for a, b in zip(shipped.state_dict().values(), expected.state_dict().values()):
        assert torch.equal(a, b)


def test_curve_reads_a_runs_test_scores_in_nats(tmp_path, capsys):
    """bench.curve: one row per evaluated epoch (a resumed epoch's score replaces the earlier),
    bits/dim and, for binary data, nats per image (x 784 ln 2 at 28x28x1); training time from
    the metrics lines' rates, summed across segments, steps trained again counted once."""
    import math
    from bench import curve
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({
        "args": {"batch_size": 10}, "config": {"in_channels": 1},
        "test": {"dataset": "binarized-mnist", "levels": 2, "image_size": [28, 28]}}))
    rows = [{"step": 50, "epoch": 1, "train_bpd": 0.2, "images_per_s": 50.0},       # 10 s
            {"step": 100, "epoch": 1, "test_bpd": 0.2, "test_stderr": 0.001,
             "epoch_time_s": 20.0, "images_per_s": 25.0, "test_bpd_raw": 0.16},     # 20 s
            {"step": 150, "epoch": 2, "train_bpd": 0.2, "images_per_s": 10.0},      # killed,
            {"step": 150, "epoch": 2, "train_bpd": 0.2, "images_per_s": 20.0},      # resumed
            {"step": 200, "epoch": 2, "test_bpd": 0.18, "test_stderr": 0.001,       # 25 s
             "epoch_time_s": 40.0, "images_per_s": 20.0},
            {"step": 200, "epoch": 2, "test_bpd": 0.15, "test_stderr": 0.001,
             "epoch_time_s": 65.0, "images_per_s": 20.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = curve.main([str(run), "--out", str(tmp_path / "out" / "bm"), "--target", "81.3"])
    nats = 784 * math.log(2)
    assert [r["epoch"] for r in got["epochs"]] == [1, 2]
    assert got["epochs"][0]["test_nats_raw"] == pytest.approx(0.16 * nats)
    assert got["epochs"][1]["test_nats"] == pytest.approx(0.15 * nats)
    assert [r["train_s"] for r in got["epochs"]] == [10 + 20, 10 + 20 + 25 + 25]
    assert got["best"]["epoch"] == 2
    assert json.loads((tmp_path / "out" / "bm-curve.json").read_text())["target"] == 81.3
    with pytest.raises(SystemExit):
        curve.main([str(tmp_path), "--out", str(tmp_path / "x")])
    assert "not a training run folder" in capsys.readouterr().err


def bench_json(path, ratio, median, cpu="cpu A"):
    path.write_text(json.dumps({"machine_info": {"cpu": {"brand_raw": cpu}}, "benchmarks": [
        {"fullname": "t::a", "stats": {"median": median}, "extra_info": {"ratio": ratio}}]}))
    return str(path)


@pytest.mark.parametrize("ratio, median, flags, code, verdict", [
    (10.0, 1.1, [], 0, "ok"),
    (7.0, 1.0, [], 1, "REGRESSION: ratio lower"),
    (10.0, 1.5, [], 1, "REGRESSION: slower"),
    (10.0, 1.5, ["--ratio-only"], 0, "ok"),
    (10.0, 1.5, ["--threshold", "0.6"], 0, "ok"),
])
def test_compare(tmp_path, capsys, ratio, median, flags, code, verdict):
    base = bench_json(tmp_path / "base.json", 10.0, 1.0)
    new = bench_json(tmp_path / "run.json", ratio, median)
    assert compare.main([base, new, *flags]) == code
    assert verdict in capsys.readouterr().out


def test_compare_missing_test(tmp_path, capsys):
    base = bench_json(tmp_path / "base.json", 10.0, 1.0)
    (tmp_path / "run.json").write_text(json.dumps({"machine_info": {}, "benchmarks": []}))
    assert compare.main([base, str(tmp_path / "run.json")]) == 1
    assert "MISSING" in capsys.readouterr().out


def test_bench_uses_ema_weights_unless_no_ema(tmp_path):
    """A checkpoint trained with --ema benchmarks its EMA weights by default (recorded in
    the results' model info), its raw ones with --no-ema."""
    from bench.common import load_model, model_info
    model = make_model(dtype=torch.float32)
    ema = {k: v + 1.0 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    pixelcnn.save(model, tmp_path / "e.pt", ema=ema)
    for flag, want, weights in ((True, ema, "ema"), (False, model.state_dict(), "raw")):
        got, meta, path = load_model(str(tmp_path / "e.pt"), None, torch.device("cpu"),
                                     "float32", ema=flag)
        assert all(torch.equal(v, want[k]) for k, v in got.state_dict().items())
        assert model_info(got, meta, path)["weights"] == weights
    assert "--no-ema" in sample.build_parser().format_help()


def test_vqvae_prior_preset(tmp_path, capsys):
    """--dataset vqvae-prior: a random-weight prior over 512 codes with a learned embedding,
    class-conditional; every available method gated and timed against naive, no test data."""
    res = sample.main(["--dataset", "vqvae-prior", "--size", "4", "4", "--batch-sizes", "1",
                       "--naive-steps", "1", "--repeat", "1", "--gate-batch", "2",
                       "--samples-per-method", "2", "--out", str(tmp_path)])
    cfg = res["model"]["config"]
    assert (cfg["levels"], cfg["embedding_dim"], cfg["num_classes"]) == (512, 64, 10)
    assert res["model"]["checkpoint"] == "random:vqvae-prior" and not res["failed"]
    assert {r["method"] for r in res["records"]} >= {"naive", "cached"}
    assert "random weights" in res["bits_per_dim"]["test"]["skipped"]


def test_timings_record_every_kernel_switch(monkeypatch):
    """Every PIXELCNN_GRID_* switch the kernels read is recorded beside a timing
    (bench.common.machine's env), so that bench.roofline files it under its design (a prefetch
    run without PIXELCNN_GRID_PREFETCH in its JSON would be read as plain PDL)."""
    import re
    from pathlib import Path

    from bench.common import TIMING_ENV, machine
    root = Path(__file__).resolve().parents[1]
    read = {name for path in [*(root / "kernels").glob("*.py"),
                              *(root / "pixelcnn").rglob("*.py")]
            for name in re.findall(r'"(PIXELCNN_GRID_[A-Z_]+)"', path.read_text())}
    assert read and read <= set(TIMING_ENV), read - set(TIMING_ENV)
    monkeypatch.setenv("PIXELCNN_GRID_PREFETCH", "1")
    assert machine(torch.device("cpu"), "bf16")["env"]["PIXELCNN_GRID_PREFETCH"] == "1"
