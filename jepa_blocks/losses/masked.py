"""Masked-prediction losses of I-JEPA (smooth L1 to layer-normed target tokens) and V-JEPA
(``mean |z - h|^p / p``, p = 1), averaged over the real (non-padding) target tokens."""

import torch
import torch.nn.functional as F
from torch import Tensor

from jepa_blocks._typing import Bool, Float, typecheck

__all__ = ["MASKED_LOSSES", "masked_prediction_loss"]

MASKED_LOSSES = ("smooth_l1", "l1")


@typecheck
def masked_prediction_loss(
    pred: Float[Tensor, "*tokens d"],
    target: Float[Tensor, "*tokens d"],
    padding_mask: Bool[Tensor, "*tokens"] | None = None,
    *,
    kind: str = "smooth_l1",
    beta: float = 1.0,
) -> Float[Tensor, ""]:
    """The element-wise loss averaged over the embedding axis and the real tokens.

    Args:
        pred, target: predictions and targets (the caller layer-norms the targets, as I-JEPA
            does, and stops their gradient).
        padding_mask: True at padding tokens, which count for nothing.
        kind: ``"smooth_l1"`` (I-JEPA, ``beta`` as ``F.smooth_l1_loss``) or ``"l1"``
            (V-JEPA's ``|z - h|^p / p`` with ``p = 1``).

    Raises:
        ValueError: shapes that differ, an unknown ``kind``, a padding mask of another shape,
            or no real token.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ; gather the "
            "target tokens at the predicted positions (masked.gather_targets)."
        )
    if kind not in MASKED_LOSSES:
        raise ValueError(f"kind must be one of {MASKED_LOSSES}, got {kind!r}.")
    if kind == "smooth_l1":
        per_element = F.smooth_l1_loss(pred, target, reduction="none", beta=beta)
    else:
        per_element = (pred - target).abs()
    per_token = per_element.mean(dim=-1)
    if padding_mask is None:
        return per_token.mean()
    if padding_mask.shape != per_token.shape:
        raise ValueError(
            f"padding_mask has shape {tuple(padding_mask.shape)}, expected "
            f"{tuple(per_token.shape)} (the tokens of pred)."
        )
    real = (~padding_mask).to(per_token.dtype)
    count = real.sum()
    if not torch.compiler.is_compiling() and not per_token.is_cuda and float(count) == 0:
        raise ValueError("every token is padding: there is nothing to predict.")
    return (per_token * real).sum() / count.clamp_min(1)
