"""The backbone adapter: any timm model name, or your own ``nn.Module``, as ``(b, c, h, w) ->
(b, dim)`` embeddings with a ``.dim`` attribute.

seq-JEPA uses a ResNet-18 with the classifier removed and no projector (spec §1.1); for
32-px inputs (CIFAR, saccade glimpses) its stem becomes a 3x3 stride-1 convolution without
max-pooling (``cifar_stem=True``). Weights are never downloaded unless ``pretrained=True``.
"""

import difflib
import inspect
import re
from typing import Any

import timm
import torch
from torch import Tensor, nn

from jepa_blocks._checks import require_positive_ints
from jepa_blocks._typing import Float, typecheck

__all__ = ["Backbone", "create_backbone"]


class Backbone(nn.Module):
    """Wrap a feature extractor so it maps images to one embedding per image.

    Args:
        model: a module whose forward maps ``(b, c, h, w)`` to ``(b, dim)`` (a timm model built
            with ``num_classes=0`` does).
        dim: the embedding width.
        name: the timm name it was built from, if any (used by export).

    Raises:
        ValueError: a non-positive ``dim``.
    """

    def __init__(self, model: nn.Module, dim: int, *, name: str | None = None) -> None:
        super().__init__()
        require_positive_ints(dim=dim)
        self.model = model
        self.dim = dim
        self.name = name

    @typecheck
    def forward(
        self, images: Float[Tensor, "b *views c hh ww"]
    ) -> Float[Tensor, "b *views {self.dim}"]:
        """Embed images ``(b, c, h, w)`` -> ``(b, dim)``, or views ``(b, m, c, h, w)`` ->
        ``(b, m, dim)`` in one call of the model (the view axis folded into the batch).

        Raises:
            ValueError: the images are not ``(b, c, h, w)`` or ``(b, m, c, h, w)``, or the
                wrapped model does not return ``(b, dim)``.
        """
        if images.dim() not in (4, 5):
            raise ValueError(
                f"images must be (b, c, h, w) or views (b, m, c, h, w), got shape "
                f"{tuple(images.shape)}."
            )
        flat = images.flatten(0, 1) if images.dim() == 5 else images
        if images.dim() == 5 and flat.is_cuda:
            # Convolutions are fastest channels-last on CUDA (bf16 tensor cores).
            flat = flat.contiguous(memory_format=torch.channels_last)
        out = self.model(flat)
        if out.dim() != 2 or out.shape[1] != self.dim:
            raise ValueError(
                f"backbone returned shape {tuple(out.shape)}, expected (b, {self.dim}); build "
                "timm models with num_classes=0, or pool your module's output to (b, dim)."
            )
        return out.unflatten(0, images.shape[:2]) if images.dim() == 5 else out

    def extra_repr(self) -> str:
        return f"dim={self.dim}, name={self.name!r}"


def _set_cifar_stem(model: nn.Module, name: str) -> None:
    # The paper's CIFAR ResNet (spec §1.1): conv1 3x3 stride 1, no max-pool. This reaches into
    # timm's ResNet layout on purpose: it is the only place that does, at the edge.
    conv1 = getattr(model, "conv1", None)
    if not isinstance(conv1, nn.Conv2d) or not hasattr(model, "maxpool"):
        raise ValueError(
            f"cifar_stem=True needs a ResNet with a single conv1 and a maxpool, but {name!r} "
            "has none; use a resnet* model, or adapt the stem yourself and pass the module."
        )
    model.conv1 = nn.Conv2d(
        conv1.in_channels, conv1.out_channels, kernel_size=3, stride=1, padding=1, bias=False
    )
    model.maxpool = nn.Identity()


def _output_width(model: nn.Module) -> int | None:
    # With num_classes=0 a timm model returns its pre-logits, which are head_hidden_size wide
    # (timm >= 1.0); that differs from num_features (the forward_features width) for models
    # with a head convolution after pooling (mobilenetv3_small_050: 288 -> 1024; HGNetV2, ...).
    width = getattr(model, "head_hidden_size", None)
    return width if isinstance(width, int) else getattr(model, "num_features", None)


def create_backbone(
    name_or_module: str | nn.Module,
    *,
    pretrained: bool = False,
    cifar_stem: bool = False,
    image_size: int | None = None,
    dim: int | None = None,
    **timm_kwargs: Any,
) -> Backbone:
    """Build a :class:`Backbone` from a timm model name or wrap your own module.

    Args:
        name_or_module: any timm model name (``"resnet18"``, ``"vit_small_patch16_224"``,
            ``"convnext_atto"``, ...) or an ``nn.Module`` returning ``(b, dim)``.
        pretrained: load timm's pretrained weights (downloads them; off by default).
        cifar_stem: give a ResNet the paper's 3x3 stride-1 stem without max-pool.
        image_size: the input size: passed as ``img_size`` to models that take it (ViTs and
            other patch-embedding models, built for 224 px by default); convolutional models
            take any size and ignore it.
        dim: the embedding width of a custom module; defaults to its ``head_hidden_size``
            (timm's pre-logits width) or else its ``num_features``.
        **timm_kwargs: passed to ``timm.create_model`` (``img_size=32`` for a ViT, ...).

    Raises:
        ValueError: an unknown timm name (with close matches), a keyword argument the timm
            model does not take (with the ones it takes), ``cifar_stem`` on a non-ResNet, or a
            custom module whose width cannot be determined.
    """
    if isinstance(name_or_module, nn.Module):
        if cifar_stem or pretrained or timm_kwargs or image_size is not None:
            raise ValueError(
                "cifar_stem, pretrained, image_size and timm kwargs apply to timm names only; "
                "configure your own module before passing it."
            )
        width = dim if dim is not None else _output_width(name_or_module)
        if not isinstance(width, int):
            raise ValueError(
                f"cannot tell the output width of {type(name_or_module).__name__}: pass "
                "dim=<width>, or give the module a num_features attribute."
            )
        return Backbone(name_or_module, width)
    if not isinstance(name_or_module, str):
        raise ValueError(f"expected a timm model name or nn.Module, got {type(name_or_module)}.")
    name = name_or_module
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown timm model {name!r}.{hint} See timm.list_models().")
    if dim is not None:
        raise ValueError("dim is derived from the timm model; do not pass it with a name.")
    model = _create_timm(name, pretrained, image_size, timm_kwargs)
    if cifar_stem:
        _set_cifar_stem(model, name)
    return Backbone(model, int(_output_width(model)), name=name)


def _create_timm(
    name: str, pretrained: bool, image_size: int | None, kwargs: dict[str, Any]
) -> nn.Module:
    """``timm.create_model`` with ``img_size`` where the model takes one, and a clear error
    for a keyword argument it does not take (timm's own is a TypeError from deep inside)."""
    try:
        if image_size is not None and "img_size" not in kwargs:
            try:
                return timm.create_model(
                    name, pretrained=pretrained, num_classes=0, img_size=image_size, **kwargs
                )
            except TypeError as error:
                if _unexpected_keyword(error) != "img_size":
                    raise
        return timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)
    except TypeError as error:
        keyword = _unexpected_keyword(error)
        if keyword is None:
            raise
        with torch.device("meta"):  # only to read the constructor's signature
            cls = type(timm.create_model(name, num_classes=0))
        accepted = [
            p.name
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        raise ValueError(
            f"timm model {name!r} ({cls.__name__}) does not take {keyword!r}; it takes: "
            f"{', '.join(accepted)}."
        ) from error


def _unexpected_keyword(error: TypeError) -> str | None:
    match = re.search(r"unexpected keyword argument '(\w+)'", str(error))
    return match.group(1) if match else None
