"""The learning curve of a training run: test NLL against epoch, from its metrics.jsonl.

    python -m bench.curve checkpoints/binarized-mnist-run --out bench/results/binarized-mnist

Writes OUT-curve.json (per evaluated epoch: step, training time so far, the test bits/dim of the
weights the run evaluated - the EMA when trained with --ema - with its standard error, the raw
weights' bits/dim when there is an EMA, and for binary data the same in nats per image, the
unit of the binarized-MNIST literature) and OUT-curve.png (when matplotlib is installed).
A reference line (e.g. --target 81.3, the paper's nats) is drawn and reported.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from pixelcnn.cli import Parser, fail


def training_seconds(records: list, batch: int) -> dict:
    """{step: seconds of training to reach it} at every step whose metrics line has a rate
    (images_per_s: of its segment's part of the epoch so far), for a global batch of `batch`
    images. Sums a run trained in segments whole (an epoch's epoch_time_s counts only the
    segment that finished it); steps a resumed segment trained again count once (the later
    line replaces the earlier). Evaluation is not counted."""
    rates = {m["step"]: m["images_per_s"] for m in records if m.get("images_per_s")}
    clock, t, prev = {}, 0.0, 0
    for step in sorted(rates):
        t += (step - prev) * batch / rates[step]
        clock[step], prev = t, step
    return clock


def read_curve(run: Path) -> dict:
    """{"dataset", "dims", "binary", "epochs": [...]} from a run folder's config.json and
    metrics.jsonl; ValueError saying what is missing."""
    try:
        config = json.loads((run / "config.json").read_text())
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except OSError as e:
        raise ValueError(f"{run} is not a training run folder (config.json and metrics.jsonl "
                         f"written by pixelcnn.train): {e}") from None
    test = config["test"]
    dims = test["image_size"][0] * test["image_size"][1] * config["config"]["in_channels"]
    binary = test["levels"] == 2
    nats = dims * math.log(2)
    records = [json.loads(line) for line in filter(str.strip, lines)]
    clock = training_seconds(records, config["args"]["batch_size"])
    epochs = {}
    for m in records:
        if "test_bpd" not in m:
            continue
        row = {"epoch": m["epoch"], "step": m["step"], "train_s": round(clock[m["step"]]),
               "test_bpd": m["test_bpd"], "test_stderr": m.get("test_stderr")}
        if "test_bpd_raw" in m:
            row["test_bpd_raw"] = m["test_bpd_raw"]
        if binary:
            row.update({k.replace("bpd", "nats").replace("stderr", "nats_stderr"): v * nats
                        for k, v in list(row.items()) if k.startswith("test_") and v is not None})
        epochs[m["epoch"]] = row                 # a resumed epoch's score replaces the earlier
    if not epochs:
        raise ValueError(f"{run}/metrics.jsonl has no test evaluation yet (one per epoch)")
    return {"run": str(run), "dataset": test["dataset"], "dims": dims, "binary": binary,
            "epochs": [epochs[e] for e in sorted(epochs)]}


def plot(curve: dict, path: Path, target) -> bool:
    """The curve as a PNG; False when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    unit = "nats" if curve["binary"] else "bpd"
    rows = curve["epochs"]
    x = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, [r[f"test_{unit}"] for r in rows], "o-", label="evaluated weights (EMA if any)")
    if any(f"test_{unit}_raw" in r for r in rows):
        ax.plot(x, [r.get(f"test_{unit}_raw") for r in rows], "s--", label="raw weights")
    if target:
        ax.axhline(target, color="grey", linestyle=":", label=f"target {target}")
    best = min(min(v for k, v in r.items() if k.startswith(f"test_{unit}") and "stderr"
                   not in k) for r in rows)
    ax.set_ylim(min(best, target or best) * 0.98, best * 1.15)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"test NLL ({'nats per image' if unit == 'nats' else 'bits/dim'})")
    ax.set_title(f"{curve['dataset']}: {Path(curve['run']).name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv=None) -> dict:
    p = Parser(prog="python -m bench.curve", description=__doc__.split("\n")[0])
    p.add_argument("run", help="a training run folder (pixelcnn.train --out)")
    p.add_argument("--out", required=True, help="path prefix of OUT-curve.json / .png")
    p.add_argument("--target", type=float, help="reference NLL to draw (nats for binary data, "
                   "else bits/dim), e.g. 81.3")
    args = p.parse_args(argv)
    try:
        curve = read_curve(Path(args.run))
    except ValueError as e:
        fail(p.prog, str(e))
    unit = "nats" if curve["binary"] else "bpd"
    best = min(curve["epochs"], key=lambda r: min(v for k, v in r.items()
                                                 if k in (f"test_{unit}", f"test_{unit}_raw")))
    curve["best"] = best
    curve["target"] = args.target
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path = out.with_name(out.name + "-curve.json")
    json_path.write_text(json.dumps(curve, indent=1) + "\n")
    png = out.with_name(out.name + "-curve.png")
    drew = plot(curve, png, args.target)
    for r in curve["epochs"]:
        raw = f", raw {r[f'test_{unit}_raw']:.2f}" if f"test_{unit}_raw" in r else ""
        print(f"epoch {r['epoch']:3d} (step {r['step']:,}, {r['train_s'] / 3600:.1f} h): "
              f"{r[f'test_{unit}']:.2f} {unit}{raw}")
    print(f"wrote {json_path}" + (f" and {png}" if drew else " (no matplotlib: no PNG)"))
    return curve


if __name__ == "__main__":
    main(sys.argv[1:])
