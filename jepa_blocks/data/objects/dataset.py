"""The built-in rendered-object dataset: a small, offline stand-in for 3DIEBench.

seq-JEPA's main benchmark, 3DIEBench (spec §2.1), is 52k ShapeNet objects rendered 50 times
each under random rotations and lighting. This module generates the same kind of data from
nothing: the procedural objects of :mod:`~jepa_blocks.data.objects.shapes`, rendered by the
pure-torch CPU ray caster :mod:`~jepa_blocks.data.objects.render` under 3DIEBench's 7 latent
factors per view (:mod:`~jepa_blocks.data.objects.latents`), so the same model, actions and
probes run on it out of the box.

:class:`RenderedObjects` renders a dataset once and caches it on disk (uint8 images, float32
latents, int64 labels, in one file whose name holds a hash of every generation parameter);
:class:`ObjectSequences` turns it into seq-JEPA training sequences exactly as the 3DIEBench
pipeline does: ``m + 1`` distinct views of one object in random order plus the relative
actions between consecutive views.
"""

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, SupportsIndex

import torch
from torch.utils.data import Dataset

from jepa_blocks._typing import Float, Shaped, Tensor, typecheck
from jepa_blocks.data.objects.latents import NUISANCES, apply_nuisances, sample_latents
from jepa_blocks.data.objects.primitives import pack_parts
from jepa_blocks.data.objects.render import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, render_latents
from jepa_blocks.data.objects.shapes import CLASS_NAMES, make_object
from jepa_blocks.data.sequences import (
    LatentSequences,
    channel_stats,
    check_index,
    item_generator,
    normalize,
)
from jepa_blocks.training.atomic import atomic_save

__all__ = [
    "FORMAT_VERSION",
    "OBJECTS_MEAN",
    "OBJECTS_STD",
    "SIZE_PRESETS",
    "compute_normalization",
    "denormalize",
    "default_cache_dir",
    "RenderedObjects",
    "ObjectSequences",
]

logger = logging.getLogger(__name__)

#: Bump when the cache layout or anything that changes the pixels changes.
FORMAT_VERSION = 1

#: ``size`` presets: (instances per class, views per object). With 10 classes: "small" is 640
#: views (under a second); "default" 6,400 views (64 px: 79 MB of uint8, rendered in about 4 s on
#: one core of the reference 2-core machine, see benchmarks/results/render-cpu.md); "large" has
#: 3DIEBench's 50 views per object, 50,000 views (64 px: 614 MB; 128 px: 2.5 GB).
SIZE_PRESETS: dict[str, tuple[int, int]] = {
    "small": (8, 8),
    "default": (40, 16),
    "large": (100, 50),
}

#: Per-channel mean and std of the rendered pixels in [0, 1], measured on the "default" preset
#: (10 classes x 40 instances x 16 views, 64 px, seed 0; seed 1, the train split alone and
#: 128 px agree to 0.004). :func:`compute_normalization` recomputes them for any rendering.
#: (3DIEBench's are mean 0.50, std 0.10: its scenes are brighter and lower in contrast.)
OBJECTS_MEAN: tuple[float, float, float] = (0.3433, 0.3420, 0.3409)
OBJECTS_STD: tuple[float, float, float] = (0.1642, 0.1600, 0.1674)

_CACHE_ENV = "JEPA_BLOCKS_CACHE"


# ----------------------------------------------------------------------------- normalisation


@typecheck
def compute_normalization(
    images: Shaped[Tensor, "*batch 3 hh ww"],
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std of uint8 images (e.g. ``RenderedObjects.images``), in ``[0, 1]``.

    Raises:
        ValueError: the images are not uint8.
    """
    if images.dtype != torch.uint8:
        raise ValueError(
            f"images must be uint8 (0..255), got {images.dtype}; pass RenderedObjects.images."
        )
    flat = images.movedim(-3, 0).reshape(3, -1).double() / 255.0
    mean = flat.mean(1)
    std = flat.std(1)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


@typecheck
def denormalize(
    views: Float[Tensor, "*batch 3 hh ww"],
    mean: Sequence[float] = OBJECTS_MEAN,
    std: Sequence[float] = OBJECTS_STD,
) -> Float[Tensor, "*batch 3 hh ww"]:
    """Undo the normalisation (for plots): back to ``[0, 1]``, clamped."""
    m = views.new_tensor(mean)[:, None, None]
    s = views.new_tensor(std)[:, None, None]
    return (views * s + m).clamp(0.0, 1.0)


def _objects_stats() -> tuple[Tensor, Tensor]:
    stats = channel_stats(OBJECTS_MEAN, OBJECTS_STD)
    assert stats is not None
    return stats


# ----------------------------------------------------------------------------- the dataset


def default_cache_dir() -> Path:
    """``$JEPA_BLOCKS_CACHE/objects`` if that variable is set, else
    ``~/.cache/jepa_blocks/objects``."""
    env = os.environ.get(_CACHE_ENV)
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "jepa_blocks"
    return base / "objects"


class RenderedObjects(Dataset):
    """Procedurally generated 3D objects rendered under 3DIEBench-like latents, cached on disk.

    ``num_classes x instances_per_class`` objects are rendered ``views_per_object`` times each.
    Instances are split by object: the last ``val_fraction`` of each class's instances (at least
    one) form ``"val"``, the rest ``"train"``; ``"all"`` keeps both. The whole rendering (both
    splits) is one cache file, so the splits never disagree.

    Item ``i`` is one view (views of object ``i // views_per_object``): a dict with ``image``
    ``(3, hh, ww)`` float32 (normalised with :data:`OBJECTS_MEAN`/:data:`OBJECTS_STD` if
    ``normalize`` else in ``[0, 1]``), ``latents`` ``(7,)``, ``label`` (int64 scalar),
    ``object`` and ``view`` (int64 scalars). The raw arrays are attributes: ``images``
    ``(objects, views, 3, hh, ww)`` uint8, ``latents`` ``(objects, views, 7)`` float32,
    ``labels`` and ``instances`` ``(objects,)`` int64.

    Args:
        root: cache folder; ``None`` uses :func:`default_cache_dir`.
        split: ``"train"``, ``"val"`` or ``"all"``.
        size: a :data:`SIZE_PRESETS` name giving instances per class and views per object.
        image_size: pixels per side, in ``[16, 256]``.
        num_classes: use the first ``num_classes`` of :data:`CLASS_NAMES` (1 to 12).
        instances_per_class, views_per_object: override the preset.
        val_fraction: fraction of each class's instances held out for ``"val"``.
        seed: generation seed (objects and latents).
        supersample: antialiasing factor of the renderer (1 = none).
        normalize: normalise ``image`` in per-view items.
        cache: read and write the cache file; ``False`` renders in memory only.
        nuisances: how the scene latents (floor hue, light angle, azimuth and hue) vary:
            ``"view"`` (3DIEBench: every view draws its own), ``"object"`` (drawn once per
            object, shared by its views: views differ by rotation only) or ``"fixed"`` (one
            scene, :data:`FIXED_NUISANCES`, for every view).

    Raises:
        ValueError: an unknown split or size, an image size outside ``[16, 256]``, a class
            count outside ``[1, 12]``, fewer than 2 instances per class (one would leave a
            split empty), fewer than 1 view, ``val_fraction`` outside ``(0, 1)``, a negative
            seed, a ``supersample`` below 1 or an unknown ``nuisances``.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        split: Literal["train", "val", "all"] = "train",
        size: Literal["small", "default", "large"] = "default",
        image_size: int = 64,
        num_classes: int = 10,
        instances_per_class: int | None = None,
        views_per_object: int | None = None,
        val_fraction: float = 0.2,
        seed: int = 0,
        supersample: int = 1,
        normalize: bool = True,
        cache: bool = True,
        nuisances: Literal["view", "object", "fixed"] = "view",
    ) -> None:
        if split not in ("train", "val", "all"):
            raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}.")
        if size not in SIZE_PRESETS:
            raise ValueError(f"size must be one of {tuple(SIZE_PRESETS)}, got {size!r}.")
        if not isinstance(image_size, int) or not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
            raise ValueError(
                f"image_size must be an int in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}], got "
                f"{image_size!r}."
            )
        if not isinstance(num_classes, int) or not 1 <= num_classes <= len(CLASS_NAMES):
            raise ValueError(
                f"num_classes must be in [1, {len(CLASS_NAMES)}] (the built-in classes), got "
                f"{num_classes!r}."
            )
        preset_instances, preset_views = SIZE_PRESETS[size]
        instances = preset_instances if instances_per_class is None else instances_per_class
        views = preset_views if views_per_object is None else views_per_object
        if not isinstance(instances, int) or instances < 2:
            raise ValueError(
                f"instances_per_class must be an int >= 2 (train and val both need one), got "
                f"{instances!r}."
            )
        if not isinstance(views, int) or views < 1:
            raise ValueError(f"views_per_object must be an int >= 1, got {views!r}.")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}.")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}.")
        if not isinstance(supersample, int) or supersample < 1:
            raise ValueError(f"supersample must be an int >= 1, got {supersample!r}.")
        if nuisances not in NUISANCES:
            raise ValueError(
                f"nuisances must be one of {NUISANCES} (scene latents drawn per view, per object, "
                f"or fixed), got {nuisances!r}."
            )

        self.split = split
        self.image_size = image_size
        self.num_classes = num_classes
        self.class_names = CLASS_NAMES[:num_classes]
        self.instances_per_class = instances
        self.views_per_object = views
        self.seed = seed
        self.normalize = normalize
        self.params: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "image_size": image_size,
            "num_classes": num_classes,
            "instances_per_class": instances,
            "views_per_object": views,
            "seed": seed,
            "supersample": supersample,
        }
        if nuisances != "view":  # the key is absent for the default, so old caches stay valid
            self.params["nuisances"] = nuisances
        self.nuisances = nuisances
        digest = hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()
        self.cache_key = digest[:16]
        directory = Path(root).expanduser() if root is not None else default_cache_dir()
        self.cache_path: Path | None = (
            directory / f"objects-v{FORMAT_VERSION}-{self.cache_key}.pt" if cache else None
        )
        self.loaded_from_cache = False
        data = self._load() if self.cache_path is not None else None
        if data is None:
            data = self._render()
            if self.cache_path is not None:
                self._save(data)
        else:
            self.loaded_from_cache = True

        n_val = min(instances - 1, max(1, round(instances * val_fraction)))
        instance = data["instances"]
        keep = {
            "train": instance < instances - n_val,
            "val": instance >= instances - n_val,
            "all": torch.ones_like(instance, dtype=torch.bool),
        }[split]
        self.images: Tensor = data["images"][keep]
        self.latents: Tensor = data["latents"][keep]
        self.labels: Tensor = data["labels"][keep]
        self.instances: Tensor = instance[keep]

    # ---- cache

    def _expected_shapes(self) -> dict[str, tuple[int, ...]]:
        n = self.num_classes * self.instances_per_class
        v, s = self.views_per_object, self.image_size
        return {"images": (n, v, 3, s, s), "latents": (n, v, 7), "labels": (n,), "instances": (n,)}

    def _load(self) -> dict[str, Tensor] | None:
        path = self.cache_path
        assert path is not None
        if not path.exists():
            return None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            ok = (
                isinstance(data, dict)
                and data.get("key") == self.cache_key
                and data.get("params") == self.params
                and all(
                    isinstance(data.get(name), Tensor) and tuple(data[name].shape) == shape
                    for name, shape in self._expected_shapes().items()
                )
                and data["images"].dtype == torch.uint8
            )
        except Exception as error:  # a truncated or foreign file: render again
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            warnings.warn(
                f"cache file {path} is unreadable ({type(error).__name__}: {reason[:120]}); "
                "rendering the dataset again and overwriting it.",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        if not ok:
            logger.info("cache %s does not match the requested parameters; re-rendering", path)
            return None
        return {name: data[name] for name in self._expected_shapes()}

    def _save(self, data: dict[str, Tensor]) -> None:
        path = self.cache_path
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"key": self.cache_key, "params": self.params, **data}
        # Readers (and concurrent writers) only ever see a complete file.
        atomic_save(payload, path)

    # ---- rendering

    def _render(self) -> dict[str, Tensor]:
        objects, labels, instances, latents = [], [], [], []
        for label, name in enumerate(self.class_names):
            for instance in range(self.instances_per_class):
                objects.append(make_object(name, self.seed, instance))
                labels.append(label)
                instances.append(instance)
                generator = item_generator(self.seed, 1, label, instance)
                latents.append(
                    apply_nuisances(
                        sample_latents(self.views_per_object, generator), self.nuisances
                    )
                )
        prims = pack_parts(objects)
        latent = torch.stack(latents)  # (objects, views, 7)
        n, v = latent.shape[:2]
        owner = torch.arange(n).repeat_interleave(v)
        flat_latents = latent.reshape(n * v, 7)
        images = torch.empty(n * v, 3, self.image_size, self.image_size, dtype=torch.uint8)
        step = 2048
        for start in range(0, n * v, step):
            sl = slice(start, min(n * v, start + step))
            rgb = render_latents(
                prims[owner[sl]],
                flat_latents[sl],
                image_size=self.image_size,
                supersample=self.params["supersample"],
            )
            images[sl] = (rgb * 255.0).round_().to(torch.uint8)
        logger.info("rendered %d views of %d objects", n * v, n)
        return {
            "images": images.reshape(n, v, 3, self.image_size, self.image_size),
            "latents": latent,
            "labels": torch.tensor(labels, dtype=torch.int64),
            "instances": torch.tensor(instances, dtype=torch.int64),
        }

    # ---- access

    @property
    def num_objects(self) -> int:
        return self.labels.shape[0]

    def __len__(self) -> int:
        return self.num_objects * self.views_per_object

    def __getitem__(self, index: SupportsIndex) -> dict[str, Tensor]:
        i = check_index(index, len(self), "RenderedObjects")
        obj, view = divmod(i, self.views_per_object)
        pixels = self.images[obj, view]
        image = normalize(pixels, _objects_stats() if self.normalize else None)
        return {
            "image": image,
            "latents": self.latents[obj, view].clone(),
            "label": self.labels[obj].clone(),
            "object": torch.tensor(obj),
            "view": torch.tensor(view),
        }


class ObjectSequences(LatentSequences):
    """seq-JEPA sequences from :class:`RenderedObjects`: ``m + 1`` views of one object.

    Item ``i`` (object ``i``) is a dict with

    - ``views`` ``(m + 1, 3, hh, ww)`` float32: distinct views drawn uniformly without
      replacement, in random order (spec §2.1), normalised with :data:`OBJECTS_MEAN` and
      :data:`OBJECTS_STD` unless ``normalize=False`` (then in ``[0, 1]``);
    - ``actions`` ``(m, da)`` float32: action ``j`` takes view ``j`` to view ``j + 1``;
      ``"rot"``: the quaternion of ``R_j^-1 R_{j+1}`` (scalar last, :func:`jepa_blocks.actions.
      relative_rotation_from_euler`, da = 4); ``"rotcolor"``: that quaternion then
      ``[Δfloor_hue, Δspot_hue]``, plain differences without wrap-around (da = 6, spec §1.3);
    - ``latents`` ``(m + 1, 7)`` float32; ``view_ids`` ``(m + 1,)`` int64;
    - ``label`` and ``index`` int64 scalars.

    The layout, the draws and the actions are those of
    :class:`~jepa_blocks.data.sources.threediebench.ThreeDIEBenchSequences` (one base,
    :class:`~jepa_blocks.data.sequences.LatentSequences`): the latents follow 3DIEBench's
    layout, so the two are interchangeable in training code. The draw depends only on
    ``(seed, epoch, index)``; :meth:`set_epoch` selects the epoch.

    Args:
        objects: the rendered views.
        num_views: ``m + 1``, observations plus the target, in ``[2, views_per_object]``.
        action: ``"rot"`` or ``"rotcolor"``.
        canonical: return quaternions with ``w >= 0`` (the official code does not).
        seed: base seed of the view draws (>= 0).
        normalize: normalise the views.

    Raises:
        ValueError: ``num_views`` outside ``[2, views_per_object]``, an unknown ``action`` or a
            negative ``seed``.
    """

    def __init__(
        self,
        objects: RenderedObjects,
        *,
        num_views: int,
        action: Literal["rot", "rotcolor"] = "rot",
        canonical: bool = False,
        seed: int = 0,
        normalize: bool = True,
    ) -> None:
        self.objects = objects
        self.normalize = normalize
        super().__init__(num_views=num_views, action=action, canonical=canonical, seed=seed)

    @property
    def num_objects(self) -> int:
        return self.objects.num_objects

    @property
    def views_per_object(self) -> int:
        return self.objects.views_per_object

    @property
    def num_classes(self) -> int:
        return self.objects.num_classes

    def label(self, index: int) -> Tensor:
        return self.objects.labels[index].clone()

    def load_views(self, index: int, view_ids: Tensor) -> tuple[Tensor, Tensor]:
        pixels = self.objects.images[index, view_ids]
        views = normalize(pixels, _objects_stats() if self.normalize else None)
        return views, self.objects.latents[index, view_ids]
