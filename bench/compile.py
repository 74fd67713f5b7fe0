"""Ahead-of-time compile check of every fused Triton kernel, for GPUs this machine may lack
(issue 12): registers, spills and shared memory of exactly what a GPU run would compile.

    python -m bench.compile                                          # tiny, as in CI
    python -m bench.compile --presets tiny,small,cifar --dtypes float32,bf16 --batches 1,256 --arch 80,90

1. Record. For each preset, dtype and batch size, the real launch paths run - one forward
   pass with backend="triton", one method="triton" sample and one completion (x0, start) of
   a --size image, one method="triton-grid" sample of the preset with a conditioning map -
   on the meta device: shapes, dtypes and offsets, no data. Every kernel's launch is
   intercepted before it runs and bound by Triton's own binder for the target (JITFunction's
   create_function_from_signature and _pack_args, in Triton 3.6 and later): the signature,
   the constexprs, the alignment and integer specialisations and num_warps are what
   JITFunction.run would compile on that GPU. One constexpr differs: INTERPRET, which
   launch_flags sets from TRITON_INTERPRET (needed here for the meta tensors to pass the
   device checks), is compiled False, as a GPU launch passes it. Meta tensors start at
   address 0, so pointer alignment follows the tensors' offsets, as on a GPU (whose
   allocations are 512-byte aligned).
2. Group. Launches that differ only in Triton's scalar specialisations (an int argument
   equal to 1 becomes a constant, ints divisible by 16 get a hint: the step indices i, j, c)
   are variants of one kernel. The variant launched most is compiled (--all-variants: every
   one; they are compiled and checked alike, on a GPU at the first launch of each).
3. Compile with triton.compile(ASTSource, target=GPUTarget("cuda", arch, 32)): registers,
   spill stores/loads and stack frame from ptxas's -v log (TRITON_DUMP_PTXAS_LOG), shared
   memory from the kernel's metadata.

Prints the table and writes <out>/<UTC time>-compile.json. Exit status 1, after writing,
when a kernel fails to compile or a per-step sampler kernel spills (triton-grid's
sampler_row_gemm and sampler_pixel_phase, triton's sampler_row and sampler_pixel; the
opt-in persistent pixel step is reported), or when a kernel launched as a programmatic
dependent (PIXELCNN_GRID_PDL=1) reads an earlier phase's output before its
griddepcontrol.wait in the same basic block of its PTX (`wait_blocks`).
Run it without TRITON_INTERPRET=1: the kernels must be JIT functions to compile.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import io
import json
import math
import multiprocessing
import os
import pkgutil
import re
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

import pixelcnn
from pixelcnn.cache import GatedCache
from pixelcnn.cli import RUNS, Parser, at_least, fail, fresh
from pixelcnn.kernels.grid import meta_capability
from pixelcnn.kernels.sampler_pixel_grid import sampler_pixel_grid, widest
from pixelcnn.packing import packed

from .common import csv, machine

DTYPES = {"float32": torch.float32, "bf16": torch.bfloat16}
# Run once per sampling step: must not spill, the legacy step kernels (method="triton", one
# program per image or per 16 images: labelled "legacy" in the table) too. The opt-in
# persistent pixel step (PIXELCNN_GRID_PERSISTENT=1), kept to time grid barriers, spills
# 4-24 bytes with every phase's code in one loop: reported, not failed.
STEP_KERNELS = ("sampler_row_gemm", "sampler_pixel_phase", "sampler_row", "sampler_pixel")
REPORTED_STEP_KERNELS = {"sampler_row": "legacy", "sampler_pixel": "legacy",
                         "sampler_pixel_grid": "opt-in"}


def short(kernel_name: str) -> str:
    """_sampler_row_fwd_kernel -> sampler_row"""
    return kernel_name.strip("_").removesuffix("_kernel").removesuffix("_fwd")


# ---------------------------------------------------------------------------- record

@dataclass(eq=False)
class Launch:
    """One kernel launch as Triton would compile it for one target (plain data: it travels to
    the compile workers)."""
    module: str                         # where the kernel (a JITFunction) is defined
    kernel_name: str
    signature: dict                     # {argument: "*bf16" | "i32" | "fp32" | "constexpr"}
    constexprs: dict                    # {(argument index,): value}
    attrs: dict                         # {(argument index,): [["tt.divisibility", 16]]}
    options: dict                       # the backend's options (num_warps, num_stages, arch...)
    programs: int                       # grid size

    @property
    def kernel(self):
        return getattr(importlib.import_module(self.module), self.kernel_name)

    @property
    def name(self) -> str:
        return short(self.kernel_name)

    def declared(self) -> dict:
        """The constexprs the launcher passes (tl.constexpr parameters), by name."""
        return {p.name: self.constexprs[(p.num,)] for p in self.kernel.params if p.is_constexpr}

    def group(self) -> str:
        """The kernel and its declared constexprs: launches with equal groups differ only in
        Triton's scalar specialisations."""
        return f"{self.kernel_name} {sorted(self.declared().items())} {self.options}"

    def key(self) -> str:
        return f"{self.group()} {self.signature} {sorted(self.constexprs.items())} {self.attrs}"


def labels(reps: list) -> list:
    """Each group's kernel with what sets it apart from the same kernel's other groups: its
    true flags and the other constexprs that differ, e.g. sampler_pixel(FIRST,SAMPLE),
    vertical_stack(BK=16)."""
    out = []
    for rep in reps:
        mine = rep.declared()
        others = [r.declared() for r in reps if r.kernel_name == rep.kernel_name]
        differ = [k for k in mine if len({repr(o[k]) for o in others}) > 1 and mine[k] is not False]
        parts = [k if mine[k] is True else f"{k}={mine[k]}" for k in differ]
        out.append(rep.name + (f"({','.join(parts)})" if parts else ""))
    return out


def jit_kernels() -> list:
    """Every JIT function of pixelcnn.kernels (kernels and the helpers they call)."""
    from triton.runtime.jit import JITFunction

    import pixelcnn.kernels as package
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        found += [v for v in vars(module).values() if isinstance(v, JITFunction)]
    if not found:
        raise RuntimeError("pixelcnn.kernels holds no JIT functions: TRITON_INTERPRET=1 was set "
                           "when it was imported (run without it)")
    return list(dict.fromkeys(found))


def _record(fn, binder, backend, bound_launches, launches, *args, grid, warmup, **kwargs):
    """JITFunction.run's binding, without the launch (bound once per distinct launch)."""
    if "INTERPRET" in kwargs:
        kwargs["INTERPRET"] = False                           # as launch_flags on a GPU
    bound, specialization, options = binder(*args, **kwargs)
    grid = grid(bound) if callable(grid) else grid
    key = (fn, tuple(specialization), tuple(sorted((k, v) for k, v in kwargs.items()
                                                   if k not in bound)), tuple(grid))
    if key not in bound_launches:
        options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound,
                                                              specialization, options)
        bound_launches[key] = Launch(fn.__module__, fn.__name__, signature, constexprs, attrs,
                                     options.__dict__, math.prod(grid))
    launches.append(bound_launches[key])


@contextlib.contextmanager
def recording(arch: int):
    """Inside the block, launches of pixelcnn.kernels are appended to the yielded list, bound
    for sm_<arch>, and not run; the device checks pass meta tensors (TRITON_INTERPRET=1)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature
    backend = make_backend(GPUTarget("cuda", arch, 32))
    launches, bound, kernels = [], {}, jit_kernels()
    saved = os.environ.get("TRITON_INTERPRET")
    for fn in kernels:
        binder = create_function_from_signature(fn.signature, fn.params, backend)
        fn.run = functools.partial(_record, fn, binder, backend, bound, launches)
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        yield launches
    finally:
        for fn in kernels:
            del fn.run
        if saved is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = saved


@torch.no_grad()
def launch_paths(preset: str, dtype: torch.dtype, batch: int, size, sms: int = 132):
    """Run backend="triton"'s forward and the triton methods' sampling on meta tensors: a
    whole image, and a completion from the middle of the last row (which primes that row),
    and a triton-grid image of the preset with a conditioning map (cond_channels=2); then the
    persistent form of the grid pixel step (CUDA and bf16 only) on one pixel, with
    as many programs as a GPU of `sms` SMs gets."""
    with torch.device("meta"):
        model = pixelcnn.build(pixelcnn.preset(preset)).to(dtype).eval()
    model.backend = "triton"
    C, (H, W) = model.config.in_channels, size
    x = torch.zeros(batch, C, H, W, dtype=torch.long, device="meta")
    model.forward_float(model.embed(x))
    x0 = torch.zeros(batch, C, H, W, dtype=torch.long)      # checked on the CPU, then moved
    for method in ("triton", "triton-grid"):
        pixelcnn.sample(model, batch, size, method=method)
        pixelcnn.sample(model, batch, size, method=method, x0=x0, start=H * W - (W + 1) // 2)
    # a conditioning map (issue 14): the grid row kernel's HAS_MAP form (the legacy
    # sampler_row's is left out, to keep CI's compile time; a learned embedding as wide as
    # the images' compiles as their table: the same launches)
    with torch.device("meta"):
        prior = pixelcnn.build(pixelcnn.preset(preset, cond_channels=2)).to(dtype).eval()
    cond_map = torch.zeros(batch, 2, H, W, dtype=dtype, device="meta")
    pixelcnn.sample(prior, batch, size, method="triton-grid", cond_map=cond_map)
    if dtype == torch.bfloat16:                             # persistent: bf16 only
        cache = GatedCache(packed(model), None).setup(batch, H, W)
        programs = min(sms, widest(cache))
        for c in (None, *range(C)):
            sampler_pixel_grid(cache, x, x.float(), 1.0, H - 1, W - 1, c, programs=programs)


def record(preset, dtype, batch, size, arch) -> list:
    """[(representative Launch, its variants [Launch], launches of the group)] per group;
    the representative is the variant launched most."""
    with recording(arch) as launches, meta_capability(arch // 10):
        launch_paths(preset, DTYPES[dtype], batch, size)
    groups = {}
    for launch, count in Counter(launches).items():
        variants = groups.setdefault(launch.group(), {})
        first, n = variants.get(launch.key(), (launch, 0))
        variants[launch.key()] = (first, n + count)
    out = []
    for variants in groups.values():
        ranked = sorted(variants.values(), key=lambda v: -v[1])
        out.append((ranked[0][0], [v for v, _ in ranked], sum(n for _, n in ranked)))
    return out


# ---------------------------------------------------------------------------- compile

PTXAS = {"registers": r"Used (\d+) registers", "spill_stores": r"(\d+) bytes spill stores",
         "spill_loads": r"(\d+) bytes spill loads", "stack": r"(\d+) bytes stack frame"}


def parse_ptxas(log: str) -> dict:
    """Registers, spill stores/loads and stack frame (bytes) from ptxas -v's log."""
    found = {k: re.search(pattern, log) for k, pattern in PTXAS.items()}
    missing = [k for k, m in found.items() if m is None]
    if missing:
        raise ValueError(f"no {', '.join(missing)} in the ptxas log: {log.strip()[:200]!r}")
    return {k: int(m.group(1)) for k, m in found.items()}


def wait_blocks(ptx: str) -> list:
    """Per griddepcontrol.wait in the PTX (a programmatic dependent launch waiting for the
    previous kernel), the global loads issued before it in its basic block: {"plain": loads
    of weights (and anything else read through L1), "cg": loads with .cg, which the phases
    use for what earlier phases wrote}. A .cg load there reads a previous phase's output before
    it is complete; plain loads there are the prefetch (PIXELCNN_GRID_PREFETCH)."""
    out, plain, cg = [], 0, 0
    for line in ptx.splitlines():
        line = line.strip()
        if re.match(r"^\$L__BB\d+_\d+:", line):         # a new basic block (not $L__tmp:
                                                          # debug labels)
            plain = cg = 0
        elif "griddepcontrol.wait" in line:
            out.append({"plain": plain, "cg": cg})
        elif re.search(r"\bld\.global\.", line):
            if ".cg." in line:
                cg += 1
            else:
                plain += 1
    return out


def compile_launch(launch: Launch, arch: int) -> dict:
    """Compile for sm_<arch> (Triton's cache bypassed, so that ptxas runs and logs)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    env = {"TRITON_ALWAYS_COMPILE": "1", "TRITON_DUMP_PTXAS_LOG": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    log = io.StringIO()
    t = time.perf_counter()
    try:
        with contextlib.redirect_stdout(log):
            compiled = triton.compile(
                ASTSource(launch.kernel, launch.signature, launch.constexprs, launch.attrs),
                target=GPUTarget("cuda", arch, 32), options=launch.options)
        waits = wait_blocks(compiled.asm["ptx"])
        return {**parse_ptxas(log.getvalue()), "shared": compiled.metadata.shared,
                "compile_s": round(time.perf_counter() - t, 2),
                **({"pdl_waits": waits} if waits else {})}
    except Exception as e:              # a compile failure is a result: reported, then status 1
        return {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v


def compile_all(jobs: list, workers: int) -> list:
    """compile_launch over [(Launch, arch)], in `workers` processes (spawned: no fork of a
    process that holds torch's threads)."""
    if workers == 1 or len(jobs) < 2:
        return [compile_launch(*job) for job in jobs]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
        return list(pool.map(compile_launch, *zip(*jobs)))


def check(presets, dtypes, batches, size, archs, all_variants=False, workers=1, kernels=()):
    """(one row per kernel group and configuration: the launch, its variants, and what
    compiling them gave (the worst variant: a failure, else the most spilled); the number of
    distinct kernels compiled). kernels: only the groups whose name starts with one of these
    (all when empty)."""
    configs, jobs = [], {}
    for preset in presets:
        for dtype in dtypes:
            for batch in batches:
                for arch in archs:
                    groups = record(preset, dtype, batch, size, arch)
                    names = labels([rep for rep, _, _ in groups])
                    for name, (rep, variants, count) in zip(names, groups):
                        if kernels and not name.startswith(tuple(kernels)):
                            continue
                        compiled = variants if all_variants else [rep]
                        for launch in compiled:
                            jobs.setdefault((arch, launch.key()), (launch, arch))
                        configs.append(((preset, dtype, batch, arch), name, rep, variants,
                                        count, [(arch, v.key()) for v in compiled]))
    results = dict(zip(jobs, compile_all(list(jobs.values()), workers)))
    rows = []
    for (preset, dtype, batch, arch), name, rep, variants, count, keys in configs:
        worst = max((results[k] for k in keys), key=lambda r: (
            "error" in r, r.get("spill_stores", 0), r.get("registers", 0)))
        rows.append({"preset": preset, "dtype": dtype, "batch": batch, "arch": arch,
                     "kernel": name, "step_kernel": rep.name in STEP_KERNELS,
                     "reported_step_kernel": REPORTED_STEP_KERNELS.get(rep.name),
                     "constexprs": {k: v for k, v in rep.declared().items()
                                    if k != "INTERPRET"},
                     "variants": len(variants), "compiled": len(keys), "launches": count,
                     "programs": rep.programs, "num_warps": rep.options["num_warps"],
                     "num_stages": rep.options["num_stages"], **worst})
    return rows, len(jobs)


def spills(row: dict) -> bool:
    return row.get("spill_stores", 0) > 0 or row.get("spill_loads", 0) > 0


def failures(rows) -> list:
    """Why the check fails: compile errors, and per-step sampler kernels that spill."""
    out = []
    for r in rows:
        where = f"{r['kernel']} {r['preset']} {r['dtype']} batch {r['batch']} sm_{r['arch']}"
        if "error" in r:
            out.append(f"{where}: does not compile: {r['error']}")
        elif r["step_kernel"] and spills(r):
            out.append(f"{where}: spills {r['spill_stores']} B stored, {r['spill_loads']} B "
                       "loaded (a per-step sampler kernel)")
        if any(w["cg"] for w in r.get("pdl_waits", ())):
            out.append(f"{where}: reads what an earlier phase wrote (ld.global.cg) before its "
                       "griddepcontrol.wait")
    return out


def table(rows) -> str:
    head = ("preset", "dtype", "batch", "arch", "kernel", "variants", "programs", "warps",
            "regs", "spill st/ld B", "stack B", "shared B")
    lines = [head]
    for r in rows:
        res = ("compile failed", "", "", "") if "error" in r else (
            r["registers"], f"{r['spill_stores']}/{r['spill_loads']}", r["stack"], r["shared"])
        kind = r.get("reported_step_kernel")
        kernel = r["kernel"] + (f" ({kind})" if kind else "")
        lines.append((r["preset"], r["dtype"], r["batch"], f"sm_{r['arch']}", kernel,
                      r["variants"], r["programs"], r["num_warps"], *res))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(str(v).ljust(w) if i in (0, 1, 3, 4) else str(v).rjust(w)
                               for i, (v, w) in enumerate(zip(line, widths))) for line in lines)


def main(argv=None) -> dict:
    parser = Parser(prog="python -m bench.compile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", type=csv(str), default=["tiny"])
    parser.add_argument("--dtypes", type=csv(str), default=list(DTYPES))
    parser.add_argument("--batches", type=csv(int), default=[1, 256])
    parser.add_argument("--arch", type=csv(int), default=[80, 90],
                        help="compute capabilities: 80 (A100), 90 (H100/H200)")
    parser.add_argument("--size", type=int, nargs=2, default=[32, 32], metavar=("H", "W"),
                        help="image size of the recorded launches")
    parser.add_argument("--all-variants", action="store_true",
                        help="compile every scalar specialisation, not the most launched one")
    parser.add_argument("--kernels", type=csv(str), default=[],
                        help="only these kernels (name prefixes, e.g. sampler_pixel_grid)")
    parser.add_argument("--jobs", type=at_least(1), default=os.cpu_count() or 1,
                        help="compiles in parallel (default: one per core)")
    parser.add_argument("--out", default=str(RUNS / "bench"),
                        help="results folder (default: runs/bench, git-ignored)")
    args = parser.parse_args(argv)
    for flag, values, allowed in (("--presets", args.presets, pixelcnn.PRESETS),
                                  ("--dtypes", args.dtypes, DTYPES)):
        unknown = [v for v in values if v not in allowed]
        if unknown or not values:
            parser.error(f"{flag}: unknown {unknown}; choose from {list(allowed)}")
    if not args.batches or min(args.batches) < 1 or min(args.size) < 1:
        parser.error(f"--batches and --size must be positive, got {args.batches}, {args.size}")
    if not args.arch or any(a < 70 for a in args.arch):
        parser.error(f"--arch takes CUDA compute capabilities >= 70, got {args.arch}")
    if Path(args.out).is_file():
        parser.error(f"--out {args.out} is a file: give a folder")
    try:
        jit_kernels()
    except RuntimeError as e:
        fail(parser.prog, str(e))
    start = time.perf_counter()
    rows, compiled = check(args.presets, args.dtypes, args.batches, args.size, args.arch,
                           args.all_variants, args.jobs, args.kernels)
    print(table(rows))
    result = {"machine": machine(torch.device("cpu"), ",".join(args.dtypes)),
              "settings": {k: v for k, v in vars(args).items() if k != "out"},
              "compiled": compiled, "rows": rows, "failures": failures(rows),
              "wall_seconds": round(time.perf_counter() - start, 1)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = fresh(out / f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-compile.json")
    path.write_text(json.dumps(result, indent=2) + "\n")
    for line in result["failures"]:
        print(f"FAIL {line}")
    print(f"{compiled} kernels compiled in {result['wall_seconds']} s "
          f"(Triton {result['machine']['triton']}); wrote {path}")
    return result


if __name__ == "__main__":
    sys.exit(1 if main(sys.argv[1:])["failures"] else 0)
