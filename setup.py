"""Installs `pixelcnn`, with the repository's kernels/ folder as `pixelcnn.kernels` (a
top-level `kernels` would collide with an existing PyPI package)."""
from setuptools import setup

setup(
    name="pixelcnn",
    version="0.1.0",
    description="Gated PixelCNN (van den Oord et al. 2016) with exact, fast samplers",
    python_requires=">=3.10",
    packages=["pixelcnn", "pixelcnn.sampling", "pixelcnn.kernels"],
    package_dir={"pixelcnn": "pixelcnn", "pixelcnn.kernels": "kernels"},
    package_data={"pixelcnn.kernels": ["README.md"]},
    install_requires=["torch>=2.4", "numpy", "pillow", "tqdm",
                      "triton>=3.0; platform_system == 'Linux'"],
    extras_require={"test": ["pytest", "pytest-benchmark"], "plot": ["matplotlib"]},
)
