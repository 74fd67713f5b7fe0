"""Training at scale (issue 13): several processes (torchrun, gloo on the CPU) train as one
process with the same global batch; only rank 0 writes; a killed distributed run resumes
exactly; micro-batches give the update of the whole batch; EMA weights are kept, saved,
evaluated and sampled; the training step compiles without graph breaks."""
import argparse
import json
import os
import subprocess
import sys

import pytest
import torch

import pixelcnn
from datafixtures import write_mnist
from pixelcnn import checkpoint
from pixelcnn.distributed import World
from pixelcnn.train import main
from pixelcnn.training import EMA, GlobalBatches, TrainState, train_step

pytestmark = pytest.mark.filterwarnings("ignore:.*data_verified=false:UserWarning")

COMMON = ["--dataset", "mnist", "--preset", "tiny", "--batch-size", "8", "--limit-test", "10",
          "--n-samples", "2", "--warmup", "2", "--lr", "0.01", "--no-download",
          "--progress", "off", "--log-every", "1", "--sample-every", "0", "--ema", "0.9"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_mnist(root, n_train=60, n_test=12, size=8)
    return root


def torchrun(n, target, args, cwd, ok=True):
    """`torchrun --standalone --nproc_per_node n` of a module (-m) or a script, in cwd."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={n}", *target, *args]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if ok:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def relative(a: dict, b: dict) -> float:
    """Largest ||a - b|| / ||a|| over the tensors of two state dicts. (A per-tensor norm, not
    per element: Adam divides by sqrt(v), so a coordinate whose gradient is near zero turns a
    rounding difference of the summation order into a visible step of its own.)"""
    return max(float((x - y).norm() / x.norm().clamp_min(1e-12))
               for x, y in zip(a.values(), b.values()))


def test_two_processes_train_as_one(data, tmp_path):
    """2 ranks x 2 micro-batches == 1 process, 1 batch: weights, EMA, Adam and metrics; the
    27-image set ends in a 3-image batch (a rank's share of a micro-batch is empty there)."""
    args = COMMON + ["--data-dir", str(data), "--limit-train", "27", "--epochs", "2"]
    one = main(args + ["--out", str(tmp_path / "one")])
    done = torchrun(2, ["-m", "pixelcnn.train"], args + ["--out", "two", "--accumulate", "2"],
                    tmp_path)
    assert "2 processes (DDP)" in done.stdout and done.stdout.count("epoch 2:") == 1
    a, meta_a = pixelcnn.load(tmp_path / "one" / "checkpoint.pt", ema=False, return_metadata=True)
    b, meta_b = pixelcnn.load(tmp_path / "two" / "checkpoint.pt", ema=False, return_metadata=True)
    assert (meta_b["step"], meta_b["world_size"], len(meta_b["rng"])) == (8, 2, 2)
    assert relative(a.state_dict(), b.state_dict()) < 1e-5
    assert relative(meta_a["ema"], meta_b["ema"]) < 1e-5
    adam = lambda m: {i: s["exp_avg"] for i, s in m["optimizer"]["state"].items()}
    assert relative(adam(meta_a), adam(meta_b)) < 1e-4
    rows = [json.loads(r) for r in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train_bpd" in r] == list(range(1, 9))     # once each
    ref = [json.loads(r) for r in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    for r, s in zip(rows, ref):
        for k in ("train_bpd", "test_bpd", "test_bpd_raw"):
            assert (k in r) == (k in s) and r.get(k, 0) == pytest.approx(s.get(k, 0), rel=1e-5)
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["bits_per_dim"] == pytest.approx(one["bits_per_dim"], rel=1e-5) and two["n"] == 10
    # rank 0 alone wrote: one folder, each file once
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if p.name != "tb") == [
        "checkpoint.pt", "config.json", "metrics.jsonl", "results.json", "samples_epoch002.png"]


KILLED = """
import os, sys
import pixelcnn.train as train
real = train.train_step
def dying(state, *a, **k):        # the process dies inside update 10: a kill, not an exit
    out = real(state, *a, **k)
    if state.step == 10:
        os._exit(3)
    return out
train.train_step = dying
train.main(sys.argv[1:])
"""


def test_killed_distributed_run_resumes_exactly(data, tmp_path):
    """2 ranks killed in update 10 (7 updates an epoch, --checkpoint-every 4: the last
    checkpoint is update 8, mid-epoch 2), resumed by 2 ranks == 2 ranks straight, bit for bit;
    resumed by 1 process: at the start of the next epoch, and it says so."""
    args = COMMON + ["--data-dir", str(data), "--limit-train", "56", "--epochs", "3"]
    torchrun(2, ["-m", "pixelcnn.train"], args + ["--out", "straight"], tmp_path)
    (tmp_path / "killed.py").write_text(KILLED)
    died = torchrun(2, ["killed.py"], args + ["--out", "run", "--checkpoint-every", "4"],
                    tmp_path, ok=False)
    assert died.returncode != 0
    _, meta = pixelcnn.load(tmp_path / "run" / "checkpoint.pt", return_metadata=True)
    assert (meta["step"], meta["epoch"], meta["batch"]) == (8, 1, 1)
    snapshot = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    done = torchrun(2, ["-m", "pixelcnn.train"], ["--resume", "run/checkpoint.pt"], tmp_path)
    assert "epoch 1, step 8, global batch 1 of the epoch" in done.stdout
    a, meta_a = pixelcnn.load(tmp_path / "straight" / "checkpoint.pt", ema=False,
                              return_metadata=True)
    b, meta_b = pixelcnn.load(tmp_path / "run" / "checkpoint.pt", ema=False,
                              return_metadata=True)
    assert meta_b["step"] == meta_a["step"] == 21
    for (k, wa), wb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(wa, wb), k
    assert all(torch.equal(meta_a["ema"][k], meta_b["ema"][k]) for k in meta_a["ema"])
    # another number of processes: the rest of the interrupted epoch is skipped, with a note
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "checkpoint.pt").write_bytes(snapshot)
    res = main(["--resume", str(tmp_path / "again" / "checkpoint.pt"), "--progress", "off"])
    assert res["step"] == 8 + 7 and res["epoch"] == 3


def tiny_state(accumulate, seed=0):
    torch.manual_seed(seed)
    model = pixelcnn.build(pixelcnn.preset("tiny", in_channels=1, levels=16, num_classes=10))
    return TrainState(model, 0.01, torch.device("cpu"), ema=0.5)


def test_accumulation_is_the_update_of_the_whole_batch():
    """--accumulate K: the K micro-batches' summed gradients are the whole batch's mean's:
    the same weights (and EMA) after two updates as one micro-batch, to float rounding."""
    args = argparse.Namespace(lr=0.01, warmup=0, schedule="constant", lr_decay=1.0, clip=0.0)
    g = torch.Generator().manual_seed(1)
    data = [(torch.randint(0, 16, (7, 1, 8, 8), generator=g),
             torch.randint(0, 10, (7,), generator=g)) for _ in range(2)]
    states = {}
    for k in (1, 3):
        state = tiny_state(k)
        batches = GlobalBatches(7, 7, 0, k, World())
        for x, y in data:
            loss, _ = train_step(state, x, y, args, 2, False, batches.layout(0))
        states[k] = (state, loss)
    (a, la), (b, lb) = states[1], states[3]
    assert [length for _, length, _ in GlobalBatches(7, 7, 0, 3, World()).layout(0)[1]] == [3, 2, 2]
    assert relative(a.model.state_dict(), b.model.state_dict()) < 1e-5
    assert relative(a.ema.state_dict(), b.ema.state_dict()) < 1e-5
    assert float(la) == pytest.approx(float(lb), rel=1e-6)


def test_global_batches_split_over_ranks_and_micro_batches():
    """Each global batch's images, split over micro-batches and ranks, are each used once;
    concatenated in (micro-batch, rank) order they are the batch itself."""
    n, batch = 23, 8
    whole = GlobalBatches(n, batch, 5, 1, World())
    for k, ranks in [(1, 2), (2, 2), (3, 4)]:
        shares = [GlobalBatches(n, batch, 5, k, World(r, ranks)) for r in range(ranks)]
        for b in range(len(whole)):
            got = []
            for m in range(k):
                for s in shares:
                    start, length, real = s.layout(b)[1][m]
                    offset = sum(p[1] for p in s.layout(b)[1][:m])
                    got += s.indices(b)[offset:offset + length] if real else []
            assert got == whole.indices(b), (k, ranks, b)
    assert len(GlobalBatches(n, batch, 5, 1, World(), skip=2)) == 1


def test_ema_update_and_checkpoint(data, tmp_path):
    """EMA: ema = d * ema + (1 - d) * weights, d = min(decay, (1 + t) / (10 + t)) after update
    t; a run with --ema saves both, reports both, and pixelcnn.load / pixelcnn.evaluate use the
    EMA weights unless told otherwise."""
    model = pixelcnn.build(pixelcnn.preset("tiny", in_channels=1, levels=16))
    ema = EMA(model, 0.75)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model, 10_000)                                  # past the warmup: d = 0.75
    for k, v in model.state_dict().items():
        torch.testing.assert_close(ema.state_dict()[k], 0.75 * before[k] + 0.25 * v)
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(2) == pytest.approx(0.25)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    ema.update(model, 0)                                       # update 0: d = 0.1
    for k, v in model.state_dict().items():
        torch.testing.assert_close(ema.state_dict()[k], 0.1 * before[k] + 0.9 * v)
    with pytest.raises(ValueError, match="--ema must be in"):
        EMA(model, 1.0)

    out = tmp_path / "ema"
    res = main(COMMON + ["--data-dir", str(data), "--limit-train", "16", "--epochs", "1",
                         "--out", str(out)])
    averaged, meta = pixelcnn.load(out / "checkpoint.pt", return_metadata=True)
    raw, meta_raw = pixelcnn.load(out / "checkpoint.pt", ema=False, return_metadata=True)
    assert (meta["weights"], meta_raw["weights"]) == ("ema", "raw") and res["weights"] == "ema"
    assert all(torch.equal(v, meta["ema"][k]) for k, v in averaged.state_dict().items())
    assert not all(torch.equal(v, raw.state_dict()[k]) for k, v in averaged.state_dict().items())
    assert meta["bits_per_dim"] == pytest.approx(res["bits_per_dim"])
    assert meta["bits_per_dim_raw"] != meta["bits_per_dim"]
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["test_bpd_raw"] == meta["bits_per_dim_raw"]
    base = ["--checkpoint", str(out / "checkpoint.pt"), "--data-dir", str(data), "--limit", "10",
            "--progress", "off"]
    assert pixelcnn.evaluate.main(base)["bits_per_dim"] == pytest.approx(meta["bits_per_dim"])
    assert pixelcnn.evaluate.main(base + ["--no-ema"])["bits_per_dim"] == \
        pytest.approx(meta["bits_per_dim_raw"])
    main(COMMON + ["--data-dir", str(data), "--limit-train", "8", "--epochs", "1",
                   "--ema", "0", "--out", str(tmp_path / "plain")])
    with pytest.raises(SystemExit):          # --ema on a checkpoint without EMA weights
        main(["--resume", str(tmp_path / "plain" / "checkpoint.pt"), "--ema", "0.9",
              "--epochs", "2"])


def test_training_step_compiles_without_graph_breaks():
    """torch.compile traces the training forward and loss in one graph (the input checks'
    value tests, a graph break, run in eager mode only)."""
    import torch._dynamo
    model = pixelcnn.build(pixelcnn.preset("tiny", in_channels=1, levels=16, num_classes=10))
    x, y = torch.randint(0, 16, (4, 1, 8, 8)), torch.randint(0, 10, (4,))
    explained = torch._dynamo.explain(lambda x, y: pixelcnn.bits_per_dim(model(x, y=y), x))(x, y)
    assert explained.graph_break_count == 0, explained.break_reasons
    with pytest.raises(ValueError, match="values must lie"):
        model(x + 16, y=y)                 # eager still checks the values
