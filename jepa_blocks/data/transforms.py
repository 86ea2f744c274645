"""Parameterised augmentations that return the parameters they sampled.

seq-JEPA's hand-crafted-augmentation setting (CIFAR-100, Tiny ImageNet; spec §1.3, §2.2)
conditions on the *relative* transformation between consecutive views, so every view must
come with the parameters that produced it: the crop box (pixels of the original image), the
colour-jitter factors and the blur sigma. torchvision's random transforms do not report what
they sampled and draw from the global RNG; the transforms here split each augmentation into
``sample`` (explicit ``torch.Generator``, same draw sequence as torchvision's ``get_params``,
see :mod:`jepa_blocks.data.functional`) and a deterministic ``apply`` (torchvision's tensor
kernels), so a view can be replayed from its parameters.

The seq-JEPA action vector of a view is 9-d (8-d without blur), :data:`ACTION_PARAM_NAMES`::

    [crop_i, crop_j, crop_h, crop_w, brightness, contrast, saturation, hue, sigma]

with ``(1, 1, 1, 0)`` jitter factors when jitter was not applied and ``sigma = 0`` when blur
was not applied. Horizontal flip, grayscale, solarisation and the random order of the jitter
operations are applied and recorded in the full parameter vector, but are not part of the
action (as in the official code).

Differences from the official pipeline, which augments PIL uint8 images: here every operation
runs on float tensors in ``[0, 1]`` (bicubic resizing is antialiased and clamped to
``[0, 1]``), so pixels differ by rounding; sampled parameters follow the same distributions.
"""

import itertools
import math
from collections.abc import Sequence

import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from jepa_blocks._typing import Float, Tensor, typecheck
from jepa_blocks.data.functional import adjust_hue, jitter_range, sample_crop_box, sample_jitter
from jepa_blocks.data.sequences import as_image_size

__all__ = [
    "ACTION_PARAM_NAMES",
    "INTERPOLATIONS",
    "ParamTransform",
    "RandomResizedCrop",
    "RandomHorizontalFlip",
    "ColorJitter",
    "RandomGrayscale",
    "GaussianBlur",
    "RandomSolarize",
    "ParamCompose",
    "check_probability",
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


# Colour-jitter operation orders, indexed as the "jitter_order" parameter records them.
_PERMUTATIONS: tuple[tuple[int, ...], ...] = tuple(itertools.permutations(range(4)))

INTERPOLATIONS = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
}


def _coin(probability: float, generator: torch.Generator | None) -> bool:
    # One draw whatever p is, so the stream does not depend on which probabilities are 0 or 1.
    return bool(torch.rand(1, generator=generator).item() < probability)


def check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}.")


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
    """Random crop (area ``scale``, aspect ``ratio``) resized to ``image_size``; params
    ``i, j, h, w``.

    Sampling is torchvision's (see :func:`sample_crop_box`); the crop box is in pixels of the
    input image. Resizing is antialiased and clamped to ``[0, 1]`` (bicubic overshoots).
    """

    param_names = ("crop_i", "crop_j", "crop_h", "crop_w")

    def __init__(
        self,
        image_size: int | tuple[int, int],
        *,
        scale: tuple[float, float] = (0.2, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        interpolation: str = "bicubic",
    ) -> None:
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must satisfy 0 < min <= max, got {scale}.")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {ratio}.")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {sorted(INTERPOLATIONS)}, got {interpolation!r}."
            )
        self.image_size = as_image_size(image_size)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.interpolation = interpolation

    def _sample(self, image_size, generator):
        box = sample_crop_box(*image_size, scale=self.scale, ratio=self.ratio, generator=generator)
        return torch.tensor(box, dtype=torch.float32)

    def _apply(self, image, params):
        i, j, h, w = (int(v) for v in params.tolist())
        out = TF.resized_crop(
            image,
            i,
            j,
            h,
            w,
            list(self.image_size),
            INTERPOLATIONS[self.interpolation],
            antialias=True,
        )
        return out.clamp_(0.0, 1.0)

    def output_size(self, image_size):
        return self.image_size


class RandomHorizontalFlip(ParamTransform):
    """Horizontal flip with probability ``p``; param ``flip`` (0 or 1)."""

    param_names = ("flip",)

    def __init__(self, p: float = 0.5) -> None:
        check_probability("p", p)
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
        check_probability("p", p)
        ranges = (
            jitter_range(brightness, "brightness", 1.0, math.inf),
            jitter_range(contrast, "contrast", 1.0, math.inf),
            jitter_range(saturation, "saturation", 1.0, math.inf),
            jitter_range(hue, "hue", 0.0, 0.5),
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
        check_probability("p", p)
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
        check_probability("p", p)
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
        check_probability("p", p)
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
