"""The one MLP of the library: ``fc1 -> norm -> act -> drop -> fc2``.

Every block that needs a one-hidden-layer MLP builds this one (the aggregator's FFN, the
``ActionEncoder``'s hidden option, the ``ConditionedPredictor``, the BYOL and LeJEPA
projectors). The parts are passed as classes, as in timm (``act_layer``, ``norm_layer``), and
the parameter names are timm's (``fc1``, ``norm``, ``fc2``), so weights move between them.
"""

from collections.abc import Callable

import torch
from torch import Tensor, nn

from jepa_blocks._checks import require_positive_ints
from jepa_blocks._typing import Float, typecheck

__all__ = ["Mlp", "remap_state_dict_keys"]


class Mlp(nn.Module):
    """``fc1 -> norm -> act -> drop -> fc2``: one hidden layer.

    Args:
        dim_in: input width.
        hidden: hidden width.
        dim_out: output width (``dim_in`` if None).
        act_layer: the non-linearity class (``nn.ReLU``).
        norm_layer: a class called as ``norm_layer(hidden)`` after ``fc1`` (e.g.
            ``nn.BatchNorm1d`` for a BN-MLP projector), or None for none.
        dropout: dropout after the activation.
        bias: biases of both linear layers.
        hidden_bias: bias of ``fc1`` alone (default ``bias``); a norm after ``fc1`` makes it
            redundant, so the paper's predictor and BN-MLP projectors drop it.

    Raises:
        ValueError: non-positive widths or a dropout outside ``[0, 1)``.
    """

    def __init__(
        self,
        dim_in: int,
        hidden: int,
        dim_out: int | None = None,
        *,
        act_layer: Callable[[], nn.Module] = nn.ReLU,
        norm_layer: Callable[[int], nn.Module] | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        hidden_bias: bool | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dim_out = dim_in if dim_out is None else dim_out
        require_positive_ints(dim_in=dim_in, hidden=hidden, dim_out=dim_out)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        factory = {"device": device, "dtype": dtype}
        self.dim_in, self.hidden, self.dim_out = dim_in, hidden, dim_out
        first_bias = bias if hidden_bias is None else hidden_bias
        self.fc1 = nn.Linear(dim_in, hidden, bias=first_bias, **factory)
        self.norm = norm_layer(hidden).to(**factory) if norm_layer is not None else nn.Identity()
        self.act = act_layer()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc2 = nn.Linear(hidden, dim_out, bias=bias, **factory)

    def pre_activation(self, x: Tensor) -> Tensor:
        """``norm(fc1(x))``: where conditioned blocks modulate the hidden layer."""
        return self.norm(self.fc1(x))

    def post_activation(self, hidden: Tensor) -> Tensor:
        """``fc2(drop(act(hidden)))``."""
        return self.fc2(self.drop(self.act(hidden)))

    @typecheck
    def forward(
        self, x: Float[Tensor, "*batch {self.dim_in}"]
    ) -> Float[Tensor, "*batch {self.dim_out}"]:
        return self.post_activation(self.pre_activation(x))

    def extra_repr(self) -> str:
        return f"dim_in={self.dim_in}, hidden={self.hidden}, dim_out={self.dim_out}"


def remap_state_dict_keys(module: nn.Module, renames: dict[str, str]) -> None:
    """Load checkpoints written before a rename: ``renames`` maps old key prefixes (relative
    to ``module``, e.g. ``"mlp.0."``) to new ones (``"mlp.fc1."``), applied on the fly by
    ``load_state_dict``. Keys already in the new form load unchanged."""

    def hook(module, state_dict, prefix, metadata, strict, missing, unexpected, errors) -> None:
        for key in [k for k in state_dict if k.startswith(prefix)]:
            local = key[len(prefix):]
            for old, new in renames.items():
                if local.startswith(old):
                    state_dict[prefix + new + local[len(old):]] = state_dict.pop(key)
                    break

    module.register_load_state_dict_pre_hook(hook)
