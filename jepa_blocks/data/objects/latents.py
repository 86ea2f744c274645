"""The 7 latent factors of a rendered view, in 3DIEBench's layout, ranges and conventions.

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
"""

import math

import torch

from jepa_blocks._typing import Float, Tensor, typecheck

__all__ = [
    "LATENT_NAMES",
    "LATENT_RANGES",
    "NUISANCES",
    "FIXED_NUISANCES",
    "sample_latents",
    "apply_nuisances",
]

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


def apply_nuisances(latents: Tensor, nuisances: str) -> Tensor:
    """One object's ``(views, 7)`` latents with the scene latents shared as ``nuisances`` says
    (the rotations, and the random stream that drew them, are unchanged)."""
    if nuisances == "object":
        latents[:, 3:] = latents[0, 3:]
    elif nuisances == "fixed":
        latents[:, 3:] = torch.tensor(FIXED_NUISANCES)
    return latents
