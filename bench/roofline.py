"""The incremental sampler's performance model, as a command (issue 12).

    python -m bench.roofline --preset cifar --device h100

Per dtype and batch size it prints every step of one sampling call (a --size image): how many
per batch, its kernel launches, programs, barriers (today: in-program; triton-grid: grid
barriers), bytes read, FLOPs, dependent chain, predicted time and what bounds it; then seconds
per batch, ms per image and images/s, beside what bench/results/ measured on that device
(bench.sample's JSON files and device-call logs, same model size, dtype and batch: the best).
Everything follows from the config (layers L, channels H, kernel size k = 2p + 1, colour
channels C, levels V) and the constants below.

Samplers modelled:
- naive: one forward pass per sub-pixel: an eager floor plus its FLOPs at cuDNN's rate.
- triton, today (kernels/sampler_row.py, sampler_pixel.py): per image row one row step, one
  program per image (vertical stacks + links of all layers); per sub-pixel one pixel step,
  one program per 16 images, every layer's horizontal stack, the head and the sample. A
  program is a chain of K-loop iterations (load a weight tile, tl.dot), each waiting for one
  global-memory round trip or its tile's arithmetic: time = chain x max(T_MEM, tile FLOPs /
  the SM's rate); beyond that, bytes / bandwidth; at least one launch.
- triton-grid (kernels/sampler_row_gemm.py, sampler_pixel_grid.py): every SM works on every
  step. The row step is L + 2 launches of batched-GEMM tiles over the B x W positions; the
  sub-pixel step is L + 3 phases (the design timed before, .../left-phase: L + 4 at c = 0, a
  phase for the left taps; the two-phase design before the fold 2L + 2
  and 2L + 3) of images x columns tiles, launched one by one, or met at grid barriers inside
  one persistent launch. A phase costs its launch (T_LAUNCH, T_PDL) or barrier (T_SYNC), then
  per wave of its programs (two or three resident an SM, by their registers) the latency of one program: T_PHASE, T_PRODUCT
  per product per K tile of 32 in its chain (a layer: six products over K = H), T_SAMPLE for
  the softmax and sample; beside them its arithmetic at EFFICIENCY of the matmul rate and its
  weights from L2 (not resident: each step re-reads them, ~9 MB at c = 0 for the cifar preset
  in bf16). The K tile and the pipeline's stages do not enter: on the H200 neither K tiles of
  128 nor 7 stages changed a phase's time (they were this model's predecessor's levers).
  Not modelled: cached (Python-bound: 2.1-2.6 ms per sub-pixel at every batch size on the
  H100, like on CPUs).

Corrections after the first H100 run (bench/results/h100-20261125; bench/README.md had
predicted a ~10 ms launch floor per image at batch 1, arithmetic-bound 20-40 ms at 256,
and the audit 490-990 images/s): the floor of today's step is neither the launch (2 us) nor
arithmetic: it is the chain of ~800-1,360 dependent K-iterations of the one program that
owns an image (~0.24 us each, 250 us per step), the same at every batch size up to 16
programs, and 16 of 132 SMs at batch 256. So triton is flat in the batch (0.77-0.94 s per
batch), as measured; T_MEM is fitted on one point (bf16, batch 1), the rest is predicted.

Correction after the H200 run of triton-grid (bench/results/h200-20261126): the row step had
counted its weights' traffic but not its taps', which every block of output columns re-reads
(4.8 GB a row step at batch 256 with 32-column blocks); counting them moved the batch-256
predictions from 0.90-0.92 of the measured times to 0.95-0.97 (batch 16 and 64: 0.99-1.00),
and made the row step 64 columns wide there.

Correction after the H200 run of the folded design (bench/results/h200-20261126-fold): the
model then charged a phase a 1.87 us launch plus an L2 round trip per two K tiles (T_MEM,
fitted on the H100's `triton`); it predicted 0.21 s at batch 1 (measured 0.295), and 1.4x
from K tiles of 128 or 7 pipeline stages (measured: 2% and 13% slower). Timing each phase
alone (bench.phase_times) showed a launch costs 0.7 us and a phase's time grows with its
products, not its K-loop round trips: this model's phase latency is fitted on those (T_PHASE,
T_PRODUCT, T_SAMPLE), and predicts the full runs' batch 1-256 (tests/test_roofline.py).

Correction while adding the look-ahead: the pixel phases' programs per wave were counted with
the row step's column blocks (a closure read a variable the row step's code reassigned): at
batch 256 the left phase was charged 2 waves for its 1,440 programs, not 6. Fixed, the timed
design's batch-256 run is predicted at 0.92 of the measured (0.89) and the persistent
kernel's at 0.92 (0.60). Resident programs an SM now follow the compiled registers.

The weights prefetched (triton-grid/pdl/prefetch: PIXELCNN_GRID_PDL=1 PIXELCNN_GRID_PREFETCH=1,
not yet timed): a layer phase's gate tiles load their six weight tiles (the whole K) before
PDL's wait for the previous phase, so the weights' loads overlap it. Modelled as the most it
can give: the layer's chain of products (T_PRODUCT each, fitted) is taken to be their weights'
loads, leaving T_PHASE and the products' arithmetic (at EFFICIENCY); T_PHASE itself, which
also holds the activations' first loads, is kept. The H200's K tiles of 128, no faster than 32,
argue that part of the chain is not the loads' round trips: bench.phase_times'
step_pdl_prefetch_us against step_pdl_us, and its layer sweep's PREFETCH row, time it.

The bound under the targets (`floor`): a sub-pixel is L + 3 dependent phases - L layers, each
needing all of the previous layer's channels, the head's two hidden layers and its logits -
whatever the kernels. At this model's fitted phase latency no design beats, on the cifar
preset at batch 256 in bf16, 1,706 images/s with a launch between phases (each phase a single
product over K = H in one wave, the row steps free) or 2,300 with a free on-chip barrier:
issue 12's 2,000 needs both, a layer's six products spread so that each program's chain is
one, and cross-SM syncs under ~0.3 us (the persistent kernel's measured 2.24).
Without the one-product assumption (`spread_floor`: however a phase's products are spread over
the SMs, split in K too, its product tiles are shared by one wave of three programs an SM):
at batch 256 a folded layer is 3,456 tiles of K 32 over 396 slots, nine a program, and no
design beats 1,638 images/s with a launch between phases, 1,998 with a programmatic dependent
launch (0.19 us), 2,177 with nothing, the row steps free; 1,692 with nothing between phases
and today's modelled row steps (31 x 1.09 ms). Even free syncs do not reach 2,000: a row step
is 308 GFLOP at batch 256 (0.39 ms at the dense bf16 rate; 1.09 modelled, 1.54 measured), and
with free syncs and row steps at that rate the bound is 1,974 images/s. On this model the
target needs a phase floor under T_PHASE, i.e. a design that does not pay a program's
prologue, first loads and stores at every phase.
Correction with colour groups (2026-11-27): those bounds had every sub-pixel make every column
over K = H. The least work is sub-pixel c's colour group over K = (c + 1) H / C
(triton-grid/groups; `groups_k`), and the bounds now take it (H100, bf16, batch 256):
- one product a phase: 1,816 images/s with a launch between phases, 2,504 with nothing;
- spread: 1,953 with a launch, 2,489 with PDL, 2,772 with nothing;
- nothing between phases and today's row steps: 2,031; with row steps at the dense rate:
  2,455.
So 2,000 images/s is within the model's reach without a new kind of sync. It needs colour
groups, each phase's products spread over one wave, PDL between phases, and row steps near
the dense matmul rate: with PDL, today's row steps give ~1,870 and dense ones ~2,230.
Such a design (`resident`, not built): issue 12's first candidate, a persistent launch whose
programs keep the pixel path's weights on chip for the whole image and meet at an on-chip sync
before each phase, which then costs the sync, one L2 round trip for the activations (T_MEM)
and its arithmetic over every SM or its activations' broadcast, whichever is longer.

Correction, the resident design's broadcast (2026-11-27, without a GPU): the model first
charged its activations one round trip and no bandwidth, and bounded it at ~3,600 images/s
(H100, batch 256), 2,000 while a sync cost <= ~1.0 us. But each SM holds 1/J of every phase's
output columns (cifar bf16: 11 MB over J = 57 column groups, 193 KB of an SM's 228 with 32
left to stage activations) and needs all of the previous phase's activations for its images,
so every phase's input is read J times: 226 MB a sub-pixel at batch 256, 41 us at the assumed
5.5 TB/s against 5.2 us of arithmetic. With free syncs and today's row steps it is bounded
at ~1,400 images/s: 2,000 at no sync cost unless L2 delivers >= 9.6 TB/s to SMs reading the
same lines, or one read serves a cluster of SMs (Hopper's TMA multicast: 2,000 while a sync
costs <= 0.16 us with clusters of 2, 0.73 with 4, 1.02 with 8). Keeping the weights on chip
at batch 256 trades ~53 MB of weight reads a sub-pixel (today's 8 image blocks) for more
activation reads. bench.phase_times --what chip (gpu.sh's first step) times both rates, L2's
broadcast and a barrier alone; the roofline prints the verdict at them. Both the residency
and multicast need explicit shared memory and clusters (Triton's Gluon or CUDA; plain Triton
cannot keep 15 layers' tiles on chip). The same count made triton-grid's tiles re-read their
images' inputs once per block of columns (12 at cifar): its batch-256 predictions of the
H200's runs moved from 0.92 to 0.99 of the measured (left-phase), 0.92 to 0.95 (persistent).

Colour groups (triton-grid/groups: PIXELCNN_GRID_GROUPS=1, not yet timed): the masks let
colour group c's units see groups <= c of the current pixel, so sub-pixel c need only make
group c's columns over K = (c + 1) H / C (kernels/sampler_pixel_grid.columns): a third of
the columns, two thirds of K on average in RGB, 2/9 of the pixel path's weights. Modelled by
`blocks` (a layer's own tiles: group c's columns; layer 0's at c = 0 and the left taps', all)
and the K of phase_products and phase_inputs; one step per channel. H100, bf16: 0.243 s per
batch at batch 1 (0.277 without), 873 images/s at 256 (688); with PDL and the weights
prefetched 0.148 s and 1,262 images/s (0.154, 1,005). Correction on the way: the prefetch
model's arithmetic took the row step's 64 columns for the pixel tile's 16 (a closure read
`bn` after the row step's code reassigned it, as the look-ahead's waves once did): the
pixel tiles' width is `pbn` now, and pdl/prefetch's batch-256 prediction rose from 885 to
1,005 images/s.

The head in out's phase (triton-grid/.../head: PIXELCNN_GRID_HEAD=1, not yet timed): out's
programs make their images' two hidden activations first, so a sampling step is L + 1
phases, not L + 3 (phase kind "head": both hidden products in blocks of columns, then the
logits, in one chain). With prefetch the left taps' tiles of a pixel's first sub-pixel load
their weights before PDL's wait too, and are charged their arithmetic, as the gate tiles.
H100, bf16, batch 256: groups + PDL + prefetch 1,421 images/s (1,262 before the left taps'
prefetch), with the head 1,506 (BEST); the bounds in L + 1 phases: spread with PDL 2,743
with the row steps free, 2,015 with today's row steps. What stands between BEST and 2,000 is
mostly the phase floor: 16 phases a sub-pixel at T_PHASE (1.36 us, fitted on launches
without PDL) are ~67 ms of a batch's 170 modelled. BEST reaches 2,000 while a phase's floor is
<= 0.51 us (`needed_phase_floor`; 0.95 with row steps at the dense rate). With PDL and the
weights prefetched, a program's prologue and weight loads overlap the previous phase, so
what is left of T_PHASE is a question for the GPU: bench.phase_times' step_best_us times
BEST's steps at each c.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

import pixelcnn
from pixelcnn.cli import Parser, at_least
from pixelcnn.kernels.common import pow2
from pixelcnn.kernels.sampler_pixel_grid import GRID_PHASES, head_block
from pixelcnn.kernels.sampler_pixel_grid import tiles as pixel_tiles
from pixelcnn.kernels.sampler_row_gemm import tiles as row_tiles

from .common import ROOT, csv


@dataclass(frozen=True)
class Device:
    name: str
    sms: int
    hbm: float            # bytes/s, measured device-to-device here
    matmul: float         # dense bf16 FLOP/s, measured here (8192^3)
    fp32: float           # FP32 FLOP/s on the CUDA cores (exact float32 tl.dot), datasheet
    l2: float             # bytes
    smem: float           # shared memory per SM, bytes
    sources: str


HOPPER = ("NVIDIA H100 Tensor Core GPU Architecture whitepaper: 132 SMs (SXM5), 228 KB shared "
          "memory per SM; measured on this workplace's machines (../.library/device/KINDS.md)")
DEVICES = {
    "h100": Device("H100 SXM 80GB", 132, 3.0e12, 800e12, 67e12, 50e6, 228e3,
                   "NVIDIA H100 Tensor Core GPU datasheet: 3.35 TB/s HBM3, 989 TFLOP/s dense "
                   f"bf16, 67 TFLOP/s FP32, 50 MB L2; {HOPPER}: ~3.0 TB/s copy, 798 TFLOP/s "
                   "bf16 matmul, 1,980 MHz SM clock"),
    "h200": Device("H200 SXM 141GB", 132, 4.3e12, 790e12, 67e12, 60e6, 228e3,
                   "NVIDIA H200 Tensor Core GPU datasheet: 4.8 TB/s HBM3e, compute as the "
                   f"H100's; {HOPPER}: ~4.3 TB/s copy, 788 TFLOP/s bf16 matmul, 60 MB L2 "
                   "(as PyTorch reports it)"),
}
T_MEM = 0.24e-6       # one K tile of a dependent K loop, ~475 cycles at 1.98 GHz: FITTED on triton
                      # bf16 batch 1 (0.770 s per image, H100). Triton pipelines the loops in 3
                      # stages (cp.async, 2 tiles in flight: sm_90 TTGIR), so a round trip to L2
                      # (with its wait, bar.sync, ldmatrix and mma) is ~2 T_MEM per 2 tiles
T_LAUNCH = 0.7e-6     # a dependent kernel launch in a CUDA graph: MEASURED (bench.phase_times: an
                      # empty kernel, 0.67-0.74 us, H200); fitted at 1.87 us before, on the
                      # two-phase run, when it absorbed the phases' own latency
T_PHASE = 1.36e-6     # triton-grid: a phase's floor beyond its launch (its programs' prologue,
                      # first loads, stores): FITTED with T_PRODUCT on bench.phase_times' bf16
                      # batch-1 phases (H200: hidden, one product, 2.5-2.6 us; a layer, six, 5.0)
T_PRODUCT = {"bf16": 0.082e-6,     # one product over one K tile of 32 of a program's output tile,
             "float32": 0.24e-6}   # in its dependent chain (load, mma or FMA): FITTED as T_PHASE
                                   # (float32 on its batch-16 phases: 3.7 and 10.9 us)
T_SAMPLE = 2.9e-6     # the out phase's softmax, cumulative sum over the levels, inverse CDF and
                      # embedding store: FITTED (out 5.4 us against hidden's 2.5, bf16 batch 1)
T_PDL = 0.19e-6       # triton-grid/pdl: a phase launched as a programmatic dependent: MEASURED
                      # (bench.phase_times, H200 bf16 batch 1: 75.6 against 84.8 us a step of 18
                      # phases); at batch 256 PDL was slower (117.9 against 93.0 us): not modelled
T_SYNC = 2.24e-6      # triton-grid/persistent: a grid barrier (arrive: atomic, poll: atomics):
                      # FITTED on the two-phase persistent run, bf16 batch 1 (0.432 s per image,
                      # H200, with the constants of then); assumed 0.72 us before that
T_ITER = 0.363e-6     # triton-grid's row step: one K-loop iteration (a K tile of the taps, f and g)
                      # where its arithmetic is shorter: FITTED on bench.phase_times' bf16 batch-1
                      # row step (507 us, H200: 1,362 iterations of 12 programs, one wave);
                      # assumed 0.05 us (pipelined) before: the ring buffer's taps are not.
                      # That kernel ran a K loop per tap (15 of 6 K tiles, cifar), whose 3-stage
                      # pipeline fills and drains at every tap; the taps are one loop since
                      # (kernels/common.vertical_taps), not yet timed. If an iteration is a
                      # round trip R per S - 1 tiles in flight after a first R, a tap loop of n
                      # tiles is R (1 + (n - 1) / (S - 1)): T_ITER = 3.5 R / 6, R ~ 0.62 us; one
                      # loop of 90 is 45.5 R against 52.5 R (13% less) at 3 stages, 13.7 R at 8
                      # (bench.phase_times' row sweep times both). Kept at T_ITER until timed
L2_BW = 5.5e12        # L2 -> SMs, bytes/s: assumed (in no datasheet, not measured here;
                      # bench.phase_times now times every SM reading the same activations)
STAGING = 32e3        # resident design: an SM's shared memory kept to stage activations (two
                      # 16 KB buffers: assumed), the rest holds weights
EFFICIENCY = 0.5      # triton-grid: its small matmuls at half the measured dense rate: assumed
NAIVE_LAYER = 0.3e-3  # naive step: eager PyTorch's dispatch and launches per layer (FITTED with
NAIVE_EFF = 0.25      # NAIVE_EFF on naive bf16, H100: 4.7 ms at batch 1, 66 ms at 256) and cuDNN's
                      # share of the matmul rate (TF32's, half of it, for float32: cuDNN's default)
OCCUPANCY = 2         # today's step programs per SM: 65,536 registers / (255 x 128 threads)
BB, BK, BN = 16, 32, 64   # today's launchers: images per pixel program, K tile, N tile (max)
DTYPE_BYTES = {"float32": 4, "bf16": 2}


@dataclass
class Step:
    method: str
    name: str
    count: int            # per batch
    launches: int | None  # kernel launches per step (None: naive's eager ops, not counted)
    programs: int | None
    barriers: int | None  # per step: today in-program, triton-grid grid barriers
    bytes: float          # read per step
    flops: float          # useful, per step
    chain: int            # dependent K-iterations per program (triton-grid pixel: products x K
                          # tiles of 32 in its programs' chains, phase_products, over its waves)
    seconds: float        # per step
    bound: str


def weights(cfg) -> dict:
    """Weight elements each step reads (packed layout, first layer padded to H)."""
    L, H, k, V = cfg.layers, cfg.channels, cfg.kernel_size, cfg.levels
    p = k // 2
    pixel = L * H * 2 * H + (L - 1) * H * H + L * H * H + H * H + H * V   # cur, res, skip, head
    return {"pixel": pixel, "prev": L * p * H * 2 * H,                     # + taps left at c = 0
            "folded": (L - 1) * H * 2 * H,          # triton-grid: residual into the next gate
            "row": L * ((p + 1) * k * H * 2 * H + 4 * H * H)}             # vertical + link


def forward_flops(cfg, size) -> float:
    """One forward pass of one image: vertical, horizontal, link, 1x1 out per layer, head."""
    L, H, k, C, V = cfg.layers, cfg.channels, cfg.kernel_size, cfg.in_channels, cfg.levels
    p = k // 2
    per_pixel = L * ((p + 1) * k * 2 * H * H + (p + 1) * 2 * H * H + 4 * H * H + 2 * H * H) \
        + H * H + H * C * V
    return 2.0 * per_pixel * size[0] * size[1]


def rate(dev: Device, dtype: str) -> float:
    return dev.matmul if dtype == "bf16" else dev.fp32


def bounded(terms: dict):
    """(the largest term, its name)."""
    name = max(terms, key=terms.get)
    return terms[name], name


def today(cfg, dev: Device, dtype: str, batch: int, size) -> list:
    """Today's row and pixel kernels, as their launchers configure them."""
    L, H, k, C, V = cfg.layers, cfg.channels, cfg.kernel_size, cfg.in_channels, cfg.levels
    p, (h, w), eb = k // 2, size, DTYPE_BYTES[dtype]
    bf16 = dtype == "bf16"          # float32: the pixel step's K tiles of 16, the row step's
    n = min(BN if bf16 else BN // 2, pow2(H))   # 32 columns
    nb, kt = math.ceil(H / n), lambda K: math.ceil(K / BK)
    bkp = BK if bf16 else BK // 2                                  # the pixel step's K tile
    pk = lambda K: math.ceil(K / bkp)
    wt = weights(cfg)
    per_sm = rate(dev, dtype) / dev.sms

    def step(name, count, programs, barriers, elements, items):
        """items: [(dependent K-iterations, FLOPs per iteration)] of one program."""
        resident = min(OCCUPANCY, math.ceil(programs / dev.sms))
        waves = math.ceil(programs / (dev.sms * OCCUPANCY))
        chain = waves * sum(m * max(T_MEM, resident * f / per_sm) for m, f in items)
        data = programs * elements * eb
        bw = L2_BW if elements * eb <= dev.l2 else dev.hbm
        useful = 2.0 * elements * batch * (w if name == "row" else 1)
        t, bound = bounded({"launch": T_LAUNCH, "latency chain": chain,
                            "L2 bandwidth" if bw == L2_BW else "HBM bandwidth": data / bw})
        return Step("triton", name, count, 1, programs, barriers, data, useful,
                    sum(m for m, _ in items), t, bound)

    bw_ = pow2(w)                                                    # BW: the row's columns
    row_tile = 2 * (2 * bw_ * BK * n)                                    # two dots per iteration
    gated, single = 2 * (2 * BB * bkp * n), 2 * BB * bkp * n
    head2 = 2 * BB * bkp * pow2(V)
    other = [(L * nb * pk(H), gated), ((L - 1) * nb * pk(H), single),
             (nb * pk(L * H) + nb * pk(H), single), (pk(H), head2)]
    programs = math.ceil(batch / BB)
    return [step("row", h - 1, batch, L + 1, wt["row"],
                 [(L * nb * ((p + 1) * k * kt(H) + kt(2 * H)), row_tile)]),
            step("pixel c=0", h * w, programs, 2 * L + 2, wt["pixel"] + wt["prev"],
                 other + [(L * nb * pk(p * H), gated)]),
            step("pixel c>0", h * w * (C - 1), programs, 2 * L + 2, wt["pixel"], other)]


def phase_kinds(L: int, c, fused: bool = True, left_phase: bool = False,
                head: bool = False) -> list:
    """The phases of a triton-grid pixel step for sub-pixel c (None: completion), by kind:
    today's (kernels/sampler_pixel_grid.py: one phase per layer, the residual folded into the
    next layer's gate; at a pixel's first sub-pixel, c = 0 or completion, layer 0 computes its
    base itself and every layer's phase but the last computes the next one's beside its
    tiles: "+left"), left_phase=True the design the H200 timed before (a phase of its own for
    every layer's left taps at c = 0), or, fused=False, the two-phase design the H200 timed
    first (gate, then residual + skip, per layer; a left phase too). head=True (.../head,
    PIXELCNN_GRID_HEAD=1): the head's hidden activations in out's phase, "head"."""
    layers = ["layer0"] + (["layer"] * (L - 1) if fused else ["res", "gate"] * (L - 1))
    if not c and not left_phase and fused:
        layers = [kind + "+left" for kind in layers[:-1]] + \
            [("layer0+own" if L == 1 else layers[-1])]
    tail = ["head"] if head and c is not None else \
        (["hidden", "hidden"] if c is not None else []) + ["out"]
    return (["left"] if not c and (left_phase or not fused) else []) + layers + tail


def phase_products(kind: str, H: int, p: int, F: int, sample: bool, fused: bool = True,
                   kc: int | None = None, blocks: int = 1) -> float:
    """Products x K tiles of 32 in the chain of one program of a pixel phase (phase_kinds):
    left, the taps f and g over K = p H; layer 0, f and g over its F embedded features (one
    block of >= 16: half a tile); a layer, f and g from the previous layer's gated unit and
    from its input, its residual and (sampling) skip, over K = H (.../split: "gate", its
    gate's four products in one tile, the other two in another; .../ahead: "ahead", two in
    each of four kinds of tile, the last layer's two); two-phase: the gate's f and
    g, then the residual and skip; the head's hidden products and its logits, over K = H.
    "+left": the next layer's left taps in tiles beside (the longer chain counts), layer 0's
    own left taps in its chain first (K = F a tap: a tile of 32 each); "layer0+own": those only
    (one layer: nothing beside). kc: the K of the products on the current pixel's features
    (.../groups: the colour groups <= c, (c + 1) H / C; H by default); the left taps' is p H.
    "head" (.../head): out's program makes its images' two hidden activations first, each in
    `blocks` blocks of columns (kernels/sampler_pixel_grid.head_block), then the logits."""
    k = (kc or H) / 32
    base, _, beside = kind.partition("+")
    chain = {"left": 2 * p * k, "layer0": 2 * max(0.5, F / 32),
             "layer": (5 + sample) * k, "gate": 4 * k if fused else 2 * k, "ahead": 2 * k,
             "res": (1 + sample) * k,
             "hidden": k, "out": k if sample else 0.5, "head": (2 * blocks + 1) * k}[base]
    if base == "layer0" and beside:
        chain += 2 * p * math.ceil(F / 32)                    # its own taps, in its chain
    return max(chain, 2 * p * H / 32) if beside == "left" else chain


def phase_inputs(kind: str, H: int, p: int, F: int, fused: bool = True,
                 kc: int | None = None) -> int:
    """Elements per image that one block of columns of a pixel phase (phase_kinds) reads as
    its products' K inputs, summed over the kind's tiles there: what every block of columns
    re-reads (a tile needs all K of its images' inputs). left, the taps (p H); layer 0, the
    embedded pixel (F); a layer, the previous layer's gated unit a and input r (2H: the gate
    takes both, the residual and skip reuse a); .../split's "gate", 2H for the gate's tiles
    and H (a) for the finishing ones; .../ahead's four kinds of tile H each; two-phase: the
    gate r, the residual and skip a; the head, H (.../head's one phase: 3H, its hidden
    activations' and its logits'); "+left", the next layer's taps beside. kc
    (.../groups): K = (c + 1) H / C of the current pixel's, not H."""
    base, _, beside = kind.partition("+")
    K = kc or H
    inputs = {"left": p * H, "layer0": F, "layer": 2 * K, "gate": 3 * K if fused else K,
              "ahead": 4 * K, "res": K, "hidden": K, "out": K, "head": 3 * K}[base]
    return inputs + (p * H if beside == "left" else 0)


def grid(cfg, dev: Device, dtype: str, batch: int, size, t_sync: float = T_SYNC,
         label: str = "triton-grid", t_phase: float = T_PHASE, sub_batch: bool = False) -> list:
    """method="triton-grid" as its launchers configure it (kernels/sampler_row_gemm.py,
    sampler_pixel_grid.py), or the variant `label` names (GRID_VARIANTS): per row, L + 2
    launches of tiles (BM positions x BN columns), each program a K loop over the taps; per
    sub-pixel, L + 3 phases (.../left-phase: L + 4 with the left taps at c = 0; .../2-phase:
    2L + 2 and 2L + 3) of BB images x BN columns tiles, launched one by one, or (bf16
    .../persistent) met at grid barriers in one persistent launch. The row step moves each
    layer's weights once per block of positions and its taps (the ring buffers) once per
    block of columns, through L2, its K loops a chain of T_ITER (or a K tile's arithmetic)
    per iteration per wave, or its traffic, whichever is longer. A phase costs its
    dependency (a barrier or a launch), its programs' latency per wave (T_PHASE, T_PRODUCT
    per product per K tile of 32: phase_products; T_SAMPLE; a wave: as many programs as fit
    the SMs by their registers, `slots`), its arithmetic at EFFICIENCY of the matmul rate and
    its traffic from L2: every image block reads its columns' weights (not resident), every
    block of columns its images' K inputs (phase_inputs). sub_batch: the batch is one of
    several side by side (`sub_batches`), whose steps take the launchers' sub-batch tiles."""
    L, H, k, C = cfg.layers, cfg.channels, cfg.kernel_size, cfg.in_channels
    p, (h, w), eb = k // 2, size, DTYPE_BYTES[dtype]
    F = C * (cfg.embedding_dim or 1)
    wt = weights(cfg)
    compute = rate(dev, dtype) * EFFICIENCY
    persistent, _, _, fused, pdl, left_phase = grid_variant(label)
    persistent = persistent and dtype == "bf16"
    prefetch = "prefetch" in label.split("/") and not persistent   # PIXELCNN_GRID_PREFETCH=1
    ahead = "ahead" in label.split("/") and not persistent      # PIXELCNN_GRID_AHEAD=1
    split = ("split" in label.split("/") or ahead) and not persistent   # ..._SPLIT=1
    groups = "groups" in label.split("/")                         # PIXELCNN_GRID_GROUPS=1
    head = "head" in label.split("/")                             # PIXELCNN_GRID_HEAD=1
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    bb, pbn = pixel_tiles(batch, H, torch_dtype, persistent and fused,   # as launched
                          sub_batch)                                      # (2-phase: 32)
    nb, ncb = math.ceil(batch / bb), math.ceil(H / pbn)
    per = nb * ncb                              # a layer's tiles (the row step's are its own)
    programs = min(dev.sms, (L if left_phase or not fused else 2) * per)   # the widest
    # resident programs an SM, 65,536 registers / (registers x threads) by bench.compile: bf16
    # (4 warps) 168-183 registers in the designs timed so far -> 2, 124-138 since a program
    # runs one tile (compile-20261126-leftfold) -> 3; float32 (8 warps, 96-250) -> 1; with
    # the weights prefetched, by shared memory -> SLOTS_PREFETCH
    slots = dev.sms * pixel_slots(dtype, label)

    def blocks(kind, c):
        """Blocks of columns of the kind's own tiles: all, or (.../groups) colour group c's
        (kernels/sampler_pixel_grid.columns; layer 0 all at a pixel's first sub-pixel)."""
        base = kind.partition("+")[0]
        whole = not groups or c is None or base == "left" or (base == "layer0" and c == 0)
        return ncb if whole else math.ceil(H // C / pbn)

    def waves(kind, c):
        base, _, beside = kind.partition("+")
        tiles = {"left": L * per, "out": math.ceil(batch / 16),
                 "head": math.ceil(batch / 16)}.get(base, nb * blocks(kind, c)) \
            * {"gate": 2, "ahead": 4}.get(base, 1) + (per if beside == "left" else 0)
        return math.ceil(tiles / (programs if persistent else slots))

    def pixel(name, count, c, elements):
        gate = "ahead" if ahead else "gate"         # split: the gate's tiles, the longer chain
        todo = [kind.replace("layer", gate) if split and kind.partition("+")[0] == "layer"
                else kind for kind in phase_kinds(L, c, fused, left_phase, head)]
        sample = c is not None
        kc = (c + 1) * (H // C) if groups and sample else H     # K on the current pixel's
        hb = math.ceil((H // C if groups else H) / head_block(H // C if groups else H))
        chain = sum(waves(kind, c) * phase_products(kind, H, p, F, sample, fused, kc, hb)
                    for kind in todo)

        def latency(kind):
            """A program's: T_PHASE and its chain of products; prefetched (a layer's gate
            tiles, their weights loaded before the wait), T_PHASE and its arithmetic only,
            as for the next layer's left taps beside them where they run (c = 0: their
            weights, the p taps' K in one tile, loaded before the wait too)."""
            products = phase_products(kind, H, p, F, sample, fused, kc, hb) * T_PRODUCT[dtype]
            base, _, beside = kind.partition("+")
            if prefetch and base == "layer":
                flops = 2.0 * (5 + sample) * bb * kc * pbn          # its six products (five)
                if beside:                                          # f and g over p H
                    flops = max(flops, 2.0 * 2 * bb * p * H * pbn)
                products = flops * dev.sms / (rate(dev, dtype) * EFFICIENCY)
            return t_phase + products
        latency = sum(waves(kind, c) * latency(kind) for kind in todo) + T_SAMPLE * sample
        hops = len(todo) - 1 if persistent else len(todo)
        useful = 2.0 * elements * batch

        def reads(kind):
            """Elements per image its tiles read as K inputs: each block of columns its own."""
            base, _, beside = kind.partition("+")
            own = 1 if base in ("out", "head") else L * ncb if base == "left" else blocks(kind, c)
            return own * phase_inputs(base, H, p, F, fused, kc) + \
                (ncb * p * H if beside == "left" else 0)
        inputs = sum(reads(kind) for kind in todo)
        data = (nb * elements + batch * inputs) * eb + len(todo) * batch * 2 * H * 4
        # weights per image block, the K inputs per column block, the rest (stores, `base`)
        hop = t_sync if persistent else T_PDL if pdl else T_LAUNCH
        terms = {"sync latency" if persistent else "launch latency":
                 hops * hop + (T_LAUNCH if persistent else 0),
                 "phase latency": latency, "compute": useful / compute,
                 "L2 bandwidth": data / L2_BW}
        return Step(label, name, count, 1 if persistent else len(todo), programs,
                    hops if persistent else 0, data, useful, round(chain),
                    sum(terms.values()), bounded(terms)[1])

    positions = batch * w
    bm, bn, warps = row_tiles(positions, torch_dtype, H, sub_batch)
    if not fused and bn == 64:          # the 2-phase design ran 128 x 32 there (H200)
        bn = 32
    nm, nn = math.ceil(positions / bm), math.ceil(H / bn)
    row_useful = 2.0 * wt["row"] * positions
    taps = (p + 1) * k * H + 2 * H                                   # K: vertical + link
    row_data = (nm * wt["row"] + nn * positions * L * taps
                + 2 * L * positions * 2 * H) * eb      # weights per position block, the
                                                       # taps per column block, the outputs
    per_sm = compute / dev.sms / (1 if warps == 8 else OCCUPANCY)   # a program's share
    per_iter = max(T_ITER, 2 * 2 * bm * BK * bn / per_sm)          # f and g, one K tile
    row_waves = lambda tiles: math.ceil(tiles / row_slots(dev, warps))
    layer_iters = (p + 1) * k * math.ceil(H / BK)                  # the taps' K loop
    iters = L * row_waves(nm * nn) * layer_iters + row_waves(L * nm * nn) * math.ceil(2 * H / BK)
    row_terms = {"launch latency": (L + 2) * T_LAUNCH, "K-loop latency": iters * per_iter,
                 ("L2 bandwidth" if wt["row"] * eb <= dev.l2 else "HBM bandwidth"):
                 row_data / (L2_BW if wt["row"] * eb <= dev.l2 else dev.hbm)}
    row_bound = bounded({k: v for k, v in row_terms.items() if k != "launch latency"})
    row = Step(label, "row", h - 1, L + 2, nm * nn, 0, row_data, row_useful, iters,
               row_terms["launch latency"] + row_bound[0], row_bound[1])
    folded = wt["folded"] if fused else 0
    if groups:      # sub-pixel c: group c's columns over K = (c + 1) H / C, the logits' K too
        logits = H * cfg.levels                 # its share of the pixel path's weights
        body = wt["pixel"] - logits + folded
        return [row] + [pixel(f"pixel c={c}", h * w, c,
                              body * (c + 1) / C ** 2 + logits * (c + 1) / C
                              + (wt["prev"] if c == 0 else 0)) for c in range(C)]
    return [row, pixel("pixel c=0", h * w, 0, wt["pixel"] + folded + wt["prev"]),
            pixel("pixel c>0", h * w * (C - 1), 1, wt["pixel"] + folded)]


def row_slots(dev: Device, warps: int) -> int:
    """Row-step programs resident at once: one an SM at 8 warps, OCCUPANCY at 4."""
    return dev.sms * (1 if warps == 8 else OCCUPANCY)


def naive(cfg, dev: Device, dtype: str, batch: int, size) -> list:
    flops = forward_flops(cfg, size) * batch
    cudnn = NAIVE_EFF * (dev.matmul if dtype == "bf16" else dev.matmul / 2)     # TF32
    terms = {"eager floor": NAIVE_LAYER * cfg.layers, "compute": flops / cudnn}
    count = cfg.in_channels * size[0] * size[1]
    data = sum(weights(cfg).values()) * DTYPE_BYTES[dtype]
    return [Step("naive", "forward", count, None, None, None, data, flops, 0,
                 sum(terms.values()), bounded(terms)[1])]


def predict(cfg, device: str, dtype: str, batch: int, size=(32, 32), t_sync: float = T_SYNC,
            t_phase: float = T_PHASE):
    """{method: (steps, seconds per batch)}; t_sync, t_phase: T_SYNC's and T_PHASE's stand-ins
    (a batch's time is linear in each)."""
    dev = DEVICES[device]
    out = {}
    methods = [("naive", naive(cfg, dev, dtype, batch, size)),
               ("triton", today(cfg, dev, dtype, batch, size))]
    labels = GRID_VARIANTS + MEASURED_DESIGNS if dtype == "bf16" else \
        ["triton-grid", "triton-grid/left-phase"]
    for label in labels:
        methods.append((label, grid(cfg, dev, dtype, batch, size, t_sync, label, t_phase)))
    for method, steps in methods:
        out[method] = (steps, sum(s.count * s.seconds for s in steps))
    for k in SUB_BATCHES if dtype == "bf16" else ():      # sub-batches side by side: no
        if batch >= k:                                       # steps of their own
            out[f"{BEST}/sub{k}"] = ([], batch / sub_batches(cfg, device, size, k, batch))
    return out


# ---------------------------------------------------------------------------- measurements

LOG_LINES = {"machine": re.compile(r"^machine: cuda \((.*?)\) \|.*\| (\w+)$"),
             "model": re.compile(r"^model: .*?(\d+) layers, (\d+) channels, k(\d+)\)"),
             "size": re.compile(r"throughput at (\d+)x(\d+)x"),
             "time": re.compile(r"^\s+([\w-]+)\s+batch\s+(\d+): ([\d.]+) s per batch")}


GRID_VARIANTS = ["triton-grid", "triton-grid/split", "triton-grid/ahead", "triton-grid/pdl",
                 "triton-grid/pdl/prefetch", "triton-grid/groups",
                 "triton-grid/pdl/prefetch/groups", "triton-grid/head",
                 "triton-grid/pdl/prefetch/groups/head", "triton-grid/persistent",
                 "triton-grid/bk128", "triton-grid/s7"]
MEASURED_DESIGNS = [  # the designs GPU runs timed, modelled as they ran (bench/results/)
    "triton-grid/left-phase", "triton-grid/persistent/left-phase",       # h200-20261126-fold
    "triton-grid/bk128/left-phase", "triton-grid/persistent/bk128/left-phase",
    "triton-grid/s7/left-phase", "triton-grid/persistent/s7/left-phase",
    "triton-grid/pdl/left-phase", "triton-grid/pdl/s7/left-phase",
    "triton-grid/2-phase", "triton-grid/persistent/2-phase"]              # h200-20261126
TWO_PHASE = "2L+2"      # the pixel step's phases (c > 0) in results made before the fold
LEFT_PHASE = "L+3"      # ... made after the fold, before the left taps moved into the layers'


def grid_variant(label: str) -> tuple:
    """(persistent, K tile, pipeline stages, residual folded, dependent launch, left phase)
    of a triton-grid variant's label (.../persistent: one launch per step, else one per
    phase; .../pdl: those launches programmatic dependents; .../bkN, .../sN: None where the
    label leaves the launcher's; .../2-phase: the design before the fold, two phases per
    layer; .../left-phase: the folded design with the left taps' own phase at c = 0)."""
    parts = label.split("/")[1:]
    bk = [int(p[2:]) for p in parts if re.fullmatch(r"bk\d+", p)]
    stages = [int(p[1:]) for p in parts if re.fullmatch(r"s\d+", p)]
    return ("persistent" in parts, (bk[0] if bk else None), (stages[0] if stages else None),
            "2-phase" not in parts, "pdl" in parts,
            "left-phase" in parts or "2-phase" in parts)


def variant(method: str, dtype: str, env: dict, design: str = GRID_PHASES) -> str:
    """The modelled variant a measurement belongs to, from the environment it ran in:
    triton-grid in bf16 with PIXELCNN_GRID_PERSISTENT=1 is triton-grid/persistent (float32
    always launches phase by phase; before the fold persistent was bf16's default, =0 turned
    it off); its PIXELCNN_GRID_POLL=load, .../poll-load; else PIXELCNN_GRID_AHEAD=1,
    .../ahead (or PIXELCNN_GRID_SPLIT=1, .../split), and PIXELCNN_GRID_PDL=1, .../pdl,
    PIXELCNN_GRID_PREFETCH=1, .../prefetch; PIXELCNN_GRID_GROUPS=1, .../groups;
    PIXELCNN_GRID_HEAD=1, .../head; PIXELCNN_GRID_SUB_BATCHES=k > 1, .../subk;
    PIXELCNN_GRID_BK=N, .../bkN;
    PIXELCNN_GRID_STAGES=S, .../sS; measured on the design before the fold (design
    TWO_PHASE: results that do not say), .../2-phase; on the fold with a left phase (design
    LEFT_PHASE), .../left-phase."""
    if method != "triton-grid":
        return method
    asked = env.get("PIXELCNN_GRID_PERSISTENT")
    if dtype == "bf16" and (asked != "0" if design == TWO_PHASE else asked == "1"):
        method += "/persistent"
        if env.get("PIXELCNN_GRID_POLL", "atomic") != "atomic":
            method += f"/poll-{env['PIXELCNN_GRID_POLL']}"     # not modelled: measured only
    else:
        method += "/ahead" if env.get("PIXELCNN_GRID_AHEAD") == "1" else \
            "/split" if env.get("PIXELCNN_GRID_SPLIT") == "1" else ""
        method += "/pdl" if env.get("PIXELCNN_GRID_PDL") == "1" else ""
        method += "/prefetch" if env.get("PIXELCNN_GRID_PREFETCH") == "1" else ""
    method += "/groups" if env.get("PIXELCNN_GRID_GROUPS") == "1" else ""
    method += "/head" if env.get("PIXELCNN_GRID_HEAD") == "1" else ""
    k = env.get("PIXELCNN_GRID_SUB_BATCHES", "1")
    method += f"/sub{k}" if k != "1" else ""
    method += f"/bk{env['PIXELCNN_GRID_BK']}" if env.get("PIXELCNN_GRID_BK") else ""
    method += f"/s{env['PIXELCNN_GRID_STAGES']}" if env.get("PIXELCNN_GRID_STAGES") else ""
    return method + {TWO_PHASE: "/2-phase", LEFT_PHASE: "/left-phase"}.get(design, "")


ENV_WORD = re.compile(r"\b(PIXELCNN_GRID_\w+)=(\w+)")
DESIGN_WORD = re.compile(r"\| triton-grid phases (\S+) \|")     # bench.common.machine_line


def measured(results: Path, device: str, cfg, size) -> dict:
    """{(method, dtype, batch): best seconds per batch} on the device, for this model size,
    from bench.sample's JSON files and the device calls' logs (runs cut short by a timeout
    leave their timings only there)."""
    want = (cfg.layers, cfg.channels, cfg.kernel_size)
    found = {}

    def add(device_name, dtype, model, got_size, method, batch, seconds):
        if device.lower() in device_name.lower() and model == want and got_size == tuple(size):
            key = (method, dtype, batch)
            found[key] = min(found.get(key, math.inf), seconds)

    for path in sorted(results.rglob("*.json")):
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or "records" not in data or "model" not in data:
            continue
        c = data["model"]["config"]
        env = data["machine"].get("env", {})
        design = data["machine"].get("grid_phases", TWO_PHASE)
        for r in data["records"]:
            add(data["machine"]["device_name"], r["dtype"],
                (c["layers"], c["channels"], c["kernel_size"]),
                tuple(data["settings"]["size"]),
                variant(r["method"], r["dtype"], env, design),
                r["batch_size"], r["seconds_per_batch"])
    for path in sorted(results.rglob("*log.txt")):
        state, env, design = {}, {}, TWO_PHASE
        for line in path.read_text().splitlines():
            if line.startswith("==="):                  # gpu.sh: a step's command line
                env = dict(ENV_WORD.findall(line))
            for kind, pattern in LOG_LINES.items():
                m = pattern.search(line)
                if m and kind == "time" and len(state) == 3:
                    add(*state["machine"], tuple(map(int, state["model"])),
                        tuple(map(int, state["size"])),
                        variant(m[1], state["machine"][1], env, design), int(m[2]), float(m[3]))
                elif m and kind != "time":
                    state[kind] = m.groups()
                    if kind == "machine":                # bench.sample's machine line
                        env.update(ENV_WORD.findall(line))
                        d = DESIGN_WORD.search(line)
                        design = d[1] if d else TWO_PHASE
    return found


def chip_results(results: Path, device: str):
    """The JSON of every bench.phase_times run under `results` on the device (by name)."""
    for path in sorted(results.rglob("*-phase-times.json")):
        data = json.loads(path.read_text())
        if device.lower() in data.get("machine", {}).get("device_name", "").lower():
            yield data


def phase_records(results: Path, device: str, preset: str):
    """Every batch size's record of the bench.phase_times runs on the device for the preset's
    model, oldest run first (so the newest wins where a caller keys them)."""
    for data in chip_results(results, device):
        if data.get("preset") == preset:
            yield from data.get("batches", [])


def measured_barrier(results: Path, device: str) -> float | None:
    """Seconds of the cheapest grid barrier alone (any poll) that bench.phase_times timed on
    the device among more than 2 programs (one an SM), or None."""
    best = None
    for data in chip_results(results, device):
        for key, got in data.get("barrier_us", {}).items():
            programs = int(key.rsplit(", ", 1)[1].split()[0])       # "atomic, 132 programs"
            if "us" in got and programs > 2:                         # (else {"error": ...})
                best = min(best if best is not None else math.inf, got["us"] * 1e-6)
    return best


def measured_broadcast(results: Path, device: str) -> float | None:
    """Bytes/s of the fastest broadcast through L2 (every SM reading the same activations)
    that bench.phase_times timed on the device, or None (its distinct reads do not count)."""
    rates = [got["tbs"] * 1e12 for data in chip_results(results, device)
             for got in data.get("broadcast", {}).values()
             if "tbs" in got and not got.get("distinct")]
    return max(rates, default=None)


def measured_phase_floor(results: Path, device: str, preset: str, cfg, size) -> dict:
    """{batch: the phase floor (T_PHASE's stand-in, seconds) that BEST's steps as
    bench.phase_times timed them (step_best_us, c = 0 .. C - 1, the preset's model) imply},
    from the newest run on the device: the model's pixel steps are linear in it, so the floor
    is where their sum meets the measured sum."""
    dev, found = DEVICES[device], {}
    for record in phase_records(results, device, preset):
        got = record.get("step_best_us")
        if not got:
            continue
        steps = lambda t: sum(s.seconds for s in grid(cfg, dev, "bf16", record["batch"],
                                                      size, label=BEST, t_phase=t)[1:])
        found[record["batch"]] = phase_floor_at(steps, sum(got.values()) * 1e-6)
    return found


def measured_lanes(results: Path, device: str, preset: str, size) -> dict:
    """{(k, images a sub-batch): seconds of a sub-batch's chain} from bench.phase_times'
    timing of one sub-batch alone on its tiles ("lane": BEST's step at each c and the row
    step), newest run on the device: H - 1 row steps and H W steps at each c."""
    found = {}
    for record in phase_records(results, device, preset):
        lane = record.get("lane")
        if lane:
            k = record["batch"] // lane["batch"]
            found[k, lane["batch"]] = ((size[0] - 1) * lane["row_us"] + size[0] * size[1]
                                       * sum(lane["step_best_us"].values())) * 1e-6
    return found


def measured_lane_line(cfg, device: str, size, k: int, images: int, chain_s: float) -> str:
    """A sub-batch's chain as timed against the model's, and the bound it sets on k of them."""
    model = sum(s.count * s.seconds for s in grid(cfg, DEVICES[device], "bf16", images, size,
                                                  label=BEST, sub_batch=True))
    return (f"measured, one of {k} sub-batches ({images} images, its tiles; bench.phase_times "
            f"lane): a chain of {chain_s * 1e3:.1f} ms (modelled {model * 1e3:.1f}); at most "
            f"{k * images / chain_s:,.0f} images/s in {k} sub-batches "
            f"(modelled {sub_batches(cfg, device, size, k, k * images):,.0f}; target 2,000)")


def measured_floor_line(cfg, device: str, size, batch: int, floor_s: float) -> str:
    """What BEST predicts at the phase floor its timed steps imply (measured_phase_floor)."""
    rate = lambda k: sub_batches(cfg, device, size, k, t_phase=max(floor_s, 0.0))
    return (f"measured, {BEST}'s steps at batch {batch} (bench.phase_times step_best_us): a "
            f"phase floor of {floor_s * 1e6:.2f} us (T_PHASE {T_PHASE * 1e6:.2f} fitted); at "
            f"it, batch 256: {rate(1):,.0f} images/s, {rate(2):,.0f} in two sub-batches, "
            f"{rate(8):,.0f} in eight (target 2,000)")


# ---------------------------------------------------------------------------- report

def fmt(x: float) -> str:
    return f"{x:.3g}" if x < 1e4 else f"{x:,.0f}"


def step_table(steps) -> list:
    head = ("method", "step", "per batch", "launches", "programs", "barriers", "MB read",
            "GFLOP", "chain", "us/step", "bound")
    dash = lambda v: "-" if v is None else v
    rows = [head] + [(s.method, s.name, s.count, dash(s.launches), dash(s.programs),
                      dash(s.barriers),
                      fmt(s.bytes / 1e6), fmt(s.flops / 1e9), s.chain, fmt(s.seconds * 1e6),
                      s.bound) for s in steps]
    return align(rows)


def align(rows) -> list:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(str(v).rjust(wd) if isinstance(v, (int, float)) or v[:1].isdigit()
                      else str(v).ljust(wd) for v, wd in zip(r, widths)).rstrip() for r in rows]


def main(argv=None) -> dict:
    parser = Parser(prog="python -m bench.roofline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cifar", choices=sorted(pixelcnn.PRESETS))
    parser.add_argument("--device", default="h100", choices=sorted(DEVICES))
    parser.add_argument("--dtypes", type=csv(str), default=["bf16", "float32"])
    parser.add_argument("--batches", type=csv(int), default=[1, 16, 64, 256])
    parser.add_argument("--size", type=at_least(1), nargs=2, default=[32, 32], metavar=("H", "W"))
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"),
                        help="measured results to compare with (default: bench/results)")
    args = parser.parse_args(argv)
    unknown = [d for d in args.dtypes if d not in DTYPE_BYTES]
    if unknown or not args.dtypes:
        parser.error(f"--dtypes: unknown {unknown}; choose from {list(DTYPE_BYTES)}")
    if not args.batches or min(args.batches) < 1:
        parser.error(f"--batches must be positive integers, got {args.batches}")
    cfg, dev, size = pixelcnn.preset(args.preset), DEVICES[args.device], tuple(args.size)
    meas = measured(Path(args.results), args.device, cfg, size)
    print(f"{args.preset} preset: {cfg.layers} layers x {cfg.channels} channels, "
          f"k{cfg.kernel_size}, {cfg.in_channels} x {cfg.levels} levels, {size[0]}x{size[1]}; "
          f"{dev.name}\nconstants: {dev.sources}; T_MEM {T_MEM * 1e6:.2f} us (fitted, triton), "
          f"T_LAUNCH {T_LAUNCH * 1e6:.2f} us, T_PDL {T_PDL * 1e6:.2f} us (measured), T_PHASE "
          f"{T_PHASE * 1e6:.2f} us, T_PRODUCT {T_PRODUCT['bf16'] * 1e6:.3f} us (bf16) / "
          f"{T_PRODUCT['float32'] * 1e6:.2f} us (float32), T_SAMPLE {T_SAMPLE * 1e6:.1f} us, "
          f"T_SYNC {T_SYNC * 1e6:.2f} us (fitted, triton-grid), L2 "
          f"{L2_BW / 1e12:.1f} TB/s (assumed)")
    summary = [("dtype", "batch", "method", "predicted s", "measured s", "pred/meas",
                "ms/image", "images/s", "x naive")]
    result = {}
    for dtype in args.dtypes:
        for batch in args.batches:
            pred = predict(cfg, args.device, dtype, batch, size)
            result[(dtype, batch)] = pred
            print(f"\n{dtype}, batch {batch}:")
            print("\n".join(step_table([s for steps, _ in pred.values() for s in steps])))
            naive_s = meas.get(("naive", dtype, batch), pred["naive"][1])
            for method, (_, seconds) in pred.items():
                got = meas.get((method, dtype, batch))
                summary.append((dtype, batch, method, fmt(seconds),
                                fmt(got) if got else "-", f"{seconds / got:.2f}" if got else "-",
                                fmt(seconds / batch * 1e3), fmt(batch / seconds),
                                f"{naive_s / seconds:,.0f}x"))
    print("\npredicted vs measured, seconds per batch (x naive: against measured naive where "
          "there is one):")
    print("\n".join(align(summary)))
    if "bf16" in args.dtypes:
        results = Path(args.results)
        print("\n" + "\n".join(targets(cfg, args.device, size, meas,
                                         measured_barrier(results, args.device),
                                         measured_broadcast(results, args.device))))
        for batch, floor_s in measured_phase_floor(results, args.device, args.preset, cfg,
                                                   size).items():
            print(measured_floor_line(cfg, args.device, size, batch, floor_s))
        for (k, images), chain_s in measured_lanes(results, args.device, args.preset,
                                                   size).items():
            print(measured_lane_line(cfg, args.device, size, k, images, chain_s))
    return result


def targets(cfg, device, size, meas, barrier: float | None = None,
            broadcast: float | None = None) -> list:
    """triton-grid (today's design, as the GPU timed it before, and its opt-in variants)
    against issue 12's targets (bf16); for the persistent one the barrier cost it tolerates
    (a batch's time is linear in T_SYNC); then the bound on any design of L + 3 dependent
    phases a sub-pixel (`floor`: each phase one product over K = H; `spread_floor`: however
    a phase's products are spread over the SMs); last the resident design's (resident_lines)
    and, given the barrier alone and L2's broadcast rate measured on the device (`barrier`,
    seconds: measured_barrier; `broadcast`, bytes/s: measured_broadcast), what it predicts
    there."""
    lines = []
    for label in ("triton-grid/left-phase", "triton-grid", "triton-grid/split",
                  "triton-grid/ahead", "triton-grid/pdl", "triton-grid/pdl/prefetch",
                  "triton-grid/groups", "triton-grid/pdl/prefetch/groups",
                  "triton-grid/head", "triton-grid/pdl/prefetch/groups/head",
                  "triton-grid/persistent"):
        for batch, need, what in ((1, 50, "x naive"), (256, 500, "x naive"),
                                  (256, 2000, "images/s")):
            naive_s = meas.get(("naive", "bf16", batch),
                               predict(cfg, device, "bf16", batch, size)["naive"][1])
            limit = naive_s / need if what == "x naive" else batch / need   # s per batch
            at = lambda ts: predict(cfg, device, "bf16", batch, size, ts)[label][1]
            t0, t1 = at(0.0), at(T_SYNC)
            got = naive_s / t1 if what == "x naive" else batch / t1
            tolerated = (limit - t0) / (t1 - t0) * T_SYNC if t1 > t0 else None
            lines.append(f"target bf16 batch {batch}: >= {need:,} {what}: {label} predicts "
                         f"{got:,.0f} ({'met' if t1 <= limit else 'MISSED'})" + (
                             f"; holds while a cross-SM sync costs <= {tolerated * 1e6:.2f} us "
                             f"(fitted {T_SYNC * 1e6:.2f})" if t1 > t0 else ""))
    both = "L + 3 phases a sub-pixel / L + 1 (the head in one phase)"
    for hop, how in ((T_LAUNCH, "a launch"), (0.0, "nothing")):
        lines.append(f"bound, bf16 batch 256: {floor(cfg, 256, size, hop):,.0f} / "
                     f"{floor(cfg, 256, size, hop, head=True):,.0f} images/s for any design "
                     f"of {both}, each product over the least K ((c + 1) H / C at sub-pixel "
                     f"c) in one wave, {how} between phases, the row steps free")
    dev = DEVICES[device]
    spread = {(hop, head): spread_floor(cfg, dev, 256, size, hop, head)
              for hop in (T_LAUNCH, T_PDL, 0.0) for head in (False, True)}
    for hop, how in ((T_LAUNCH, "a launch"), (T_PDL, "a programmatic dependent launch"),
                     (0.0, "nothing")):
        lines.append(f"bound, bf16 batch 256: {spread[hop, False]:,.0f} / "
                     f"{spread[hop, True]:,.0f} images/s for {both}, however each phase's "
                     f"products are spread over the SMs (in K or in columns; one wave, "
                     f"{SLOTS_BF16} programs an SM; the least work: colour groups), {how} "
                     f"between phases, the row steps free")
    row = grid(cfg, dev, "bf16", 256, size)[0]                  # today's row step, modelled
    peak = row.flops / dev.matmul                  # a row step at the dense bf16 matmul rate
    for hop, how in ((T_PDL, "a programmatic dependent launch"), (0.0, "nothing")):
        for row_s, rows in ((row.seconds, f"today's row steps ({row.count} x "
                                          f"{row.seconds * 1e3:.2f} ms, modelled)"),
                            (peak, f"row steps at the measured dense bf16 rate ({row.count} x "
                                   f"{peak * 1e3:.2f} ms)")):
            best = [256 / (256 / spread[hop, head] + row.count * row_s) for head in (False, True)]
            lines.append(f"bound, bf16 batch 256: {best[0]:,.0f} / {best[1]:,.0f} images/s "
                         f"for {both}, spread, {how} between phases and {rows}")
    lines.append(f"more than these needs a phase floor under T_PHASE ({T_PHASE * 1e6:.2f} us, "
                 f"fitted) or fewer phases")
    lines.append(phase_floor_line(cfg, device, size, row.count * (row.seconds - peak)))
    rates = {k: sub_batches(cfg, device, size, k) for k in (1, *SUB_BATCHES, 16)}
    met = [k for k, r in rates.items() if r >= 2000]
    for k in SUB_BATCHES:
        lines.append(f"target bf16 batch 256: >= 2,000 images/s: {BEST}/sub{k} predicts "
                     f"{rates[k]:,.0f} ({'met' if rates[k] >= 2000 else 'MISSED'})")
    lines.append(f"target bf16 batch 256: >= 2,000 images/s: {BEST} as k sub-batches side by "
                 f"side (PIXELCNN_GRID_SUB_BATCHES=k; sub_batches): " + ", ".join(
                     f"k = {k} {r:,.0f}" for k, r in rates.items())
                 + " images/s (one sub-batch's row steps beside another's latency-bound pixel "
                 "steps, on the sub-batch tiles; their SM time summed; their launches one at a "
                 "time) " + (f"(met at k = {', '.join(map(str, met))})" if met else "(MISSED)"))
    lines += resident_lines(cfg, dev, size, row.seconds, barrier, broadcast)
    return lines


BEST = "triton-grid/pdl/prefetch/groups/head"      # the best built design the model has


SUB_BATCHES = (2, 4, 8)     # the sub-batch counts `predict` models (.../subk)


def sub_batches(cfg, device: str, size, k: int, batch: int = 256,
                t_phase: float = T_PHASE) -> float:
    """Images/s of BEST (bf16) when a batch runs as k independent sub-batches of batch / k
    side by side (PIXELCNN_GRID_SUB_BATCHES=k: pixelcnn/sampling/triton.schedule, a CUDA
    stream each, lagging W / k pixels behind each other). Each sub-batch's chain is a batch of
    batch / k's, on the launchers' sub-batch tiles (kernels/sampler_pixel_grid.tiles,
    sampler_row_gemm.tiles: fewer, larger ones, at the same latency here), and the sub-batches
    share the SMs: a batch takes at least the sum of their SM time, each step's seconds times
    the share of the SMs' program slots its programs fill (at most all; the row step's 8-warp
    tiles one an SM, the pixel phases' pixel_slots: SLOTS_PREFETCH). The latency-bound pixel
    phases fill half the slots at most, so one sub-batch's row steps can run beside another's
    pixel steps. And the GPU's front end starts one kernel at a time: a batch takes at least its
    launches times T_PDL (assumed: the hop a dependent launch was measured to cost), which
    bounds k above 8. Images are independent: the same images."""
    dev = DEVICES[device]
    steps = grid(cfg, dev, "bf16", batch // k, size, label=BEST, t_phase=t_phase,
                 sub_batch=k > 1)
    chain = sum(s.count * s.seconds for s in steps)
    rows = row_slots(dev, row_tiles(batch // k * size[1], torch.bfloat16, cfg.channels,
                                    k > 1)[2])
    busy = sum(s.count * s.seconds * min(1.0, s.programs / (
        rows if s.name == "row" else dev.sms * pixel_slots("bf16", BEST))) for s in steps)
    launches = sum(s.count * s.launches for s in steps) * T_PDL
    return batch / max(chain, k * busy, k * launches)


def phase_floor_at(seconds, target: float) -> float:
    """The phase floor t at which seconds(t), linear in t, is `target`."""
    t0, t1 = seconds(0.0), seconds(T_PHASE)
    return (target - t0) / (t1 - t0) * T_PHASE


def needed_phase_floor(cfg, device: str, size, saving: float = 0.0) -> float:
    """The phase floor (T_PHASE's stand-in) under which BEST reaches 2,000 images/s at batch
    256 (bf16), with the row steps `saving` seconds a batch faster than modelled (a batch's
    time is linear in it)."""
    return phase_floor_at(lambda t: predict(cfg, device, "bf16", 256, size, t_phase=t)[BEST][1],
                          256 / 2000 + saving)


def phase_floor_line(cfg, device: str, size, dense_saving: float) -> str:
    """needed_phase_floor with today's row steps and with row steps `dense_saving` seconds a
    batch faster (at the dense matmul rate). T_PHASE was fitted without PDL (the programs'
    prologue, first loads and stores); with PDL and the weights prefetched the prologue and
    the weights' loads overlap the previous phase: bench.phase_times' step_best_us times BEST's
    steps, what is left."""
    need = [needed_phase_floor(cfg, device, size, saved) for saved in (0.0, dense_saving)]
    say = lambda t: f"<= {t * 1e6:.2f} us" if t > 0 else "at no phase floor"
    sub = {k: sub_batch_floor(cfg, device, size, k) for k in (2, 8)}
    return (f"target bf16 batch 256: >= 2,000 images/s: {BEST} reaches it while a phase's "
            f"floor is {say(need[0])} with today's row steps (modelled), {say(need[1])} with "
            f"row steps at the dense bf16 rate, {say(sub[2])} in two sub-batches side by side, "
            f"{say(sub[8])} in eight "
            f"(T_PHASE {T_PHASE * 1e6:.2f} us, fitted without PDL's overlap; "
            f"bench.phase_times' step_best_us times this design's steps)")


def sub_batch_floor(cfg, device: str, size, k: int) -> float:
    """The phase floor under which BEST in k sub-batches reaches 2,000 images/s at batch 256:
    bisected (`sub_batches` is a max of lines in it)."""
    lo, hi = 0.0, 4 * T_PHASE
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sub_batches(cfg, device, size, k, t_phase=mid) >= 2000 else \
            (lo, mid)
    return lo


def resident_bytes(cfg, dtype: str) -> float:
    """The pixel path's weights (a pixel's first sub-pixel's: its left taps too, triton-grid's
    folded residuals), which a resident design keeps on chip for a whole image."""
    wt = weights(cfg)
    return (wt["pixel"] + wt["folded"] + wt["prev"]) * DTYPE_BYTES[dtype]


def resident_syncs(cfg, size) -> int:
    """On-chip syncs a batch of the resident design: one before each of a sub-pixel's L + 3
    phases."""
    return cfg.in_channels * size[0] * size[1] * (cfg.layers + 3)


def resident_groups(cfg, dev: Device, dtype: str) -> int:
    """Column groups of the resident design: the fewest groups of SMs such that each SM holds
    1/groups of every phase's output columns' weights in its shared memory beside STAGING.
    Its programs, one an SM, are `groups` column groups x sms // groups blocks of images;
    fewer groups would need more than an SM holds, more would broadcast more (below)."""
    return min(dev.sms, math.ceil(resident_bytes(cfg, dtype) / (dev.smem - STAGING)))


def resident_broadcast(cfg, batch: int, groups: int, dtype: str) -> float:
    """Bytes a sub-pixel of the resident design reads through L2 (on average over a pixel's
    C sub-pixels): every column group needs each phase's K inputs (phase_inputs: the previous
    layer's gated unit and input, the left taps at c = 0, the head's) for every image, so
    each phase's activations are broadcast to all the groups. Weights move not at all."""
    L, H, C = cfg.layers, cfg.channels, cfg.in_channels
    p, F = cfg.kernel_size // 2, C * (cfg.embedding_dim or 1)
    kinds = phase_kinds(L, 0) + (C - 1) * phase_kinds(L, 1)       # a pixel's phases
    inputs = sum(phase_inputs(kind, H, p, F) for kind in kinds) / C
    return groups * batch * inputs * DTYPE_BYTES[dtype]


def resident(cfg, dev: Device, batch: int, size, sync: float, row_s: float,
             l2_bw: float = L2_BW, multicast: int = 1) -> float:
    """Seconds per batch (bf16) of a design the code does not have, issue 12's first candidate:
    one persistent launch whose programs, one an SM, keep their share of the pixel path's
    weights on chip (resident_groups) and meet at an on-chip sync before each of a
    sub-pixel's L + 3 phases. A phase costs the sync and one L2 round trip for the previous
    phase's activations (T_MEM); a sub-pixel, beside those, its products' arithmetic over
    every SM at EFFICIENCY or its activations' broadcast to the column groups through L2
    (resident_broadcast at l2_bw, divided by `multicast`: clusters of that many SMs served
    by one read, Hopper's TMA multicast), whichever is longer (overlapped: optimistic), and
    T_SAMPLE; `row_s` a row step. No weight traffic, no program prologue: T_PHASE's share of
    both is taken to vanish. Not built: a Triton program cannot index register-held tiles by
    a runtime layer, so keeping 15 layers' shares on chip needs explicit shared memory
    (Triton's Gluon dialect, or CUDA), and so does multicast."""
    wt = weights(cfg)
    C, (h, w) = cfg.in_channels, size
    elements = wt["pixel"] + wt["folded"] + wt["prev"] / C        # per sub-pixel, on average
    arithmetic = 2.0 * batch * elements / (dev.matmul * EFFICIENCY)
    groups = resident_groups(cfg, dev, "bf16")
    broadcast = resident_broadcast(cfg, batch, groups, "bf16") / multicast / l2_bw
    sub_pixel = (cfg.layers + 3) * (sync + T_MEM) + max(arithmetic, broadcast) + T_SAMPLE
    return C * h * w * sub_pixel + (h - 1) * row_s


def resident_sync(cfg, dev: Device, size, row_s: float, l2_bw: float = L2_BW,
                  multicast: int = 1) -> float:
    """The most a sync may cost for the resident design to reach 2,000 images/s at batch 256
    (negative: not at any cost; a batch's time is linear in the sync's)."""
    t0 = resident(cfg, dev, 256, size, 0.0, row_s, l2_bw, multicast)
    return (256 / 2000 - t0) / resident_syncs(cfg, size)


def resident_lines(cfg, dev: Device, size, row_s: float, barrier: float | None = None,
                   broadcast: float | None = None) -> list:
    """targets' lines on the resident design: its bound with free syncs and the sync 2,000
    images/s tolerates, with activations read once per column group and multicast; given
    the barrier alone and L2's broadcast rate measured on the device, what it predicts."""
    groups = resident_groups(cfg, dev, "bf16")
    moved = resident_broadcast(cfg, 256, groups, "bf16")

    def verdict(sync):
        return (f"2,000 while a sync costs <= {sync * 1e6:.2f} us" if sync > 0
                else "not 2,000 at any sync cost")
    t0 = resident(cfg, dev, 256, size, 0.0, row_s)
    C, (h, w) = cfg.in_channels, size
    allowed = (256 / 2000 - (h - 1) * row_s) / (C * h * w) - (cfg.layers + 3) * T_MEM - T_SAMPLE
    lines = [f"bound, bf16 batch 256: {256 / t0:,.0f} images/s for a persistent design with "
             f"the pixel path's weights resident on chip ({groups} column groups of SMs, "
             f"{resident_bytes(cfg, 'bf16') / groups / 1e3:.0f} KB an SM of "
             f"{dev.smem / 1e3:.0f}, {STAGING / 1e3:.0f} left to stage activations) and free "
             f"on-chip syncs, today's row steps: each phase's activations read by every group "
             f"({moved / 1e6:.0f} MB a sub-pixel, {moved / L2_BW * 1e6:.1f} us at L2's "
             f"{L2_BW / 1e12:.1f} TB/s, assumed; 2,000 needs >= "
             + (f"{moved / allowed / 1e12:.1f} TB/s" if allowed > 0 else "more than any rate")
             + f" with free syncs); {verdict(resident_sync(cfg, dev, size, row_s))} (the "
             f"persistent step's barrier, with its phases' work: {T_SYNC * 1e6:.2f} us "
             f"fitted; bench.phase_times times a barrier alone and L2's broadcast)"]
    cast = [f"{m} SMs {256 / resident(cfg, dev, 256, size, 0.0, row_s, multicast=m):,.0f}"
            f" ({verdict(resident_sync(cfg, dev, size, row_s, multicast=m))})"
            for m in (2, 4, 8)]
    lines.append("bound, bf16 batch 256: the resident design with its activations multicast to "
                 "clusters (one L2 read a cluster: Hopper's TMA multicast, CUDA or Gluon) of "
                 + ", ".join(cast) + " images/s with free syncs")
    if barrier is not None:
        bw = broadcast or L2_BW
        got = 256 / resident(cfg, dev, 256, size, barrier, row_s, bw)
        lines.append(f"target bf16 batch 256: >= 2,000 images/s: the resident design at the "
                     f"barrier alone measured here ({barrier * 1e6:.2f} us, one program an "
                     f"SM, the better poll) and L2's broadcast at {bw / 1e12:.1f} TB/s ("
                     f"{'measured here' if broadcast else 'assumed'}) predicts {got:,.0f} "
                     f"({'met' if got >= 2000 else 'MISSED'})")
    return lines


SLOTS_BF16 = 3      # programs an SM of today's bf16 phase kernel (124-138 registers, 4 warps)
SLOTS_PREFETCH = 2  # ... with the weights prefetched (.../prefetch): 74-115 KB of shared memory
                    # (bf16, cifar: compile-20261127-head36), two in an SM's 228 KB


def pixel_slots(dtype: str, label: str) -> int:
    """Programs an SM of a variant's pixel phase kernel (bf16 by registers, or shared memory
    where the weights are prefetched; the designs before the fold, 168-183 registers: 2;
    float32, 8 warps: 1)."""
    persistent, _, _, fused, _, left_phase = grid_variant(label)
    if dtype == "float32":
        return 1
    if left_phase or not fused:
        return 2
    prefetch = "prefetch" in label.split("/") and not persistent
    return SLOTS_PREFETCH if prefetch else SLOTS_BF16


def spread_floor(cfg, dev: Device, batch: int, size, hop: float, head: bool = False) -> float:
    """Images/s no design of L + 3 dependent phases a sub-pixel beats at this model's phase
    latency, however it spreads each phase's products over the SMs (split in K, in columns,
    by product): a phase's product tiles (K tiles of 32 x BB images x 16 columns; a folded
    layer's six products - f and g of its gate from the previous layer's unit and from its
    input, that layer's residual and skip -, layer 0's two over its F embedded features, a
    hidden layer's one, out's logits over V columns) shared by every program slot of one
    wave, each program's chain its share (at least one tile): hop + T_PHASE + chain x
    T_PRODUCT a phase, T_SAMPLE once, the row steps free. The least work a sub-pixel needs:
    sub-pixel c's colour group of columns over K = (c + 1) H / C (`groups_k`), averaged over
    c. Tighter than `floor` where a phase's work exceeds the slots (batch 256), looser where
    it does not (chains under K = H: split K). head=True: L + 1 phases, the head's three
    products (hidden, hidden, logits) in one phase, their chains in sequence
    (triton-grid/.../head)."""
    L, H, C, V = cfg.layers, cfg.channels, cfg.in_channels, cfg.levels
    F = C * (cfg.embedding_dim or 1)
    bb, bn = pixel_tiles(batch, H, torch.bfloat16)
    slots = dev.sms * SLOTS_BF16

    def chain(products, k, columns):
        work = products * math.ceil(k / 32) * math.ceil(batch / bb) * math.ceil(columns / bn)
        return max(1, math.ceil(work / slots)) * T_PRODUCT["bf16"]

    def phase(products, k, columns):
        return hop + T_PHASE + chain(products, k, columns)

    def tail(k):
        """The head: two hidden layers and the logits, in three phases or (head) one."""
        chains = 2 * chain(1, k, H // C) + chain(1, k, V)
        return (1 if head else 3) * (hop + T_PHASE) + chains
    sub_pixel = sum(phase(2, F, H // C) + (L - 1) * phase(6, k, H // C) + tail(k)
                    for k in groups_k(cfg)) / C + T_SAMPLE
    return batch / (C * size[0] * size[1] * sub_pixel)


def groups_k(cfg) -> list:
    """The K of sub-pixel c's products on the current pixel's features, c = 0 .. C - 1, at
    the least: (c + 1) H / C (its colour groups <= c: triton-grid/groups)."""
    C = cfg.in_channels
    return [(c + 1) * (cfg.channels // C) for c in range(C)]


def floor(cfg, batch: int, size, hop: float, head: bool = False) -> float:
    """Images/s no design of L + 3 dependent phases a sub-pixel can beat at this model's phase
    latency: every phase a single product over the least K (`groups_k`: (c + 1) H / C at
    sub-pixel c; T_PHASE + K/32 T_PRODUCT, bf16), all of its tiles in one wave, `hop` between
    phases (T_LAUNCH: a launch; 0: a free on-chip barrier), T_SAMPLE once, and the row steps
    free. The L + 3 are the layers, which depend on each other, and the head's two hidden
    layers and logits: inherent to the network; head=True, L + 1 phases: the head's three
    products in one phase, their chains in sequence (triton-grid/.../head)."""
    ks = groups_k(cfg)
    phases = cfg.layers + (1 if head else 3)
    sub_pixel = phases * (T_PHASE + hop) + \
        (cfg.layers + 3) * sum(ks) / len(ks) / 32 * T_PRODUCT["bf16"] + T_SAMPLE
    return batch / (cfg.in_channels * size[0] * size[1] * sub_pixel)


if __name__ == "__main__":
    main()
