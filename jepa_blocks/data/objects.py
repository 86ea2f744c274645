"""The built-in rendered-object dataset: a small, offline stand-in for 3DIEBench.

seq-JEPA's main benchmark, 3DIEBench (spec §2.1), is 52k ShapeNet objects rendered 50 times
each under random rotations and lighting. This module generates the same kind of data from
nothing: procedurally built objects in :data:`CLASS_NAMES` (12 classes, each a union of
ellipsoids, boxes and cylinders/cones with per-instance proportions and colours), rendered by
the pure-torch CPU ray caster :mod:`jepa_blocks.data.render` with the same 7 latent factors
per view, so the same model, actions and probes run on it out of the box.

Every class is coloured asymmetrically (a red handle on the right of a mug, red and green
navigation lights on an airplane's wings, a drawer on one side of a table, ...) so a view's
yaw, pitch and roll can be read from its image; the rotation-probe tasks need that.

Latents per view, in 3DIEBench's layout and ranges (all uniform, independent):

============ ================ ========================================================
index, name  range            effect
============ ================ ========================================================
0 yaw        [-pi/2, pi/2]    the rotation is ``R = Rz(roll) Ry(pitch) Rx(yaw)``,
1 pitch      [-pi/2, pi/2]    i.e. extrinsic xyz Euler angles (scipy ``"xyz"``), the
2 roll       [-pi/2, pi/2]    convention of :func:`jepa_blocks.actions.euler_to_quaternion`
3 floor_hue  [0, 1)           hue (in turns) of the backdrop, saturation 0.45, value 0.85
4 spot_theta [0, pi/4]        the light's angle from its pole (above-front of the object)
5 spot_phi   [0, 2 pi)        the light's azimuth around that pole
6 spot_hue   [0, 1)           hue of the light colour, saturation 0.6
============ ================ ========================================================

:class:`RenderedObjects` renders a dataset once and caches it on disk (uint8 images, float32
latents, int64 labels, in one file whose name holds a hash of every generation parameter);
:class:`ObjectSequences` turns it into seq-JEPA training sequences exactly as the 3DIEBench
pipeline does: ``m + 1`` distinct views of one object in random order plus the relative
actions between consecutive views.
"""

import colorsys
import hashlib
import json
import logging
import math
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, SupportsIndex

import numpy as np
import torch
from torch.utils.data import Dataset

from jepa_blocks._typing import Float, Shaped, Tensor, typecheck
from jepa_blocks.data.disk import threediebench_actions
from jepa_blocks.data.render import (
    MAX_IMAGE_SIZE,
    MIN_IMAGE_SIZE,
    Part,
    pack_parts,
    render_latents,
)
from jepa_blocks.training.atomic import atomic_save

__all__ = [
    "FORMAT_VERSION",
    "CLASS_NAMES",
    "LATENT_NAMES",
    "LATENT_RANGES",
    "OBJECTS_MEAN",
    "OBJECTS_STD",
    "SIZE_PRESETS",
    "NUISANCES",
    "FIXED_NUISANCES",
    "make_object",
    "sample_latents",
    "compute_normalization",
    "denormalize",
    "default_cache_dir",
    "RenderedObjects",
    "ObjectSequences",
]

logger = logging.getLogger(__name__)

#: Bump when the cache layout or anything that changes the pixels changes.
FORMAT_VERSION = 1

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

#: The 7 latent factors of a view, in 3DIEBench's order.
LATENT_NAMES: tuple[str, ...] = (
    "yaw",
    "pitch",
    "roll",
    "floor_hue",
    "spot_theta",
    "spot_phi",
    "spot_hue",
)

#: ``(low, high)`` of each latent's uniform distribution (3DIEBench's in-distribution ranges).
LATENT_RANGES: tuple[tuple[float, float], ...] = (
    (-math.pi / 2, math.pi / 2),
    (-math.pi / 2, math.pi / 2),
    (-math.pi / 2, math.pi / 2),
    (0.0, 1.0),
    (0.0, math.pi / 4),
    (0.0, 2 * math.pi),
    (0.0, 1.0),
)

#: ``size`` presets: (instances per class, views per object). With 10 classes: "small" is 640
#: views (under a second); "default" 6,400 views (64 px: 79 MB of uint8, rendered in about 4 s on
#: one core of the reference 2-core machine, see benchmarks/results/render-cpu.md); "large" has
#: 3DIEBench's 50 views per object, 50,000 views (64 px: 614 MB; 128 px: 2.5 GB).
SIZE_PRESETS: dict[str, tuple[int, int]] = {
    "small": (8, 8),
    "default": (40, 16),
    "large": (100, 50),
}

#: Per-channel mean and std of the rendered pixels in [0, 1], measured on the "default" preset
#: (10 classes x 40 instances x 16 views, 64 px, seed 0; seed 1, the train split alone and
#: 128 px agree to 0.004). :func:`compute_normalization` recomputes them for any rendering.
#: (3DIEBench's are mean 0.50, std 0.10: its scenes are brighter and lower in contrast.)
OBJECTS_MEAN: tuple[float, float, float] = (0.3433, 0.3420, 0.3409)
OBJECTS_STD: tuple[float, float, float] = (0.1642, 0.1600, 0.1674)

_CACHE_ENV = "JEPA_BLOCKS_CACHE"


# ----------------------------------------------------------------------------- seeding


def _generator(*words: int) -> torch.Generator:
    """A generator seeded from a tuple of ints only: the same stream in any process."""
    state = np.random.SeedSequence(list(words)).generate_state(2, dtype=np.uint32)
    generator = torch.Generator()
    generator.manual_seed((int(state[0]) << 32) | int(state[1]))
    return generator


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
    parts = _CLASS_MAKERS[class_name](_Maker(_generator(seed, 0, label, instance)))
    return _fit_unit_ball(parts)


@typecheck
def sample_latents(num_views: int, generator: torch.Generator) -> Float[Tensor, "v 7"]:
    """Draw ``num_views`` latent vectors uniformly from :data:`LATENT_RANGES`."""
    low = torch.tensor([r[0] for r in LATENT_RANGES])
    high = torch.tensor([r[1] for r in LATENT_RANGES])
    return low + (high - low) * torch.rand(num_views, 7, generator=generator)


#: How the scene latents (indices 3..6) vary across views; see :class:`RenderedObjects`.
NUISANCES: tuple[str, ...] = ("view", "object", "fixed")

#: The one scene of ``nuisances="fixed"``: a blue-grey floor, the light at its pole
#: (above-front of the object), a warm white light.
FIXED_NUISANCES: tuple[float, float, float, float] = (0.58, 0.0, 0.0, 0.1)


def _apply_nuisances(latents: Tensor, nuisances: str) -> Tensor:
    """One object's ``(views, 7)`` latents with the scene latents shared as ``nuisances`` says
    (the rotations, and the random stream that drew them, are unchanged)."""
    if nuisances == "object":
        latents[:, 3:] = latents[0, 3:]
    elif nuisances == "fixed":
        latents[:, 3:] = torch.tensor(FIXED_NUISANCES)
    return latents


# ----------------------------------------------------------------------------- normalisation


@typecheck
def compute_normalization(
    images: Shaped[Tensor, "*batch 3 hh ww"],
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std of uint8 images (e.g. ``RenderedObjects.images``), in ``[0, 1]``.

    Raises:
        ValueError: the images are not uint8.
    """
    if images.dtype != torch.uint8:
        raise ValueError(
            f"images must be uint8 (0..255), got {images.dtype}; pass RenderedObjects.images."
        )
    flat = images.movedim(-3, 0).reshape(3, -1).double() / 255.0
    mean = flat.mean(1)
    std = flat.std(1)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


@typecheck
def denormalize(
    views: Float[Tensor, "*batch 3 hh ww"],
    mean: Sequence[float] = OBJECTS_MEAN,
    std: Sequence[float] = OBJECTS_STD,
) -> Float[Tensor, "*batch 3 hh ww"]:
    """Undo the normalisation (for plots): back to ``[0, 1]``, clamped."""
    m = views.new_tensor(mean)[:, None, None]
    s = views.new_tensor(std)[:, None, None]
    return (views * s + m).clamp(0.0, 1.0)


def _normalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return (images.float() / 255.0 - m) / s


# ----------------------------------------------------------------------------- the dataset


def default_cache_dir() -> Path:
    """``$JEPA_BLOCKS_CACHE/objects`` if that variable is set, else
    ``~/.cache/jepa_blocks/objects``."""
    env = os.environ.get(_CACHE_ENV)
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "jepa_blocks"
    return base / "objects"


def _index(index: SupportsIndex, length: int, name: str) -> int:
    i = int(index.__index__())
    if i < 0:
        i += length
    if not 0 <= i < length:
        raise IndexError(f"{name} index {int(index.__index__())} out of range for length {length}")
    return i


class RenderedObjects(Dataset):
    """Procedurally generated 3D objects rendered under 3DIEBench-like latents, cached on disk.

    ``num_classes x instances_per_class`` objects are rendered ``views_per_object`` times each.
    Instances are split by object: the last ``val_fraction`` of each class's instances (at least
    one) form ``"val"``, the rest ``"train"``; ``"all"`` keeps both. The whole rendering (both
    splits) is one cache file, so the splits never disagree.

    Item ``i`` is one view (views of object ``i // views_per_object``): a dict with ``image``
    ``(3, hh, ww)`` float32 (normalised with :data:`OBJECTS_MEAN`/:data:`OBJECTS_STD` if
    ``normalize`` else in ``[0, 1]``), ``latents`` ``(7,)``, ``label`` (int64 scalar),
    ``object`` and ``view`` (int64 scalars). The raw arrays are attributes: ``images``
    ``(objects, views, 3, hh, ww)`` uint8, ``latents`` ``(objects, views, 7)`` float32,
    ``labels`` and ``instances`` ``(objects,)`` int64.

    Args:
        root: cache folder; ``None`` uses :func:`default_cache_dir`.
        split: ``"train"``, ``"val"`` or ``"all"``.
        size: a :data:`SIZE_PRESETS` name giving instances per class and views per object.
        image_size: pixels per side, in ``[16, 256]``.
        num_classes: use the first ``num_classes`` of :data:`CLASS_NAMES` (1 to 12).
        instances_per_class, views_per_object: override the preset.
        val_fraction: fraction of each class's instances held out for ``"val"``.
        seed: generation seed (objects and latents).
        supersample: antialiasing factor of the renderer (1 = none).
        normalize: normalise ``image`` in per-view items.
        cache: read and write the cache file; ``False`` renders in memory only.
        nuisances: how the scene latents (floor hue, light angle, azimuth and hue) vary:
            ``"view"`` (3DIEBench: every view draws its own), ``"object"`` (drawn once per
            object, shared by its views: views differ by rotation only) or ``"fixed"`` (one
            scene, :data:`FIXED_NUISANCES`, for every view).

    Raises:
        ValueError: an unknown split or size, an image size outside ``[16, 256]``, a class
            count outside ``[1, 12]``, fewer than 2 instances per class (one would leave a
            split empty), fewer than 1 view, ``val_fraction`` outside ``(0, 1)``, a negative
            seed, a ``supersample`` below 1 or an unknown ``nuisances``.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        split: Literal["train", "val", "all"] = "train",
        size: Literal["small", "default", "large"] = "default",
        image_size: int = 64,
        num_classes: int = 10,
        instances_per_class: int | None = None,
        views_per_object: int | None = None,
        val_fraction: float = 0.2,
        seed: int = 0,
        supersample: int = 1,
        normalize: bool = True,
        cache: bool = True,
        nuisances: Literal["view", "object", "fixed"] = "view",
    ) -> None:
        if split not in ("train", "val", "all"):
            raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}.")
        if size not in SIZE_PRESETS:
            raise ValueError(f"size must be one of {tuple(SIZE_PRESETS)}, got {size!r}.")
        if not isinstance(image_size, int) or not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
            raise ValueError(
                f"image_size must be an int in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}], got "
                f"{image_size!r}."
            )
        if not isinstance(num_classes, int) or not 1 <= num_classes <= len(CLASS_NAMES):
            raise ValueError(
                f"num_classes must be in [1, {len(CLASS_NAMES)}] (the built-in classes), got "
                f"{num_classes!r}."
            )
        preset_instances, preset_views = SIZE_PRESETS[size]
        instances = preset_instances if instances_per_class is None else instances_per_class
        views = preset_views if views_per_object is None else views_per_object
        if not isinstance(instances, int) or instances < 2:
            raise ValueError(
                f"instances_per_class must be an int >= 2 (train and val both need one), got "
                f"{instances!r}."
            )
        if not isinstance(views, int) or views < 1:
            raise ValueError(f"views_per_object must be an int >= 1, got {views!r}.")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}.")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}.")
        if not isinstance(supersample, int) or supersample < 1:
            raise ValueError(f"supersample must be an int >= 1, got {supersample!r}.")
        if nuisances not in NUISANCES:
            raise ValueError(
                f"nuisances must be one of {NUISANCES} (scene latents drawn per view, per object, "
                f"or fixed), got {nuisances!r}."
            )

        self.split = split
        self.image_size = image_size
        self.num_classes = num_classes
        self.class_names = CLASS_NAMES[:num_classes]
        self.instances_per_class = instances
        self.views_per_object = views
        self.seed = seed
        self.normalize = normalize
        self.params: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "image_size": image_size,
            "num_classes": num_classes,
            "instances_per_class": instances,
            "views_per_object": views,
            "seed": seed,
            "supersample": supersample,
        }
        if nuisances != "view":  # the key is absent for the default, so old caches stay valid
            self.params["nuisances"] = nuisances
        self.nuisances = nuisances
        digest = hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()
        self.cache_key = digest[:16]
        directory = Path(root).expanduser() if root is not None else default_cache_dir()
        self.cache_path: Path | None = (
            directory / f"objects-v{FORMAT_VERSION}-{self.cache_key}.pt" if cache else None
        )
        self.loaded_from_cache = False
        data = self._load() if self.cache_path is not None else None
        if data is None:
            data = self._render()
            if self.cache_path is not None:
                self._save(data)
        else:
            self.loaded_from_cache = True

        n_val = min(instances - 1, max(1, round(instances * val_fraction)))
        instance = data["instances"]
        keep = {
            "train": instance < instances - n_val,
            "val": instance >= instances - n_val,
            "all": torch.ones_like(instance, dtype=torch.bool),
        }[split]
        self.images: Tensor = data["images"][keep]
        self.latents: Tensor = data["latents"][keep]
        self.labels: Tensor = data["labels"][keep]
        self.instances: Tensor = instance[keep]

    # ---- cache

    def _expected_shapes(self) -> dict[str, tuple[int, ...]]:
        n = self.num_classes * self.instances_per_class
        v, s = self.views_per_object, self.image_size
        return {"images": (n, v, 3, s, s), "latents": (n, v, 7), "labels": (n,), "instances": (n,)}

    def _load(self) -> dict[str, Tensor] | None:
        path = self.cache_path
        assert path is not None
        if not path.exists():
            return None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            ok = (
                isinstance(data, dict)
                and data.get("key") == self.cache_key
                and data.get("params") == self.params
                and all(
                    isinstance(data.get(name), Tensor) and tuple(data[name].shape) == shape
                    for name, shape in self._expected_shapes().items()
                )
                and data["images"].dtype == torch.uint8
            )
        except Exception as error:  # a truncated or foreign file: render again
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            warnings.warn(
                f"cache file {path} is unreadable ({type(error).__name__}: {reason[:120]}); "
                "rendering the dataset again and overwriting it.",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        if not ok:
            logger.info("cache %s does not match the requested parameters; re-rendering", path)
            return None
        return {name: data[name] for name in self._expected_shapes()}

    def _save(self, data: dict[str, Tensor]) -> None:
        path = self.cache_path
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"key": self.cache_key, "params": self.params, **data}
        # Readers (and concurrent writers) only ever see a complete file.
        atomic_save(payload, path)

    # ---- rendering

    def _render(self) -> dict[str, Tensor]:
        objects, labels, instances, latents = [], [], [], []
        for label, name in enumerate(self.class_names):
            for instance in range(self.instances_per_class):
                objects.append(make_object(name, self.seed, instance))
                labels.append(label)
                instances.append(instance)
                generator = _generator(self.seed, 1, label, instance)
                latents.append(
                    _apply_nuisances(
                        sample_latents(self.views_per_object, generator), self.nuisances
                    )
                )
        prims = pack_parts(objects)
        latent = torch.stack(latents)  # (objects, views, 7)
        n, v = latent.shape[:2]
        owner = torch.arange(n).repeat_interleave(v)
        flat_latents = latent.reshape(n * v, 7)
        images = torch.empty(n * v, 3, self.image_size, self.image_size, dtype=torch.uint8)
        step = 2048
        for start in range(0, n * v, step):
            sl = slice(start, min(n * v, start + step))
            rgb = render_latents(
                prims[owner[sl]],
                flat_latents[sl],
                image_size=self.image_size,
                supersample=self.params["supersample"],
            )
            images[sl] = (rgb * 255.0).round_().to(torch.uint8)
        logger.info("rendered %d views of %d objects", n * v, n)
        return {
            "images": images.reshape(n, v, 3, self.image_size, self.image_size),
            "latents": latent,
            "labels": torch.tensor(labels, dtype=torch.int64),
            "instances": torch.tensor(instances, dtype=torch.int64),
        }

    # ---- access

    @property
    def num_objects(self) -> int:
        return self.labels.shape[0]

    def __len__(self) -> int:
        return self.num_objects * self.views_per_object

    def __getitem__(self, index: SupportsIndex) -> dict[str, Tensor]:
        i = _index(index, len(self), "RenderedObjects")
        obj, view = divmod(i, self.views_per_object)
        pixels = self.images[obj, view]
        image = (
            _normalize(pixels, OBJECTS_MEAN, OBJECTS_STD)
            if self.normalize
            else pixels.float() / 255.0
        )
        return {
            "image": image,
            "latents": self.latents[obj, view].clone(),
            "label": self.labels[obj].clone(),
            "object": torch.tensor(obj),
            "view": torch.tensor(view),
        }


class ObjectSequences(Dataset):
    """seq-JEPA sequences from :class:`RenderedObjects`: ``m + 1`` views of one object.

    Item ``i`` (object ``i``) is a dict with

    - ``views`` ``(m + 1, 3, hh, ww)`` float32: distinct views drawn uniformly without
      replacement, in random order (spec §2.1), normalised with :data:`OBJECTS_MEAN` and
      :data:`OBJECTS_STD` unless ``normalize=False`` (then in ``[0, 1]``);
    - ``actions`` ``(m, da)`` float32: action ``j`` takes view ``j`` to view ``j + 1``;
      ``"rot"``: the quaternion of ``R_j^-1 R_{j+1}`` (scalar last, :func:`jepa_blocks.actions.
      relative_rotation_from_euler`, da = 4); ``"rotcolor"``: that quaternion then
      ``[Δfloor_hue, Δspot_hue]``, plain differences without wrap-around (da = 6, spec §1.3);
    - ``latents`` ``(m + 1, 7)`` float32; ``view_ids`` ``(m + 1,)`` int64;
    - ``label`` and ``index`` int64 scalars.

    The draw depends only on ``(seed, epoch, index)`` through a private ``torch.Generator``,
    so DataLoader workers return what the main process would. :meth:`set_epoch` selects the
    epoch; persistent workers keep the epoch they were started with.

    Args:
        objects: the rendered views.
        num_views: ``m + 1``, observations plus the target, in ``[2, views_per_object]``.
        action: ``"rot"`` or ``"rotcolor"``.
        canonical: return quaternions with ``w >= 0`` (the official code does not).
        seed: base seed of the view draws (>= 0).
        normalize: normalise the views.

    Raises:
        ValueError: ``num_views`` outside ``[2, views_per_object]``, an unknown ``action`` or a
            negative ``seed``.
    """

    def __init__(
        self,
        objects: RenderedObjects,
        *,
        num_views: int,
        action: Literal["rot", "rotcolor"] = "rot",
        canonical: bool = False,
        seed: int = 0,
        normalize: bool = True,
    ) -> None:
        if action not in ("rot", "rotcolor"):
            raise ValueError(
                f"action must be 'rot' (quaternion, 4 values) or 'rotcolor' (quaternion + 2 hue "
                f"deltas, 6 values), got {action!r}."
            )
        available = objects.views_per_object
        if not isinstance(num_views, int) or not 2 <= num_views <= available:
            raise ValueError(
                f"num_views (m + 1) must be in [2, views_per_object={available}], got "
                f"{num_views!r}; lower num_views or render more views per object."
            )
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}.")
        self.objects = objects
        self.num_views = num_views
        self.action = action
        self.canonical = canonical
        self.seed = seed
        self.normalize = normalize
        self.epoch = 0

    @property
    def dim_action(self) -> int:
        """Width of one action: 4 for ``"rot"``, 6 for ``"rotcolor"``."""
        return 4 if self.action == "rot" else 6

    @property
    def num_classes(self) -> int:
        return self.objects.num_classes

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose view draws ``__getitem__`` returns."""
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}.")
        self.epoch = epoch

    def __len__(self) -> int:
        return self.objects.num_objects

    def draw_views(self, index: int) -> Tensor:
        """The ``m + 1`` view ids (int64) item ``index`` uses in the current epoch."""
        generator = _generator(self.seed, self.epoch, index)
        return torch.randperm(self.objects.views_per_object, generator=generator)[: self.num_views]

    def __getitem__(self, index: SupportsIndex) -> dict[str, Tensor]:
        i = _index(index, len(self), "ObjectSequences")
        chosen = self.draw_views(i)
        pixels = self.objects.images[i, chosen]
        views = (
            _normalize(pixels, OBJECTS_MEAN, OBJECTS_STD)
            if self.normalize
            else pixels.float() / 255.0
        )
        latents = self.objects.latents[i, chosen]
        # The latents follow 3DIEBench's layout, so the actions are 3DIEBench's (one code path
        # for both datasets), computed in float64 and stored as float32.
        actions = threediebench_actions(
            latents.double(), action=self.action, canonical=self.canonical
        )
        return {
            "views": views,
            "actions": actions.float(),
            "latents": latents.clone(),
            "view_ids": chosen,
            "label": self.objects.labels[i].clone(),
            "index": torch.tensor(i),
        }
