"""The sequence-dataset base, and the seeding and argument checks every dataset shares.

Every sequence dataset of :mod:`jepa_blocks.data` returns dict items with ``views (m + 1, c,
hh, ww)``, ``actions (m, da)`` (action i takes view i to view i + 1) and ``label``. Its
randomness comes only from :func:`item_generator` ``(seed, epoch, index)``, so an item is the
same in the main process and in any DataLoader worker; :meth:`SequenceDataset.set_epoch`
selects the epoch (with ``persistent_workers=True`` the workers keep the epoch they were
started with, so leave persistence off or recreate the loader each epoch).

:class:`LatentSequences` is the base of the datasets whose views are renders of one object
under known latent factors (:class:`~jepa_blocks.data.objects.ObjectSequences`,
:class:`~jepa_blocks.data.sources.threediebench.ThreeDIEBenchSequences`): ``m + 1`` distinct
views drawn without replacement in random order, and the actions computed from their latents
by :func:`jepa_blocks.actions.threediebench_actions`. A subclass only says where the images and
latents come from.
"""

import operator
from collections.abc import Sequence
from typing import Any, Literal, SupportsIndex

import numpy as np
import torch
from torch.utils.data import Dataset

from jepa_blocks._typing import Float, Tensor
from jepa_blocks.actions import threediebench_actions

__all__ = [
    "item_generator",
    "check_index",
    "as_image_size",
    "as_image",
    "channel_stats",
    "normalize",
    "SequenceDataset",
    "ImageSequences",
    "LatentSequences",
]


# ----------------------------------------------------------------------------- seeding


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


# ----------------------------------------------------------------------------- argument checks


def check_index(index: SupportsIndex, length: int, name: str) -> int:
    """A list-style index (negatives count from the end) checked against ``length``.

    Raises:
        IndexError: the index is outside ``[-length, length)``.
    """
    i = int(index.__index__())
    if i < 0:
        i += length
    if not 0 <= i < length:
        raise IndexError(f"{name} index {int(index.__index__())} out of range for length {length}")
    return i


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def as_image_size(size: int | Sequence[int], name: str = "image_size") -> tuple[int, int]:
    """``(height, width)`` from an int (a square side) or a pair of positive ints.

    Raises:
        ValueError: not an int or a pair of ints, or not positive.
    """
    if _is_int(size):
        pair = (operator.index(size), operator.index(size))  # type: ignore[arg-type]
    else:
        pair = tuple(size) if isinstance(size, Sequence | Tensor | np.ndarray) else ()
        if len(pair) != 2 or not all(_is_int(s) for s in pair):
            raise ValueError(
                f"{name} must be an int or a (height, width) pair of ints, got {size!r}."
            )
        pair = (operator.index(pair[0]), operator.index(pair[1]))
    if pair[0] < 1 or pair[1] < 1:
        raise ValueError(f"{name} must be positive, got {size!r}; pass e.g. {name}=128.")
    return pair  # type: ignore[return-value]


def as_image(image: Any) -> Float[Tensor, "c hh ww"]:
    """Float ``(c, hh, ww)`` in [0, 1] from a float/uint8 tensor, a PIL image or an HWC array.

    Raises:
        ValueError: another type, not one image, or an integer dtype other than uint8.
    """
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


def channel_stats(
    mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[Tensor, Tensor] | None:
    """Per-channel ``(mean, std)`` as ``(c, 1, 1)`` float32 tensors; ``None`` for neither.

    Raises:
        ValueError: only one of them, different lengths, or a non-positive std.
    """
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


def normalize(image: Tensor, stats: tuple[Tensor, Tensor] | None) -> Tensor:
    """``(image - mean) / std`` with :func:`channel_stats`; uint8 images are scaled to [0, 1]
    first; ``stats=None`` returns the (float) image unchanged.

    Raises:
        ValueError: the statistics have another channel count than the images.
    """
    if image.dtype == torch.uint8:
        image = image.float() / 255.0
    if stats is None:
        return image
    mean, std = stats
    if mean.shape[0] != image.shape[-3]:
        raise ValueError(
            f"mean/std have {mean.shape[0]} channels but the images have {image.shape[-3]}; "
            "pass per-channel statistics matching the dataset."
        )
    return (image - mean) / std


def _check_seed(seed: Any) -> int:
    if not _is_int(seed) or operator.index(seed) < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}.")
    return operator.index(seed)


# ----------------------------------------------------------------------------- the bases


class SequenceDataset(Dataset):
    """Base of the sequence datasets: ``num_views``, ``seed``, ``epoch`` and seeded draws.

    Subclasses set ``num_views`` and implement ``__len__``, ``__getitem__`` and
    :attr:`dim_action`; :meth:`generator` gives item ``index``'s random stream in the current
    epoch.

    Raises:
        ValueError: a negative or non-int ``seed``.
    """

    num_views: int

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = _check_seed(seed)
        self.epoch = 0

    @property
    def dim_action(self) -> int:
        """Width of one action (the last axis of ``actions``)."""
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose draws ``__getitem__`` returns (fresh views each epoch).

        Raises:
            ValueError: a negative or non-int epoch.
        """
        if not _is_int(epoch) or operator.index(epoch) < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}.")
        self.epoch = operator.index(epoch)

    def generator(self, index: int) -> torch.Generator:
        """Item ``index``'s random stream in the current epoch: ``(seed, epoch, index)``."""
        return item_generator(self.seed, self.epoch, index)


class ImageSequences(SequenceDataset):
    """Base of the sequences made from one image of an ``(image, label)`` dataset each.

    Item ``index`` draws its views from image ``index`` (float ``(c, hh, ww)`` in [0, 1], uint8
    tensor, PIL image or HWC array; see :func:`as_image`); views are normalised with
    ``mean``/``std`` (both ``None`` keeps [0, 1]).

    Raises:
        ValueError: a negative ``seed`` or inconsistent ``mean``/``std``.
    """

    def __init__(
        self,
        images: Dataset,
        *,
        num_views: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(seed=seed)
        self.images = images
        self.num_views = num_views
        self._stats = channel_stats(mean, std)

    def __len__(self) -> int:
        return len(self.images)  # type: ignore[arg-type]

    def load_image(self, index: int) -> tuple[Tensor, Any]:
        """Image ``index`` as float ``(c, hh, ww)``, and its label."""
        raw, label = self.images[index]
        return as_image(raw), label


class LatentSequences(SequenceDataset):
    """``m + 1`` distinct views of one object, in random order, with actions from latents.

    Item ``i`` (object ``i``) is a dict with

    - ``views`` ``(m + 1, c, hh, ww)`` float32, as the subclass loads them;
    - ``actions`` ``(m, da)`` float32: :func:`jepa_blocks.actions.threediebench_actions` of the
      drawn views' latents, computed in float64 (``"rot"``: the quaternion of
      ``R_j^-1 R_{j+1}``, da = 4; ``"rotcolor"``: that quaternion then ``[Δfloor_hue,
      Δspot_hue]``, da = 6);
    - ``latents`` ``(m + 1, 7)`` float32; ``view_ids`` ``(m + 1,)`` int64;
    - ``label`` and ``index`` int64 scalars.

    Subclasses implement :attr:`num_objects`, :attr:`views_per_object`, :attr:`num_classes`,
    :meth:`label` and :meth:`load_views`.

    Args:
        num_views: ``m + 1``, observations plus the target, in ``[2, views_per_object]``.
        action: ``"rot"`` or ``"rotcolor"``.
        canonical: return quaternions with ``w >= 0`` (the official code does not).
        seed: base seed of the view draws (>= 0).

    Raises:
        ValueError: ``num_views`` outside ``[2, views_per_object]``, an unknown ``action`` or a
            negative ``seed``.
    """

    def __init__(
        self,
        *,
        num_views: int,
        action: Literal["rot", "rotcolor"] = "rot",
        canonical: bool = False,
        seed: int = 0,
    ) -> None:
        if action not in ("rot", "rotcolor"):
            raise ValueError(
                f"action must be 'rot' (quaternion, 4 values) or 'rotcolor' (quaternion + 2 hue "
                f"deltas, 6 values), got {action!r}."
            )
        available = self.views_per_object
        if not _is_int(num_views) or not 2 <= num_views <= available:
            raise ValueError(
                f"num_views (m + 1) must be in [2, views_per_object={available}], got "
                f"{num_views!r}; seq-JEPA needs one observation and one target at least: lower "
                "num_views or use more views per object."
            )
        super().__init__(seed=seed)
        self.num_views = num_views
        self.action = action
        self.canonical = canonical

    @property
    def num_objects(self) -> int:
        raise NotImplementedError

    @property
    def views_per_object(self) -> int:
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        raise NotImplementedError

    def label(self, index: int) -> Tensor:
        """Object ``index``'s class, an int64 scalar tensor."""
        raise NotImplementedError

    def load_views(self, index: int, view_ids: Tensor) -> tuple[Tensor, Tensor]:
        """Object ``index``'s views ``view_ids``: ``(images (v, c, hh, ww), latents (v, 7))``."""
        raise NotImplementedError

    @property
    def dim_action(self) -> int:
        """Width of one action: 4 for ``"rot"``, 6 for ``"rotcolor"``."""
        return 4 if self.action == "rot" else 6

    def __len__(self) -> int:
        return self.num_objects

    def draw_views(self, index: int) -> Tensor:
        """The ``m + 1`` view ids (int64) item ``index`` uses in the current epoch."""
        order = torch.randperm(self.views_per_object, generator=self.generator(index))
        return order[: self.num_views]

    def __getitem__(self, index: SupportsIndex) -> dict[str, Tensor]:
        i = check_index(index, len(self), type(self).__name__)
        chosen = self.draw_views(i)
        views, latents = self.load_views(i, chosen)
        actions = threediebench_actions(
            latents.double(), action=self.action, canonical=self.canonical
        )
        return {
            "views": views,
            "actions": actions.float(),
            "latents": latents.float(),
            "view_ids": chosen,
            "label": self.label(i),
            "index": torch.tensor(i),
        }
