"""seq-JEPA assembled from jepa_blocks' public blocks, with its ablations and a BYOL baseline.

    views x_1..x_{M+1}, actions a_1..a_M (a_i takes x_i to x_{i+1})
    z_i = f(x_i), i <= M                          encoder (timm backbone)
    u_i = [z_i ; e(a_i)], u_M = [z_M ; 0]         ActionEncoder + ViewActionConcat
    z_agg = g([AGG], u_1..u_M)                    SequenceAggregator
    z_hat = h([z_agg ; e(a_M)])                   ConditionedPredictor
    loss = 1 - cos(z_hat, sg(f_ema(x_{M+1})))     SeqJEPALoss + EMATarget

The ``seq-jepa-sigreg`` variant replaces the EMA target by SIGReg (LeJEPA's regulariser): no
EMA, no stop-gradient, the target view encoded by the online encoder in the same call as the
observed views, and ``loss = (1 - lam) (1 - cos(z_hat, f(x_{M+1}))) + lam SIGReg(z_1..z_{M+1})``
with SIGReg on every view's encoder output (the embeddings the predictor targets) and
``lam = sigreg_lambda`` (0.05, LeJEPA's). No published work has run this combination.

Only public names of ``jepa_blocks`` are used here (DESIGN.md: if an example needs a private
name, a block is missing). The online network and its EMA target are separate modules so that
the online one can be wrapped in DistributedDataParallel and the target never is.

How the actions meet BatchNorm (``SeqJEPAConfig.action_norm_calls``, spec §1.4). The
ActionEncoder ends in ``BatchNorm1d(affine=False)``, so in train mode which rows share one call
changes the embeddings and the running statistics:

- ``"single"`` (default): the m actions of a sequence are embedded with ONE call (b·m rows,
  one running-statistics update per step), and the predictor's ``e(a_M)`` is the last row of
  it. The paper describes a single "linear projection"; one call also halves the BN work.
- ``"separate"``: the official code's 3DIEBench path. Call 1 embeds the m token-slot actions
  a_1..a_M (b·m rows; slot M holds a_M itself, its embedding is zeroed afterwards), call 2
  embeds a_M alone (b rows) for the predictor: a_M is normalised with statistics of b rows,
  and the running statistics are updated twice per step.
- ``"separate-zero-slot"``: the official code's augmentation and saccade paths: as
  ``"separate"``, but slot M holds a zero vector before call 1, so b of its b·m rows are zeros.

In eval mode BatchNorm normalises each row with its running statistics, so the three agree
given the same weights and buffers. In the ablations of the separate modes each consumer
makes its own call: ``tokens-only`` makes call 1 only, ``predictor-only`` call 2 only.
"""

from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

import jepa_blocks as jb
from jepa_blocks.training import unwrap_model

VARIANTS = ("seq-jepa", "no-action", "tokens-only", "predictor-only", "byol", "seq-jepa-sigreg")
#: How many ActionEncoder (BatchNorm) calls embed a sequence's actions; see the module docstring.
ACTION_NORM_CALLS = ("single", "separate", "separate-zero-slot")


@dataclass
class SeqJEPAConfig:
    """Everything that defines the model; the defaults are the paper's (3DIEBench, rot)."""

    variant: str = "seq-jepa"  # one of VARIANTS; the ablations of Table 4 and a BYOL baseline
    backbone: str = "resnet18"  # any timm model name
    cifar_stem: bool = False  # 3x3 stride-1 stem, no max-pool (CIFAR-100, STL-10 glimpses)
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {"drop_path_rate": 0.1}
    image_size: int | None = None  # passed to patch-embedding backbones (ViTs) as img_size
    dim_action: int = 4  # raw action width: 4 rot, 6 rotcolor, 9 augmentations, 2 saccades
    dim_action_embed: int = 128  # the paper's a_dim (Table 4)
    depth: int = 3  # aggregator layers
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.1  # nn.TransformerEncoderLayer's default, as the official code
    norm_first: bool = False  # post-norm, as the paper
    # None: the library default (JEPA_BLOCKS_ATTN_CORE, else "sdpa"); weights do not depend on it
    attn_core: str | None = None
    pred_hidden: int = 1024
    predictor_mode: str = "concat"  # the paper's; "film" / "adaln" as alternatives
    # one of ACTION_NORM_CALLS: "single" (ours, one BN call) or the official code's two calls
    action_norm_calls: str = "single"
    # BYOL baseline only (paper A.3 dims: projector 2048-2048, predictor hidden 512)
    byol_proj_hidden: int = 2048
    byol_proj_dim: int = 2048
    byol_pred_hidden: int = 512
    # seq-jepa-sigreg only: the weight lam of SIGReg and its number of directions
    sigreg_lambda: float = 0.05
    sigreg_slices: int = 1024

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}.")
        if self.dim_action < 1:
            raise ValueError(f"dim_action must be >= 1, got {self.dim_action}.")
        if self.action_norm_calls not in ACTION_NORM_CALLS:
            raise ValueError(
                f"action_norm_calls must be one of {ACTION_NORM_CALLS}, got "
                f"{self.action_norm_calls!r}: 'single' embeds all actions in one BatchNorm "
                "call, the 'separate' modes are the official code's two calls."
            )

        if not 0.0 <= self.sigreg_lambda <= 1.0:
            raise ValueError(
                f"sigreg_lambda must be in [0, 1] (the loss is (1 - lam) prediction + lam "
                f"SIGReg), got {self.sigreg_lambda}; LeJEPA uses 0.05."
            )

    @property
    def actions_in_tokens(self) -> bool:
        return self.variant in ("seq-jepa", "tokens-only", "seq-jepa-sigreg")

    @property
    def actions_in_predictor(self) -> bool:
        return self.variant in ("seq-jepa", "predictor-only", "seq-jepa-sigreg")

    @property
    def uses_ema(self) -> bool:
        """Whether the target comes from an EMA copy (all but ``seq-jepa-sigreg``)."""
        return self.variant != "seq-jepa-sigreg"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SeqJEPA(nn.Module):
    """The online network: encoder, action encoder, aggregator and predictor.

    ``encode`` and ``aggregate`` are the interface the evaluation uses
    (``jepa_blocks.eval``); ``forward`` is the training pass through all of it.
    """

    def __init__(self, config: SeqJEPAConfig) -> None:
        super().__init__()
        if config.variant == "byol":
            raise ValueError("variant 'byol' is built by build_model as BYOL, not SeqJEPA.")
        self.config = config
        self.encoder = jb.create_backbone(
            config.backbone,
            cifar_stem=config.cifar_stem,
            image_size=config.image_size,
            **config.backbone_kwargs,
        )
        dim_view = self.encoder.dim
        uses_actions = config.actions_in_tokens or config.actions_in_predictor
        de = config.dim_action_embed
        self.action_encoder = jb.ActionEncoder(config.dim_action, de) if uses_actions else None
        self.concat = jb.ViewActionConcat(dim_view, de) if config.actions_in_tokens else None
        dim_token = dim_view + de if config.actions_in_tokens else dim_view
        self.aggregator = jb.SequenceAggregator(
            dim_token,
            depth=config.depth,
            heads=config.heads,
            mlp_ratio=config.mlp_ratio,
            dropout=config.dropout,
            norm_first=config.norm_first,
            attn_layer=partial(jb.Attention, core=config.attn_core),
        )
        self.predictor = jb.ConditionedPredictor(
            dim_token,
            de if config.actions_in_predictor else 0,
            dim_view,
            hidden=config.pred_hidden,
            mode=config.predictor_mode,
        )
        # Its direction step is a buffer: saved with the model, so a resume is exact.
        self.sigreg = None if config.uses_ema else jb.SIGReg(config.sigreg_slices, seed=0)

    @property
    def dim_view(self) -> int:
        return self.encoder.dim

    @property
    def dim_aggregate(self) -> int:
        return self.aggregator.dim

    def encode(self, views: Tensor) -> Tensor:
        """``(b, k, c, h, w)`` -> ``(b, k, dv)``: the encoder on every view (one batched call)."""
        return self.encoder(views)  # (b, k, c, h, w) -> (b, k, dv) in one call

    def _embed_actions(self, actions: Tensor) -> Tensor | None:
        if self.action_encoder is None:
            return None
        if actions.shape[-1] != self.config.dim_action:
            raise ValueError(
                f"actions have width {actions.shape[-1]} but the model expects "
                f"dim_action={self.config.dim_action}; build the model with the dataset's "
                "action width."
            )
        return self.action_encoder(actions)

    def _embed_token_actions(self, actions: Tensor) -> Tensor | None:
        """The token call: ``(b, m, da)`` -> ``(b, m, de)``, the last slot zeroed later by the
        concat. In the separate modes only a model with actions in its tokens makes it."""
        mode = self.config.action_norm_calls
        if mode == "single":
            return self._embed_actions(actions)
        if not self.config.actions_in_tokens:
            return None
        if mode == "separate-zero-slot":
            # The official augmentation / saccade layout: slot M holds zeros, not a_M.
            actions = torch.cat((actions[:, :-1], torch.zeros_like(actions[:, -1:])), dim=1)
        return self._embed_actions(actions)

    def _tokens(self, z: Tensor, embedded: Tensor | None) -> Tensor:
        if self.concat is None or embedded is None:
            return z
        return self.concat(z, embedded)

    def aggregate(self, z: Tensor, actions: Tensor) -> Tensor:
        """``z (b, m, dv)``, ``actions (b, m, da)`` -> ``z_agg (b, d)``; the last action is
        zeroed inside (it belongs to the predictor)."""
        return self.aggregator(self._tokens(z, self._embed_token_actions(actions)))

    def forward(self, views: Tensor, actions: Tensor) -> dict[str, Tensor]:
        """Training pass on ``views (b, m+1, c, h, w)`` and ``actions (b, m, da)``.

        The target view ``views[:, -1]`` is not encoded here: it goes through the EMA target
        (except for ``seq-jepa-sigreg``, which encodes all m + 1 views in one call).

        Returns:
            ``z`` (b, m, dv), ``z_agg`` (b, d) and the prediction ``z_hat`` (b, dv); for
            ``seq-jepa-sigreg`` also ``z_target`` (b, dv), the online target embedding.
        """
        if views.dim() != 5 or actions.dim() != 3 or views.shape[0] != actions.shape[0]:
            raise ValueError(
                f"expected views (b, m+1, c, h, w) and actions (b, m, da), got "
                f"{tuple(views.shape)} and {tuple(actions.shape)}."
            )
        m = actions.shape[1]
        if views.shape[1] != m + 1:
            raise ValueError(
                f"{views.shape[1]} views but {m} actions: a sequence of m + 1 views has m "
                "actions (a_i takes view i to view i + 1)."
            )
        if self.sigreg is None:
            z = self.encode(views[:, :m])
            z_target = None
        else:  # one call: the target view shares the observed views' BatchNorm statistics
            z_all = self.encode(views)
            z, z_target = z_all[:, :m], z_all[:, m]
        embedded = self._embed_token_actions(actions)
        z_agg = self.aggregator(self._tokens(z, embedded))
        condition = None
        if self.config.actions_in_predictor:
            if self.config.action_norm_calls == "single":
                condition = embedded[:, -1]  # e(a_M): the last row of the one call
            else:  # the official code's second call: a_M alone, b rows, its own BN statistics
                condition = self._embed_actions(actions[:, -1])
        z_hat = self.predictor(z_agg, condition)
        out = {"z": z, "z_agg": z_agg, "z_hat": z_hat}
        if z_target is not None:
            out["z_target"] = z_target
        return out


    @property
    def ema_tracked(self) -> nn.Module | None:
        """What the EMA target copies: the encoder alone (spec §1.2), none with SIGReg."""
        return self.encoder if self.sigreg is None else None

    def target_encoder(self, target: jb.EMATarget) -> nn.Module:
        """The target's encoder, whose outputs compare with ``z``."""
        return target

    def loss(
        self, out: dict[str, Tensor], views: Tensor, target: jb.EMATarget | None
    ) -> Tensor:
        """``1 - cos(z_hat, sg(f_ema(x_{M+1})))``; with SIGReg (no target) the online target
        embedding without stop-gradient, plus ``lam`` SIGReg over every view."""
        if self.sigreg is None:
            with torch.no_grad():
                goal = target(views[:, -1])
            return jb.seq_jepa_loss(out["z_hat"], goal)
        lam = self.config.sigreg_lambda
        prediction = jb.seq_jepa_loss(out["z_hat"], out["z_target"])
        z_all = torch.cat((out["z"], out["z_target"][:, None]), dim=1)
        regulariser = self.sigreg(z_all.transpose(0, 1).float())  # (views, b, dv)
        out["prediction_loss"], out["sigreg"] = prediction.detach(), regulariser.detach()
        return (1 - lam) * prediction + lam * regulariser

class BYOL(nn.Module):
    """The invariant baseline from the same blocks: encoder -> projector -> predictor, EMA
    target on encoder + projector, symmetric ``1 - cos`` between the first two views.

    For evaluation, ``aggregate`` averages the views' encoder outputs (an invariant multi-view
    feature, so accuracy vs M_val can be compared with seq-JEPA's ``z_agg``); the paper probes
    baselines on the single-view encoder output, reported as ``top1_encoder``.
    """

    def __init__(self, config: SeqJEPAConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = jb.create_backbone(
            config.backbone,
            cifar_stem=config.cifar_stem,
            image_size=config.image_size,
            **config.backbone_kwargs,
        )
        dim = self.encoder.dim
        # BN-MLPs (Linear without bias -> BN -> ReLU -> Linear), as BYOL's.
        bn_mlp = partial(jb.Mlp, norm_layer=nn.BatchNorm1d, hidden_bias=False)
        self.projector = bn_mlp(dim, config.byol_proj_hidden, config.byol_proj_dim)
        self.predictor = bn_mlp(config.byol_proj_dim, config.byol_pred_hidden, config.byol_proj_dim)
        self.online = nn.ModuleDict({"encoder": self.encoder, "projector": self.projector})

    @property
    def dim_view(self) -> int:
        return self.encoder.dim

    @property
    def dim_aggregate(self) -> int:
        return self.encoder.dim

    def encode(self, views: Tensor) -> Tensor:
        return self.encoder(views)  # (b, k, c, h, w) -> (b, k, dv) in one call

    def aggregate(self, z: Tensor, actions: Tensor) -> Tensor:
        return z.mean(dim=1)

    def forward(self, views: Tensor, actions: Tensor) -> dict[str, Tensor]:
        """Predictions for views 1 and 2 (each predicts the other's target projection)."""
        pair = views[:, :2]
        z = self.encode(pair)
        projections = self.projector(z.flatten(0, 1))
        predictions = self.predictor(projections).unflatten(0, (views.shape[0], 2))
        return {"z": z, "z_agg": z.mean(dim=1), "z_hat": predictions}


    @property
    def ema_tracked(self) -> nn.Module:
        """What the EMA target copies: encoder and projector."""
        return self.online

    def target_encoder(self, target: jb.EMATarget) -> nn.Module:
        """The target's encoder, whose outputs compare with ``z``."""
        return target.target["encoder"]

    def loss(self, out: dict[str, Tensor], views: Tensor, target: jb.EMATarget) -> Tensor:
        """Symmetric: view 1 predicts view 2's target projection, and vice versa."""
        with torch.no_grad():
            pair = target.target["encoder"](views[:, :2])
            targets = target.target["projector"](pair.flatten(0, 1))
            targets = targets.unflatten(0, (views.shape[0], 2))
        return jb.seq_jepa_loss(out["z_hat"][:, 0], targets[:, 1]) + jb.seq_jepa_loss(
            out["z_hat"][:, 1], targets[:, 0]
        )

def build_model(config: SeqJEPAConfig) -> SeqJEPA | BYOL:
    """The online network for ``config.variant``."""
    return BYOL(config) if config.variant == "byol" else SeqJEPA(config)


def build_target(
    model: SeqJEPA | BYOL, schedule: jb.MomentumSchedule
) -> jb.EMATarget | None:
    """The EMA target of what the model says it tracks (``model.ema_tracked``), or None."""
    tracked = model.ema_tracked
    return None if tracked is None else jb.EMATarget(tracked, schedule=schedule)


def online_for_target(model: SeqJEPA | BYOL) -> nn.Module:
    """The module whose weights the EMA target tracks."""
    return model.ema_tracked


def target_encoder(model: SeqJEPA | BYOL, target: jb.EMATarget | None) -> nn.Module | None:
    """The EMA copy of the encoder alone (its output is comparable with ``z``), or None."""
    return None if target is None else model.target_encoder(target)


def compute_loss(
    model: nn.Module, target: jb.EMATarget | None, views: Tensor, actions: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """One forward of the online network (possibly DDP-wrapped or compiled) and the loss the
    model defines (``SeqJEPA.loss``, ``BYOL.loss``)."""
    out = model(views, actions)
    return unwrap_model(model).loss(out, views, target), out
