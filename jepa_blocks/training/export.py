"""Export a trained encoder as timm-compatible safetensors, and load it back into timm.

A JEPA encoder is only useful downstream if anyone can load it without this library:
``timm.create_model(model_name, num_classes=0)`` plus ``load_state_dict`` of the exported
file must give the features the encoder gave during training. :func:`export_timm_encoder`
guarantees that before it writes anything: it strips the classifier, compares keys and
shapes with a freshly built timm model, then loads the weights into that model and checks
that it computes the same features as the trained one on a random batch. A backbone that
was modified after creation (a CIFAR stem: 3x3 stride-1 ``conv1`` without max-pool, which
timm cannot build) is refused with an error naming the difference.

The file records ``model_name`` and the timm keyword arguments in its safetensors metadata,
so :func:`load_timm_encoder` can rebuild the model from the file alone.
"""

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
import torch
from timm.data import resolve_model_data_config
from torch import Tensor, nn

from jepa_blocks.training.atomic import atomic_write
from jepa_blocks.training.checkpoint import installed_version
from jepa_blocks.training.unwrap import unwrap_model

__all__ = ["export_timm_encoder", "load_timm_encoder", "timm_encoder_state_dict"]

logger = logging.getLogger(__name__)

_META_NAME = "model_name"
_META_KWARGS = "timm_kwargs"
_SHOW = 6  # keys listed per kind in an error message


def _safetensors() -> Any:
    # An optional dependency: only export needs it, so importing jepa_blocks does not.
    try:
        import safetensors
        import safetensors.torch
    except ImportError as err:
        raise ImportError(
            "exporting encoders needs safetensors; pip install safetensors (or "
            "jepa-blocks[examples])."
        ) from err
    return safetensors


def _unwrap(module: nn.Module) -> nn.Module:
    """Peel the training wrappers and the backbone adapter's ``.model`` down to timm's model."""
    for _ in range(8):
        module = unwrap_model(module)
        if _is_timm_model(module) or not isinstance(getattr(module, "model", None), nn.Module):
            break
        module = module.model
    if not _is_timm_model(module):
        raise ValueError(
            f"expected a timm model or a backbone adapter holding one as .model, got "
            f"{type(module).__name__}; pass create_backbone(...) or timm.create_model(...)."
        )
    return module


def _is_timm_model(module: Any) -> bool:
    return (
        isinstance(module, nn.Module)
        and callable(getattr(module, "forward_features", None))
        and callable(getattr(module, "forward_head", None))
        and isinstance(getattr(module, "pretrained_cfg", None), Mapping)
    )


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    names = model.pretrained_cfg.get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(f"{name}." for name in names)


def timm_encoder_state_dict(backbone: nn.Module) -> dict[str, Tensor]:
    """The timm model's state dict without its classifier, as contiguous CPU tensors.

    Accepts a timm model or an adapter holding one as ``.model`` (wrappers from DDP,
    DataParallel and ``torch.compile`` are removed). Classifier keys are those under the
    model's ``pretrained_cfg["classifier"]`` (``fc.`` for ResNets, ``head.`` for ViTs).
    """
    model = _unwrap(backbone)
    drop = _classifier_prefixes(model)
    # clone(): safetensors refuses tensors that share storage (tied or viewed weights).
    return {
        key: value.detach().to("cpu").contiguous().clone()
        for key, value in model.state_dict().items()
        if not key.startswith(drop)
    }


def _create(model_name: str, timm_kwargs: Mapping[str, Any], *, meta: bool) -> nn.Module:
    kwargs = {**timm_kwargs, "pretrained": False, "num_classes": 0}
    try:
        if meta:
            with torch.device("meta"):
                return timm.create_model(model_name, **kwargs)
        return timm.create_model(model_name, **kwargs)
    except Exception as err:  # noqa: BLE001 - re-raised with the call that failed
        raise ValueError(
            f"timm.create_model({model_name!r}, **{kwargs!r}) failed ({err}); pass a timm "
            "model name and the keyword arguments the backbone was created with."
        ) from err


def _build_with_weights(
    model_name: str,
    timm_kwargs: Mapping[str, Any],
    state: Mapping[str, Tensor],
    meta_model: nn.Module | None = None,
) -> nn.Module:
    """The timm model holding ``state``, without paying for timm's random initialisation.

    Built on the meta device and the weights assigned; a model with non-persistent buffers
    (not in a state dict, so still on meta) is rebuilt normally on CPU and loaded instead.
    """
    model = meta_model if meta_model is not None else _create(model_name, timm_kwargs, meta=True)
    _compare_keys(state, model.state_dict(), model_name)
    target = model.state_dict()
    cast = {
        key: value.to(target[key].dtype) if value.is_floating_point() else value
        for key, value in state.items()
    }
    model.load_state_dict(cast, strict=True, assign=True)
    tensors = [*model.parameters(), *model.buffers()]
    if any(t.is_meta for t in tensors):
        model = _create(model_name, timm_kwargs, meta=False)
        model.load_state_dict(state, strict=True)
    return model


def _compare_keys(
    exported: Mapping[str, Tensor], reference: Mapping[str, Tensor], model_name: str
) -> None:
    missing = sorted(set(reference) - set(exported))
    unexpected = sorted(set(exported) - set(reference))
    mismatched = [
        f"{key}: exported {tuple(exported[key].shape)} vs timm {tuple(reference[key].shape)}"
        for key in sorted(set(exported) & set(reference))
        if exported[key].shape != reference[key].shape
    ]
    if not (missing or unexpected or mismatched):
        return

    def listed(items: list[str]) -> str:
        shown = "; ".join(items[:_SHOW])
        return f"[{shown}]" + (f" and {len(items) - _SHOW} more" if len(items) > _SHOW else "")

    parts = []
    if missing:
        parts.append(f"missing keys {listed(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {listed(unexpected)}")
    if mismatched:
        parts.append(f"shape mismatches {listed(mismatched)}")
    raise ValueError(
        f"the backbone is not the architecture timm builds for {model_name!r}: "
        + ", ".join(parts)
        + ". Pass the timm kwargs the backbone was created with (e.g. img_size=32 for a "
        "ViT, in_chans=1); a backbone modified after creation, such as a CIFAR stem (3x3 "
        "stride-1 conv1, no max-pool), is not a stock timm option and cannot be exported "
        "as a timm model: train with the stock stem to export."
    )


def _verify_input_size(
    reference: nn.Module, timm_kwargs: Mapping[str, Any], input_size: tuple[int, ...] | None
) -> tuple[int, int, int]:
    if input_size is not None:
        if len(input_size) != 3:
            raise ValueError(
                f"input_size must be (channels, height, width), got {input_size!r}; pass e.g. "
                "input_size=(3, 32, 32)."
            )
        return tuple(int(v) for v in input_size)  # type: ignore[return-value]
    channels, height, width = resolve_model_data_config(reference)["input_size"]
    channels = int(timm_kwargs.get("in_chans", channels))
    # A ViT built with img_size=32 still reports 224 in its pretrained config.
    img_size = timm_kwargs.get("img_size")
    if img_size is not None:
        height, width = (img_size, img_size) if isinstance(img_size, int) else img_size
    return channels, int(height), int(width)


@torch.no_grad()
def _features(model: nn.Module, x: Tensor) -> Tensor:
    return model.forward_head(model.forward_features(x), pre_logits=True)


def _verify_features(
    source: nn.Module,
    reference: nn.Module,
    model_name: str,
    input_size: tuple[int, int, int],
) -> None:
    reference.eval()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, *input_size, generator=generator)
    param = next(iter(source.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    modes = {module: module.training for module in source.modules()}
    source.eval()
    try:
        expected = _features(source, x.to(device=device, dtype=dtype)).float().cpu()
    finally:
        for module, training in modes.items():
            module.training = training
    got = _features(reference, x)
    tol = 1e-4 if dtype in (torch.float32, torch.float64) else 5e-2
    if got.shape != expected.shape or not torch.allclose(got, expected, rtol=tol, atol=tol):
        diff = (
            f"max abs difference {(got - expected).abs().max().item():.3g}"
            if got.shape == expected.shape
            else f"shapes {tuple(expected.shape)} vs {tuple(got.shape)}"
        )
        raise ValueError(
            f"the exported weights load into timm {model_name!r} but give different features "
            f"than the backbone ({diff} on a random {tuple(x.shape)} batch): the backbone was "
            "modified after timm created it (e.g. a CIFAR stem with the max-pool removed, "
            "which timm cannot build). Export requires the architecture "
            f"timm.create_model({model_name!r}, **timm_kwargs) builds; pass the kwargs that "
            "rebuild it, or train with the stock stem."
        )


def export_timm_encoder(
    backbone: nn.Module,
    path: str | os.PathLike,
    *,
    model_name: str | None = None,
    verify: bool = True,
    input_size: tuple[int, int, int] | None = None,
    **timm_kwargs: Any,
) -> Path:
    """Save a backbone's weights as safetensors that stock timm loads.

    Args:
        backbone: a timm model, or the library's backbone adapter (its ``.model`` is used);
            DDP / ``torch.compile`` wrappers are removed. Pass the EMA target's encoder to
            export the target network.
        path: the ``.safetensors`` file to write (atomically; the directory must exist).
        model_name: the timm model name the backbone was created with, e.g. ``"resnet18"``;
            by default the adapter's ``.name``, else the model's
            ``pretrained_cfg["architecture"]``.
        verify: also rebuild the model, load the weights and check that it computes the
            backbone's features (eval mode) on a random batch of two. With False, only keys
            and shapes are compared, on the meta device (no memory, no compute).
        input_size: ``(c, h, w)`` of the verification batch; by default from ``img_size`` /
            ``in_chans`` in ``timm_kwargs``, else from timm's data config.
        **timm_kwargs: the ``timm.create_model`` keyword arguments the backbone was built
            with (``img_size=32``, ``in_chans=1``, ``drop_path_rate`` ...); recorded in the
            file. ``num_classes`` and ``pretrained`` are fixed to 0 and False.

    Returns:
        The path written. ``timm.create_model(model_name, num_classes=0, **timm_kwargs)``
        followed by ``load_state_dict(safetensors.torch.load_file(path))`` loads it strictly.

    Raises:
        ValueError: if ``backbone`` holds no timm model, if the keys or shapes differ from
            what timm builds (naming the missing / unexpected keys and mismatched shapes),
            or if the features differ (a modified stem); nothing is written then.
    """
    save = _safetensors().torch.save

    if "num_classes" in timm_kwargs or "pretrained" in timm_kwargs:
        raise ValueError(
            "num_classes and pretrained are fixed by the export (0 and False); remove them "
            "from the timm kwargs."
        )
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(
            f"directory {str(path.parent)!r} does not exist; create it before exporting."
        )
    source = _unwrap(backbone)
    if model_name is None:
        model_name = getattr(backbone, "name", None) or source.pretrained_cfg.get("architecture")
    if not isinstance(model_name, str):
        raise ValueError(
            "cannot tell which timm model the backbone is; pass model_name='resnet18' (the "
            "name it was created with)."
        )
    state = timm_encoder_state_dict(source)
    reference = _create(model_name, timm_kwargs, meta=True)
    _compare_keys(state, reference.state_dict(), model_name)
    if verify:
        size = _verify_input_size(reference, timm_kwargs, input_size)
        reference = _build_with_weights(model_name, timm_kwargs, state, reference)
        _verify_features(source, reference, model_name, size)

    metadata = {
        "format": "pt",
        _META_NAME: model_name,
        "library": "jepa_blocks",
        "library_version": installed_version(),
    }
    try:
        metadata[_META_KWARGS] = json.dumps(timm_kwargs, sort_keys=True)
    except TypeError:
        logger.warning(
            "timm kwargs %r are not JSON-serialisable and are not recorded in %s; pass them "
            "to load_timm_encoder explicitly.",
            timm_kwargs,
            path,
        )
    data = save(state, metadata=metadata)
    return atomic_write(path, lambda f: f.write(data))


def load_timm_encoder(
    path: str | os.PathLike, model_name: str | None = None, **timm_kwargs: Any
) -> nn.Module:
    """Build the timm model for an exported encoder and load its weights (strictly).

    Args:
        path: a file written by :func:`export_timm_encoder` (or any safetensors file of a
            timm model's state dict without classifier).
        model_name: the timm name; defaults to the one recorded in the file.
        **timm_kwargs: ``timm.create_model`` keyword arguments. When ``model_name`` is
            omitted or equals the recorded one, they update the recorded kwargs.

    Returns:
        The timm model with ``num_classes=0`` in eval mode, so that ``model(x)`` gives the
        pooled features; call ``.train()`` to fine-tune, ``reset_classifier(n)`` for a head.

    Raises:
        ValueError: if no model name is known, ``num_classes`` / ``pretrained`` is passed,
            or the weights do not fit the model (naming missing / unexpected keys).
    """
    safetensors = _safetensors()
    safe_open, load_file = safetensors.safe_open, safetensors.torch.load_file

    if "num_classes" in timm_kwargs or "pretrained" in timm_kwargs:
        raise ValueError(
            "exported encoders carry no classifier and load no pretrained weights; drop "
            "num_classes/pretrained and call model.reset_classifier(n) to add a head."
        )
    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    saved_name = metadata.get(_META_NAME)
    saved_kwargs = json.loads(metadata.get(_META_KWARGS, "{}"))
    name = model_name if model_name is not None else saved_name
    if name is None:
        raise ValueError(
            f"{str(path)!r} records no model name; pass it, e.g. "
            f"load_timm_encoder({str(path)!r}, 'resnet18')."
        )
    kwargs = {**saved_kwargs, **timm_kwargs} if name == saved_name else dict(timm_kwargs)
    model = _build_with_weights(name, kwargs, load_file(str(path)))
    return model.eval()
