"""``VGGish``: Google's audio embedding network as an :class:`~audioembed.nn.Module`.

Layer names mirror the TF checkpoint's scopes (``vggish/conv3/conv3_1`` → ``conv3_1``), so the state-dict
keys are ``params.VARIABLES[i].key`` and the checkpoint's own names are accepted too (a load pre-hook
renames them). The computation is the reference's (tensorflow/models ``vggish_slim.py``): NHWC, 3×3 SAME
convs with a ReLU each, 2×2 SAME max-pools, NHWC flatten, ReLU after fc1_1 and fc1_2, and **no activation
after fc2** — the embedding is pre-activation (the PyTorch ports' extra ReLU is a known deviation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from audioembed.errors import InvalidInputError, ShapeError
from audioembed.nn import Conv2d, Flatten, Linear, MaxPool2d, Module, Tensor
from audioembed.nn.functional import relu
from audioembed.vggish import params
from audioembed.vggish.fast import FastForward
from audioembed.vggish.tensor_forward import FrozenConvStack, tensor_forward

# Shape of the conv stack's output for one example: 96×64 halved by four 2×2 pools, 512 channels.
FEATURES_SHAPE = (params.NUM_FRAMES // 16, params.NUM_BANDS // 16, 512)


class VGGish(Module):
    """The VGGish network: log-mel examples ``[N, 96, 64]`` → raw embeddings ``[N, 128]``.

    Freshly built it holds random initial weights; load real (or synthetic) ones with
    :meth:`load_state_dict`, under module keys (``"conv1.weight"``) or TF names
    (``"vggish/conv1/weights"``), in TF layouts (conv HWIO, dense ``[in, out]``). ``forward`` mutates no
    state, so one model may serve several threads at once.
    """

    def __init__(self, *, initialize: bool = True) -> None:
        super().__init__()
        init = {"initialize": initialize}  # False: zeros, for a model whose weights are loaded next
        self.conv1 = Conv2d(1, 64, 3, **init)
        self.pool1 = MaxPool2d(2, 2, padding="same")
        self.conv2 = Conv2d(64, 128, 3, **init)
        self.pool2 = MaxPool2d(2, 2, padding="same")
        self.conv3_1 = Conv2d(128, 256, 3, **init)
        self.conv3_2 = Conv2d(256, 256, 3, **init)
        self.pool3 = MaxPool2d(2, 2, padding="same")
        self.conv4_1 = Conv2d(256, 512, 3, **init)
        self.conv4_2 = Conv2d(512, 512, 3, **init)
        self.pool4 = MaxPool2d(2, 2, padding="same")
        self.flatten = Flatten()
        self.fc1_1 = Linear(int(np.prod(FEATURES_SHAPE)), 4096, **init)
        self.fc1_2 = Linear(4096, 4096, **init)
        self.fc2 = Linear(4096, params.EMBEDDING_SIZE, **init)
        self.register_load_state_dict_pre_hook(_rename_tf_names)
        # Fused Winograd/dense plans, used in eval mode when no replaced layer has hooks (see vggish.fast).
        self._fast = FastForward()
        self._frozen_conv = FrozenConvStack()  # the conv stack's fused plan while training only the top

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Embed a batch of log-mel examples.

        Parameters
        ----------
        x : np.ndarray [shape=(N, 96, 64), floating]
            Log-mel examples (frames × bands). Cast to the model's dtype (float32 unless converted), as the
            reference feeds its float64 features into a float32 graph. N may be 0.

        Returns
        -------
        embeddings : np.ndarray [shape=(N, 128), float32]
            Raw (pre-activation) embeddings, before PCA and quantization.

        Given a :class:`~audioembed.nn.Tensor` the result is a Tensor, recorded for backward when grad
        mode is on and the input or a parameter requires grad (see :mod:`audioembed.vggish.tensor_forward`).
        """
        x = self._check_input(x)
        if isinstance(x, Tensor):
            return tensor_forward(self, x)
        if FastForward.applies(self):
            conv, dense = self._fast.plans(self, x.shape[1:])
            features = conv(x).reshape(x.shape[0], int(np.prod(FEATURES_SHAPE)))  # [N, 12288], NHWC order
            return dense(features)  # [N, 128]
        x = x[:, :, :, np.newaxis]  # [N, 96, 64, 1], NHWC with one channel
        x = self._features(x)  # [N, 6, 4, 512]
        x = self.flatten(x)  # [N, 12288], NHWC order: the row order of fc1_1's weight
        x = relu(self.fc1_1(x))  # [N, 4096]
        x = relu(self.fc1_2(x))  # [N, 4096]
        return self.fc2(x)  # [N, 128], no activation: the embedding is pre-activation

    def _features(self, x: np.ndarray) -> np.ndarray:
        """The conv stack, ``[N, 96, 64, 1]`` → ``[N, 6, 4, 512]``.

        One method on purpose: a fused engine may replace it as a whole when ``has_forward_hooks()`` is
        False (with hooks registered, each layer must run through its own ``__call__``).
        """
        x = self.pool1(relu(self.conv1(x)))  # [N, 48, 32, 64]
        x = self.pool2(relu(self.conv2(x)))  # [N, 24, 16, 128]
        x = relu(self.conv3_2(relu(self.conv3_1(x))))
        x = self.pool3(x)  # [N, 12, 8, 256]
        x = relu(self.conv4_2(relu(self.conv4_1(x))))
        return self.pool4(x)  # [N, 6, 4, 512]

    def invalidate_fast_path(self) -> None:
        """Drop the cached fused plans: needed only after writing into parameter arrays in place yourself.

        Optimizer steps need no call: they record their writes (:func:`audioembed.nn.inplace.mark_modified`)
        and the plans rebuild on the next eval-mode forward.
        """
        self._fast.invalidate()
        self._frozen_conv.invalidate()

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> tuple[list[str], list[str]]:
        self._fast.invalidate()  # frees the plans' copies of the old weights before the new ones arrive
        self._frozen_conv.invalidate()
        return super().load_state_dict(state_dict, strict)

    def _apply(self, fn: Callable[[np.ndarray], np.ndarray]) -> Module:
        self._fast.invalidate()
        self._frozen_conv.invalidate()
        return super()._apply(fn)

    def _check_input(self, x: Any) -> np.ndarray | Tensor:
        x = x if isinstance(x, Tensor) else np.asarray(x)
        if x.ndim != 3 or x.shape[1:] != (params.NUM_FRAMES, params.NUM_BANDS):
            raise ShapeError(
                f"VGGish expects log-mel examples of shape [N, {params.NUM_FRAMES}, {params.NUM_BANDS}], "
                f"got shape {x.shape}"
            )
        if not np.issubdtype(x.dtype, np.floating):
            raise InvalidInputError(f"VGGish expects floating-point log-mel examples, got dtype {x.dtype}")
        dtype = self.conv1.weight.dtype
        return x.astype(dtype) if isinstance(x, Tensor) else x.astype(dtype, copy=False)


def _rename_tf_names(module: Module, state: dict[str, Any], prefix: str) -> None:
    """Load pre-hook: rename the checkpoint's TF names (``vggish/conv1/weights``) to module keys in place.

    A TF name whose module key is also present is left alone, so the load reports it as unexpected
    instead of silently picking one of the two.
    """
    for key in [k for k in state if k.startswith(prefix)]:
        variable = params.VARIABLES_BY_TF_NAME.get(key[len(prefix) :])
        if variable is not None and prefix + variable.key not in state:
            state[prefix + variable.key] = state.pop(key)
