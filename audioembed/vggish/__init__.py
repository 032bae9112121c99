"""The VGGish model: the network, the postprocessor, and (from :mod:`.weights`) loaders for its files."""

from audioembed.vggish import params
from audioembed.vggish.model import VGGish
from audioembed.vggish.postprocess import Postprocessor

__all__ = ["Postprocessor", "VGGish", "params"]

# --- Weights loaders (branch `weights`): add the imports and __all__ entries below this line. -------------
from audioembed.vggish import weights
from audioembed.vggish.weights.loaders import load_postprocessor, load_vggish

__all__ += ["load_postprocessor", "load_vggish", "weights"]

# --- The model registry entry (issue 10): importing the package registers "vggish". -----------------------
from audioembed.vggish import factory  # noqa: E402

__all__ += ["factory"]
