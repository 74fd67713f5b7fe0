"""pixelcnn: Gated PixelCNN (van den Oord et al. 2016) with exact fast samplers."""
from .version import __version__

from .config import ModelConfig, PRESETS, preset
from .models import GatedPixelCNN, PixelCNN, PixelCNNAutoencoder, build
from .likelihood import bits_per_dim
from .checkpoint import save, load
from .sampling import sample

__all__ = ["ModelConfig", "PRESETS", "preset", "GatedPixelCNN", "PixelCNN",
           "PixelCNNAutoencoder", "build", "bits_per_dim", "save", "load", "sample"]
