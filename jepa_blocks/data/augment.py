"""Parameterised augmentations that return the parameters they sampled.

seq-JEPA's hand-crafted-augmentation setting (CIFAR-100, Tiny ImageNet; spec §1.3, §2.2)
conditions on the *relative* transformation between consecutive views, so every view must
come with the parameters that produced it: the crop box (pixels of the original image), the
colour-jitter factors and the blur sigma. torchvision's random transforms do not report what
they sampled and draw from the global RNG; the transforms here split each augmentation into
``sample`` (explicit ``torch.Generator``, same draw sequence as torchvision's ``get_params``)
and a deterministic ``apply`` (torchvision's tensor kernels), so a view can be replayed from
its parameters.

The seq-JEPA action vector of a view is 9-d (8-d without blur)::

    [crop_i, crop_j, crop_h, crop_w, brightness, contrast, saturation, hue, sigma]

with ``(1, 1, 1, 0)`` jitter factors when jitter was not applied and ``sigma = 0`` when blur
was not applied. Horizontal flip, grayscale, solarisation and the random order of the jitter
operations are applied and recorded in the full parameter vector, but are not part of the
action (as in the official code).

:class:`AugmentedSequences` wraps any ``(image, label)`` dataset into the sequence dataset
seq-JEPA trains on: ``m`` observation views (blur p=1, no solarisation), one target view
(blur p=0.1, solarisation p=0.2), their parameters and the relative actions.

Differences from the official pipeline, which augments PIL uint8 images: here every operation
runs on float tensors in ``[0, 1]`` (bicubic resizing is antialiased and clamped to
``[0, 1]``), so pixels differ by rounding; sampled parameters follow the same distributions.
"""

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode

from jepa_blocks._typing import Float, Tensor, typecheck
from jepa_blocks.actions import parameter_deltas

__all__ = [
    "ACTION_PARAM_NAMES",
    "ACTION_SLICES",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "TINY_IMAGENET_MEAN",
    "TINY_IMAGENET_STD",
    "item_generator",
    "blur_kernel_size",
    "adjust_hue",
    "sample_crop_box",
    "sample_jitter",
    "ParamTransform",
    "RandomResizedCrop",
    "RandomHorizontalFlip",
    "ColorJitter",
    "RandomGrayscale",
    "GaussianBlur",
    "RandomSolarize",
    "ParamCompose",
    "AugmentationRecipe",
    "observation_recipe",
    "target_recipe",
    "AugmentedSequences",
]

#: Names (and order) of the seq-JEPA action parameters of one view (spec §1.3).
ACTION_PARAM_NAMES: tuple[str, ...] = (
    "crop_i",
    "crop_j",
    "crop_h",
    "crop_w",
    "brightness",
    "contrast",
    "saturation",
    "hue",
    "sigma",
)

#: The official ``--latent-type`` choices as slices of the 9-d parameter vector.
ACTION_SLICES: dict[str, slice] = {
    "all": slice(0, None),
    "crop": slice(0, 4),
    "jitter": slice(4, 8),
    "blur": slice(8, 9),
}

#: CIFAR-100 statistics used by the official code (the paper quotes CIFAR-10's; spec §2.2).
CIFAR100_MEAN: tuple[float, float, float] = (0.5071, 0.4867, 0.4408)
CIFAR100_STD: tuple[float, float, float] = (0.2675, 0.2565, 0.2761)
#: Tiny ImageNet statistics used by the official code (spec §2.2).
TINY_IMAGENET_MEAN: tuple[float, float, float] = (0.4802, 0.4481, 0.3975)
TINY_IMAGENET_STD: tuple[float, float, float] = (0.2302, 0.2265, 0.2262)

# Colour-jitter operation orders, indexed as the "jitter_order" parameter records them.
_PERMUTATIONS: tuple[tuple[int, ...], ...] = tuple(itertools.permutations(range(4)))

_INTERPOLATIONS = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
}


# ----------------------------------------------------------------------------- helpers


def item_generator(seed: int, *keys: int) -> torch.Generator:
    """A CPU generator seeded from ``(seed, *keys)``, e.g. ``(seed, epoch, index)``.

    The keys are mixed with :class:`numpy.random.SeedSequence`, so nearby seeds, epochs and
    indices give unrelated streams, and an item is the same in any process: DataLoader
    workers reproduce the main process exactly, with no dependence on worker seeding.

    Raises:
        ValueError: a negative seed or key.
    """
    words = (seed, *keys)
    if any(int(word) < 0 for word in words):
        raise ValueError(
            f"seed and keys must be non-negative integers, got {words}; "
            "use a non-negative seed, epoch and index."
        )
    state = np.random.SeedSequence([int(word) for word in words]).generate_state(2, dtype=np.uint32)
    generator = torch.Generator()
    generator.manual_seed((int(state[0]) << 32) | int(state[1]))
    return generator


def blur_kernel_size(size: int) -> int:
    """The official blur kernel for an image side: ``2 * round((size - 10) / 20) + 1``.

    3 at 32 px (CIFAR), 7 at 64 px (Tiny ImageNet), never below 1. Python's ``round``
    (half to even) is used, as in the official code.
    """
    if size < 1:
        raise ValueError(f"size must be a positive image side, got {size}.")
    return max(1, 2 * round((size - 10) / 20) + 1)


def _coin(probability: float, generator: torch.Generator | None) -> bool:
    # One draw whatever p is, so the stream does not depend on which probabilities are 0 or 1.
    return bool(torch.rand(1, generator=generator).item() < probability)


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}.")


def _pair(size: int | Sequence[int], name: str = "size") -> tuple[int, int]:
    if isinstance(size, int):
        pair = (size, size)
    else:
        pair = tuple(int(s) for s in size)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or (height, width), got {size!r}.")
    return pair  # type: ignore[return-value]


def _as_image(image: Any) -> Tensor:
    """Float ``(c, hh, ww)`` in [0, 1] from a float/uint8 tensor, a PIL image or an HWC array."""
    if isinstance(image, Tensor):
        tensor = image
    elif isinstance(image, np.ndarray):
        array = image if image.ndim == 2 else np.moveaxis(image, -1, 0)
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    else:
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover - Pillow ships with torchvision
            Image = None
        if Image is None or not isinstance(image, Image.Image):
            raise ValueError(
                f"images must be tensors (c, hh, ww), PIL images or HWC numpy arrays, got "
                f"{type(image).__name__}; convert them in the wrapped dataset."
            )
        tensor = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
    if tensor.dim() == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 3:
        raise ValueError(
            f"an image must have shape (c, hh, ww), got {tuple(tensor.shape)}; the wrapped "
            "dataset should return one image per item."
        )
    if tensor.dtype == torch.uint8:
        return tensor.float().div_(255.0)
    if not tensor.is_floating_point():
        raise ValueError(f"images must be uint8 or float in [0, 1], got {tensor.dtype}.")
    return tensor.float()


def _normalizer(
    mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[Tensor, Tensor] | None:
    if mean is None and std is None:
        return None
    if mean is None or std is None:
        raise ValueError("pass both mean and std (per-channel), or neither for [0, 1] output.")
    mean_t = torch.tensor([float(v) for v in mean]).view(-1, 1, 1)
    std_t = torch.tensor([float(v) for v in std]).view(-1, 1, 1)
    if mean_t.numel() != std_t.numel():
        raise ValueError(
            f"mean and std must have one value per channel, got {mean_t.numel()} and "
            f"{std_t.numel()}."
        )
    if not bool((std_t > 0).all()):
        raise ValueError(f"std must be positive, got {tuple(std)}.")
    return mean_t, std_t


def _normalize(image: Tensor, stats: tuple[Tensor, Tensor] | None) -> Tensor:
    if stats is None:
        return image
    mean, std = stats
    if mean.shape[0] != image.shape[-3]:
        raise ValueError(
            f"mean/std have {mean.shape[0]} channels but the images have {image.shape[-3]}; "
            "pass per-channel statistics matching the dataset."
        )
    return (image - mean) / std


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


def _jitter_range(value: float, name: str, center: float, bound: float) -> tuple[float, float]:
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


# ----------------------------------------------------------------------------- transforms


class ParamTransform:
    """A random transform split into ``sample`` (random) and ``apply`` (deterministic).

    Subclasses define ``param_names`` (the entries of their parameter vector, which holds
    everything needed to replay the transform), ``_sample`` and ``_apply``. ``apply`` accepts
    ``(..., c, hh, ww)`` and applies the same parameters to every leading index.
    """

    param_names: tuple[str, ...] = ()

    def _sample(self, image_size: tuple[int, int], generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def _apply(self, image: Tensor, params: Tensor) -> Tensor:
        raise NotImplementedError

    @typecheck
    def sample(
        self, image_size: tuple[int, int], generator: torch.Generator | None = None
    ) -> Float[Tensor, " p"]:
        """Draw parameters for an image of ``image_size = (hh, ww)`` from ``generator``."""
        return self._sample(image_size, generator)

    @typecheck
    def apply(
        self, image: Float[Tensor, "*batch c hh ww"], params: Float[Tensor, " p"]
    ) -> Float[Tensor, "*batch c hh2 ww2"]:
        """Apply the transform with the given parameters (no randomness).

        Raises:
            ValueError: ``params`` does not have one entry per ``param_names``.
        """
        if params.shape[0] != len(self.param_names):
            raise ValueError(
                f"{type(self).__name__} takes {len(self.param_names)} parameters "
                f"{self.param_names}, got {params.shape[0]}."
            )
        return self._apply(image, params)

    def output_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """Spatial size of the output for an input of ``image_size``."""
        return image_size

    @typecheck
    def __call__(
        self, image: Float[Tensor, "c hh ww"], *, generator: torch.Generator | None = None
    ) -> tuple[Float[Tensor, "c hh2 ww2"], Float[Tensor, " p"]]:
        """Sample parameters for ``image``, apply them, return ``(view, params)``."""
        params = self._sample((image.shape[-2], image.shape[-1]), generator)
        return self._apply(image, params), params

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class RandomResizedCrop(ParamTransform):
    """Random crop (area ``scale``, aspect ``ratio``) resized to ``size``; params ``i, j, h, w``.

    Sampling is torchvision's (see :func:`sample_crop_box`); the crop box is in pixels of the
    input image. Resizing is antialiased and clamped to ``[0, 1]`` (bicubic overshoots).
    """

    param_names = ("crop_i", "crop_j", "crop_h", "crop_w")

    def __init__(
        self,
        size: int | tuple[int, int],
        *,
        scale: tuple[float, float] = (0.2, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        interpolation: str = "bicubic",
    ) -> None:
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must satisfy 0 < min <= max, got {scale}.")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {ratio}.")
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {sorted(_INTERPOLATIONS)}, got {interpolation!r}."
            )
        self.size = _pair(size)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.interpolation = interpolation

    def _sample(self, image_size, generator):
        box = sample_crop_box(*image_size, scale=self.scale, ratio=self.ratio, generator=generator)
        return torch.tensor(box, dtype=torch.float32)

    def _apply(self, image, params):
        i, j, h, w = (int(v) for v in params.tolist())
        out = TF.resized_crop(
            image, i, j, h, w, list(self.size), _INTERPOLATIONS[self.interpolation], antialias=True
        )
        return out.clamp_(0.0, 1.0)

    def output_size(self, image_size):
        return self.size


class RandomHorizontalFlip(ParamTransform):
    """Horizontal flip with probability ``p``; param ``flip`` (0 or 1)."""

    param_names = ("flip",)

    def __init__(self, p: float = 0.5) -> None:
        _check_probability("p", p)
        self.p = p

    def _sample(self, image_size, generator):
        return torch.tensor([float(_coin(self.p, generator))])

    def _apply(self, image, params):
        return TF.horizontal_flip(image) if params[0] > 0.5 else image


class ColorJitter(ParamTransform):
    """Colour jitter applied with probability ``p`` in a random operation order.

    Params ``brightness, contrast, saturation, hue`` (``(1, 1, 1, 0)`` when not applied) and
    ``jitter_order``, the index of the operation order in ``itertools.permutations(range(4))``
    (0 = brightness, contrast, saturation, hue). Factors are drawn as in torchvision:
    brightness/contrast/saturation ``~ U(max(0, 1 - x), 1 + x)``, hue ``~ U(-x, x)``.
    Operations whose factor is the identity are skipped, so "not applied" is exact.
    """

    param_names = ("brightness", "contrast", "saturation", "hue", "jitter_order")

    def __init__(
        self,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.2,
        hue: float = 0.1,
        *,
        p: float = 0.8,
    ) -> None:
        _check_probability("p", p)
        ranges = (
            _jitter_range(brightness, "brightness", 1.0, math.inf),
            _jitter_range(contrast, "contrast", 1.0, math.inf),
            _jitter_range(saturation, "saturation", 1.0, math.inf),
            _jitter_range(hue, "hue", 0.0, 0.5),
        )
        centers = (1.0, 1.0, 1.0, 0.0)
        # torchvision turns a zero-width range into "off": no draw, identity factor.
        self.ranges = tuple(
            None if r[0] == r[1] == center else r for r, center in zip(ranges, centers, strict=True)
        )
        self.p = p

    def _sample(self, image_size, generator):
        if not _coin(self.p, generator):
            return torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0])
        order, *factors = sample_jitter(*self.ranges, generator=generator)
        return torch.tensor([*factors, float(_PERMUTATIONS.index(order))])

    def _apply(self, image, params):
        brightness, contrast, saturation, hue, order_index = params.tolist()
        order = _PERMUTATIONS[int(order_index)]
        for op in order:
            if op == 0 and brightness != 1.0:
                image = TF.adjust_brightness(image, brightness)
            elif op == 1 and contrast != 1.0:
                image = TF.adjust_contrast(image, contrast)
            elif op == 2 and saturation != 1.0:
                image = TF.adjust_saturation(image, saturation)
            elif op == 3 and hue != 0.0:
                image = adjust_hue(image, hue)
        return image


class RandomGrayscale(ParamTransform):
    """Convert to 3-channel grayscale with probability ``p``; param ``grayscale`` (0 or 1)."""

    param_names = ("grayscale",)

    def __init__(self, p: float = 0.2) -> None:
        _check_probability("p", p)
        self.p = p

    def _sample(self, image_size, generator):
        return torch.tensor([float(_coin(self.p, generator))])

    def _apply(self, image, params):
        if params[0] > 0.5:
            return TF.rgb_to_grayscale(image, num_output_channels=image.shape[-3])
        return image


class GaussianBlur(ParamTransform):
    """Gaussian blur with probability ``p``, ``sigma ~ U(sigma_min, sigma_max)``; param ``sigma``.

    ``sigma = 0`` records "not applied". The kernel is square, ``kernel_size`` wide (use
    :func:`blur_kernel_size` for the official choice); borders are reflected.
    """

    param_names = ("sigma",)

    def __init__(
        self, kernel_size: int, *, sigma: tuple[float, float] = (0.1, 2.0), p: float = 0.5
    ) -> None:
        _check_probability("p", p)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be a positive odd int, got {kernel_size}; "
                "blur_kernel_size(image_side) gives the official one."
            )
        if not 0 < sigma[0] <= sigma[1]:
            raise ValueError(f"sigma must satisfy 0 < min <= max, got {sigma}.")
        self.kernel_size = kernel_size
        self.sigma = (float(sigma[0]), float(sigma[1]))
        self.p = p

    def _sample(self, image_size, generator):
        if not _coin(self.p, generator):
            return torch.zeros(1)
        return torch.empty(1).uniform_(*self.sigma, generator=generator)

    def _apply(self, image, params):
        sigma = float(params[0])
        if sigma <= 0.0 or self.kernel_size == 1:
            return image
        return TF.gaussian_blur(image, [self.kernel_size, self.kernel_size], [sigma, sigma])


class RandomSolarize(ParamTransform):
    """Invert pixels ``>= threshold`` with probability ``p``; param ``solarize`` (0 or 1).

    The default threshold 128/255 matches PIL's ``solarize(img, 128)`` on uint8 images.
    """

    param_names = ("solarize",)

    def __init__(self, *, threshold: float = 128 / 255, p: float = 0.2) -> None:
        _check_probability("p", p)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1] for float images, got {threshold}.")
        self.threshold = threshold
        self.p = p

    def _sample(self, image_size, generator):
        return torch.tensor([float(_coin(self.p, generator))])

    def _apply(self, image, params):
        return TF.solarize(image, self.threshold) if params[0] > 0.5 else image


# ----------------------------------------------------------------------------- composition


class ParamCompose:
    """Chain :class:`ParamTransform` s; return the view and its action parameters.

    ``full`` returns every sampled parameter (``param_names``: crop box, flip, jitter factors and
    order, grayscale, sigma, solarise), enough to replay the view with ``apply``; ``__call__``
    returns only the ``action_names`` entries (by default those of :data:`ACTION_PARAM_NAMES`
    that the chain has, in that order: 9 with blur, 8 without).

    Args:
        transforms: applied in order.
        action_names: which parameters form the action vector.

    Raises:
        ValueError: duplicate parameter names or unknown ``action_names``.
    """

    def __init__(
        self, transforms: Sequence[ParamTransform], *, action_names: Sequence[str] | None = None
    ) -> None:
        self.transforms = tuple(transforms)
        names = tuple(name for t in self.transforms for name in t.param_names)
        if len(set(names)) != len(names):
            raise ValueError(f"parameter names must be unique across transforms, got {names}.")
        if action_names is None:
            action_names = tuple(name for name in ACTION_PARAM_NAMES if name in names)
        unknown = [name for name in action_names if name not in names]
        if unknown:
            raise ValueError(
                f"action_names {unknown} are not parameters of these transforms; "
                f"choose from {names}."
            )
        self.param_names: tuple[str, ...] = names
        self.action_names: tuple[str, ...] = tuple(action_names)
        self._action_index = torch.tensor([names.index(n) for n in self.action_names])

    @property
    def num_params(self) -> int:
        """Width of the action vector."""
        return len(self.action_names)

    @typecheck
    def sample(
        self, image_size: tuple[int, int], generator: torch.Generator | None = None
    ) -> Float[Tensor, " q"]:
        """Draw every transform's parameters for an input of ``image_size = (hh, ww)``."""
        parts = []
        for transform in self.transforms:
            parts.append(transform._sample(image_size, generator))
            image_size = transform.output_size(image_size)
        return torch.cat(parts)

    @typecheck
    def apply(
        self, image: Float[Tensor, "*batch c hh ww"], params: Float[Tensor, " q"]
    ) -> Float[Tensor, "*batch c hh2 ww2"]:
        """Replay the chain with full parameters from :meth:`sample` / :meth:`full`."""
        if params.shape[0] != len(self.param_names):
            raise ValueError(
                f"params has {params.shape[0]} entries, expected {len(self.param_names)} "
                f"({self.param_names}); pass the full vector from .full() or .sample()."
            )
        start = 0
        for transform in self.transforms:
            stop = start + len(transform.param_names)
            image = transform._apply(image, params[start:stop])
            start = stop
        return image

    @typecheck
    def full(
        self, image: Float[Tensor, "c hh ww"], *, generator: torch.Generator | None = None
    ) -> tuple[Float[Tensor, "c hh2 ww2"], Float[Tensor, " q"]]:
        """Augment ``image``; return ``(view, all parameters)``."""
        params = self.sample((image.shape[-2], image.shape[-1]), generator)
        return self.apply(image, params), params

    @typecheck
    def action_params(self, params: Float[Tensor, "*batch q"]) -> Float[Tensor, "*batch p"]:
        """Select the action entries from full parameter vectors."""
        return params.index_select(-1, self._action_index)

    def named(self, params: Tensor) -> dict[str, float]:
        """Full parameters as ``{name: value}`` (e.g. ``named(p)["flip"]``)."""
        return dict(zip(self.param_names, params.tolist(), strict=True))

    @typecheck
    def __call__(
        self, image: Float[Tensor, "c hh ww"], *, generator: torch.Generator | None = None
    ) -> tuple[Float[Tensor, "c hh2 ww2"], Float[Tensor, " p"]]:
        """Augment ``image``; return ``(view, action parameters)``."""
        view, params = self.full(image, generator=generator)
        return view, self.action_params(params)

    def __repr__(self) -> str:
        body = "".join(f"\n  {t!r}," for t in self.transforms)
        return f"{type(self).__name__}({body}\n)"


class AugmentationRecipe(ParamCompose):
    """The EquiMod/BYOL augmentation chain of seq-JEPA (spec §2.2), parameters exposed.

    RandomResizedCrop(size, scale, ratio, bicubic) -> flip(p=0.5) -> ColorJitter(0.4, 0.4, 0.2,
    0.1, p=0.8) -> grayscale(p=0.2) -> GaussianBlur(``blur_kernel_size``, sigma U(0.1, 2),
    ``blur_p``) -> solarise(``solarize_p``). Use :func:`observation_recipe` and
    :func:`target_recipe` for the paper's two settings.

    Args:
        size: output side (or ``(hh, ww)``); also sets the blur kernel.
        blur_p: probability of blurring; ``blur=False`` removes blur (8-d actions, the
            official ``--no-blur``).
        solarize_p: probability of solarising (threshold 128/255).
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        *,
        blur_p: float,
        solarize_p: float,
        blur: bool = True,
        flip_p: float = 0.5,
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.2,
        hue: float = 0.1,
        scale: tuple[float, float] = (0.2, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        sigma: tuple[float, float] = (0.1, 2.0),
        solarize_threshold: float = 128 / 255,
        interpolation: str = "bicubic",
    ) -> None:
        height, width = _pair(size)
        if blur and blur_kernel_size(height) != blur_kernel_size(width):
            raise ValueError(
                f"non-square size {(height, width)} gives different blur kernels per axis; "
                "use a square size or blur=False."
            )
        transforms: list[ParamTransform] = [
            RandomResizedCrop(
                (height, width), scale=scale, ratio=ratio, interpolation=interpolation
            ),
            RandomHorizontalFlip(flip_p),
            ColorJitter(brightness, contrast, saturation, hue, p=jitter_p),
            RandomGrayscale(grayscale_p),
        ]
        if blur:
            transforms.append(GaussianBlur(blur_kernel_size(height), sigma=sigma, p=blur_p))
        else:
            _check_probability("blur_p", blur_p)
        transforms.append(RandomSolarize(threshold=solarize_threshold, p=solarize_p))
        super().__init__(transforms)
        self.size = (height, width)


def observation_recipe(size: int | tuple[int, int], *, blur: bool = True) -> AugmentationRecipe:
    """Augmentations of the ``m`` observation views: blur p=1.0, no solarisation (spec §2.2)."""
    return AugmentationRecipe(size, blur_p=1.0, solarize_p=0.0, blur=blur)


def target_recipe(size: int | tuple[int, int], *, blur: bool = True) -> AugmentationRecipe:
    """Augmentations of the target view: blur p=0.1, solarisation p=0.2 (BYOL-style)."""
    return AugmentationRecipe(size, blur_p=0.1, solarize_p=0.2, blur=blur)


# ----------------------------------------------------------------------------- dataset


class AugmentedSequences(Dataset):
    """Sequences of ``num_views`` augmented views of one image, with parameters and actions.

    Wraps any dataset whose items are ``(image, label)`` (image: float ``(c, hh, ww)`` in
    [0, 1], uint8 tensor, PIL image or HWC array). Item ``index`` is a dict:

    - ``views``   ``(m + 1, c, H, W)``: ``m`` observation views (:func:`observation_recipe`)
      then the target view (:func:`target_recipe`), normalised with ``mean``/``std``;
    - ``params``  ``(m + 1, 9)``: absolute action parameters of every view
      (:data:`ACTION_PARAM_NAMES`; 8 columns with ``blur=False``);
    - ``actions`` ``(m, p)``: relative actions ``params[i + 1] - params[i]`` of the ``action``
      slice (``"all"`` 9, ``"crop"`` 4, ``"jitter"`` 4, ``"blur"`` 1), via
      :func:`jepa_blocks.actions.parameter_deltas`; ``actions[-1]`` is a_M, observation
      ``m`` -> target;
    - ``label``   int64 scalar;
    - ``plain``   ``(c, H, W)``: the un-augmented image resized to ``H, W`` (bilinear) and
      normalised, for the encoder-output probe.

    ``normalize_over_views=True`` reproduces the official code's action normalisation: each
    parameter is first L2-normalised *across the views of the sequence*
    (``F.normalize(params, dim=view axis)``), then differenced. Actions then depend on the
    other views and on the sequence length (spec §1.3, §7.1 #7); off by default (plain
    differences in pixels / factors), on to reproduce the official numbers.

    Randomness comes only from :func:`item_generator` ``(seed, epoch, index)``: an item is
    the same in the main process and in any DataLoader worker; call :meth:`set_epoch` before
    each epoch for fresh views (with ``persistent_workers=True`` the workers keep the epoch
    they were started with, so leave persistence off or recreate the loader).

    Args:
        images: the ``(image, label)`` dataset.
        num_views: ``m + 1`` (observations plus the target), at least 2.
        action: ``"all"``, ``"crop"``, ``"jitter"`` or ``"blur"``.
        normalize_over_views: the official view-axis L2 normalisation (see above).
        mean, std: per-channel normalisation (e.g. :data:`CIFAR100_MEAN`); both ``None``
            keeps views in [0, 1].
        size: output side or ``(H, W)``; ``None`` keeps each input image's size.
        blur: include Gaussian blur (9-d parameters) or not (8-d, official ``--no-blur``).
        seed: base seed.

    Raises:
        ValueError: ``num_views < 2``, an unknown ``action``, ``action="blur"`` without blur,
            inconsistent ``mean``/``std``.
    """

    def __init__(
        self,
        images: Dataset,
        *,
        num_views: int,
        action: str = "all",
        normalize_over_views: bool = False,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        size: int | tuple[int, int] | None = None,
        blur: bool = True,
        seed: int = 0,
    ) -> None:
        if not isinstance(num_views, int) or num_views < 2:
            raise ValueError(
                f"num_views must be an int >= 2 (m observation views + 1 target), got "
                f"{num_views!r}; use num_views=m+1, e.g. 4 for M_tr=3."
            )
        if action not in ACTION_SLICES:
            raise ValueError(f"unknown action {action!r}; choose one of {sorted(ACTION_SLICES)}.")
        if action == "blur" and not blur:
            raise ValueError("action='blur' needs blur=True (there is no sigma without blur).")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}.")
        self.images = images
        self.num_views = num_views
        self.action = action
        self.normalize_over_views = normalize_over_views
        self.blur = blur
        self.seed = seed
        self.epoch = 0
        self._stats = _normalizer(mean, std)
        self.size = None if size is None else _pair(size)
        self._recipes: dict[tuple[int, int], tuple[AugmentationRecipe, AugmentationRecipe]] = {}
        if self.size is not None:
            self._recipes_for(self.size)

    @property
    def num_params(self) -> int:
        """Width of ``params`` (9, or 8 without blur)."""
        return 9 if self.blur else 8

    @property
    def action_dim(self) -> int:
        """Width of ``actions`` (the ``action`` slice of the parameters)."""
        return len(range(self.num_params)[ACTION_SLICES[self.action]])

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose views ``__getitem__`` returns (for fresh views each epoch)."""
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}.")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.images)  # type: ignore[arg-type]

    def _recipes_for(self, size: tuple[int, int]) -> tuple[AugmentationRecipe, AugmentationRecipe]:
        if size not in self._recipes:
            self._recipes[size] = (
                observation_recipe(size, blur=self.blur),
                target_recipe(size, blur=self.blur),
            )
        return self._recipes[size]

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        length = len(self)
        if not -length <= index < length:
            raise IndexError(f"index {index} out of range for {length} sequences.")
        index %= length
        image, label = self.images[index]
        image = _as_image(image)
        if image.shape[0] != 3:
            raise ValueError(
                f"augmentations need RGB images (3, hh, ww), got {tuple(image.shape)}; "
                "expand grayscale images with image.expand(3, -1, -1)."
            )
        size = self.size or (image.shape[-2], image.shape[-1])
        observe, target = self._recipes_for(size)
        generator = item_generator(self.seed, self.epoch, index)
        views, params = [], []
        for view_index in range(self.num_views):
            recipe = target if view_index == self.num_views - 1 else observe
            view, full = recipe.full(image, generator=generator)
            views.append(view)
            params.append(recipe.action_params(full))
        stacked = torch.stack(params)
        actions = parameter_deltas(
            stacked[:, ACTION_SLICES[self.action]], normalize_over_views=self.normalize_over_views
        )
        plain = TF.resize(image, list(size), InterpolationMode.BILINEAR, antialias=True)
        return {
            "views": _normalize(torch.stack(views), self._stats),
            "actions": actions,
            "params": stacked,
            "label": torch.as_tensor(label, dtype=torch.long),
            "plain": _normalize(plain.clamp_(0.0, 1.0), self._stats),
        }
