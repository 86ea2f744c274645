"""seq-JEPA's loss: negative cosine similarity to a stop-gradient target.

L = 1 - cos(z_hat, sg(z)), averaged over the batch (Ghaemi et al., seq-JEPA, NeurIPS 2025,
§2.2; the same form as BYOL's normalised-MSE, which equals 2 - 2 cos). It lies in [0, 2].
"""

import torch.nn.functional as F
from torch import Tensor, nn

from jepa_blocks._typing import Float, typecheck

__all__ = ["SeqJEPALoss", "seq_jepa_loss"]

_REDUCTIONS = ("mean", "sum", "none")


@typecheck
def seq_jepa_loss(
    prediction: Float[Tensor, "b *rest d"],
    target: Float[Tensor, "b *rest d"],
    *,
    reduction: str = "mean",
    eps: float = 1e-8,
) -> Float[Tensor, "..."]:
    """``1 - cos(prediction, stopgrad(target))`` over the last axis.

    Args:
        prediction: the predictor's output ``z_hat``.
        target: the target embedding; gradients never flow into it.
        reduction: ``"mean"`` (the paper), ``"sum"`` or ``"none"`` (per-sample losses).
        eps: guards the norms, so a zero vector gives cosine 0 (loss 1), never NaN.

    Raises:
        ValueError: shapes that differ, an empty batch or an unknown reduction.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}.")
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} must have "
            "the same shape; the predictor's dim_out must equal the encoder's dim."
        )
    if prediction.shape[0] == 0:
        raise ValueError("the batch is empty; pass at least one sample.")
    target = target.detach().to(prediction.dtype)
    cosine = F.cosine_similarity(prediction, target, dim=-1, eps=eps)
    loss = 1.0 - cosine
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class SeqJEPALoss(nn.Module):
    """Module form of :func:`seq_jepa_loss`; holds the reduction and ``eps``."""

    def __init__(self, *, reduction: str = "mean", eps: float = 1e-8) -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}.")
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}.")
        self.reduction = reduction
        self.eps = eps

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        return seq_jepa_loss(prediction, target, reduction=self.reduction, eps=self.eps)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
