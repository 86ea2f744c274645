"""Heads trained on frozen features: the MLP head, its seeded initialisation, the Adam loop.

The paper's protocol (spec §4.1, §7.1 #10) trains every head with Adam at its default
hyperparameters (lr 1e-3), batch 256: 300 epochs for the linear classifier and the MLP
regressors, 50 epochs for linear regressors (:mod:`.linear`, :mod:`.regression`). The
features are frozen tensors (extract them with :mod:`jepa_blocks.eval.features`), so no
backbone runs here and BatchNorm statistics of the model cannot drift, unlike the official
code's probe loop (spec §7.4.3).

Runs are deterministic for a seed: one ``torch.Generator`` seeds the head's initialisation
(PyTorch's default ``nn.Linear`` scheme, drawn on the CPU so every device starts from the same
weights) and another the per-epoch shuffles; nothing touches the global RNG.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from jepa_blocks._checks import require_positive_ints
from jepa_blocks._typing import Tensor
from jepa_blocks.eval.contract import _progress

__all__ = ["make_mlp_head"]

_PREDICT_CHUNK = 8192


def make_mlp_head(
    dim_in: int,
    dim_out: int,
    hidden: Sequence[int] = (1024, 1024),
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Sequential:
    """``Linear -> ReLU -> ... -> Linear``; ``hidden=()`` gives a single linear map.

    The default is the official code's regressor, two hidden layers of 1024 (spec §4.1).

    Raises:
        ValueError: a non-positive width.
    """
    widths = [dim_in, *hidden, dim_out]
    if any(not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(
            f"dim_in, hidden and dim_out must be positive ints, got dim_in={dim_in}, "
            f"hidden={tuple(hidden)}, dim_out={dim_out}."
        )
    layers: list[nn.Module] = []
    for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(w_in, w_out, device=device, dtype=dtype))
    return nn.Sequential(*layers)


def _seeded_init_(head: nn.Module, generator: torch.Generator) -> None:
    """Re-draw every ``nn.Linear`` as ``reset_parameters`` does, from ``generator``."""
    with torch.no_grad():
        for module in head.modules():
            if isinstance(module, nn.Linear):
                weight = torch.empty(module.weight.shape, dtype=module.weight.dtype)
                nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
                module.weight.copy_(weight)
                if module.bias is not None:
                    bound = 1.0 / math.sqrt(module.in_features) if module.in_features else 0.0
                    bias = torch.empty(module.bias.shape, dtype=module.bias.dtype)
                    nn.init.uniform_(bias, -bound, bound, generator=generator)
                    module.bias.copy_(bias)


@dataclass(frozen=True)
class _HeadFit:
    """How a head is trained on frozen features: Adam over shuffled mini-batches, seeded.

    ``seed`` seeds the head's initialisation and ``seed + 1`` the shuffles; ``device``
    defaults to the training features' device.
    """

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int
    device: torch.device | str | None
    progress: bool

    def check(self, train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor) -> None:
        """Rows, widths and finiteness of both splits, and the training settings."""
        for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
            if x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"{name}_x has {x.shape[0]} rows but {name}_y has {y.shape[0]}; pass one "
                    "target per feature row (extract features and targets from the same "
                    "loader)."
                )
            if x.shape[0] == 0:
                raise ValueError(f"{name}_x is empty; pass at least one row.")
            if not bool(torch.isfinite(x).all()):
                raise ValueError(
                    f"{name}_x contains NaN or Inf values; check the model's features before "
                    "fitting a head."
                )
        if train_x.shape[1] != test_x.shape[1]:
            raise ValueError(
                f"train_x has width {train_x.shape[1]} but test_x has {test_x.shape[1]}; "
                "extract both splits with the same model and settings."
            )
        require_positive_ints(epochs=self.epochs, batch_size=self.batch_size)
        if self.lr <= 0:
            raise ValueError(
                f"lr must be positive, got {self.lr}; the paper uses Adam's default 1e-3."
            )
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}.")

    def __call__(
        self,
        head: nn.Module,
        train_x: Tensor,
        train_y: Tensor,
        test_x: Tensor,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        *,
        desc: str,
    ) -> tuple[nn.Module, list[float], Tensor]:
        """Initialise ``head`` (built on ``"meta"``, so its default init never drew from the
        global RNG) from the seed, train it and predict ``test_x``.

        Returns:
            ``(head, mean training loss of each epoch, test predictions)``.
        """
        device = train_x.device if self.device is None else torch.device(self.device)
        head = head.to_empty(device="cpu")
        _seeded_init_(head, torch.Generator().manual_seed(self.seed))
        head = head.to(device)
        history = self._train(
            head,
            train_x.detach().float().to(device),
            train_y.to(device),
            loss_fn,
            generator=torch.Generator().manual_seed(self.seed + 1),
            desc=desc,
        )
        return head, history, _predict(head, test_x.detach().float().to(device))

    def _train(
        self,
        head: nn.Module,
        x: Tensor,
        y: Tensor,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        *,
        generator: torch.Generator,
        desc: str,
    ) -> list[float]:
        """Mini-batch Adam over shuffled rows; one host sync per epoch (the logged loss)."""
        optimizer = torch.optim.Adam(head.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        rows = x.shape[0]
        history: list[float] = []
        head.train()
        bar = _progress(range(self.epochs), desc=desc, progress=self.progress)
        for _ in bar:
            order = torch.randperm(rows, generator=generator).to(x.device, non_blocking=True)
            total = torch.zeros((), device=x.device)
            for start in range(0, rows, self.batch_size):
                idx = order[start : start + self.batch_size]
                loss = loss_fn(head(x[idx]), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * idx.shape[0]
            history.append(float(total) / rows)
            bar.set_postfix(loss=f"{history[-1]:.4g}")
        head.eval()
        return history


def _predict(head: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        chunks = [head(x[i : i + _PREDICT_CHUNK]) for i in range(0, x.shape[0], _PREDICT_CHUNK)]
    return torch.cat(chunks)
