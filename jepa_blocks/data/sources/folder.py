"""Class-per-subfolder images (Tiny ImageNet train, ImageNet-style trees, your own data)."""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import SupportsIndex

from torch.utils.data import Dataset

from jepa_blocks._typing import Float, Tensor, typecheck
from jepa_blocks.data.sequences import as_image_size, check_index
from jepa_blocks.data.sources.files import PathLike, load_rgb, require_dir, to_unit_float

__all__ = ["IMAGE_EXTENSIONS", "ImageFolder"]

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


class ImageFolder(Dataset):
    """Class-per-subfolder images (Tiny ImageNet train, ImageNet-style trees, your own data).

    ``root/<class>/**/<file>``: classes are the sorted names of ``root``'s immediate
    subfolders (hidden ones skipped), labelled 0..C-1 in that order; files are collected
    recursively, sorted by folder path then name (torchvision's ``ImageFolder`` order), so
    ordering is deterministic across machines. Only files whose
    suffix (case-insensitive) is in ``extensions`` are used.

    Items are ``(image, label)``: image ``(3, hh, ww)`` float32 in ``[0, 1]`` (grayscale and
    palette images are converted to RGB), label an int. With ``image_size=None`` images keep
    their stored size (batching then needs equal sizes); an int resizes to a square of that
    side and a ``(height, width)`` pair to that shape, bilinearly, ignoring aspect ratio.

    Raises:
        FileNotFoundError: ``root`` is missing, has no class subfolders, or a class subfolder
            has no image.
        ValueError: bad ``image_size`` or ``extensions``; a corrupt image (when read) names its
            file.
    """

    def __init__(
        self,
        root: PathLike,
        *,
        image_size: int | Sequence[int] | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ) -> None:
        self.image_size = None if image_size is None else as_image_size(image_size)
        if isinstance(extensions, str) or not extensions:
            raise ValueError(
                f"extensions must be a non-empty sequence of suffixes such as ('.jpg', '.png'), "
                f"got {extensions!r}."
            )
        suffixes = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
        self.root = Path(root)
        layout = "one subfolder of images per class: <root>/<class>/<image>"
        require_dir(self.root, "ImageFolder root", layout)
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
        path, label = self.samples[check_index(index, len(self), "ImageFolder")]
        return to_unit_float(load_rgb(path, self.image_size)), label
