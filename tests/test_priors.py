"""Priors over discrete codes (issue 14): the learned input embedding (embedding_dim) and
location-dependent conditioning (cond_channels, cond_map): causal, no blind spot, sampled
alike by every method that supports them, saved and loaded; older checkpoints still load."""
import pytest
import torch

import pixelcnn
from helpers import check_jacobian, make_model, randomize
from pixelcnn import checkpoint
from pixelcnn.sampling import REGISTRY

H, W = 5, 6
PRIORS = [
    # (id, config fields): K = 512 codes, one channel; 3 embedded channels; a map; both
    ("codes-512-class", dict(in_channels=1, levels=512, embedding_dim=4, num_classes=3)),
    ("rgb-embedded", dict(in_channels=3, levels=16, embedding_dim=2, channels=12)),
    ("grey-map", dict(in_channels=1, levels=8, cond_channels=3)),
    ("rgb-embedded-map", dict(in_channels=3, levels=32, embedding_dim=3, cond_channels=2,
                              channels=12, cond_dim=4)),
]


def inputs(model, n, seed=0):
    """Seeded y, h, cond_map for the model's forward and sample."""
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    out = {}
    if cfg.num_classes:
        out["y"] = torch.randint(0, cfg.num_classes, (n,), generator=g)
    if cfg.cond_dim:
        out["h"] = torch.randn(n, cfg.cond_dim, generator=g, dtype=model.dtype)
    if cfg.cond_channels:
        out["cond_map"] = torch.randn(n, cfg.cond_channels, H, W, generator=g, dtype=model.dtype)
    return out


@pytest.mark.parametrize("fields", [p[1] for p in PRIORS], ids=[p[0] for p in PRIORS])
def test_causal_and_no_blind_spot(fields):
    """Autograd through the embedded features (channel c's E features summed): every later
    sub-pixel has a zero derivative, every earlier one a non-zero one, with cond_map given."""
    C, E = fields["in_channels"], fields.get("embedding_dim") or 1
    model = make_model(layers=max(H, W) + 1, kernel_size=3, **{**fields, "channels": 8 * C})
    cond = inputs(model, 1)
    g = torch.Generator().manual_seed(7)
    proj = torch.randn(model.config.levels, generator=g, dtype=model.dtype)
    total = 0
    for seed in range(3):
        x = torch.randint(0, model.config.levels, (1, C, H, W),
                          generator=torch.Generator().manual_seed(seed))
        f = lambda u: torch.einsum("lchw,l->chw", model.forward_float(
            u[None], cond.get("y"), cond.get("h"), cond.get("cond_map"))[0], proj)
        jac = torch.autograd.functional.jacobian(f, model.embed(x)[0], vectorize=True)
        total = total + jac.view(C, H, W, C, E, H, W).abs().sum(4)
    check_jacobian(total, C, no_blind_spot=True)


@pytest.mark.parametrize("fields", [p[1] for p in PRIORS], ids=[p[0] for p in PRIORS])
def test_later_codes_change_nothing(fields):
    """float32 integers: rewriting every later sub-pixel leaves the logits bit for bit; the
    map is given, so changing it anywhere may move them (and does, somewhere)."""
    model = make_model(dtype=torch.float32, layers=3, **fields)
    C, L = model.config.in_channels, model.config.levels
    cond = inputs(model, 2)
    g = torch.Generator().manual_seed(11)
    x = torch.randint(0, L, (2, C, H, W), generator=g)
    with torch.no_grad():
        base = model(x, **cond)
        for c, i, j in [(0, 0, 0), (C - 1, 1, 2), (0, H - 1, W - 1)]:
            x2 = x.clone().view(2, C, H * W)
            here = i * W + j
            x2[:, :, here + 1:] = torch.randint(0, L, x2[:, :, here + 1:].shape, generator=g)
            x2[:, c:, here] = torch.randint(0, L, x2[:, c:, here].shape, generator=g)
            assert torch.equal(model(x2.view(2, C, H, W), **cond)[:, :, c, i, j],
                               base[:, :, c, i, j]), (c, i, j)
        if "cond_map" in cond:
            moved = {**cond, "cond_map": cond["cond_map"] + 1.0}
            assert not torch.equal(model(x, **moved), base)


def methods_for(model):
    """The incremental methods that sample this model here (triton under the interpreter)."""
    out = ["cached"]
    for name in ("native", "triton"):
        try:
            REGISTRY[name].require(model)
        except (ValueError, RuntimeError, ImportError):
            continue
        out.append(name)
    return out


@pytest.mark.parametrize("fields", [p[1] for p in PRIORS], ids=[p[0] for p in PRIORS])
def test_every_sampler_draws_naive_images(fields):
    """float64: the same uniforms give the same codes as the naive reference, for every
    method that samples the model (K = 512 codes, embedded colour channels, maps)."""
    model = make_model(layers=3, **fields)
    n, C = 3, model.config.in_channels
    u = torch.rand(n, C, H, W, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    cond = inputs(model, n)
    ref = pixelcnn.sample(model, n, (H, W), method="naive", uniforms=u, **cond)
    assert ref.max() > 0 and len(ref.unique()) > 3
    for method in methods_for(model):
        got = pixelcnn.sample(model, n, (H, W), method=method, uniforms=u, **cond)
        assert torch.equal(got, ref), method
    # completion keeps the given rows and takes the map into account the same way
    x0 = torch.randint(0, model.config.levels, (n, C, H, W), generator=torch.Generator().manual_seed(4))
    a = pixelcnn.sample(model, n, (H, W), method="naive", uniforms=u, x0=x0, start=W + 2, **cond)
    b = pixelcnn.sample(model, n, (H, W), method="cached", uniforms=u, x0=x0, start=W + 2, **cond)
    assert torch.equal(a, b) and torch.equal(a.view(n, C, -1)[:, :, :W + 2],
                                             x0.view(n, C, -1)[:, :, :W + 2])


def test_float32_flips_are_boundary_rare():
    """float32, K = 512: cached against naive on a larger draw: identical but for the rare
    sub-pixel whose uniform falls within rounding of a CDF boundary (as for images)."""
    model = make_model(dtype=torch.float32, layers=3, in_channels=1, levels=512,
                       embedding_dim=4, cond_channels=2)
    n = 8
    cond = inputs(model, n)
    u = torch.rand(n, 1, H, W, generator=torch.Generator().manual_seed(5))
    a = pixelcnn.sample(model, n, (H, W), method="naive", uniforms=u, **cond)
    b = pixelcnn.sample(model, n, (H, W), method="cached", uniforms=u, **cond)
    assert (a == b).float().mean() >= 0.99


@pytest.mark.parametrize("bad, message", [
    (None, "cond_map is required"),
    (torch.zeros(2, 3, H, W, dtype=torch.long), "float tensor of shape"),
    (torch.zeros(2, 2, H, W + 1), r"\[2, 3, 5, 6\]"),
    ("map", "float tensor of shape"),
])
def test_bad_cond_map(bad, message):
    model = make_model(dtype=torch.float32, in_channels=1, levels=8, cond_channels=3)
    x = torch.zeros(2, 1, H, W, dtype=torch.long)
    with pytest.raises(ValueError, match=message):
        model(x, cond_map=bad)
    with pytest.raises(ValueError, match=message):
        pixelcnn.sample(model, 2, (H, W), method="cached", cond_map=bad)


def test_config_errors():
    with pytest.raises(ValueError, match="input features exceed channels"):
        pixelcnn.preset("tiny", in_channels=3, embedding_dim=8)          # 24 > 12
    with pytest.raises(ValueError, match="Gated PixelCNN option"):
        pixelcnn.preset("tiny", model="pixelcnn", embedding_dim=2)
    plain = make_model(dtype=torch.float32, in_channels=1, levels=8)
    with pytest.raises(ValueError, match="takes no conditioning map"):
        plain(torch.zeros(1, 1, H, W, dtype=torch.long), cond_map=torch.zeros(1, 1, H, W))


def test_checkpoints_round_trip_and_old_ones_load(tmp_path):
    model = make_model(dtype=torch.float32, layers=2, in_channels=3, levels=32, embedding_dim=3,
                       cond_channels=2, channels=12)
    pixelcnn.save(model, tmp_path / "prior.pt")
    back = pixelcnn.load(tmp_path / "prior.pt")
    assert back.config == model.config and back.config.embedding_dim == 3
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 back.state_dict().values()))
    # a checkpoint written before embedding_dim / cond_channels existed: no such fields
    old = make_model(dtype=torch.float32, layers=2, in_channels=1, levels=8)
    payload = {"format": checkpoint.FORMAT, "version": 2, "metadata": {},
               "config": {k: v for k, v in old.config.to_dict().items()
                          if k not in ("embedding_dim", "cond_channels")},
               "state_dict": old.state_dict()}
    payload["sha256"] = checkpoint.checksum(payload)
    torch.save(payload, tmp_path / "old.pt")
    loaded = pixelcnn.load(tmp_path / "old.pt")
    assert loaded.config.embedding_dim is None and loaded.config.cond_channels is None


def test_scalar_embedding_is_the_packed_table():
    """Image models: the packed table holds the scalar embedding's exact values, so every
    sampler embeds as the model does."""
    from pixelcnn.packing import pack
    model = randomize(pixelcnn.build(pixelcnn.preset("tiny", in_channels=3, levels=256)))
    table = pack(model).table
    x = torch.arange(256).view(1, 1, 256).expand(1, 3, 256)
    assert table.shape == (3, 256, 1)
    assert torch.equal(table[:, :, 0], model.embed(x)[0])


@pytest.mark.parametrize("embedding_dim", [None, 4])
def test_packed_weights_live_on_the_models_device(embedding_dim):
    """Every packed tensor is on the model's device (meta stands in for a GPU here): the fused
    kernels refuse a pointer to host memory, which is how the scalar table was first caught."""
    import dataclasses
    from pixelcnn.packing import pack
    model = pixelcnn.build(pixelcnn.preset("tiny", embedding_dim=embedding_dim)).to("meta")
    w = pack(model)
    off = [f.name for f in dataclasses.fields(w) if isinstance(getattr(w, f.name), torch.Tensor)
           and getattr(w, f.name).device.type != "meta"]
    assert off == []


def test_prior_workflow_on_codes(tmp_path, capsys):
    """The README's workflow on a fixture: train a class-conditional prior with a learned
    embedding on K = 512 codes with a separate test file, score it with pixelcnn.evaluate
    (the test file comes from the checkpoint), sample code maps with method auto."""
    import json
    import numpy as np
    from datafixtures import write_codes
    from pixelcnn import evaluate, sample_cli, train
    write_codes(tmp_path / "train.npz", n=12, size=4, levels=512, num_classes=3)
    write_codes(tmp_path / "test.npz", n=5, size=4, levels=512, num_classes=3, seed=1)
    out = tmp_path / "prior"
    res = train.main(["--dataset", f"codes:{tmp_path / 'train.npz'}", "--test-data",
                      str(tmp_path / "test.npz"), "--levels", "512", "--embedding-dim", "4",
                      "--cond", "class", "--preset", "tiny", "--epochs", "1", "--batch-size", "4",
                      "--out", str(out), "--progress", "off", "--sample-every", "0",
                      "--n-samples", "2"])
    assert res["n"] == 5 and res["config"]["embedding_dim"] == 4 and res["levels"] == 512
    scored = evaluate.main(["--checkpoint", str(out / "checkpoint.pt"), "--progress", "off"])
    assert scored["n"] == 5 and scored["bits_per_dim"] == pytest.approx(res["bits_per_dim"])
    capsys.readouterr()
    sample_cli.main(["--checkpoint", str(out / "checkpoint.pt"), "-n", "3",
                     "--out", str(tmp_path / "codes.png")])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    codes = np.load(tmp_path / "codes.npz")["samples"]
    fastest = pixelcnn.sampling.available_methods(pixelcnn.load(out / "checkpoint.pt"))[0]
    assert codes.shape == (3, 1, 4, 4) and codes.dtype == np.int16 and line["method"] == fastest
    assert codes.max() < 512 and list(np.load(tmp_path / "codes.npz")["labels"]) == [0, 1, 2]
