"""Ray tests of the renderer: where each primitive can appear, and where a ray meets it.

Every primitive of :mod:`~jepa_blocks.data.objects.primitives` is one quadric
``f(p) = c_xy (x^2 + y^2) + c_zz z^2 + c_z z + c_0 <= 0`` intersected with three slabs, so one
closed-form ray test serves all three kinds. The camera is orthographic, looks along ``-z`` (x
right, y up, z towards the viewer) and sees the square ``[-extent, extent]^2``; row 0 of an
image is the top (``y = +extent``).

Speed comes from testing each primitive only where it can appear: its screen-space bounding
rectangle (:func:`screen_rects`), trimmed row by row to the columns its silhouette can cover
(:func:`row_spans`, exact for boxes and ellipsoids). :func:`ray_tables` holds what the ray
test and the shading need per (view, primitive).
"""

import torch
from einops import rearrange

from jepa_blocks._typing import Tensor
from jepa_blocks.data.objects.primitives import BOX, ELLIPSOID, FRUSTUM, Primitives

__all__ = ["CAMERA_Z", "quadric_coefficients", "screen_rects", "ray_tables", "row_spans"]

# The camera plane sits at z = CAMERA_Z; objects fit in the unit ball, so depths are positive
# and their float32 bit patterns sort like the depths (used to pack depth and id in one int64).
CAMERA_Z = 3.0


def quadric_coefficients(prims: Primitives) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-primitive coefficients ``(c_xy, c_zz, c_z, c_0)`` of the local quadric."""
    kind = prims.kind
    a1 = -0.5 * prims.taper
    a0 = 1.0 + a1
    ones = torch.ones_like(prims.taper)
    zeros = torch.zeros_like(prims.taper)
    is_box = kind == BOX
    is_frustum = kind == FRUSTUM
    c_xy = torch.where(is_box, zeros, ones)
    c_zz = torch.where(is_box, zeros, torch.where(is_frustum, -a1 * a1, ones))
    c_z = torch.where(is_frustum, -2.0 * a0 * a1, zeros)
    c_0 = torch.where(is_frustum, -a0 * a0, -ones)
    return c_xy, c_zz, c_z, c_0


def screen_rects(
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
    half = torch.where(kind == BOX, box, torch.where(kind == ELLIPSOID, ellipsoid, frustum))
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


def ray_tables(
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
    c_xy, c_zz, c_z, c_0 = quadric_coefficients(prims)
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
    depth_offset = CAMERA_Z - center[..., 2]
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


def row_spans(
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
