"""The train/eval layers and losses on Tensors: graphs only when asked, gradients, a model that learns."""

from __future__ import annotations

import numpy as np
import pytest
from finite_diff import assert_grad_close, numerical_grad

from audioembed import nn
from audioembed.errors import GradientError


def test_ndarrays_never_record_and_tensors_record_only_when_something_requires_grad() -> None:
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    bn = nn.BatchNorm1d(3)
    assert isinstance(bn(x), np.ndarray)  # parameters require grad, but an ndarray input records nothing
    assert nn.Tensor(x).requires_grad is False
    recorded = bn(nn.Tensor(x))
    assert isinstance(recorded, nn.Tensor) and recorded.grad_fn is not None  # the Parameters require grad
    bn.requires_grad_(False)
    frozen = bn(nn.Tensor(x))
    assert isinstance(frozen, nn.Tensor) and frozen.grad_fn is None
    with nn.no_grad():
        bn.requires_grad_(True)
        before = int(bn.num_batches_tracked)
        assert bn(nn.Tensor(x, requires_grad=True)).grad_fn is None
        assert int(bn.num_batches_tracked) == before + 1  # running statistics still train under no_grad


def test_losses_return_floats_for_arrays_and_tensors_for_tensors() -> None:
    logits = np.array([[1.0, 2.0], [0.5, -1.0]])
    target = np.array([1, 0])
    assert isinstance(nn.functional.cross_entropy(logits, target), float)
    loss = nn.CrossEntropyLoss()(nn.Tensor(logits, requires_grad=True), target)
    assert isinstance(loss, nn.Tensor) and loss.shape == () and loss.grad_fn is not None
    assert loss.item() == pytest.approx(nn.functional.cross_entropy(logits, target))
    per_item = nn.MSELoss(reduction="none")(nn.Tensor(logits), np.zeros((2, 2)))
    assert isinstance(per_item, nn.Tensor) and per_item.shape == (2, 2)


def test_dropout_tensor_backward_uses_the_forward_mask_and_eval_is_the_same_tensor() -> None:
    x = nn.Tensor(np.ones((20, 30)), requires_grad=True)
    drop = nn.Dropout(0.4, rng=3)
    y = drop(x)
    y.backward(np.full((20, 30), 2.0))
    np.testing.assert_array_equal(x.grad, 2.0 * y.data)  # kept: 2 / 0.6, dropped: 0
    assert drop.eval()(x) is x


def test_a_freed_graph_refuses_a_second_backward() -> None:
    x = nn.Tensor(np.random.default_rng(1).standard_normal((3, 4)), requires_grad=True)
    loss = nn.functional.cross_entropy(nn.LayerNorm(4).double()(x), np.array([0, 1, 2]))
    loss.backward()
    with pytest.raises(GradientError):
        loss.backward()


@pytest.mark.parametrize("seed", [0, 1])
def test_a_chain_of_layers_and_a_loss_matches_finite_differences(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, h, w, c = (int(v) for v in rng.integers(2, 4, size=4))
    model = nn.Sequential(nn.BatchNorm2d(c), nn.InstanceNorm2d(c, affine=True), nn.LayerNorm(c)).double()
    for param in model.parameters():
        param.data = rng.standard_normal(param.shape)
    x = rng.standard_normal((n, h, w, c))
    target = rng.integers(0, c, (n, h, w))
    weight = rng.uniform(0.5, 2, c)

    def loss_of(array: np.ndarray) -> float:
        # Fresh running statistics every call: the forward in training updates them.
        model[0].reset_running_stats()
        return nn.functional.cross_entropy(model(array), target, weight, label_smoothing=0.1)

    x_tensor = nn.Tensor(x.copy(), requires_grad=True)
    model[0].reset_running_stats()
    nn.functional.cross_entropy(model(x_tensor), target, weight, label_smoothing=0.1).backward()
    assert_grad_close(x_tensor.grad, numerical_grad(lambda: loss_of(x), x), "input")
    for name, param in model.named_parameters():
        numeric = numerical_grad(lambda: loss_of(x), param.data)
        assert_grad_close(param.grad, numeric, name)


def test_a_small_classifier_with_every_training_layer_learns() -> None:
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((3, 8)) * 3
    labels = rng.integers(0, 3, 240)
    features = (centers[labels] + rng.standard_normal((240, 8))).astype(np.float32)
    model = nn.Sequential(
        nn.Linear(8, 16, rng=rng),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Dropout(0.2, rng=1),
        nn.Linear(16, 3, rng=rng),
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=0.05)
    first = None
    for _ in range(40):
        batch = rng.choice(240, 48, replace=False)
        loss = criterion(model(nn.Tensor(features[batch])), labels[batch])
        first = loss.item() if first is None else first
        model.zero_grad()
        loss.backward()
        for param in model.parameters():
            param.data -= 0.2 * param.grad
    model.eval()
    accuracy = (model(features).argmax(axis=1) == labels).mean()
    assert accuracy > 0.95 and criterion(model(features), labels) < 0.5 * first
