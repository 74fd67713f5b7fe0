"""The models: Gated PixelCNN, the original masked PixelCNN, and the PixelCNN autoencoder.

Every model maps integer sub-pixels x [B, C, H, W] in [0, levels) to logits
[B, levels, C, H, W], so `F.cross_entropy(logits, x)` is the negative log-likelihood.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig
from .layers import (GatedLayer, MaskedConv2d, OutputHead, channel_groups, embed, embed_table,
                     group_mask)


class Providers:
    """What the models use but higher layers implement, registered when those layers are
    imported (pixelcnn/__init__ imports them all), so that imports run one way (DESIGN.md §5):

    fused_forward(model, u, cond) -> logits   by pixelcnn.kernels, for backend="triton"
    check_fused(what, device, dtype, instead) by pixelcnn.kernels: raises unless it can run
    sample(model, n, size, **kwargs)           by pixelcnn.sampling, for reconstruct()
    """
    fused_forward = None
    check_fused = None
    sample = None


PROVIDERS = Providers()


class PixelCNNBase(nn.Module):
    """What every model shares: input checks, the [-1, 1] input embedding, per-layer
    conditioning. `isinstance(m, PixelCNNBase)`: m is one of this package's models."""

    config: ModelConfig
    kind: str                          # its ModelConfig.model

    def _configure(self, config: Optional[ModelConfig], **fields):
        """self.config: `config` if given (a ModelConfig of this kind), else one of `fields`."""
        if config is None:
            config = ModelConfig(model=self.kind, **fields)
        elif not isinstance(config, ModelConfig) or config.model != self.kind:
            got = f"model={config.model!r}" if isinstance(config, ModelConfig) \
                else type(config).__name__
            raise ValueError(f"config must be a ModelConfig with model={self.kind!r} for a "
                             f"{type(self).__name__}, got {got}")
        self.config = config

    def _init_conditioning(self, per_layer: int):
        cfg = self.config
        width = cfg.layers * per_layer
        self.class_embed = nn.Embedding(cfg.num_classes, width) if cfg.num_classes else None
        if self.class_embed is not None:
            nn.init.normal_(self.class_embed.weight, std=0.1)
        self.cond_proj = nn.Linear(cfg.cond_dim, width, bias=False) if cfg.cond_dim else None

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Integer sub-pixels -> the network's float input in [-1, 1]."""
        return embed(x, self.config.levels, self.dtype)

    def condition(self, y=None, h=None) -> Optional[torch.Tensor]:
        """Per-layer conditioning biases [B, layers, ...] from a class y and/or a vector h."""
        out = None
        if self.class_embed is not None:
            out = self.class_embed(y)
        if self.cond_proj is not None:
            ph = self.cond_proj(h.to(self.dtype))
            out = ph if out is None else out + ph
        return out

    def check_inputs(self, x, y=None, h=None, batch=None, cond_map=None, size=None):
        """Raise a ValueError naming the argument, the expected and the given."""
        if x is not None:
            self.check_x(x)
            batch, size = x.shape[0], tuple(x.shape[2:])
        self.check_y(y, batch)
        if self._needs_h or h is not None:
            self.check_h(h, batch)
        self.check_cond_map(cond_map, batch, size)

    def check_cond_map(self, cond_map, batch, size):
        """cond_map: float [batch, cond_channels, *size] for a model with cond_channels, else
        None."""
        d = self.config.cond_channels
        if not d:
            if cond_map is not None:
                raise ValueError("cond_map was given but this model takes no conditioning map "
                                 "(cond_channels=None)")
            return
        want = [batch, d, *size]
        if cond_map is None:
            raise ValueError(f"cond_map is required: this model is conditioned on a map of "
                             f"{d} channels; pass a float tensor {want} (B, D, H, W)")
        if not isinstance(cond_map, torch.Tensor) or not cond_map.is_floating_point() \
                or list(cond_map.shape) != want:
            got = f"{cond_map.dtype} {list(cond_map.shape)}" \
                if isinstance(cond_map, torch.Tensor) else type(cond_map).__name__
            raise ValueError(f"cond_map must be a float tensor of shape {want} (B, D, H, W: "
                             f"the image's resolution), got {got}")

    def check_x(self, x):
        cfg = self.config
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise ValueError(
                f"x must hold integer sub-pixel values in [0, {cfg.levels}) (e.g. uint8 or "
                f"long), got dtype {x.dtype}; quantise images first, e.g. "
                f"(img * {cfg.levels - 1}).round().long() for floats in [0, 1]")
        if x.dim() != 4 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"x must have shape [B, {cfg.in_channels}, H, W], got {list(x.shape)}")
        if x.numel() and not torch.compiler.is_compiling() and \
                (int(x.min()) < 0 or int(x.max()) >= cfg.levels):   # a graph break: eager only
            raise ValueError(f"x values must lie in [0, {cfg.levels}), got min {int(x.min())} "
                             f"max {int(x.max())}")

    def check_y(self, y, batch):
        n = self.config.num_classes
        if not n:
            if y is not None:
                raise ValueError("y was given but this model is not class-conditional "
                                 "(num_classes=None)")
            return
        if y is None:
            raise ValueError(f"y is required: this model is conditioned on {n} classes; pass an "
                             f"integer tensor of labels [{batch}]")
        if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.dim() != 1 \
                or y.shape[0] != batch:
            got = f"{y.dtype} {list(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"y must be an integer tensor of shape [{batch}], got {got}")
        if y.numel() and not torch.compiler.is_compiling() and \
                (int(y.min()) < 0 or int(y.max()) >= n):
            raise ValueError(f"y values must lie in [0, {n}), got min {int(y.min())} "
                             f"max {int(y.max())}")

    def check_h(self, h, batch):
        d = self.config.cond_dim
        if not d:
            if h is not None:
                raise ValueError("h was given but this model takes no conditioning vector "
                                 "(cond_dim=None)")
            return
        if h is None:
            raise ValueError(f"h is required: this model is conditioned on a vector of size {d};"
                             f" pass a float tensor [{batch}, {d}]")
        if not isinstance(h, torch.Tensor) or not h.is_floating_point() \
                or tuple(h.shape) != (batch, d):
            got = f"{h.dtype} {list(h.shape)}" if isinstance(h, torch.Tensor) else type(h).__name__
            raise ValueError(f"h must be a float tensor of shape [{batch}, {d}], got {got}")

    _needs_h = True

    def forward(self, x, y=None, h=None, cond_map=None):
        """x: long [B, C, H, W] in [0, levels) -> logits [B, levels, C, H, W]. cond_map
        [B, D, H, W]: the location-dependent conditioning of a model with cond_channels."""
        self.check_inputs(x, y, h, cond_map=cond_map)
        if cond_map is None:
            return self.forward_float(self.embed(x), y, h)
        return self.forward_float(self.embed(x), y, h, cond_map.to(self.dtype))


class GatedPixelCNN(PixelCNNBase):
    """Gated PixelCNN: a vertical and a horizontal stack (no blind spot), gated tanh * sigmoid
    units, residual and skip connections, conditioned on a class y and/or a vector h and/or
    a spatial map (cond_map, paper §2.3).

    The input embedding: for images, the scalar 2x / (levels - 1) - 1 (intensities are
    ordered); for discrete codes (a VQ-VAE's), embedding_dim=E: a learned table [levels, E]
    per channel, since codes have no order. Channel c's E features form colour group c, so
    causality across channels holds as for images."""

    kind = "gated"

    def __init__(self, in_channels=3, levels=256, channels=192, layers=15, kernel_size=5,
                 num_classes=None, cond_dim=None, embedding_dim=None, cond_channels=None, *,
                 config: Optional[ModelConfig] = None, backend: str = "torch"):
        super().__init__()
        self.backend = backend
        self._configure(config, in_channels=in_channels, levels=levels, channels=channels,
                        layers=layers, kernel_size=kernel_size, num_classes=num_classes,
                        cond_dim=cond_dim, embedding_dim=embedding_dim,
                        cond_channels=cond_channels)
        cfg = self.config
        groups, E = cfg.in_channels, cfg.embedding_dim
        hidden = channel_groups(cfg.channels, groups)
        # [C, levels, E]: sub-pixel value v of channel c -> its E features
        self.embedding = nn.Parameter(torch.randn(groups, cfg.levels, E)) if E else None
        inputs = torch.arange(groups).repeat_interleave(E or 1)       # input features' groups
        self.layers = nn.ModuleList(
            GatedLayer(inputs if i == 0 else hidden, cfg.channels, cfg.kernel_size, groups,
                       first=(i == 0), map_channels=cfg.cond_channels)
            for i in range(cfg.layers))
        self.head = OutputHead(cfg.channels, cfg.in_channels, cfg.levels)
        self._init_conditioning(per_layer=2 * 2 * cfg.channels)   # vertical, horizontal
        # The weights in the fused samplers' layout, (parameter versions, PackedGated): kept by
        # pixelcnn.packing.packed(), which re-packs when a parameter has changed.
        self.packed_weights = None
        # Weights and activations channels-last (NHWC): oneDNN on CPUs runs these convolutions
        # 2-3x faster that way (measured here on a training step), and so do GPU tensor cores.
        self.to(memory_format=torch.channels_last)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Integer sub-pixels [B, C, H, W] -> the network's input: [B, C, H, W] in [-1, 1]
        (scalar), or [B, C * E, H, W] rows of the learned table (embedding_dim=E)."""
        if self.embedding is None:
            return super().embed(x)
        return embed_table(x, self.embedding)

    def condition(self, y=None, h=None):
        """[B, layers, 2 (vertical, horizontal), 2 * channels] or None."""
        out = super().condition(y, h)
        return None if out is None else out.view(out.shape[0], self.config.layers, 2, -1)

    BACKENDS = ("torch", "triton", "auto")

    @property
    def backend(self) -> str:
        """"torch" (the PyTorch layers; trains), "triton" (fused kernels; inference only) or
        "auto" (triton for inference on a GPU, torch otherwise)."""
        return self._backend

    @backend.setter
    def backend(self, value: str):
        if not isinstance(value, str) or value not in self.BACKENDS:
            raise ValueError(f"backend must be one of {self.BACKENDS}, got {value!r}")
        self._backend = value

    def _fused(self, u) -> bool:
        """Whether this forward pass runs on the fused kernels; for backend='triton' a
        ValueError when it cannot: the kernels first, then the device and dtype, then autograd."""
        needs_grad = torch.is_grad_enabled() and (
            u.requires_grad or any(p.requires_grad for p in self.parameters()))
        if self.backend == "triton":
            if PROVIDERS.fused_forward is None:
                raise ValueError("backend='triton' needs pixelcnn.kernels, which is missing: "
                                 "install the package (pip install -e .), or use "
                                 "backend='torch'")
            PROVIDERS.check_fused("backend='triton'", u.device, u.dtype,
                                  "backend='torch' (or 'auto')")
            if needs_grad:
                raise ValueError("backend='triton' runs inference only: wrap the call in "
                                 "torch.no_grad(), or use backend='torch' (or 'auto') to train")
            return True
        plain = self.config.embedding_dim is None and self.config.cond_channels is None
        if self.backend == "triton" and not plain:
            raise ValueError("backend='triton' (the fused full forward) takes neither "
                             "embedding_dim nor cond_channels models: use backend='torch' "
                             "(the samplers support them)")
        return (self.backend == "auto" and PROVIDERS.fused_forward is not None and u.is_cuda
                and not needs_grad and u.dtype in (torch.float32, torch.bfloat16) and plain)

    def forward_float(self, u, y=None, h=None, cond_map=None):
        """u: the embedded image (see `embed`) -> logits [B, levels, C, H, W]."""
        cond = self.condition(y, h)
        if self._fused(u):
            return PROVIDERS.fused_forward(self, u, cond)
        v = hz = u.contiguous(memory_format=torch.channels_last)
        skip = 0
        for i, layer in enumerate(self.layers):
            v, hz, s = layer(v, hz, None if cond is None else cond[:, i], cond_map)
            skip = skip + s
        return self.head(skip)


class PixelCNN(PixelCNNBase):
    """The original PixelCNN: a k x k mask A convolution, then residual k x k mask B
    convolutions, then the output head. Its receptive field has the blind spot that the
    gated model removes."""

    kind = "pixelcnn"

    def __init__(self, in_channels=3, levels=256, channels=192, layers=15, kernel_size=5,
                 num_classes=None, cond_dim=None, *, config: Optional[ModelConfig] = None):
        super().__init__()
        self._configure(config, in_channels=in_channels, levels=levels, channels=channels,
                        layers=layers, kernel_size=kernel_size, num_classes=num_classes,
                        cond_dim=cond_dim)
        cfg = self.config
        hidden = channel_groups(cfg.channels, cfg.in_channels)
        k = cfg.kernel_size
        self.convs = nn.ModuleList(
            MaskedConv2d(cfg.in_channels if i == 0 else cfg.channels, cfg.channels, k,
                         spatial_mask(k, torch.arange(cfg.in_channels) if i == 0 else hidden,
                                      hidden, "A" if i == 0 else "B"))
            for i in range(cfg.layers))
        self.head = OutputHead(cfg.channels, cfg.in_channels, cfg.levels)
        self._init_conditioning(per_layer=cfg.channels)
        self.to(memory_format=torch.channels_last)                # as GatedPixelCNN

    def forward_float(self, u, y=None, h=None):
        cond = self.condition(y, h)
        if cond is not None:
            cond = cond.view(cond.shape[0], self.config.layers, -1, 1, 1)
        p = self.config.kernel_size // 2
        x = u.contiguous(memory_format=torch.channels_last)
        for i, conv in enumerate(self.convs):
            out = conv(F.pad(x if i == 0 else F.relu(x), (p, p, p, p)))
            if cond is not None:
                out = out + cond[:, i]
            x = out if i == 0 else x + out
        return self.head(x)


def spatial_mask(k: int, in_groups, out_groups, kind: str) -> torch.Tensor:
    """[out, in, k, k] mask of a masked convolution: rows above, columns left in the centre
    row, and the centre tap by colour group."""
    mask = torch.zeros(len(out_groups), len(in_groups), k, k)
    c = k // 2
    mask[:, :, :c] = 1
    mask[:, :, c, :c] = 1
    mask[:, :, c, c] = group_mask(out_groups, in_groups, kind)
    return mask


class Encoder(nn.Module):
    """Convolutional encoder of the PixelCNN autoencoder: image -> code h [B, cond_dim]."""

    def __init__(self, in_channels: int, cond_dim: int, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(width, width, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(width, width, 3, 1, 1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(width * 16, cond_dim))

    def forward(self, u):
        return self.net(u)


class PixelCNNAutoencoder(PixelCNNBase):
    """PixelCNN autoencoder (paper §3.4): an encoder maps the image to a code h, and a Gated
    PixelCNN decoder models the image given h; trained end to end on the NLL."""

    kind = "autoencoder"
    _needs_h = False   # h comes from the encoder

    def __init__(self, in_channels=3, levels=256, channels=192, layers=15, kernel_size=5,
                 num_classes=None, cond_dim=100, *, config: Optional[ModelConfig] = None):
        super().__init__()
        self._configure(config, in_channels=in_channels, levels=levels, channels=channels,
                        layers=layers, kernel_size=kernel_size, num_classes=num_classes,
                        cond_dim=cond_dim)
        self.encoder = Encoder(self.config.in_channels, self.config.cond_dim)
        self.decoder = GatedPixelCNN(config=self.config.replace(model="gated"))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: long [B, C, H, W] -> the code h [B, cond_dim]."""
        self.check_x(x)
        return self.encoder(self.embed(x))

    def forward_float(self, u, y=None, h=None):
        return self.decoder.forward_float(u, y, self.encoder(u) if h is None else h)

    def reconstruct(self, x, y=None, **sample_kwargs) -> torch.Tensor:
        """Sample images from the decoder given the code of x (paper Fig. 6), with
        pixelcnn.sample's arguments (method, generator, ...)."""
        with torch.no_grad():
            h = self.encode(x)                 # checks x
        return PROVIDERS.sample(self.decoder, x.shape[0], tuple(x.shape[-2:]), y=y, h=h, **sample_kwargs)


MODELS = {"gated": GatedPixelCNN, "pixelcnn": PixelCNN, "autoencoder": PixelCNNAutoencoder}


def build(config: ModelConfig) -> nn.Module:
    """The model a config describes, freshly initialised."""
    if not isinstance(config, ModelConfig):
        raise ValueError(f"config must be a ModelConfig (e.g. pixelcnn.preset('small', "
                         f"in_channels=1, levels=2), or ModelConfig.from_dict(d)), got "
                         f"{type(config).__name__}")
    return MODELS[config.model](config=config)
