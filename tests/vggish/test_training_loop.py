"""The README's training loop, run for real: the loss of a fixed batch falls (full and top-only training)."""

from __future__ import annotations

import numpy as np
import pytest

from audioembed import nn, vggish


def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = np.log(rng.random((4, 96, 64)) + 0.01).astype(np.float32)  # log-mel-like examples
    return x, np.array([0, 1, 2, 1])


@pytest.mark.slow
@pytest.mark.parametrize("train", ["all", "top"])
def test_sgd_steps_reduce_the_loss(synthetic_weights, train) -> None:
    model, head = vggish.load_vggish(synthetic_weights), nn.Linear(128, 10, rng=np.random.default_rng(1))
    if train == "top":  # the conv stack frozen: it runs as the fused inference engine
        for name in ("conv1", "conv2", "conv3_1", "conv3_2", "conv4_1", "conv4_2"):
            getattr(model, name).requires_grad_(False)
    params = [p for m in (model, head) for p in m.parameters() if p.requires_grad]
    optimizer = nn.optim.SGD([*model.parameters(), *head.parameters()], lr=1e-4)
    x, y = batch()
    losses = []
    for _ in range(3):
        logits = head(model(nn.Tensor(x)).relu())
        loss = -nn.functional.log_softmax(logits)[range(len(y)), y].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[2] < losses[1] < losses[0], losses
    assert all(p.grad is not None for p in params)
    optimizer.zero_grad()
    # Inference afterwards sees the trained weights (the fused plans are rebuilt, not stale).
    embeddings = model(x)
    assert type(embeddings) is np.ndarray
    np.testing.assert_allclose(embeddings, model(nn.Tensor(x)).data, rtol=1e-4, atol=1e-4)


def test_inference_never_records_a_graph(synthetic_weights) -> None:
    model = vggish.load_vggish(synthetic_weights)
    assert all(p.requires_grad for p in model.parameters())  # as loaded: trainable
    out = model(batch()[0])
    assert type(out) is np.ndarray and all(p.grad is None for p in model.parameters())
