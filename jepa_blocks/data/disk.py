"""Loaders for the paper's datasets in their published on-disk formats.

seq-JEPA is trained and evaluated on 3DIEBench, CIFAR-100, STL-10 and Tiny ImageNet (spec §2).
This module reads those datasets from files the user has already downloaded; it never
downloads anything. Every loader validates its files when it is constructed (cheaply: headers,
file sizes, the first record) so a wrong path fails before training starts, with an error that
names the path and the layout expected there.

The plain image datasets (:class:`CIFAR100`, :class:`STL10`, :class:`ImageFolder`) return
``(image, label)`` with ``image`` a float tensor in ``[0, 1]`` of shape ``(c, hh, ww)``: the
contract of the augmentation and saccade sequence datasets that wrap them. 3DIEBench comes as a
per-view dataset (:class:`ThreeDIEBench`) and as the sequence dataset seq-JEPA trains on
(:class:`ThreeDIEBenchSequences`).

Images are decoded with Pillow and resized with Pillow's bilinear filter, as the official code
does through ``torchvision.transforms.Resize`` on PIL images, so pixels match it.
"""

import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, SupportsIndex

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from jepa_blocks._typing import Float, Tensor, typecheck
from jepa_blocks.actions import relative_rotation_from_euler

__all__ = [
    "THREEDIEBENCH_MEAN",
    "THREEDIEBENCH_STD",
    "ThreeDIEBench",
    "ThreeDIEBenchSequences",
    "threediebench_actions",
    "CIFAR100",
    "STL10",
    "ImageFolder",
    "IMAGE_EXTENSIONS",
]


PathLike = str | os.PathLike

#: Per-channel statistics of 3DIEBench used by the paper and the official code (spec §2.1).
THREEDIEBENCH_MEAN: tuple[float, float, float] = (0.5016, 0.5037, 0.5060)
THREEDIEBENCH_STD: tuple[float, float, float] = (0.1030, 0.0999, 0.0969)

#: File suffixes :class:`ImageFolder` picks up by default (lower case; matching ignores case).
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
)

_SIE_LAYOUT = (
    "the SIE layout: <root>/{train,val}_images.npy (object paths such as "
    "'/02691156/1021a0914a7207aff927ed529ad90a11'), <root>/{train,val}_labels.npy (int labels) "
    "and <root>/<synset_id>/<object_id>/image_<k>.jpg + latent_<k>.npy for k = 0..49"
)
_CIFAR_LAYOUT = (
    "the CIFAR-100 python layout: <root>/cifar-100-python/{train,test,meta} (pickled dicts with "
    "b'data' (N, 3072) uint8 and b'fine_labels'), from cifar-100-python.tar.gz"
)
_STL_LAYOUT = (
    "the STL-10 binary layout: <root>/stl10_binary/{train_X,train_y,test_X,test_y,unlabeled_X}.bin"
    ", from stl10_binary.tar.gz"
)


# --------------------------------------------------------------------------------- helpers


def _index(index: SupportsIndex, length: int, name: str) -> int:
    """A list-style index (negatives count from the end) checked against ``length``."""
    i = int(index.__index__())
    if i < 0:
        i += length
    if not 0 <= i < length:
        raise IndexError(f"{name} index {int(index.__index__())} out of range for length {length}")
    return i


def _generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A generator that depends only on (seed, epoch, index): same draws in any worker."""
    words = np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32)
    generator = torch.Generator()
    generator.manual_seed((int(words[0]) << 32) | int(words[1]))
    return generator


def _as_size(size: int | Sequence[int] | None, name: str) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool):
        pair = (size, size)
    else:
        pair = tuple(size)
        if len(pair) != 2 or not all(isinstance(s, int) for s in pair):
            raise ValueError(
                f"{name} must be an int or a (height, width) pair of ints, got {size!r}."
            )
    if pair[0] < 1 or pair[1] < 1:
        raise ValueError(f"{name} must be positive, got {size!r}; pass e.g. {name}=128.")
    return pair  # type: ignore[return-value]


def _load_rgb(path: Path, size: tuple[int, int] | None) -> Tensor:
    """Decode ``path`` to an RGB uint8 tensor ``(3, hh, ww)``, resized bilinearly if asked."""
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            if size is not None and rgb.size != (size[1], size[0]):
                # Pillow's bilinear filter with antialiasing: what torchvision's Resize does on
                # PIL images in the official pipeline (256 -> 128 for 3DIEBench).
                rgb = rgb.resize((size[1], size[0]), Image.BILINEAR)
            pixels = np.asarray(rgb, dtype=np.uint8).copy()
    except FileNotFoundError as error:
        raise FileNotFoundError(f"image file {path} does not exist") from error
    except (OSError, SyntaxError, ValueError) as error:
        # UnidentifiedImageError and "image file is truncated" are OSErrors.
        raise ValueError(
            f"image file {path} could not be decoded ({error}); the file is corrupt or not an "
            "image: re-extract it from the dataset archive."
        ) from error
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


def _require_dir(path: Path, what: str, layout: str) -> None:
    if not path.is_dir():
        state = "is not a directory" if path.exists() else "does not exist"
        raise FileNotFoundError(f"{what} {path} {state}; expected {layout}.")


def _load_npy(path: Path, what: str, layout: str) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {path} does not exist; expected {layout}.")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        if "Object arrays cannot be loaded" not in str(error):
            raise ValueError(f"{what}: {path} is not a valid .npy file ({error}).") from error
        # Object arrays of str need pickle; np.load with a path, a file the user provides.
        try:
            return np.load(path, allow_pickle=True)
        except Exception as inner:  # noqa: BLE001 - any failure means a corrupt file
            raise ValueError(f"{what}: {path} is not a valid .npy file ({inner}).") from inner
    except (OSError, EOFError) as error:
        raise ValueError(f"{what}: {path} is not a valid .npy file ({error}).") from error


def _to_unit_float(pixels: Tensor) -> Float[Tensor, "c hh ww"]:
    return pixels.to(torch.float32).div_(255.0)


# ------------------------------------------------------------------------------- 3DIEBench


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
        self.image_size = _as_size(image_size, "image_size")
        self.root = Path(root)
        _require_dir(self.root, "3DIEBench root", _SIE_LAYOUT)
        images_file = self.root / f"{split}_images.npy"
        labels_file = self.root / f"{split}_labels.npy"
        for file in (images_file, labels_file):
            if not file.is_file():
                raise FileNotFoundError(
                    f"3DIEBench root {self.root} has no {file.name}; expected {_SIE_LAYOUT}."
                )
        objects = _load_npy(images_file, "3DIEBench split file", _SIE_LAYOUT)
        labels = _load_npy(labels_file, "3DIEBench split file", _SIE_LAYOUT)
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
        latent = _load_npy(path, "3DIEBench latent", _SIE_LAYOUT)
        if latent.shape != (7,) or latent.dtype.kind != "f":
            raise ValueError(
                f"3DIEBench latent {path} must hold 7 floats (yaw, pitch, roll, floor_hue, "
                f"spot_theta, spot_phi, spot_hue), got dtype {latent.dtype} shape {latent.shape}."
            )
        return torch.from_numpy(latent.astype(np.float64))

    def load_image(self, object_index: int, view: int) -> Float[Tensor, "3 hh ww"]:
        """One view's image, resized and (if ``normalize``) normalised."""
        path = self.object_dir(object_index) / f"image_{view}.jpg"
        image = _to_unit_float(_load_rgb(path, self.image_size))
        if self.normalize:
            image = image.sub_(self._mean).div_(self._std)
        return image

    @typecheck
    def __getitem__(self, index: SupportsIndex) -> tuple[Float[Tensor, "3 hh ww"], int]:
        i = _index(index, len(self), "ThreeDIEBench")
        obj, view = divmod(i, self.views_per_object)
        return self.load_image(obj, view), int(self.labels[obj])


@typecheck
def threediebench_actions(
    latents: Float[Tensor, "m_plus_1 7"],
    *,
    action: str = "rot",
    canonical: bool = False,
) -> Float[Tensor, "m da"]:
    """Relative actions between consecutive 3DIEBench views (spec §1.3).

    Args:
        latents: the views' latent factors in sequence order.
        action: ``"rot"``: the quaternion of ``R_i^-1 R_{i+1}`` (scalar last, 4 values);
            ``"rotcolor"``: that quaternion then ``[Δfloor_hue, Δspot_hue]``, plain
            differences of ``latents[:, [3, 6]]`` without hue wrap-around (6 values).
        canonical: return the ``w >= 0`` representative of each quaternion.

    Returns:
        ``m`` actions in the latents' dtype; action i takes view i to view i + 1.
    """
    if action not in ("rot", "rotcolor"):
        raise ValueError(f"action must be 'rot' or 'rotcolor', got {action!r}.")
    rotation = relative_rotation_from_euler(latents[:, :3], canonical=canonical)
    if action == "rot":
        return rotation
    colour = latents[:, [3, 6]]
    return torch.cat([rotation, colour[1:] - colour[:-1]], dim=-1)


class ThreeDIEBenchSequences(Dataset):
    """3DIEBench view sequences for seq-JEPA: ``m + 1`` views of one object and their actions.

    Item ``i`` is a dict for object ``i``:

    - ``views`` ``(m + 1, 3, hh, ww)`` float32: distinct views drawn uniformly without
      replacement, in random order (``np.random.choice(50, m + 1, replace=False)`` in the
      official code), resized and normalised as in :class:`ThreeDIEBench`;
    - ``actions`` ``(m, 4)`` for ``"rot"`` or ``(m, 6)`` for ``"rotcolor"`` float32, see
      :func:`threediebench_actions` (computed in float64 from the stored latents);
    - ``latents`` ``(m + 1, 7)`` float32, the views' absolute factors;
    - ``view_ids`` ``(m + 1,)`` int64, which renders were drawn (``k`` of ``image_<k>.jpg``);
    - ``label`` int64 scalar tensor; ``index`` int64 scalar tensor, the object's index.

    This is the item layout of the built-in :class:`jepa_blocks.data.objects.ObjectSequences`,
    so the two are interchangeable in training code.

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
        if action not in ("rot", "rotcolor"):
            raise ValueError(
                f"action must be 'rot' (quaternion, 4) or 'rotcolor' (quaternion + 2 hue "
                f"deltas, 6), got {action!r}."
            )
        if not 2 <= num_views <= views_per_object:
            raise ValueError(
                f"num_views (m + 1) must be in [2, views_per_object={views_per_object}], got "
                f"{num_views}; seq-JEPA needs at least one observation and one target."
            )
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}.")
        self.view_dataset = ThreeDIEBench(
            root,
            split=split,
            image_size=image_size,
            normalize=normalize,
            views_per_object=views_per_object,
            num_classes=num_classes,
        )
        self.num_views = num_views
        self.action = action
        self.canonical = canonical
        self.seed = seed
        self.epoch = 0

    @property
    def dim_action(self) -> int:
        """Width of one action: 4 for ``"rot"``, 6 for ``"rotcolor"``."""
        return 4 if self.action == "rot" else 6

    @property
    def num_classes(self) -> int:
        """Number of object classes (55 on the real dataset)."""
        return self.view_dataset.num_classes

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose draws ``__getitem__`` returns."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}.")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.view_dataset.num_objects

    def draw_views(self, index: int) -> Tensor:
        """The view indices (``m + 1``, int64) item ``index`` uses in the current epoch."""
        generator = _generator(self.seed, self.epoch, index)
        order = torch.randperm(self.view_dataset.views_per_object, generator=generator)
        return order[: self.num_views]

    def __getitem__(self, index: SupportsIndex) -> dict[str, Tensor]:
        i = _index(index, len(self), "ThreeDIEBenchSequences")
        chosen = self.draw_views(i)
        views = torch.stack([self.view_dataset.load_image(i, v) for v in chosen.tolist()])
        latents = torch.stack([self.view_dataset.load_latent(i, v) for v in chosen.tolist()])
        actions = threediebench_actions(latents, action=self.action, canonical=self.canonical)
        return {
            "views": views,
            "actions": actions.to(torch.float32),
            "latents": latents.to(torch.float32),
            "view_ids": chosen,
            "label": self.view_dataset.labels[i].clone(),
            "index": torch.tensor(i),
        }


# ------------------------------------------------------------------------------- CIFAR-100


def _unpickle(path: Path, what: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            # The archive was pickled by Python 2; "bytes" keeps its byte-string keys intact.
            content = pickle.load(file, encoding="bytes")
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"{what} {path} does not exist; expected {_CIFAR_LAYOUT}."
        ) from error
    except Exception as error:  # noqa: BLE001 - unpickling fails with many exception types
        raise ValueError(
            f"{what} {path} is not a readable pickle ({type(error).__name__}: {error}); the file "
            f"is corrupt or truncated: re-extract it. Expected {_CIFAR_LAYOUT}."
        ) from error
    if not isinstance(content, dict):
        raise ValueError(
            f"{what} {path} holds a {type(content).__name__}, not a dict; expected {_CIFAR_LAYOUT}."
        )
    return {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in content.items()}


class CIFAR100(Dataset):
    """CIFAR-100 from the python pickle release (``cifar-100-python.tar.gz``).

    ``root`` is the folder holding ``cifar-100-python/`` or that folder itself; the split
    file (``train`` or ``test``) is a pickled dict with ``b"data"``, an ``(N, 3072)`` uint8 array
    (per row: 1024 red, 1024 green, 1024 blue values, each 32x32 row-major), and
    ``b"fine_labels"`` (N ints in 0..99). ``meta``, when present, supplies ``classes`` from
    ``b"fine_label_names"``. The whole split is loaded into memory (150 MB for ``train``).

    Items are ``(image, label)``: image ``(3, 32, 32)`` float32 in ``[0, 1]``, label an int.

    Raises:
        FileNotFoundError: neither ``root/cifar-100-python/<split>`` nor ``root/<split>`` exists.
        ValueError: the pickle is corrupt or its arrays have the wrong shape, type or range.
    """

    def __init__(self, root: PathLike, *, split: Literal["train", "test"] = "train") -> None:
        if split not in ("train", "test"):
            raise ValueError(f"CIFAR-100 split must be 'train' or 'test', got {split!r}.")
        root = Path(root)
        _require_dir(root, "CIFAR-100 root", _CIFAR_LAYOUT)
        folder = root / "cifar-100-python"
        if not (folder / split).is_file():
            if (root / split).is_file():
                folder = root
            else:
                raise FileNotFoundError(
                    f"CIFAR-100 root {root} has neither cifar-100-python/{split} nor {split}; "
                    f"expected {_CIFAR_LAYOUT}."
                )
        self.root = folder
        self.split = split
        path = folder / split
        content = _unpickle(path, "CIFAR-100 split file")
        if "data" not in content or "fine_labels" not in content:
            raise ValueError(
                f"CIFAR-100 split file {path} has keys {sorted(content)}, missing 'data' or "
                f"'fine_labels'; expected {_CIFAR_LAYOUT}."
            )
        data = np.asarray(content["data"])
        labels = np.asarray(content["fine_labels"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(data) == 0:
            raise ValueError(
                f"CIFAR-100 split file {path}: b'data' must be a non-empty (N, 3072) uint8 array, "
                f"got dtype {data.dtype} shape {data.shape}."
            )
        if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
            raise ValueError(
                f"CIFAR-100 split file {path}: b'fine_labels' must hold {len(data)} ints, got "
                f"dtype {labels.dtype} shape {labels.shape}."
            )
        if int(labels.min()) < 0 or int(labels.max()) > 99:
            raise ValueError(
                f"CIFAR-100 split file {path}: fine labels must lie in 0..99, got "
                f"{int(labels.min())}..{int(labels.max())}."
            )
        # (N, 3072) -> (N, 3, 32, 32): channel planes, each row-major.
        self.data = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32))
        self.targets: list[int] = [int(t) for t in labels]
        self.classes: list[str] = [str(i) for i in range(100)]
        meta_path = folder / "meta"
        if meta_path.is_file():
            meta = _unpickle(meta_path, "CIFAR-100 meta file")
            names = meta.get("fine_label_names")
            if names is None or len(names) != 100:
                raise ValueError(
                    f"CIFAR-100 meta file {meta_path} must hold 100 b'fine_label_names'; "
                    f"expected {_CIFAR_LAYOUT}."
                )
            self.classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        self.num_classes = 100

    def __len__(self) -> int:
        return len(self.targets)

    @typecheck
    def __getitem__(self, index: SupportsIndex) -> tuple[Float[Tensor, "3 32 32"], int]:
        i = _index(index, len(self), "CIFAR100")
        return _to_unit_float(self.data[i]), self.targets[i]


# ---------------------------------------------------------------------------------- STL-10


_STL_SIDE = 96
_STL_RECORD = 3 * _STL_SIDE * _STL_SIDE  # bytes per image


class STL10(Dataset):
    """STL-10 from the binary release (``stl10_binary.tar.gz``), memory-mapped.

    ``root`` is the folder holding ``stl10_binary/`` or that folder itself. ``<split>_X.bin``
    holds N images of ``3 * 96 * 96`` bytes, each channel stored column-major (the transpose
    of the usual row-major layout; this loader undoes it); ``<split>_y.bin`` holds N bytes,
    labels 1..10, returned 0-based. ``unlabeled`` (100,000 images, 2.6 GB) has no labels and
    returns label ``-1``. Images are read through ``np.memmap`` and opened lazily in each
    process, so neither construction nor DataLoader workers read the whole file.

    Items are ``(image, label)``: image ``(3, 96, 96)`` float32 in ``[0, 1]``, label an int.

    Raises:
        FileNotFoundError: the split's ``.bin`` files are missing.
        ValueError: a file's size is not a whole number of records, the label count differs
            from the image count, or a label lies outside 1..10.
    """

    def __init__(
        self, root: PathLike, *, split: Literal["train", "test", "unlabeled"] = "train"
    ) -> None:
        if split not in ("train", "test", "unlabeled"):
            raise ValueError(f"STL-10 split must be 'train', 'test' or 'unlabeled', got {split!r}.")
        root = Path(root)
        _require_dir(root, "STL-10 root", _STL_LAYOUT)
        folder = root / "stl10_binary"
        if not (folder / f"{split}_X.bin").is_file():
            if (root / f"{split}_X.bin").is_file():
                folder = root
            else:
                raise FileNotFoundError(
                    f"STL-10 root {root} has neither stl10_binary/{split}_X.bin nor "
                    f"{split}_X.bin; expected {_STL_LAYOUT}."
                )
        self.root = folder
        self.split = split
        self.images_file = folder / f"{split}_X.bin"
        size = self.images_file.stat().st_size
        if size == 0 or size % _STL_RECORD:
            raise ValueError(
                f"STL-10 image file {self.images_file} has {size} bytes, not a positive multiple "
                f"of the {_STL_RECORD}-byte record (3x96x96 uint8): the file is truncated or "
                "not STL-10; re-extract it."
            )
        self._length = size // _STL_RECORD
        self.labels: np.ndarray | None = None
        if split != "unlabeled":
            labels_file = folder / f"{split}_y.bin"
            if not labels_file.is_file():
                raise FileNotFoundError(
                    f"STL-10 folder {folder} has no {labels_file.name} for {self.images_file.name}"
                    f"; expected {_STL_LAYOUT}."
                )
            labels = np.fromfile(labels_file, dtype=np.uint8)
            if len(labels) != self._length:
                raise ValueError(
                    f"STL-10 label file {labels_file} has {len(labels)} bytes (labels) but "
                    f"{self.images_file} holds {self._length} images ({size} bytes); the files "
                    "do not belong together or one is truncated."
                )
            if int(labels.min()) < 1 or int(labels.max()) > 10:
                raise ValueError(
                    f"STL-10 label file {labels_file} must hold labels 1..10, got "
                    f"{int(labels.min())}..{int(labels.max())}."
                )
            self.labels = labels.astype(np.int64) - 1
        self.classes: list[str] = [str(i) for i in range(10)]
        names_file = folder / "class_names.txt"
        if names_file.is_file():
            names = names_file.read_text().split()
            if len(names) == 10:
                self.classes = names
        self.num_classes = 10
        self._images: np.memmap | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Never pickle the map: spawn-started workers would copy the whole file.
        state = self.__dict__.copy()
        state["_images"] = None
        return state

    def _mapped(self) -> np.memmap:
        if self._images is None:
            self._images = np.memmap(
                self.images_file,
                dtype=np.uint8,
                mode="r",
                shape=(self._length, 3, _STL_SIDE, _STL_SIDE),
            )
        return self._images

    def __len__(self) -> int:
        return self._length

    @typecheck
    def __getitem__(self, index: SupportsIndex) -> tuple[Float[Tensor, "3 96 96"], int]:
        i = _index(index, len(self), "STL10")
        # Stored column-major per channel: swap the two spatial axes back to (row, col).
        pixels = np.ascontiguousarray(self._mapped()[i].transpose(0, 2, 1))
        label = -1 if self.labels is None else int(self.labels[i])
        return _to_unit_float(torch.from_numpy(pixels)), label


# ---------------------------------------------------------------------------- image folder


class ImageFolder(Dataset):
    """Class-per-subfolder images (Tiny ImageNet train, ImageNet-style trees, your own data).

    ``root/<class>/**/<file>``: classes are the sorted names of ``root``'s immediate
    subfolders (hidden ones skipped), labelled 0..C-1 in that order; files are collected
    recursively, sorted by folder path then name (torchvision's ``ImageFolder`` order), so
    ordering is deterministic across machines. Only files whose
    suffix (case-insensitive) is in ``extensions`` are used.

    Items are ``(image, label)``: image ``(3, hh, ww)`` float32 in ``[0, 1]`` (grayscale and
    palette images are converted to RGB), label an int. With ``size=None`` images keep their
    stored size (batching then needs equal sizes); an int resizes to a square ``size x size``
    and a ``(height, width)`` pair to that shape, bilinearly, ignoring aspect ratio.

    Raises:
        FileNotFoundError: ``root`` is missing, has no class subfolders, or a class subfolder
            has no image.
        ValueError: bad ``size`` or ``extensions``; a corrupt image (when read) names its file.
    """

    def __init__(
        self,
        root: PathLike,
        *,
        size: int | Sequence[int] | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ) -> None:
        self.size = _as_size(size, "size")
        if isinstance(extensions, str) or not extensions:
            raise ValueError(
                f"extensions must be a non-empty sequence of suffixes such as ('.jpg', '.png'), "
                f"got {extensions!r}."
            )
        suffixes = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
        self.root = Path(root)
        layout = "one subfolder of images per class: <root>/<class>/<image>"
        _require_dir(self.root, "ImageFolder root", layout)
        self.classes: list[str] = sorted(
            entry.name
            for entry in os.scandir(self.root)
            if entry.is_dir() and not entry.name.startswith(".")
        )
        if not self.classes:
            raise FileNotFoundError(
                f"ImageFolder root {self.root} has no class subfolders; expected {layout}."
            )
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples: list[tuple[Path, int]] = []
        for label, name in enumerate(self.classes):
            found = []
            walk = []
            for folder, dirs, files in os.walk(self.root / name, followlinks=True):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                walk.append((folder, files))
            # Sorted by folder path, then file name: torchvision.datasets.ImageFolder's order,
            # so indices agree with it on the same tree.
            for folder, files in sorted(walk):
                found.extend(
                    Path(folder) / f
                    for f in sorted(files)
                    if not f.startswith(".") and Path(f).suffix.lower() in suffixes
                )
            if not found:
                raise FileNotFoundError(
                    f"ImageFolder class folder {self.root / name} has no image with a suffix in "
                    f"{sorted(suffixes)}; remove the folder or pass extensions=..."
                )
            self.samples.extend((path, label) for path in found)
        self.targets: list[int] = [label for _, label in self.samples]
        self.num_classes = len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    @typecheck
    def __getitem__(self, index: SupportsIndex) -> tuple[Float[Tensor, "3 hh ww"], int]:
        path, label = self.samples[_index(index, len(self), "ImageFolder")]
        return _to_unit_float(_load_rgb(path, self.size)), label
