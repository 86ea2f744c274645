"""A pure-torch CPU ray caster for objects built from analytic primitives.

Why it exists: the built-in rendered-object dataset (:mod:`jepa_blocks.data.objects`), the
library's stand-in for 3DIEBench, must build on any machine with nothing but torch: no GPU, no
display, no graphics package. An object is a union of primitives, each an affine image of one
of three unit solids, all cut by the cube ``|x|, |y|, |z| <= 1`` of its local frame:

- ``ellipsoid``: ``x^2 + y^2 + z^2 <= 1``;
- ``box``: the cube itself;
- ``frustum``: ``x^2 + y^2 <= r(z)^2`` with ``r(z) = 1 - taper * (z + 1) / 2``: a cylinder for
  ``taper = 0``, a cone with its apex at ``z = +1`` for ``taper = 1``.

So every primitive is one quadric ``f(p) = c_xy (x^2 + y^2) + c_zz z^2 + c_z z + c_0 <= 0``
intersected with three slabs, and one closed-form ray test serves all three kinds.

The camera is orthographic, looks along ``-z`` (x right, y up, z towards the viewer) and sees
the square ``[-extent, extent]^2``; row 0 of an image is the top (``y = +extent``). A view
rotates the object by ``R`` about its origin: a point ``p`` of the object appears at ``R p``.
:func:`euler_to_matrix` builds ``R`` from 3DIEBench's Euler latents through
:func:`jepa_blocks.actions.euler_to_quaternion`, so images and quaternion actions agree.

Speed comes from testing each primitive only where it can appear: its screen-space bounding
rectangle, trimmed row by row to the columns its silhouette can cover (exact for boxes and
ellipsoids). Those (view, primitive, pixel) pairs are enumerated as flat tensors, the ray test
runs on all of them at once, and a ``scatter_reduce`` over depth-and-id keys keeps the nearest
hit per pixel. Shading (Lambert plus a Blinn-Phong highlight, from one coloured directional
"spot" light) then runs once per covered pixel, over a floor-coloured backdrop.
``benchmarks/render.py`` measures the throughput.
"""

from dataclasses import dataclass

import torch
from einops import rearrange

from jepa_blocks._typing import Bool, Float, Int, Tensor, typecheck
from jepa_blocks.actions import euler_to_quaternion

__all__ = [
    "PRIMITIVE_KINDS",
    "Part",
    "Primitives",
    "pack_parts",
    "quaternion_to_matrix",
    "euler_to_matrix",
    "hsv_to_rgb",
    "light_direction",
    "render",
    "render_latents",
    "MIN_IMAGE_SIZE",
    "MAX_IMAGE_SIZE",
]

#: Primitive kinds, in the order of their integer codes in :attr:`Primitives.kind`.
PRIMITIVE_KINDS: tuple[str, ...] = ("ellipsoid", "box", "frustum")
_ELLIPSOID, _BOX, _FRUSTUM = 0, 1, 2

#: Supported image sizes (pixels per side), inclusive.
MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 256

# The camera plane sits at z = _CAMERA_Z; objects fit in the unit ball, so depths are positive
# and their float32 bit patterns sort like the depths (used to pack depth and id in one int64).
_CAMERA_Z = 3.0
_ID_BITS = 24
_NO_HIT = torch.iinfo(torch.int64).max
# Pairs (view, primitive, pixel) rendered per chunk: bounds peak memory to a few hundred MB.
_PAIRS_PER_CHUNK = 1 << 20

# Shading constants: a white-ish sky term so shadowed sides keep their hue, a light-tinted
# Lambert term, and a small highlight that shows the light's direction on curved parts.
_AMBIENT = 0.30
_DIFFUSE = 0.75
_SPECULAR = 0.25
_SHININESS = 24.0
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


# ----------------------------------------------------------------------------- the renderer


def _check_size(image_size: int) -> None:
    if not isinstance(image_size, int) or not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise ValueError(
            f"image_size must be an int in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}], got "
            f"{image_size!r}; render larger images by resizing afterwards."
        )


def _quadric(prims: Primitives) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-primitive coefficients ``(c_xy, c_zz, c_z, c_0)`` of the local quadric."""
    kind = prims.kind
    a1 = -0.5 * prims.taper
    a0 = 1.0 + a1
    ones = torch.ones_like(prims.taper)
    zeros = torch.zeros_like(prims.taper)
    is_box = kind == _BOX
    is_frustum = kind == _FRUSTUM
    c_xy = torch.where(is_box, zeros, ones)
    c_zz = torch.where(is_box, zeros, torch.where(is_frustum, -a1 * a1, ones))
    c_z = torch.where(is_frustum, -2.0 * a0 * a1, zeros)
    c_0 = torch.where(is_frustum, -a0 * a0, -ones)
    return c_xy, c_zz, c_z, c_0


def _screen_rects(
    prims: Primitives, rotation: Tensor, image_size: int, extent: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pixel rectangles (first column, first row, width, height) bounding each primitive."""
    # World-space linear map of the local unit cube: L = R Q S.
    lin = rotation[:, None] @ prims.rotation * prims.half_size[..., None, :]
    center = (rotation[:, None] @ prims.center[..., None]).squeeze(-1)
    rows_xy = lin[..., :2, :]  # (b, k, 2, 3): the x and y rows
    box = rows_xy.abs().sum(-1)
    ellipsoid = rows_xy.norm(dim=-1)
    frustum = rows_xy[..., :2].norm(dim=-1) + rows_xy[..., 2].abs()
    kind = prims.kind[..., None]
    half = torch.where(kind == _BOX, box, torch.where(kind == _ELLIPSOID, ellipsoid, frustum))
    lo = center[..., :2] - half
    hi = center[..., :2] + half
    size = image_size
    # Pixel centres: x_j = extent ((2j + 1) / W - 1); y_i = extent (1 - (2i + 1) / H).
    col_lo = torch.ceil((lo[..., 0] / extent + 1.0) * size / 2 - 0.5).clamp(min=0)
    col_hi = torch.floor((hi[..., 0] / extent + 1.0) * size / 2 - 0.5).clamp(max=size - 1)
    row_lo = torch.ceil((1.0 - hi[..., 1] / extent) * size / 2 - 0.5).clamp(min=0)
    row_hi = torch.floor((1.0 - lo[..., 1] / extent) * size / 2 - 0.5).clamp(max=size - 1)
    width = (col_hi - col_lo + 1).clamp(min=0).long() * prims.valid
    height = (row_hi - row_lo + 1).clamp(min=0).long() * prims.valid
    return col_lo.long(), row_lo.long(), width, height


def _ray_tables(
    prims: Primitives,
    rotation: Tensor,
    light_dir: Tensor,
    light_rgb: Tensor,
    col0: Tensor,
    row0: Tensor,
    image_size: int,
    extent: float,
) -> tuple[Tensor, Tensor]:
    """Per-(view, primitive) coefficient tables for the pair test and for shading.

    A pixel's ray starts in the plane z = (primitive centre's depth) at ``(u, v)``; with
    ``u' = u - c_x``, ``v' = v - c_y`` its local origin is ``o = u' e0 + v' e1`` and its local
    direction ``dl`` is constant, so the quadric and slab terms are small polynomials in
    ``(u', v')`` whose coefficients are computed here once per primitive. Starting at the
    centre's plane (not the camera) keeps float32 cancellation small for tiny primitives.
    """
    # World -> local linear map: M = S^-1 Q^T R^T; its columns e0, e1 and -dl drive the rays.
    m = (prims.rotation.transpose(-1, -2) / prims.half_size[..., :, None]) @ rotation.transpose(
        -1, -2
    )[:, None]
    e0, e1, dl = m[..., 0], m[..., 1], -m[..., 2]
    center = (rotation[:, None] @ prims.center[..., None]).squeeze(-1)
    c_xy, c_zz, c_z, c_0 = _quadric(prims)
    w = torch.stack((c_xy, c_xy, c_zz), dim=-1)  # per-axis weights of the quadric
    tiny = 1e-7
    dl_safe = torch.where(dl.abs() < tiny, torch.full_like(dl, tiny), dl)
    inv = 1.0 / dl_safe
    # Slab i: t_center = -(u' e0_i + v' e1_i) / dl_i, half-width 1 / |dl_i|.
    slab = torch.stack((-e0 * inv, -e1 * inv, inv.abs()), dim=-1)  # (b, k, 3 axes, 3)
    quad = torch.stack(
        (
            (w * dl * dl).sum(-1),  # A
            (w * e0 * dl).sum(-1),  # half-B, u' coefficient
            (w * e1 * dl).sum(-1),  # half-B, v' coefficient
            0.5 * c_z * dl[..., 2],  # half-B, constant
            (w * e0 * e0).sum(-1),  # C: u'^2
            2.0 * (w * e0 * e1).sum(-1),  # C: u' v'
            (w * e1 * e1).sum(-1),  # C: v'^2
            c_z * e0[..., 2],  # C: u'
            c_z * e1[..., 2],  # C: v'
            c_0,  # C: constant
        ),
        dim=-1,
    )
    depth_offset = _CAMERA_Z - center[..., 2]
    # (u', v') of the rectangle's first pixel; the others step by one pixel pitch from there.
    first = torch.stack(
        (
            extent * ((2 * col0 + 1) / image_size - 1.0) - center[..., 0],
            extent * (1.0 - (2 * row0 + 1) / image_size) - center[..., 1],
            depth_offset,
        ),
        dim=-1,
    )
    pair_table = torch.cat((first, rearrange(slab, "b k a c -> b k (a c)"), quad), dim=-1)
    halfway = light_dir + light_dir.new_tensor([0.0, 0.0, 1.0])
    halfway = halfway / halfway.norm(dim=-1, keepdim=True)
    per_view = torch.cat((light_dir, light_rgb, halfway), dim=-1)[:, None].expand(
        -1, m.shape[1], -1
    )
    shade_table = torch.cat(
        (
            center[..., :2],
            depth_offset[..., None],
            e0,
            e1,
            dl,
            torch.stack((c_xy, c_zz, c_z, c_0), dim=-1),
            prims.color,
            per_view,
        ),
        dim=-1,
    )
    # Row-major per quantity, so gathering per pair/pixel yields contiguous rows.
    return (
        rearrange(pair_table, "b k r -> r (b k)").contiguous(),
        rearrange(shade_table, "b k r -> r (b k)").contiguous(),
    )


def _background(
    out: Tensor, floor_rgb: Tensor, light_dir: Tensor, light_rgb: Tensor, image_size: int
) -> None:
    """Fill ``out`` (b, 3, h, w) with a floor-coloured backdrop, darker at the bottom, and a soft
    light-coloured spot whose position follows the light (so the light latents are visible even
    where no object is). Values stay within [0, 1] for colours in [0, 1]."""
    size = image_size
    coords = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1.0
    gradient = (0.5 - 0.2 * coords)[:, None].expand(size, size)  # brighter towards the top
    # The spot is a separable Gaussian: an outer product of a row and a column profile.
    spot_x = 0.9 * light_dir[:, 0:1]
    spot_y = 0.9 * light_dir[:, 1:2] - 0.2
    across = torch.exp(-((coords - spot_x) ** 2) / 0.35)  # (b, w)
    down = torch.exp(-((-coords - spot_y) ** 2) / 0.35)  # (b, h), row 0 is y = +1
    spot = down[:, :, None] * across[:, None, :]
    torch.mul(floor_rgb[:, :, None, None], gradient, out=out)
    glow = (0.3 * light_rgb * floor_rgb)[:, :, None, None]
    out.addcmul_(glow, spot[:, None])


def _row_spans(
    slab: list[tuple[Tensor, Tensor, Tensor]],
    hb1: Tensor,
    hb0: Tensor,
    q2: Tensor,
    q1: Tensor,
    q0: Tensor,
    qa: Tensor,
    width: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """The columns of each rectangle row that the primitive can cover: first, last, empty.

    A ray at column c meets the slab box iff ``lo_i(c) <= hi_j(c)`` for all axes i != j, six
    linear conditions on c: their intersection is exact for boxes. When the quadric is convex
    along rows (``qa > 0`` and a negative leading coefficient), its discriminant must also be
    non-negative, an interval between two roots: exact for ellipsoids and cylinders. Spans
    get a margin of a twentieth of a pixel, so rounding never drops a pixel the exact test
    would hit; this only trims candidates, the per-pixel test still decides.
    """
    lo = torch.zeros_like(hb1)
    hi = width.to(hb1.dtype) - 1.0
    empty = width <= 0
    tiny = 1e-9
    for i in range(3):
        for j in range(3):
            if i == j:
                continue
            slope = slab[i][0] - slab[j][0]
            room = slab[j][2] - slab[i][1]  # lo_i(c) <= hi_j(c)  <=>  slope * c <= room
            bound = room / torch.where(slope.abs() > tiny, slope, 1.0)
            hi = torch.where(slope > tiny, torch.minimum(hi, bound), hi)
            lo = torch.where(slope < -tiny, torch.maximum(lo, bound), lo)
            empty |= (slope.abs() <= tiny) & (room < 0)
    a2 = hb1 * hb1 - qa * q2
    a1 = 2.0 * hb1 * hb0 - qa * q1
    a0 = hb0 * hb0 - qa * q0
    convex = (qa > 1e-6) & (a2 < -1e-12)
    disc = a1 * a1 - 4.0 * a2 * a0
    empty |= convex & (disc < 0)
    root = torch.sqrt(disc.clamp(min=0.0))
    denominator = torch.where(convex, 2.0 * a2, -1.0)
    lo = torch.where(convex, torch.maximum(lo, (-a1 + root) / denominator), lo)
    hi = torch.where(convex, torch.minimum(hi, (-a1 - root) / denominator), hi)
    first = torch.ceil(lo - 0.05).clamp(min=0)
    last = torch.minimum(torch.floor(hi + 0.05), width.to(hb1.dtype) - 1.0)
    empty |= last < first
    return first.long(), last.long(), empty


def _render_chunk(
    out: Tensor,
    prims: Primitives,
    rotation: Tensor,
    rects: tuple[Tensor, Tensor, Tensor, Tensor],
    floor_rgb: Tensor,
    light_dir: Tensor,
    light_rgb: Tensor,
    image_size: int,
    extent: float,
) -> None:
    """Render views into ``out`` (b, 3, h, w), a contiguous slice of the output."""
    b, k = prims.kind.shape
    size = image_size
    pixels = size * size
    pitch = 2.0 * extent / size
    col0, row0, width, height = rects
    pair_table, shade_table = _ray_tables(
        prims, rotation, light_dir, light_rgb, col0, row0, size, extent
    )
    _background(out, floor_rgb, light_dir, light_rgb, size)

    # ---- enumerate the rows of every primitive's rectangle, then the pixels of every row
    heights = height.reshape(-1)
    widths = width.reshape(-1)
    row_owner = torch.repeat_interleave(heights)  # flat (view * k + prim) id of each row
    if row_owner.numel() == 0:
        return
    row_in_rect = torch.arange(row_owner.numel()) - (torch.cumsum(heights, 0) - heights)[row_owner]
    per_row = pair_table.index_select(1, row_owner)
    (up0, vp0, zoff, s0u, s0v, h0, s1u, s1v, h1, s2u, s2v, h2) = per_row[:12]
    qa, bu, bv, b0, cuu, cuv, cvv, cu, cv, c00 = per_row[12:]
    vp = vp0 - pitch * row_in_rect.to(torch.float32)
    # Along a row u' = up0 + pitch * c for column c = 0 .. width - 1, so every term of the ray
    # test is a polynomial in c whose coefficients are computed once per row.
    slab = []
    for su, sv, h in ((s0u, s0v, h0), (s1u, s1v, h1), (s2u, s2v, h2)):
        centre = su * up0 + sv * vp
        slab.append((su * pitch, centre - h, centre + h))
    hb1 = bu * pitch
    hb0 = bu * up0 + bv * vp + b0
    q2 = cuu * pitch * pitch
    q1 = pitch * (2.0 * cuu * up0 + cuv * vp + cu)
    q0 = (cuu * up0 + cuv * vp + cu) * up0 + (cvv * vp + cv) * vp + c00
    first, last, empty = _row_spans(slab, hb1, hb0, q2, q1, q0, qa, widths[row_owner])
    row_width = torch.where(empty, 0, last - first + 1)
    row_start = torch.cumsum(row_width, 0) - row_width
    row_table = torch.stack(
        (
            *(term for axis in slab for term in axis),
            hb1,
            hb0,
            q2,
            q1,
            q0,
            qa,
            zoff,
            (row_start - first).to(torch.float32),
        )
    )
    first_pixel = (
        row_owner.div(k, rounding_mode="floor") * pixels
        + (row0.reshape(-1)[row_owner] + row_in_rect) * size
        + col0.reshape(-1)[row_owner]
        + first
    )
    row_ints = torch.stack((first_pixel - row_start, row_owner))
    pair_row = torch.repeat_interleave(row_width).to(torch.int32)
    n_pairs = pair_row.numel()
    (a0, lo0, hi0, a1, lo1, hi1, a2, lo2, hi2, hb1, hb0, q2, q1, q0, qa, zoff, start) = (
        row_table.index_select(1, pair_row)
    )
    offset, owner = row_ints.index_select(1, pair_row)
    col = torch.arange(n_pairs, dtype=torch.float32) - start
    pixel = torch.arange(n_pairs) + offset

    # ---- the ray test: slab interval, then the quadric's entry inside it
    s_lo = torch.maximum(
        torch.maximum(torch.addcmul(lo0, a0, col), torch.addcmul(lo1, a1, col)),
        torch.addcmul(lo2, a2, col),
    )
    s_hi = torch.minimum(
        torch.minimum(torch.addcmul(hi0, a0, col), torch.addcmul(hi1, a1, col)),
        torch.addcmul(hi2, a2, col),
    )
    half_b = torch.addcmul(hb0, hb1, col)
    c = torch.addcmul(q0, torch.addcmul(q1, q2, col), col)
    # sqrt of a negative discriminant is NaN, which fails every comparison below: a miss.
    root = torch.sqrt(torch.addcmul(half_b * half_b, qa, c, value=-1.0))
    # The root where f turns negative (entering), in the cancellation-free form for the sign
    # of half_b; boxes (qa = 0) never use it.
    t_quad = torch.where(half_b < 0, c / (root - half_b), (-half_b - root) / qa)
    inside_at_lo = torch.addcmul(c, torch.addcmul(2.0 * half_b, qa, s_lo), s_lo) <= 0
    entry = torch.where(inside_at_lo, s_lo, t_quad)
    hit = (entry >= s_lo) & (entry <= s_hi)
    depth = entry + zoff
    key = (depth.view(torch.int32).to(torch.int64) << _ID_BITS) | owner
    key = torch.where(hit, key, _NO_HIT)
    nearest = torch.full((b * pixels,), _NO_HIT, dtype=torch.int64)
    nearest.scatter_reduce_(0, pixel, key, reduce="amin")

    # ---- shade the pixels that hit something
    hit_pixel = (nearest != _NO_HIT).nonzero().squeeze(1)
    if hit_pixel.numel() == 0:
        return
    hit32 = hit_pixel.to(torch.int32)
    won = nearest.index_select(0, hit32)
    prim_id = (won & ((1 << _ID_BITS) - 1)).to(torch.int32)
    depth = (won >> _ID_BITS).to(torch.int32).view(torch.float32)
    st = shade_table.index_select(1, prim_id)
    (cx, cy, zoff, e0x, e0y, e0z, e1x, e1y, e1z, dlx, dly, dlz) = st[:12]
    (c_xy, c_zz, c_z, c_0, red, green, blue) = st[12:19]
    (lx, ly, lz, lr, lg, lb, hx, hy, hz) = st[19:28]
    coords = extent * ((torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1.0)
    pixel_uv = torch.stack(
        (coords.repeat(size), coords.flip(0).repeat_interleave(size))
    )  # (2, h * w): u and v of every pixel of one view
    u, v = pixel_uv.index_select(1, torch.remainder(hit32, pixels))
    up = u - cx
    vp = v - cy
    t = depth - zoff
    # The local hit point, row by row (reductions over a short leading axis are slow on CPU).
    px = e0x * up + e1x * vp + dlx * t
    py = e0y * up + e1y * vp + dly * t
    pz = e0z * up + e1z * vp + dlz * t
    # Strictly inside the quadric means the ray entered through a slab face; that face is the
    # coordinate of largest magnitude.
    f = c_xy * (px * px + py * py) + (c_zz * pz + c_z) * pz + c_0
    on_slab = f < -1e-3
    ax, ay, az = px.abs(), py.abs(), pz.abs()
    face_x = (ax >= ay) & (ax >= az)
    face_y = ~face_x & (ay >= az)
    face_z = ~face_x & ~face_y
    nx = torch.where(on_slab, face_x * px.sign(), c_xy * px)
    ny = torch.where(on_slab, face_y * py.sign(), c_xy * py)
    nz = torch.where(on_slab, face_z * pz.sign(), c_zz * pz + 0.5 * c_z)
    # World normal = M^T n_local, with M's columns (e0, e1, -dl).
    wx = e0x * nx + e0y * ny + e0z * nz
    wy = e1x * nx + e1y * ny + e1z * nz
    wz = -(dlx * nx + dly * ny + dlz * nz)
    inv_norm = torch.rsqrt((wx * wx + wy * wy + wz * wz).clamp(min=1e-24))
    inv_norm = torch.where(wz < 0, -inv_norm, inv_norm)  # face the camera on grazing rims
    wx, wy, wz = wx * inv_norm, wy * inv_norm, wz * inv_norm
    light = _DIFFUSE * (wx * lx + wy * ly + wz * lz).clamp(min=0.0)
    spec = _SPECULAR * (wx * hx + wy * hy + wz * hz).clamp(min=0.0).pow(_SHININESS)
    sky = _AMBIENT * (0.8 + 0.2 * wy)
    # Pixel p of view i, channel c sits at i * 3 * pixels + c * pixels + (p - i * pixels).
    flat = out.view(-1)
    index = hit_pixel + torch.div(hit_pixel, pixels, rounding_mode="floor") * (2 * pixels)
    for channel, (base, tint) in enumerate(((red, lr), (green, lg), (blue, lb))):
        value = (base * (sky + light * tint) + spec * tint).clamp_(0.0, 1.0)
        flat.index_copy_(0, index + channel * pixels, value)


@typecheck
def render(
    prims: Primitives,
    rotation: Float[Tensor, "b 3 3"],
    *,
    floor_rgb: Float[Tensor, "b 3"],
    light_dir: Float[Tensor, "b 3"],
    light_rgb: Float[Tensor, "b 3"],
    image_size: int = 64,
    extent: float = 1.1,
    supersample: int = 1,
) -> Float[Tensor, "b 3 hh ww"]:
    """Render ``b`` views: view i shows object ``prims[i]`` rotated by ``rotation[i]``.

    Args:
        prims: one object per view (index a :class:`Primitives` with object ids to get this).
        rotation: object-to-camera rotations; the object's ``+y`` is up and ``+z`` faces the
            camera at the identity.
        floor_rgb: background colour.
        light_dir: unit vectors towards the light (see :func:`light_direction`).
        light_rgb: light colour.
        image_size: pixels per side, in ``[16, 256]``.
        extent: the camera sees ``[-extent, extent]^2``; objects fitted to the unit ball fit.
        supersample: render at ``supersample`` times the size and average-pool (antialiasing).

    Returns:
        float32 images in ``[0, 1]``.

    Raises:
        ValueError: an image size outside ``[16, 256]``, ``supersample < 1``, a non-positive
            ``extent``, ``prims`` holding a different number of objects than there are
            rotations, or a primitive reaching farther than 3 from its object's origin.
    """
    _check_size(image_size)
    if not isinstance(supersample, int) or supersample < 1:
        raise ValueError(f"supersample must be an int >= 1, got {supersample!r}.")
    if prims.num_objects != rotation.shape[0]:
        raise ValueError(
            f"prims holds {prims.num_objects} objects but {rotation.shape[0]} rotations were "
            "given; index prims with the object id of each view (prims[object_ids])."
        )
    if extent <= 0:
        raise ValueError(f"extent must be positive, got {extent}.")
    # Depths are packed as float bits, which sort like the depths only while they are positive.
    reach = (prims.center.norm(dim=-1) + prims.half_size.norm(dim=-1)) * prims.valid
    if reach.numel() and float(reach.max()) >= _CAMERA_Z:
        raise ValueError(
            f"a primitive reaches {float(reach.max()):.3g} from its object's origin; the renderer "
            f"needs objects within radius {_CAMERA_Z:g} (make_object fits them in the unit "
            "ball): scale the object down."
        )
    size = image_size * supersample
    b, k = prims.kind.shape
    with torch.no_grad():
        rotation = rotation.float()
        rects = _screen_rects(prims, rotation, size, extent)
        # Chunks hold about _PAIRS_PER_CHUNK pairs: big enough that per-op overhead vanishes,
        # small enough to bound memory; the id packing and pixel buffers cap views per chunk.
        max_views = max(1, min((1 << _ID_BITS) // max(k, 1) - 1, (1 << 24) // (size * size)))
        pairs = (rects[2] * rects[3]).sum(1).tolist()
        bounds, start, total = [], 0, 0
        for view, count in enumerate(pairs):
            if view > start and (total + count > _PAIRS_PER_CHUNK or view - start >= max_views):
                bounds.append((start, view))
                start, total = view, 0
            total += count
        if b > start:
            bounds.append((start, b))
        images = torch.empty(b, 3, size, size)
        for lo, hi in bounds:
            sl = slice(lo, hi)
            _render_chunk(
                images[sl],
                prims[torch.arange(lo, hi)],
                rotation[sl],
                tuple(r[sl] for r in rects),
                floor_rgb[sl].float(),
                light_dir[sl].float(),
                light_rgb[sl].float(),
                size,
                float(extent),
            )
        if supersample > 1:
            images = torch.nn.functional.avg_pool2d(images, supersample)
    return images


@typecheck
def render_latents(
    prims: Primitives,
    latents: Float[Tensor, "b 7"],
    *,
    image_size: int = 64,
    supersample: int = 1,
    floor_saturation: float = 0.45,
    floor_value: float = 0.85,
    light_saturation: float = 0.6,
) -> Float[Tensor, "b 3 hh ww"]:
    """Render views from 3DIEBench-style latents ``[yaw, pitch, roll, floor_hue, spot_theta,
    spot_phi, spot_hue]`` (one object per view in ``prims``).

    The rotation is ``euler_to_matrix(latents[:, :3])`` (extrinsic xyz, scipy's convention, the
    same as the actions); hues are in turns (``[0, 1)``), angles in radians.
    """
    rotation = euler_to_matrix(latents[:, :3])
    ones = torch.ones_like(latents[:, 3])
    floor_rgb = hsv_to_rgb(latents[:, 3], floor_saturation * ones, floor_value * ones)
    light_rgb = hsv_to_rgb(latents[:, 6], light_saturation * ones, ones)
    light_dir = light_direction(latents[:, 4], latents[:, 5])
    return render(
        prims,
        rotation,
        floor_rgb=floor_rgb,
        light_dir=light_dir,
        light_rgb=light_rgb,
        image_size=image_size,
        supersample=supersample,
    )
