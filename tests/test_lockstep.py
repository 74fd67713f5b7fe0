"""bench.lockstep (a fast sampler's steps against the PyTorch steps, one at a time) and
bench.phase_times (each triton-grid phase alone), on the CPU: the kernels in Triton's
interpreter, the CUDA-graph timer replaced by one plain call."""
import json

import pytest
import torch

import pixelcnn
from bench import lockstep as ls
from bench import phase_times as pt
from pixelcnn.kernels import sampler_pixel_grid as grid


def tiny():
    torch.manual_seed(0)
    return pixelcnn.build(pixelcnn.preset("tiny")).eval()


@pytest.mark.parametrize("method", ["triton", "triton-grid"])
@pytest.mark.parametrize("resync", [True, False], ids=["resync", "free"])
def test_fast_steps_agree_with_the_reference(method, resync):
    run = ls.lockstep(tiny(), method, 2, (2, 3), resync, seed=1)
    assert run["flips"] == [] and run["sub_pixels"] == 2 * 3 * 2 * 3
    keys = {"row v_pre", "row row_bias", "base", "gated[0]", "gated[2]", "hbuf[2] column j"}
    assert keys <= set(run["worst"]) and ("logits" in run["worst"]) == (method == "triton-grid")
    for key, v in run["worst"].items():
        assert v["max_abs_diff"] <= 1e-5 * max(1.0, v["scale"]), key


def test_lockstep_runs_the_prefetch_form(monkeypatch):
    """gpu.sh's lockstep-prefetch: PIXELCNN_GRID_PREFETCH=1 reaches the steps bench.lockstep
    runs (the weights loaded first: on the CPU without PDL), and they agree."""
    monkeypatch.setenv("PIXELCNN_GRID_PREFETCH", "1")
    seen, original = [], grid.sampler_pixel_grid
    monkeypatch.setattr(grid, "sampler_pixel_grid",
                        lambda *a, **kw: seen.append(kw) or original(*a, **kw))
    run = ls.lockstep(tiny(), "triton-grid", 2, (1, 2), False, seed=1)
    assert run["flips"] == [] and seen and all(kw["prefetch"] and not kw["pdl"] for kw in seen)
    for key, v in run["worst"].items():
        assert v["max_abs_diff"] <= 1e-5 * max(1.0, v["scale"]), key


def test_a_wrong_layer_is_found(monkeypatch):
    """A pixel step whose layer 1 is off (as layer 0 was on the H200) is reported there and
    downstream, not at layer 0 or in the row step's buffers."""
    row, pixel = ls.steps("triton-grid")

    def wrong(cache, x, u, temperature, i, j, c):
        pixel(cache, x, u, temperature, i, j, c)
        cache.gated[:, 1] += 0.25
    monkeypatch.setattr(ls, "steps", lambda method: (row, wrong))
    run = ls.lockstep(tiny(), "triton-grid", 2, (1, 2), True, seed=1)
    worst = run["worst"]
    assert worst["gated[1]"]["max_abs_diff"] == pytest.approx(0.25, abs=1e-5)
    assert worst["gated[0]"]["max_abs_diff"] < 1e-5 and worst["row v_pre"]["max_abs_diff"] < 1e-5
    assert "gated[1]" in ls.report(run)


def test_command_writes_json(tmp_path, capsys):
    ls.main(["--preset", "tiny", "--size", "1", "2", "--batch", "1", "--device", "cpu",
             "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "resync: each step from the reference caches - 0 of 6 sub-pixels differ" in out
    saved = json.loads(next(tmp_path.glob("*-cpu-lockstep.json")).read_text())
    assert [r["resync"] for r in saved["runs"]] == [True, False]


def test_phase_times_cover_every_phase(monkeypatch):
    calls = []

    def once(fn, n, replays=5):
        fn()
        calls.append(n)
        return 2.0
    monkeypatch.setattr(pt, "graphed", once)
    r = pt.times(tiny(), 2, 30)
    L = 3
    assert [p["phase"] for p in r["phases"]] == grid.phases(L, 1)
    assert [p["name"] for p in r["phases"]] == ["layer 0", "layer 1", "layer 2",
                                                "hidden 1", "hidden 2", "out"]
    assert [(p["name"], p["programs"]) for p in r["c0_phases"]] == \
        [("layer 0", 2), ("layer 1", 2)]         # + the next layer's base (one 16 x 16 tile)
    assert "step_pdl_us" not in r                    # programmatic launches: CUDA >= 9 only
    assert "step_pdl_prefetch_us" not in r and r["step_prefetch_us"] == 2.0
    sweep = r["layer_sweep"]
    assert [s["override"] for s in sweep] == [{}] + pt.SWEEP
    assert [s["programs"] for s in sweep if s["override"].get("SPLIT")] == \
        [2 * sweep[0]["programs"], 4 * sweep[0]["programs"]]      # split, look-ahead (L = 3)
    rows = r["row_sweep"]
    assert [s["override"] for s in rows] == [{}] + pt.ROW_SWEEP
    text = pt.report(r, L)
    assert "sum of a c > 0 step's phases 12.0 µs" in text and "row step 2.0 µs" in text
    assert "layer 1 (c = 0)" in text
    assert r["step_groups_us"] == {"0": 2.0, "1": 2.0, "2": 2.0}      # one step per channel
    assert "with colour groups c = 0 2.0, c = 1 2.0, c = 2 2.0 µs" in text
    assert r["step_best_us"] == {"0": 2.0, "1": 2.0, "2": 2.0}       # groups, head, prefetch
    assert "(bench.roofline's best) c = 0 2.0, c = 1 2.0, c = 2 2.0 µs" in text
    assert "the layers' weights prefetched 2.0, before PDL's wait nan" in text
    assert "PREFETCH=True 2.00 µs" in text
    assert "the row step: as launched 2.00 µs, num_stages=4 2.00 µs" in text
    assert "lane" not in r                     # one of eight sub-batches: bf16 from 16 images
    r["lane"] = pt.lane_times(tiny().to(torch.bfloat16), 2, 30, False)     # (here: 2)
    assert r["lane"] == {"batch": 2, "step_best_us": {"0": 2.0, "1": 2.0, "2": 2.0},
                         "row_us": 2.0}
    assert "one of 8 sub-batches (2 images, its tiles): the best design's step c = 0 2.0, " \
           "c = 1 2.0, c = 2 2.0 µs, row step 2.0 µs" in pt.report(r, L)
    assert pt.barrier_line({}).endswith("not timed (this Triton has no cooperative launch)")
    assert pt.barrier_line({"atomic, 2 programs": {"us": 1.5},
                            "load, 132 programs": {"error": "E: x"}}) == \
        "a grid barrier alone (poll, programs): atomic, 2 programs 1.50 µs, " \
        "load, 132 programs (E: x)"

    def too_big():
        raise RuntimeError("out of resource: shared memory, Required: 300000\nmore")
    failed = {"override": {"num_stages": 8}, **pt.timed(too_big, 1)}   # recorded, not raised
    assert failed["error"] == "RuntimeError: out of resource: shared memory, Required: 300000"
    assert pt.swept([rows[0], failed]) == \
        "as launched 2.00 µs, num_stages=8 (RuntimeError: out of resource: shared memory, " \
        "Required: 300000)"


def test_barrier_loop_counts_its_barriers():
    """bench.phase_times' barrier timing: n grid barriers, one ticket each (one program: the
    interpreter runs programs one after another, so a wait among several cannot run here)."""
    counter = torch.zeros(1, dtype=torch.int32)
    pt._barriers[(1,)](counter, 5, 1, POLL="atomic")
    assert int(counter) == 5


def test_broadcast_reads_the_same_activations_in_every_program():
    """bench.phase_times' L2 broadcast: every program sums the same n elements `reps` times
    (n not a multiple of its blocks, reps x blocks not of its unroll: both masked)."""
    src = torch.randn(2, 5000).to(torch.bfloat16)
    out = torch.full((2,), float("nan"))
    pt._broadcast[(2,)](src, out, 5000, 3, BLOCK=2048, UNROLL=8, DISTINCT=False)
    assert torch.allclose(out, 3 * src[0].float().sum().expand(2), rtol=1e-5, atol=1e-3)
    pt._broadcast[(2,)](src, out, 5000, 3, BLOCK=2048, UNROLL=8, DISTINCT=True)  # its own
    assert torch.allclose(out, 3 * src.float().sum(1), rtol=1e-5, atol=1e-3)
    assert pt.broadcast_line({"132 programs, 197 KB": {"us": 9.04, "tbs": 11.5},
                              "528 programs, 197 KB": {"error": "E: x"}}) == \
        "L2's broadcast (every program reading the same activations): 132 programs, " \
        "197 KB 11.5 TB/s (9.0 µs), 528 programs, 197 KB (E: x)"


def test_phase_times_needs_a_gpu(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    with pytest.raises(SystemExit) as e:
        pt.main([])
    assert e.value.code == 2 and "needs a GPU" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:                # checked first: a GPU or not
        pt.main(["--what", "chip,barrier"])
    assert e.value.code == 2 and "--what: unknown ['barrier']" in capsys.readouterr().err


@pytest.mark.parametrize("dtype,broken", [("float32", False), ("bf16", False), ("bf16", True)],
                         ids=["float32", "bf16", "bf16-broken-head"])
def test_gate_checks_triton_grid_logits_step_by_step(broken, dtype, monkeypatch):
    """The gate's logits check for triton-grid (which has no forward): its steps' logits
    against the PyTorch steps' (bench.lockstep), so a wrong layer fails the gate even where
    the samples could not show it (bf16 has no identical-rate floor)."""
    from bench import gate
    if broken:
        row, pixel = ls.steps("triton-grid")

        def wrong(cache, x, u, temperature, i, j, c):
            pixel(cache, x, u, temperature, i, j, c)
            cache.scratch[:, cache.w.hidden:] *= 1.1          # the head's activations off
        monkeypatch.setattr(ls, "steps", lambda method: (row, wrong))
    model = tiny().to(torch.bfloat16 if dtype == "bf16" else torch.float32)
    images = torch.randint(0, 256, (2, 3, 4, 4))
    out = gate.run_gate(model, ["naive", "triton-grid"], images, (2, 2), dtype,
                        min_identical=0.0)
    got = out["triton-grid"]
    assert got["max_abs_dlogits"] is not None
    assert got["passed"] == (not broken)
    if broken:
        assert "max |Δlogits|" in got["why"]
    elif dtype == "float32":
        assert got["max_abs_dlogits"] < 1e-5
