"""The optimiser every example uses (AdamW on weight-decay groups, fused where PyTorch has
the kernel), restoring its state from a checkpoint, and the warm-up + cosine schedule."""

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["adamw", "load_optimizer_state", "parameter_groups", "warmup_cosine"]


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weights (``ndim > 1``, learned tokens included), none on biases and
    norms, as the official seq-JEPA ``main_pls.py`` (spec §3.3) and most SSL code.

    Raises:
        ValueError: a negative ``weight_decay``.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}.")
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim > 1 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def warmup_cosine(
    step: int,
    *,
    warmup_steps: int,
    total_steps: int,
    lr: float,
    initial_lr: float,
    final_lr: float,
) -> float:
    """Linear warm-up from ``initial_lr`` to ``lr``, then a cosine from ``lr`` to ``final_lr``
    (seq-JEPA spec §3.1), as a *multiplier of* ``lr`` for ``torch.optim.lr_scheduler.LambdaLR``.

    Raises:
        ValueError: a non-positive ``lr`` or negative step counts.
    """
    if lr <= 0:
        raise ValueError(f"lr must be > 0 (the schedule is a multiplier of it), got {lr}.")
    if warmup_steps < 0 or total_steps < 0:
        raise ValueError(
            f"warmup_steps and total_steps must be >= 0, got {warmup_steps} and {total_steps}."
        )
    if step < warmup_steps:
        value = initial_lr + (lr - initial_lr) * step / warmup_steps
    else:
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        value = final_lr + (lr - final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return value / lr


def adamw(
    model: nn.Module, *, lr: float, weight_decay: float, device: torch.device
) -> torch.optim.AdamW:
    """AdamW on :func:`parameter_groups`, with the fused kernel on the CPU and CUDA: on the CPU
    the default is the per-parameter loop, ~20 % of the seq-JEPA demo's step
    (``benchmarks/results/step-cpu.md``). Fused agrees with the loop to float32 rounding, not
    bit for bit."""
    return torch.optim.AdamW(
        parameter_groups(model, weight_decay),
        lr=lr,
        fused=True if device.type in ("cpu", "cuda") else None,
    )


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: Mapping[str, Any]) -> None:
    """``optimizer.load_state_dict(state)`` that keeps the optimiser's own kernel choice
    (``fused``): ``load_state_dict`` takes the saved groups' settings, so a checkpoint written
    before the fused optimiser would switch a resumed run back to the per-parameter loop."""
    fused = [group.get("fused") for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, flag in zip(optimizer.param_groups, fused, strict=True):
        group["fused"] = flag
