"""3DIEBench (Garrido et al. 2023) in its published SIE folder layout; never downloaded.

:class:`ThreeDIEBench` is the per-view dataset, ``(image, label)`` items;
:class:`ThreeDIEBenchSequences` the sequence dataset seq-JEPA trains on (spec §2.1), with the
item layout, draws and actions of the built-in
:class:`~jepa_blocks.data.objects.ObjectSequences` (one base,
:class:`~jepa_blocks.data.sequences.LatentSequences`). The action maths is
:func:`jepa_blocks.actions.threediebench_actions`.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, SupportsIndex

import numpy as np
import torch
from torch.utils.data import Dataset

from jepa_blocks._typing import Float, Tensor, typecheck
from jepa_blocks.data.sequences import LatentSequences, as_image_size, check_index
from jepa_blocks.data.sources.files import (
    PathLike,
    load_npy,
    load_rgb,
    require_dir,
    to_unit_float,
)

__all__ = ["THREEDIEBENCH_MEAN", "THREEDIEBENCH_STD", "ThreeDIEBench", "ThreeDIEBenchSequences"]

#: Per-channel statistics of 3DIEBench used by the paper and the official code (spec §2.1).
THREEDIEBENCH_MEAN: tuple[float, float, float] = (0.5016, 0.5037, 0.5060)
THREEDIEBENCH_STD: tuple[float, float, float] = (0.1030, 0.0999, 0.0969)

_SIE_LAYOUT = (
    "the SIE layout: <root>/{train,val}_images.npy (object paths such as "
    "'/02691156/1021a0914a7207aff927ed529ad90a11'), <root>/{train,val}_labels.npy (int labels) "
    "and <root>/<synset_id>/<object_id>/image_<k>.jpg + latent_<k>.npy for k = 0..49"
)


class ThreeDIEBench(Dataset):
    """3DIEBench (Garrido et al. 2023) views from the SIE folder layout, one item per view.

    Supported layout (as released at ``dl.fbaipublicfiles.com/SIE/3DIEBench.tar.gz`` with the
    split files of ``facebookresearch/SIE/data`` or ``hafezgh/seq-jepa/seq-jepa/data/3DIEBench``)::

        root/
          train_images.npy   1-d array of object paths, e.g. "/02691156/1021a0914a7207aff927ed..."
          train_labels.npy   1-d int array, one class (0..54) per object
          val_images.npy, val_labels.npy
          <synset_id>/<object_id>/image_<k>.jpg   k = 0..views_per_object-1 (256x256 renders)
          <synset_id>/<object_id>/latent_<k>.npy  7 floats: yaw, pitch, roll (extrinsic xyz
                                                  Euler, radians), floor_hue, spot_theta,
                                                  spot_phi, spot_hue

    The object paths start with "/" and are taken relative to ``root`` (SIE strips the first
    character). Item ``i`` is view ``i % views_per_object`` of object ``i // views_per_object``:
    ``(image, label)``, the image resized to ``image_size`` and, with ``normalize=True``
    (default), normalised with :data:`THREEDIEBENCH_MEAN` / :data:`THREEDIEBENCH_STD`; with
    ``normalize=False`` it lies in ``[0, 1]``. The JPEGs are decoded with Pillow as RGB,
    exactly as SIE and the official seq-JEPA code decode them. (SIE's generator wrote them with
    ``cv2.imwrite``, which takes BGR input, so the stored channel order may differ from the
    render; the normalisation statistics were computed on the files as decoded here.)

    Args:
        root: the dataset folder described above.
        split: ``"train"`` (41,920 objects) or ``"val"`` (10,552 objects).
        image_size: output side (int, square) or ``(height, width)``; ``None`` keeps the stored
            size. The paper resizes 256 -> 128.
        normalize: apply the 3DIEBench mean/std normalisation.
        views_per_object: renders per object (50 in 3DIEBench).
        num_classes: number of classes; ``None`` takes ``max(label) + 1`` of this split (55 on
            the real dataset).

    Raises:
        FileNotFoundError: ``root``, a split file or the first object's files are missing.
        ValueError: a split file is corrupt or inconsistent, a latent is not 7 floats, or an
            argument is invalid. Reading a corrupt image or latent later raises ``ValueError``
            naming the file.
    """

    def __init__(
        self,
        root: PathLike,
        *,
        split: Literal["train", "val"] = "train",
        image_size: int | Sequence[int] | None = 128,
        normalize: bool = True,
        views_per_object: int = 50,
        num_classes: int | None = None,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"3DIEBench split must be 'train' or 'val', got {split!r}.")
        if views_per_object < 1:
            raise ValueError(
                f"views_per_object must be >= 1, got {views_per_object}; 3DIEBench has 50."
            )
        self.image_size = None if image_size is None else as_image_size(image_size)
        self.root = Path(root)
        require_dir(self.root, "3DIEBench root", _SIE_LAYOUT)
        images_file = self.root / f"{split}_images.npy"
        labels_file = self.root / f"{split}_labels.npy"
        for file in (images_file, labels_file):
            if not file.is_file():
                raise FileNotFoundError(
                    f"3DIEBench root {self.root} has no {file.name}; expected {_SIE_LAYOUT}."
                )
        objects = load_npy(images_file, "3DIEBench split file", _SIE_LAYOUT)
        labels = load_npy(labels_file, "3DIEBench split file", _SIE_LAYOUT)
        if objects.ndim != 1 or objects.size == 0 or objects.dtype.kind not in "UOS":
            raise ValueError(
                f"3DIEBench split file {images_file} must hold a non-empty 1-d array of object "
                f"paths, got dtype {objects.dtype} and shape {objects.shape}; expected "
                f"{_SIE_LAYOUT}."
            )
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise ValueError(
                f"3DIEBench split file {labels_file} must hold a 1-d integer array, got dtype "
                f"{labels.dtype} and shape {labels.shape}; expected {_SIE_LAYOUT}."
            )
        if len(labels) != len(objects):
            raise ValueError(
                f"3DIEBench split files disagree: {images_file} lists {len(objects)} objects "
                f"but {labels_file} has {len(labels)} labels; re-extract both from one release."
            )
        if int(labels.min()) < 0:
            raise ValueError(
                f"3DIEBench split file {labels_file} has negative labels (min "
                f"{int(labels.min())}); class labels must be 0..C-1: re-extract the file."
            )
        self.objects: list[str] = [
            (o.decode() if isinstance(o, bytes) else str(o)).strip().lstrip("/") for o in objects
        ]
        self.labels = torch.from_numpy(labels.astype(np.int64))
        max_label = int(labels.max())
        if num_classes is None:
            num_classes = max_label + 1
        elif num_classes <= max_label:
            raise ValueError(
                f"num_classes={num_classes} but {labels_file} has label {max_label}; pass "
                f"num_classes >= {max_label + 1} or None."
            )
        self.split = split
        self.normalize = normalize
        self.views_per_object = views_per_object
        self.num_classes = num_classes
        self._mean = torch.tensor(THREEDIEBENCH_MEAN).view(3, 1, 1)
        self._std = torch.tensor(THREEDIEBENCH_STD).view(3, 1, 1)
        self._validate_first_object()

    def _validate_first_object(self) -> None:
        folder = self.object_dir(0)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"3DIEBench object folder {folder} (first entry of {self.split}_images.npy) does "
                f"not exist; expected {_SIE_LAYOUT}."
            )
        last = self.views_per_object - 1
        for name in ("image_0.jpg", "latent_0.npy", f"image_{last}.jpg", f"latent_{last}.npy"):
            if not (folder / name).is_file():
                raise FileNotFoundError(
                    f"3DIEBench object folder {folder} has no {name} (views_per_object="
                    f"{self.views_per_object}); expected {_SIE_LAYOUT}."
                )
        self.load_latent(0, 0)

    def __len__(self) -> int:
        return len(self.objects) * self.views_per_object

    @property
    def num_objects(self) -> int:
        """Objects in this split (each has ``views_per_object`` views)."""
        return len(self.objects)

    def object_dir(self, object_index: int) -> Path:
        """The folder holding object ``object_index``'s images and latents."""
        return self.root / self.objects[object_index]

    def load_latent(self, object_index: int, view: int) -> Float[Tensor, "7"]:
        """The 7 latent factors of one view, float64 as stored."""
        path = self.object_dir(object_index) / f"latent_{view}.npy"
        latent = load_npy(path, "3DIEBench latent", _SIE_LAYOUT)
        if latent.shape != (7,) or latent.dtype.kind != "f":
            raise ValueError(
                f"3DIEBench latent {path} must hold 7 floats (yaw, pitch, roll, floor_hue, "
                f"spot_theta, spot_phi, spot_hue), got dtype {latent.dtype} shape {latent.shape}."
            )
        return torch.from_numpy(latent.astype(np.float64))

    def load_image(self, object_index: int, view: int) -> Float[Tensor, "3 hh ww"]:
        """One view's image, resized and (if ``normalize``) normalised."""
        path = self.object_dir(object_index) / f"image_{view}.jpg"
        image = to_unit_float(load_rgb(path, self.image_size))
        if self.normalize:
            image = image.sub_(self._mean).div_(self._std)
        return image

    @typecheck
    def __getitem__(self, index: SupportsIndex) -> tuple[Float[Tensor, "3 hh ww"], int]:
        i = check_index(index, len(self), "ThreeDIEBench")
        obj, view = divmod(i, self.views_per_object)
        return self.load_image(obj, view), int(self.labels[obj])


class ThreeDIEBenchSequences(LatentSequences):
    """3DIEBench view sequences for seq-JEPA: ``m + 1`` views of one object and their actions.

    Item ``i`` is a dict for object ``i``:

    - ``views`` ``(m + 1, 3, hh, ww)`` float32: distinct views drawn uniformly without
      replacement, in random order (``np.random.choice(50, m + 1, replace=False)`` in the
      official code), resized and normalised as in :class:`ThreeDIEBench`;
    - ``actions`` ``(m, 4)`` for ``"rot"`` or ``(m, 6)`` for ``"rotcolor"`` float32, see
      :func:`jepa_blocks.actions.threediebench_actions` (computed in float64 from the stored
      latents);
    - ``latents`` ``(m + 1, 7)`` float32, the views' absolute factors;
    - ``view_ids`` ``(m + 1,)`` int64, which renders were drawn (``k`` of ``image_<k>.jpg``);
    - ``label`` int64 scalar tensor; ``index`` int64 scalar tensor, the object's index.

    This is the item layout of the built-in :class:`jepa_blocks.data.objects.ObjectSequences`
    (one base, :class:`~jepa_blocks.data.sequences.LatentSequences`), so the two are
    interchangeable in training code.

    The draw depends only on ``(seed, epoch, index)``, so any number of DataLoader workers
    gives the same items. :meth:`set_epoch` changes the draws; with ``persistent_workers=True``
    the workers keep their copy of the epoch, so call it before each epoch's iterator is made
    (i.e. use non-persistent workers or rebuild the loader).

    Args:
        root: the SIE layout folder (see :class:`ThreeDIEBench`).
        split: ``"train"`` or ``"val"``.
        num_views: ``m + 1``, observations plus the target (>= 2).
        action: ``"rot"`` or ``"rotcolor"``.
        views_per_object: renders per object (50 in 3DIEBench); views are drawn from these.
        canonical: canonicalise quaternions to ``w >= 0`` (the official code does not).
        seed: base seed (>= 0).
        image_size, normalize, num_classes: as in :class:`ThreeDIEBench`.

    Raises:
        ValueError: ``num_views`` outside ``[2, views_per_object]``, an unknown ``action`` or a
            negative ``seed``; plus everything :class:`ThreeDIEBench` raises.
    """

    def __init__(
        self,
        root: PathLike,
        *,
        split: Literal["train", "val"] = "train",
        num_views: int,
        action: Literal["rot", "rotcolor"] = "rot",
        views_per_object: int = 50,
        canonical: bool = False,
        seed: int = 0,
        image_size: int | Sequence[int] | None = 128,
        normalize: bool = True,
        num_classes: int | None = None,
    ) -> None:
        # Arguments are checked before any file is read.
        self._views_per_object = views_per_object
        super().__init__(num_views=num_views, action=action, canonical=canonical, seed=seed)
        self.view_dataset = ThreeDIEBench(
            root,
            split=split,
            image_size=image_size,
            normalize=normalize,
            views_per_object=views_per_object,
            num_classes=num_classes,
        )

    @property
    def num_objects(self) -> int:
        return self.view_dataset.num_objects

    @property
    def views_per_object(self) -> int:
        return self._views_per_object

    @property
    def num_classes(self) -> int:
        """Number of object classes (55 on the real dataset)."""
        return self.view_dataset.num_classes

    def label(self, index: int) -> Tensor:
        return self.view_dataset.labels[index].clone()

    def load_views(self, index: int, view_ids: Tensor) -> tuple[Tensor, Tensor]:
        ids = view_ids.tolist()
        views = torch.stack([self.view_dataset.load_image(index, v) for v in ids])
        latents = torch.stack([self.view_dataset.load_latent(index, v) for v in ids])
        return views, latents
