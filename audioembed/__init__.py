"""audioembed: Google's VGGish audio embeddings, numerically the reference, in Python + NumPy."""

from audioembed._version import __version__

__all__ = ["__version__"]
