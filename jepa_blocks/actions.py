"""Actions: the :class:`ActionEncoder` and the relative transformations it embeds.

seq-JEPA conditions on *relative* actions a_i, the transformation taking view x_i to x_{i+1}
(spec §1.3). This module turns absolute per-view latents into those actions, batched and
differentiable: rotations (Euler xyz -> quaternion -> q_i^-1 q_{i+1}), transformation
parameters (plain differences, optionally with the official code's view-axis L2
normalisation), and positions (differences divided by the image size).

Quaternions are stored scalar-last, ``(x, y, z, w)``, as scipy's ``as_quat()`` returns them,
so actions match the official 3DIEBench pipeline.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jepa_blocks._checks import require_finite, require_positive_ints
from jepa_blocks._typing import Bool, Float, typecheck
from jepa_blocks.layers.mlp import Mlp, remap_state_dict_keys

__all__ = [
    "ActionEncoder",
    "euler_to_quaternion",
    "quaternion_multiply",
    "quaternion_conjugate",
    "canonicalize_quaternion",
    "relative_rotation",
    "relative_rotation_from_euler",
    "threediebench_actions",
    "parameter_deltas",
    "position_deltas",
]


def _require_finite(name: str, value: Tensor) -> None:
    require_finite(
        name,
        value,
        "clean or mask them before calling (e.g. torch.nan_to_num, or drop the affected "
        "sequences).",
    )


# ----------------------------------------------------------------------------- quaternions


@typecheck
def euler_to_quaternion(euler: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 4"]:
    """Extrinsic x-y-z Euler angles (radians) to unit quaternions ``(x, y, z, w)``.

    Matches ``scipy.spatial.transform.Rotation.from_euler("xyz", euler).as_quat()``
    (lower-case ``xyz`` is extrinsic: R = Rz(c) Ry(b) Rx(a)), without sign canonicalisation.
    """
    half = euler * 0.5
    cx, cy, cz = torch.cos(half).unbind(-1)
    sx, sy, sz = torch.sin(half).unbind(-1)
    # q = qz * qy * qx for extrinsic xyz.
    w = cz * cy * cx + sz * sy * sx
    x = cz * cy * sx - sz * sy * cx
    y = cz * sy * cx + sz * cy * sx
    z = sz * cy * cx - cz * sy * sx
    return torch.stack((x, y, z, w), dim=-1)


@typecheck
def quaternion_multiply(
    q: Float[Tensor, "*batch 4"], r: Float[Tensor, "*batch 4"]
) -> Float[Tensor, "*batch 4"]:
    """Hamilton product ``q r`` of scalar-last quaternions (rotation r first, then q)."""
    qx, qy, qz, qw = q.unbind(-1)
    rx, ry, rz, rw = r.unbind(-1)
    return torch.stack(
        (
            qw * rx + qx * rw + qy * rz - qz * ry,
            qw * ry - qx * rz + qy * rw + qz * rx,
            qw * rz + qx * ry - qy * rx + qz * rw,
            qw * rw - qx * rx - qy * ry - qz * rz,
        ),
        dim=-1,
    )


@typecheck
def quaternion_conjugate(q: Float[Tensor, "*batch 4"]) -> Float[Tensor, "*batch 4"]:
    """The conjugate, which is the inverse of a unit quaternion."""
    return q * q.new_tensor([-1.0, -1.0, -1.0, 1.0])


@typecheck
def canonicalize_quaternion(q: Float[Tensor, "*batch 4"]) -> Float[Tensor, "*batch 4"]:
    """Pick the representative with ``w >= 0`` (q and -q are the same rotation).

    The official code does not canonicalise (spec §7.4.6); regression targets that mix both
    signs are harder to fit, for every method alike.
    """
    sign = torch.where(q[..., 3:] < 0, -1.0, 1.0).to(q.dtype)
    return q * sign


@typecheck
def relative_rotation(
    quaternions: Float[Tensor, "*batch m_plus_1 4"], *, canonical: bool = False
) -> Float[Tensor, "*batch m 4"]:
    """Relative rotations ``q_i^-1 q_{i+1}`` between consecutive views.

    Args:
        quaternions: absolute orientations of the ``m + 1`` views, unit, scalar-last.
        canonical: return the ``w >= 0`` representative of each relative rotation.

    Returns:
        ``m`` actions; action i takes view i to view i + 1 (``R_i^-1 R_{i+1}``, as
        ``scipy``'s ``(R_i.inv() * R_{i+1}).as_quat()`` in the official code).

    Raises:
        ValueError: fewer than two views.
    """
    if quaternions.shape[-2] < 2:
        raise ValueError(
            f"relative_rotation needs at least 2 views on axis -2, got {quaternions.shape[-2]}; "
            "pass the m + 1 absolute orientations of a sequence."
        )
    inverse_first = quaternion_conjugate(quaternions[..., :-1, :])
    rel = quaternion_multiply(inverse_first, quaternions[..., 1:, :])
    return canonicalize_quaternion(rel) if canonical else rel


@typecheck
def relative_rotation_from_euler(
    euler: Float[Tensor, "*batch m_plus_1 3"], *, canonical: bool = False
) -> Float[Tensor, "*batch m 4"]:
    """:func:`relative_rotation` of :func:`euler_to_quaternion` (3DIEBench's ``rot`` action)."""
    return relative_rotation(euler_to_quaternion(euler), canonical=canonical)


@typecheck
def threediebench_actions(
    latents: Float[Tensor, "m_plus_1 7"],
    *,
    action: str = "rot",
    canonical: bool = False,
) -> Float[Tensor, "m da"]:
    """Relative actions between consecutive 3DIEBench views (spec §1.3).

    Args:
        latents: the views' latent factors in sequence order (yaw, pitch, roll, floor_hue,
            spot_theta, spot_phi, spot_hue).
        action: ``"rot"``: the quaternion of ``R_i^-1 R_{i+1}`` (scalar last, 4 values);
            ``"rotcolor"``: that quaternion then ``[Δfloor_hue, Δspot_hue]``, plain
            differences of ``latents[:, [3, 6]]`` without hue wrap-around (6 values).
        canonical: return the ``w >= 0`` representative of each quaternion.

    Returns:
        ``m`` actions in the latents' dtype; action i takes view i to view i + 1.

    Raises:
        ValueError: an unknown ``action``.
    """
    if action not in ("rot", "rotcolor"):
        raise ValueError(f"action must be 'rot' or 'rotcolor', got {action!r}.")
    rotation = relative_rotation_from_euler(latents[:, :3], canonical=canonical)
    if action == "rot":
        return rotation
    colour = latents[:, [3, 6]]
    return torch.cat([rotation, colour[1:] - colour[:-1]], dim=-1)


@typecheck
def parameter_deltas(
    params: Float[Tensor, "*batch m_plus_1 p"], *, normalize_over_views: bool = False
) -> Float[Tensor, "*batch m p"]:
    """Differences of consecutive transformation parameters, ``p_{i+1} - p_i``.

    Args:
        params: absolute parameters of the ``m + 1`` views (crop i, j, h, w; jitter; blur ...).
        normalize_over_views: first L2-normalise each parameter *across the views* of its
            sequence, as the official code does (``F.normalize(p, dim=1)``, spec §1.3). This
            makes an action depend on the other views and on the sequence length; off by
            default (the paper only says "normalized"), on to reproduce the code's numbers.
    """
    if params.shape[-2] < 2:
        raise ValueError(
            f"parameter_deltas needs at least 2 views on axis -2, got {params.shape[-2]}."
        )
    if normalize_over_views:
        params = F.normalize(params, p=2.0, dim=-2)
    return params[..., 1:, :] - params[..., :-1, :]


@typecheck
def position_deltas(
    positions: Float[Tensor, "*batch m_plus_1 2"], *, size: float | tuple[float, float] = 1.0
) -> Float[Tensor, "*batch m 2"]:
    """Relative positions ``(pos_{i+1} - pos_i) / size`` of consecutive glimpses (PLS)."""
    if positions.shape[-2] < 2:
        raise ValueError(
            f"position_deltas needs at least 2 positions on axis -2, got {positions.shape[-2]}."
        )
    scale = positions.new_tensor(size if isinstance(size, tuple) else (size, size))
    if not bool((scale > 0).all()):
        raise ValueError(f"size must be positive, got {size}.")
    return (positions[..., 1:, :] - positions[..., :-1, :]) / scale


# ----------------------------------------------------------------------------- encoder


class ActionEncoder(nn.Module):
    """Embed raw actions: the paper's ``Linear(da -> de, no bias) -> BatchNorm1d(affine=False)``.

    Accepts one action per sequence ``(b, da)`` or one per token ``(b, m, da)``. With a
    ``padding_mask`` (``True`` = padding) the normalisation statistics come from the real rows
    only, so padding never pollutes BatchNorm's running statistics; padded rows come out zero.

    Args:
        dim_action: raw action width ``da`` (4 for a quaternion).
        dim_embed: embedding width ``de`` (128 in the paper).
        hidden: if given, an MLP ``Linear(da, hidden) -> GELU -> Linear(hidden, de)``
            replaces the single linear map.
        norm: ``"batch"`` (the paper: BatchNorm without affine), ``"layer"`` or ``None``.
        check_finite: raise on NaN/Inf actions before any statistics change (one host sync
            on CUDA; skipped under ``torch.compile`` and CUDA-graph capture).

    Raises:
        ValueError: non-positive widths or an unknown ``norm``.
    """

    def __init__(
        self,
        dim_action: int,
        dim_embed: int = 128,
        *,
        hidden: int | None = None,
        norm: str | None = "batch",
        momentum: float = 0.1,
        eps: float = 1e-5,
        check_finite: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        require_positive_ints(dim_action=dim_action, dim_embed=dim_embed)
        if hidden is not None and hidden < 1:
            raise ValueError(f"hidden must be a positive int or None, got {hidden!r}.")
        if norm not in ("batch", "layer", None):
            raise ValueError(f"norm must be 'batch', 'layer' or None, got {norm!r}.")
        factory = {"device": device, "dtype": dtype}
        self.dim_action = dim_action
        self.dim_embed = dim_embed
        self.check_finite = check_finite
        if hidden is None:
            self.proj: nn.Module = nn.Linear(dim_action, dim_embed, bias=False, **factory)
        else:
            self.proj = Mlp(dim_action, hidden, dim_embed, act_layer=nn.GELU, **factory)
            # Written as nn.Sequential(Linear, GELU, Linear) before the one Mlp.
            remap_state_dict_keys(self, {"proj.0.": "proj.fc1.", "proj.2.": "proj.fc2."})
        self.norm_kind = norm
        self.norm: nn.Module
        if norm == "batch":
            self.norm = nn.BatchNorm1d(
                dim_embed, eps=eps, momentum=momentum, affine=False, **factory
            )
        elif norm == "layer":
            self.norm = nn.LayerNorm(dim_embed, eps=eps, elementwise_affine=False, **factory)
        else:
            self.norm = nn.Identity()

    @typecheck
    def forward(
        self,
        actions: Float[Tensor, "*batch {self.dim_action}"],
        padding_mask: Bool[Tensor, "*batch"] | None = None,
    ) -> Float[Tensor, "*batch {self.dim_embed}"]:
        """Embed ``actions`` of shape ``(b, da)`` or ``(b, m, da)``.

        Args:
            actions: raw relative actions.
            padding_mask: ``True`` where a row is padding (the convention of
                ``nn.MultiheadAttention``); padded rows are excluded from the normalisation
                statistics and come out as zeros.

        Raises:
            ValueError: wrong rank or width, an empty batch, a mask of the wrong shape, NaN or
                Inf actions. Nothing (BatchNorm statistics included) changes on a rejected call.
        """
        if actions.dim() not in (2, 3) or actions.shape[-1] != self.dim_action:
            raise ValueError(
                f"actions must have shape (b, {self.dim_action}) or (b, m, {self.dim_action}), "
                f"got {tuple(actions.shape)}; check dim_action matches your dataset's actions."
            )
        if actions.numel() == 0:
            raise ValueError(f"actions is empty (shape {tuple(actions.shape)}); need b, m >= 1.")
        if not actions.is_floating_point():
            raise ValueError(f"actions must be floating point, got {actions.dtype}; use .float().")
        if padding_mask is not None and padding_mask.shape != actions.shape[:-1]:
            raise ValueError(
                f"padding_mask must have shape {tuple(actions.shape[:-1])} (actions without "
                f"the last axis), got {tuple(padding_mask.shape)}."
            )
        if self.check_finite:
            _require_finite("actions", actions)
        batch_shape = actions.shape[:-1]
        flat = actions.reshape(-1, self.dim_action)  # BN sees every (sequence, token) row
        embedded = self.proj(flat)
        if padding_mask is None:
            out = self._normalize(embedded)
        else:
            keep = ~padding_mask.reshape(-1)
            out = torch.zeros_like(embedded)
            out = out.index_put((keep.nonzero(as_tuple=True)[0],), self._normalize(embedded[keep]))
        return out.reshape(*batch_shape, self.dim_embed)

    def _normalize(self, rows: Tensor) -> Tensor:
        if self.norm_kind == "batch" and self.training:
            if torch.compiler.is_compiling():
                # With a padding mask the number of real rows is data-dependent: the compiled
                # graph cannot branch on it, so the check becomes a runtime assertion there.
                torch._check(
                    rows.shape[0] >= 2,
                    lambda: "BatchNorm in training mode needs at least 2 action rows",
                )
            elif rows.shape[0] < 2:
                raise ValueError(
                    "BatchNorm in training mode needs at least 2 action rows, got "
                    f"{rows.shape[0]}; use a larger batch, eval mode, or norm='layer'/None."
                )
        return self.norm(rows)

    def extra_repr(self) -> str:
        return f"dim_action={self.dim_action}, dim_embed={self.dim_embed}, norm={self.norm_kind!r}"
