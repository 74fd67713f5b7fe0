"""Where `triton-grid`'s sub-pixel step spends its time on a GPU: each phase alone, launched N
times in a CUDA graph (µs a launch, as sampling replays them), beside an empty kernel's launch
(the floor a dependent launch costs) and the whole step (also with PIXELCNN_GRID_GROUPS'
colour groups at each c, with PIXELCNN_GRID_SPLIT's split products, with
PIXELCNN_GRID_PREFETCH's weights loaded first - before PDL's wait too - and PDL letting the
next phase launch at a program's start, after its wait or at its end) and row step, graphed
the same way; last (`--what chip`, also alone) L2 delivering the same
activations to every SM, then a grid barrier alone (kernels/grid.py, both polls, 2 programs and
one an SM): the broadcast and the on-chip sync that bench.roofline's resident design, which
keeps the weights on chip, would pay at every phase instead of a launch.

    python -m bench.phase_times                      # cifar preset, bf16, batch 1 and 256
    python -m bench.phase_times --what chip          # the broadcast and the barrier only

Why: bench.roofline, fitted on the two-phase design, put most of a sub-pixel in K-loop round
trips; on the H200 the folded design's 7 pipeline stages and K tiles of 128, which cut those,
did not make it faster. Timing each phase separates a phase's launch from its work, and the
sum of the phases from the step (what launching them back to back costs or overlaps). At a
pixel's first sub-pixel (c = 0) layer 0 computes its own left taps and layer 1 runs layer 2's
beside its tiles: those two phases are timed there too.
Then layer 1's phase alone under other launch parameters (warps, K tile, pipeline stages, the
split form): what a product's latency depends on. Random weights of the preset. Needs CUDA.
Writes <out>/<UTC time>-cuda-phase-times.json.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import triton
import triton.language as tl

import pixelcnn
from pixelcnn.cache import GatedCache
from pixelcnn.cli import RUNS, Parser, at_least, fresh
from pixelcnn.kernels.common import pow2
from pixelcnn.kernels.grid import cooperative_launch, grid_barrier, sm_count

from .common import csv, machine, machine_line

DTYPES = {"float32": torch.float32, "bf16": torch.bfloat16}


@triton.jit
def _empty(x):
    """Nothing: a launch's floor."""
    pass


@triton.jit
def _barriers(counter, n, nprog, POLL: tl.constexpr):
    """n grid barriers back to back and nothing else: what a cross-SM sync alone costs."""
    for _ in range(n):
        grid_barrier(counter, nprog, POLL)


def barrier_us(device, programs: int, poll: str, n: int = 1000) -> dict:
    """{"us": µs per grid barrier} (kernels/grid.py, its POLL `poll`) among `programs`
    co-resident programs with no work between barriers: one cooperative launch of n barriers
    (its launch spread over them), graphed; or, as `timed` records it, {"error": ...}. The
    persistent step's barrier was fitted at 2.24 µs with its phases' work (bench.roofline's
    T_SYNC); this is the floor any design that syncs SMs on chip, not by launches, would pay
    per phase (bench.roofline's resident design: with L2's broadcast, broadcast_tbs, it
    decides whether that design is worth building)."""
    counter = torch.zeros(1, dtype=torch.int32, device=device)
    got = timed(lambda: _barriers[(programs,)](counter, n, programs, POLL=poll, num_warps=8,
                                               launch_cooperative_grid=True), 1)
    return {"us": got["us"] / n} if "us" in got else got


@triton.jit
def _broadcast(src, out, n, reps, BLOCK: tl.constexpr, UNROLL: tl.constexpr,
               DISTINCT: tl.constexpr):
    """Every program reads the same n elements of src from L2 (.cg, as the phases read each
    other's activations) `reps` times, UNROLL blocks in flight, and stores their sum;
    DISTINCT: each program its own n (src holds programs x n), L2's rate without sharing."""
    if DISTINCT:
        src += tl.program_id(0).to(tl.int64) * n
    acc = tl.zeros([BLOCK], tl.float32)
    blocks = tl.cdiv(n, BLOCK)
    for t in range(0, reps * blocks, UNROLL):
        for u in tl.static_range(UNROLL):
            offs = (t + u) % blocks * BLOCK + tl.arange(0, BLOCK)
            ok = (offs < n) & (offs * 0 + t + u < reps * blocks)
            acc += tl.load(src + offs, mask=ok, other=0.0, cache_modifier=".cg").to(tl.float32)
    tl.store(out + tl.program_id(0), tl.sum(acc))


def broadcast_tbs(device, programs: int, nbytes: int, distinct: bool = False,
                  reps: int = 40) -> dict:
    """{"us": µs a launch, "tbs": TB/s, "distinct"} of L2 delivering the same nbytes (bf16)
    to `programs` programs (distinct: each its own nbytes), each reading them `reps` times
    (_broadcast, 8 warps, 8 blocks of 2,048 in flight), graphed; or, as `timed` records it,
    {"error": ...}. bench.roofline's resident design broadcasts every phase's activations to
    each of its ~60 column groups of SMs: at batch 256 its time is the shared rate's (5.5
    TB/s assumed until measured); the distinct rate tells whether sharing lines costs."""
    src = torch.randn((programs if distinct else 1) * nbytes // 2, device=device)
    src = src.to(torch.bfloat16)
    out = torch.empty(programs, device=device)
    n = nbytes // 2
    got = timed(lambda: _broadcast[(programs,)](src, out, n, reps, BLOCK=2048, UNROLL=8,
                                                DISTINCT=distinct, num_warps=8), 5)
    if "us" in got:
        got["tbs"] = programs * reps * n * 2 / (got["us"] * 1e-6) / 1e12
    return {**got, "distinct": distinct}


def broadcasts(device, nbytes: int) -> dict:
    """broadcast_tbs at one program an SM (the resident design's form) and four, and at one an
    SM each reading its own (132 x 197 KB at cifar: in L2)."""
    sms = sm_count(device)
    got = {f"{p} programs, {nbytes / 1e3:.0f} KB": broadcast_tbs(device, p, nbytes)
           for p in (sms, 4 * sms)}
    got[f"{sms} programs, {nbytes / 1e3:.0f} KB each"] = broadcast_tbs(device, sms, nbytes,
                                                                         distinct=True)
    return got


def graphed(fn, n: int, replays: int = 5) -> float:
    """µs per call of fn, n calls captured in one CUDA graph, the best of `replays` replays."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(n):
            fn()
    best = float("inf")
    for _ in range(replays):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) * 1e3 / n)
    return best


def phase_name(ph: int, layers: int) -> str:
    if ph <= layers:
        return f"layer {ph - 1}"
    return {layers + 1: "hidden 1", layers + 2: "hidden 2"}.get(ph, "out")


@torch.no_grad()
def times(model, batch: int, n: int) -> dict:
    from pixelcnn.kernels import sampler_pixel_grid as grid
    from pixelcnn.kernels import sampler_row_gemm as row
    from pixelcnn.packing import packed
    w = packed(model)
    C, H, W, L = model.config.in_channels, 32, 32, w.layers
    cache = GatedCache(w).setup(batch, H, W)
    x = torch.zeros(batch, C, H, W, dtype=torch.long, device=model.device)
    u = torch.rand(batch, C, H, W, device=model.device)
    i, j, c = 1, 2, 1                                     # a sub-pixel past the first
    row.sampler_row_gemm(cache, x, i)
    args, meta = grid.launch(cache, x, u, 1.0, i, j, c)
    out = {"batch": batch, "phases": [], "c0_phases": []}
    for ph in grid.phases(L, c):
        programs = grid.phase_tiles(ph, L, batch, w.hidden, w.wv.dtype)
        us = graphed(lambda: grid._sampler_pixel_phase_kernel[(programs,)](ph, *args, **meta), n)
        out["phases"].append({"phase": ph, "name": phase_name(ph, L), "programs": programs,
                              "us": us})
    args0, _ = grid.launch(cache, x, u, 1.0, i, j, 0)     # c = 0: a pixel's left taps too
    for ph in (1, 2):                   # layer 0 (its own), layer 1 (layer 2's beside)
        programs = grid.phase_tiles(ph, L, batch, w.hidden, w.wv.dtype, left=True)
        us = graphed(lambda: grid._sampler_pixel_phase_kernel[(programs,)](ph, *args0, **meta), n)
        out["c0_phases"].append({"phase": ph, "name": phase_name(ph, L), "programs": programs,
                                 "us": us})
    out["empty_us"] = {p: graphed(lambda: _empty[(p,)](x), n) for p in (1, 132)}
    hopper = x.is_cuda and torch.cuda.get_device_capability(x.device)[0] >= 9
    for key, pdl, split, prefetch in (
            ("step_us", False, 0, False), ("step_split_us", False, 1, False),
            ("step_ahead_us", False, 2, False), ("step_prefetch_us", False, 0, True)) + ((
            ("step_pdl_us", True, 0, False), ("step_pdl_prefetch_us", True, 0, True))
            if hopper else ()):
        out[key] = graphed(lambda: grid.sampler_pixel_grid(cache, x, u, 1.0, i, j, c, pdl=pdl,
                                                           split=split, prefetch=prefetch),
                           max(1, n // L))
    if hopper:          # PDL, the next phase let launch after each program's wait, or its work
        todo = [(ph, grid.phase_tiles(ph, L, batch, w.hidden, w.wv.dtype))
                for ph in grid.phases(L, c)]
        for key, trigger in (("step_pdl_after_wait_us", 1), ("step_pdl_late_us", 2)):
            m = {**meta, "PDL": True, "PDL_TRIGGER": trigger, "launch_pdl": True}
            out[key] = graphed(launching(grid._sampler_pixel_phase_kernel, todo, args, m),
                               max(1, n // L))
    out["step_c0_us"] = graphed(lambda: grid.sampler_pixel_grid(cache, x, u, 1.0, i, j, 0),
                                max(1, n // L))
    out["step_groups_us"] = {      # PIXELCNN_GRID_GROUPS=1: colour group c's columns only
        str(cc): graphed(lambda: grid.sampler_pixel_grid(cache, x, u, 1.0, i, j, cc,
                                                         groups=True), max(1, n // L))
        for cc in range(C)}
    out["step_best_us"] = {        # bench.roofline.BEST: colour groups, the head in out's
        str(cc): graphed(lambda: grid.sampler_pixel_grid(      # phase, the weights prefetched
            cache, x, u, 1.0, i, j, cc, pdl=hopper, prefetch=True, groups=True, head=True),
            max(1, n // L))                                    # and (Hopper) PDL, at each c
        for cc in range(C)}
    out["row_us"] = graphed(lambda: row.sampler_row_gemm(cache, x, i), max(1, n // 20))
    if w.wv.dtype == torch.bfloat16 and batch >= 2 * LANES:
        out["lane"] = lane_times(model, batch // LANES, n, hopper)
    out["layer_sweep"] = layer_sweep(grid, args, meta, L, batch, w, n)
    out["row_sweep"] = row_sweep(row, cache, x, i, n)
    return out


LANES = 8     # bench.roofline's best sub-batch count (PIXELCNN_GRID_SUB_BATCHES=8)


def lane_times(model, batch: int, n: int, hopper: bool) -> dict:
    """One sub-batch of `batch` images on its sub-batch tiles (sub_batch=True): BEST's step at
    each c (bench.roofline.BEST: colour groups, the head in out's phase, the weights
    prefetched, PDL on Hopper) and the row step, in µs. Its chain, 31 row steps and 1,024
    steps at each c, bounds LANES sub-batches side by side (bench.roofline.sub_batches)."""
    from pixelcnn.kernels import sampler_pixel_grid as grid
    from pixelcnn.kernels import sampler_row_gemm as row
    from pixelcnn.packing import packed
    C, L = model.config.in_channels, model.config.layers
    cache = GatedCache(packed(model)).setup(batch, 32, 32)
    x = torch.zeros(batch, C, 32, 32, dtype=torch.long, device=model.device)
    u = torch.rand(batch, C, 32, 32, device=model.device)
    i, j = 1, 2
    row.sampler_row_gemm(cache, x, i, sub_batch=True)
    return {"batch": batch,
            "step_best_us": {str(c): graphed(lambda: grid.sampler_pixel_grid(
                cache, x, u, 1.0, i, j, c, pdl=hopper, prefetch=True, groups=True, head=True,
                sub_batch=True), max(1, n // L)) for c in range(C)},
            "row_us": graphed(lambda: row.sampler_row_gemm(cache, x, i, sub_batch=True),
                              max(1, n // 20))}


# A layer phase's launch parameters to time beside the launcher's: what its ~0.08 us per
# product per K tile depends on (warps sharing a 16-column tile, K tile - BK, and KL, the
# layer products' own - : 32 is float32's candidate, which no longer spills there, pipeline
# depth), the split form's two halves (PIXELCNN_GRID_SPLIT=1), and the prefetch form
# (PIXELCNN_GRID_PREFETCH=1, here without PDL: its weights in one K tile, loaded first).
SWEEP = [dict(num_warps=2), dict(num_warps=8), dict(BK=64, KL=64), dict(BK=32, KL=32),
         dict(BK=16, KL=16), dict(num_stages=2), dict(num_stages=1), dict(SPLIT=1),
         dict(SPLIT=2), dict(PREFETCH=True)]


def layer_sweep(grid, args, meta, layers: int, batch: int, w, n: int) -> list:
    """µs of layer 1's phase (its six products) under each SWEEP override of the launcher's
    meta (the first row: none)."""
    out = []
    for override in [{}] + SWEEP:
        m = {**meta, **override}
        if m.get("PREFETCH"):
            m["KL"] = pow2(w.hidden)                                 # as grid.launch has it
        programs = grid.phase_tiles(2, layers, batch, w.hidden, w.wv.dtype,
                                    split=m.get("SPLIT", 0))
        out.append({"override": override, "programs": programs, **timed(
            lambda: grid._sampler_pixel_phase_kernel[(programs,)](2, *args, **m), n)})
    return out


# The row step's launch parameters to time beside the launcher's (3 stages, K tiles of 32):
# its taps are one K loop (kernels/common.vertical_taps: (p + 1) k H / BK iterations a layer,
# 90 for the cifar preset), which deeper pipelines keep more K tiles in flight through.
ROW_SWEEP = [dict(num_stages=4), dict(num_stages=6), dict(num_stages=8), dict(BK=64),
             dict(BK=64, num_stages=4)]


def row_sweep(row, cache, x, i: int, n: int) -> list:
    """µs of a whole row step under each ROW_SWEEP override of its launches' meta (the first
    row: none)."""
    args, meta, todo = row.launches(cache, x, i)
    out = []
    for override in [{}] + ROW_SWEEP:
        step = launching(row._sampler_row_gemm_kernel, todo, args, {**meta, **override})
        out.append({"override": override, **timed(step, max(1, n // 20))})
    return out


def launching(kernel, todo, args, meta):
    """A call that launches kernel once per (phase, programs) of todo, as a step does."""
    def step():
        for ph, programs in todo:
            kernel[(programs,)](ph, *args, **meta)
    return step


def timed(fn, n: int) -> dict:
    """{"us": graphed(fn, n)}, or {"error": ...} where a sweep's parameters do not compile
    or launch on this GPU (shared memory, registers): the other rows still run."""
    try:
        return {"us": graphed(fn, n)}
    except Exception as e:                              # a sweep's failure is a result
        return {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}"}


def report(r: dict, layers: int) -> str:
    lines = [f"batch {r['batch']}:", f"  {'phase':14s} {'programs':>8s} {'µs':>8s}"]
    for p, when in [(p, "") for p in r["phases"]] + [(p, " (c = 0)") for p in r["c0_phases"]]:
        lines.append(f"  {p['name'] + when:14s} {p['programs']:8d} {p['us']:8.2f}")
    c1 = sum(p["us"] for p in r["phases"])
    e = r["empty_us"]
    lines += [f"  sum of a c > 0 step's phases {c1:.1f} µs; the step graphed {r['step_us']:.1f} "
              f"µs (with PDL {r.get('step_pdl_us', float('nan')):.1f}; the layers' weights "
              f"prefetched {r['step_prefetch_us']:.1f}, before PDL's wait "
              f"{r.get('step_pdl_prefetch_us', float('nan')):.1f}; PDL launching the "
              f"next phase after the wait {r.get('step_pdl_after_wait_us', float('nan')):.1f} "
              f"or at the end {r.get('step_pdl_late_us', float('nan')):.1f}, its "
              f"products split "
              f"{r['step_split_us']:.1f}, with the look-ahead {r['step_ahead_us']:.1f}); "
              f"a c = 0 step {r['step_c0_us']:.1f} µs; with colour groups " + ", ".join(
                  f"c = {cc} {us:.1f}" for cc, us in r["step_groups_us"].items()) + " µs; "
              "with colour groups, the head in out's phase, the weights prefetched and PDL "
              "(bench.roofline's best) " + ", ".join(
                  f"c = {cc} {us:.1f}" for cc, us in r["step_best_us"].items()) + " µs",
              f"  empty kernel: {e[1]:.2f} µs (1 program), {e[132]:.2f} µs (132); row step "
              f"{r['row_us']:.1f} µs",
              f"  a 32x32x3 image: {(r['row_us'] * 32 + 1024 * (r['step_c0_us'] + 2 * r['step_us'])) / 1e6:.3f} s "
              f"predicted from these (32 row steps, 1,024 pixels of 3 sub-pixels)",
              "  layer 1's phase: " + swept(r["layer_sweep"]),
              *([f"  one of {LANES} sub-batches ({r['lane']['batch']} images, its tiles): "
                 f"the best design's step " + ", ".join(
                     f"c = {cc} {us:.1f}" for cc, us in r["lane"]["step_best_us"].items())
                 + f" µs, row step {r['lane']['row_us']:.1f} µs"] if "lane" in r else []),
              "  the row step: " + swept(r["row_sweep"])]
    return "\n".join(lines)


def barriers(device) -> dict:
    """barrier_us by poll and programs (2, and one an SM), where Triton launches cooperative
    grids."""
    if not cooperative_launch():
        return {}
    return {f"{poll}, {p} programs": barrier_us(device, p, poll)
            for poll in ("atomic", "load") for p in (2, sm_count(device))}


def broadcast_line(got: dict) -> str:
    return "L2's broadcast (every program reading the same activations): " + ", ".join(
        f"{k} " + (f"{r['tbs']:.1f} TB/s ({r['us']:.1f} µs)" if "tbs" in r else outcome(r))
        for k, r in got.items())


def barrier_line(got: dict) -> str:
    return "a grid barrier alone (poll, programs): " + (
        ", ".join(f"{k} {outcome(v)}" for k, v in got.items()) if got
        else "not timed (this Triton has no cooperative launch)")


def outcome(r: dict) -> str:
    """A `timed` result: its µs, or its error in parentheses."""
    return f"{r['us']:.2f} µs" if "us" in r else f"({r['error']})"


def swept(rows: list) -> str:
    """A sweep's rows on one line: each override (or 'as launched') and its µs or error."""
    return ", ".join(
        f"{', '.join(f'{k}={v}' for k, v in s['override'].items()) or 'as launched'} "
        + outcome(s) for s in rows)


def main(argv=None):
    p = Parser(prog="python -m bench.phase_times", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cifar", choices=sorted(pixelcnn.PRESETS))
    p.add_argument("--dtype", default="bf16", choices=list(DTYPES))
    p.add_argument("--batch-sizes", type=csv(int), default=[1, 256])
    p.add_argument("--launches", type=at_least(1), default=400,
                   help="launches per CUDA graph (default 400)")
    p.add_argument("--what", type=csv(str), default=["phases", "chip"],
                   help="phases (each phase, the steps, the sweeps) and/or chip (L2's "
                        "broadcast, then a grid barrier alone: bench.roofline's resident "
                        "design); default both")
    p.add_argument("--out", type=Path, default=RUNS / "bench")
    args = p.parse_args(argv)
    unknown = [w for w in args.what if w not in ("phases", "chip")]
    if unknown or not args.what:
        p.error(f"--what: unknown {unknown}; choose from phases, chip")
    if not torch.cuda.is_available():
        p.error("bench.phase_times times CUDA launches and needs a GPU "
                "(its kernels' correctness on a CPU: python -m bench.lockstep)")
    device = torch.device("cuda")
    torch.manual_seed(0)
    config = pixelcnn.preset(args.preset)
    m = machine(device, args.dtype)
    print(machine_line(m))
    args.out.mkdir(parents=True, exist_ok=True)
    path = fresh(args.out / f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-cuda-phase-times.json")
    saved = {"machine": m, "preset": args.preset, "launches": args.launches, "batches": []}

    def write(line):
        print(line)
        path.write_text(json.dumps(saved, indent=1))
        print(f"wrote {path}", flush=True)
    if "phases" in args.what:
        model = pixelcnn.build(config).to(device, DTYPES[args.dtype]).eval()
        print(f"model: {args.preset} preset ({config.layers} layers), random weights; "
              f"{args.launches} launches a graph, best of 5 replays")
        for b in args.batch_sizes:      # written after each batch size: a step's time limit
            saved["batches"].append(times(model, b, args.launches))  # (gpu.sh) keeps what
            write(report(saved["batches"][-1], config.layers))        # was measured
    if "chip" in args.what:         # the largest batch's phase input: a and r, bf16
        saved["broadcast"] = broadcasts(device, max(args.batch_sizes) * 2 * config.channels * 2)
        write(broadcast_line(saved["broadcast"]))
        saved["barrier_us"] = barriers(device)      # last: a barrier that hangs loses only it
        write(barrier_line(saved["barrier_us"]))


if __name__ == "__main__":
    main()
