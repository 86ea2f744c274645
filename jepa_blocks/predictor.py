"""The conditioned predictor: from the aggregate and an action, predict the next view.

seq-JEPA predicts the target view's embedding from ``[z_agg ; e(a_M)]`` with
``Linear(no bias) -> BatchNorm -> ReLU -> Linear`` (spec §1.7, the official code; the paper
says "2-layer MLP, 1024"). Two other ways to inject the condition are offered, both starting
as the unconditioned MLP: FiLM (Perez et al. 2018) and AdaLN-zero (Peebles & Xie 2023).
"""

from functools import partial

import torch
from torch import Tensor, nn

from jepa_blocks._checks import require_positive_ints
from jepa_blocks._typing import Float, typecheck
from jepa_blocks.layers.mlp import Mlp

__all__ = ["ConditionedPredictor", "PREDICTOR_MODES"]

PREDICTOR_MODES = ("concat", "film", "adaln")


class ConditionedPredictor(Mlp):
    """Predict ``z_hat (b, dim_out)`` from ``x (b, dim_in)`` and a condition ``(b, dim_cond)``.

    Modes:
        ``"concat"`` (the paper): ``Linear([x ; cond] -> hidden, no bias) -> BN -> ReLU ->
        Linear(hidden -> dim_out)``.
        ``"film"``: the hidden pre-activation ``h`` of ``x`` alone is modulated,
        ``h * (1 + gamma(cond)) + beta(cond)``, with ``gamma, beta`` zero-initialised.
        ``"adaln"``: ``LayerNorm`` without affine, then the same zero-initialised shift and
        scale; in both, training starts from the unconditioned MLP.

    It is the library's :class:`Mlp` (parameters ``fc1``, ``norm``, ``fc2``) with the condition
    injected. With ``dim_cond=0`` the predictor is unconditioned (the "no predictor conditioning"
    ablation) and ``cond`` must be ``None``.

    Args:
        dim_in: width of ``x`` (``z_agg``, 640 in the paper).
        dim_cond: width of the condition (``e(a_M)``, 128), or 0.
        dim_out: width of the prediction (the encoder's, 512).
        hidden: hidden width (1024).
        mode: ``"concat"``, ``"film"`` or ``"adaln"``.
        norm: ``"batch"`` (the paper) or ``"layer"`` for the hidden normalisation of
            ``concat``/``film`` (``adaln`` always uses LayerNorm).
        activation: the hidden non-linearity class (``nn.ReLU``).

    Raises:
        ValueError: non-positive widths, an unknown mode or norm.
    """

    def __init__(
        self,
        dim_in: int,
        dim_cond: int,
        dim_out: int,
        *,
        hidden: int = 1024,
        mode: str = "concat",
        norm: str = "batch",
        activation: type[nn.Module] = nn.ReLU,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        require_positive_ints(dim_in=dim_in, dim_out=dim_out, hidden=hidden)
        if not isinstance(dim_cond, int) or dim_cond < 0:
            raise ValueError(f"dim_cond must be a non-negative int, got {dim_cond!r}.")
        if mode not in PREDICTOR_MODES:
            raise ValueError(f"mode must be one of {PREDICTOR_MODES}, got {mode!r}.")
        if norm not in ("batch", "layer"):
            raise ValueError(f"norm must be 'batch' or 'layer', got {norm!r}.")
        factory = {"device": device, "dtype": dtype}
        width_first = dim_in + dim_cond if mode == "concat" else dim_in
        if mode == "adaln":
            norm_layer = partial(nn.LayerNorm, elementwise_affine=False)
        else:
            norm_layer = nn.BatchNorm1d if norm == "batch" else nn.LayerNorm
        # The paper's MLP; fc1 has no bias (the norm after it would cancel one).
        super().__init__(
            width_first,
            hidden,
            dim_out,
            act_layer=activation,
            norm_layer=norm_layer,
            hidden_bias=False,
            **factory,
        )
        self.dim_in, self.dim_cond = dim_in, dim_cond
        self.mode, self.norm_kind = mode, norm
        self.modulation: nn.Linear | None = None
        if mode != "concat" and dim_cond > 0:
            self.modulation = nn.Linear(dim_cond, 2 * hidden, **factory)
            nn.init.zeros_(self.modulation.weight)  # start as the unconditioned MLP
            nn.init.zeros_(self.modulation.bias)
            # Parameter order as before the Mlp base (fc1, norm, modulation, fc2): optimiser
            # states saved then are indexed by it.
            order = ("fc1", "norm", "modulation", "act", "drop", "fc2")
            self._modules = {name: self._modules[name] for name in order}

    @typecheck
    def forward(
        self,
        x: Float[Tensor, "b {self.dim_in}"],
        cond: Float[Tensor, "b {self.dim_cond}"] | None = None,
    ) -> Float[Tensor, "b {self.dim_out}"]:
        """Predict the target embedding.

        Args:
            x: the aggregate ``z_agg``.
            cond: the condition ``e(a_M)``; ``None`` only when ``dim_cond == 0``.

        Raises:
            ValueError: a missing or unexpected ``cond``, batch sizes that disagree, or a
                batch of one in training mode with BatchNorm.
        """
        if self.dim_cond > 0 and cond is None:
            raise ValueError(
                f"cond is required: this predictor was built with dim_cond={self.dim_cond}; "
                "pass the action embedding, or build it with dim_cond=0."
            )
        if self.dim_cond == 0 and cond is not None:
            raise ValueError("cond was given but this predictor has dim_cond=0; pass cond=None.")
        if cond is not None and cond.shape[0] != x.shape[0]:
            raise ValueError(
                f"x has batch {x.shape[0]} but cond has batch {cond.shape[0]}; pass one "
                "condition per sequence."
            )
        if isinstance(self.norm, nn.BatchNorm1d) and self.training and x.shape[0] < 2:
            raise ValueError(
                f"BatchNorm in training mode needs a batch of at least 2, got {x.shape[0]}; "
                "use a larger batch, eval mode, or norm='layer'."
            )
        if self.mode == "concat" and cond is not None:
            x = torch.cat((x, cond.to(x.dtype)), dim=-1)
        hidden = self.pre_activation(x)
        if self.modulation is not None and cond is not None:
            scale, shift = self.modulation(cond.to(hidden.dtype)).chunk(2, dim=-1)
            hidden = hidden * (1.0 + scale) + shift
        return self.post_activation(hidden)

    def extra_repr(self) -> str:
        return (
            f"dim_in={self.dim_in}, dim_cond={self.dim_cond}, dim_out={self.dim_out}, "
            f"hidden={self.hidden}, mode={self.mode!r}"
        )
