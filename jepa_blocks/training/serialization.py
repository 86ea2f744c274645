"""What ``torch.load(..., weights_only=True)`` can read back, checked before writing.

Only tensors, dicts, lists, tuples, str, bytes, int, float, bool, None, ``torch.Size``,
``torch.dtype`` and ``torch.device``: an unloadable checkpoint is otherwise only discovered
when it is needed most.
"""

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import numpy as np
import torch

__all__ = ["check_weights_only_safe", "kind_name", "weights_only_safe"]

_SCALARS = (str, bytes, int, float, bool, type(None))
_TORCH_LEAVES = (torch.Size, torch.dtype, torch.device)


def _unsafe_leaf(obj: Any, where: str) -> str | None:
    """Path and type of the first value that ``torch.load(weights_only=True)`` rejects."""
    kind = type(obj)
    if kind in _SCALARS or kind in _TORCH_LEAVES:
        return None
    if kind is torch.Tensor or kind is torch.nn.Parameter:
        return None
    if kind is dict or kind is OrderedDict:
        for key, value in obj.items():
            if type(key) not in _SCALARS:
                return f"{where} has a key of type {kind_name(key)}"
            found = _unsafe_leaf(value, f"{where}[{key!r}]")
            if found is not None:
                return found
        return None
    if kind is list or kind is tuple:
        for i, value in enumerate(obj):
            found = _unsafe_leaf(value, f"{where}[{i}]")
            if found is not None:
                return found
        return None
    return f"{where} is a {kind_name(obj)}"


def kind_name(obj: Any) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def check_weights_only_safe(obj: Any, *, name: str = "state") -> None:
    """Raise ``ValueError`` if ``torch.load(weights_only=True)`` could not read ``obj`` back.

    Accepted: tensors and ``nn.Parameter``, dict / OrderedDict (str, int, float, bool or None
    keys), list, tuple, str, bytes, int, float, bool, None, ``torch.Size``, ``torch.dtype``
    and ``torch.device``. Subclasses (a ``str`` enum, ``torch.__version__``, a namedtuple)
    are rejected because pickle records their class.

    Raises:
        ValueError: naming the first offending entry (e.g. ``state['rng']['numpy']``) and
            the fix.
    """
    found = _unsafe_leaf(obj, name)
    if found is not None:
        raise ValueError(
            f"{found}, which torch.load(weights_only=True) cannot read back; convert it with "
            "jepa_blocks.training.weights_only_safe(...) (numpy arrays -> tensors, numpy "
            "scalars and str/int/float subclasses -> builtins, paths -> str, namedtuples -> "
            "tuples) or store a plain state_dict()."
        )


def weights_only_safe(obj: Any) -> Any:
    """Return a copy of ``obj`` that ``torch.load(weights_only=True)`` can read back.

    Converts numpy arrays to tensors, numpy scalars and subclasses of str/int/float/bool to
    the builtin type, paths to str, other mappings to dict, namedtuples and other tuple
    subclasses to tuple, sets to sorted lists. Tensors are returned as they are (no copy).
    Optimizer, LR-scheduler and ``GradScaler`` state dicts of PyTorch are already safe;
    this is for the caller's own extras (data positions, metrics history, numpy state).

    Raises:
        ValueError: for a value with no safe equivalent (a function, a module, ...).
    """
    return _to_safe(obj, "obj")


def _to_safe(obj: Any, where: str) -> Any:
    kind = type(obj)
    if kind in _SCALARS or kind in _TORCH_LEAVES or isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.array(obj, copy=True))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, Mapping):
        return {
            _to_safe(key, f"{where} key"): _to_safe(value, f"{where}[{key!r}]")
            for key, value in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        items = [_to_safe(value, f"{where}[{i}]") for i, value in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, (set, frozenset)):
        try:
            items = sorted(obj)
        except TypeError:  # mixed types: any order, but a deterministic one is preferred
            items = list(obj)
        return [_to_safe(value, f"{where} item") for value in items]
    raise ValueError(
        f"{where} is a {kind_name(obj)}, which has no weights_only-safe form; store its "
        "state_dict() or plain numbers instead."
    )
