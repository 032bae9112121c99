"""Optimizers and learning-rate schedules with PyTorch's update rules and state dicts (``torch.optim``).

A training step, once gradients are in ``p.grad``::

    optimizer = AdamW(model.parameters(), lr=1e-3)
    scheduler = CosineAnnealingLR(optimizer, T_max=epochs)
    ...
    optimizer.zero_grad()
    loss.backward()
    clip_grad_norm_(model.parameters(), max_norm=1.0)   # audioembed.nn.utils
    optimizer.step()
    ...
    scheduler.step()   # once per epoch

Updates are in place; caches of fused inference plans built from the updated arrays rebuild themselves
(see :mod:`audioembed.nn.inplace`).
"""

from audioembed.nn.optim.adam import Adam, AdamW
from audioembed.nn.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, MultiStepLR, StepLR
from audioembed.nn.optim.optimizer import Optimizer
from audioembed.nn.optim.sgd import SGD

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "LRScheduler",
    "LinearLR",
    "MultiStepLR",
    "Optimizer",
    "StepLR",
]
