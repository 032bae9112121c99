"""Write ``tests/fixtures/optim/torch_reference.npz``: what torch's optimizers, schedules, clipping compute.

Dev-only: the reference for ``audioembed.nn.optim`` and ``audioembed.nn.utils.clip_grad_norm_``. For each case
of ``tests/nn/optim_cases.py`` it runs ``torch.optim`` on the shared least-squares problem, with gradients
computed in NumPy from the current parameters (so no autograd is involved on either side), and stores the
parameters after each of 20 steps; for each schedule, the learning rates of 35 epochs; for each clipping
case, the total norm and the clipped gradients.

Stored arrays: ``{case}/W`` [20, 4, 3], ``{case}/b`` [20, 3] (the case's dtype), ``{case}/frozen`` [2] (after
the last step: it has no gradient and must not move); ``schedule/{case}`` [35, 2] float64 (``get_last_lr()``
after construction, then after each step); ``clip/{case}/total`` [] and ``clip/{case}/grad0``,
``clip/{case}/grad2``; ``torch_version``.

How it was run (from the repository root, torch 2.13.0 CPU build installed with
``pip install torch==2.13.0``; torch is not a dependency of the project or its tests)::

    python scripts/make_optim_fixture.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "nn")]

import optim_cases as cases  # noqa: E402


def trajectory(name: str) -> dict[str, np.ndarray]:
    """Run one optimizer case for ``cases.STEPS`` steps; the parameters after each step."""
    class_name, options, dtype, b_options = cases.OPTIMIZER_CASES[name]
    data = cases.problem()
    W = torch.nn.Parameter(torch.from_numpy(data["W0"].astype(dtype)))
    b = torch.nn.Parameter(torch.from_numpy(data["b0"].astype(dtype)))
    frozen = torch.nn.Parameter(torch.from_numpy(data["frozen0"].astype(dtype)))
    if b_options is None:
        params: list = [W, b, frozen]
    else:
        params = [{"params": [W, frozen]}, {"params": [b], **b_options}]
    optimizer = getattr(torch.optim, class_name)(params, **options)
    Ws, bs = [], []
    for _ in range(cases.STEPS):
        gW, gb = cases.gradients(W.detach().numpy(), b.detach().numpy(), data["X"], data["Y"])
        W.grad, b.grad = torch.from_numpy(gW), torch.from_numpy(gb)
        optimizer.step()
        Ws.append(W.detach().numpy().copy())
        bs.append(b.detach().numpy().copy())
    return {f"{name}/W": np.stack(Ws), f"{name}/b": np.stack(bs), f"{name}/frozen": frozen.detach().numpy()}


def schedule(name: str) -> np.ndarray:
    """Learning rates [epochs, 2] of one schedule case: after construction, then after each step."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in cases.SCHEDULE_BASE_LRS]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, cases.SCHEDULE_BASE_LRS, strict=True)]
    optimizer = torch.optim.SGD(groups, lr=1.0)
    schedulers = [
        getattr(torch.optim.lr_scheduler, cls)(optimizer, **kw) for cls, kw in cases.SCHEDULE_CASES[name]
    ]
    rates = [schedulers[-1].get_last_lr()]
    for _ in range(cases.SCHEDULE_EPOCHS - 1):
        optimizer.step()  # no gradients: keeps torch from warning about the call order
        for scheduler in schedulers:
            scheduler.step()
        rates.append(schedulers[-1].get_last_lr())
    return np.array(rates, dtype=np.float64)


def clipping(name: str) -> dict[str, np.ndarray]:
    """One clipping case: the total norm torch returns and the clipped gradients."""
    max_norm, norm_type = cases.CLIP_CASES[name]
    params = []
    for grad in cases.clip_gradients():
        values = torch.zeros(1) if grad is None else torch.from_numpy(np.zeros_like(grad))
        param = torch.nn.Parameter(values)
        if grad is not None:  # the second parameter keeps no gradient: clipping must skip it
            param.grad = torch.from_numpy(grad.copy())
        params.append(param)
    total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    return {
        f"clip/{name}/total": np.float64(total.item()),
        f"clip/{name}/grad0": params[0].grad.numpy(),
        f"clip/{name}/grad2": params[2].grad.numpy(),
    }


def main() -> None:
    torch.set_num_threads(1)
    arrays: dict[str, np.ndarray] = {"torch_version": np.array(torch.__version__)}
    for name in cases.OPTIMIZER_CASES:
        arrays.update(trajectory(name))
    for name in cases.SCHEDULE_CASES:
        arrays[f"schedule/{name}"] = schedule(name)
    for name in cases.CLIP_CASES:
        arrays.update(clipping(name))
    cases.FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cases.FIXTURE, **arrays)
    size = cases.FIXTURE.stat().st_size
    print(f"wrote {cases.FIXTURE.relative_to(ROOT)} ({size} bytes), torch {torch.__version__}")


if __name__ == "__main__":
    main()
