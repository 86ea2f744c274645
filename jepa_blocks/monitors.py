"""Collapse monitors: "is my run collapsing?", answered every few steps from the embeddings.

The JEPA loss cannot say it: a collapsed encoder (every input mapped to one point, or to a
low-dimensional subspace) predicts its own target perfectly. :class:`CollapseMonitor` measures
on a sample of a training step's embeddings the gauges the JEPA issue trackers point to
(``reference/jepa-family.md`` §3):

- ``rankme``: RankMe (Garrido et al. 2023), the exponential of the entropy of the singular
  value distribution; up to ``min(n, d)`` when spread, 1 when collapsed to a point.
- ``std_ratio``: the mean per-dimension standard deviation of the L2-normalised embeddings,
  times ``sqrt(d)``; about 1 for isotropic embeddings, 0 for a point.
- ``sigreg``: the SIGReg (Epps-Pulley) statistic of the embeddings, centred and scaled to unit
  mean variance so that it measures shape, not scale: small for an isotropic Gaussian, large
  when the variance sits in a few directions. Being scale-free, it does not see a collapse to
  a point with isotropic jitter (that looks Gaussian once standardised): ``std_ratio`` and
  ``rankme`` do.
- ``teacher_cosine`` (EMA methods, given online and target embeddings of the same inputs):
  the mean cosine between them; the teacher-student drift.

It warns (:class:`CollapseWarning`, naming the metric, its value and the step) when a gauge
crosses its threshold, once per crossing.
"""

import math
import warnings
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from jepa_blocks._checks import require_finite
from jepa_blocks.eval.metrics import rankme
from jepa_blocks.losses.sigreg import SIGReg

__all__ = ["CollapseMonitor", "CollapseWarning"]


class CollapseWarning(UserWarning):
    """A collapse gauge of :class:`CollapseMonitor` crossed its threshold."""


_FIX = (
    "The representation is collapsing: lower the learning rate, raise the EMA momentum (EMA "
    "methods) or the regulariser's weight (SIGReg / VICReg), or check that the target is not "
    "the online network without a stop-gradient."
)


class CollapseMonitor:
    """Collapse gauges every ``every`` steps, with warnings and a history.

    Use it beside the loss in a training loop; it never touches the global RNG or the
    embeddings' graph, and it syncs with the host only at the steps it measures::

        monitor = CollapseMonitor(every=100)
        for step, batch in enumerate(loader):
            z = encoder(batch)                      # (n, d) or (v, n, d)
            ...
            if monitor.due(step):
                log(monitor(z, step=step, teacher=(z, target_z)))   # dict of floats

    Args:
        every: measure at steps that are multiples of ``every`` (see :meth:`due`).
        max_samples: embeddings beyond this many rows are subsampled with an even stride
            (deterministic, no RNG): the cost of RankMe's SVD grows with the rows.
        rankme_eps: RankMe's ``eps`` (1e-7, as the paper).
        num_slices: SIGReg directions; fixed for the run (seed ``seed``, step 0), so the
            statistic is comparable from step to step.
        seed: seeds the SIGReg directions.
        min_rankme_fraction: warn when RankMe falls below ``1 + f (min(n, d) - 1)``, this
            fraction of the way from a point (1) to full rank.
        min_std_ratio: warn when ``std_ratio`` falls below this (0.05: the normalised
            embeddings agree to a mean cosine of about 0.9975).
        max_sigreg: warn when the standardised SIGReg statistic exceeds this; ``None`` (the
            default) only logs it, because healthy non-Gaussian features (e.g. the
            non-negative features of a ResNet) also score high. ``None`` disables any of
            the three thresholds.
        warn: emit :class:`CollapseWarning`; pass ``False`` on all but one DDP rank.

    Raises:
        ValueError: ``every < 1``, ``max_samples < 2``, a negative threshold, ``rankme_eps``
            outside ``[0, 1)``.
    """

    def __init__(
        self,
        every: int = 100,
        *,
        max_samples: int = 1024,
        rankme_eps: float = 1e-7,
        num_slices: int = 256,
        seed: int = 0,
        min_rankme_fraction: float | None = 0.02,
        min_std_ratio: float | None = 0.05,
        max_sigreg: float | None = None,
        warn: bool = True,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1 (steps between measurements), got {every}.")
        if max_samples < 2:
            raise ValueError(f"max_samples must be >= 2, got {max_samples}.")
        if not 0.0 <= rankme_eps < 1.0:
            raise ValueError(f"rankme_eps must be in [0, 1), got {rankme_eps}; RankMe uses 1e-7.")
        for name, value in (
            ("min_rankme_fraction", min_rankme_fraction),
            ("min_std_ratio", min_std_ratio),
            ("max_sigreg", max_sigreg),
        ):
            if value is not None and not value >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {value}.")
        self.every, self.max_samples, self.rankme_eps = every, max_samples, rankme_eps
        self.min_rankme_fraction, self.min_std_ratio = min_rankme_fraction, min_std_ratio
        self.max_sigreg, self.warn = max_sigreg, warn
        # One rank's sample, fixed directions: a gauge, not a loss.
        self.sigreg = SIGReg(num_slices, seed=seed, distributed=False, check_finite=False)
        self.history: list[dict[str, float]] = []
        self.collapsed: set[str] = set()  # gauges past their threshold at the last measurement

    def due(self, step: int) -> bool:
        """Whether :meth:`__call__` should run at ``step`` (a multiple of ``every``)."""
        return step % self.every == 0

    def __call__(
        self,
        embeddings: Float[Tensor, "*samples d"],
        *,
        step: int,
        teacher: tuple[Float[Tensor, "*pairs d"], Float[Tensor, "*pairs d"]] | None = None,
    ) -> dict[str, float]:
        """Measure the gauges on ``embeddings`` (leading axes are flattened into samples),
        append them to :attr:`history`, warn on a crossing, and return them.

        Args:
            embeddings: ``(n, d)``, or e.g. ``(b, v, d)`` for several views per sample.
            step: the training step, for the history and the warnings.
            teacher: ``(online, target)``: the online network's and the EMA target's
                embeddings of the same inputs (e.g. of one view), same shape, for
                ``teacher_cosine``; they need not be the rows of ``embeddings``.

        Raises:
            ValueError: fewer than 2 dimensions or samples, NaN/Inf, a teacher pair of two
                shapes. Nothing is recorded then.
        """
        with torch.no_grad():  # not a decorator: warnings point at the caller's line
            return self._measure(embeddings, step, teacher)

    def _measure(
        self, embeddings: Tensor, step: int, teacher: tuple[Tensor, Tensor] | None
    ) -> dict[str, float]:
        z = self._subsample(self._rows("embeddings", embeddings))
        pair = None
        if teacher is not None:
            online, target = teacher
            if online.shape != target.shape:
                raise ValueError(
                    f"teacher pair has shapes {tuple(online.shape)} (online) and "
                    f"{tuple(target.shape)} (target); pass both networks' embeddings of the "
                    "same inputs."
                )
            pair = self._rows("teacher online", online), self._rows("teacher target", target)
        n, d = z.shape
        metrics: dict[str, float] = {"step": float(step), "samples": float(n)}
        metrics["rankme"] = rankme(z, eps=self.rankme_eps)
        metrics["rankme_fraction"] = metrics["rankme"] / min(n, d)
        normalised = torch.nn.functional.normalize(z, dim=1)
        metrics["std_ratio"] = float(normalised.std(dim=0).mean()) * math.sqrt(d)
        metrics["sigreg"] = float(self.sigreg(_standardise(z)))
        if pair is not None:
            metrics["teacher_cosine"] = float(
                torch.nn.functional.cosine_similarity(*pair, dim=1).mean()
            )
        self.history.append(metrics)
        self._check(metrics, n, d)
        return metrics

    def _rows(self, name: str, value: Tensor) -> Tensor:
        if value.ndim < 2:
            raise ValueError(
                f"{name} must have shape (n, d) or (..., n, d), got {tuple(value.shape)}."
            )
        rows = value.detach().reshape(-1, value.shape[-1]).float()
        if rows.shape[0] < 2 or rows.shape[1] < 1:
            raise ValueError(
                f"{name} has {rows.shape[0]} samples of width {rows.shape[1]}; the gauges need "
                "at least 2 samples of width >= 1."
            )
        require_finite(name, rows, "the run has diverged before it could collapse.")
        return rows

    def _subsample(self, rows: Tensor) -> Tensor:
        if rows.shape[0] <= self.max_samples:
            return rows
        index = torch.linspace(0, rows.shape[0] - 1, self.max_samples, device=rows.device)
        return rows[index.long()]

    def _check(self, metrics: dict[str, float], n: int, d: int) -> None:
        limits = []
        if self.min_rankme_fraction is not None:
            # RankMe runs from 1 (a point) to min(n, d) (full rank): the floor is that
            # fraction of the way up, so it means the same for 16 dimensions as for 2048.
            full = min(n, d)
            floor = 1.0 + self.min_rankme_fraction * (full - 1)
            limits.append(
                (
                    "rankme",
                    metrics["rankme"] < floor,
                    f"below {floor:.3g} ({self.min_rankme_fraction:g} of the way from 1 to "
                    f"min(n, d) = {full})",
                )
            )
        if self.min_std_ratio is not None:
            limits.append(
                (
                    "std_ratio",
                    metrics["std_ratio"] < self.min_std_ratio,
                    f"below {self.min_std_ratio:g} (1 is isotropic, 0 a single point)",
                )
            )
        if self.max_sigreg is not None:
            limits.append(
                ("sigreg", metrics["sigreg"] > self.max_sigreg, f"above {self.max_sigreg:g}")
            )
        for name, crossed, bound in limits:
            if crossed and name not in self.collapsed and self.warn:
                warnings.warn(
                    f"collapse at step {int(metrics['step'])}: {name} = {metrics[name]:.4g} is "
                    f"{bound}. {_FIX}",
                    CollapseWarning,
                    stacklevel=4,
                )
            if crossed:
                self.collapsed.add(name)
            else:
                self.collapsed.discard(name)

    def state_dict(self) -> dict[str, Any]:
        """The history and the gauges past their threshold (for an exact resume)."""
        return {"history": [dict(row) for row in self.history], "collapsed": sorted(self.collapsed)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [dict(row) for row in state["history"]]
        self.collapsed = set(state["collapsed"])

    def __repr__(self) -> str:
        return (
            f"CollapseMonitor(every={self.every}, max_samples={self.max_samples}, "
            f"min_rankme_fraction={self.min_rankme_fraction}, "
            f"min_std_ratio={self.min_std_ratio}, max_sigreg={self.max_sigreg})"
        )


def _standardise(z: Tensor) -> Tensor:
    """Centre, and scale to unit *mean* variance (one scale for all dimensions, so the shape of
    the cloud, anisotropy included, is kept). A point stays a point (at the origin)."""
    centred = z - z.mean(dim=0)
    scale = centred.pow(2).mean().sqrt().clamp_min(1e-12)
    return centred / scale
