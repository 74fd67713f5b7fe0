"""bench/gpu.sh, the one-call GPU script (issue 12, item 5), in its dry-run mode on the CPU:
its plumbing (options, the per-step time limits, the results tarred into the output folder)
on the quickest step; `bash bench/gpu.sh --dry-run` runs every step the same way (~2 min)."""
import os
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def gpu_sh(*args, env=None):
    return subprocess.run(["bash", "bench/gpu.sh", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=env)


def test_dry_run_step_writes_its_log_and_results(tmp_path):
    out = tmp_path / "out"
    proc = gpu_sh("--dry-run", "chip", "roofline", env={**os.environ, "GPU_OUT": str(out)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    log = (out / "gpu-all-log.txt").read_text()
    assert "=== chip: skipped in a dry run (CUDA launches only)" in log    # its rates need
    assert "=== roofline rc=0" in log and "predicted vs measured" in log  # a GPU
    with tarfile.open(out / "results-all.tar.gz") as tar:
        assert "./gpu-all-log.txt" in tar.getnames()


def test_bad_options_fail_with_usage():
    proc = gpu_sh("--part", "4")
    assert proc.returncode == 2 and "--part takes 1, 2 or 3, got 4" in proc.stderr
    proc = gpu_sh("bogus-step")
    assert proc.returncode == 2 and "unknown step bogus-step" in proc.stderr
    proc = gpu_sh("roofline", env={"PATH": "/usr/bin:/bin"})          # no $OUT, no dry run
    assert proc.returncode == 2 and "$OUT is not set" in proc.stderr
