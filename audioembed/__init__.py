"""audioembed: Google's VGGish audio embeddings, numerically the reference, in Python + NumPy.

``Embedder`` is the one object most users need; the layers it joins are public too:
:mod:`audioembed.audio` (front-end), :mod:`audioembed.vggish` (model, postprocessor, weight files) and
:mod:`audioembed.nn` (the Module framework).
"""

from audioembed._version import __version__
from audioembed.pipeline import Embedder, FailedInput
from audioembed.result import EmbeddingResult, ModelInfo

__all__ = ["Embedder", "EmbeddingResult", "FailedInput", "ModelInfo", "__version__"]
