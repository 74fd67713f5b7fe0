"""Turn a training run's checkpoint into the shipped default model (checkpoints/DATASET.pt):
score it on the reported test set, and re-save only the weights and the facts a user needs
(no optimizer or RNG state, so the file stays small).

    python -m bench.ship runs/cifar-small/checkpoint.pt checkpoints/cifar.pt --data-dir data

    python -m bench.ship checkpoints/binarized-mnist-run/checkpoint.pt \
        checkpoints/binarized-mnist.pt --data-dir ../shared/datasets

The metadata records the training command (rebuilt from the run's saved flags: those that
differ from pixelcnn.train's defaults), the epochs and training time, what it was trained
on, and the test bits/dim with its standard error on --test-dataset (default: the run's own
test set; for CIFAR-10 here the exact subset, named as such, since the full test set exists
only as a stand-in), with nats per image for binary data. A run trained with --ema holds two
sets of weights: both are scored and the better one is shipped ("shipped_weights": "ema"
or "raw"; early in a run the average still carries much of the initial weights).
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pixelcnn
from pixelcnn.cli import Parser, fail
from pixelcnn.data import load_dataset, make_loader
from pixelcnn.evaluate import evaluate

from . import curve
from .common import describe_data

STAND_INS = {   # data sets that exist here only as stand-ins
    "cifar": "the CIFAR-10 stand-in built by ../shared/datasets/cifar10/build_cifar10.py "
             "(original order and labels; rows 0-1016 of each batch exact, the rest decoded "
             "from JPEG copies: md5 mismatch)",
}


def training_data(dataset: str, limit) -> str:
    which = f"the first {limit:,} training images" if limit else "all training images"
    return f"{which} of {STAND_INS.get(dataset, dataset)}"


def train_command(args: dict) -> str:
    """`python -m pixelcnn.train --dataset D --preset P ...` with the other flags that differ
    from their defaults."""
    from pixelcnn.train import build_parser
    defaults = vars(build_parser().parse_args([]))
    parts = ["python", "-m", "pixelcnn.train", "--dataset", args["dataset"],
             "--preset", args["preset"]]
    for k, v in args.items():
        if k in defaults and v != defaults[k] and k not in ("dataset", "preset", "resume"):
            flag = "--" + k.replace("_", "-")
            parts += [flag] if v is True else [flag, str(v)]
    return shlex.join(parts)


def training_seconds(run_dir: Path, batch: int, step: int) -> float:
    """The run's training time to `step` (bench.curve.training_seconds, at the last metrics
    line up to it), 0 if unknown."""
    try:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return 0.0
    clock = curve.training_seconds([json.loads(line) for line in lines if line.strip()], batch)
    return max((t for s, t in clock.items() if s <= step), default=0.0)


TEST_SETS = {"cifar": "cifar-exact"}   # the run's data set -> the test set scored by default


def best_weights(path, model, meta, test):
    """(model, "ema" or "raw", {weights: test result}): a run with EMA weights is scored with
    both sets and the better one kept; otherwise the one set."""
    loader = make_loader(test, 64)
    scores = {meta["weights"]: evaluate(model, loader, progress=True)}
    if meta["weights"] == "ema":
        raw = pixelcnn.load(path, ema=False)
        scores["raw"] = evaluate(raw, loader, progress=True)
        if scores["raw"]["bits_per_dim"] < scores["ema"]["bits_per_dim"]:
            return raw, "raw", scores
    return model, meta["weights"], scores


def main(argv=None) -> dict:
    p = Parser(prog="python -m bench.ship", description=__doc__.split("\n")[0])
    p.add_argument("run_checkpoint", help="checkpoint.pt written by pixelcnn.train")
    p.add_argument("out", help="where to write the shipped model (e.g. checkpoints/cifar.pt)")
    p.add_argument("--test-dataset", help="data set of the reported test bits/dim (default: "
                   "the run's: cifar-exact for cifar)")
    p.add_argument("--data-dir", help="data root (default: $PIXELCNN_DATA, else ./data)")
    args = p.parse_args(argv)
    try:
        if Path(args.out).is_dir():
            raise ValueError(f"{args.out} is a folder: give the file to write, e.g. "
                             "checkpoints/cifar.pt")
        model, meta = pixelcnn.load(args.run_checkpoint, return_metadata=True)
        if "args" not in meta:
            raise ValueError(f"{args.run_checkpoint} was not written by pixelcnn.train")
        test_name = args.test_dataset or TEST_SETS.get(meta["dataset"], meta["dataset"])
        test = load_dataset(test_name, "test", args.data_dir, levels=model.config.levels,
                            image_size=meta["image_size"][0], download=False)
    except (ValueError, FileNotFoundError) as e:
        fail(p.prog, str(e))
    model, weights, scores = best_weights(args.run_checkpoint, model, meta, test)
    dataset = meta["dataset"]
    facts = {
        "dataset": dataset, "image_size": meta["image_size"],
        "train_command": train_command(meta["args"]), "epochs": meta["epoch"],
        "steps": meta["step"], "training_seconds": round(training_seconds(
            Path(args.run_checkpoint).parent, meta["args"]["batch_size"], meta["step"])),
        "training_data": training_data(dataset, meta["args"].get("limit_train")),
        "data_verified": bool(meta.get("data_verified")),
        "test_bits_per_dim": {"name": describe_data(test), **scores[weights],
                              "data_verified": test.data_verified},
        "shipped_weights": weights, "weights_scores": scores,
    }
    path = pixelcnn.save(model, args.out, **facts)
    print(json.dumps(facts, indent=2))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return facts


if __name__ == "__main__":
    main(sys.argv[1:])
