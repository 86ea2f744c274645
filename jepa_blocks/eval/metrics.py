"""Metrics on frozen features: R^2, top-1 accuracy, RankMe and kNN top-1.

seq-JEPA reports invariance as linear-probe top-1 on z_AGG, equivariance as the R^2 of a
regressor on encoder outputs (spec §4.1), and two label-free diagnostics are cheap to add:
weighted kNN top-1 (the InstDisc / DINO protocol) and RankMe (Garrido et al. 2023), the
effective rank of an embedding matrix. They are pure functions of tensors, so probes, the
example trainer and tests share one definition; accuracies are fractions in ``[0, 1]``.

Shape agreements between two arguments (rows of features and labels, pred and target) are
checked twice: by the jaxtyping annotations when ``JEPA_BLOCKS_TYPECHECK=1`` and by an explicit
``ValueError`` naming both shapes otherwise.
"""

import math

import torch
import torch.nn.functional as F

from jepa_blocks._typing import Float, Int, Tensor, typecheck

__all__ = ["r2_score", "top1_accuracy", "rankme", "knn_top1"]


def _require_finite(name: str, value: Tensor) -> None:
    if not bool(torch.isfinite(value).all()):
        raise ValueError(
            f"{name} contains NaN or Inf values; clean them (e.g. drop the affected rows) "
            "before computing metrics."
        )


def _require_labels(name: str, labels: Tensor) -> None:
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(
            f"{name} contains negative labels (min {int(labels.min())}); class labels must be "
            "integers in [0, num_classes)."
        )


@typecheck
def r2_score(pred: Float[Tensor, " b *p"], target: Float[Tensor, " b *p"]) -> float:
    """Coefficient of determination, uniformly averaged over output dimensions.

    Matches ``sklearn.metrics.r2_score(target, pred)`` (``multioutput="uniform_average"``,
    ``force_finite=True``): per output dimension ``1 - SS_res / SS_tot``, then the mean. A
    dimension whose target is constant scores 1.0 if it is predicted exactly and 0.0
    otherwise. Constant dimensions are detected as ``max == min`` rather than sklearn's
    ``SS_tot == 0``, which the rounding of a floating-point mean can miss (sklearn would then
    return a huge negative score for that dimension). Computed in float64.

    Args:
        pred: predictions, one row per sample; trailing axes are flattened into outputs.
        target: ground truth of the same shape.

    Returns:
        R^2 in ``(-inf, 1]``; 1 is a perfect fit, 0 is the constant mean predictor.

    Raises:
        ValueError: shapes differ, fewer than 2 samples, or non-finite values.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pred has shape {tuple(pred.shape)} but target has shape {tuple(target.shape)}; "
            "pass one prediction per target value."
        )
    if pred.shape[0] < 2:
        raise ValueError(
            f"r2_score needs at least 2 samples, got {pred.shape[0]}; R^2 is undefined for one."
        )
    _require_finite("pred", pred)
    _require_finite("target", target)
    y_pred = pred.detach().reshape(pred.shape[0], -1).double()
    y_true = target.detach().reshape(target.shape[0], -1).double()
    ss_res = (y_true - y_pred).square().sum(0)
    ss_tot = (y_true - y_true.mean(0)).square().sum(0)
    constant = y_true.amax(0) == y_true.amin(0)
    perfect = ss_res == 0
    scores = torch.where(
        constant,
        perfect.double(),
        1.0 - ss_res / torch.where(constant, torch.ones_like(ss_tot), ss_tot),
    )
    return float(scores.mean())


@typecheck
def top1_accuracy(logits: Float[Tensor, "b classes"], labels: Int[Tensor, " b"]) -> float:
    """Fraction of rows whose arg-max logit is the label (ties go to the lowest class).

    Raises:
        ValueError: row counts differ, no rows, or a label outside ``[0, classes)``.
    """
    if logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"logits has {logits.shape[0]} rows but labels has {labels.shape[0]}; pass one "
            "label per row of logits."
        )
    if labels.shape[0] == 0:
        raise ValueError("top1_accuracy got no samples; pass at least one row.")
    _require_labels("labels", labels)
    if int(labels.max()) >= logits.shape[1]:
        raise ValueError(
            f"labels go up to {int(labels.max())} but logits have only {logits.shape[1]} "
            "classes; build the head with num_classes > max label."
        )
    correct = (logits.argmax(dim=1) == labels.to(logits.device)).sum()
    return float(correct) / labels.shape[0]


@typecheck
def rankme(embeddings: Float[Tensor, "b d"], eps: float = 1e-7) -> float:
    """RankMe (Garrido et al., ICML 2023): the exponential of the entropy of the spectrum.

    With singular values ``s`` of the (uncentred) embedding matrix,
    ``p_k = s_k / ||s||_1 + eps`` and ``RankMe = exp(-sum_k p_k log p_k)``, a smooth effective
    rank in ``[1, min(b, d)]`` (up to ``eps``). Computed in float64. An all-zero matrix has
    rank 0 and returns 0.0 rather than dividing by zero, so a collapsed encoder is reported,
    not crashed on.

    Raises:
        ValueError: no rows, non-finite values, or ``eps`` not in ``[0, 1)``.
    """
    if embeddings.shape[0] == 0 or embeddings.shape[1] == 0:
        raise ValueError(f"rankme got an empty matrix {tuple(embeddings.shape)}; pass (b, d).")
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}; the paper uses 1e-7.")
    _require_finite("embeddings", embeddings)
    singular = torch.linalg.svdvals(embeddings.detach().double())
    total = singular.sum()
    if float(total) == 0.0:
        return 0.0
    p = singular / total + eps
    # entr(0) = 0, so eps = 0 is exact on rank-deficient matrices instead of 0 * log 0 = nan.
    return math.exp(float(torch.special.entr(p).sum()))


@typecheck
def knn_top1(
    train_feats: Float[Tensor, "b_train d"],
    train_labels: Int[Tensor, " b_train"],
    test_feats: Float[Tensor, "b_test d"],
    test_labels: Int[Tensor, " b_test"],
    *,
    k: int = 20,
    temperature: float = 0.07,
    weighted: bool = True,
    num_classes: int | None = None,
    chunk: int = 1024,
) -> float:
    """kNN top-1 on cosine similarity (Wu et al. 2018 / DINO's weighted vote).

    Each test row votes with its ``k`` most cosine-similar training rows; a neighbour at
    similarity ``s`` adds ``exp(s / temperature)`` to its class (``weighted=True``) or 1 (plain
    majority vote). The class with the most votes wins; ties go to the lowest class index.
    Test rows are processed ``chunk`` at a time, so memory is ``chunk * b_train`` floats.

    Args:
        train_feats, train_labels: the memory bank.
        test_feats, test_labels: the queries and their ground truth.
        k: neighbours per query (DINO uses 20).
        temperature: softmax temperature of the weighted vote (0.07 in InstDisc / DINO).
        weighted: similarity-weighted vote; ``False`` gives an unweighted majority vote.
        num_classes: number of classes; default ``max(train_labels) + 1``.
        chunk: test rows per similarity block.

    Returns:
        Top-1 accuracy as a fraction in ``[0, 1]``.

    Raises:
        ValueError: row counts of features and labels differ, widths differ, empty inputs,
            ``k`` outside ``[1, b_train]``, non-positive ``temperature`` or ``chunk``, negative
            labels, or ``num_classes`` not above the largest training label.
    """
    for name, feats, labels in (
        ("train", train_feats, train_labels),
        ("test", test_feats, test_labels),
    ):
        if feats.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{name}_feats has {feats.shape[0]} rows but {name}_labels has "
                f"{labels.shape[0]}; pass one label per feature row."
            )
        if feats.shape[0] == 0:
            raise ValueError(f"{name}_feats is empty; pass at least one row.")
        _require_labels(f"{name}_labels", labels)
        _require_finite(f"{name}_feats", feats)
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(
            f"train_feats has width {train_feats.shape[1]} but test_feats has "
            f"{test_feats.shape[1]}; extract both with the same model and M_val."
        )
    if not 1 <= k <= train_feats.shape[0]:
        raise ValueError(
            f"k {k} must be in [1, {train_feats.shape[0]}] (the number of training rows); "
            "lower k or pass more training rows."
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}.")
    if chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk}.")
    max_label = int(train_labels.max())
    if num_classes is None:
        num_classes = max_label + 1
    elif num_classes < max_label + 1:
        raise ValueError(
            f"num_classes {num_classes} is smaller than the largest training label "
            f"{max_label} + 1; pass num_classes >= {max_label + 1}."
        )
    device = train_feats.device
    bank = F.normalize(train_feats.detach().float(), dim=1)
    bank_labels = train_labels.to(device)
    queries_all = F.normalize(test_feats.detach().float().to(device), dim=1)
    truth_all = test_labels.to(device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    for start in range(0, queries_all.shape[0], chunk):
        queries = queries_all[start : start + chunk]
        similarity = queries @ bank.T  # (chunk, b_train)
        top_sim, top_idx = similarity.topk(k, dim=1)
        neighbour_labels = bank_labels[top_idx]
        weights = (top_sim / temperature).exp() if weighted else torch.ones_like(top_sim)
        votes = torch.zeros(queries.shape[0], num_classes, device=device)
        votes.scatter_add_(1, neighbour_labels, weights)
        correct += (votes.argmax(dim=1) == truth_all[start : start + chunk]).sum()
    return float(correct) / queries_all.shape[0]
