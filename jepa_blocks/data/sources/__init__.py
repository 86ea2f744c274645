"""Image sources: the paper's datasets read from their published files, and shipped photos.

Nothing here downloads. The plain image datasets (:class:`CIFAR100`, :class:`STL10`,
:class:`ImageFolder`, :class:`ShippedImages`) return ``(image, label)`` with ``image`` a float
tensor in ``[0, 1]`` of shape ``(c, hh, ww)``: the contract of the augmentation and saccade
sequence datasets that wrap them. 3DIEBench comes as a per-view dataset
(:class:`ThreeDIEBench`) and as the sequence dataset seq-JEPA trains on
(:class:`ThreeDIEBenchSequences`).
"""

from jepa_blocks.data.sources.cifar import CIFAR100
from jepa_blocks.data.sources.folder import IMAGE_EXTENSIONS, ImageFolder
from jepa_blocks.data.sources.shipped import (
    SHIPPED_PHOTOS,
    ShippedImages,
    load_shipped_photos,
    simple_saliency,
)
from jepa_blocks.data.sources.stl10 import STL10
from jepa_blocks.data.sources.threediebench import (
    THREEDIEBENCH_MEAN,
    THREEDIEBENCH_STD,
    ThreeDIEBench,
    ThreeDIEBenchSequences,
)

__all__ = [
    "CIFAR100",
    "STL10",
    "IMAGE_EXTENSIONS",
    "ImageFolder",
    "SHIPPED_PHOTOS",
    "ShippedImages",
    "load_shipped_photos",
    "simple_saliency",
    "THREEDIEBENCH_MEAN",
    "THREEDIEBENCH_STD",
    "ThreeDIEBench",
    "ThreeDIEBenchSequences",
]
