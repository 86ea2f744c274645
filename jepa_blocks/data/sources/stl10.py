"""STL-10 from the binary release (``stl10_binary.tar.gz``), memory-mapped; never downloaded."""

from pathlib import Path
from typing import Any, Literal, SupportsIndex

import numpy as np
import torch
from torch.utils.data import Dataset

from jepa_blocks._typing import Float, Tensor, typecheck
from jepa_blocks.data.sequences import check_index
from jepa_blocks.data.sources.files import PathLike, require_dir, to_unit_float

__all__ = ["STL10"]

_STL_LAYOUT = (
    "the STL-10 binary layout: <root>/stl10_binary/{train_X,train_y,test_X,test_y,unlabeled_X}.bin"
    ", from stl10_binary.tar.gz"
)

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
        require_dir(root, "STL-10 root", _STL_LAYOUT)
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
        i = check_index(index, len(self), "STL10")
        # Stored column-major per channel: swap the two spatial axes back to (row, col).
        pixels = np.ascontiguousarray(self._mapped()[i].transpose(0, 2, 1))
        label = -1 if self.labels is None else int(self.labels[i])
        return to_unit_float(torch.from_numpy(pixels)), label
