"""Closed-form ridge probes: R^2 that measures the features, not the head.

An MLP head fitted on a few thousand examples of 512-d features overfits, and its R^2 falls
below zero whether or not the features hold the target. A ridge regression cannot overfit
silently: it is fitted in closed form on standardised features, its penalty is chosen on a
held-out part of the *training* rows (split by group, e.g. by object, so views of one object
never sit on both sides), and it is refitted on every training row with that penalty. Test
rows are seen only by :meth:`RidgeProbe.predict`.

Relative transformations need one more step. The relative rotation ``q_i^-1 q_j`` is
*bilinear* in the two orientations, so no linear map of ``[z_i ; z_j]`` expresses it, even
for perfectly equivariant features. :class:`BilinearPairFeatures` projects each view's
embedding on its first ``k`` principal components (fitted on training views) and returns
``[p_i ; p_j ; vec(p_i p_j^T)]``: a ridge on these expresses any bilinear function of
features that hold the orientation linearly.

:func:`rotation_ridge_r2` runs both probes of the paper's equivariance table (individual
rotation from one view, relative rotation from a pair of views of one object) on per-view
features extracted once.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import einops
import torch
from torch import Tensor

from jepa_blocks._typing import Float, Int, typecheck
from jepa_blocks.actions import relative_rotation
from jepa_blocks.eval.metrics import r2_score
from jepa_blocks.eval.targets import absolute_rotation_target

__all__ = [
    "DEFAULT_PENALTIES",
    "RidgeProbe",
    "fit_ridge",
    "BilinearPairFeatures",
    "sample_view_pairs",
    "RotationR2",
    "rotation_ridge_r2",
]

#: Penalties tried, relative to the number of fitting rows (the penalty on the mean squared
#: error of standardised features): from nearly unregularised to nearly the mean predictor.
DEFAULT_PENALTIES: tuple[float, ...] = tuple(10.0**e for e in range(-6, 4))


def _check_rows(name: str, x: Tensor, rows: int | None = None) -> None:
    if x.dim() != 2:
        raise ValueError(f"{name} must be (rows, features), got shape {tuple(x.shape)}.")
    if rows is not None and x.shape[0] != rows:
        raise ValueError(
            f"{name} has {x.shape[0]} rows but the features have {rows}; pass one row per "
            "example."
        )
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf; the probe needs finite values.")


@dataclass
class RidgeProbe:
    """A fitted ridge regression on standardised features.

    Attributes:
        mean, scale: the feature standardisation (fitted on the training rows).
        weight: ``(features, outputs)``; bias: ``(outputs,)``.
        penalty: the chosen penalty (relative to the number of rows).
        val_r2: held-out R^2 of each tried penalty, in the order of ``penalties``.
        penalties: the penalties tried.
    """

    mean: Tensor
    scale: Tensor
    weight: Tensor
    bias: Tensor
    penalty: float
    val_r2: list[float]
    penalties: tuple[float, ...]

    def predict(self, x: Float[Tensor, "n f"]) -> Float[Tensor, "n o"]:
        """Predictions for feature rows ``x`` (any device), in float64 on the CPU."""
        _check_rows("x", x)
        if x.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"x has {x.shape[1]} features but the probe was fitted on {self.mean.shape[0]}."
            )
        return ((x.detach().double().cpu() - self.mean) / self.scale) @ self.weight + self.bias


#: Feature scales are floored at this fraction of the median feature's standard deviation.
SCALE_FLOOR = 1e-2


def _standardise(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-feature mean and scale. A nearly dead feature (a ReLU unit active on one row of
    40,000) would be blown up to unit variance, and on another row it fires 1,000x larger: a
    random ResNet's features chose the penalty from a held-out R^2 of -9 that way. So the
    scale is at least :data:`SCALE_FLOOR` times the median feature's: such features are left
    small instead of amplified. Constant features get scale 1 (zero after centring, no weight)
    when the median is 0 too."""
    mean = x.mean(0)
    std = x.std(0, correction=0)
    scale = torch.maximum(std, SCALE_FLOOR * std.median())
    return mean, torch.where(scale > 1e-12, scale, torch.ones_like(scale))


def _solve_path(
    x: Tensor, y: Tensor, penalties: Sequence[float]
) -> list[tuple[Tensor, Tensor]]:
    """Ridge weights for every penalty from one eigendecomposition of ``x^T x`` (x, y in
    float64, x standardised, y not centred). Returns ``(weight, bias)`` per penalty."""
    n = x.shape[0]
    y_mean = y.mean(0)
    gram = x.T @ x
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)
    eigenvalues = eigenvalues.clamp_min(0.0)
    projected = eigenvectors.T @ (x.T @ (y - y_mean))
    # Directions the rows do not span (more features than rows, constant or collinear
    # features) have eigenvalue ~0: with no penalty their weight is 0 (the minimum-norm
    # least-squares solution, as lstsq), not 0 / 0.
    tolerance = eigenvalues.max().clamp_min(1.0) * gram.shape[0] * torch.finfo(x.dtype).eps
    # x is centred, so the intercept is y's mean and does not interact with the penalty.
    solutions = []
    for penalty in penalties:
        denominator = eigenvalues + penalty * n
        shrink = torch.where(
            denominator > tolerance, 1.0 / denominator.clamp_min(tolerance), 0.0
        )
        weight = eigenvectors @ (shrink[:, None] * projected)
        solutions.append((weight, y_mean))
    return solutions


@typecheck
def fit_ridge(
    x: Float[Tensor, "n f"],
    y: Float[Tensor, "n o"],
    *,
    groups: Int[Tensor, " n"] | None = None,
    penalties: Sequence[float] = DEFAULT_PENALTIES,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> RidgeProbe:
    """Fit a ridge regression whose penalty is chosen on held-out training rows.

    The rows are split into a fitting part and a held-out part (``val_fraction`` of the
    *groups*, drawn with ``seed``; every row is its own group when ``groups`` is None). Each
    penalty ``p`` in ``penalties`` solves ``min ||x_s w + b - y||^2 + p n ||w||^2`` on the
    fitting part (``x_s``: features standardised with the fitting part's statistics); the one
    with the best held-out R^2 is refitted on all rows. Computed in float64 in closed form.

    Args:
        x: training features, one row per example.
        y: training targets.
        groups: a group id per row (e.g. the object a view shows); the held-out split never
            separates a group.
        penalties: candidate penalties, relative to the number of rows.
        val_fraction: fraction of the groups held out to choose the penalty, in ``(0, 1)``.
        seed: seed of the held-out split.

    Returns:
        :class:`RidgeProbe`; ``penalty`` 0 gives the minimum-norm least-squares solution.

    Raises:
        ValueError: fewer than 4 rows, mismatched rows, non-finite values, an empty penalty
            list or a negative penalty, ``val_fraction`` outside ``(0, 1)``, fewer than 2
            groups, or a held-out split with fewer than 2 held-out or 2 fitting rows.
    """
    _check_rows("x", x)
    _check_rows("y", y, x.shape[0])
    n = x.shape[0]
    if n < 4:
        raise ValueError(f"ridge needs at least 4 training rows, got {n}.")
    if not penalties or any(p < 0 for p in penalties):
        raise ValueError(f"penalties must be a non-empty list of values >= 0, got {penalties}.")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    if groups is None:
        groups = torch.arange(n)
    elif groups.shape[0] != n:
        raise ValueError(f"groups has {groups.shape[0]} entries for {n} rows; pass one per row.")
    groups = groups.cpu()  # the probe is fitted on the CPU in float64, whatever the input
    unique = torch.unique(groups)
    if unique.numel() < 2:
        raise ValueError(
            "the rows form a single group, so no held-out group is left to choose the penalty; "
            "pass one group id per object (or groups=None)."
        )
    generator = torch.Generator().manual_seed(seed)
    order = unique[torch.randperm(unique.numel(), generator=generator)]
    n_val = min(unique.numel() - 1, max(1, round(val_fraction * unique.numel())))
    held_out = torch.isin(groups, order[:n_val])
    n_held_out = int(held_out.sum())
    if n_held_out < 2 or n - n_held_out < 2:
        raise ValueError(
            f"the held-out split has {n_held_out} of {n} rows in {n_val} of {unique.numel()} "
            "groups; choosing the penalty needs at least 2 held-out and 2 fitting rows: pass "
            "more rows or groups, or another val_fraction."
        )

    x64, y64 = x.detach().double().cpu(), y.detach().double().cpu()
    penalties = tuple(float(p) for p in penalties)
    fit_x, fit_y = x64[~held_out], y64[~held_out]
    mean, scale = _standardise(fit_x)
    val_r2 = []
    for weight, bias in _solve_path((fit_x - mean) / scale, fit_y, penalties):
        val_pred = ((x64[held_out] - mean) / scale) @ weight + bias
        val_r2.append(r2_score(val_pred, y64[held_out]))
    # Ties (e.g. every penalty scoring 0 on constant held-out targets) go to the largest
    # penalty: the simplest model the held-out rows cannot tell apart.
    best = max(range(len(penalties)), key=lambda i: (val_r2[i], penalties[i]))
    mean, scale = _standardise(x64)
    ((weight, bias),) = _solve_path((x64 - mean) / scale, y64, (penalties[best],))
    return RidgeProbe(mean, scale, weight, bias, penalties[best], val_r2, penalties)


class BilinearPairFeatures:
    """``[p_i ; p_j ; vec(p_i p_j^T)]`` from the top-``k`` principal components of each view.

    Fitted once on training view embeddings (PCA by SVD of the centred rows, each component
    scaled to unit variance), then applied to any pair of views. Output width ``2k + k^2``.
    Components with (numerically) zero variance, when the embeddings span fewer than ``k``
    directions, project to 0 rather than to amplified rounding noise.

    With ``groups`` (the object each row shows), the directions are those of the largest
    *within-object* variation (PCA of each row minus its object's mean): the view-dependent
    directions, which a plain PCA misses when objects differ far more than their views do.
    Rows are still projected whole (centred by the global mean), so no test object's other
    views are needed to featurise a pair.

    Args:
        z: ``(views, dv)`` training view embeddings.
        k: principal components kept per view, in ``[1, min(views, dv)]``.
        groups: optional group (object) id per row of ``z``.

    Raises:
        ValueError: ``k`` outside that range, or embeddings that are not finite 2-d rows.
    """

    def __init__(
        self, z: Float[Tensor, "v dv"], *, k: int = 16, groups: Int[Tensor, " v"] | None = None
    ) -> None:
        _check_rows("z", z)
        if groups is not None and groups.shape != (z.shape[0],):
            raise ValueError(
                f"groups has shape {tuple(groups.shape)} for {z.shape[0]} rows; pass one id "
                "per row."
            )
        limit = min(z.shape)
        if not isinstance(k, int) or not 1 <= k <= limit:
            raise ValueError(
                f"k must be an int in [1, {limit}] (at most min(views, dv) of the "
                f"{tuple(z.shape)} embeddings), got {k!r}; lower k."
            )
        z64 = z.detach().double().cpu()
        self.mean = z64.mean(0)
        centred = z64 - self.mean
        if groups is not None:
            _, inverse, counts = torch.unique(groups.cpu(), return_inverse=True, return_counts=True)
            sums = torch.zeros(counts.numel(), z64.shape[1], dtype=z64.dtype)
            sums.index_add_(0, inverse, z64)
            centred = z64 - (sums / counts[:, None])[inverse]
        _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
        std = singular[:k] / max(1, z64.shape[0] - 1) ** 0.5
        alive = singular[:k] > singular[0].clamp_min(1e-300) * 1e-10
        inverse_std = torch.where(alive, 1.0 / std.clamp_min(1e-300), 0.0)
        self.components = vh[:k].T * inverse_std  # (dv, k): unit-variance scores
        self.k = k

    @property
    def dim(self) -> int:
        """Output width, ``2k + k^2``."""
        return 2 * self.k + self.k * self.k

    def project(self, z: Float[Tensor, "n dv"]) -> Float[Tensor, "n k"]:
        """The ``k`` unit-variance principal-component scores of each row (float64, CPU)."""
        _check_rows("z", z)
        if z.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"z has {z.shape[1]} features but the PCA was fitted on {self.mean.shape[0]}; "
                "pass embeddings of the same encoder."
            )
        return (z.detach().double().cpu() - self.mean) @ self.components

    def __call__(
        self, z_i: Float[Tensor, "n dv"], z_j: Float[Tensor, "n dv"]
    ) -> Float[Tensor, "n pair"]:
        """``[p_i ; p_j ; vec(p_i p_j^T)]`` per pair of rows (float64, CPU)."""
        if z_i.shape != z_j.shape:
            raise ValueError(
                f"z_i has shape {tuple(z_i.shape)} but z_j has {tuple(z_j.shape)}; pass one "
                "row of each view per pair."
            )
        p_i, p_j = self.project(z_i), self.project(z_j)
        outer = einops.rearrange(p_i[:, :, None] * p_j[:, None, :], "n ki kj -> n (ki kj)")
        return torch.cat((p_i, p_j, outer), dim=1)


@typecheck
def sample_view_pairs(
    objects: Int[Tensor, " v"], num_pairs: int, *, seed: int = 0
) -> tuple[Int[Tensor, " p"], Int[Tensor, " p"]]:
    """``num_pairs`` ordered pairs ``(i, j)``, ``i != j``, of rows showing the same object.

    Each pair draws an object uniformly among those with at least 2 rows, then two distinct
    rows of it, with replacement across pairs. Deterministic for a seed.

    Returns:
        ``(i, j)``, row indices into ``objects``.

    Raises:
        ValueError: ``num_pairs`` < 1, or no object has two rows.
    """
    if not isinstance(num_pairs, int) or num_pairs < 1:
        raise ValueError(f"num_pairs must be an int >= 1, got {num_pairs!r}.")
    objects = objects.cpu()
    order = torch.argsort(objects, stable=True)
    _, counts = torch.unique_consecutive(objects[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    usable = counts >= 2
    if not usable.any():
        raise ValueError(
            f"no object has two rows among {objects.numel()} rows, so no pair of views of one "
            "object exists; pass several views per object."
        )
    starts, counts = starts[usable], counts[usable]
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, counts.numel(), (num_pairs,), generator=generator)
    size = counts[pick]
    first = (torch.rand(num_pairs, generator=generator) * size).long().clamp_max(size - 1)
    # The second row is drawn among the other size - 1 rows: shift past the first.
    second = (torch.rand(num_pairs, generator=generator) * (size - 1)).long()
    second = second.clamp_max(size - 2) + (second >= first).long()
    base = starts[pick]
    return order[base + first], order[base + second]


@dataclass
class RotationR2:
    """Ridge R^2 of the paper's two rotation probes (test rows only).

    Attributes:
        individual: absolute orientation quaternion from one view's embedding.
        relative: relative rotation quaternion ``q_i^-1 q_j`` from a pair of views (bilinear
            features).
        penalty_individual, penalty_relative: the penalties chosen on held-out training objects.
    """

    individual: float
    relative: float
    penalty_individual: float
    penalty_relative: float


def _check_views(split: str, z: Tensor, latents: Tensor, objects: Tensor) -> None:
    _check_rows(f"z_{split}", z)
    _check_rows(f"latents_{split}", latents, z.shape[0])
    if objects.shape != (z.shape[0],):
        raise ValueError(
            f"objects_{split} has shape {tuple(objects.shape)} for {z.shape[0]} views; pass "
            "one object id per view."
        )
    if latents.shape[1] < 3:
        raise ValueError(
            f"latents_{split} have {latents.shape[1]} entries per view, need >= 3 (Euler x, y, "
            "z first, as 3DIEBench)."
        )


@typecheck
def rotation_ridge_r2(
    z_train: Float[Tensor, "v dv"],
    latents_train: Float[Tensor, "v l"],
    objects_train: Int[Tensor, " v"],
    z_test: Float[Tensor, "w dv"],
    latents_test: Float[Tensor, "w l"],
    objects_test: Int[Tensor, " w"],
    *,
    num_pairs: int = 20_000,
    k: int = 16,
    penalties: Sequence[float] = DEFAULT_PENALTIES,
    seed: int = 0,
) -> RotationR2:
    """Individual and relative rotation R^2 of per-view embeddings, by ridge.

    Rows are views; ``latents`` start with the extrinsic xyz Euler angles (3DIEBench layout)
    and ``objects`` name the object each view shows. The individual probe regresses each
    view's orientation quaternion from its embedding on every training view; the relative
    probe regresses ``q_i^-1 q_j`` (not canonicalised, like the dataset's actions, so that it
    stays bilinear in the two orientations) from :class:`BilinearPairFeatures` of
    ``num_pairs`` pairs of views of one object. Penalties are chosen on held-out training
    objects; the test views are only predicted (``num_pairs`` test pairs, drawn the same way).
    (The pair features' PCA is fitted on every training view, the held-out objects included,
    so the penalty choice sees slightly more than its fitting part; the test views never.)

    Args:
        z_train, latents_train, objects_train: training views: embeddings, latents (Euler
            xyz first) and object ids.
        z_test, latents_test, objects_test: the test views, the same way.
        num_pairs: pairs of views drawn per split for the relative probe.
        k: principal components per view of the bilinear pair features, in
            ``[1, min(training views, dv)]``.
        penalties: candidate ridge penalties (see :func:`fit_ridge`).
        seed: seeds the penalty split and the pair draws.

    Raises:
        ValueError: non-finite or mismatched inputs, fewer than 3 latent entries, ``k`` out of
            range, ``num_pairs`` < 1, objects without two views, or anything
            :func:`fit_ridge` rejects (e.g. a single training object).
    """
    _check_views("train", z_train, latents_train, objects_train)
    _check_views("test", z_test, latents_test, objects_test)
    if z_test.shape[1] != z_train.shape[1]:
        raise ValueError(
            f"z_train has {z_train.shape[1]} features but z_test has {z_test.shape[1]}; "
            "extract both splits with the same encoder."
        )
    q_train = absolute_rotation_target(latents_train.double().cpu())
    q_test = absolute_rotation_target(latents_test.double().cpu())
    individual = fit_ridge(z_train, q_train, groups=objects_train, penalties=penalties, seed=seed)
    r2_individual = r2_score(individual.predict(z_test), q_test)

    pairs = BilinearPairFeatures(z_train, k=k, groups=objects_train)

    def pair_data(z: Tensor, q: Tensor, objects: Tensor, pair_seed: int) -> tuple[Tensor, ...]:
        i, j = sample_view_pairs(objects, num_pairs, seed=pair_seed)
        target = relative_rotation(torch.stack((q[i], q[j]), dim=1))[:, 0]
        return pairs(z[i], z[j]), target, objects.cpu()[i]

    x_pair, y_pair, g_pair = pair_data(z_train, q_train, objects_train, seed + 1)
    relative = fit_ridge(x_pair, y_pair, groups=g_pair, penalties=penalties, seed=seed)
    x_test, y_test, _ = pair_data(z_test, q_test, objects_test, seed + 2)
    r2_relative = r2_score(relative.predict(x_test), y_test)
    return RotationR2(r2_individual, r2_relative, individual.penalty, relative.penalty)
