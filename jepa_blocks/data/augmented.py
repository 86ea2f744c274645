"""seq-JEPA's augmentation setting: the observation and target recipes, and the sequences.

:class:`AugmentedSequences` wraps any ``(image, label)`` dataset into the sequence dataset
seq-JEPA trains on (spec §1.3, §2.2): ``m`` observation views (:func:`observation_recipe`:
blur p=1, no solarisation), one target view (:func:`target_recipe`: blur p=0.1, solarisation
p=0.2), their parameters (:mod:`jepa_blocks.data.transforms`) and the relative actions.
"""

from collections.abc import Sequence
from typing import SupportsIndex

import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode

from jepa_blocks._typing import Tensor
from jepa_blocks.actions import parameter_deltas
from jepa_blocks.data.functional import blur_kernel_size
from jepa_blocks.data.sequences import ImageSequences, as_image_size, check_index, normalize
from jepa_blocks.data.transforms import (
    ColorJitter,
    GaussianBlur,
    ParamCompose,
    ParamTransform,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomSolarize,
    check_probability,
)

__all__ = [
    "ACTION_SLICES",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "TINY_IMAGENET_MEAN",
    "TINY_IMAGENET_STD",
    "AugmentationRecipe",
    "observation_recipe",
    "target_recipe",
    "AugmentedSequences",
]

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


class AugmentationRecipe(ParamCompose):
    """The EquiMod/BYOL augmentation chain of seq-JEPA (spec §2.2), parameters exposed.

    RandomResizedCrop(image_size, scale, ratio, bicubic) -> flip(p=0.5) -> ColorJitter(0.4, 0.4,
    0.2, 0.1, p=0.8) -> grayscale(p=0.2) -> GaussianBlur(``blur_kernel_size``, sigma U(0.1, 2),
    ``blur_p``) -> solarise(``solarize_p``). Use :func:`observation_recipe` and
    :func:`target_recipe` for the paper's two settings.

    Args:
        image_size: output side (or ``(hh, ww)``); also sets the blur kernel.
        blur_p: probability of blurring; ``blur=False`` removes blur (8-d actions, the
            official ``--no-blur``).
        solarize_p: probability of solarising (threshold 128/255).
    """

    def __init__(
        self,
        image_size: int | tuple[int, int],
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
        height, width = as_image_size(image_size)
        if blur and blur_kernel_size(height) != blur_kernel_size(width):
            raise ValueError(
                f"non-square image_size {(height, width)} gives different blur kernels per axis; "
                "use a square image_size or blur=False."
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
            check_probability("blur_p", blur_p)
        transforms.append(RandomSolarize(threshold=solarize_threshold, p=solarize_p))
        super().__init__(transforms)
        self.image_size = (height, width)


def observation_recipe(
    image_size: int | tuple[int, int], *, blur: bool = True
) -> AugmentationRecipe:
    """Augmentations of the ``m`` observation views: blur p=1.0, no solarisation (spec §2.2)."""
    return AugmentationRecipe(image_size, blur_p=1.0, solarize_p=0.0, blur=blur)


def target_recipe(image_size: int | tuple[int, int], *, blur: bool = True) -> AugmentationRecipe:
    """Augmentations of the target view: blur p=0.1, solarisation p=0.2 (BYOL-style)."""
    return AugmentationRecipe(image_size, blur_p=0.1, solarize_p=0.2, blur=blur)


# ----------------------------------------------------------------------------- dataset


class AugmentedSequences(ImageSequences):
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

    Randomness comes only from :func:`~jepa_blocks.data.sequences.item_generator`
    ``(seed, epoch, index)``: an item is
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
        image_size: output side or ``(H, W)``; ``None`` keeps each input image's size.
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
        image_size: int | tuple[int, int] | None = None,
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
        super().__init__(images, num_views=num_views, mean=mean, std=std, seed=seed)
        self.action = action
        self.normalize_over_views = normalize_over_views
        self.blur = blur
        self.image_size = None if image_size is None else as_image_size(image_size)
        self._recipes: dict[tuple[int, int], tuple[AugmentationRecipe, AugmentationRecipe]] = {}
        if self.image_size is not None:
            self._recipes_for(self.image_size)

    @property
    def num_params(self) -> int:
        """Width of ``params`` (9, or 8 without blur)."""
        return 9 if self.blur else 8

    @property
    def dim_action(self) -> int:
        """Width of ``actions`` (the ``action`` slice of the parameters)."""
        return len(range(self.num_params)[ACTION_SLICES[self.action]])

    def _recipes_for(
        self, image_size: tuple[int, int]
    ) -> tuple[AugmentationRecipe, AugmentationRecipe]:
        if image_size not in self._recipes:
            self._recipes[image_size] = (
                observation_recipe(image_size, blur=self.blur),
                target_recipe(image_size, blur=self.blur),
            )
        return self._recipes[image_size]

    def __getitem__(self, index: SupportsIndex) -> dict[str, Tensor]:
        index = check_index(index, len(self), "AugmentedSequences")
        image, label = self.load_image(index)
        if image.shape[0] != 3:
            raise ValueError(
                f"augmentations need RGB images (3, hh, ww), got {tuple(image.shape)}; "
                "expand grayscale images with image.expand(3, -1, -1)."
            )
        size = self.image_size or (image.shape[-2], image.shape[-1])
        observe, target = self._recipes_for(size)
        generator = self.generator(index)
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
            "views": normalize(torch.stack(views), self._stats),
            "actions": actions,
            "params": stacked,
            "label": torch.as_tensor(label, dtype=torch.long),
            "plain": normalize(plain.clamp_(0.0, 1.0), self._stats),
        }
