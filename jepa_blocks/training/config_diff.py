"""What differs between the configuration a checkpoint was written with and the current one:
nested dicts flattened to dotted keys, tuples and lists compared alike, missing keys named."""

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["MISSING", "config_differences"]

#: How a key absent from one side is shown.
MISSING = "<missing>"


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _normalise(value: Any) -> Any:
    # A config read from JSON/argparse gives lists where the saved one may hold tuples.
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


def config_differences(
    saved: Mapping[str, Any], current: Mapping[str, Any], ignore: tuple[str, ...]
) -> list[tuple[str, Any, Any]]:
    """``(key, saved, current)`` for every dotted key whose values differ, keys under an
    ``ignore`` prefix left out."""
    saved_flat, current_flat = _flatten(saved), _flatten(current)

    def ignored(key: str) -> bool:
        return any(key == k or key.startswith(f"{k}.") for k in ignore)

    diffs = []
    for key in sorted(set(saved_flat) | set(current_flat)):
        if ignored(key):
            continue
        old, new = saved_flat.get(key, MISSING), current_flat.get(key, MISSING)
        if _normalise(old) != _normalise(new):
            diffs.append((key, old, new))
    return diffs
