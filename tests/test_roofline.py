"""bench.roofline (issue 12, item 4): the performance model of the sampler's steps, as a
command; it predicts from the launchers' own tiles and prints predicted beside measured."""
import functools
import json
import re

import pytest

import pixelcnn
from bench import roofline
from pixelcnn.kernels.sampler_pixel_grid import phases


def test_grid_steps_follow_the_kernels():
    """triton-grid's pixel step has one phase per launched phase of the kernel: L + 3 at
    every sub-pixel (at c = 0 the left taps run inside the layers' phases), L + 1 to complete
    a given pixel (no head), each its own launch (bf16 .../persistent: met at grid barriers in one
    launch). Its chain is its phases' products x K tiles of 32."""
    cfg = pixelcnn.preset("cifar")
    L, H, p = cfg.layers, cfg.channels, cfg.kernel_size // 2
    for c in (0, 1, 2, None):
        assert len(roofline.phase_kinds(L, c)) == len(phases(L, c))
    assert len(phases(L, 0)) == len(phases(L, 1)) == L + 3
    assert len(phases(L, None)) == L + 1
    for dtype, label, launches in (("bf16", "triton-grid/persistent", 1),
                                   ("bf16", "triton-grid", L + 3),
                                   ("float32", "triton-grid", L + 3)):
        steps = {s.name: s for s in roofline.grid(cfg, roofline.DEVICES["h100"], dtype, 1,
                                                    (32, 32), label=label)}
        assert steps["pixel c>0"].launches == steps["pixel c=0"].launches == launches
        assert steps["row"].launches == L + 2 and steps["row"].count == 31
        assert steps["pixel c=0"].count == 32 * 32 and steps["pixel c>0"].count == 2 * 32 * 32
    assert steps["pixel c=0"].barriers == 0 and roofline.grid(
        cfg, roofline.DEVICES["h100"], "bf16", 1, (32, 32),
        label="triton-grid/persistent")[1].barriers == L + 2
    steps = {s.name: s for s in roofline.grid(cfg, roofline.DEVICES["h100"], "bf16", 1,
                                                (32, 32))}
    k = H / 32                                 # products x K tiles of 32, one wave each at batch 1
    left, layers, head = 2 * p * k, 2 * 0.5 + (L - 1) * 6 * k, 2 * k + k
    assert steps["pixel c>0"].chain == round(layers + head)
    # c = 0: layer 0's phase as long as the next layer's left taps beside it (longer than
    # its own, over K = F a tap); the others' chains are longer than the taps'
    assert steps["pixel c=0"].chain == round(left + (L - 1) * 6 * k + head)
    before = {s.name: s for s in roofline.grid(cfg, roofline.DEVICES["h100"], "bf16", 1,
                                                 (32, 32), label="triton-grid/left-phase")}
    assert before["pixel c=0"].launches == L + 4
    assert before["pixel c=0"].chain == round(left + layers + head)
    assert steps["pixel c=0"].seconds < before["pixel c=0"].seconds


def test_two_phase_design_is_modelled_as_it_was_measured():
    """The design the H200 measured (gate, then residual + skip: 2L + 2 phases, 2L + 3 at
    c = 0) stays modelled as .../2-phase, with its own chain: the constants were fitted on
    it; folding the residual into the next gate halves the barriers."""
    cfg = pixelcnn.preset("cifar")
    L, H = cfg.layers, cfg.channels
    assert len(roofline.phase_kinds(L, 0, fused=False)) == 2 * L + 3
    assert len(roofline.phase_kinds(L, 1, fused=False)) == 2 * L + 2
    two = {s.name: s for s in roofline.grid(cfg, roofline.DEVICES["h200"], "bf16", 1, (32, 32),
                                              label="triton-grid/persistent/2-phase")}
    k = H / 32
    gates, residuals, head = 2 * 0.5 + (L - 1) * 2 * k, (L - 1) * 2 * k, 2 * k + k
    assert two["pixel c>0"].chain == round(gates + residuals + head)
    assert two["pixel c>0"].barriers == 2 * L + 1
    pred = roofline.predict(cfg, "h200", "bf16", 1)
    assert pred["triton-grid"][1] < 0.9 * pred["triton-grid/2-phase"][1]
    assert pred["triton-grid/persistent"][1] < 0.8 * pred["triton-grid/persistent/2-phase"][1]


def test_model_reproduces_the_committed_h200_runs():
    """The phase latency, fitted on bench.phase_times' batch-1 phases (one run, H200), predicts
    the folded design's full runs (another call) within 12% at batch 1-256, and the two-phase
    design's persistent runs, timed a session before, within 12% at batch 1-64. That older run
    names no design: it counts as .../2-phase, never as today's triton-grid."""
    cfg = pixelcnn.preset("cifar")
    results = roofline.ROOT / "bench" / "results"
    old = roofline.measured(results / "h200-20261126", "h200", cfg, (32, 32))
    assert not any(method in ("triton-grid", "triton-grid/persistent")
                   for method, _, _ in old)
    for batch in (1, 16, 64):
        pred = roofline.predict(cfg, "h200", "bf16", batch)["triton-grid/persistent/2-phase"]
        assert pred[1] == pytest.approx(old[("triton-grid/persistent/2-phase", "bf16", batch)],
                                        rel=0.12)
    fold = roofline.measured(results / "h200-20261126-fold", "h200", cfg, (32, 32))
    assert not any(method in ("triton-grid", "triton-grid/persistent")    # a left phase then
                   for method, _, _ in fold)
    for batch in (1, 16, 64, 256):
        pred = roofline.predict(cfg, "h200", "bf16", batch)["triton-grid/left-phase"]
        assert pred[1] == pytest.approx(fold[("triton-grid/left-phase", "bf16", batch)],
                                        rel=0.12)
    assert roofline.predict(cfg, "h200", "bf16", 1)["triton-grid/persistent/left-phase"][1] == \
        pytest.approx(fold[("triton-grid/persistent/left-phase", "bf16", 1)], rel=0.12)


def test_variants_follow_the_environment_they_ran_in():
    """A measurement counts for the variant its environment selected: bf16 persistent (=1;
    before the fold, its default: =0 turned it off), another K tile; float32 triton-grid is
    always phase by phase."""
    two = roofline.TWO_PHASE
    assert roofline.variant("triton-grid", "bf16", {}) == "triton-grid"
    assert roofline.variant("triton-grid", "bf16", {"PIXELCNN_GRID_PERSISTENT": "1"}) == \
        "triton-grid/persistent"
    assert roofline.variant("triton-grid", "float32", {"PIXELCNN_GRID_PERSISTENT": "1"}) == \
        "triton-grid"
    assert roofline.variant("triton-grid", "bf16", {}, two) == "triton-grid/persistent/2-phase"
    assert roofline.variant("triton-grid", "bf16", {"PIXELCNN_GRID_PERSISTENT": "0"}, two) == \
        "triton-grid/2-phase"
    assert roofline.variant("triton-grid", "bf16", {"PIXELCNN_GRID_BK": "256"}) == \
        "triton-grid/bk256"
    assert roofline.variant("triton", "bf16", {"PIXELCNN_GRID_BK": "256"}) == "triton"
    assert roofline.variant("triton-grid", "bf16", {"PIXELCNN_GRID_POLL": "load",
                                                    "PIXELCNN_GRID_PERSISTENT": "1"}) == \
        "triton-grid/persistent/poll-load"                          # measured, not modelled
    assert roofline.variant("triton-grid", "bf16", {"PIXELCNN_GRID_BK": "64",
                                                    "PIXELCNN_GRID_STAGES": "7"}) == \
        "triton-grid/bk64/s7"
    assert roofline.variant("triton-grid", "bf16", {"PIXELCNN_GRID_SPLIT": "1"}) == \
        "triton-grid/split"
    assert roofline.variant("triton-grid", "bf16", {"PIXELCNN_GRID_SPLIT": "1",
                                                    "PIXELCNN_GRID_PDL": "1"}) == \
        "triton-grid/split/pdl"
    assert roofline.variant("triton-grid", "bf16", {"PIXELCNN_GRID_PDL": "1",
                                                    "PIXELCNN_GRID_STAGES": "7"}) == \
        "triton-grid/pdl/s7"
    assert roofline.variant("triton-grid", "bf16", {"PIXELCNN_GRID_PDL": "1"},
                            roofline.LEFT_PHASE) == "triton-grid/pdl/left-phase"
    assert roofline.variant("triton-grid", "bf16", {"PIXELCNN_GRID_PDL": "1",
                                                    "PIXELCNN_GRID_PREFETCH": "1",
                                                    "PIXELCNN_GRID_GROUPS": "1"}) == \
        "triton-grid/pdl/prefetch/groups"
    assert roofline.variant("triton-grid", "bf16", {"PIXELCNN_GRID_PDL": "1",
                                                    "PIXELCNN_GRID_PREFETCH": "1",
                                                    "PIXELCNN_GRID_GROUPS": "1",
                                                    "PIXELCNN_GRID_HEAD": "1"}) == \
        "triton-grid/pdl/prefetch/groups/head"
    assert roofline.grid_variant("triton-grid/bk64") == (False, 64, None, True, False, False)
    assert roofline.grid_variant("triton-grid/persistent/bk64/s7") == \
        (True, 64, 7, True, False, False)
    assert roofline.grid_variant("triton-grid/persistent/2-phase") == \
        (True, None, None, False, False, True)
    assert roofline.grid_variant("triton-grid/pdl/s7/left-phase") == \
        (False, None, 7, True, True, True)
    cfg = pixelcnn.preset("cifar")
    pred = roofline.predict(cfg, "h200", "bf16", 1)
    # neither the K tile nor the pipeline's depth moved a phase on the H200: not modelled
    assert pred["triton-grid/bk128"][1] == pred["triton-grid/s7"][1] == pred["triton-grid"][1]
    assert pred["triton-grid/pdl"][1] < pred["triton-grid"][1]     # launches overlapped
    assert pred["triton-grid/split"][1] < 0.9 * pred["triton-grid"][1]   # chains of 4, not 6
    assert pred["triton-grid/ahead"][1] < 0.9 * pred["triton-grid/split"][1]   # 2, not 4
    # the weights loaded before PDL's wait: a layer phase's chain is its arithmetic only
    assert pred["triton-grid/pdl/prefetch"][1] < 0.7 * pred["triton-grid/pdl"][1]
    assert roofline.variant("triton-grid", "bf16", {"PIXELCNN_GRID_PDL": "1",
                                                    "PIXELCNN_GRID_PREFETCH": "1"}) == \
        "triton-grid/pdl/prefetch"
    assert roofline.variant("triton-grid", "bf16", {"PIXELCNN_GRID_AHEAD": "1"}) == \
        "triton-grid/ahead"


def test_phase_products_count_each_phase_chain():
    """A phase's chain, in products x K tiles of 32: a layer's six products over K = H (five
    when completing: no skip), the left taps' two over K = p H, layer 0's two over its
    features (at least half a tile: the block of 16)."""
    H, p = 192, 2
    assert roofline.phase_products("layer", H, p, 3, True) == 36
    assert roofline.phase_products("layer", H, p, 3, False) == 30
    assert roofline.phase_products("left", H, p, 3, True) == 24
    assert roofline.phase_products("layer0", H, p, 3, True) == 1
    assert roofline.phase_products("layer0", H, p, 64, True) == 4
    assert roofline.phase_products("hidden", H, p, 3, True) == 6
    assert roofline.phase_products("gate", H, p, 3, True) == 24                  # split
    assert roofline.phase_products("gate", H, p, 3, True, fused=False) == 12     # 2-phase
    # c = 0: the next layer's left taps beside (the longer chain), layer 0's own in its chain
    assert roofline.phase_products("layer+left", H, p, 3, True) == 36
    assert roofline.phase_products("gate+left", H, p, 3, True) == 24
    assert roofline.phase_products("layer0+left", H, p, 3, True) == 24
    assert roofline.phase_products("layer0+own", H, p, 3, True) == 1 + 2 * p
    assert roofline.phase_kinds(3, 0) == ["layer0+left", "layer+left", "layer", "hidden",
                                          "hidden", "out"]
    assert roofline.phase_kinds(1, None) == ["layer0+own", "out"]


def test_head_in_one_phase_saves_two_phases_a_sub_pixel():
    """triton-grid/.../head (PIXELCNN_GRID_HEAD=1): out's programs make the head's hidden
    activations first, L + 1 phases a sampling step (completion's are unchanged); its chain
    is both hidden products in blocks of columns, then the logits. The bounds lose two
    phases' floor a sub-pixel."""
    H, p = 192, 2
    assert roofline.phase_kinds(3, 1, head=True) == ["layer0", "layer", "layer", "head"]
    assert roofline.phase_kinds(3, None, head=True) == roofline.phase_kinds(3, None)
    assert roofline.phase_products("head", H, p, 3, True, blocks=3) == (2 * 3 + 1) * 6
    assert roofline.phase_inputs("head", H, p, 3) == 3 * H
    cfg, dev = pixelcnn.preset("cifar"), roofline.DEVICES["h100"]
    steps = roofline.grid(cfg, dev, "bf16", 1, (32, 32), label="triton-grid/groups/head")
    assert [s.launches for s in steps[1:]] == [cfg.layers + 1] * 3
    at = lambda label: roofline.predict(cfg, "h100", "bf16", 256, (32, 32))[label][1]
    assert at("triton-grid/pdl/prefetch/groups/head") < at("triton-grid/pdl/prefetch/groups")
    hop, size = roofline.T_PDL, (32, 32)
    per = lambda rate: 256 / (3 * 32 * 32 * rate)                   # s a sub-pixel
    for bound in (roofline.floor, functools.partial(roofline.spread_floor, dev=dev)):
        saved = per(bound(cfg, batch=256, size=size, hop=hop)) - \
            per(bound(cfg, batch=256, size=size, hop=hop, head=True))
        assert saved == pytest.approx(2 * (hop + roofline.T_PHASE))


def test_colour_groups_make_a_third_of_the_columns():
    """triton-grid/groups (PIXELCNN_GRID_GROUPS=1): sub-pixel c makes colour group c's
    columns over K = (c + 1) H / C. Its last channel's chain is every column's (the whole K,
    one wave at batch 1), the others' shorter; its weights over
    the three sub-pixels are 2/9 of the pixel path's (the logits' K 2/3, the left taps
    whole); at batch 256 it is faster."""
    cfg, dev = pixelcnn.preset("cifar"), roofline.DEVICES["h100"]
    wt = roofline.weights(cfg)
    steps = roofline.grid(cfg, dev, "bf16", 1, (32, 32), label="triton-grid/groups")
    full = roofline.grid(cfg, dev, "bf16", 1, (32, 32))
    assert [s.name for s in steps] == ["row", "pixel c=0", "pixel c=1", "pixel c=2"]
    assert steps[3].chain == full[2].chain and steps[1].chain < full[1].chain
    assert steps[2].chain < steps[3].chain      # c = 0: the next layers' left taps (whole K)
    logits = cfg.channels * cfg.levels              # the head's logits: [H, V] a channel
    body = wt["pixel"] - logits + wt["folded"]
    assert sum(s.flops for s in steps[1:]) / 2 == pytest.approx(
        body * 2 / 3 + logits * 2 + wt["prev"])              # (1 + 2 + 3) / 9, / 3
    at = lambda label: roofline.predict(cfg, "h100", "bf16", 256, (32, 32))[label][1]
    assert at("triton-grid/groups") < at("triton-grid")
    assert at("triton-grid/pdl/prefetch/groups") < at("triton-grid/pdl/prefetch")


def test_the_phase_floor_the_target_needs():
    """The best built design (BEST) reaches 2,000 images/s at batch 256 at the phase floor
    needed_phase_floor states (a batch is linear in it), a higher one with faster row steps;
    the command prints both."""
    cfg = pixelcnn.preset("cifar")
    need = roofline.needed_phase_floor(cfg, "h100", (32, 32))
    assert 0 < need < roofline.T_PHASE
    at = lambda t: roofline.predict(cfg, "h100", "bf16", 256, (32, 32), t_phase=t)[
        roofline.BEST][1]
    assert at(need) == pytest.approx(256 / 2000)
    assert roofline.needed_phase_floor(cfg, "h100", (32, 32), 0.01) > need
    line = roofline.phase_floor_line(cfg, "h100", (32, 32), 0.01)
    assert line.startswith(f"target bf16 batch 256: >= 2,000 images/s: {roofline.BEST} reaches "
                           f"it while a phase's floor is <= {need * 1e6:.2f} us")
    two = float(re.search(r"<= ([\d.]+) us in two sub-batches side by side", line).group(1))
    assert roofline.sub_batches(cfg, "h100", (32, 32), 2, t_phase=two * 1e-6) == \
        pytest.approx(2000, rel=0.01)


def test_measured_steps_imply_the_phase_floor(tmp_path, capsys):
    """bench.phase_times' step_best_us (BEST's steps at each c) imply a phase floor: steps
    made by the model at 0.8 us give 0.8 us back, and the command prints what BEST predicts
    there, alone and in two sub-batches."""
    cfg, dev = pixelcnn.preset("small"), roofline.DEVICES["h200"]
    steps = roofline.grid(cfg, dev, "bf16", 256, (32, 32), label=roofline.BEST, t_phase=0.8e-6)
    record = {"batch": 256, "step_best_us": {str(c): s.seconds * 1e6
                                             for c, s in enumerate(steps[1:])}}
    data = {"machine": {"device_name": "NVIDIA H200"}, "preset": "small", "batches": [record]}
    (tmp_path / "x-cuda-phase-times.json").write_text(json.dumps(data))
    got = roofline.measured_phase_floor(tmp_path, "h200", "small", cfg, (32, 32))
    assert got == {256: pytest.approx(0.8e-6)}
    assert roofline.measured_phase_floor(tmp_path, "h200", "cifar", cfg, (32, 32)) == {}
    roofline.main(["--preset", "small", "--device", "h200", "--dtypes", "bf16", "--batches",
                   "256", "--results", str(tmp_path)])
    out = capsys.readouterr().out
    assert f"measured, {roofline.BEST}'s steps at batch 256 (bench.phase_times " \
           "step_best_us): a phase floor of 0.80 us" in out
    assert f"{roofline.sub_batches(cfg, 'h200', (32, 32), 2, t_phase=0.8e-6):,.0f} in two " \
           "sub-batches" in out


def test_a_timed_sub_batch_bounds_the_sub_batches(tmp_path, capsys):
    """bench.phase_times' timing of one of eight sub-batches alone ("lane": BEST's step at
    each c and the row step, on its tiles) is a sub-batch's chain: steps made by the model
    give the model's chain back, and the command prints the bound it sets."""
    cfg, dev = pixelcnn.preset("cifar"), roofline.DEVICES["h100"]
    steps = roofline.grid(cfg, dev, "bf16", 32, (32, 32), label=roofline.BEST, sub_batch=True)
    lane = {"batch": 32, "row_us": steps[0].seconds * 1e6,
            "step_best_us": {str(c): s.seconds * 1e6 for c, s in enumerate(steps[1:])}}
    data = {"machine": {"device_name": "NVIDIA H100 80GB HBM3"}, "preset": "cifar",
            "batches": [{"batch": 256, "lane": lane}]}
    (tmp_path / "x-cuda-phase-times.json").write_text(json.dumps(data))
    chain = sum(s.count * s.seconds for s in steps)
    got = roofline.measured_lanes(tmp_path, "h100", "cifar", (32, 32))
    assert got == {(8, 32): pytest.approx(chain)}
    roofline.main(["--preset", "cifar", "--device", "h100", "--dtypes", "bf16", "--batches",
                   "256", "--results", str(tmp_path)])
    out = capsys.readouterr().out
    assert f"measured, one of 8 sub-batches (32 images, its tiles; bench.phase_times lane): a " \
           f"chain of {chain * 1e3:.1f} ms (modelled {chain * 1e3:.1f}); at most " \
           f"{256 / chain:,.0f} images/s in 8 sub-batches" in out


def test_sub_batches_share_the_sms():
    """k sub-batches side by side (PIXELCNN_GRID_SUB_BATCHES=k): one is BEST's batch; two of
    128 on the cifar preset beat it (the row steps beside the other's pixel steps); none
    beats a sub-batch's chain (on the sub-batch tiles), the SM time of all of them, or their
    launches one at a time. The sub-batch tiles are the launchers' (fewer programs, about the
    same latency). Timings under the switch are filed as .../subk, which `predict` models."""
    cfg, size = pixelcnn.preset("cifar"), (32, 32)
    dev = roofline.DEVICES["h100"]
    pred = roofline.predict(cfg, "h100", "bf16", 256, size)
    one = lambda b: roofline.predict(cfg, "h100", "bf16", b, size)[roofline.BEST][1]
    assert roofline.sub_batches(cfg, "h100", size, 1) == pytest.approx(256 / one(256))
    for k in roofline.SUB_BATCHES:
        steps = roofline.grid(cfg, dev, "bf16", 256 // k, size, label=roofline.BEST,
                              sub_batch=True)
        chain = sum(s.count * s.seconds for s in steps)
        launches = k * sum(s.count * s.launches for s in steps) * roofline.T_PDL
        got = roofline.sub_batches(cfg, "h100", size, k)
        assert 256 / one(256) < got <= min(256 / chain, 256 / launches)
        assert pred[f"{roofline.BEST}/sub{k}"][1] == pytest.approx(256 / got)
    plain, lane = (roofline.grid(cfg, dev, "bf16", 64, size, label=roofline.BEST, sub_batch=sub)
                   for sub in (False, True))
    for a, b in zip(plain, lane):       # half the programs or fewer, the latency within 10%
        assert b.programs <= a.programs / 2        # (a prefetched tile's arithmetic doubles)
        assert b.seconds == pytest.approx(a.seconds, rel=0.1)
    assert roofline.sub_batches(cfg, "h100", size, 8) >= 2000      # the target, predicted
    assert roofline.variant("triton-grid", "bf16", {"PIXELCNN_GRID_GROUPS": "1",
                                                    "PIXELCNN_GRID_SUB_BATCHES": "2"}) == \
        "triton-grid/groups/sub2"


def test_a_batch_is_linear_in_the_barrier_cost():
    cfg = pixelcnn.preset("cifar")
    at = lambda t: roofline.predict(cfg, "h100", "bf16", 1, (32, 32), t)[
        "triton-grid/persistent"][1]
    assert at(2e-6) - at(1e-6) == pytest.approx(at(1e-6) - at(0.0))
    assert at(1e-6) > at(0.0)


def test_command_prints_the_model_and_the_targets(tmp_path, capsys):
    result = roofline.main(["--preset", "small", "--device", "h200", "--batches", "1,256",
                            "--results", str(tmp_path)])
    out = capsys.readouterr().out
    assert set(result) == {(d, b) for d in ("bf16", "float32") for b in (1, 256)}
    assert "predicted vs measured" in out and "H200" in out
    assert out.count("target bf16") == 3 * 11 + 2 + 3  # as timed (a left phase), today, split,
    # ahead, pdl, pdl with the weights prefetched, colour groups alone and with both, the head
    # in one phase alone and with all three, persistent; the phase floor the best one needs,
    # the best one in sub-batches: a line for k = 1 .. 16, one for each k `predict` models
    assert out.count("holds while a cross-SM sync costs") == 3          # pdl, persistent
    assert out.count("bound, bf16 batch 256") == 11    # one product a phase: a launch or
    # nothing between phases; spread: a launch, PDL or nothing; spread, PDL or nothing, with
    # today's row steps and with row steps at the dense matmul rate; the resident design's,
    # and multicast
    assert "for a persistent design with the pixel path's weights resident on chip" in out
    for method in ("naive", "triton", "triton-grid"):
        assert f"  {method} " in out


def test_bad_options_fail_in_one_line(capsys):
    with pytest.raises(SystemExit):
        roofline.main(["--dtypes", "fp8"])
    assert "--dtypes: unknown ['fp8']" in capsys.readouterr().err


def test_results_say_which_design_they_timed(tmp_path):
    """bench.sample's machine record and line name triton-grid's design (its phases per
    sub-pixel); the roofline files a timing under that design: today's as triton-grid, the
    fold's with a left phase (L+3) as .../left-phase, the same line without it (older
    results) as .../2-phase."""
    import torch
    from bench.common import machine, machine_line
    m = machine(torch.device("cpu"), "bf16")
    assert m["grid_phases"] == "L+3all"
    m.update(device="cuda", device_name="NVIDIA H100 80GB HBM3")
    model = "model: x.pt (22,120,512 parameters, 15 layers, 192 channels, k5)"
    timing = ["[1 s] throughput at 32x32x3 (3072 sub-pixel steps per image):",
              "  triton-grid  batch    1: 0.25 s per batch (3 s to measure)"]
    old = machine_line(m).replace(" | triton-grid phases L+3all", "")
    fold = machine_line(m).replace("L+3all", "L+3")
    (tmp_path / "call1-log.txt").write_text("\n".join([machine_line(m), model] + timing))
    (tmp_path / "call2-log.txt").write_text("\n".join([old, model] + timing).replace("0.25", "0.5"))
    (tmp_path / "call3-log.txt").write_text("\n".join([fold, model] + timing).replace("0.25", "0.3"))
    meas = roofline.measured(tmp_path, "h100", pixelcnn.preset("cifar"), (32, 32))
    assert meas == {("triton-grid", "bf16", 1): 0.25,       # old: persistent by default
                    ("triton-grid/persistent/2-phase", "bf16", 1): 0.5,
                    ("triton-grid/left-phase", "bf16", 1): 0.3}


def test_spread_floor_shares_each_phases_work_among_the_slots():
    """However a phase's products are spread, its programs' chains share its product tiles, of
    the least work a sub-pixel needs (colour group c's 64 columns over K = 64 (c + 1)): at
    batch 256 (cifar, bf16) a folded layer's 6 products x K tiles x 8 image blocks x 4 column
    blocks over 132 x 3 slots are 1, 2 or 3 tiles a program; at batch 1 a split K beats
    `floor`'s one product."""
    cfg = pixelcnn.preset("cifar")
    dev = roofline.DEVICES["h200"]
    hop = roofline.T_LAUNCH
    phase = lambda tiles: hop + roofline.T_PHASE + tiles * roofline.T_PRODUCT["bf16"]
    # layer 0: 2 x 1 x 8 x 4 = 64 tiles -> 1; layers: 6 x (2, 4, 6) x 32 = 384, 768, 1,152
    # -> 1, 2, 3; hidden: 1 x (2, 4, 6) x 32 -> 1; out: 1 x (2, 4, 6) x 8 x 16 -> 1, 2, 2
    sub_pixel = sum(phase(1) + 14 * phase(layer) + 2 * phase(1) + phase(out)
                    for layer, out in ((1, 1), (2, 2), (3, 2))) / 3 + roofline.T_SAMPLE
    assert roofline.groups_k(cfg) == [64, 128, 192]
    assert roofline.spread_floor(cfg, dev, 256, (32, 32), hop) == \
        pytest.approx(256 / (3 * 32 * 32 * sub_pixel))
    assert roofline.spread_floor(cfg, dev, 1, (32, 32), hop) > \
        roofline.floor(cfg, 1, (32, 32), hop)


def test_resident_design_states_the_sync_it_needs():
    """The resident design (weights on chip, an on-chip sync a phase): its batch time is
    linear in the sync; each SM's share of the weights fits its shared memory beside the
    staging; every column group reads each phase's activations, so that at batch 256 (cifar,
    bf16, H100) L2's broadcast keeps it under 2,000 images/s at any sync cost, and only
    multicast to clusters brings it there: the sync `targets` prints as the most 2,000
    tolerates then gives exactly 2,000."""
    cfg, dev, size = pixelcnn.preset("cifar"), roofline.DEVICES["h100"], (32, 32)
    row = roofline.grid(cfg, dev, "bf16", 256, size)[0].seconds
    at = lambda sync, m=1: roofline.resident(cfg, dev, 256, size, sync, row, multicast=m)
    n = roofline.resident_syncs(cfg, size)
    assert n == 3 * 32 * 32 * (15 + 3)
    assert at(1e-6) - at(0.0) == pytest.approx(n * 1e-6)
    groups = roofline.resident_groups(cfg, dev, "bf16")
    held = roofline.resident_bytes(cfg, "bf16") / groups
    assert held <= dev.smem - roofline.STAGING < roofline.resident_bytes(cfg, "bf16") / (groups - 1)
    # per image: layer 0 its pixel (F = 3), a folded layer a and r (2H), at c = 0 (a third
    # of the sub-pixels) every phase but the last layer's the next layer's taps too (pH);
    # the head's three phases H each
    L, H, p = 15, 192, 2
    per_image = ((3 + (L - 1) * p * H + (L - 1) * 2 * H + 3 * H)        # c = 0
                 + 2 * (3 + (L - 1) * 2 * H + 3 * H)) / 3               # c = 1, 2
    assert roofline.resident_broadcast(cfg, 256, groups, "bf16") == \
        pytest.approx(groups * 256 * per_image * 2)
    assert 256 / at(0.0) < 2000
    lines = roofline.targets(cfg, "h100", size, {})
    line = [x for x in lines if "resident on chip" in x][0]
    assert "not 2,000 at any sync cost" in line
    need = float(line.split("2,000 needs >= ")[1].split(" TB/s")[0]) * 1e12    # L2's rate
    assert 256 / roofline.resident(cfg, dev, 256, size, 0.0, row, l2_bw=need) == \
        pytest.approx(2000, rel=0.01)
    cast = [x for x in lines if "multicast" in x][0]
    sync = float(cast.split("4 SMs")[1].split("while a sync costs <= ")[1].split(" us")[0]) * 1e-6
    assert 0 < sync < roofline.T_SYNC
    assert 256 / at(sync, 4) == pytest.approx(2000, rel=0.01)


def test_measured_barrier_and_broadcast_decide_the_resident_design(tmp_path, capsys):
    """bench.phase_times' barrier alone, on the device asked for, among one program an SM
    (not 2), the better poll, and its fastest L2 broadcast: the roofline prints what the
    resident design predicts at them (L2 assumed where no broadcast was timed)."""
    def write(name, device, barriers, broadcast=None):
        (tmp_path / f"{name}-cuda-phase-times.json").write_text(json.dumps(
            {"machine": {"device_name": device}, "batches": [], "barrier_us": barriers,
             **({"broadcast": broadcast} if broadcast else {})}))

    def last_line():
        roofline.main(["--preset", "cifar", "--device", "h100", "--dtypes", "bf16",
                       "--batches", "256", "--results", str(tmp_path)])
        return capsys.readouterr().out.splitlines()[-1]
    write("a", "NVIDIA H100 80GB HBM3", {"atomic, 2 programs": {"us": 0.3},
                                         "atomic, 132 programs": {"us": 1.4},
                                         "load, 132 programs": {"us": 0.8},
                                         "load, 2 programs": {"error": "RuntimeError: x"}})
    write("b", "NVIDIA H200", {"atomic, 132 programs": {"us": 0.1}}, {"x": {"tbs": 99.0}})
    assert roofline.measured_barrier(tmp_path, "h100") == pytest.approx(0.8e-6)
    assert roofline.measured_barrier(tmp_path / "none", "h100") is None
    assert roofline.measured_broadcast(tmp_path, "h100") is None
    line = last_line()
    assert "the resident design at the barrier alone measured here (0.80 us" in line
    assert "L2's broadcast at 5.5 TB/s (assumed)" in line and line.endswith("(MISSED)")
    write("c", "NVIDIA H100 80GB HBM3", {}, {"132 programs, 197 KB": {"us": 9.0, "tbs": 12.0},
                                             "132 programs, 49 KB": {"us": 4.0, "tbs": 30.0},
                                             "2 programs, 197 KB": {"error": "x"},
                                             "132 programs, 197 KB each": {
                                                 "us": 1.0, "tbs": 90.0, "distinct": True}})
    assert roofline.measured_broadcast(tmp_path, "h100") == pytest.approx(30e12)
    line = last_line()
    assert "L2's broadcast at 30.0 TB/s (measured here)" in line and line.endswith("(met)")
