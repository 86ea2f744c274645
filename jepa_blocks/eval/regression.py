"""Regressors on frozen features (linear or MLP), scored by test R^2 (spec §4.1).

Targets are regressed as given, not standardised, as in the paper and the official code: the
MSE loss therefore weighs output dimensions by their variance, while the reported R^2 averages
dimensions uniformly (sklearn's default).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from jepa_blocks._typing import Float, Tensor, typecheck
from jepa_blocks.eval.heads import _HeadFit, make_mlp_head
from jepa_blocks.eval.metrics import r2_score

__all__ = ["RegressionResult", "fit_regressor"]


@dataclass
class RegressionResult:
    """A trained regressor.

    Attributes:
        r2: test R^2, uniformly averaged over target dimensions (sklearn's default).
        head: the trained head (in eval mode, on the training device).
        history: mean training MSE of each epoch.
    """

    r2: float
    head: nn.Module
    history: list[float] = field(default_factory=list)


@typecheck
def fit_regressor(
    train_x: Float[Tensor, "b_train d"],
    train_y: Float[Tensor, " b_train *p"],
    test_x: Float[Tensor, "b_test d"],
    test_y: Float[Tensor, " b_test *p"],
    *,
    hidden: Sequence[int] = (1024, 1024),
    epochs: int = 300,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> RegressionResult:
    """Train an MSE regressor on frozen features; report test R^2 (sklearn, uniform average).

    The default head is the official code's MLP ``Linear(d, 1024) -> ReLU -> Linear(1024,
    1024) -> ReLU -> Linear(1024, p)``; ``hidden=()`` gives a linear regressor. The paper
    trains MLP regressors for 300 epochs and linear ones for 50 (pass ``epochs=50`` with
    ``hidden=()``), both with Adam's defaults and batch 256. Targets are not standardised.

    Args:
        train_x, train_y: training features and float targets (trailing axes are outputs).
        test_x, test_y: held-out features and targets.
        hidden: hidden widths of the MLP; ``()`` for a linear head.
        epochs, batch_size, lr, weight_decay, seed, device, progress: as in
            :func:`fit_linear_probe`.

    Returns:
        :class:`RegressionResult` with the test R^2.

    Raises:
        ValueError: features and targets of different lengths, different feature or target
            widths, fewer than 2 test rows, non-finite inputs, bad widths or settings.
    """
    fit = _HeadFit(epochs, batch_size, lr, weight_decay, seed, device, progress)
    fit.check(train_x, train_y, test_x, test_y)
    if train_y.shape[1:] != test_y.shape[1:]:
        raise ValueError(
            f"train_y has target shape {tuple(train_y.shape[1:])} but test_y has "
            f"{tuple(test_y.shape[1:])}; regress the same quantity on both splits."
        )
    for name, y in (("train_y", train_y), ("test_y", test_y)):
        if not bool(torch.isfinite(y).all()):
            raise ValueError(f"{name} contains NaN or Inf values; clean the targets first.")
    if test_x.shape[0] < 2:
        raise ValueError(f"test_x has {test_x.shape[0]} row; R^2 needs at least 2 test rows.")
    dim_out = math.prod(train_y.shape[1:])
    head, history, pred = fit(
        make_mlp_head(train_x.shape[1], dim_out, tuple(hidden), device="meta"),
        train_x,
        train_y.detach().float().reshape(train_y.shape[0], dim_out),
        test_x,
        F.mse_loss,
        desc="regressor" if hidden else "linear regressor",
    )
    target = test_y.detach().float().reshape(test_y.shape[0], dim_out).to(pred.device)
    return RegressionResult(r2_score(pred, target), head, history)
