"""The built-in rendered objects: a small, offline stand-in for 3DIEBench.

- :mod:`~jepa_blocks.data.objects.primitives`: :class:`Part`, :class:`Primitives` and the
  rotation and colour conventions;
- :mod:`~jepa_blocks.data.objects.shapes`: the 12 procedural object classes;
- :mod:`~jepa_blocks.data.objects.latents`: the 7 latent factors of a view;
- :mod:`~jepa_blocks.data.objects.raycast` and :mod:`~jepa_blocks.data.objects.render`: the
  pure-torch CPU renderer;
- :mod:`~jepa_blocks.data.objects.dataset`: :class:`RenderedObjects` (rendered once, cached on
  disk) and :class:`ObjectSequences` (seq-JEPA sequences with rotation actions).
"""

from jepa_blocks.data.objects.dataset import (
    FORMAT_VERSION,
    OBJECTS_MEAN,
    OBJECTS_STD,
    SIZE_PRESETS,
    ObjectSequences,
    RenderedObjects,
    compute_normalization,
    default_cache_dir,
    denormalize,
)
from jepa_blocks.data.objects.latents import (
    FIXED_NUISANCES,
    LATENT_NAMES,
    LATENT_RANGES,
    NUISANCES,
    sample_latents,
)
from jepa_blocks.data.objects.primitives import Part, Primitives, pack_parts
from jepa_blocks.data.objects.render import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, render, render_latents
from jepa_blocks.data.objects.shapes import CLASS_NAMES, make_object

__all__ = [
    "FORMAT_VERSION",
    "CLASS_NAMES",
    "LATENT_NAMES",
    "LATENT_RANGES",
    "OBJECTS_MEAN",
    "OBJECTS_STD",
    "SIZE_PRESETS",
    "NUISANCES",
    "FIXED_NUISANCES",
    "make_object",
    "sample_latents",
    "compute_normalization",
    "denormalize",
    "default_cache_dir",
    "RenderedObjects",
    "ObjectSequences",
    "Part",
    "Primitives",
    "pack_parts",
    "render",
    "render_latents",
    "MIN_IMAGE_SIZE",
    "MAX_IMAGE_SIZE",
]
