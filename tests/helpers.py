"""What the test modules share: small models with random weights, their conditioning, and
draws from seeded uniforms. A plain module (tests import it as `helpers`), so that no test
imports conftest.py or another test module."""
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

import pixelcnn


def randomize(model: torch.nn.Module, seed: int = 0, gain: float = 1.0) -> torch.nn.Module:
    """Random non-zero weights (the initialisation alone can hide a leak: e.g. zero biases)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            std = gain / math.sqrt(fan_in) if p.dim() > 1 else 0.1
            if "class_embed" in name:
                std = 0.5
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)
    return model


def make_model(kind="gated", dtype=torch.float64, seed=0, gain=1.0, **cfg):
    """A model from config fields (the tiny preset by default) with random weights."""
    config = pixelcnn.preset("tiny", **{"model": kind, **cfg})
    model = pixelcnn.build(config).to(dtype)
    return randomize(model, seed, gain).eval()


def conditioning(model, batch, seed=0):
    """Random y / h for whatever the model's forward is conditioned on (an autoencoder's
    forward encodes its own h from x: None)."""
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    y = torch.randint(0, cfg.num_classes, (batch,), generator=g) if cfg.num_classes else None
    h = torch.randn(batch, cfg.cond_dim, generator=g, dtype=model.dtype) \
        if cfg.cond_dim and cfg.model != "autoencoder" else None
    return y, h


def sampling_inputs(model, n, size, seed=0) -> dict:
    """Seeded y, h and uniforms for `pixelcnn.sample(model, n, size, **inputs)`: the model's
    conditioning (an autoencoder's decoder: a random code h) and uniforms drawn in the dtype
    the samplers use (float64 for float64 models, else float32)."""
    y, h = conditioning(model, n, seed)
    if model.config.model == "autoencoder":
        g = torch.Generator().manual_seed(seed)
        h = torch.randn(n, model.config.cond_dim, generator=g, dtype=model.dtype)
    dtype = torch.float64 if model.dtype == torch.float64 else torch.float32
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, model.config.in_channels, *size, generator=g, dtype=dtype)
    return dict(y=y, h=h, uniforms=u)


def draw(model, n, size, seed=0, method="naive", **kw):
    """n images from `method`, the same for every method up to float rounding: the uniforms
    and conditioning of `sampling_inputs`."""
    return pixelcnn.sample(model, n, size, method=method, **sampling_inputs(model, n, size, seed),
                           **kw)


def check_jacobian(jac, C, no_blind_spot):
    """jac [C, H, W, C, H, W]: d(output sub-pixel) / d(input sub-pixel). Every later input
    (raster order, R -> G -> B inside a pixel) has an exactly zero entry; with no_blind_spot
    every earlier one a non-zero entry."""
    _, H, W = jac.shape[:3]
    order = lambda c, i, j: (i * W + j) * C + c
    for c, i, j in itertools.product(range(C), range(H), range(W)):
        here = order(c, i, j)
        g = jac[c, i, j]
        for c2, i2, j2 in itertools.product(range(C), range(H), range(W)):
            if order(c2, i2, j2) >= here:
                assert g[c2, i2, j2] == 0, f"output {(c, i, j)} sees later input {(c2, i2, j2)}"
            elif no_blind_spot:
                assert g[c2, i2, j2] != 0, f"output {(c, i, j)} is blind to {(c2, i2, j2)}"


ROOT = Path(__file__).resolve().parent.parent


def bench_compile(*args, interpret=False, **popen) -> subprocess.Popen:
    """`python -m bench.compile *args` in a subprocess, without TRITON_INTERPRET unless asked
    (conftest.py sets it for this process: its kernels are interpreted, not compilable)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    return subprocess.Popen([sys.executable, "-m", "bench.compile", *args], cwd=ROOT, env=env,
                            **popen)


class BackgroundCompile:
    """The compile check of tests/test_compile.py (bench.compile: the tiny preset, every dtype,
    batch and arch; minutes of CPU), started at collection (conftest.py) on all but one core,
    while the rest of the suite runs on that one; its tests run last and wait for it."""
    KEY = pytest.StashKey()
    ARGS = ("--presets", "tiny", "--dtypes", "float32,bf16", "--batches", "1,256",
            "--arch", "80,90")

    def __init__(self, jobs: int):
        self.out = Path(tempfile.mkdtemp(prefix="pixelcnn-compile-"))
        self.log = open(self.out / "log.txt", "w")
        self.proc = bench_compile(*self.ARGS, "--jobs", str(jobs), "--out", str(self.out),
                                  stdout=self.log, stderr=subprocess.STDOUT)

    def result(self, timeout: float = 1800) -> tuple:
        """(its output, stdout and stderr together; its JSON) once it has finished."""
        self.proc.wait(timeout)
        self.log.flush()
        text = (self.out / "log.txt").read_text()
        assert self.proc.returncode in (0, 1), text[-3000:]
        return text, json.loads(next(self.out.glob("*-compile.json")).read_text())

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.out, ignore_errors=True)
