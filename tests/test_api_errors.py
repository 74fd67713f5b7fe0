"""Every public entry point rejects bad arguments with a ValueError that names the argument,
what was expected and what was given, the most fundamental problem first (not an
AttributeError or a failure deep inside torch or Triton)."""
import numpy as np
import pytest
import torch

import pixelcnn
from pixelcnn.sampling import available_methods
from pixelcnn.sampling.common import full_precision

TINY = pixelcnn.preset("tiny", in_channels=1, levels=4)


def tiny(dtype=torch.float32, **fields):
    return pixelcnn.build(TINY.replace(**fields)).to(dtype)


def images(n=2):
    return torch.randint(0, TINY.levels, (n, 1, 4, 4), generator=torch.Generator().manual_seed(0))


@pytest.fixture
def no_interpreter(monkeypatch):
    """As on a machine without TRITON_INTERPRET (conftest sets it when there is no GPU)."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)


# ---- sample and available_methods ---------------------------------------------------------

def test_sample_checks_the_model_first():
    for method in ("cached", "bogus"):
        with pytest.raises(ValueError, match=r"model must be a pixelcnn model \(GatedPixelCNN, "
                                             r"PixelCNN or PixelCNNAutoencoder\), got NoneType"):
            pixelcnn.sample(None, 2, (4, 4), method=method)
    with pytest.raises(ValueError, match="model must be a pixelcnn model.*got Linear"):
        available_methods(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("method", ["bogus", ["cached"], None, np.array(["cached", "naive"])],
                         ids=["unknown", "list", "none", "array"])
def test_sample_checks_the_method_before_the_rest(method):
    with pytest.raises(ValueError, match="method must be one of"):
        pixelcnn.sample(tiny(), 0, None, method=method)        # n and size are wrong too


@pytest.mark.parametrize("fused", ["triton", "triton-grid"])
def test_unavailable_method_says_why(no_interpreter, fused):
    with pytest.raises(ValueError, match=f"method='{fused}' runs on CUDA tensors only, got cpu") \
            as e:
        pixelcnn.sample(tiny(), 0, (4, 4), method=fused)
    assert isinstance(e.value, RuntimeError)     # what the kernels' device check raised before
    with pytest.raises(ValueError, match="method='native' samples float32 or float64 models on "
                                         "the CPU, got a torch.bfloat16 model"):
        pixelcnn.sample(tiny(torch.bfloat16), 0, (4, 4), method="native")


def test_triton_method_in_the_interpreter_checks_the_dtype(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(ValueError, match="method='triton' takes float32 or bfloat16 models "
                                         "only, got a torch.float64 model"):
        pixelcnn.sample(tiny(torch.float64), 1, (4, 4), method="triton")


BAD_SAMPLE = [    # (id, arguments, regular expression)
    ("n-float", dict(n=2.0), r"n \(the number of images\) must be an integer >= 1, got 2.0"),
    ("size-none", dict(size=None), r"size must be \(H, W\) or an int, got None"),
    ("temperature-str", dict(temperature="1"), "temperature must be a number > 0, got '1'"),
    ("generator-str", dict(generator="seed"), "generator must be a CPU torch.Generator .*got str"),
    ("x0-numpy", dict(x0=np.zeros((2, 1, 4, 4), dtype=np.int64), start=1),
     "x must be a torch.Tensor, got ndarray"),
]


@pytest.mark.parametrize("change,message", [b[1:] for b in BAD_SAMPLE],
                         ids=[b[0] for b in BAD_SAMPLE])
def test_sample_bad_arguments(change, message):
    args = {"n": 2, "size": (4, 4), **change}
    with pytest.raises(ValueError, match=message):
        pixelcnn.sample(tiny(), args.pop("n"), args.pop("size"), **args)


# ---- the models ---------------------------------------------------------------------------

@pytest.mark.parametrize("x,message", [
    (images().tolist(), "x must be a torch.Tensor, got list"),
    (images().numpy(), "x must be a torch.Tensor, got ndarray"),
    (images().float(), "x must hold integer sub-pixel values in [0, 4)"),
    (images()[0], "x must have shape [B, 1, H, W], got [1, 4, 4]"),
], ids=["list", "numpy", "float", "3d"])
def test_forward_encode_reconstruct_check_x(x, message):
    ae = tiny(model="autoencoder", cond_dim=3)
    for call in (tiny(), tiny(model="pixelcnn"), ae, ae.encode, ae.reconstruct):
        with pytest.raises(ValueError) as e:
            call(x)
        assert message in str(e.value)


def test_triton_backend_checks_the_device_before_autograd(no_interpreter):
    model = tiny()
    model.backend = "triton"
    for grad in (True, False):
        with torch.set_grad_enabled(grad), pytest.raises(
                ValueError, match="backend='triton' runs on CUDA tensors only, got cpu ones: "
                                  "move the model and its inputs to cuda"):
            model(images())


def test_triton_backend_checks_the_dtype_before_autograd(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    model = tiny(torch.float64)
    model.backend = "triton"
    with pytest.raises(ValueError, match="backend='triton' takes float32 or bfloat16"):
        model(images())


def test_backend_must_be_a_name():
    with pytest.raises(ValueError, match=r"backend must be one of \('torch', 'triton', 'auto'\), "
                                         r"got \['triton'\]"):
        pixelcnn.GatedPixelCNN(config=TINY, backend=["triton"])


@pytest.mark.parametrize("make,message", [
    (lambda: pixelcnn.build(None), "config must be a ModelConfig (e.g. pixelcnn.preset("),
    (lambda: pixelcnn.build(TINY.to_dict()), "ModelConfig.from_dict(d)), got dict"),
    (lambda: pixelcnn.GatedPixelCNN(config="tiny"),
     "config must be a ModelConfig with model='gated' for a GatedPixelCNN, got str"),
    (lambda: pixelcnn.PixelCNN(config=TINY),
     "config must be a ModelConfig with model='pixelcnn' for a PixelCNN, got model='gated'"),
    (lambda: pixelcnn.GatedPixelCNN(channels=12.0), "channels must be an integer, got 12.0"),
    (lambda: pixelcnn.preset("nope"), "unknown preset 'nope'; choose one of"),
    (lambda: pixelcnn.preset(["tiny"]), "unknown preset ['tiny']"),
    (lambda: pixelcnn.preset("tiny", colours=3), "unknown fields ['colours']"),
    (lambda: pixelcnn.preset("tiny", levels="4"), "levels must be an integer, got '4'"),
    (lambda: pixelcnn.preset("tiny", num_classes=True), "num_classes must be an integer"),
], ids=["build-none", "build-dict", "config-str", "config-kind", "channels-float",
        "preset-unknown", "preset-list", "preset-field", "levels-str", "classes-bool"])
def test_configs_and_constructors(make, message):
    with pytest.raises(ValueError) as e:
        make()
    assert message in str(e.value)


# ---- bits_per_dim -------------------------------------------------------------------------

LOGITS = torch.zeros(2, 4, 1, 4, 4)


@pytest.mark.parametrize("logits,x,kwargs,message", [
    (LOGITS.tolist(), images(), {}, "logits must be a torch.Tensor, got list"),
    (LOGITS, images().numpy(), {}, "x must be a torch.Tensor, got ndarray"),
    (LOGITS, images(1), {}, "with matching sizes, got [2, 4, 1, 4, 4] and [1, 1, 4, 4]"),
    (LOGITS, images().float(), {}, "x must be integer sub-pixels, got dtype torch.float32"),
    (LOGITS.long(), images(), {}, "logits must be floats, got dtype torch.int64"),
    (LOGITS, images(), dict(reduction=None), "reduction must be 'mean', 'none' or 'sum'"),
], ids=["logits-list", "x-numpy", "shapes", "x-float", "logits-int", "reduction"])
def test_bits_per_dim(logits, x, kwargs, message):
    with pytest.raises(ValueError) as e:
        pixelcnn.bits_per_dim(logits, x, **kwargs)
    assert message in str(e.value)


# ---- full float32 precision ---------------------------------------------------------------

# The float32 settings of cuDNN convolutions and CUDA matmul, in the API this torch has:
# fp32_precision from torch 2.9 on (the legacy allow_tf32 flags raise when mixed with it).
_CUDNN, _MATMUL = torch.backends.cudnn, torch.backends.cuda.matmul
if hasattr(_MATMUL, "fp32_precision"):
    SETTINGS = [(_CUDNN.conv, "fp32_precision"), (_MATMUL, "fp32_precision")]
    ON, OFF = ("tf32", "tf32"), ("ieee", "ieee")
else:
    SETTINGS = [(_CUDNN, "allow_tf32"), (_MATMUL, "allow_tf32")]
    ON, OFF = (True, True), (False, False)


def tf32_flags() -> tuple:
    return tuple(getattr(owner, name) for owner, name in SETTINGS)


def set_tf32_flags(values):
    for (owner, name), value in zip(SETTINGS, values):
        setattr(owner, name, value)


@pytest.fixture
def tf32_on():
    """TF32 on for both, as a user might set it (the original settings come back after)."""
    saved = tf32_flags()
    set_tf32_flags(ON)
    yield
    set_tf32_flags(saved)


def test_full_precision_turns_tf32_off_and_restores_it(tf32_on):
    with full_precision():
        assert tf32_flags() == OFF
    assert tf32_flags() == ON
    with pytest.raises(KeyError), full_precision():
        raise KeyError("inside")
    assert tf32_flags() == ON


def test_sample_runs_without_tf32(tf32_on, monkeypatch):
    model, seen = tiny(), []
    forward = model.forward_float
    monkeypatch.setattr(model, "forward_float",
                        lambda *a: (seen.append(tf32_flags()), forward(*a))[1])
    pixelcnn.sample(model, 1, (2, 2), method="naive")
    assert seen and set(seen) == {OFF}
    assert tf32_flags() == ON
    with pytest.raises(ValueError, match="y was given"):   # raised inside: restored all the same
        pixelcnn.sample(model, 1, (2, 2), y=torch.zeros(1, dtype=torch.long))
    assert tf32_flags() == ON
