"""Samplers."""
def sample(*a, **k):
    raise NotImplementedError
