"""The cached sampler's loop in C++ (csrc/): placeholder until the extension lands."""


def available(model) -> bool:
    return False


def sample_native(job, progress=False):
    raise RuntimeError("method='native' needs the C++ extension, which is not built yet")
