"""The package version (one place: pixelcnn/__init__ and checkpoints read it)."""
__version__ = "0.1.0"
