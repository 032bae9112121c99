"""Backward through every layer and container, and the rule that keeps inference free."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_gradients

from audioembed.errors import ShapeError
from audioembed.nn import (
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    Module,
    ModuleDict,
    ModuleList,
    ReLU,
    Sequential,
    Tensor,
    no_grad,
)


def small_net(rng: np.random.Generator) -> Sequential:
    net = Sequential(
        Conv2d(2, 3, 3, rng=rng),
        ReLU(),
        MaxPool2d(2, padding="same"),
        Conv2d(3, 4, (2, 3), stride=(2, 1), padding="valid", rng=rng),
        ReLU(),
        Conv2d(4, 2, 1, padding=1, rng=rng),
        Flatten(),
        Linear(4 * 3 * 2, 3, rng=rng),  # [N, 4, 3, 2] flattened
    )
    for p in net.parameters():  # non-zero biases, so every bias gradient path is exercised
        p.data = p.data + 0.1
    return net.double()


def test_every_parameter_of_a_layer_stack_gets_its_finite_difference_gradient() -> None:
    rng = np.random.default_rng(5)
    net = small_net(rng)
    x = rng.standard_normal((2, 7, 5, 2))
    named = dict(net.named_parameters())
    out = net(Tensor(x))
    weights = rng.standard_normal(out.shape)
    (out * weights).sum().backward()
    assert all(p.grad is not None for p in named.values())

    def loss() -> float:
        return float((net(x) * weights).sum())  # the ndarray path: the reference forward

    from gradcheck import numeric_gradient

    for name, p in named.items():
        indices, numeric = numeric_gradient(loss, p.data, rng, 20)
        np.testing.assert_allclose(p.grad.reshape(-1)[indices], numeric, rtol=1e-5, atol=1e-8, err_msg=name)
    check_gradients(net, x, max_entries=40)  # and the input


def test_module_list_and_module_dict_in_a_custom_module() -> None:
    class Branches(Module):
        def __init__(self) -> None:
            super().__init__()
            rng = np.random.default_rng(6)
            self.blocks = ModuleList([Linear(4, 4, rng=rng), Linear(4, 4, rng=rng)])
            self.heads = ModuleDict({"a": Linear(4, 2, rng=rng), "b": Linear(4, 2, rng=rng)})

        def forward(self, x):
            for block in self.blocks:
                x = block(x).relu()
            return self.heads["a"](x) * self.heads["b"](x)

    net = Branches().double()
    x = np.random.default_rng(7).standard_normal((3, 4))
    check_gradients(net, x)
    out = net(Tensor(x))
    out.sum().backward()
    assert all(p.grad is not None and p.grad.any() for p in net.parameters())


def test_inference_path_returns_arrays_and_records_nothing_whatever_requires_grad_says() -> None:
    net = small_net(np.random.default_rng(8))
    x = np.random.default_rng(9).standard_normal((1, 7, 5, 2))
    y = net(x)
    assert type(y) is np.ndarray  # ndarray in → ndarray out, parameters requiring grad or not
    assert all(p.grad is None for p in net.parameters())
    t = net(Tensor(x))
    assert isinstance(t, Tensor) and t.grad_fn is not None
    np.testing.assert_array_equal(t.data, y)
    net.requires_grad_(False)
    assert net(Tensor(x)).grad_fn is None  # nothing requires grad: a Tensor, nothing recorded
    net.requires_grad_(True)
    with no_grad():
        assert net(Tensor(x)).grad_fn is None


def test_frozen_layers_get_no_gradient_and_keep_nothing_for_it() -> None:
    net = small_net(np.random.default_rng(10))
    net[0].requires_grad_(False)
    x = Tensor(np.random.default_rng(11).standard_normal((1, 7, 5, 2)))
    out = net(x)
    out.sum().backward()
    assert net[0].weight.grad is None and net[0].bias.grad is None
    assert net[3].weight.grad is not None and x.grad is None


def test_layers_check_tensor_inputs_like_arrays() -> None:
    with pytest.raises(ShapeError, match=r"expects input of shape \[N, H, W, 2\], got shape \(1, 4, 4, 3\)"):
        Conv2d(2, 3, 3)(Tensor(np.zeros((1, 4, 4, 3), np.float32)))
    with pytest.raises(ShapeError, match=r"\[\.\.\., 4\], got shape \(2, 5\)"):
        Linear(4, 1)(Tensor(np.zeros((2, 5), np.float32)))
