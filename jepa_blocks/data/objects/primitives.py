"""Objects as unions of analytic primitives, and the rotation and colour conventions.

An object is a union of primitives, each an affine image of one of three unit solids, all
cut by the cube ``|x|, |y|, |z| <= 1`` of its local frame:

- ``ellipsoid``: ``x^2 + y^2 + z^2 <= 1``;
- ``box``: the cube itself;
- ``frustum``: ``x^2 + y^2 <= r(z)^2`` with ``r(z) = 1 - taper * (z + 1) / 2``: a cylinder for
  ``taper = 0``, a cone with its apex at ``z = +1`` for ``taper = 1``.

:class:`Part` is one primitive as a plain record (what :mod:`~jepa_blocks.data.objects.shapes`
builds), :class:`Primitives` a padded batch of objects as tensors (what
:mod:`~jepa_blocks.data.objects.render` draws). A view rotates the object by ``R`` about its
origin: a point ``p`` of the object appears at ``R p``. :func:`euler_to_matrix` builds ``R``
from 3DIEBench's Euler latents through :func:`jepa_blocks.actions.euler_to_quaternion`, so
images and quaternion actions agree.
"""

from dataclasses import dataclass

import torch

from jepa_blocks._typing import Bool, Float, Int, Tensor, typecheck
from jepa_blocks.actions import euler_to_quaternion

__all__ = [
    "PRIMITIVE_KINDS",
    "ELLIPSOID",
    "BOX",
    "FRUSTUM",
    "Part",
    "Primitives",
    "pack_parts",
    "quaternion_to_matrix",
    "euler_to_matrix",
    "hsv_to_rgb",
    "light_direction",
]

#: Primitive kinds, in the order of their integer codes in :attr:`Primitives.kind`.
PRIMITIVE_KINDS: tuple[str, ...] = ("ellipsoid", "box", "frustum")
#: The integer codes of :data:`PRIMITIVE_KINDS`.
ELLIPSOID, BOX, FRUSTUM = 0, 1, 2

# The spot light's pole: above and in front of the object, so every (theta, phi) lights the
# visible side; theta tilts the light away from the pole towards phi.
_LIGHT_POLE = (0.0, 0.70710678, 0.70710678)


@dataclass(frozen=True)
class Part:
    """One primitive of an object, in the object's frame (a plain record for generators).

    Args:
        kind: ``"ellipsoid"``, ``"box"`` or ``"frustum"``.
        center: position of the primitive's centre.
        half_size: semi-axes along the primitive's local x, y, z (a frustum's axis is z).
        euler: the primitive's orientation, extrinsic xyz Euler angles in radians (the same
            convention as the view rotations).
        color: RGB in ``[0, 1]``.
        taper: frustums only: 0 is a cylinder, 1 a cone whose apex is at local ``z = +1``.
    """

    kind: str
    center: tuple[float, float, float]
    half_size: tuple[float, float, float]
    color: tuple[float, float, float]
    euler: tuple[float, float, float] = (0.0, 0.0, 0.0)
    taper: float = 0.0


@dataclass(frozen=True)
class Primitives:
    """A batch of ``o`` objects, each a union of up to ``k`` primitives (padded, see ``valid``).

    Index it with an int tensor of object ids to get one object per view for :func:`render`.
    """

    kind: Int[Tensor, "o k"]
    center: Float[Tensor, "o k 3"]
    half_size: Float[Tensor, "o k 3"]
    rotation: Float[Tensor, "o k 3 3"]
    color: Float[Tensor, "o k 3"]
    taper: Float[Tensor, "o k"]
    valid: Bool[Tensor, "o k"]

    @property
    def num_objects(self) -> int:
        return self.kind.shape[0]

    def __getitem__(self, index: Tensor) -> "Primitives":
        return Primitives(
            kind=self.kind[index],
            center=self.center[index],
            half_size=self.half_size[index],
            rotation=self.rotation[index],
            color=self.color[index],
            taper=self.taper[index],
            valid=self.valid[index],
        )


def pack_parts(objects: list[list[Part]]) -> Primitives:
    """Pack per-object part lists into padded :class:`Primitives` tensors.

    Raises:
        ValueError: no objects, an object without parts, an unknown kind, a non-positive
            half size or a taper outside ``[0, 1]``.
    """
    if not objects or any(len(parts) == 0 for parts in objects):
        raise ValueError("pack_parts needs at least one object, each with at least one Part.")
    k = max(len(parts) for parts in objects)
    o = len(objects)
    kind = torch.zeros(o, k, dtype=torch.int64)
    center = torch.zeros(o, k, 3)
    half = torch.ones(o, k, 3)  # padding keeps 1 so inverse scales stay finite
    euler = torch.zeros(o, k, 3)
    color = torch.zeros(o, k, 3)
    taper = torch.zeros(o, k)
    valid = torch.zeros(o, k, dtype=torch.bool)
    for i, parts in enumerate(objects):
        for j, part in enumerate(parts):
            if part.kind not in PRIMITIVE_KINDS:
                raise ValueError(
                    f"unknown primitive kind {part.kind!r}; use one of {PRIMITIVE_KINDS}."
                )
            if min(part.half_size) <= 0:
                raise ValueError(f"half_size must be positive, got {part.half_size}.")
            if not 0.0 <= part.taper <= 1.0:
                raise ValueError(f"taper must be in [0, 1], got {part.taper}.")
            kind[i, j] = PRIMITIVE_KINDS.index(part.kind)
            center[i, j] = torch.tensor(part.center)
            half[i, j] = torch.tensor(part.half_size)
            euler[i, j] = torch.tensor(part.euler)
            color[i, j] = torch.tensor(part.color)
            taper[i, j] = part.taper
            valid[i, j] = True
    return Primitives(kind, center, half, euler_to_matrix(euler), color, taper, valid)


# ----------------------------------------------------------------------------- conventions


@typecheck
def quaternion_to_matrix(quaternion: Float[Tensor, "*batch 4"]) -> Float[Tensor, "*batch 3 3"]:
    """Rotation matrices of scalar-last quaternions ``(x, y, z, w)`` (normalised first).

    ``q`` and ``-q`` give the same matrix; matches scipy's ``Rotation.from_quat(q).as_matrix()``.
    """
    x, y, z, w = (quaternion / quaternion.norm(dim=-1, keepdim=True)).unbind(-1)
    rows = (
        (1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)),
        (2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)),
        (2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)),
    )
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


@typecheck
def euler_to_matrix(euler: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 3 3"]:
    """Extrinsic xyz Euler angles to ``R = Rz(c) Ry(b) Rx(a)``, through the quaternion.

    Going through :func:`jepa_blocks.actions.euler_to_quaternion` (rather than multiplying
    the three axis rotations) makes the rendered orientation and the quaternion actions share
    one code path, so they cannot drift apart.
    """
    return quaternion_to_matrix(euler_to_quaternion(euler))


@typecheck
def hsv_to_rgb(
    hue: Float[Tensor, "*batch"],
    saturation: Float[Tensor, "*batch"],
    value: Float[Tensor, "*batch"],
) -> Float[Tensor, "*batch 3"]:
    """HSV (hue in turns, wrapping) to RGB in ``[0, 1]``, as ``colorsys.hsv_to_rgb``."""
    k = torch.tensor([5.0, 3.0, 1.0], dtype=hue.dtype, device=hue.device)
    # The branch-free form: channel n is v - v s clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6.
    kk = torch.remainder(k + 6.0 * hue[..., None], 6.0)
    weight = torch.minimum(kk, 4.0 - kk).clamp(0.0, 1.0)
    return value[..., None] * (1.0 - saturation[..., None] * weight)


@typecheck
def light_direction(
    theta: Float[Tensor, "*batch"], phi: Float[Tensor, "*batch"]
) -> Float[Tensor, "*batch 3"]:
    """Unit vector towards the spot light: ``theta`` away from the pole, azimuth ``phi``.

    The pole is ``(0, 1, 1) / sqrt(2)`` in camera coordinates (above and in front), so with
    3DIEBench's ``theta`` in ``[0, pi/4]`` the light always reaches the visible side.
    """
    pole = torch.tensor(_LIGHT_POLE, dtype=theta.dtype, device=theta.device)
    # An orthonormal frame (e1, e2, pole) with e1 = x, e2 = pole x e1.
    e1 = torch.tensor([1.0, 0.0, 0.0], dtype=theta.dtype, device=theta.device)
    e2 = torch.linalg.cross(pole, e1)
    st = torch.sin(theta)[..., None]
    return (
        torch.cos(theta)[..., None] * pole
        + st * torch.cos(phi)[..., None] * e1
        + st * torch.sin(phi)[..., None] * e2
    )
