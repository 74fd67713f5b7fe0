"""Issue 12, item 1: every Triton kernel that backend="triton" and the triton methods launch
compiles ahead of time for sm_80 and sm_90 (tiny preset, float32 and bf16, batch 1 and 256),
with the launchers' own arguments; the per-step sampler kernels must not spill (the legacy
ones of method="triton" too; the opt-in persistent pixel step is reported, not failed).

`python -m bench.compile` runs in a subprocess without TRITON_INTERPRET (this process set it
in conftest.py, so its kernels are interpreted and cannot be compiled)."""
import json
import subprocess

import pytest
from helpers import BackgroundCompile, bench_compile

from bench.compile import failures, parse_ptxas, wait_blocks
KERNELS = {"vertical_stack", "horizontal_stack", "sampler_row", "sampler_pixel",
           "sampler_row_gemm", "sampler_pixel_phase"}          # + sampler_pixel_grid in bf16


def run_compile(*args, interpret=False, timeout=300):
    proc = bench_compile(*args, interpret=interpret, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def tiny(request):
    """(the command's output, its JSON) for the tiny preset, every dtype, batch and arch:
    started at collection, in the background (conftest.py, helpers.BackgroundCompile)."""
    return request.config.stash[BackgroundCompile.KEY].result()


def test_every_kernel_compiles(tiny):
    _, result = tiny
    errors = [r for r in result["rows"] if "error" in r]
    assert not errors, errors
    assert not [f for f in result["failures"] if "does not compile" in f]


def test_every_launched_kernel_is_recorded(tiny):
    """Every kernel in every configuration, the pixel kernels in each of their flag sets, with
    the launchers' grids: the legacy pixel kernel one program per 16 images, the persistent
    grid kernel (bf16) min(SMs, widest phase) programs."""
    _, result = tiny
    configs = {(r["dtype"], r["batch"], r["arch"]) for r in result["rows"]}
    assert configs == {(d, b, a) for d in ("float32", "bf16") for b in (1, 256) for a in (80, 90)}
    for dtype, batch, arch in configs:
        rows = [r for r in result["rows"]
                if (r["dtype"], r["batch"], r["arch"]) == (dtype, batch, arch)]
        grid = {"sampler_pixel_grid"} if dtype == "bf16" else set()
        assert {r["kernel"].split("(")[0] for r in rows} == KERNELS | grid
        pixel = {r["kernel"] for r in rows if r["kernel"].startswith("sampler_pixel(")}
        assert pixel == {"sampler_pixel(FIRST,SAMPLE)", "sampler_pixel(SAMPLE)",
                         "sampler_pixel(SAMPLE,LAST)", "sampler_pixel(FIRST,LAST)"}
        for kernel in ("sampler_pixel_phase",) + tuple(grid):
            flags = {r["kernel"] for r in rows if r["kernel"].startswith(kernel + "(")}
            assert flags == {f"{kernel}(SAMPLE)", f"{kernel}(SAMPLE,LAST)", f"{kernel}(LAST)"}
        by_kernel = {r["kernel"].split("(")[0]: r for r in rows}
        assert by_kernel["sampler_row"]["programs"] == batch                # one per image
        assert by_kernel["sampler_pixel"]["programs"] == -(-batch // 16)    # 16 images each
        if grid:        # tiny: 12 channels, persistent: 16 x 16 tiles; its widest phase: a
            assert by_kernel["sampler_pixel_grid"]["programs"] == 2 * -(-batch // 16)
                        # layer's at c = 0, with the next layer's base
        assert all(r["constexprs"]["BF16"] == (dtype == "bf16") for r in rows)
        assert all(r["step_kernel"] == (r["kernel"].split("(")[0] in (
            "sampler_row_gemm", "sampler_pixel_phase", "sampler_row", "sampler_pixel"))
            for r in rows)


def test_table_reports_registers_spills_shared(tiny):
    out, result = tiny
    assert "regs" in out and "spill st/ld B" in out and "shared B" in out
    for r in result["rows"]:
        assert 0 < r["registers"] <= 255 and r["shared"] >= 0 and r["stack"] >= 0
    assert result["machine"]["triton"]


def test_step_kernels_do_not_spill(tiny):
    """No per-step sampler kernel spills: triton-grid's, and the legacy ones of
    method="triton" (labelled in the table); the opt-in persistent pixel step
    (PIXELCNN_GRID_PERSISTENT=1) is reported, not failed."""
    out, result = tiny
    spilled = [f for f in result["failures"] if "spills" in f]
    assert not spilled, "\n".join(spilled)
    kinds = {"sampler_row": "legacy", "sampler_pixel": "legacy", "sampler_pixel_grid": "opt-in"}
    for r in result["rows"]:
        kind = kinds.get(r["kernel"].split("(")[0])
        assert r["reported_step_kernel"] == kind
        assert not kind or f"{r['kernel']} ({kind})" in out


def test_failures_name_compile_errors_and_step_spills():
    row = dict(preset="tiny", dtype="bf16", batch=1, arch=90, spill_stores=0, spill_loads=0)
    rows = [dict(row, kernel="vertical_stack", step_kernel=False, error="CompilationError: x"),
            dict(row, kernel="sampler_row", step_kernel=True, spill_stores=8, spill_loads=4),
            dict(row, kernel="horizontal_stack", step_kernel=False, spill_stores=8),
            dict(row, kernel="sampler_pixel", step_kernel=True)]
    assert failures(rows) == [
        "vertical_stack tiny bf16 batch 1 sm_90: does not compile: CompilationError: x",
        "sampler_row tiny bf16 batch 1 sm_90: spills 8 B stored, 4 B loaded (a per-step "
        "sampler kernel)"]


def test_parse_ptxas():
    log = ("ptxas info    : Function properties for k\n"
           "    184 bytes stack frame, 180 bytes spill stores, 200 bytes spill loads\n"
           "ptxas info    : Used 255 registers, used 1 barriers, 184 bytes cumulative stack\n")
    assert parse_ptxas(log) == {"registers": 255, "spill_stores": 180, "spill_loads": 200,
                                "stack": 184}
    with pytest.raises(ValueError, match="no registers"):
        parse_ptxas("ptxas info: nothing")


def test_interpreted_kernels_are_refused():
    proc = run_compile("--presets", "tiny", interpret=True, timeout=120)
    assert proc.returncode == 2
    assert "TRITON_INTERPRET=1 was set" in proc.stderr


def test_wait_blocks_count_loads_before_each_wait():
    ptx = """
    ld.global.b32 %r1, [%rd1];
    griddepcontrol.wait ;
$L__BB0_8:
    @%p24 ld.global.b16 { %rs0 }, [ %rd2 + 0 ];
$L__tmp30:
    @%p24 ld.global.b16 { %rs1 }, [ %rd2 + 0 ];
    @%p25 ld.global.v4.b32 { %r2, %r3, %r4, %r5 }, [ %rd3 + 0 ];
    griddepcontrol.wait ;
    ld.global.cg.b16 %rs2, [%rd4];
$L__BB0_9:
    ld.global.cg.b16 %rs3, [%rd5];
    griddepcontrol.wait ;
"""
    assert wait_blocks(ptx) == [{"plain": 1, "cg": 0}, {"plain": 3, "cg": 0},
                                {"plain": 0, "cg": 1}]
    row = dict(kernel="sampler_pixel_phase", preset="tiny", dtype="bf16", batch=1, arch=90,
               step_kernel=True, spill_stores=0, spill_loads=0, pdl_waits=wait_blocks(ptx))
    assert failures([row]) == ["sampler_pixel_phase tiny bf16 batch 1 sm_90: reads what an "
                               "earlier phase wrote (ld.global.cg) before its "
                               "griddepcontrol.wait"]


def test_prefetch_loads_weights_before_the_wait(tmp_path, monkeypatch):
    """PIXELCNN_GRID_PREFETCH=1 with PDL (sm_90): the phase kernel's layer gate tiles load
    their six weight tiles before griddepcontrol.wait, the left taps' tiles (a pixel's first
    sub-pixel) their two, and nothing an earlier phase wrote (the compile check fails
    otherwise); every other tile waits first."""
    monkeypatch.setenv("PIXELCNN_GRID_PREFETCH", "1")
    monkeypatch.setenv("PIXELCNN_GRID_PDL", "1")
    done = run_compile("--presets", "tiny", "--dtypes", "bf16", "--batches", "1", "--arch",
                       "90", "--kernels", "sampler_pixel_phase", "--jobs", "1", "--out",
                       str(tmp_path), timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    result = json.loads(next(tmp_path.glob("*-compile.json")).read_text())
    assert result["rows"]
    for r in result["rows"]:
        waits = r["pdl_waits"]
        assert [w["cg"] for w in waits] == [0, 0, 0], waits
        plain = sorted(w["plain"] for w in waits)
        assert plain[0] == 0 and plain[1] >= 2 and plain[2] >= 6, waits
