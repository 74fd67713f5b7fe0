"""Perf regression checks: the cached sampler against naive, timed in the same run.

A ratio of two timings taken side by side on the same machine is far steadier than either
time alone, so the assertion is on ratio = naive seconds / cached seconds (naive extrapolated
from a few of its constant-cost steps) against a floor set from measured ratios with a wide
margin (FLOORS). pytest-benchmark records cached's time and, in extra_info, the ratio:
`.ci/run` saves them with --benchmark-json and `python -m bench.compare` compares a run with
bench/baselines/.

Single-threaded on purpose: on a shared 2-core machine, OpenMP's thread synchronisation
makes small matrix products erratic (ratios swung 15-50x between runs with 2 threads).
"""
import time

import pytest
import torch

import pixelcnn
from pixelcnn.cache import inverse_cdf

BATCH = 4
# preset -> (image size, floor). Ratios measured in 8 runs on the 2-core development machine
# (shared with other jobs): tiny at 16x16 9.6-16.9, small at 8x8 12.5-19.4. The floors are
# about 40% of the lowest: cached must lose more than half its lead before CI fails.
CASES = {"tiny": ((16, 16), 4.0), "small": ((8, 8), 5.0)}


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def naive_seconds(model, size, steps=5) -> float:
    """Naive sampling of a batch, extrapolated: the fastest of `steps` loop steps (a full
    forward pass and one inverse-CDF draw each; every step costs the same) x C*H*W."""
    C = model.config.in_channels
    x = torch.zeros(BATCH, C, *size, dtype=torch.long)
    u = torch.rand(BATCH, C, *size)
    times = []
    with torch.no_grad():
        for _ in range(steps + 1):                   # the first one warms up
            t = time.perf_counter()
            logits = model.forward_float(model.embed(x), None, None)
            x[:, 0, 0, 0] = inverse_cdf(logits[:, :, 0, 0, 0], u[:, 0, 0, 0])
            times.append(time.perf_counter() - t)
    return min(times[1:]) * C * size[0] * size[1]


@pytest.mark.parametrize("preset", list(CASES))
def test_cached_vs_naive(benchmark, one_thread, preset):
    size, floor = CASES[preset]
    torch.manual_seed(0)
    model = pixelcnn.build(pixelcnn.preset(preset)).eval()   # timings do not depend on weights
    times = []

    def cached():
        t = time.perf_counter()
        pixelcnn.sample(model, BATCH, size, method="cached")
        times.append(time.perf_counter() - t)

    benchmark.pedantic(cached, rounds=3, warmup_rounds=1)
    naive = naive_seconds(model, size)
    ratio = naive / min(times[-3:])
    benchmark.extra_info.update(ratio=ratio, floor=floor, naive_seconds=naive,
                                size=list(size), batch=BATCH, threads=1)
    assert ratio >= floor, (f"{preset}: cached is only {ratio:.2f}x faster than naive at "
                            f"{size[0]}x{size[1]}, batch {BATCH} (floor {floor}x)")
