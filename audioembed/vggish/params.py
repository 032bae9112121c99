"""The reference VGGish model's constants, in one place (tensorflow/models ``research/audioset/vggish``).

Front-end constants (sample rate, STFT and mel parameters, example framing) belong to the audio layer,
which knows nothing about the model; they live in :mod:`audioembed.audio` and are not repeated here.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- Model input and output -------------------------------------------------------------------------
NUM_FRAMES = 96  # log-mel frames per example (0.96 s at a 10 ms hop): the image height
NUM_BANDS = 64  # mel bands per frame: the image width
EMBEDDING_SIZE = 128  # width of the embedding (fc2 output, before and after PCA)

# --- Postprocessing: PCA whitening then 8-bit quantization (vggish_postprocess.py) ---------------------
QUANTIZE_MIN_VAL = -2.0  # PCA outputs are clipped to [min, max] ...
QUANTIZE_MAX_VAL = +2.0
QUANTIZE_SCALE = 255.0 / (QUANTIZE_MAX_VAL - QUANTIZE_MIN_VAL)  # ... then mapped onto 0..255 and truncated
PCA_EIGEN_VECTORS_NAME = "pca_eigen_vectors"  # [128, 128]: rows = output dims, columns = input dims
PCA_MEANS_NAME = "pca_means"  # [128] (the official file may hold (128, 1) or (1, 128))

# --- Official files ------------------------------------------------------------------------------------
CHECKPOINT_URL = "https://storage.googleapis.com/audioset/vggish_model.ckpt"
PCA_PARAMS_URL = "https://storage.googleapis.com/audioset/vggish_pca_params.npz"
TORCH_PORT_WEIGHTS_URL = (
    "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
)
TORCH_PORT_PCA_URL = (
    "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish_pca_params-970ea276.pth"
)


@dataclass(frozen=True)
class Variable:
    """One trainable tensor of VGGish.

    Attributes
    ----------
    key : str
        Its name in :class:`~audioembed.vggish.model.VGGish`'s ``state_dict`` (``"conv3_1.weight"``).
    tf_name : str
        Its name in Google's TF checkpoint (``"vggish/conv3/conv3_1/weights"``): the canonical name in
        every file this project writes.
    shape : tuple of int
        Its shape in TF layout: conv kernels HWIO ``[kh, kw, in, out]``, dense weights ``[in, out]``.
    """

    key: str
    tf_name: str
    shape: tuple[int, ...]


def _layer(key: str, tf_scope: str, weight_shape: tuple[int, ...]) -> tuple[Variable, Variable]:
    return (
        Variable(f"{key}.weight", f"vggish/{tf_scope}/weights", weight_shape),
        Variable(f"{key}.bias", f"vggish/{tf_scope}/biases", (weight_shape[-1],)),
    )


# The 18 tensors, in network order. fc1_1's input is the NHWC flattening of the last pool: 6 * 4 * 512.
VARIABLES: tuple[Variable, ...] = (
    *_layer("conv1", "conv1", (3, 3, 1, 64)),
    *_layer("conv2", "conv2", (3, 3, 64, 128)),
    *_layer("conv3_1", "conv3/conv3_1", (3, 3, 128, 256)),
    *_layer("conv3_2", "conv3/conv3_2", (3, 3, 256, 256)),
    *_layer("conv4_1", "conv4/conv4_1", (3, 3, 256, 512)),
    *_layer("conv4_2", "conv4/conv4_2", (3, 3, 512, 512)),
    *_layer("fc1_1", "fc1/fc1_1", (12288, 4096)),
    *_layer("fc1_2", "fc1/fc1_2", (4096, 4096)),
    *_layer("fc2", "fc2", (4096, EMBEDDING_SIZE)),
)
VARIABLES_BY_TF_NAME = {variable.tf_name: variable for variable in VARIABLES}
VARIABLES_BY_KEY = {variable.key: variable for variable in VARIABLES}
