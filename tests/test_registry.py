"""The sampler registry: one table that `sample`, `available_methods`, the CLIs and the
benchmark read; state kept across calls lives where it is owned and dies with its model."""
import gc
import weakref

import pytest
import torch

import pixelcnn
from pixelcnn import packing
from pixelcnn.sampling import (FASTEST_FIRST, METHODS, REGISTRY, available_methods, triton,
                               why_unavailable)
from pixelcnn.sampling.common import prepare


def tiny(**kw):
    return pixelcnn.build(pixelcnn.preset("tiny", in_channels=1, levels=4, **kw)).eval()


def test_one_table():
    assert METHODS == ("naive", "cached", "triton", "native", "triton-grid") == tuple(REGISTRY)
    assert set(FASTEST_FIRST) == set(METHODS)
    model = tiny()
    listed = available_methods(model)
    assert listed == [m for m in FASTEST_FIRST if not why_unavailable(model, m)]
    assert listed[-2:] == ["cached", "naive"]
    for method in ("triton", "triton-grid"):                        # this machine: no GPU
        assert "CUDA only" in why_unavailable(model, method)
    assert FASTEST_FIRST.index("triton") < FASTEST_FIRST.index("triton-grid")   # until measured
    masked = pixelcnn.build(pixelcnn.preset("tiny", model="pixelcnn", in_channels=1, levels=4))
    assert available_methods(masked) == ["naive"]
    assert "GatedPixelCNN models only" in why_unavailable(masked, "cached")


def test_packed_weights_are_the_models_and_follow_its_parameters():
    model = tiny()
    assert model.packed_weights is None                             # declared in __init__
    first = packing.packed(model)
    assert packing.packed(model) is first                           # packed once
    with torch.no_grad():
        model.head.logits.bias.add_(1.0)
    again = packing.packed(model)
    assert again is not first and torch.equal(again.b2, first.b2 + 1.0)


def test_graph_runners_are_freed_with_their_model():
    """A runner holds its static buffers but not its model: when the model goes, so do they."""
    model = tiny()
    job = prepare(model, 2, (3, 3))
    runner = triton._GraphRunner(job, lambda cache, x: (None, None))   # no capture on a CPU
    assert runner.job.model is None
    triton._RUNNERS[model] = {"key": runner}
    ref = weakref.ref(model)
    del model, job
    gc.collect()
    assert ref() is None and len(triton._RUNNERS) == 0


@pytest.mark.parametrize("method", METHODS)
def test_every_entry_checks_requests(method):
    """An explicit request for a method that cannot run is refused before any work."""
    masked = pixelcnn.build(pixelcnn.preset("tiny", model="pixelcnn", in_channels=1, levels=4))
    if method == "naive":
        assert pixelcnn.sample(masked, 1, (2, 2), method=method).shape == (1, 1, 2, 2)
    else:
        with pytest.raises(ValueError, match="GatedPixelCNN"):
            pixelcnn.sample(masked, 1, (2, 2), method=method)
