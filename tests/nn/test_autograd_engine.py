"""The graph engine, grad mode, Function, tensor hooks and the typed errors of the autograd contract."""

from __future__ import annotations

import copy
import pickle
import threading

import numpy as np
import pytest

from audioembed.errors import AudioEmbedError, GradientError, InvalidInputError
from audioembed.nn import Function, Linear, Parameter, Tensor, enable_grad, is_grad_enabled, no_grad
from audioembed.nn.autograd import FunctionCtx, set_grad_enabled


# --- accumulation and graph shapes ---------------------------------------------------------------------
def test_a_diamond_graph_sums_both_paths_and_leaves_accumulate_across_backwards() -> None:
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    a = x * 2
    b = x * x
    (a + b).sum().backward()  # d/dx (2x + x²) = 2 + 2x
    np.testing.assert_array_equal(x.grad, [4.0, 6.0, 8.0])
    (x * 3).sum().backward()  # accumulates into .grad, as PyTorch
    np.testing.assert_array_equal(x.grad, [7.0, 9.0, 11.0])


def test_a_tensor_used_by_many_consumers_and_a_long_chain() -> None:
    x = Tensor(np.float64(1.5), requires_grad=True)
    y = x
    for _ in range(3000):  # deep graphs: no recursion in the engine
        y = y * 1.0001
    total = y + x * 0 + x
    total.backward()
    np.testing.assert_allclose(x.grad, 1.0001**3000 + 1.0)


def test_parameters_receive_gradients_in_their_dtype_and_leaf_grad_is_not_aliased() -> None:
    layer = Linear(3, 2)
    x = Tensor(np.ones((4, 3), np.float32))
    out = layer(x)
    assert isinstance(out, Tensor) and out.grad_fn is not None
    gradient = np.ones((4, 2), np.float32)
    out.backward(gradient)
    assert layer.weight.grad.dtype == np.float32 and layer.weight.grad.shape == (3, 2)
    np.testing.assert_array_equal(layer.bias.grad, [4.0, 4.0])
    np.testing.assert_array_equal(gradient, np.ones((4, 2)))  # the caller's array was not reused
    y = Tensor(np.ones(2), requires_grad=True)
    seed = np.ones(2)
    (y + 0).backward(seed)
    y.grad += 1  # .grad is private: the seed gradient is unchanged
    np.testing.assert_array_equal(seed, [1.0, 1.0])


def test_non_leaf_tensors_keep_no_grad_unless_retained() -> None:
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3
    kept = x * 5
    kept.retain_grad()
    (h * kept).sum().backward()
    assert h.grad is None and not h.is_leaf and x.is_leaf
    np.testing.assert_array_equal(kept.grad, h.data)


# --- errors --------------------------------------------------------------------------------------------
def test_backward_of_a_non_scalar_needs_a_gradient_of_its_shape() -> None:
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2
    with pytest.raises(GradientError, match=r"one-element \(scalar\) output, got shape \(2, 3\)"):
        y.backward()
    with pytest.raises(GradientError, match=r"gradient has shape \(3,\), the tensor has shape \(2, 3\)"):
        y.backward(np.ones(3))
    y.backward(np.full((2, 3), 0.5))
    np.testing.assert_array_equal(x.grad, np.ones((2, 3)))
    assert issubclass(GradientError, AudioEmbedError)


def test_a_second_backward_through_a_freed_graph_is_refused_unless_retained() -> None:
    x = Tensor(np.array([2.0]), requires_grad=True)
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()  # the graph was retained: a second pass works and accumulates
    np.testing.assert_array_equal(x.grad, [8.0])
    with pytest.raises(GradientError, match=r"backward through the graph a second time.*retain_graph=True"):
        loss.backward()


def test_backward_of_something_that_does_not_require_grad() -> None:
    with pytest.raises(GradientError, match="does not require grad"):
        Tensor(np.ones(1)).backward()
    with no_grad():
        y = Tensor(np.ones(1), requires_grad=True) * 2
    with pytest.raises(GradientError, match="does not require grad"):
        y.backward()


def test_requires_grad_rules() -> None:
    with pytest.raises(
        InvalidInputError, match="only floating-point tensors can require grad, got dtype int64"
    ):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(TypeError, match="requires_grad must be a bool, got 1"):
        Tensor(np.ones(2), requires_grad=1)
    y = Tensor(np.ones(2), requires_grad=True) * 2
    with pytest.raises(GradientError, match="only be changed on a leaf"):
        y.requires_grad = False
    d = y.detach()
    assert d.is_leaf and not d.requires_grad and d.data is y.data
    assert Tensor(np.ones(2)).requires_grad_().requires_grad


def test_item_numpy_and_array_protocol() -> None:
    t = Tensor(np.array([[3.5]], np.float32), requires_grad=True)
    assert t.item() == 3.5 and t.numpy() is t.data and np.asarray(t) is t.data
    assert (t.shape, t.ndim, t.size, t.dtype, len(t)) == ((1, 1), 2, 1, np.float32, 1)
    with pytest.raises(InvalidInputError, match=r"one-element tensor, got shape \(2,\)"):
        Tensor(np.ones(2)).item()
    assert "requires_grad=True" in repr(t) and "grad_fn=<MulBackward>" in repr(t * 2)


def test_numpy_ufuncs_dispatch_or_refuse() -> None:
    x = Tensor(np.array([1.0, 4.0]), requires_grad=True)
    y = np.exp(x) + np.ones(2) * x  # ufuncs with a Tensor op stay differentiable
    assert isinstance(y, Tensor) and y.grad_fn is not None
    with pytest.raises(GradientError, match=r"np\.sqrt has no gradient here"):
        np.sqrt(x)
    np.testing.assert_array_equal(np.sqrt(x.detach()), [1.0, 2.0])  # without grad: plain arrays
    with no_grad():
        assert isinstance(np.sqrt(x), np.ndarray)


# --- grad mode ------------------------------------------------------------------------------------------
def test_no_grad_and_enable_grad_as_contexts_and_decorators() -> None:
    w = Parameter(np.ones(2))
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        assert (w * 2).grad_fn is None
        with enable_grad():
            assert is_grad_enabled() and (w * 2).grad_fn is not None
        assert not is_grad_enabled()
    assert is_grad_enabled()

    @no_grad()
    def frozen() -> Tensor:
        return w * 2

    assert frozen().grad_fn is None and is_grad_enabled()
    with set_grad_enabled(False):
        assert not is_grad_enabled()
    with pytest.raises(TypeError, match="set_grad_enabled takes a bool, got 'no'"):
        set_grad_enabled("no")


def test_grad_mode_is_per_thread() -> None:
    seen: list[bool] = []
    with no_grad():
        worker = threading.Thread(target=lambda: seen.append(is_grad_enabled()))
        worker.start()
        worker.join()
    assert seen == [True]


def test_no_grad_restores_the_mode_after_an_exception() -> None:
    with pytest.raises(ValueError), no_grad():
        raise ValueError("boom")
    assert is_grad_enabled()


# --- Function -------------------------------------------------------------------------------------------
class ScaledCube(Function):
    """``scale * x ** 3``: ctx.save_for_backward, attributes, needs_input_grad, a scalar argument."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: np.ndarray, scale: float) -> np.ndarray:
        assert isinstance(x, np.ndarray)  # Tensors arrive unwrapped
        ctx.save_for_backward(x)
        ctx.scale = scale
        return scale * x**3

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[np.ndarray | None, None]:
        (x,) = ctx.saved_tensors
        return (3 * ctx.scale * x**2 * grad if ctx.needs_input_grad[0] else None), None


def test_function_apply_with_tensors_arrays_and_scalars() -> None:
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = ScaledCube.apply(x, 2.0)
    assert isinstance(y, Tensor) and y.grad_fn.name() == "ScaledCubeBackward"
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 24.0])
    plain = ScaledCube.apply(np.array([1.0, 2.0]), 2.0)
    assert isinstance(plain, np.ndarray)  # no Tensor in: an ndarray out, nothing recorded
    untracked = ScaledCube.apply(Tensor(np.array([1.0])), 2.0)
    assert isinstance(untracked, Tensor) and untracked.grad_fn is None


def test_saved_tensors_are_freed_after_backward() -> None:
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = ScaledCube.apply(x, 1.0)
    y.backward()
    with pytest.raises(GradientError, match="second time"):
        _ = y.grad_fn.ctx.saved_tensors


def test_function_backward_returning_the_wrong_count_or_shape() -> None:
    class TooFew(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, grad):
            return grad

    class WrongShape(Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, grad):
            return grad[:1]

    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(GradientError, match=r"TooFew.backward returned 1 gradient\(s\), expected 2"):
        TooFew.apply(x, x).sum().backward()
    with pytest.raises(GradientError, match=r"gradient of shape \(1,\), expected shape \(3,\)"):
        WrongShape.apply(x).sum().backward()


# --- tensor hooks --------------------------------------------------------------------------------------
def test_tensor_hooks_on_leaf_and_intermediate_replace_and_remove() -> None:
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3
    seen: list[np.ndarray] = []
    on_h = h.register_hook(lambda g: seen.append(g.copy()))
    doubled = h.register_hook(lambda g: g * 2)
    h.sum().backward(retain_graph=True)
    np.testing.assert_array_equal(seen[0], [1.0, 1.0])
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])  # the doubled gradient flowed on
    doubled.remove()
    on_h.remove()
    on_x = x.register_hook(lambda g: g * 0)  # on a leaf: runs before accumulation
    h.sum().backward(retain_graph=True)
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    on_x.remove()
    on_x.remove()  # idempotent
    h.sum().backward()
    np.testing.assert_array_equal(x.grad, [9.0, 9.0])
    assert len(seen) == 1


def test_tensor_hook_errors() -> None:
    x = Tensor(np.ones(3), requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: np.ones(2))
    with pytest.raises(
        GradientError, match=r"hook .*returned a gradient of shape \(2,\), expected shape \(3,\)"
    ):
        y.sum().backward()
    with pytest.raises(GradientError, match="does not require grad"):
        Tensor(np.ones(2)).register_hook(lambda g: None)
    with pytest.raises(TypeError, match="hook must be callable"):
        x.register_hook(3)


def test_leaves_pickle_and_deep_copy_after_training_but_not_graph_nodes() -> None:
    layer = Linear(3, 2)
    x = Tensor(np.ones((1, 3), np.float32), requires_grad=True)
    layer(x).sum().backward()  # parameters now have gradient accumulators
    x.register_hook(lambda g: None)
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert isinstance(clone.weight, Parameter) and clone.weight.requires_grad
        np.testing.assert_array_equal(clone.weight.data, layer.weight.data)
        np.testing.assert_array_equal(clone.weight.grad, layer.weight.grad)
        assert clone.weight is not layer.weight
    copied = copy.deepcopy(x)
    assert copied.is_leaf and copied.requires_grad and copied.data is not x.data
    frozen = pickle.loads(pickle.dumps(Parameter(np.ones(2), requires_grad=False)))
    assert not frozen.requires_grad
    with pytest.raises(GradientError, match="only leaf tensors can be pickled"):
        pickle.dumps(x * 2)
