"""The loss kernels: definitions from first principles, backward against finite differences, bad targets."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from finite_diff import assert_grad_close, numerical_grad

from audioembed.errors import InvalidInputError, InvalidOptionError, ShapeError
from audioembed.nn import functional_loss as fl

SEEDS = [0, 1, 2]
REDUCTIONS = ["mean", "sum", "none"]


def _random_logits(rng: np.random.Generator) -> np.ndarray:
    lead = tuple(int(s) for s in rng.integers(1, 4, size=int(rng.integers(0, 3))))
    return rng.standard_normal((*lead, int(rng.integers(2, 6)))) * 3


def _check(forward, backward, arrays: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    probe = rng.standard_normal(np.shape(forward()))
    analytic = backward(probe)
    for name, array in arrays.items():
        numeric = numerical_grad(lambda: float(np.sum(forward() * probe)), array)
        assert_grad_close(analytic[name], numeric, name)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("weighted", "smoothing"), [(False, 0.0), (True, 0.0), (False, 0.2), (True, 0.3)])
def test_cross_entropy_with_indices_backward(
    seed: int, reduction: str, weighted: bool, smoothing: float
) -> None:
    rng = np.random.default_rng(seed)
    x = _random_logits(rng)
    target = rng.integers(0, x.shape[-1], size=x.shape[:-1])
    weight = rng.uniform(0.2, 2, x.shape[-1]) if weighted else None
    forward = lambda: fl.cross_entropy_forward(x, target, weight, smoothing, reduction)[0]  # noqa: E731

    def backward(g: np.ndarray) -> dict[str, np.ndarray]:
        grad_x, grad_t = fl.cross_entropy_backward(
            g, fl.cross_entropy_forward(x, target, weight, smoothing, reduction)[1]
        )
        assert grad_t is None
        return {"x": grad_x}

    _check(forward, backward, {"x": x}, rng)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_with_probabilities_backward(seed: int, reduction: str) -> None:
    rng = np.random.default_rng(seed)
    x = _random_logits(rng)
    target = rng.dirichlet(np.ones(x.shape[-1]), size=x.shape[:-1])
    weight = rng.uniform(0.2, 2, x.shape[-1])

    def forward() -> np.ndarray:
        return fl.cross_entropy_forward(x, target, weight, 0.1, reduction)[0]

    def backward(g: np.ndarray) -> dict[str, np.ndarray]:
        grad_x, grad_t = fl.cross_entropy_backward(
            g, fl.cross_entropy_forward(x, target, weight, 0.1, reduction)[1]
        )
        return {"x": grad_x, "target": grad_t}

    _check(forward, backward, {"x": x, "target": target}, rng)


def test_cross_entropy_matches_the_written_out_formula() -> None:
    # PyTorch's definition: weighted NLL normalised by the targets' weights, smoothing term likewise.
    rng = np.random.default_rng(4)
    x, y, w, eps = rng.standard_normal((5, 4)), np.array([0, 3, 1, 1, 2]), rng.uniform(0.5, 2, 4), 0.2
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    nll = -w[y] * logp[np.arange(5), y]
    smooth = -(logp * w).sum(1)
    expected = ((1 - eps) * nll.sum() + eps / 4 * smooth.sum()) / w[y].sum()
    got = fl.cross_entropy_forward(x, y, w, eps, "mean")[0]
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    # Probability targets: the mean divides by the number of examples, not by weights.
    t = np.eye(4)[y]
    t_smooth = t * (1 - eps) + eps / 4
    np.testing.assert_allclose(
        fl.cross_entropy_forward(x, t, w, eps, "mean")[0], -(t_smooth * w * logp).sum() / 5, rtol=1e-13
    )


def test_cross_entropy_is_stable_for_huge_logits() -> None:
    x = np.array([[1000.0, 0.0, -1000.0]], np.float32)
    loss = fl.cross_entropy_forward(x, np.array([1]), None, 0.0, "sum")[0]
    np.testing.assert_allclose(loss, 1000.0, rtol=1e-6)
    assert loss.dtype == np.float32


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    ("weighted", "positive"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_bce_with_logits_backward(seed: int, reduction: str, weighted: bool, positive: bool) -> None:
    rng = np.random.default_rng(seed)
    x = _random_logits(rng)
    target = rng.uniform(0, 1, x.shape)
    weight = rng.uniform(0.2, 2, x.shape[-1:]) if weighted else None
    pos_weight = rng.uniform(0.5, 3, x.shape[-1]) if positive else None

    def forward() -> np.ndarray:
        return fl.binary_cross_entropy_with_logits_forward(x, target, weight, pos_weight, reduction)[0]

    def backward(g: np.ndarray) -> dict[str, np.ndarray]:
        saved = fl.binary_cross_entropy_with_logits_forward(x, target, weight, pos_weight, reduction)[1]
        grad_x, grad_t = fl.binary_cross_entropy_with_logits_backward(g, saved)
        return {"x": grad_x, "target": grad_t}

    _check(forward, backward, {"x": x, "target": target}, rng)


def test_bce_with_logits_matches_the_definition_and_is_stable() -> None:
    rng = np.random.default_rng(6)
    x, t, pw = rng.standard_normal((3, 4)), rng.integers(0, 2, (3, 4)).astype(float), np.array([1.0, 2, 3, 4])
    s = 1 / (1 + np.exp(-x))
    expected = -(pw * t * np.log(s) + (1 - t) * np.log(1 - s))
    got = fl.binary_cross_entropy_with_logits_forward(x, t, None, pw, "none")[0]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    big = np.array([800.0, -800.0], np.float32)
    loss = fl.binary_cross_entropy_with_logits_forward(
        big, np.array([0.0, 1.0], np.float32), reduction="none"
    )[0]
    np.testing.assert_allclose(loss, [800.0, 800.0], rtol=1e-6)
    grad = fl.binary_cross_entropy_with_logits_backward(
        np.ones(2, np.float32),
        fl.binary_cross_entropy_with_logits_forward(big, np.array([0.0, 1.0], np.float32), reduction="none")[
            1
        ],
    )[0]
    np.testing.assert_allclose(grad, [1.0, -1.0])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_backward(seed: int, reduction: str) -> None:
    rng = np.random.default_rng(seed)
    x = _random_logits(rng)
    t = rng.standard_normal(x.shape)

    def backward(g: np.ndarray) -> dict[str, np.ndarray]:
        grad_x, grad_t = fl.mse_loss_backward(g, fl.mse_loss_forward(x, t, reduction)[1])
        return {"x": grad_x, "target": grad_t}

    _check(lambda: fl.mse_loss_forward(x, t, reduction)[0], backward, {"x": x, "target": t}, rng)
    np.testing.assert_allclose(fl.mse_loss_forward(x, t, "mean")[0], np.mean((x - t) ** 2), rtol=1e-13)


LOGITS = np.zeros((2, 3))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: fl.cross_entropy_forward(LOGITS, np.array([0, 3])),
            InvalidInputError,
            r"target class 3 at index \(1,\) is out of range \[0, 3\)",
        ),
        (lambda: fl.cross_entropy_forward(LOGITS, np.array([-1, 0])), InvalidInputError, "target class -1"),
        (
            lambda: fl.cross_entropy_forward(LOGITS, np.array([0, 1, 2])),
            ShapeError,
            r"class indices of shape \(2,\) .* got shape \(3,\)",
        ),
        (
            lambda: fl.cross_entropy_forward(LOGITS, np.array([[0.5, 0.5, np.nan], [1, 0, 0]])),
            InvalidInputError,
            r"holds nan at index \(0, 2\)",
        ),
        (
            lambda: fl.cross_entropy_forward(LOGITS, np.array([0.0, 1.0])),
            InvalidInputError,
            r"class indices must be integers, got dtype float64 of shape \(2,\) \(cast them, or give class "
            r"probabilities of shape \(2, 3\)\)",
        ),
        (
            lambda: fl.cross_entropy_forward(LOGITS, np.zeros((2, 4))),
            ShapeError,
            r"target of the input's shape \(2, 3\), got shape \(2, 4\)",
        ),
        (
            lambda: fl.cross_entropy_forward(LOGITS, np.array([True, False])),
            InvalidInputError,
            "got dtype bool",
        ),
        (
            lambda: fl.cross_entropy_forward(LOGITS, np.array([0, 1]), np.ones(2)),
            ShapeError,
            r"weight must have shape \(3,\)",
        ),
        (
            lambda: fl.cross_entropy_forward(LOGITS, np.array([0, 1]), label_smoothing=1.5),
            InvalidOptionError,
            "label_smoothing .* got 1.5",
        ),
        (
            lambda: fl.cross_entropy_forward(LOGITS, np.array([0, 1]), reduction="avg"),
            InvalidOptionError,
            "got 'avg'",
        ),
        (
            lambda: fl.cross_entropy_forward(np.zeros((2, 3), np.int64), np.array([0, 1])),
            InvalidInputError,
            "floating-point input, got dtype int64",
        ),
        (
            lambda: fl.binary_cross_entropy_with_logits_forward(LOGITS, np.zeros((3, 2))),
            ShapeError,
            r"input's shape \(2, 3\), got shape \(3, 2\)",
        ),
        (
            lambda: fl.binary_cross_entropy_with_logits_forward(LOGITS, np.full((2, 3), np.inf)),
            InvalidInputError,
            r"holds inf at index \(0, 0\)",
        ),
        (
            lambda: fl.binary_cross_entropy_with_logits_forward(
                LOGITS, np.zeros((2, 3)), pos_weight=np.ones(2)
            ),
            ShapeError,
            r"pos_weight of shape \(2,\) does not broadcast",
        ),
        (
            lambda: fl.binary_cross_entropy_with_logits_forward(LOGITS, np.zeros((2, 3)), np.ones((4, 2, 3))),
            ShapeError,
            r"weight of shape \(4, 2, 3\) does not broadcast",
        ),
        (lambda: fl.mse_loss_forward(LOGITS, np.zeros(3)), ShapeError, r"got shape \(3,\)"),
        (
            lambda: fl.mse_loss_forward(LOGITS, np.zeros((2, 3), int)),
            InvalidInputError,
            "target, got dtype int64",
        ),
        (lambda: fl.mse_loss_forward(np.zeros(0), np.zeros(0)), ShapeError, "non-empty"),
        (
            lambda: fl.cross_entropy_forward(LOGITS, np.array([0, -1])),  # -100 is ignored, -1 is not
            InvalidInputError,
            r"target class -1 at index \(1,\) is out of range",
        ),
        (
            lambda: fl.cross_entropy_forward(LOGITS, np.array([0, 1]), ignore_index=1.0),
            InvalidOptionError,
            "ignore_index must be an integer, got 1.0",
        ),
        (
            lambda: fl.cross_entropy_forward(LOGITS, np.array([0, 1]), ignore_index=True),
            InvalidOptionError,
            "ignore_index must be an integer, got True",
        ),
        (
            lambda: fl.cross_entropy_forward(LOGITS, np.full((2, 3), 1 / 3), ignore_index=0),
            InvalidOptionError,
            r"ignore_index \(0\) applies to class-index targets only",
        ),
    ],
)
def test_losses_reject_bad_targets_naming_the_value(call, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_ignored_targets_are_left_out_of_loss_gradient_and_mean(smoothing: float) -> None:
    rng = np.random.default_rng(3)
    logits, weight = rng.standard_normal((6, 4)), rng.uniform(0.5, 2.0, 4)
    target = np.array([1, -100, 3, 0, -100, 2])
    kept = target != -100
    value, saved = fl.cross_entropy_forward(logits, target, weight, smoothing)
    subset, _ = fl.cross_entropy_forward(logits[kept], target[kept], weight, smoothing)
    np.testing.assert_allclose(value, subset, rtol=1e-12)
    grad, _ = fl.cross_entropy_backward(np.array(1.0), saved)
    assert not grad[~kept].any()
    per_example, _ = fl.cross_entropy_forward(logits, target, weight, smoothing, reduction="none")
    assert not per_example[~kept].any()


@pytest.mark.parametrize("weighted", [False, True])
def test_all_targets_ignored_gives_nan_mean_zero_sum_and_zero_gradients(weighted: bool) -> None:
    target, weight = np.array([-100, -100]), (np.array([0.5, 1.0, 2.0]) if weighted else None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division warnings either
        value, saved = fl.cross_entropy_forward(LOGITS, target, weight, label_smoothing=0.1)
        assert np.isnan(value)
        grad, _ = fl.cross_entropy_backward(np.array(1.0), saved)  # PyTorch: zeros, not NaN
        np.testing.assert_array_equal(grad, np.zeros_like(LOGITS))
        assert fl.cross_entropy_forward(LOGITS, target, weight, reduction="sum")[0] == 0.0
