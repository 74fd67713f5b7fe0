"""`python -m bench.kernels` (the fused ops against PyTorch, for a GPU) on the CPU: its
correctness part under Triton's interpreter, and its timing loop with do_bench (CUDA only)
stood in for by one call of each op."""
import json
import time

import pytest
import torch
import triton.testing

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


def test_needs_gpu_or_interpreter(monkeypatch, capsys):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(SystemExit):
        kernels.main(["--preset", "tiny", "--device", "cpu"])
    assert "no GPU" in capsys.readouterr().err


def test_unknown_dtype(capsys):
    with pytest.raises(SystemExit):
        kernels.main(["--dtypes", "fp8"])
    assert "unknown ['fp8']" in capsys.readouterr().err
