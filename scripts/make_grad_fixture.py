"""Write ``tests/fixtures/model/vggish_grad_reference.npz``: VGGish gradients computed by PyTorch (dev-only).

An independent reference for the autograd of ``audioembed.nn``: the whole VGGish built the PyTorch way
(``scripts/make_model_fixture.py``'s ``TorchVGGish``: NCHW convolutions, NHWC flatten, no ReLU after fc2),
with the deterministic He-scaled weights of ``tests/vggish/synthetic_vggish.py``, plus a small head
(``Linear(128, 10)`` on ``ReLU(embedding)``, weights from :func:`head_weights`), in float64. The loss is the
mean cross-entropy of the head's logits against fixed targets, for a batch of two seeded log-mel-like
examples.

The full gradients (72 M numbers) would be ~290 MB even in float32, so the fixture stores, per parameter:
every entry when it has at most ``FULL_MAX`` of them (biases, the head), else ``SAMPLES`` entries at
seeded flat indices plus the gradient's sum, sum of absolute values and L2 norm over all entries. The
input's gradient is stored whole. Arrays: ``inputs`` float32 [2, 96, 64], ``targets`` int64 [2], ``loss``,
``input_grad`` float64 [2, 96, 64], and for each parameter key ``K`` (``conv1.weight``, ...,
``head.weight``): ``K/indices`` (absent when full), ``K/values``, ``K/stats`` = (sum, abs-sum, L2).

How it was run (from the repository root, torch 2.13.0 CPU build, ``pip install torch==2.13.0``; torch is
not a dependency of the project or its tests)::

    python scripts/make_grad_fixture.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "vggish"), str(ROOT / "scripts")]

from make_model_fixture import CONVS, TorchVGGish, load_tf_layout  # noqa: E402
from synthetic_vggish import FIXTURE_SEED, grad_fixture_batch, he_scaled_weights, head_weights  # noqa: E402

OUTPUT = ROOT / "tests" / "fixtures" / "model" / "vggish_grad_reference.npz"
FULL_MAX = 4096  # parameters with at most this many entries are stored whole
SAMPLES = 3000  # sampled entries per larger parameter
INDEX_SEED = 99  # seed of the sampled flat indices


def main() -> None:
    torch.set_num_threads(2)
    model = TorchVGGish()
    load_tf_layout(model, he_scaled_weights(FIXTURE_SEED))
    head = nn.Linear(128, 10)
    head_w, head_b = head_weights(FIXTURE_SEED)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(np.ascontiguousarray(head_w.T)))  # [in, out] -> [out, in]
        head.bias.copy_(torch.from_numpy(head_b))
    model.double()
    head.double()
    inputs, targets = grad_fixture_batch()
    x = torch.from_numpy(inputs).double().requires_grad_(True)
    _, embedding = model(x)
    logits = head(torch.relu(embedding))
    loss = nn.functional.cross_entropy(logits, torch.from_numpy(targets))
    loss.backward()

    # Gradients back in TF layouts under the audioembed module keys.
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    modules = dict(zip(CONVS, convs, strict=True)) | {
        "fc1_1": model.fc1_1,
        "fc1_2": model.fc1_2,
        "fc2": model.fc2,
    }
    modules["head"] = head
    grads: dict[str, np.ndarray] = {}
    for name, module in modules.items():
        weight = module.weight.grad.numpy()
        grads[f"{name}.weight"] = (
            weight.transpose(2, 3, 1, 0) if weight.ndim == 4 else weight.T
        )  # OIHW -> HWIO
        grads[f"{name}.bias"] = module.bias.grad.numpy()

    arrays: dict[str, np.ndarray] = {
        "inputs": inputs,
        "targets": targets,
        "loss": np.float64(loss.item()),
        "input_grad": x.grad.numpy(),
        "seed": np.int64(FIXTURE_SEED),
    }
    rng = np.random.default_rng(INDEX_SEED)
    for key, grad in grads.items():
        flat = np.ascontiguousarray(grad).reshape(-1)
        if flat.size > FULL_MAX:
            indices = np.sort(rng.choice(flat.size, SAMPLES, replace=False))
            arrays[f"{key}/indices"] = indices.astype(np.int64)
            arrays[f"{key}/values"] = flat[indices]
        else:
            arrays[f"{key}/values"] = flat
        arrays[f"{key}/stats"] = np.array([flat.sum(), np.abs(flat).sum(), np.sqrt((flat**2).sum())])
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUTPUT, **arrays)
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({OUTPUT.stat().st_size} bytes); loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
