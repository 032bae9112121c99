"""The train/eval layers and loss Modules: modes, buffers, state dicts, options, bad input (ndarray path)."""

from __future__ import annotations

import numpy as np
import pytest

from audioembed import nn
from audioembed.errors import InvalidInputError, InvalidOptionError, ShapeError, WeightsFormatError


def test_batch_norm_registers_torch_named_state_and_casts_keep_the_counter_int64() -> None:
    bn = nn.BatchNorm2d(3)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert bn.running_mean.dtype == np.float32 and bn.num_batches_tracked.dtype == np.int64
    bn.double()
    assert bn.weight.dtype == bn.running_var.dtype == np.float64 and bn.num_batches_tracked.dtype == np.int64
    bare = nn.BatchNorm1d(4, affine=False, track_running_stats=False)
    assert bare.state_dict() == {} and bare.weight is None and bare.running_mean is None


def test_batch_norm_train_updates_running_stats_and_eval_uses_them() -> None:
    rng = np.random.default_rng(0)
    bn = nn.BatchNorm1d(2, momentum=None)  # cumulative average
    batches = [rng.standard_normal((5, 2)).astype(np.float32) * 2 + 3 for _ in range(4)]
    for x in batches:
        y = bn(x)
        np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
    assert int(bn.num_batches_tracked) == 4
    np.testing.assert_allclose(bn.running_mean, np.mean([b.mean(0) for b in batches], 0), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, np.mean([b.var(0, ddof=1) for b in batches], 0), rtol=1e-5)
    bn.eval()
    state = bn.state_dict()
    x = rng.standard_normal((3, 2)).astype(np.float32)
    np.testing.assert_allclose(bn(x), (x - bn.running_mean) / np.sqrt(bn.running_var + 1e-5), rtol=1e-5)
    for key, value in bn.state_dict().items():  # eval leaves every buffer alone
        np.testing.assert_array_equal(value, state[key])
    bn.reset_running_stats()
    assert int(bn.num_batches_tracked) == 0 and not bn.running_mean.any() and (bn.running_var == 1).all()


def test_batch_norm_without_running_stats_uses_batch_stats_in_eval() -> None:
    x = np.random.default_rng(1).standard_normal((6, 4, 4, 2)).astype(np.float32) + 5
    bn = nn.BatchNorm2d(2, track_running_stats=False).eval()
    np.testing.assert_allclose(bn(x).mean(axis=(0, 1, 2)), 0, atol=1e-5)


def test_batch_norm_rejects_a_batch_of_one_without_counting_it() -> None:
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ShapeError, match=r"more than 1 value per channel, got input of shape \(1, 3\)"):
        bn(np.ones((1, 3), np.float32))
    assert int(bn.num_batches_tracked) == 0 and not bn.running_mean.any()
    bn.eval()
    assert bn(np.ones((1, 3), np.float32)).shape == (1, 3)  # eval needs no batch statistics


def test_batch_norm_state_dict_round_trip_and_shape_errors() -> None:
    bn = nn.BatchNorm2d(3)
    bn(np.random.default_rng(2).standard_normal((4, 2, 2, 3)).astype(np.float32))
    other = nn.BatchNorm2d(3)
    other.load_state_dict(bn.state_dict())
    np.testing.assert_array_equal(other.running_var, bn.running_var)
    assert int(other.num_batches_tracked) == 1
    with pytest.raises(WeightsFormatError, match="running_mean"):
        nn.BatchNorm2d(4).load_state_dict(bn.state_dict())


@pytest.mark.parametrize(
    ("layer", "shape", "message"),
    [
        (
            nn.BatchNorm1d(3),
            (4, 2),
            r"BatchNorm1d expects input of shape \[N, 3\] or \[N, L, 3\], got shape \(4, 2\)",
        ),
        (nn.BatchNorm1d(3), (2, 2, 2, 3), r"got shape \(2, 2, 2, 3\)"),
        (
            nn.BatchNorm2d(3),
            (2, 4, 3),
            r"BatchNorm2d expects input of shape \[N, H, W, 3\], got shape \(2, 4, 3\)",
        ),
        (nn.InstanceNorm2d(2), (2, 3, 3, 3), r"InstanceNorm2d expects input of shape \[N, H, W, 2\]"),
        (
            nn.LayerNorm([3, 4]),
            (2, 4, 3),
            r"LayerNorm expects input of shape \[\.\.\., 3, 4\], got shape \(2, 4, 3\)",
        ),
        (nn.LayerNorm(4), (), r"got shape \(\)"),
    ],
)
def test_norm_layers_name_expected_and_actual_shapes(layer: nn.Module, shape: tuple, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        layer(np.zeros(shape, np.float32))


def test_norm_layers_check_dtype() -> None:
    with pytest.raises(InvalidInputError, match="BatchNorm2d expects a float32 input, got dtype float64"):
        nn.BatchNorm2d(2)(np.zeros((2, 2, 2, 2)))
    with pytest.raises(InvalidInputError, match="expects a floating input, got dtype int64"):
        nn.InstanceNorm2d(2)(np.zeros((2, 2, 2, 2), np.int64))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: nn.BatchNorm2d(0), "num_features must be a positive int, got 0"),
        (lambda: nn.BatchNorm2d(2.5), "num_features must be a positive int, got 2.5"),
        (lambda: nn.BatchNorm1d(2, eps=-1), "eps must be a positive number, got -1"),
        (lambda: nn.BatchNorm1d(2, momentum=2), "momentum must be a number in .* got 2"),
        (lambda: nn.BatchNorm1d(2, affine="yes"), "affine must be a bool, got 'yes'"),
        (lambda: nn.LayerNorm([]), r"normalized_shape must not be empty, got \[\]"),
        (lambda: nn.LayerNorm("abc"), "normalized_shape must be a positive int, got 'a'"),
        (lambda: nn.LayerNorm(3, elementwise_affine=1), "elementwise_affine must be a bool, got 1"),
        (lambda: nn.Dropout(1.2), r"dropout probability must be a number in \[0, 1\], got 1.2"),
        (
            lambda: nn.Dropout(0.1, rng="seed"),
            "rng must be a numpy Generator, an int seed or None, got 'seed'",
        ),
        (lambda: nn.CrossEntropyLoss(reduction="mean "), "reduction must be .* got 'mean '"),
        (lambda: nn.CrossEntropyLoss(label_smoothing=-0.1), "label_smoothing .* got -0.1"),
        (lambda: nn.CrossEntropyLoss(weight=[[1.0]]), r"weight must be a non-empty 1-D array"),
        (lambda: nn.BCEWithLogitsLoss(pos_weight=[]), "pos_weight must be a non-empty 1-D array"),
        (lambda: nn.BCEWithLogitsLoss(weight=2.0), "weight must have at least one axis, got 2.0"),
        (lambda: nn.MSELoss(reduction=None), "reduction must be .* got None"),
    ],
)
def test_layer_options_are_checked(make, message: str) -> None:
    with pytest.raises((InvalidOptionError, ShapeError), match=message):
        make()


def test_layer_norm_and_instance_norm_defaults_and_reprs() -> None:
    ln = nn.LayerNorm(4)
    assert ln.weight.shape == (4,) and (ln.weight.data == 1).all() and not ln.bias.data.any()
    assert (
        repr(ln) == "LayerNorm(4)" and repr(nn.LayerNorm((2, 3), eps=1e-3)) == "LayerNorm((2, 3), eps=0.001)"
    )
    assert [n for n, _ in nn.LayerNorm(3, bias=False).named_parameters()] == ["weight"]
    assert nn.LayerNorm(3, elementwise_affine=False).state_dict() == {}
    inorm = nn.InstanceNorm2d(3)
    assert inorm.state_dict() == {} and repr(inorm) == "InstanceNorm2d(3)"
    assert repr(nn.BatchNorm2d(3, momentum=None, eps=1e-3)) == "BatchNorm2d(3, eps=0.001, momentum=None)"
    tracked = nn.InstanceNorm2d(2, track_running_stats=True)
    tracked(np.random.default_rng(0).standard_normal((2, 3, 3, 2)).astype(np.float32))
    assert int(tracked.num_batches_tracked) == 0 and tracked.running_mean.any()  # PyTorch never counts here


def test_dropout_module_modes_seeds_and_repr() -> None:
    x = np.ones((64, 64), np.float32)
    drop = nn.Dropout(0.25, rng=11)
    y = drop(x)
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)} and y.dtype == np.float32
    assert abs((y == 0).mean() - 0.25) < 0.03
    np.testing.assert_array_equal(nn.Dropout(0.25, rng=11)(x), y)  # same seed, same mask
    assert not np.array_equal(drop(x), y)  # the generator advances between calls
    assert drop.eval()(x) is x
    assert repr(nn.Sequential(nn.Dropout(0.1))) == "Sequential(\n  (0): Dropout(p=0.1)\n)"
    with pytest.raises(InvalidInputError, match="Dropout expects a floating input, got dtype int64"):
        drop.train()(np.ones(3, np.int64))


def test_loss_modules_return_floats_or_arrays_and_hold_weights_as_buffers() -> None:
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], np.float32)
    target = np.array([0, 2])
    ce = nn.CrossEntropyLoss(weight=[1.0, 2.0, 3.0], label_smoothing=0.1)
    assert list(ce.state_dict()) == ["weight"] and repr(ce) == "CrossEntropyLoss(label_smoothing=0.1)"
    value = ce(logits, target)
    assert isinstance(value, float)
    assert value == pytest.approx(nn.functional.cross_entropy(logits, target, np.array([1.0, 2, 3]), 0.1))
    per_example = nn.CrossEntropyLoss(reduction="none")(logits, target)
    assert per_example.shape == (2,) and per_example.dtype == np.float32
    bce = nn.BCEWithLogitsLoss(pos_weight=[1.0, 2.0, 3.0], reduction="sum")
    assert repr(bce) == "BCEWithLogitsLoss(reduction='sum')" and list(bce.state_dict()) == ["pos_weight"]
    assert isinstance(bce(logits, (logits > 0).astype(np.float32)), float)
    assert nn.MSELoss()(logits, logits) == 0.0


def test_functional_ops_given_parameters_record_like_the_other_kernels() -> None:
    bn = nn.BatchNorm1d(2)
    x = np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32)
    y = nn.functional.batch_norm(x, None, None, bn.weight, bn.bias, training=True)
    assert isinstance(y, nn.Tensor) and y.grad_fn is not None  # a Parameter is a Tensor that requires grad
    np.testing.assert_allclose(y.data, bn(x), rtol=1e-6)
    plain = nn.functional.batch_norm(x, None, None, bn.weight.data, bn.bias.data, training=True)
    assert isinstance(plain, np.ndarray)
    with pytest.raises(
        InvalidInputError, match="layer_norm input must be a floating-point array, got dtype int"
    ):
        nn.functional.layer_norm(np.ones((2, 3), int), 3)
    with pytest.raises(InvalidInputError, match="dropout input must be a floating-point array, got dtype"):
        nn.functional.dropout("text", 0.5)
