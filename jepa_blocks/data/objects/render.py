"""A pure-torch CPU renderer for objects built from analytic primitives.

Why it exists: the built-in rendered-object dataset (:mod:`jepa_blocks.data.objects`), the
library's stand-in for 3DIEBench, must build on any machine with nothing but torch: no GPU, no
display, no graphics package. Objects are :class:`~jepa_blocks.data.objects.primitives.Part`
unions packed as :class:`~jepa_blocks.data.objects.primitives.Primitives`; the ray tests are in
:mod:`~jepa_blocks.data.objects.raycast`.

The (view, primitive, pixel) pairs that :func:`~jepa_blocks.data.objects.raycast.row_spans`
leaves are enumerated as flat tensors, the ray test runs on all of them at once, and a
``scatter_reduce`` over depth-and-id keys keeps the nearest hit per pixel. Shading (Lambert
plus a Blinn-Phong highlight, from one coloured directional "spot" light) then runs once per
covered pixel, over a floor-coloured backdrop. ``benchmarks/render.py`` measures the
throughput.
"""

import torch

from jepa_blocks._typing import Float, Tensor, typecheck
from jepa_blocks.data.objects.primitives import (
    Primitives,
    euler_to_matrix,
    hsv_to_rgb,
    light_direction,
)
from jepa_blocks.data.objects.raycast import CAMERA_Z, ray_tables, row_spans, screen_rects

__all__ = ["render", "render_latents", "MIN_IMAGE_SIZE", "MAX_IMAGE_SIZE"]

#: Supported image sizes (pixels per side), inclusive.
MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 256

# Depth (a positive float32, see raycast.CAMERA_Z) and primitive id packed in one int64 key.
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


# ----------------------------------------------------------------------------- the renderer


def _check_size(image_size: int) -> None:
    if not isinstance(image_size, int) or not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise ValueError(
            f"image_size must be an int in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}], got "
            f"{image_size!r}; render larger images by resizing afterwards."
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
    pair_table, shade_table = ray_tables(
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
    first, last, empty = row_spans(slab, hb1, hb0, q2, q1, q0, qa, widths[row_owner])
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
    if reach.numel() and float(reach.max()) >= CAMERA_Z:
        raise ValueError(
            f"a primitive reaches {float(reach.max()):.3g} from its object's origin; the renderer "
            f"needs objects within radius {CAMERA_Z:g} (make_object fits them in the unit "
            "ball): scale the object down."
        )
    size = image_size * supersample
    b, k = prims.kind.shape
    with torch.no_grad():
        rotation = rotation.float()
        rects = screen_rects(prims, rotation, size, extent)
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
