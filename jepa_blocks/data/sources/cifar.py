"""CIFAR-100 from the python pickle release (``cifar-100-python.tar.gz``); never downloaded."""

import pickle
from pathlib import Path
from typing import Any, Literal, SupportsIndex

import numpy as np
import torch
from torch.utils.data import Dataset

from jepa_blocks._typing import Float, Tensor, typecheck
from jepa_blocks.data.sequences import check_index
from jepa_blocks.data.sources.files import PathLike, require_dir, to_unit_float

__all__ = ["CIFAR100"]

_CIFAR_LAYOUT = (
    "the CIFAR-100 python layout: <root>/cifar-100-python/{train,test,meta} (pickled dicts with "
    "b'data' (N, 3072) uint8 and b'fine_labels'), from cifar-100-python.tar.gz"
)


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
        require_dir(root, "CIFAR-100 root", _CIFAR_LAYOUT)
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
        i = check_index(index, len(self), "CIFAR100")
        return to_unit_float(self.data[i]), self.targets[i]
