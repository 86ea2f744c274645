"""A small real-image source shipped inside the package, and a stand-in saliency map.

The augmentation and saccade pipelines need natural images to be meaningful (colour jitter on
noise tells little; saliency of noise is flat), yet the library must work offline and cannot
download datasets. :class:`ShippedImages` serves deterministic random square crops of ten
public-domain / CC0 photographs stored in ``jepa_blocks/data/assets`` (about 0.6 MB of PNG;
sources and licences in ``assets/LICENSES.md``), labelled by which photograph they come
from, so a linear probe on its items is a meaningful (if easy) sanity check.

It is a source for examples, smoke tests and demos: **not a benchmark**. Train and test crops
come from the same ten photographs (different random crops, which may overlap), so accuracy
on it measures within-photograph generalisation only.

:func:`simple_saliency` is a centre-surround (difference-of-Gaussians) contrast map on
luminance, a cheap stand-in for the DeepGaze IIE maps the paper uses on STL-10 (spec §2.3):
it puts fixations on edges and textured regions rather than on flat background, which is the
property the saccade pipeline needs; it is not a model of human fixations.
"""

from collections.abc import Sequence
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode

from jepa_blocks._typing import Float, Shaped, Tensor, typecheck
from jepa_blocks.data.sequences import check_index, item_generator

__all__ = [
    "SHIPPED_PHOTOS",
    "load_shipped_photos",
    "ShippedImages",
    "simple_saliency",
]

#: The shipped photographs, in label order (label ``i`` is ``SHIPPED_PHOTOS[i]``).
SHIPPED_PHOTOS: tuple[str, ...] = (
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "coffee",
    "grace_hopper",
    "grass",
    "hubble_deep_field",
    "retina",
    "rocket",
)

_SPLITS = {"train": 0, "test": 1}
_DEFAULT_SAMPLES = {"train": 100, "test": 25}
# ITU-R BT.601 luma weights, as torchvision's rgb_to_grayscale.
_LUMA = (0.2989, 0.587, 0.114)


def load_shipped_photos() -> dict[str, Shaped[Tensor, "3 hh ww"]]:
    """The shipped photographs as uint8 ``(3, hh, ww)`` tensors (grayscale ones replicated).

    Short side 192 px, long side at most 256 px. Decoded with Pillow from the package's own
    files: no network, no cache.

    Raises:
        FileNotFoundError: the package was installed without its data files.
    """
    from PIL import Image

    folder = resources.files("jepa_blocks.data").joinpath("assets")
    photos = {}
    for name in SHIPPED_PHOTOS:
        entry = folder.joinpath(f"{name}.png")
        if not entry.is_file():
            raise FileNotFoundError(
                f"shipped photo {name}.png is missing from {folder}; reinstall jepa_blocks "
                "with its package data (pip install --force-reinstall jepa-blocks)."
            )
        with entry.open("rb") as handle, Image.open(handle) as image:
            array = np.array(image.convert("RGB"))
        photos[name] = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    return photos


class ShippedImages(Dataset):
    """Deterministic random crops of the shipped photographs, labelled by photograph.

    Item ``i`` is ``(image, label)``: ``image`` a float ``(3, image_size, image_size)`` tensor in
    [0, 1],
    a square crop of photograph ``label = i % 10`` whose side is ``U(crop_scale)`` times the
    photograph's short side, at a uniform position, resized (bilinear, antialiased) to
    ``image_size``. Crops depend only on ``(seed, split, i)``. See the module docstring for what
    this dataset is (a demo source) and is not (a benchmark).

    Args:
        image_size: output side in pixels (96 matches STL-10; 32 or 64 for the augmentation
            setting).
        split: ``"train"`` or ``"test"`` (different crops of the same photographs).
        samples_per_class: crops per photograph (default 100 for train, 25 for test).
        crop_scale: range of the crop side as a fraction of the photograph's short side.
        seed: base seed.

    Attributes:
        classes: photograph names, indexed by label.
        mean, std: per-channel statistics of the shipped photographs (for normalisation).

    Raises:
        ValueError: an unknown split, a non-positive image_size or sample count, a bad
            crop_scale.
    """

    def __init__(
        self,
        *,
        image_size: int = 96,
        split: str = "train",
        samples_per_class: int | None = None,
        crop_scale: tuple[float, float] = (0.4, 0.9),
        seed: int = 0,
    ) -> None:
        if split not in _SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {sorted(_SPLITS)}.")
        if not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}.")
        if samples_per_class is None:
            samples_per_class = _DEFAULT_SAMPLES[split]
        if samples_per_class < 1:
            raise ValueError(f"samples_per_class must be positive, got {samples_per_class}.")
        if not 0 < crop_scale[0] <= crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {crop_scale}.")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}.")
        self.image_size = image_size
        self.split = split
        self.samples_per_class = samples_per_class
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.seed = seed
        self.classes = SHIPPED_PHOTOS
        photos = load_shipped_photos()
        self._photos = [photos[name] for name in SHIPPED_PHOTOS]
        pixels = torch.cat([p.reshape(3, -1) for p in self._photos], dim=1).double() / 255.0
        self.mean: tuple[float, ...] = tuple(pixels.mean(dim=1).tolist())
        self.std: tuple[float, ...] = tuple(pixels.std(dim=1).tolist())

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return self.samples_per_class * len(self.classes)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        index = check_index(index, len(self), "ShippedImages")
        label = index % len(self.classes)
        photo = self._photos[label]
        height, width = photo.shape[-2:]
        generator = item_generator(self.seed, _SPLITS[self.split], index)
        fraction = torch.empty(1).uniform_(*self.crop_scale, generator=generator).item()
        side = max(1, round(fraction * min(height, width)))
        top = int(torch.randint(0, height - side + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - side + 1, (1,), generator=generator))
        crop = photo[:, top : top + side, left : left + side].float() / 255.0
        image = TF.resize(
            crop, [self.image_size, self.image_size], InterpolationMode.BILINEAR, antialias=True
        )
        return image.clamp_(0.0, 1.0), label


def _gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    half = max(1, int(3.0 * sigma + 0.5))
    x = torch.arange(-half, half + 1, dtype=dtype, device=device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def _blur(maps: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``(n, 1, hh, ww)`` with replicated borders (any size)."""
    kernel = _gaussian_kernel(sigma, maps.dtype, maps.device)
    half = kernel.numel() // 2
    out = F.pad(maps, (half, half, 0, 0), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1))
    out = F.pad(out, (0, 0, half, half), mode="replicate")
    return F.conv2d(out, kernel.view(1, 1, -1, 1))


@typecheck
def simple_saliency(
    image: Float[Tensor, "*batch c hh ww"],
    *,
    scales: Sequence[tuple[float, float]] = ((1.0, 4.0), (2.0, 8.0)),
    smooth: float = 2.0,
    center_bias: float | None = None,
    floor: float = 0.05,
) -> Float[Tensor, "*batch hh ww"]:
    """Centre-surround contrast saliency: a documented stand-in for DeepGaze IIE maps.

    Luminance ``L`` (BT.601; the single channel of a grayscale image) is filtered with
    differences of Gaussians ``|G(s_c) * L - G(s_s) * L|`` for each ``(s_c, s_s)`` in
    ``scales`` (sigmas in pixels at 96 px, scaled with the image's shorter side), summed,
    smoothed with a Gaussian of ``smooth`` px, optionally multiplied by a centred Gaussian
    of std ``center_bias`` times the image side, floored at ``floor`` times its mean (so every
    pixel stays reachable), and normalised to sum to 1.

    Returns:
        A probability map per image: non-negative, summing to 1 over ``(hh, ww)``; a flat
        image gives the uniform map.
    """
    channels, height, width = image.shape[-3:]
    if channels not in (1, 3):
        raise ValueError(f"image must have 1 or 3 channels, got {channels}.")
    if floor < 0:
        raise ValueError(f"floor must be non-negative, got {floor}.")
    if center_bias is not None and center_bias <= 0:
        raise ValueError(f"center_bias must be positive or None, got {center_bias}.")
    batch_shape = image.shape[:-3]
    flat = image.reshape(-1, channels, height, width).float()
    if channels == 3:
        weights = torch.tensor(_LUMA, dtype=flat.dtype, device=flat.device).view(1, 3, 1, 1)
        luminance = (flat * weights).sum(dim=1, keepdim=True)
    else:
        luminance = flat
    unit = min(height, width) / 96.0
    contrast = torch.zeros_like(luminance)
    for center, surround in scales:
        if not 0 < center < surround:
            raise ValueError(f"each scale must be (center, surround) with 0 < c < s, got {scales}.")
        contrast = (
            contrast + (_blur(luminance, center * unit) - _blur(luminance, surround * unit)).abs()
        )
    if smooth > 0:
        contrast = _blur(contrast, smooth * unit)
    if center_bias is not None:
        rows = torch.linspace(-0.5, 0.5, height, device=flat.device).view(-1, 1) * height
        cols = torch.linspace(-0.5, 0.5, width, device=flat.device).view(1, -1) * width
        spread = center_bias * min(height, width)
        contrast = contrast * torch.exp(-0.5 * (rows**2 + cols**2) / spread**2)
    mean = contrast.mean(dim=(-2, -1), keepdim=True)
    contrast = contrast + floor * mean + torch.finfo(contrast.dtype).tiny
    contrast = contrast / contrast.sum(dim=(-2, -1), keepdim=True)
    return contrast.reshape(*batch_shape, height, width)
