"""Gradients of the whole VGGish (+ a small head) against PyTorch 2.13, and the Tensor paths of the model.

The fixture ``tests/fixtures/model/vggish_grad_reference.npz`` was made by ``scripts/make_grad_fixture.py``
(torch 2.13.0, float64) from the seeded weights of ``synthetic_vggish.py``, regenerated here without torch.
It holds every entry of the small gradients (biases, the head, the input) and, for each large weight
gradient, 3000 entries at seeded flat indices plus its sum, absolute sum and L2 norm over all entries
(the full gradients would be ~290 MB): each is checked within 1e-5 relative.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gradcheck import check_gradients
from synthetic_vggish import FIXTURE_SEED, grad_fixture_batch, he_scaled_weights, head_weights

from audioembed.errors import GradientError
from audioembed.nn import Linear, Tensor, functional
from audioembed.vggish import VGGish, params
from audioembed.vggish.postprocess import Postprocessor

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "model" / "vggish_grad_reference.npz"


def build(dtype: type) -> tuple[VGGish, Linear]:
    model = VGGish(initialize=False)
    model.load_state_dict(he_scaled_weights(FIXTURE_SEED))
    head = Linear(params.EMBEDDING_SIZE, 10, initialize=False)
    head.weight.data, head.bias.data = head_weights(FIXTURE_SEED)
    return model.to(dtype), head.to(dtype)


def fixture_loss(model: VGGish, head: Linear, x: Tensor, targets: np.ndarray) -> Tensor:
    """Mean cross-entropy of ``head(relu(model(x)))``, as the fixture script computes it in torch."""
    logits = head(model(x).relu())  # [2, 10]
    return -functional.log_softmax(logits)[np.arange(len(targets)), targets].mean()


def compare_to_reference(reference: dict, key: str, grad: np.ndarray, tolerance: float) -> float:
    """Check ``grad`` against the fixture's entries and statistics for ``key``; return the worst error."""
    flat = grad.reshape(-1).astype(np.float64)
    values = reference[f"{key}/values"]
    indices = reference.get(f"{key}/indices")
    ours = flat if indices is None else flat[indices]
    scale = np.abs(values).max()
    worst = float(np.abs(ours - values).max() / scale)
    total, abs_total, norm = reference[f"{key}/stats"]
    worst = max(worst, abs(flat.sum() - total) / abs_total, abs(np.abs(flat).sum() - abs_total) / abs_total)
    worst = max(worst, abs(np.sqrt((flat**2).sum()) - norm) / norm)
    assert worst <= tolerance, f"{key}: relative error {worst:.2e} > {tolerance:.0e}"
    return worst


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return dict(data)


def run_against_reference(reference: dict, dtype: type, tolerance: float) -> None:
    model, head = build(dtype)
    inputs, targets = grad_fixture_batch()
    np.testing.assert_array_equal(inputs, reference["inputs"])
    x = Tensor(inputs.astype(dtype), requires_grad=True)
    loss = fixture_loss(model, head, x, targets)
    np.testing.assert_allclose(loss.item(), reference["loss"], rtol=tolerance)
    loss.backward()
    named = dict(model.named_parameters()) | {f"head.{k}": p for k, p in head.named_parameters()}
    assert len(named) == 20 and all(p.grad is not None for p in named.values())
    for key, p in named.items():
        compare_to_reference(reference, key, p.grad, tolerance)
    scale = np.abs(reference["input_grad"]).max()
    assert np.abs(x.grad - reference["input_grad"]).max() <= tolerance * scale


@pytest.mark.slow
def test_every_gradient_matches_pytorch_in_float64(reference) -> None:
    run_against_reference(reference, np.float64, 1e-5)


@pytest.mark.slow
def test_the_float32_engine_gradients_stay_close_to_pytorch(reference) -> None:
    # The float32 training engine (Winograd forward, input and weight gradients, two workers) measured
    # 4e-6 at worst against torch's float64; 2e-5 leaves room for another BLAS or worker count.
    run_against_reference(reference, np.float32, 2e-5)


@pytest.fixture(scope="module")
def model32() -> VGGish:
    return build(np.float32)[0]


def test_a_frozen_model_given_a_plain_tensor_uses_the_fused_engine(model32) -> None:
    model32.eval().requires_grad_(False)
    x = grad_fixture_batch()[0]
    out = model32(Tensor(x))
    assert isinstance(out, Tensor) and out.grad_fn is None and model32._fast.built
    np.testing.assert_array_equal(out.data, model32(x))


@pytest.mark.slow
def test_training_only_the_top_runs_the_conv_stack_fused_with_the_same_gradients(model32) -> None:
    model32.requires_grad_(False)
    for name in ("fc1_1", "fc1_2", "fc2"):
        getattr(model32, name).requires_grad_(True)
    x = Tensor(grad_fixture_batch()[0])
    seed = np.random.default_rng(0).standard_normal((2, 128)).astype(np.float32)
    model32.zero_grad()
    model32(x).backward(seed)
    assert model32._frozen_conv._plan is not None
    fused = {k: p.grad.copy() for k, p in model32.named_parameters() if p.grad is not None}
    assert sorted(fused) == sorted(f"{n}.{w}" for n in ("fc1_1", "fc1_2", "fc2") for w in ("weight", "bias"))
    handle = model32.conv1.register_forward_hook(lambda *args: None)  # a hook forces the layer-by-layer path
    model32.zero_grad()
    model32(x).backward(seed)
    handle.remove()
    for key, grad in fused.items():
        layered = dict(model32.named_parameters())[key].grad
        np.testing.assert_allclose(grad, layered, rtol=0, atol=1e-4 * np.abs(layered).max(), err_msg=key)
    model32.requires_grad_(True)


def test_pca_projection_is_differentiable_and_quantization_refuses_a_graph() -> None:
    rng = np.random.default_rng(1)
    post = Postprocessor(rng.standard_normal((128, 128)), rng.standard_normal(128))
    check_gradients(post.pca_applied, rng.standard_normal((3, 128)))
    embeddings = rng.standard_normal((2, 128)).astype(np.float32)
    with pytest.raises(GradientError, match="quantization has no gradient: differentiate pca_applied"):
        post(Tensor(embeddings, requires_grad=True))
    quantized = post(Tensor(embeddings))
    assert isinstance(quantized, Tensor) and quantized.dtype == np.uint8
    np.testing.assert_array_equal(quantized.data, post(embeddings))
    assert isinstance(post.pca_applied(embeddings), np.ndarray)


@pytest.mark.slow
def test_saliency_map_of_a_log_mel_input() -> None:
    """|d score / d input| of one embedding dimension, by Tensor.register_hook on the input and by .grad."""
    model, _ = build(np.float64)
    log_mel = grad_fixture_batch()[0][:1].astype(np.float64)  # [1, 96, 64]
    x = Tensor(log_mel, requires_grad=True)
    captured: list[np.ndarray] = []
    x.register_hook(lambda g: captured.append(g))
    model(x)[0, 7].backward()
    saliency = np.abs(captured[0])  # [1, 96, 64]: how much each time-frequency cell moves the score
    assert saliency.shape == (1, 96, 64) and saliency.max() > 0
    np.testing.assert_array_equal(np.abs(x.grad), saliency)
    peak = np.unravel_index(np.argmax(saliency), saliency.shape)[1:]
    for frame, band in [peak, (40, 20)]:
        up, down = log_mel.copy(), log_mel.copy()
        up[0, frame, band] += 1e-5
        down[0, frame, band] -= 1e-5
        numeric = (model(up)[0, 7] - model(down)[0, 7]) / 2e-5
        np.testing.assert_allclose(x.grad[0, frame, band], numeric, rtol=1e-4, atol=1e-9)
