"""LeJEPA's data: multi-crop views of the built-in rendered objects, and the probe splits.

Why the rendered objects (:class:`jepa_blocks.data.RenderedObjects`): of the built-in labelled
image sources they are the only one with held-out *instances* (the probes are fitted on
training objects and scored on objects never seen), with 10 classes and up to 50,000 images;
:class:`jepa_blocks.data.ShippedImages` crops ten photographs, so its train and test crops come
from the same ten images and its "accuracy" is photo identification.

Two ways to make the views (``views_from``), measured with the demo recipe (RESULTS.md;
linear probe on held-out objects, random-init floor 59.9 %):

- ``"image"``: every view is a crop of one rendered image (the paper's setting on
  photographs). Here the crops of one image share its floor hue and light, a scene drawn per
  image and independent of the class: the cheapest thing for the views to agree on, and one
  that SIGReg can spread over the Gaussian. The loss falls (0.81 -> 0.53 in 300 steps) while
  the probe falls *below* its floor (59.9 % -> 42.0 %).
- ``"object"`` (the demo's): an item is an object, and every view is a crop of one of its
  rendered views, drawn independently (another rotation, another floor hue and light). What
  the views share is the object, so invariance teaches the object: after a dip below the
  floor in the first ~100 steps the probe climbs to 68-70 %.

The views are made with the library's parameter-returning augmentations
(:class:`jepa_blocks.data.transforms.ParamCompose` of ``RandomResizedCrop``, flip, ``ColorJitter``,
grayscale, blur, solarisation), drawn from :func:`item_generator` ``(seed, epoch, index)``: an
item is the same in any process or DataLoader worker, so a resumed run sees the same views.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from jepa_blocks.data.functional import blur_kernel_size
from jepa_blocks.data.objects import OBJECTS_MEAN, OBJECTS_STD, RenderedObjects
from jepa_blocks.data.sequences import item_generator
from jepa_blocks.data.transforms import (
    ColorJitter,
    GaussianBlur,
    ParamCompose,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomSolarize,
)

__all__ = ["view_chain", "MultiCropViews", "DataBundle", "build_data"]


def view_chain(
    size: int,
    *,
    scale: tuple[float, float],
    blur_p: float,
    solarize_p: float,
) -> ParamCompose:
    """One view's augmentations: crop of area ``scale`` resized to ``size`` px, flip,
    colour jitter (0.4, 0.4, 0.2, 0.1; p 0.8), grayscale (p 0.2), blur, solarisation."""
    transforms = [
        RandomResizedCrop(size, scale=scale),
        RandomHorizontalFlip(0.5),
        ColorJitter(0.4, 0.4, 0.2, 0.1, p=0.8),
        RandomGrayscale(0.2),
    ]
    kernel = blur_kernel_size(size)
    if kernel > 1:  # below ~20 px the official kernel rule gives 1 px: no blur at all
        transforms.append(GaussianBlur(kernel, p=blur_p))
    transforms.append(RandomSolarize(p=solarize_p))
    return ParamCompose(transforms)


class MultiCropViews(Dataset):
    """``num_global`` global and ``num_local`` local views of an image (or object), its label.

    With ``group_size = k > 1`` the images come in groups of ``k`` consecutive images of one
    object (``RenderedObjects`` orders its views so), an item is a group, and each view crops
    an image of the group drawn independently. Item ``i`` is
    ``{"global": (vg, 3, G, G), "local": (vl, 3, L, L), "label": ()}`` (no ``local`` when
    ``num_local = 0``), normalised with ``mean``/``std``. Global views follow BYOL's pair
    (blur p 1.0 then 0.1, solarisation p 0 then 0.2, alternating for more than two); local
    views blur with p 0.5 where their size has a blur kernel.

    Args:
        images: a dataset of dicts with ``image`` (float ``(3, hh, ww)`` in ``[0, 1]``) and
            ``label``, e.g. ``RenderedObjects(normalize=False)``.
        global_size, local_size: output sides in px.
        global_scale, local_scale: crop-area ranges (fractions of the image).
        group_size: images per item (1: an item is an image).

    Raises:
        ValueError: no global view, a negative local count, a group size that does not
            divide the images, bad sizes or scales.
    """

    def __init__(
        self,
        images: Dataset,
        *,
        num_global: int = 2,
        num_local: int = 4,
        global_size: int = 32,
        local_size: int = 16,
        global_scale: tuple[float, float] = (0.3, 1.0),
        local_scale: tuple[float, float] = (0.05, 0.3),
        mean: Sequence[float] = OBJECTS_MEAN,
        std: Sequence[float] = OBJECTS_STD,
        group_size: int = 1,
        seed: int = 0,
    ) -> None:
        if group_size < 1 or len(images) % group_size:  # type: ignore[arg-type]
            raise ValueError(
                f"group_size must be >= 1 and divide the {len(images)} images, got "  # type: ignore[arg-type]
                f"{group_size}."
            )
        if num_global < 1 or num_local < 0:
            raise ValueError(
                f"need >= 1 global view and >= 0 local views, got {num_global} and {num_local}."
            )
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}.")
        self.images = images
        self.num_global, self.num_local = num_global, num_local
        self.global_chains = [
            view_chain(global_size, scale=global_scale, blur_p=blur, solarize_p=solarize)
            for blur, solarize in ((1.0, 0.0), (0.1, 0.2))
        ]
        self.local_chain = view_chain(local_size, scale=local_scale, blur_p=0.5, solarize_p=0.0)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.group_size = group_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose views ``__getitem__`` returns (fresh views every epoch)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}.")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.images) // self.group_size  # type: ignore[arg-type]

    def _source(self, index: int, view: int, generator: torch.Generator) -> Tensor:
        """The image view ``view`` of item ``index`` is cropped from."""
        if self.group_size == 1:
            return self.images[index]["image"]
        # Any rendered view of the object, drawn independently for every view.
        other = int(torch.randint(self.group_size, (), generator=generator))
        return self.images[index * self.group_size + other]["image"]

    @staticmethod
    def _view(chain: ParamCompose, image: Tensor, generator: torch.Generator) -> Tensor:
        view, _ = chain.full(image, generator=generator)  # the parameters are not needed here
        return view

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items.")
        generator = item_generator(self.seed, self.epoch, index)
        views = [
            self._view(self.global_chains[v % 2], self._source(index, v, generator), generator)
            for v in range(self.num_global)
        ]
        local = [
            self._view(self.local_chain, self._source(index, v, generator), generator)
            for v in range(self.num_global, self.num_global + self.num_local)
        ]
        label = self.images[index * self.group_size]["label"]
        out = {
            "global": (torch.stack(views) - self.mean) / self.std,
            "label": torch.as_tensor(label, dtype=torch.long),
        }
        if local:
            out["local"] = (torch.stack(local) - self.mean) / self.std
        return out


@dataclass
class DataBundle:
    train: MultiCropViews  # the self-supervised views
    probe_train: Dataset  # normalised images with labels (training objects)
    probe_test: Dataset  # held-out objects
    num_classes: int


def _spread_subset(dataset: Dataset, count: int) -> Dataset:
    """``count`` items evenly spread over ``dataset`` (every object and class represented;
    deterministic, no RNG); the whole dataset when ``count`` is 0 or larger."""
    length = len(dataset)  # type: ignore[arg-type]
    if count <= 0 or count >= length:
        return dataset
    indices = torch.linspace(0, length - 1, count).round().long().unique().tolist()
    return Subset(dataset, indices)


class _Normalized(Dataset):
    """``{"image", "label"}`` items of a ``[0, 1]`` image dataset, normalised for the probes."""

    def __init__(self, images: Dataset, mean: Sequence[float], std: Sequence[float]) -> None:
        self.images = images
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        item = self.images[index]
        return {"image": (item["image"] - self.mean) / self.std, "label": item["label"]}


def build_data(config: Any) -> DataBundle:
    """The preset's datasets: the built-in objects, rendered once and cached on disk
    (``$JEPA_BLOCKS_CACHE/objects``), split by object into training and held-out objects."""

    def split(name: str) -> RenderedObjects:
        return RenderedObjects(
            split=name,
            size=config.objects_size,
            image_size=config.image_size,
            num_classes=config.num_classes,
            seed=config.data_seed,
            nuisances=config.nuisances,
            normalize=False,
        )

    train_objects, test_objects = split("train"), split("val")
    train = MultiCropViews(
        train_objects,
        num_global=config.num_global,
        num_local=config.num_local,
        global_size=config.image_size,
        local_size=config.local_size,
        global_scale=(config.global_scale_min, 1.0),
        local_scale=(config.local_scale_min, config.local_scale_max),
        group_size=train_objects.views_per_object if config.views_from == "object" else 1,
        seed=config.seed,
    )
    return DataBundle(
        train=train,
        probe_train=_spread_subset(
            _Normalized(train_objects, OBJECTS_MEAN, OBJECTS_STD), config.probe_train_size
        ),
        probe_test=_spread_subset(
            _Normalized(test_objects, OBJECTS_MEAN, OBJECTS_STD), config.probe_test_size
        ),
        num_classes=train_objects.num_classes,
    )
