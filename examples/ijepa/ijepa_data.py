"""I-JEPA's data: one image per object and epoch, randomly cropped, and the probe splits.

I-JEPA needs no hand-made views: the context and the targets are blocks of one image's patch
grid (the masks are drawn in the training step, ``train.py``). Its only augmentation is a
random resized crop (area 30-100 %, no flip, no colour jitter), as the official recipe.

An item is an **object** of the built-in rendered objects (:class:`RenderedObjects`, the data
the LeJEPA example uses, with held-out objects for the probes): its image is one of the
object's rendered views, drawn with the crop from :func:`item_generator` ``(seed, epoch,
index)``, so an item is the same in any process or DataLoader worker and a resumed run sees
the same images. An epoch is one pass over the training objects (800 for ``large``).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from jepa_blocks.data.objects import OBJECTS_MEAN, OBJECTS_STD, RenderedObjects
from jepa_blocks.data.sequences import item_generator
from jepa_blocks.data.transforms import ParamCompose, RandomResizedCrop

__all__ = ["ObjectImages", "DataBundle", "build_data"]


class ObjectImages(Dataset):
    """One randomly cropped view per object: item ``i`` is ``{"image": (3, s, s), "label"}``,
    normalised with ``mean``/``std``.

    Args:
        images: a dataset of dicts with ``image`` (float ``(3, hh, ww)`` in ``[0, 1]``) and
            ``label``, ``group_size`` consecutive images per object (``RenderedObjects``
            orders its views so), e.g. ``RenderedObjects(normalize=False)``.
        image_size: output side in px.
        crop_scale: crop-area range (fraction of the image).
        group_size: images per object (1: an item is an image).

    Raises:
        ValueError: a group size that does not divide the images, a negative seed.
    """

    def __init__(
        self,
        images: Dataset,
        *,
        image_size: int = 32,
        crop_scale: tuple[float, float] = (0.3, 1.0),
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
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}.")
        self.images = images
        self.crop = ParamCompose([RandomResizedCrop(image_size, scale=crop_scale)])
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.group_size = group_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose images ``__getitem__`` returns (fresh views and crops)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}.")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.images) // self.group_size  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items.")
        generator = item_generator(self.seed, self.epoch, index)
        view = int(torch.randint(self.group_size, (), generator=generator))
        item = self.images[index * self.group_size + view]
        image, _ = self.crop.full(item["image"], generator=generator)
        return {
            "image": (image - self.mean) / self.std,
            "label": torch.as_tensor(item["label"], dtype=torch.long),
        }


@dataclass
class DataBundle:
    train: ObjectImages  # the self-supervised images
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
    train = ObjectImages(
        train_objects,
        image_size=config.image_size,
        crop_scale=(config.crop_scale_min, 1.0),
        group_size=train_objects.views_per_object,
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
