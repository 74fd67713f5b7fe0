"""Grid-wide synchronisation for persistent kernels: programs that stay resident for a whole
multi-phase step and meet at a barrier between phases, instead of one launch per phase.

The barrier is a ticket counter in global memory (one int32, zeroed with the cache): each
program adds 1 on arrival and learns its ticket; with `nprog` programs, tickets
[k * nprog, (k + 1) * nprog) belong to the k-th barrier since the counter was zeroed, so a
program waits until the counter reaches the end of its ticket's block. No reset is needed
between barriers or launches: no program can arrive at barrier k + 1 before all have arrived
at barrier k. It deadlocks unless every program is resident at once, so launch with
`launch_cooperative_grid=True` (the driver refuses a grid that cannot be co-resident) and no
more programs than SMs. Triton's interpreter runs programs one after another and cannot run
it: kernels that use it also run as one launch per phase, which is what the interpreter tests
(DESIGN.md §4).
"""
import contextlib
import os

import torch
import triton
import triton.language as tl


@triton.jit
def grid_barrier(counter, nprog, POLL: tl.constexpr):
    """Wait until all `nprog` programs of the grid arrive. Stores before it are visible to
    every program after it (release on arrival, acquire while waiting, at GPU scope). POLL:
    how a waiting program reads the counter (see `poll`)."""
    tl.debug_barrier()                      # this program's threads have issued their stores
    ticket = tl.atomic_add(counter, 1, sem="release", scope="gpu")
    target = (ticket // nprog + 1) * nprog
    seen = poll(counter, POLL)
    while seen < target:
        seen = poll(counter, POLL)
    tl.debug_barrier()


@triton.jit
def poll(counter, POLL: tl.constexpr):
    """The counter, read with acquire semantics at GPU scope. POLL "atomic" (the first form):
    tl.atomic_add(counter, 0), which Triton (3.6 and 3.9) lowers to one thread's
    ld.global.gpu.acquire, broadcast through shared memory between two bar.sync per poll;
    "load": every thread's ld.acquire.gpu, no bar.sync per poll. The H200 measured 2.24 us
    per barrier with "atomic" (bench/roofline.py); PIXELCNN_GRID_POLL=load times the other."""
    if POLL == "load":
        return tl.inline_asm_elementwise("ld.acquire.gpu.global.b32 $0, [$1];", "=r,l",
                                         [counter], dtype=tl.int32, is_pure=False, pack=1)
    return tl.atomic_add(counter, 0, sem="acquire", scope="gpu")


def poll_mode() -> str:
    """$PIXELCNN_GRID_POLL: "atomic" (default) or "load"; anything else is refused."""
    mode = os.environ.get("PIXELCNN_GRID_POLL", "atomic")
    if mode not in ("atomic", "load"):
        raise ValueError(f"PIXELCNN_GRID_POLL must be 'atomic' or 'load', got {mode!r}")
    return mode


def switch(name: str, off: str, on: str) -> bool:
    """An opt-in environment switch: "1" on, "0" or unset off, anything else refused."""
    value = os.environ.get(name, "0")
    if value not in ("0", "1"):
        raise ValueError(f"{name} must be '0' ({off}) or '1' ({on}), got {value!r}")
    return value == "1"


def persistent_requested() -> bool:
    """$PIXELCNN_GRID_PERSISTENT: "1" asks triton-grid for one persistent launch per pixel step
    (bf16, where Triton launches cooperative grids); "0" or unset, one launch per phase (the
    default: faster on the H200, where a grid barrier cost 2.24 us against a launch's 1.87,
    and the persistent kernel, every phase's code in one loop, spills 8-16 bytes on sm_90:
    bench.compile)."""
    return switch("PIXELCNN_GRID_PERSISTENT", "a launch per phase",
                  "one persistent launch per step")


def split_requested() -> bool:
    """$PIXELCNN_GRID_SPLIT: "1" asks triton-grid's per-phase launches to split each layer's
    products over twice the programs (the gate's apart from the previous layer's residual and
    skip: kernels/sampler_pixel_grid._layer); "0" or unset, one program per tile does all six
    (the default, until a GPU run has timed the split: bench.roofline predicts it faster)."""
    return switch("PIXELCNN_GRID_SPLIT", "six products a tile", "the products split")


def ahead_requested() -> bool:
    """$PIXELCNN_GRID_AHEAD: "1" asks triton-grid's per-phase launches for the look-ahead
    split (kernels/sampler_pixel_grid._layer, SPLIT = 2): each layer's gate from its previous
    layer's gated unit alone, the part from that layer's input made a phase early, every
    program a chain of two products; "0" or unset, off (until a GPU run has timed it)."""
    return switch("PIXELCNN_GRID_AHEAD", "no look-ahead", "the look-ahead split")


def prefetch_requested() -> bool:
    """$PIXELCNN_GRID_PREFETCH: "1" asks triton-grid's per-phase launches (unsplit) to load
    each layer phase's weights first, in one K tile, and, as programmatic dependent launches
    (PIXELCNN_GRID_PDL=1), only then wait for the previous phase: the weights' round trip
    overlaps it (kernels/sampler_pixel_grid._layer); "0" or unset, off (until a GPU run has
    timed it)."""
    return switch("PIXELCNN_GRID_PREFETCH", "weights loaded in the K loop",
                  "weights prefetched")


def groups_requested() -> bool:
    """$PIXELCNN_GRID_GROUPS: "1" asks triton-grid's pixel steps to make only the current
    sub-pixel's colour group of columns, over the K its masks let it see
    (kernels/sampler_pixel_grid.columns: in RGB a third of the columns, two thirds of K on
    average); "0" or unset, every column (until a GPU run has timed it)."""
    return switch("PIXELCNN_GRID_GROUPS", "every column", "the colour group's columns")


def sub_batches_requested() -> int:
    """$PIXELCNN_GRID_SUB_BATCHES: k >= 1 sub-batches that triton-grid's sampling loop runs
    side by side, each a lag of W / k pixels behind the one before, so that one's row steps
    run beside another's latency-bound pixel steps (pixelcnn/sampling/triton.py: CUDA streams
    in its graphs); 1 or unset: one batch (until a GPU run has timed it)."""
    value = os.environ.get("PIXELCNN_GRID_SUB_BATCHES", "1")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"PIXELCNN_GRID_SUB_BATCHES must be an integer >= 1, got {value!r}")
    return int(value)


def head_requested() -> bool:
    """$PIXELCNN_GRID_HEAD: "1" asks triton-grid's pixel steps to make the head's two hidden
    activations in the out phase's programs (kernels/sampler_pixel_grid._head: L + 1 phases a
    sub-pixel, not L + 3); "0" or unset, in phases of their own (until a GPU run has timed
    it)."""
    return switch("PIXELCNN_GRID_HEAD", "the head in three phases", "the head in out's phase")


# The compute capability (major) that meta tensors stand for: bench.compile records each
# target's launches inside meta_capability(arch // 10).
_META_CAPABILITY = [9]


@contextlib.contextmanager
def meta_capability(major: int):
    """Inside the block, launches on meta tensors are chosen as for a GPU of compute
    capability `major` (bench.compile records sm_80's launches with major 8: no PDL)."""
    _META_CAPABILITY.append(major)
    try:
        yield
    finally:
        _META_CAPABILITY.pop()


def dependent_launch(x: torch.Tensor) -> bool:
    """Whether triton-grid's per-phase launches use programmatic dependent launch (Hopper's
    griddepcontrol: the next phase's kernel is launched while this one runs and waits on chip
    for its completion, hiding the launch between dependent kernels). $PIXELCNN_GRID_PDL "1"
    asks for it, off until a GPU run has timed it; it runs on CUDA devices of compute
    capability >= 9 only (and on meta tensors: bench.compile, for the arch it is given,
    meta_capability), never in the interpreter."""
    if not switch("PIXELCNN_GRID_PDL", "plain launches", "programmatic dependent launch"):
        return False
    if x.is_cuda:
        return torch.cuda.get_device_capability(x.device)[0] >= 9
    return x.is_meta and _META_CAPABILITY[-1] >= 9


def cooperative_launch() -> bool:
    """Whether this Triton can launch a cooperative grid (launch_cooperative_grid=True)."""
    try:
        from triton.backends.nvidia.compiler import CUDAOptions
    except ImportError:
        return False
    return "launch_cooperative_grid" in CUDAOptions.__dataclass_fields__


def sm_count(device) -> int:
    """Streaming multiprocessors of a CUDA device (programs a persistent grid may have)."""
    return torch.cuda.get_device_properties(device).multi_processor_count
