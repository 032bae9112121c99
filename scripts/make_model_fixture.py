"""Write ``tests/fixtures/model/vggish_torch_reference.npz``: VGGish outputs computed by PyTorch (dev-only).

An independent reference for ``audioembed.vggish.VGGish``: the network is built the PyTorch way (NCHW
``nn.Conv2d`` with padding 1, ``nn.MaxPool2d(2, 2)``, a transpose to NHWC before flattening, **no ReLU after
fc2**), from the deterministic He-scaled weights of ``tests/vggish/synthetic_vggish.py`` (converted from TF
layouts: conv HWIO → OIHW, dense ``[in, out]`` → ``[out, in]``), and run in float64 so the stored outputs are
the exact arithmetic of those float32 weights. Inputs: the first two log-mel examples of the shared
reference ``speechlike_16k_10s`` plus one seeded random example.

Stored arrays: ``inputs`` float32 [3, 96, 64], ``features`` float32 [3, 6, 4, 512] (after pool4, NHWC),
``embeddings`` float64 [3, 128], ``seed`` (the weights' seed).

How it was run (from the repository root, torch 2.13.0 CPU build installed with
``pip install torch==2.13.0``; torch is not a dependency of the project or its tests)::

    python scripts/make_model_fixture.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "vggish")]

from synthetic_vggish import FIXTURE_SEED, he_scaled_weights  # noqa: E402

OUTPUT = ROOT / "tests" / "fixtures" / "model" / "vggish_torch_reference.npz"
REFERENCE = ROOT / "tests" / "fixtures" / "reference" / "speechlike_16k_10s.reference.npz"
CONVS = ["conv1", "conv2", "conv3_1", "conv3_2", "conv4_1", "conv4_2"]
POOL_AFTER = {"conv1", "conv2", "conv3_2", "conv4_2"}


class TorchVGGish(nn.Module):
    """VGGish in PyTorch's own conventions (NCHW convolutions)."""

    def __init__(self) -> None:
        super().__init__()
        channels = [1, 64, 128, 256, 256, 512, 512]
        layers: list[nn.Module] = []
        for name, c_in, c_out in zip(CONVS, channels[:-1], channels[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
            if name in POOL_AFTER:
                layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.fc1_1, self.fc1_2, self.fc2 = nn.Linear(12288, 4096), nn.Linear(4096, 4096), nn.Linear(4096, 128)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.features(x.unsqueeze(1))  # [N, 1, 96, 64] -> [N, 512, 6, 4]
        features = x.permute(0, 2, 3, 1)  # [N, 6, 4, 512]: NHWC, the flatten order of the TF weights
        x = features.reshape(x.shape[0], -1)  # [N, 12288]
        x = torch.relu(self.fc1_1(x))
        x = torch.relu(self.fc1_2(x))
        return features, self.fc2(x)  # no activation after fc2, as the TF reference


def load_tf_layout(model: TorchVGGish, weights: dict[str, np.ndarray]) -> None:
    """Copy TF-layout arrays into the torch modules, transposing conv and dense kernels."""
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    targets = dict(zip(CONVS, convs, strict=True)) | {
        "fc1_1": model.fc1_1,
        "fc1_2": model.fc1_2,
        "fc2": model.fc2,
    }
    with torch.no_grad():
        for name, module in targets.items():
            weight = weights[f"{name}.weight"]
            # HWIO -> OIHW for convs; [in, out] -> [out, in] for dense layers.
            weight = weight.transpose(3, 2, 0, 1) if weight.ndim == 4 else weight.T
            assert module.weight.shape == weight.shape, name
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            module.bias.copy_(torch.from_numpy(weights[f"{name}.bias"]))


def main() -> None:
    torch.set_num_threads(1)
    model = TorchVGGish()
    load_tf_layout(model, he_scaled_weights(FIXTURE_SEED))
    model.double().eval()
    speech = np.load(REFERENCE)["log_mel"][:2].astype(np.float32)
    noise = np.random.default_rng(7).uniform(-4.6, 3.0, (1, 96, 64)).astype(np.float32)
    inputs = np.concatenate([speech, noise])  # [3, 96, 64]
    with torch.no_grad():
        features, embeddings = model(torch.from_numpy(inputs).double())
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        OUTPUT,
        inputs=inputs,
        features=features.numpy().astype(np.float32),
        embeddings=embeddings.numpy(),
        seed=np.int64(FIXTURE_SEED),
    )
    print(
        f"wrote {OUTPUT.relative_to(ROOT)} ({OUTPUT.stat().st_size} bytes); |embedding| max "
        f"{np.abs(embeddings.numpy()).max():.4f}, negatives {int((embeddings.numpy() < 0).sum())}"
    )


if __name__ == "__main__":
    main()
