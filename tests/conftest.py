"""Test setup: Triton's interpreter when there is no GPU, set before anything imports
pixelcnn (pytest loads this file before the test modules). Shared helpers live in helpers.py,
the on-disk data sets in datafixtures.py."""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
