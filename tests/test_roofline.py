"""bench.roofline (issue 12, item 4): the performance model of the sampler's steps, as a
command; it predicts from the launchers' own tiles and prints predicted beside measured."""
import pytest

import pixelcnn
from bench import roofline
from pixelcnn.kernels.sampler_pixel_grid import phases


def test_grid_steps_follow_the_kernels():
    """triton-grid's pixel step has one phase per launched phase of the kernel: 2L + 3 at
    c = 0 (the left taps), 2L + 2 after; bf16 meets at grid barriers in one launch, float32
    launches each phase. Its chain is the phases' waits for their K tiles at the launcher's K
    tile and pipeline stages."""
    cfg = pixelcnn.preset("cifar")
    L, H, p = cfg.layers, cfg.channels, cfg.kernel_size // 2
    assert len(phases(L, 0)) == 2 * L + 3 and len(phases(L, 1)) == 2 * L + 2
    for dtype, launches in (("bf16", 1), ("float32", 2 * L + 2)):
        steps = {s.name: s for s in roofline.grid(cfg, roofline.DEVICES["h100"], dtype, 1,
                                                    (32, 32))}
        assert steps["pixel c>0"].launches == launches
        assert steps["row"].launches == L + 2 and steps["row"].count == 31
        assert steps["pixel c=0"].count == 32 * 32 and steps["pixel c>0"].count == 2 * 32 * 32
    assert steps["pixel c=0"].barriers == 0 and roofline.grid(
        cfg, roofline.DEVICES["h100"], "bf16", 1, (32, 32))[1].barriers == 2 * L + 2
    k = -(-H // 32)                                  # the default K tile: 32
    left, gates, residuals, head = 2 * k, 1 + (L - 1) * k, (L - 1) * 2 * k, 2 * k + H // 16
    assert steps["pixel c=0"].chain == left + gates + residuals + head
    assert steps["pixel c>0"].chain == gates + residuals + head


def test_model_reproduces_the_committed_h200_run():
    """The fitted constants (T_SYNC, T_LAUNCH on batch 1; T_MEM on the H100's triton) predict
    the H200's committed triton-grid bf16 timings at batch 16 and 64 within 10%."""
    cfg = pixelcnn.preset("cifar")
    meas = roofline.measured(roofline.ROOT / "bench" / "results" / "h200-20261126", "h200",
                             cfg, (32, 32))
    for batch in (1, 16, 64):
        got = meas[("triton-grid", "bf16", batch)]
        assert roofline.predict(cfg, "h200", "bf16", batch)["triton-grid"][1] == \
            pytest.approx(got, rel=0.1)


def test_variants_follow_the_environment_they_ran_in():
    """A measurement counts for the variant its environment selected: bf16 phase by phase,
    another K tile; float32 triton-grid is always phase by phase."""
    assert roofline.variant("triton-grid", "bf16", {}) == "triton-grid"
    assert roofline.variant("triton-grid", "bf16", {"PIXELCNN_GRID_PERSISTENT": "0"}) == \
        "triton-grid/phases"
    assert roofline.variant("triton-grid", "float32", {"PIXELCNN_GRID_PERSISTENT": "0"}) == \
        "triton-grid"
    assert roofline.variant("triton-grid", "bf16", {"PIXELCNN_GRID_BK": "256"}) == \
        "triton-grid/bk256"
    assert roofline.variant("triton", "bf16", {"PIXELCNN_GRID_BK": "256"}) == "triton"
    assert roofline.variant("triton-grid", "bf16", {"PIXELCNN_GRID_POLL": "load"}) == \
        "triton-grid/poll-load"                                     # measured, not modelled
    assert roofline.variant("triton-grid", "bf16", {"PIXELCNN_GRID_BK": "64",
                                                    "PIXELCNN_GRID_STAGES": "7"}) == \
        "triton-grid/bk64/s7"
    assert roofline.grid_variant("triton-grid/phases/bk64") == (False, 64, None)
    assert roofline.grid_variant("triton-grid/bk64/s7") == (True, 64, 7)
    cfg = pixelcnn.preset("cifar")
    pred = roofline.predict(cfg, "h200", "bf16", 1)
    assert pred["triton-grid/bk128"][1] < pred["triton-grid"][1]   # fewer K round trips
    assert pred["triton-grid/phases/bk128"][1] < pred["triton-grid/phases"][1]
    assert pred["triton-grid/s7"][1] < pred["triton-grid"][1]      # more K tiles in flight


def test_pipelined_k_loops_wait_a_round_trip_per_stages_minus_one_tiles():
    """Triton keeps S - 1 K tiles in flight: at its default 3 stages a loop waits one T_MEM
    per tile (as fitted, even counts); with more stages, fewer round trips, never none."""
    assert [roofline.loop_waits(n, 3) for n in (1, 2, 6, 12)] == [2, 2, 6, 12]
    assert [roofline.loop_waits(n, 7) for n in (1, 6, 12)] == [2, 2, 4]
    assert roofline.loop_waits(6, 1) == roofline.loop_waits(6, 2) == 12


def test_a_batch_is_linear_in_the_barrier_cost():
    cfg = pixelcnn.preset("cifar")
    at = lambda t: roofline.predict(cfg, "h100", "bf16", 1, (32, 32), t)["triton-grid"][1]
    assert at(2e-6) - at(1e-6) == pytest.approx(at(1e-6) - at(0.0))
    assert at(1e-6) > at(0.0)


def test_command_prints_the_model_and_the_targets(tmp_path, capsys):
    result = roofline.main(["--preset", "small", "--device", "h200", "--batches", "1,256",
                            "--results", str(tmp_path)])
    out = capsys.readouterr().out
    assert set(result) == {(d, b) for d in ("bf16", "float32") for b in (1, 256)}
    assert "predicted vs measured" in out and "H200" in out
    assert out.count("target bf16") == 3 * 3          # triton-grid, .../bk128 and .../s7
    for method in ("naive", "triton", "triton-grid"):
        assert f"  {method} " in out


def test_bad_options_fail_in_one_line(capsys):
    with pytest.raises(SystemExit):
        roofline.main(["--dtypes", "fp8"])
    assert "--dtypes: unknown ['fp8']" in capsys.readouterr().err
