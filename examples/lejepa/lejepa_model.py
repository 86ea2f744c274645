"""LeJEPA assembled from jepa_blocks' public blocks (Balestriero & LeCun, arXiv 2511.08544).

    global views x_{n,1..Vg}, local views x_{n,Vg+1..V} of image n (smaller crops, fewer px)
    h_{n,v} = f(x_{n,v})                          backbone (any timm model, create_backbone)
    z_{n,v} = g(h_{n,v})                          BN-MLP projector: (Linear-BN-ReLU) x k, Linear
    mu_n    = mean_{v <= Vg} z_{n,v}              centre of the global views, no stop-gradient
    loss    = (1 - lam) mean_{v,n} ||mu_n - z_{n,v}||^2 / d + lam mean_v SIGReg({z_{n,v}}_n)

Paper Algorithm 2: no EMA teacher, no stop-gradient, no predictor; every view, global and
local, enters both terms (:class:`jepa_blocks.LeJEPALoss`). The probes read ``h`` (the
backbone), as in the paper; SIGReg shapes ``z``.

File names carry a ``lejepa_`` prefix so that they never shadow ``examples/seq_jepa``'s
modules of the same role when both examples are imported in one process (the test suite).
"""

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn

import jepa_blocks as jb

__all__ = ["LeJEPAConfig", "LeJEPA", "bn_mlp", "build_model", "build_loss"]


@dataclass
class LeJEPAConfig:
    """Everything that defines the model and its objective."""

    backbone: str = "resnet18"  # any timm model name
    cifar_stem: bool = False  # 3x3 stride-1 stem without max-pool (ResNets only)
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {"img_size": 32}
    proj_hidden: int = 2048  # the official minimal example's projector width
    proj_dim: int = 128  # width of z, where SIGReg and the invariance term act
    proj_layers: int = 3  # Linear layers of the projector (the last one without BN/ReLU)
    lam: float = 0.05  # SIGReg's weight (paper: 0.05)
    num_slices: int = 1024  # SIGReg directions per step (paper: 1024)
    sigreg_seed: int = 0  # seeds SIGReg's direction stream

    def __post_init__(self) -> None:
        if self.proj_layers < 1 or self.proj_hidden < 1 or self.proj_dim < 1:
            raise ValueError(
                f"proj_layers, proj_hidden and proj_dim must be >= 1, got {self.proj_layers}, "
                f"{self.proj_hidden}, {self.proj_dim}."
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bn_mlp(dim_in: int, hidden: int, dim_out: int, *, layers: int = 3) -> nn.Sequential:
    """The LeJEPA projector: ``layers - 1`` blocks of Linear-BN-ReLU, then a plain Linear.

    ``layers=1`` is a single Linear map ``dim_in -> dim_out``.
    """
    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}.")
    modules: list[nn.Module] = []
    width = dim_in
    for _ in range(layers - 1):
        # No bias before BatchNorm: it would be cancelled by the mean subtraction.
        modules += [nn.Linear(width, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU()]
        width = hidden
    modules.append(nn.Linear(width, dim_out))
    return nn.Sequential(*modules)


class LeJEPA(nn.Module):
    """Backbone and projector; ``forward`` embeds every view of a batch.

    Args:
        backbone: a :class:`jepa_blocks.Backbone` (``(b, c, hh, ww) -> (b, dim)``).
        projector: maps ``(n, backbone.dim)`` to ``(n, d)``.
    """

    def __init__(self, backbone: jb.Backbone, projector: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = projector

    @property
    def dim_features(self) -> int:
        """Width of the backbone features the probes read."""
        return self.backbone.dim

    def features(self, images: Tensor) -> Tensor:
        """Backbone features ``(b, dim)`` of images ``(b, c, hh, ww)`` (what probes read)."""
        if images.is_cuda:  # convolutions are fastest channels-last on CUDA
            images = images.contiguous(memory_format=torch.channels_last)
        return self.backbone(images)

    def forward(
        self, global_views: Tensor, local_views: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Embed the views of ``b`` images.

        Args:
            global_views: ``(b, vg, c, H, W)``.
            local_views: ``(b, vl, c, h, w)`` (another resolution is fine) or None.

        Returns:
            ``(z_global (vg, b, d), z_local (vl, b, d) or None)``: the layout
            :class:`jepa_blocks.LeJEPALoss` takes (views first).

        Raises:
            ValueError: views that are not 5-D, or local views of another batch size.
        """
        if global_views.ndim != 5:
            raise ValueError(
                f"global_views must be (b, vg, c, H, W), got {tuple(global_views.shape)}."
            )
        batch, num_global = global_views.shape[:2]
        # One backbone call per resolution (views folded into the batch), one projector call
        # for all views: the projector's BatchNorm sees every view of the step together.
        features = [self.features(rearrange(global_views, "b v c h w -> (v b) c h w"))]
        num_local = 0
        if local_views is not None:
            if local_views.ndim != 5 or local_views.shape[0] != batch:
                raise ValueError(
                    f"local_views must be (b, vl, c, h, w) with b = {batch} as global_views, "
                    f"got {tuple(local_views.shape)}."
                )
            num_local = local_views.shape[1]
            features.append(self.features(rearrange(local_views, "b v c h w -> (v b) c h w")))
        z = self.projector(torch.cat(features))  # ((vg + vl) b, d)
        z = rearrange(z, "(v b) d -> v b d", b=batch)
        z_global, z_local = z.split([num_global, num_local])
        return z_global, (z_local if local_views is not None else None)


def build_model(config: LeJEPAConfig) -> LeJEPA:
    """The backbone by name through :func:`jepa_blocks.create_backbone` (never downloads),
    and a fresh projector; draws its initial weights from the global RNG."""
    backbone = jb.create_backbone(
        config.backbone, cifar_stem=config.cifar_stem, **config.backbone_kwargs
    )
    projector = bn_mlp(
        backbone.dim, config.proj_hidden, config.proj_dim, layers=config.proj_layers
    )
    return LeJEPA(backbone, projector)


def build_loss(config: LeJEPAConfig) -> jb.LeJEPALoss:
    """``LeJEPALoss(lam)`` with its own :class:`jepa_blocks.SIGReg` direction stream (the
    step lives in its ``state_dict``, so a resumed run draws the uninterrupted run's
    directions; under DDP every rank draws the same ones)."""
    sigreg = jb.SIGReg(config.num_slices, seed=config.sigreg_seed)
    return jb.LeJEPALoss(config.lam, sigreg=sigreg)
