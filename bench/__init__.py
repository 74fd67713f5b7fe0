"""Benchmarks of the pixelcnn samplers, run from the repository root:

    python -m bench.sample --dataset cifar      # gate, throughput, bits/dim, result files
    python -m bench.compare BASE.json RUN.json  # pytest-benchmark perf regressions

Not installed with the package (a top-level `bench` would collide with PyPI names).
"""
