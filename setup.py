"""Installs `pixelcnn`, with the repository's kernels/ folder as `pixelcnn.kernels` (a
top-level `kernels` would collide with an existing PyPI package), and builds the optional
native CPU sampler (csrc/, CMakeLists.txt) into pixelcnn/sampling/ when CMake, a compiler and
torch are at hand. PIXELCNN_BUILD_NATIVE=1: a failed native build fails the install; =0: skip
it; unset: try, and install without it (with a warning) if it fails."""
import os
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py


def build_native(out_dir: str):
    """Configure and build csrc/ with CMake; libpixelcnn_native.so lands in out_dir."""
    if shutil.which("cmake") is None:
        raise RuntimeError("cmake was not found on PATH")
    # torch's CMake files, from this interpreter outside pip's isolated build environment
    # (which hides the installed torch by PYTHONPATH)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    prefix = subprocess.check_output(
        [sys.executable, "-c", "import torch; print(torch.utils.cmake_prefix_path)"],
        env=env, text=True).strip()
    root = os.path.dirname(os.path.abspath(__file__))
    build = os.path.join(root, "build", "native-setup")
    subprocess.check_call(["cmake", "-S", root, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                           f"-DCMAKE_PREFIX_PATH={prefix}",
                           f"-DPIXELCNN_NATIVE_DIR={os.path.abspath(out_dir)}"])
    subprocess.check_call(["cmake", "--build", build, "-j", str(os.cpu_count() or 1)])


class BuildPyWithNative(build_py):
    def run(self):
        super().run()
        mode = os.environ.get("PIXELCNN_BUILD_NATIVE", "")
        if mode == "0":
            return
        package = os.path.dirname(os.path.abspath(__file__)) if self.editable_mode \
            else self.build_lib
        out = os.path.join(package, "pixelcnn", "sampling")
        try:
            build_native(out)
        except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
            if mode == "1":
                raise
            print(f"WARNING: pixelcnn's native CPU sampler (method='native') was not built: {e}."
                  f" The package works without it; to build it see "
                  f"pixelcnn/sampling/native.py (BUILD_HINT).", file=sys.stderr)


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
    cmdclass={"build_py": BuildPyWithNative},
)
