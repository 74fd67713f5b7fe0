"""The benchmark's outputs: the stdout tables, one JSON file per run (the schema below), a
markdown copy of the tables, a PNG grid of each method's samples and a throughput plot.

    {"machine": {...}, "model": {...},
     "data": {"name", "split", "data_verified"} (or {"skipped": why}),
     "settings": {...}, "skipped_methods": {method: why},
     "gate": {method: {identical_rate, identical_images, max_abs_dlogits, cdf_margins,
                       passed, why}},
     "records": [{"method", "batch_size", "dtype", "device", "seconds_per_batch",
                  "images_per_s", "us_per_step", "speedup_vs_naive", "naive_timing",
                  "seconds"}],
     "bits_per_dim": {"test": ..., "teacher_forced": ..., "samples": ...}}
"""
from __future__ import annotations

import json
from pathlib import Path


def fmt(v, spec=".3g") -> str:
    return "n/a" if v is None else format(v, spec)


def gate_lines(gate: dict) -> list:
    rows = [("method", "identical", "images", "max |Δlogits|", "min CDF margin", "gate")]
    for m, g in gate.items():
        margins = g.get("cdf_margins")
        rows.append((m, f"{g['identical_rate']:.4f}", str(g["identical_images"]),
                     fmt(g["max_abs_dlogits"], ".2e"),
                     fmt(min(margins) if margins else None, ".1e"),
                     "pass" if g["passed"] else f"FAIL: {g['why']}"))
    return rows


def throughput_lines(records: list) -> list:
    rows = [("method", "batch", "s/batch", "images/s", "µs/step", "speedup", "timing")]
    for r in records:
        timing = "full" if r["naive_timing"] == "full" and r["method"] == "naive" else \
            r["naive_timing"] if r["method"] == "naive" else f"best of {len(r['seconds'])}"
        rows.append((r["method"], str(r["batch_size"]), fmt(r["seconds_per_batch"], ".4g"),
                     fmt(r["images_per_s"], ".4g"), fmt(r["us_per_step"], ".4g"),
                     fmt(r["speedup_vs_naive"], ".1f") + "x", timing))
    return rows


def bpd_text(b: dict) -> str:
    nats = f"; {b['nats_per_image']:.2f} ± {b['nats_stderr']:.2f} nats/image" \
        if "nats_per_image" in b else ""            # binary data: the literature's unit
    return f"{b['bits_per_dim']:.4f} ± {b['stderr']:.4f} (n={b['n']}{nats})"


def bits_lines(bits: dict) -> list:
    """Human lines for the bits/dim section."""
    out = []
    test = bits["test"]
    if "skipped" in test:
        out.append(f"test bits/dim: skipped ({test['skipped']})")
    else:
        for fwd, b in test["forwards"].items():
            out.append(f"test bits/dim, {test['data']}, {fwd} forward: {bpd_text(b)}")
        if "max_difference" in test:
            out.append(f"  forwards agree: {test['agree']} (max difference "
                       f"{test['max_difference']:.2e})")
    tf = bits["teacher_forced"]
    out.append(f"teacher-forced bits/dim on {tf['n']} {tf['images']} images: " +
               ", ".join(f"{m} {v:.5f}" for m, v in tf["bits_per_dim"].items()))
    samples = bits["samples"]
    for m, b in samples["methods"].items():
        out.append(f"bits/dim of {m}'s own samples: " +
                   (f"skipped ({b['skipped']})" if "skipped" in b else bpd_text(b)))
    if "consistent" in samples:
        out.append(f"  same distribution (within 3 standard errors of "
                   f"{samples['against']}): {samples['consistent']}")
    return out


def table(rows: list) -> str:
    """Plain aligned text, first column left, the others right."""
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def markdown(rows: list) -> str:
    head, *body = [[c.replace("|", "\\|") for c in r] for r in rows]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def write_json(result: dict, path: Path) -> Path:
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def write_markdown(result: dict, machine_line: str, path: Path, files: list) -> Path:
    m = result["model"]
    data = result["data"]
    parts = [f"# Sampling benchmark: {Path(m['checkpoint']).name}, "
             f"{result['settings']['size'][0]}x{result['settings']['size'][1]}",
             "", machine_line, "",
             f"model: {m['checkpoint']} ({m['parameters']:,} parameters, "
             f"{m['config']['layers']} layers, {m['config']['channels']} channels)",
             f"data: {data.get('name', 'none: ' + data.get('skipped', ''))}", ""]
    if result["skipped_methods"]:
        parts += [f"- {k} skipped: {v}" for k, v in result["skipped_methods"].items()] + [""]
    parts += ["## Correctness gate", "", markdown(gate_lines(result["gate"])), "",
              "## Throughput", "", markdown(throughput_lines(result["records"])), "",
              "## Bits/dim", ""] + [f"- {line.strip()}" for line in bits_lines(result["bits_per_dim"])]
    if files:
        parts += ["", "## Files", ""] + [f"![{f}]({f})" for f in files]
    path.write_text("\n".join(parts) + "\n")
    return path


def plot(records: list, path: Path):
    """images/s against batch size per method, log axes; None (and why) without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None, "matplotlib is not installed (pip install matplotlib, or the 'plot' extra)"
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=80)
    for method in dict.fromkeys(r["method"] for r in records):
        rs = [r for r in records if r["method"] == method and r["images_per_s"]]
        label = method if method != "naive" or rs[0]["naive_timing"] == "full" \
            else f"naive ({rs[0]['naive_timing']})"
        ax.plot([r["batch_size"] for r in rs], [r["images_per_s"] for r in rs], marker="o",
                label=label, linestyle="--" if method == "naive" else "-")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    sizes = sorted({r["batch_size"] for r in records})
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.minorticks_off()
    ax.set_xlabel("batch size")
    ax.set_ylabel("images / s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path, ""
