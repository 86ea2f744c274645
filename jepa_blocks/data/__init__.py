"""Data with known actions for seq-JEPA: view sequences, built-in data, data on disk.

Every sequence dataset (:class:`SequenceDataset`) returns dict items with ``views (m+1, c, h,
w)``, ``actions (m, da)`` (action i takes view i to view i + 1) and ``label``, deterministic
from ``(seed, epoch, index)`` and identical in any DataLoader worker; call ``set_epoch`` before
each epoch. Layout: ``sequences`` (the base, seeding), ``functional`` and ``transforms``
(augmentations that return their parameters), ``augmented``, ``saccades``, ``sampler``,
``sources/`` (data on disk, shipped photos), ``objects/`` (the built-in rendered objects).

- Built in, offline: :class:`RenderedObjects` / :class:`ObjectSequences` (procedural 3D
  objects rendered in pure torch, a 3DIEBench stand-in) and :class:`ShippedImages` (real
  photographs inside the package).
- Augmentations that return their parameters: :class:`AugmentedSequences` and the recipes.
- Saccades (PLS): :class:`SaccadeSequences`, :func:`sample_fixations`, :func:`extract_glimpses`.
- On disk: :class:`ThreeDIEBench` / :class:`ThreeDIEBenchSequences`, :class:`CIFAR100`,
  :class:`STL10`, :class:`ImageFolder`.
- :class:`ResumableSampler`: sharded, reshuffled per epoch, able to start mid-epoch.
"""

from jepa_blocks.actions import threediebench_actions
from jepa_blocks.data.augmented import (
    ACTION_SLICES,
    CIFAR100_MEAN,
    CIFAR100_STD,
    TINY_IMAGENET_MEAN,
    TINY_IMAGENET_STD,
    AugmentationRecipe,
    AugmentedSequences,
    observation_recipe,
    target_recipe,
)
from jepa_blocks.data.objects import (
    CLASS_NAMES,
    LATENT_NAMES,
    LATENT_RANGES,
    OBJECTS_MEAN,
    OBJECTS_STD,
    ObjectSequences,
    RenderedObjects,
    denormalize,
)
from jepa_blocks.data.saccades import (
    STL10_MEAN,
    STL10_STD,
    SaccadeSequences,
    extract_glimpses,
    sample_fixations,
)
from jepa_blocks.data.sampler import ResumableSampler
from jepa_blocks.data.sequences import (
    ImageSequences,
    LatentSequences,
    SequenceDataset,
    item_generator,
)
from jepa_blocks.data.sources import (
    CIFAR100,
    STL10,
    THREEDIEBENCH_MEAN,
    THREEDIEBENCH_STD,
    ImageFolder,
    ShippedImages,
    ThreeDIEBench,
    ThreeDIEBenchSequences,
    simple_saliency,
)
from jepa_blocks.data.transforms import ACTION_PARAM_NAMES, ParamCompose

__all__ = [
    "ACTION_PARAM_NAMES",
    "ACTION_SLICES",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "TINY_IMAGENET_MEAN",
    "TINY_IMAGENET_STD",
    "AugmentationRecipe",
    "AugmentedSequences",
    "ParamCompose",
    "observation_recipe",
    "target_recipe",
    "CIFAR100",
    "STL10",
    "THREEDIEBENCH_MEAN",
    "THREEDIEBENCH_STD",
    "ImageFolder",
    "ThreeDIEBench",
    "ThreeDIEBenchSequences",
    "threediebench_actions",
    "ShippedImages",
    "simple_saliency",
    "CLASS_NAMES",
    "LATENT_NAMES",
    "LATENT_RANGES",
    "OBJECTS_MEAN",
    "OBJECTS_STD",
    "ObjectSequences",
    "RenderedObjects",
    "denormalize",
    "ResumableSampler",
    "STL10_MEAN",
    "STL10_STD",
    "SaccadeSequences",
    "extract_glimpses",
    "sample_fixations",
    "SequenceDataset",
    "ImageSequences",
    "LatentSequences",
    "item_generator",
]
