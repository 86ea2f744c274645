"""The sampling and colour kernels behind the parameter-returning transforms.

torchvision's random transforms draw from the global RNG and do not report what they sampled;
these functions draw the same values in the same order from an explicit ``torch.Generator``
(:func:`sample_crop_box`, :func:`sample_jitter`), so with a generator seeded like the global
RNG they return what torchvision would. :func:`adjust_hue` is a faster closed form of
torchvision's, and :func:`blur_kernel_size` the official code's kernel choice.
"""

import math

import torch

from jepa_blocks._typing import Float, Tensor, typecheck

__all__ = ["blur_kernel_size", "adjust_hue", "sample_crop_box", "sample_jitter", "jitter_range"]


def blur_kernel_size(size: int) -> int:
    """The official blur kernel for an image side: ``2 * round((size - 10) / 20) + 1``.

    3 at 32 px (CIFAR), 7 at 64 px (Tiny ImageNet), never below 1. Python's ``round``
    (half to even) is used, as in the official code.
    """
    if size < 1:
        raise ValueError(f"size must be a positive image side, got {size}.")
    return max(1, 2 * round((size - 10) / 20) + 1)


# HSV hue offsets of the (r, g, b) outputs in the closed-form HSV -> RGB map.
_HUE_OFFSETS = (5.0, 3.0, 1.0)


@typecheck
def adjust_hue(
    image: Float[Tensor, "*batch 3 hh ww"], hue_factor: float
) -> Float[Tensor, "*batch 3 hh ww"]:
    """Rotate the hue of RGB ``(..., 3, hh, ww)`` float images by ``hue_factor`` turns.

    Same result as ``torchvision.transforms.v2.functional.adjust_hue`` (to float rounding;
    tested), with the closed-form HSV -> RGB map ``v - v s clamp(min(k, 4 - k), 0, 1)``,
    ``k = (n + 6 h) mod 6``, which takes a third of torchvision's operations: hue was the
    most expensive step of the augmentation chain on small images.
    """
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f"hue_factor must be in [-0.5, 0.5], got {hue_factor}.")
    maxc = image.amax(dim=-3)
    delta = maxc - image.amin(dim=-3)
    red, green, blue = image.unbind(dim=-3)
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(
        maxc == red,
        (green - blue) / safe,
        torch.where(maxc == green, 2.0 + (blue - red) / safe, 4.0 + (red - green) / safe),
    )
    hue = torch.remainder(hue / 6.0 + hue_factor, 1.0)
    offsets = torch.tensor(_HUE_OFFSETS, dtype=image.dtype, device=image.device).view(3, 1, 1)
    k = torch.remainder(offsets + 6.0 * hue.unsqueeze(-3), 6.0)
    # v * s == max - min, so the chroma term needs no saturation.
    return maxc.unsqueeze(-3) - delta.unsqueeze(-3) * torch.clamp(torch.minimum(k, 4.0 - k), 0, 1)


# ----------------------------------------------------------------------------- sampling


def sample_crop_box(
    height: int,
    width: int,
    *,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """torchvision's ``RandomResizedCrop.get_params`` drawing from ``generator``.

    Same draws, same order, same fallback (a central crop after 10 rejected tries), so with a
    generator seeded like the global RNG it returns the same box as torchvision.

    Returns:
        ``(i, j, h, w)``: top row, left column, height and width in pixels of the original.
    """
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        aspect_ratio = torch.exp(
            torch.empty(1).uniform_(float(log_ratio[0]), float(log_ratio[1]), generator=generator)
        ).item()
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = int(torch.randint(0, height - h + 1, size=(1,), generator=generator).item())
            j = int(torch.randint(0, width - w + 1, size=(1,), generator=generator).item())
            return i, j, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def jitter_range(value: float, name: str, center: float, bound: float) -> tuple[float, float]:
    """torchvision's ``ColorJitter`` range ``[center - value, center + value]`` (clipped at 0
    around 1), checked; ``bound`` caps ``value`` for a range around 0 (hue).

    Raises:
        ValueError: a negative ``value`` or one above ``bound``.
    """
    if value < 0:
        raise ValueError(f"{name} must be non-negative, got {value}.")
    low, high = center - value, center + value
    if center == 1.0:
        low = max(low, 0.0)
    if center == 0.0 and value > bound:
        raise ValueError(f"{name} must be in [0, {bound}], got {value}.")
    return low, high


def sample_jitter(
    brightness: tuple[float, float] | None,
    contrast: tuple[float, float] | None,
    saturation: tuple[float, float] | None,
    hue: tuple[float, float] | None,
    *,
    generator: torch.Generator | None = None,
) -> tuple[tuple[int, ...], float, float, float, float]:
    """torchvision's ``ColorJitter.get_params`` drawing from ``generator``.

    A ``None`` range is skipped (no draw) and gets its identity factor (1, or 0 for hue).

    Returns:
        ``(order, brightness, contrast, saturation, hue)``; ``order`` is the permutation of
        ``(0, 1, 2, 3)`` = (brightness, contrast, saturation, hue) to apply them in.
    """
    order = tuple(int(v) for v in torch.randperm(4, generator=generator).tolist())
    factors = []
    for bounds, identity in ((brightness, 1.0), (contrast, 1.0), (saturation, 1.0), (hue, 0.0)):
        if bounds is None:
            factors.append(identity)
        else:
            factors.append(
                float(torch.empty(1).uniform_(bounds[0], bounds[1], generator=generator))
            )
    return (order, *factors)  # type: ignore[return-value]
