"""The linear probe: a linear classifier on frozen features, scored by test top-1 (spec §4.1)."""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from jepa_blocks._typing import Float, Int, Tensor, typecheck
from jepa_blocks.eval.heads import _HeadFit
from jepa_blocks.eval.metrics import top1_accuracy

__all__ = ["ProbeResult", "fit_linear_probe"]


@dataclass
class ProbeResult:
    """A trained linear classifier.

    Attributes:
        top1: test top-1 accuracy, a fraction in ``[0, 1]``.
        head: the trained ``nn.Linear`` (in eval mode, on the training device).
        history: mean training cross-entropy of each epoch.
    """

    top1: float
    head: nn.Module
    history: list[float] = field(default_factory=list)


@typecheck
def fit_linear_probe(
    train_x: Float[Tensor, "b_train d"],
    train_y: Int[Tensor, " b_train"],
    test_x: Float[Tensor, "b_test d"],
    test_y: Int[Tensor, " b_test"],
    *,
    num_classes: int,
    epochs: int = 300,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> ProbeResult:
    """Train ``nn.Linear(d, num_classes)`` with cross-entropy on frozen features; test top-1.

    Paper protocol (spec §4.1): Adam with default hyperparameters, batch 256, 300 epochs.

    Args:
        train_x, train_y: training features and integer class labels.
        test_x, test_y: held-out features and labels.
        num_classes: output width; must exceed every label.
        epochs, batch_size, lr, weight_decay: Adam training settings (``weight_decay`` is
            Adam's L2 term; 0 in the paper).
        seed: seeds the head's initialisation and the shuffles.
        device: where to train; default the device of ``train_x``.
        progress: show a tqdm bar over epochs (hidden when stderr is not a terminal).

    Returns:
        :class:`ProbeResult` with test top-1 as a fraction in ``[0, 1]``.

    Raises:
        ValueError: features and labels of different lengths, different feature widths,
            empty or non-finite features, negative labels, ``num_classes`` not above the
            largest label, or non-positive training settings.
    """
    fit = _HeadFit(epochs, batch_size, lr, weight_decay, seed, device, progress)
    fit.check(train_x, train_y, test_x, test_y)
    min_label = min(int(train_y.min()), int(test_y.min()))
    max_label = max(int(train_y.max()), int(test_y.max()))
    if min_label < 0:
        raise ValueError(
            f"labels must be >= 0, got {min_label}; map classes to integers in "
            "[0, num_classes)."
        )
    if num_classes < max_label + 1:
        raise ValueError(
            f"num_classes {num_classes} is smaller than max label {max_label} + 1; pass "
            f"num_classes >= {max_label + 1}."
        )
    head, history, logits = fit(
        nn.Linear(train_x.shape[1], num_classes, device="meta"),
        train_x,
        train_y.long(),
        test_x,
        F.cross_entropy,
        desc="linear probe",
    )
    return ProbeResult(top1_accuracy(logits, test_y.to(logits.device)), head, history)
