"""File reading shared by the on-disk sources: decoding, resizing, checked loads.

Every loader validates its files when it is constructed (cheaply: headers, file sizes, the
first record) so a wrong path fails before training starts, with an error that names the path
and the layout expected there. Images are decoded with Pillow and resized with Pillow's
bilinear filter, as the official code does through ``torchvision.transforms.Resize`` on PIL
images, so pixels match it.
"""

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from jepa_blocks._typing import Float, Tensor

__all__ = ["PathLike", "load_rgb", "require_dir", "load_npy", "to_unit_float"]

PathLike = str | os.PathLike


def load_rgb(path: Path, size: tuple[int, int] | None) -> Tensor:
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


def require_dir(path: Path, what: str, layout: str) -> None:
    if not path.is_dir():
        state = "is not a directory" if path.exists() else "does not exist"
        raise FileNotFoundError(f"{what} {path} {state}; expected {layout}.")


def load_npy(path: Path, what: str, layout: str) -> np.ndarray:
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


def to_unit_float(pixels: Tensor) -> Float[Tensor, "c hh ww"]:
    return pixels.to(torch.float32).div_(255.0)
