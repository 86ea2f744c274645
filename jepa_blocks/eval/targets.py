"""Regression targets of the transformation probes: absolute and path rotations, displacements.

The equivariance probes of spec §4.1 regress a transformation from frozen features: the
absolute orientation of one view ("Indiv. Rot."), and for path integration the transform from
view 1 to view M + 1, composed from the batch's latents or actions. A path target is any
:data:`PathTargetFn`; :func:`rotation_path_target` and :func:`additive_path_target` cover the
rotation, position and augmentation-parameter actions of the paper.
"""

from collections.abc import Callable

import torch

from jepa_blocks._typing import Float, Tensor, typecheck
from jepa_blocks.actions import (
    canonicalize_quaternion,
    euler_to_quaternion,
    quaternion_multiply,
    relative_rotation,
)
from jepa_blocks.eval.contract import Batch

__all__ = [
    "PathTargetFn",
    "absolute_rotation_target",
    "rotation_path_target",
    "additive_path_target",
]

PathTargetFn = Callable[[Batch, int], Tensor]
"""``target_fn(batch, m) -> (b, p)``: the transform from view 1 to view m + 1 of a batch."""

@typecheck
def absolute_rotation_target(
    latents: Float[Tensor, "*batch l"], *, canonical: bool = False
) -> Float[Tensor, "*batch 4"]:
    """The absolute orientation quaternion ``(x, y, z, w)`` of latents whose first 3 entries
    are extrinsic xyz Euler angles (3DIEBench), the "Indiv. Rot." target (spec §4.1).

    Not canonicalised by default, like the official targets (spec §7.4.6); for in-distribution
    3DIEBench angles (each in ``[-pi/2, pi/2]``) ``w`` is non-negative anyway.

    Raises:
        ValueError: fewer than 3 latent entries.
    """
    if latents.shape[-1] < 3:
        raise ValueError(
            f"latents have {latents.shape[-1]} entries, need >= 3 (Euler x, y, z first)."
        )
    quaternion = euler_to_quaternion(latents[..., :3])
    return canonicalize_quaternion(quaternion) if canonical else quaternion


def rotation_path_target(batch: Batch, m: int, *, canonical: bool = False) -> Tensor:
    """Quaternion of ``R_1^-1 R_{m+1}``, the rotation from view 1 to view m + 1 (spec §4.1).

    From ``batch["latents"]`` (Euler xyz first) via :func:`jepa_blocks.actions.relative_rotation`
    when present; otherwise the product ``a_1 a_2 ... a_m`` of the relative-rotation actions,
    which is the same quaternion when the actions are the non-canonicalised
    ``q_i^-1 q_{i+1}`` (as in the official 3DIEBench pipeline).

    Raises:
        ValueError: ``m`` outside ``[1, views - 1]``, or actions that are not quaternions.
    """
    views = batch["views"].shape[1]
    if not 1 <= m <= views - 1:
        raise ValueError(
            f"path integration over M {m} needs view M + 1, but sequences have {views} "
            f"views; use M in [1, {views - 1}]."
        )
    if "latents" in batch:
        q = absolute_rotation_target(batch["latents"])
        target = relative_rotation(torch.stack((q[:, 0], q[:, m]), dim=1))[:, 0]
    else:
        actions = batch["actions"]
        if actions.shape[-1] != 4:
            raise ValueError(
                f"composing rotations needs quaternion actions (da = 4), got da = "
                f"{actions.shape[-1]}; pass latents or a target_fn for this action kind."
            )
        target = actions[:, 0]
        for i in range(1, m):
            target = quaternion_multiply(target, actions[:, i])
    return canonicalize_quaternion(target) if canonical else target


def additive_path_target(batch: Batch, m: int) -> Tensor:
    """``a_1 + ... + a_m``: the displacement from view 1 to view m + 1 for additive actions.

    For position deltas this is ``(pos_{m+1} - pos_1) / size`` (the STL-10 saccade target);
    for plain parameter deltas it is ``p_{m+1} - p_1``.

    Raises:
        ValueError: ``m`` outside ``[1, actions available]``.
    """
    actions = batch["actions"]
    if not 1 <= m <= actions.shape[1]:
        raise ValueError(
            f"path integration over M {m} needs {m} actions, sequences have "
            f"{actions.shape[1]}; use M in [1, {actions.shape[1]}]."
        )
    return actions[:, :m].sum(dim=1)
