"""`python -m bench.kernels` (the fused ops against PyTorch, for a GPU) on the CPU: its
correctness part under Triton's interpreter, its timing loop with do_bench (CUDA only)
stood in for by one call of each op, and the FLOPs and bytes its rates are computed from."""
import json
import time

import pytest
import torch
import triton.testing
from torch.utils.flop_counter import FlopCounterMode

import pixelcnn
from bench import kernels


def test_correctness_on_cpu(tmp_path, capsys):
    kernels.main(["--preset", "tiny", "--size", "5", "7", "--device", "cpu",
                  "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "timings: skipped (CUDA only)" in out
    result = json.loads(next(tmp_path.glob("*-cpu-kernels.json")).read_text())
    assert set(result["correctness"]) == {"float32", "bf16"}
    assert set(result["correctness"]["float32"]) == {
        "vertical_stack", "horizontal_stack", "gated_layer_vs_torch", "forward_logits"}
    assert max(result["correctness"]["float32"].values()) < 1e-4
    assert max(result["correctness"]["bf16"].values()) < 5e-2
    assert result["timings"] == []


def test_timing_loop(monkeypatch):
    """Every op pair runs and is recorded (the speed itself is measured on a GPU only)."""
    def one_call(fn, warmup, rep, return_mode):
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1e3
    monkeypatch.setattr(triton.testing, "do_bench", one_call)
    model = pixelcnn.build(pixelcnn.preset("tiny")).eval()
    rows = kernels.timings(model, 2, (4, 5), torch.float32, seed=0)
    assert [r["op"] for r in rows] == ["vertical_stack", "gated_layer", "forward"]
    assert all(r["fused_ms"] > 0 and r["torch_ms"] > 0 and r["batch_size"] == 2 for r in rows)
    for r in rows:
        assert (r["flops"], r["bytes"]) == kernels.work(model.config, 2, (4, 5), r["op"], 4)
        for impl in ("fused", "torch"):        # TFLOP/s and GB/s from ms
            assert r[f"{impl}_tflops"] == pytest.approx(r["flops"] / (r[f"{impl}_ms"] * 1e9))
            assert r[f"{impl}_gbps"] == pytest.approx(r["bytes"] / (r[f"{impl}_ms"] * 1e6))
    line = kernels.timing_line("float32", rows[2])
    assert line.startswith("float32  batch    2 forward") and line.count("TFLOP/s") == 2 \
        and line.count("GB/s") == 2


def test_work_by_hand():
    """FLOPs and bytes of a config small enough to count by hand: C = 2 hidden channels,
    k = 3 (p = 1), 2 layers, 1 input channel, 4 levels, on M = 1 x 2 x 3 = 6 pixels."""
    cfg = pixelcnn.ModelConfig(in_channels=1, levels=4, channels=2, layers=2, kernel_size=3)
    # weights K x N (+ biases) per product:
    #   layer 1: vertical (p+1)*k*C = 12 -> 2C = 4: 48 (+4); horizontal (p+1)*C = 4 -> 4: 16
    #            (+4); link 4 -> 4: 16; residual and skip 2 -> 2: 4 (+2) each.   88 (+12)
    #   layer 0, reading 1 channel: vertical 6 -> 4: 24 (+4); horizontal 2 -> 4: 8 (+4);
    #            link 16; residual and skip 4 (+2) each.                         56 (+12)
    #   head: 2 -> 2: 4 (+2); 2 -> 1 x 4 levels: 8 (+4).                         12 (+6)
    # activations per pixel: vertical stack v in (2), pre (4) and out (2); gated layer v, h
    # in and v, h, skip out (2 each); forward the image in (1) and the logits out (4)
    assert kernels.work(cfg, 1, (2, 3), "vertical_stack", 4) == (2 * 6 * 48,
                                                                 4 * (6 * 8 + 48 + 4))
    assert kernels.work(cfg, 1, (2, 3), "gated_layer", 4) == (2 * 6 * 88,
                                                              4 * (6 * 10 + 88 + 12))
    assert kernels.work(cfg, 1, (2, 3), "forward", 2) == (2 * 6 * (88 + 56 + 12),
                                                          2 * (6 * 5 + 156 + 30))


@pytest.mark.parametrize("preset,size", [("tiny", (2, 3)), ("small", (5, 7))])
def test_work_agrees_with_torch(preset, size):
    """The FLOPs are what torch's own counter finds in the torch counterparts, and the
    forward's weights are the model's parameters."""
    model = pixelcnn.build(pixelcnn.preset(preset)).eval()
    cfg, ops = model.config, kernels.Ops(model, 2, size, torch.float32, seed=0)
    for op, run in (("vertical_stack", ops.torch_vertical), ("gated_layer", ops.torch_layer),
                    ("forward", lambda: ops.forward("torch"))):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            run()
        assert kernels.work(cfg, 2, size, op, 4)[0] == counter.get_total_flops(), op
    image_and_logits = cfg.in_channels * (1 + cfg.levels)
    assert kernels.work(cfg, 1, (1, 1), "forward", 1)[1] - image_and_logits == \
        sum(p.numel() for p in model.parameters())


def test_needs_gpu_or_interpreter(monkeypatch, capsys):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(SystemExit):
        kernels.main(["--preset", "tiny", "--device", "cpu"])
    assert "no GPU" in capsys.readouterr().err


def test_unknown_dtype(capsys):
    with pytest.raises(SystemExit):
        kernels.main(["--dtypes", "fp8"])
    assert "unknown ['fp8']" in capsys.readouterr().err
