"""The built-in object classes: procedural generators of :class:`Part` unions.

Each class in :data:`CLASS_NAMES` (12 classes) is a union of ellipsoids, boxes and
cylinders/cones with per-instance proportions and colours drawn from one seeded generator, so
the same ``(class_name, seed, instance)`` always gives the same object (:func:`make_object`).

Every class is coloured asymmetrically (a red handle on the right of a mug, red and green
navigation lights on an airplane's wings, a drawer on one side of a table, ...) so a view's
yaw, pitch and roll can be read from its image; the rotation-probe tasks need that.
"""

import colorsys
import math
from collections.abc import Callable

import numpy as np
import torch

from jepa_blocks.data.objects.primitives import Part
from jepa_blocks.data.sequences import item_generator

__all__ = ["CLASS_NAMES", "make_object"]

#: Object classes, in label order; ``num_classes=n`` uses the first n.
CLASS_NAMES: tuple[str, ...] = (
    "mug",
    "table",
    "chair",
    "lamp",
    "airplane",
    "car",
    "tree",
    "snowman",
    "dumbbell",
    "house",
    "rocket",
    "duck",
)

# ----------------------------------------------------------------------------- object classes


class _Maker:
    """Draws an instance's proportions and colours from one generator."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator
        # One hue shift per instance, so part colours vary together and stay distinct.
        self.hue_shift = self.u(-0.03, 0.03)

    def u(self, low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=self.generator))

    def color(self, hue: float, sat: float, val: float) -> tuple[float, float, float]:
        h = (hue + self.hue_shift + self.u(-0.015, 0.015)) % 1.0
        s = min(1.0, max(0.0, sat + self.u(-0.08, 0.08)))
        v = min(1.0, max(0.0, val + self.u(-0.08, 0.08)))
        return colorsys.hsv_to_rgb(h, s, v)


# Fixed part colours (hue, saturation, value) shared by classes so markers read alike.
_RED = (0.0, 0.85, 0.9)
_ORANGE = (0.07, 0.9, 0.95)
_YELLOW = (0.14, 0.85, 0.95)
_GREEN = (0.33, 0.8, 0.75)
_BLUE = (0.6, 0.8, 0.85)
_SKY = (0.55, 0.45, 0.95)
_BROWN = (0.07, 0.7, 0.45)
_WOOD = (0.09, 0.55, 0.75)
_DARK = (0.6, 0.2, 0.18)
_GREY = (0.6, 0.08, 0.6)
_WHITE = (0.58, 0.06, 0.97)
_MAGENTA = (0.85, 0.7, 0.85)

# Euler angles (extrinsic xyz) that turn a frustum's local +z axis (its apex side) to a
# world axis.
_AXIS = {
    "x": (0.0, math.pi / 2, 0.0),
    "-x": (0.0, -math.pi / 2, 0.0),
    "y": (-math.pi / 2, 0.0, 0.0),
    "-y": (math.pi / 2, 0.0, 0.0),
    "z": (0.0, 0.0, 0.0),
    "-z": (0.0, math.pi, 0.0),
}

_Vec = tuple[float, float, float]


def _ell(center: _Vec, half: _Vec, color: _Vec, euler: _Vec = (0.0, 0.0, 0.0)) -> Part:
    return Part("ellipsoid", center, half, color, euler)


def _box(center: _Vec, half: _Vec, color: _Vec, euler: _Vec = (0.0, 0.0, 0.0)) -> Part:
    return Part("box", center, half, color, euler)


def _cyl(
    center: _Vec, radius: float, half_len: float, color: _Vec, axis: str = "y", taper: float = 0.0
) -> Part:
    """A cylinder (taper 0) or cone/frustum along ``axis``, narrowing towards ``axis``'s sign."""
    return Part("frustum", center, (radius, radius, half_len), color, _AXIS[axis], taper)


def _mug(m: _Maker) -> list[Part]:
    r, hh, tp = m.u(0.32, 0.45), m.u(0.35, 0.55), m.u(0.0, 0.2)
    body = m.color(m.u(0.5, 0.7), 0.5, 0.9)
    hx = r * (1 - tp / 2) + 0.14
    inner = r * 0.8
    return [
        _cyl((0, 0, 0), r, hh, body, "y", taper=tp),
        _cyl((0, hh, 0), r * (1 - tp) * 0.9, 0.02, m.color(*_BROWN)),
        _cyl((0, -hh, 0), r * 1.02, 0.04, m.color(*_DARK)),
        _box((hx, 0, 0), (0.045, hh * 0.5, 0.06), m.color(*_RED)),
        _box(((inner + hx) / 2, hh * 0.45, 0), ((hx - inner) / 2, 0.045, 0.06), m.color(*_RED)),
        _box(((inner + hx) / 2, -hh * 0.45, 0), ((hx - inner) / 2, 0.045, 0.06), m.color(*_RED)),
        _ell((0, 0.05, r * (1 - tp * 0.55)), (0.14, 0.11, 0.05), m.color(*_YELLOW)),
    ]


def _table(m: _Maker) -> list[Part]:
    w, d, hl, lr = m.u(0.75, 1.0), m.u(0.45, 0.65), m.u(0.5, 0.75), m.u(0.04, 0.06)
    tt = 0.05
    parts = [_box((0, hl, 0), (w, tt, d), m.color(*_WOOD))]
    for sx in (-1, 1):
        for sz in (-1, 1):
            color = _RED if (sx, sz) == (1, 1) else _BROWN
            parts.append(
                _cyl((sx * (w - 0.1), hl / 2, sz * (d - 0.1)), lr, hl / 2, m.color(*color))
            )
    parts += [
        _box((w * 0.35, hl - tt - 0.07, d - 0.03), (w * 0.3, 0.07, 0.03), m.color(*_GREEN)),
        # A cloth over the right half of the top: a half turn about any axis moves it.
        _box((w * 0.5, hl + tt, 0), (w * 0.4, 0.012, d * 1.02), m.color(*_SKY)),
        _cyl((-w * 0.55, hl + tt + 0.15, -d * 0.4), 0.08, 0.15, m.color(*_BLUE), taper=0.3),
        _ell((-w * 0.55, hl + tt + 0.36, -d * 0.4), (0.1, 0.1, 0.1), m.color(*_MAGENTA)),
    ]
    return parts


def _chair(m: _Maker) -> list[Part]:
    sw, sd, hs, hb = m.u(0.4, 0.55), m.u(0.4, 0.55), m.u(0.45, 0.6), m.u(0.5, 0.75)
    parts = [_box((0, hs, 0), (sw, 0.05, sd), m.color(*_BLUE))]
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts.append(
                _box(
                    (sx * (sw - 0.05), hs / 2, sz * (sd - 0.05)),
                    (0.04, hs / 2, 0.04),
                    m.color(*_GREY),
                )
            )
    parts += [
        _box((0, hs + hb / 2, -sd + 0.04), (sw, hb / 2, 0.04), m.color(*_RED)),
        _cyl((0, hs + hb, -sd + 0.04), 0.06, sw * 1.05, m.color(*_YELLOW), "x"),
        _box((sw, hs + 0.22, 0), (0.04, 0.03, sd * 0.8), m.color(*_GREEN)),
        _box((sw, hs + 0.11, sd * 0.6), (0.03, 0.11, 0.03), m.color(*_GREEN)),
    ]
    return parts


def _lamp(m: _Maker) -> list[Part]:
    rb, hp, la, tilt, rs = (
        m.u(0.3, 0.4),
        m.u(0.8, 1.1),
        m.u(0.4, 0.6),
        m.u(0.2, 0.5),
        m.u(0.2, 0.28),
    )
    ex, ey = la * math.cos(tilt), hp + la * math.sin(tilt)
    return [
        _cyl((0, 0, 0), rb, 0.05, m.color(*_DARK)),
        _cyl((0, hp / 2, 0), 0.035, hp / 2, m.color(*_GREY)),
        _box(
            (ex / 2, hp + la / 2 * math.sin(tilt), 0),
            (la / 2, 0.03, 0.03),
            m.color(*_GREY),
            euler=(0.0, 0.0, tilt),
        ),
        _ell((0, hp, 0), (0.06, 0.06, 0.06), m.color(*_BLUE)),
        _cyl((ex, ey - 0.1, 0), rs, 0.15, m.color(*_ORANGE), taper=0.7),
        _ell((ex, ey - 0.28, 0), (0.08, 0.08, 0.08), m.color(0.15, 0.3, 1.0)),
        _box((0, 0.05, rb * 0.7), (0.06, 0.03, 0.06), m.color(*_RED)),
    ]


def _airplane(m: _Maker) -> list[Part]:
    length, fr = m.u(0.8, 1.0), m.u(0.1, 0.14)
    span, chord, sweep = m.u(0.7, 0.95), m.u(0.14, 0.2), m.u(0.1, 0.4)
    cs, sn = math.cos(sweep), math.sin(sweep)
    parts = [
        _ell((0, 0, 0), (fr, fr, length), m.color(*_WHITE)),
        _cyl((0, 0, length - 0.02), fr * 0.6, 0.1, m.color(*_RED), "z", taper=1.0),
        _ell((0, fr * 0.6, length * 0.6), (fr * 0.6, fr * 0.5, 0.15), m.color(*_DARK)),
        _box(
            (0, fr + 0.15, -length * 0.8),
            (0.02, 0.17, 0.12),
            m.color(*_YELLOW),
            euler=(-0.3, 0.0, 0.0),
        ),
        _box((0, 0.02, -length * 0.82), (0.3, 0.02, 0.08), m.color(*_BLUE)),
    ]
    wing = m.color(*_BLUE)
    for side, light in ((-1, _RED), (1, _GREEN)):
        center = (side * span / 2 * cs, -0.02, 0.05 - span / 2 * sn)
        parts.append(_box(center, (span / 2, 0.02, chord), wing, euler=(0.0, side * sweep, 0.0)))
        tip = (side * span * cs, -0.02, 0.05 - span * sn)
        parts.append(_ell(tip, (0.06, 0.06, 0.06), m.color(*light)))
    return parts


def _car(m: _Maker) -> list[Part]:
    half_l, w, hb, r, hc = (
        m.u(0.8, 1.0),
        m.u(0.4, 0.5),
        m.u(0.12, 0.18),
        m.u(0.14, 0.2),
        m.u(0.12, 0.18),
    )
    body_hue = m.u(0.0, 1.0)
    cabin_y = r + hb * 1.5 + hc
    parts = [
        _box((0, r + hb * 0.5, 0), (w, hb, half_l), m.color(body_hue, 0.75, 0.8)),
        _box(
            (0, cabin_y, -half_l * 0.15),
            (w * 0.85, hc, half_l * 0.45),
            m.color(body_hue, 0.4, 0.95),
        ),
        _box((0, cabin_y, half_l * 0.3 + 0.01), (w * 0.75, hc * 0.8, 0.02), m.color(*_SKY)),
    ]
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts.append(_cyl((sx * w, r, sz * half_l * 0.6), r, 0.07, m.color(*_DARK), "x"))
        parts.append(
            _ell((sx * w * 0.6, r + hb * 0.6, half_l), (0.09, 0.06, 0.04), m.color(*_YELLOW))
        )
        parts.append(
            _box((sx * w * 0.65, r + hb * 0.7, -half_l), (0.09, 0.05, 0.02), m.color(*_RED))
        )
    return parts


def _tree(m: _Maker) -> list[Part]:
    layers = 2 + int(m.u(0.0, 2.0))
    parts = [_cyl((0, 0.25, 0), 0.09, 0.25, m.color(*_BROWN))]
    radius, y = m.u(0.45, 0.55), 0.7
    for _ in range(layers):
        parts.append(_cyl((0, y, 0), radius, 0.3, m.color(0.33, 0.75, m.u(0.45, 0.7)), taper=0.8))
        radius *= 0.75
        y += 0.3
    parts += [
        _ell((0, y + 0.02, 0), (0.09, 0.09, 0.09), m.color(*_YELLOW)),
        _ell((0.3, 0.65, 0.3), (0.09, 0.09, 0.09), m.color(*_RED)),
        _cyl((-0.3, 0.35, 0), 0.04, 0.2, m.color(*_BROWN), "-x"),
        _ell((-0.5, 0.42, 0), (0.07, 0.06, 0.1), m.color(*_BLUE)),
    ]
    return parts


def _snowman(m: _Maker) -> list[Part]:
    r1 = m.u(0.35, 0.42)
    r2 = r1 * m.u(0.7, 0.8)
    r3 = r2 * m.u(0.65, 0.75)
    y1, y2 = r1, 2 * r1 + r2 * 0.8
    y3 = y2 + r2 * 0.8 + r3
    dark = m.color(*_DARK)
    tilt = m.u(0.4, 0.8)
    return [
        _ell((0, y1, 0), (r1, r1, r1), m.color(*_WHITE)),
        _ell((0, y2, 0), (r2, r2, r2), m.color(*_WHITE)),
        _ell((0, y3, 0), (r3, r3, r3), m.color(*_WHITE)),
        _cyl((0, y3, r3 + 0.1), 0.05, 0.13, m.color(*_ORANGE), "z", taper=1.0),
        _ell((-0.08, y3 + 0.07, r3 * 0.88), (0.035, 0.035, 0.035), dark),
        _ell((0.08, y3 + 0.07, r3 * 0.88), (0.035, 0.035, 0.035), dark),
        _cyl((0, y3 + r3 * 0.8, 0), r3 * 1.15, 0.025, dark),
        _cyl((0, y3 + r3 * 0.8 + 0.15, 0), r3 * 0.7, 0.15, m.color(*_BLUE)),
        _cyl((0, y2 + r2 * 0.75, 0), r2 * 0.8, 0.05, m.color(*_RED)),
        _box((r2 * 0.45, y2 + r2 * 0.4, r2 * 0.72), (0.06, 0.15, 0.03), m.color(*_RED)),
        _box((r2 + 0.15, y2 + 0.15, 0), (0.2, 0.025, 0.025), m.color(*_BROWN), euler=(0, 0, tilt)),
        _box(
            (-(r2 + 0.15), y2 - 0.05, 0), (0.2, 0.025, 0.025), m.color(*_BROWN), euler=(0, 0, 0.4)
        ),
    ]


def _dumbbell(m: _Maker) -> list[Part]:
    bl, pr, pw = m.u(0.55, 0.75), m.u(0.22, 0.32), m.u(0.06, 0.1)
    px = bl * 0.72
    return [
        _cyl((0, 0, 0), 0.045, bl, m.color(*_GREY), "x"),
        _cyl((0, 0, 0), 0.07, bl * 0.35, m.color(*_DARK), "x"),
        _box((0, 0.07, 0), (bl * 0.2, 0.02, 0.03), m.color(*_YELLOW)),
        _cyl((-px, 0, 0), pr, pw, m.color(*_BLUE), "x"),
        _cyl((-px - pw * 1.8, 0, 0), pr * 0.75, pw * 0.8, m.color(*_SKY), "x"),
        _ell((-px, pr, 0), (0.07, 0.07, 0.07), m.color(*_YELLOW)),
        _box((px, 0, 0), (pw, pr * 0.9, pr * 0.9), m.color(*_RED)),
        _ell((px, 0, pr * 0.9), (0.06, 0.06, 0.06), m.color(*_GREEN)),
        _ell((bl, 0, 0), (0.06, 0.06, 0.06), m.color(*_ORANGE)),
    ]


def _house(m: _Maker) -> list[Part]:
    w, hh, d = m.u(0.5, 0.65), m.u(0.35, 0.45), m.u(0.4, 0.6)
    wall = m.color(0.1, 0.25, 0.95)
    roof = m.color(0.02, 0.7, m.u(0.5, 0.75))
    slab = (w / math.sqrt(2) + 0.07, 0.035, d + 0.07)
    q = math.pi / 4
    panel = math.sqrt(0.5)  # the right slab's normal is (panel, panel, 0)
    return [
        _box((0, 0, 0), (w, hh, d), wall),
        # The gable: a square prism turned 45 degrees; its lower half hides inside the walls.
        _box((0, hh, 0), (w / math.sqrt(2), w / math.sqrt(2), d), wall, euler=(0, 0, q)),
        _box((-w / 2, hh + w / 2 + 0.03, 0), slab, roof, euler=(0, 0, q)),
        _box((w / 2, hh + w / 2 + 0.03, 0), slab, roof, euler=(0, 0, -q)),
        _box((w * 0.4, -hh + 0.22, d), (0.1, 0.22, 0.02), m.color(*_BROWN)),
        _box((-w * 0.45, 0.05, d), (0.12, 0.1, 0.02), m.color(*_SKY)),
        _box((w, 0.05, 0), (0.02, 0.1, 0.15), m.color(*_SKY)),
        _box((-w * 0.5, hh + w * 0.6, -d * 0.3), (0.07, 0.18, 0.07), m.color(*_DARK)),
        # Every side differs: a green back door, a round yellow window on the left, and a solar
        # panel on the right half of the roof.
        _box((-w * 0.3, -hh + 0.18, -d), (0.12, 0.18, 0.02), m.color(*_GREEN)),
        _ell((-w, 0.08, 0), (0.03, 0.12, 0.12), m.color(*_YELLOW)),
        _box(
            (w / 2 + 0.06 * panel, hh + w / 2 + 0.03 + 0.06 * panel, 0),
            (w / math.sqrt(2) * 0.7, 0.015, d * 0.6),
            m.color(*_BLUE),
            euler=(0, 0, -q),
        ),
    ]


def _rocket(m: _Maker) -> list[Part]:
    radius, hb = m.u(0.16, 0.22), m.u(0.5, 0.7)
    parts = [
        _cyl((0, 0, 0), radius, hb, m.color(*_WHITE)),
        _cyl((0, hb + 0.2, 0), radius, 0.2, m.color(*_RED), taper=1.0),
        _ell((0, hb * 0.4, radius), (0.08, 0.08, 0.03), m.color(*_SKY)),
        _cyl((0, -hb - 0.15, 0), radius * 0.7, 0.15, m.color(*_ORANGE), "-y", taper=1.0),
        _cyl((0, -hb * 0.3, 0), radius * 1.03, 0.04, m.color(*_GREEN)),
    ]
    for k in range(3):
        angle = 2 * math.pi * k / 3 + math.pi / 2
        center = (math.cos(angle) * (radius + 0.1), -hb + 0.12, math.sin(angle) * (radius + 0.1))
        color = _YELLOW if k == 0 else _BLUE
        parts.append(_box(center, (0.12, 0.15, 0.015), m.color(*color), euler=(0, -angle, 0)))
    return parts


def _duck(m: _Maker) -> list[Part]:
    bx, by, bz, hr = m.u(0.35, 0.42), m.u(0.26, 0.32), m.u(0.5, 0.6), m.u(0.19, 0.24)
    body = m.color(0.14, 0.75, 0.95)
    dark = m.color(*_DARK)
    return [
        _ell((0, 0, 0), (bx, by, bz), body),
        _ell((0, by + hr * 0.6, bz * 0.7), (hr, hr, hr), m.color(*_GREEN)),
        _ell((0, by + hr * 0.4, bz * 0.7 + hr + 0.06), (0.1, 0.04, 0.12), m.color(*_ORANGE)),
        _ell((-hr * 0.6, by + hr * 0.8, bz * 0.7 + hr * 0.6), (0.035, 0.035, 0.035), dark),
        _ell((hr * 0.6, by + hr * 0.8, bz * 0.7 + hr * 0.6), (0.035, 0.035, 0.035), dark),
        _ell((-bx, 0.05, -0.05), (0.06, by * 0.6, bz * 0.6), m.color(*_BROWN), euler=(0.3, 0, 0)),
        _ell((bx, 0.05, -0.05), (0.06, by * 0.6, bz * 0.6), m.color(*_BLUE), euler=(0.3, 0, 0)),
        _ell((0, by * 0.6, -bz), (0.12, 0.08, 0.15), body, euler=(0.6, 0, 0)),
    ]


_CLASS_MAKERS: dict[str, Callable[[_Maker], list[Part]]] = {
    "mug": _mug,
    "table": _table,
    "chair": _chair,
    "lamp": _lamp,
    "airplane": _airplane,
    "car": _car,
    "tree": _tree,
    "snowman": _snowman,
    "dumbbell": _dumbbell,
    "house": _house,
    "rocket": _rocket,
    "duck": _duck,
}


def _part_points(part: Part) -> np.ndarray:
    """Points whose hull contains the part (box corners; axis extremes for ellipsoids)."""
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    if part.kind == "ellipsoid":
        axes = np.concatenate([np.eye(3), -np.eye(3), signs / math.sqrt(3)])
        local = axes * np.array(part.half_size)
    else:
        local = signs * np.array(part.half_size)
    a, b, c = part.euler
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return local @ (rz @ ry @ rx).T + np.array(part.center)


def _fit_unit_ball(parts: list[Part]) -> list[Part]:
    """Centre the object's bounding box at the origin and scale it into the unit ball."""
    points = np.concatenate([_part_points(p) for p in parts])
    middle = (points.min(0) + points.max(0)) / 2
    scale = 1.0 / float(np.linalg.norm(points - middle, axis=1).max())
    return [
        Part(
            p.kind,
            tuple(float(v) for v in (np.array(p.center) - middle) * scale),
            tuple(float(v) * scale for v in p.half_size),
            p.color,
            p.euler,
            p.taper,
        )
        for p in parts
    ]


def make_object(class_name: str, seed: int, instance: int = 0) -> list[Part]:
    """The parts of one procedurally generated object, fitted to the unit ball.

    The object faces ``+z`` (the camera) with ``+y`` up. The same ``(class_name, seed,
    instance)`` always gives the same object.

    Raises:
        ValueError: an unknown class name.
    """
    if class_name not in _CLASS_MAKERS:
        raise ValueError(f"unknown class {class_name!r}; choose one of {CLASS_NAMES}.")
    label = CLASS_NAMES.index(class_name)
    parts = _CLASS_MAKERS[class_name](_Maker(item_generator(seed, 0, label, instance)))
    return _fit_unit_ball(parts)
