"""Heads trained on frozen features, and the full seq-JEPA evaluation suite built on them.

The paper's protocol (spec §4.1, §7.1 #10) trains every head with Adam at its default
hyperparameters (lr 1e-3), batch 256: 300 epochs for the linear classifier and the MLP
regressors, 50 epochs for linear regressors. Those are the defaults here; everything is a
keyword so a quick run can pass a few epochs. The features are frozen tensors (extract them
with :mod:`jepa_blocks.eval.features`), so no backbone runs here and BatchNorm statistics of
the model cannot drift, unlike the official code's probe loop (spec §7.4.3).

Targets are regressed as given, not standardised, as in the paper and the official code: the
MSE loss therefore weighs output dimensions by their variance, while the reported R^2 averages
dimensions uniformly (sklearn's default).

Runs are deterministic for a seed: one ``torch.Generator`` seeds the head's initialisation
(PyTorch's default ``nn.Linear`` scheme, drawn on the CPU so every device starts from the same
weights) and another the per-epoch shuffles; nothing touches the global RNG.

:func:`evaluate_sequence_model` runs the whole protocol (one extraction pass per split, then
every head and metric) and returns a JSON-ready dict; given per-view data and an untrained
copy of the model, it adds the ridge rotation probes and puts every R^2 beside its floors.
"""

import functools
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from jepa_blocks._typing import Float, Int, Tensor, typecheck
from jepa_blocks.eval.features import (
    PathTargetFn,
    PooledPixels,
    SequenceFeatures,
    SequenceModel,
    ViewSource,
    _model_device,
    absolute_rotation_target,
    additive_path_target,
    extract_sequence_features,
    extract_view_features,
    rotation_path_target,
)
from jepa_blocks.eval.metrics import knn_top1, r2_score, rankme, top1_accuracy
from jepa_blocks.eval.ridge import RotationR2, rotation_ridge_r2

__all__ = [
    "ProbeResult",
    "RegressionResult",
    "make_mlp_head",
    "fit_linear_probe",
    "fit_regressor",
    "evaluate_sequence_model",
]

logger = logging.getLogger(__name__)

_PREDICT_CHUNK = 8192


@dataclass
class ProbeResult:
    """A trained linear classifier.

    Attributes:
        top1: test top-1 accuracy, a fraction in ``[0, 1]``.
        head: the trained ``nn.Linear`` (in eval mode, on the training device).
        history: mean training cross-entropy of each epoch.
    """

    top1: float
    head: nn.Module
    history: list[float] = field(default_factory=list)


@dataclass
class RegressionResult:
    """A trained regressor.

    Attributes:
        r2: test R^2, uniformly averaged over target dimensions (sklearn's default).
        head: the trained head (in eval mode, on the training device).
        history: mean training MSE of each epoch.
    """

    r2: float
    head: nn.Module
    history: list[float] = field(default_factory=list)


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


def _check_common(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
) -> None:
    for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{name}_x has {x.shape[0]} rows but {name}_y has {y.shape[0]}; pass one "
                "target per feature row (extract features and targets from the same loader)."
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
            f"train_x has width {train_x.shape[1]} but test_x has {test_x.shape[1]}; extract "
            "both splits with the same model and settings."
        )
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}; the paper uses Adam's default 1e-3.")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}.")


def _resolve_device(device: torch.device | str | None, like: Tensor) -> torch.device:
    return like.device if device is None else torch.device(device)


def _train_head(
    head: nn.Module,
    x: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    generator: torch.Generator,
    progress: bool,
    desc: str,
) -> list[float]:
    """Mini-batch Adam over shuffled rows; one host sync per epoch (the logged loss)."""
    optimizer = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    rows = x.shape[0]
    history: list[float] = []
    head.train()
    bar = tqdm(range(epochs), desc=desc, disable=None if progress else True, leave=False)
    for _ in bar:
        order = torch.randperm(rows, generator=generator).to(x.device, non_blocking=True)
        total = torch.zeros((), device=x.device)
        for start in range(0, rows, batch_size):
            idx = order[start : start + batch_size]
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


@typecheck
def fit_linear_probe(
    train_x: Float[Tensor, "b_train d"],
    train_y: Int[Tensor, " b_train"],
    test_x: Float[Tensor, "b_test d"],
    test_y: Int[Tensor, " b_test"],
    *,
    num_classes: int,
    epochs: int = 300,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> ProbeResult:
    """Train ``nn.Linear(d, num_classes)`` with cross-entropy on frozen features; test top-1.

    Paper protocol (spec §4.1): Adam with default hyperparameters, batch 256, 300 epochs.

    Args:
        train_x, train_y: training features and integer class labels.
        test_x, test_y: held-out features and labels.
        num_classes: output width; must exceed every label.
        epochs, batch_size, lr, weight_decay: Adam training settings (``weight_decay`` is
            Adam's L2 term; 0 in the paper).
        seed: seeds the head's initialisation and the shuffles.
        device: where to train; default the device of ``train_x``.
        progress: show a tqdm bar over epochs (hidden when stderr is not a terminal).

    Returns:
        :class:`ProbeResult` with test top-1 as a fraction in ``[0, 1]``.

    Raises:
        ValueError: features and labels of different lengths, different feature widths,
            empty or non-finite features, negative labels, ``num_classes`` not above the
            largest label, or non-positive training settings.
    """
    _check_common(
        train_x, train_y, test_x, test_y,
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
    )
    min_label = min(int(train_y.min()), int(test_y.min()))
    max_label = max(int(train_y.max()), int(test_y.max()))
    if min_label < 0:
        raise ValueError(
            f"labels must be >= 0, got {min_label}; map classes to integers in "
            "[0, num_classes)."
        )
    if num_classes < max_label + 1:
        raise ValueError(
            f"num_classes {num_classes} is smaller than max label {max_label} + 1; pass "
            f"num_classes >= {max_label + 1}."
        )
    target_device = _resolve_device(device, train_x)
    # Built on "meta" so the default init never draws from the global RNG.
    head = nn.Linear(train_x.shape[1], num_classes, device="meta").to_empty(device="cpu")
    _seeded_init_(head, torch.Generator().manual_seed(seed))
    head = head.to(target_device)
    history = _train_head(
        head,
        train_x.detach().float().to(target_device),
        train_y.to(target_device, torch.long),
        F.cross_entropy,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        generator=torch.Generator().manual_seed(seed + 1),
        progress=progress,
        desc="linear probe",
    )
    logits = _predict(head, test_x.detach().float().to(target_device))
    return ProbeResult(top1_accuracy(logits, test_y.to(target_device)), head, history)


@typecheck
def fit_regressor(
    train_x: Float[Tensor, "b_train d"],
    train_y: Float[Tensor, " b_train *p"],
    test_x: Float[Tensor, "b_test d"],
    test_y: Float[Tensor, " b_test *p"],
    *,
    hidden: Sequence[int] = (1024, 1024),
    epochs: int = 300,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> RegressionResult:
    """Train an MSE regressor on frozen features; report test R^2 (sklearn, uniform average).

    The default head is the official code's MLP ``Linear(d, 1024) -> ReLU -> Linear(1024,
    1024) -> ReLU -> Linear(1024, p)``; ``hidden=()`` gives a linear regressor. The paper
    trains MLP regressors for 300 epochs and linear ones for 50 (pass ``epochs=50`` with
    ``hidden=()``), both with Adam's defaults and batch 256. Targets are not standardised.

    Args:
        train_x, train_y: training features and float targets (trailing axes are outputs).
        test_x, test_y: held-out features and targets.
        hidden: hidden widths of the MLP; ``()`` for a linear head.
        epochs, batch_size, lr, weight_decay, seed, device, progress: as in
            :func:`fit_linear_probe`.

    Returns:
        :class:`RegressionResult` with the test R^2.

    Raises:
        ValueError: features and targets of different lengths, different feature or target
            widths, fewer than 2 test rows, non-finite inputs, bad widths or settings.
    """
    _check_common(
        train_x, train_y, test_x, test_y,
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
    )
    if train_y.shape[1:] != test_y.shape[1:]:
        raise ValueError(
            f"train_y has target shape {tuple(train_y.shape[1:])} but test_y has "
            f"{tuple(test_y.shape[1:])}; regress the same quantity on both splits."
        )
    for name, y in (("train_y", train_y), ("test_y", test_y)):
        if not bool(torch.isfinite(y).all()):
            raise ValueError(f"{name} contains NaN or Inf values; clean the targets first.")
    if test_x.shape[0] < 2:
        raise ValueError(f"test_x has {test_x.shape[0]} row; R^2 needs at least 2 test rows.")
    target_device = _resolve_device(device, train_x)
    dim_out = math.prod(train_y.shape[1:])
    head = make_mlp_head(train_x.shape[1], dim_out, tuple(hidden), device="meta")
    head = head.to_empty(device="cpu")
    _seeded_init_(head, torch.Generator().manual_seed(seed))
    head = head.to(target_device)
    history = _train_head(
        head,
        train_x.detach().float().to(target_device),
        train_y.detach().float().reshape(train_y.shape[0], dim_out).to(target_device),
        F.mse_loss,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        generator=torch.Generator().manual_seed(seed + 1),
        progress=progress,
        desc="regressor" if hidden else "linear regressor",
    )
    pred = _predict(head, test_x.detach().float().to(target_device))
    target = test_y.detach().float().reshape(test_y.shape[0], dim_out).to(target_device)
    return RegressionResult(r2_score(pred, target), head, history)


# ----------------------------------------------------------------------------- protocol

# action kind -> (name in result keys, relative-transform head, path-integration head)
_ACTION_KINDS: dict[str, tuple[str, str, str]] = {
    "rot": ("rotation", "mlp", "mlp"),
    "pos": ("position", "linear", "linear"),
    "aug": ("augmentation", "mlp", "mlp"),
}


def evaluate_sequence_model(
    model: SequenceModel,
    train_loader: Iterable[Mapping[str, Any]],
    test_loader: Iterable[Mapping[str, Any]],
    *,
    m_vals: Iterable[int] = range(1, 9),
    action_kind: Literal["rot", "pos", "aug"] = "rot",
    num_classes: int | None = None,
    path_ms: Iterable[int] | Literal["all"] = "all",
    path_target_fn: PathTargetFn | None = None,
    relative_head: Literal["mlp", "linear"] | None = None,
    path_head: Literal["mlp", "linear"] | None = None,
    canonical: bool = False,
    epochs_linear: int = 300,
    epochs_mlp: int = 300,
    epochs_linear_regressor: int = 50,
    batch_size: int = 256,
    lr: float = 1e-3,
    hidden: Sequence[int] = (1024, 1024),
    knn_k: int = 20,
    knn_temperature: float = 0.07,
    view_data: tuple[ViewSource, ViewSource] | None = None,
    floor_model: SequenceModel | None = None,
    mlp_floors: bool = True,
    pixel_floor: bool = True,
    pixel_size: int = 16,
    ridge_pairs: int = 20_000,
    ridge_k: int = 16,
    num_workers: int = 0,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The seq-JEPA evaluation suite on frozen features (spec §4.1, §4.3, §6.4), with floors.

    One extraction pass per loader (model in eval mode, restored afterwards), then:

    - ``top1_agg``: ``{M_val: top-1}``, one linear probe per M_val on z_AGG (§4.3);
    - ``top1_encoder``: a linear probe on the encoder output z_1 (Table 12's z_res);
    - ``r2_rel_<kind>``: a regressor on ``[z_1 ; z_2]`` -> a_1 (MLP for ``rot``/``aug``,
      linear for ``pos``, as in the paper);
    - ``r2_indiv_rotation`` (``rot`` only): an MLP on z_1 -> view 1's absolute quaternion,
      ``None`` when batches carry no ``latents``;
    - ``path_integration_r2``: ``{M: R^2}`` of a head on ``[z_AGG(views 1..M) ; a_M]`` -> the
      transform from view 1 to view M + 1 (the raw a_M is fed), with the ablations
      ``path_integration_r2_zero_actions`` / ``..._zero_vision`` (§6.4; empty if skipped);
    - ``knn_top1``: weighted kNN top-1 on z_AGG at the largest M_val (``None`` if no M_val);
    - ``rankme``: RankMe of the training split's z_1.

    An R^2 alone does not say whether the model learned something: a random network, or the
    pixels themselves, may hold the target already. So, on request, each R^2 comes with its
    floors, the same probe on the same data with other features:

    - with ``floor_model`` (the same architecture at random initialisation, e.g. built from
      the run's config and seed) and ``mlp_floors``: ``r2_rel_<kind>_floor``,
      ``r2_indiv_rotation_floor`` (``rot``) and ``path_integration_r2_floor`` (``{M: R^2}``
      at the same lengths), the MLP heads above fitted on the floor model's features. The
      ablations and the classification probes get no floor (they are controls already, and
      would double the heads' time);
    - with ``view_data`` (``rot`` only; per-view train and test data carrying latents and
      object ids, anything :func:`~jepa_blocks.eval.features.extract_view_features` takes):
      closed-form ridge probes (:func:`~jepa_blocks.eval.ridge.rotation_ridge_r2`) fitted on
      every training view and ``ridge_pairs`` pairs, which do not overfit like the MLP heads:
      ``ridge_r2_indiv_rotation`` and ``ridge_r2_rel_rotation``; with ``floor_model`` also
      ``ridge_r2_indiv_rotation_floor`` and ``ridge_r2_rel_rotation_floor``; with
      ``pixel_floor`` also ``ridge_r2_indiv_rotation_pixels`` and
      ``ridge_r2_rel_rotation_pixels``, the ridge on the normalised pixels average-pooled to
      at most ``pixel_size`` x ``pixel_size``
      (:class:`~jepa_blocks.eval.features.PooledPixels`; 768 features for RGB at 16).
      Without ``view_data`` the ridge keys are absent.

    Accuracies are fractions in ``[0, 1]``; every value is a float, ``None`` or a dict with
    int keys, so the result is ``json.dumps``-able (JSON turns the keys into strings).

    Args:
        model: a :class:`~jepa_blocks.eval.features.SequenceModel` ``nn.Module``.
        train_loader, test_loader: dict batches (see :mod:`jepa_blocks.eval.features`);
            they need at least ``max(m_vals)`` views, and ``M + 1`` views for path length M.
        m_vals: M_val values of the z_AGG probes (the paper's heat maps use 1..8).
        action_kind: ``"rot"`` (3DIEBench quaternions), ``"pos"`` (saccade positions) or
            ``"aug"`` (augmentation parameters); names the R^2 key and picks default heads
            and path targets (:func:`rotation_path_target` or :func:`additive_path_target`).
        num_classes: default ``max label + 1`` over both splits.
        path_ms: path-integration lengths, ``"all"`` (``1..views - 1``) or ``()`` to skip.
        path_target_fn: overrides the kind's default path target.
        relative_head, path_head: ``"mlp"`` or ``"linear"``; override the kind's default.
        canonical: sign-canonicalise the rotation targets (absolute and path; a_1 is used as
            the dataset gives it).
        epochs_linear: linear classifier epochs (paper: 300).
        epochs_mlp: MLP regressor epochs (paper: 300).
        epochs_linear_regressor: linear regressor epochs (paper: 50).
        batch_size, lr, hidden, seed: shared by every head (paper: 256, Adam 1e-3,
            (1024, 1024)).
        knn_k, knn_temperature: kNN settings.
        view_data: ``(train, test)`` per-view data for the ridge probes, e.g. the
            :class:`~jepa_blocks.data.objects.RenderedObjects` of both splits, or the two
            sequence loaders (every view of every sequence becomes a row).
        floor_model: an untrained copy of ``model`` for the random-init floors, on the same
            device as ``model`` (it is not moved).
        mlp_floors: fit the MLP floors (the ridge floors are cheap and always fitted when
            ``floor_model`` and ``view_data`` are given).
        pixel_floor, pixel_size: the ridge's raw-pixel floor and its pooled side.
        ridge_pairs: view pairs per split for the relative ridge probe.
        ridge_k: principal components per view of the relative probe's bilinear features;
            ``min(ridge_k, dv)`` of each set of features is used.
        num_workers: DataLoader workers when ``view_data`` are datasets.
        device: where the model and the heads run; default the model's device.
        progress: tqdm bars (hidden when stderr is not a terminal).

    Raises:
        ValueError: an unknown ``action_kind`` or head, ``view_data`` with another kind than
            ``rot`` or without latents and object ids, or anything the extraction, the
            probes or the metrics reject (e.g. an M_val above the views available).
    """
    if action_kind not in _ACTION_KINDS:
        raise ValueError(
            f"action_kind must be one of {sorted(_ACTION_KINDS)}, got {action_kind!r}."
        )
    kind_name, default_rel_head, default_path_head = _ACTION_KINDS[action_kind]
    relative_head = relative_head or default_rel_head  # type: ignore[assignment]
    path_head = path_head or default_path_head  # type: ignore[assignment]
    for name, head_kind in (("relative_head", relative_head), ("path_head", path_head)):
        if head_kind not in ("mlp", "linear"):
            raise ValueError(f"{name} must be 'mlp', 'linear' or None, got {head_kind!r}.")
    m_vals = tuple(m_vals)
    if view_data is not None:
        if action_kind != "rot":
            raise ValueError(
                f"view_data feed the ridge rotation probes, which need action_kind 'rot' and "
                f"per-view latents; got action_kind {action_kind!r}: pass view_data=None."
            )
        if not isinstance(view_data, tuple | list) or len(view_data) != 2:
            raise ValueError(
                "view_data must be a (train, test) pair of per-view datasets or loaders, got "
                f"{type(view_data).__name__}."
            )
    if path_target_fn is None:
        if action_kind == "rot":
            path_target_fn = functools.partial(rotation_path_target, canonical=canonical)
        else:
            path_target_fn = additive_path_target
    if device is None and isinstance(model, nn.Module):
        device = _model_device(model)
    common = {
        "m_vals": m_vals,
        "encoder": True,
        "pairs": True,
        "path_target_fn": path_target_fn,
        "ablations": True,
        "device": device,
        "progress": progress,
    }
    train = extract_sequence_features(
        model, train_loader, path_ms=path_ms, desc="train features", **common
    )
    test = extract_sequence_features(
        model, test_loader, path_ms=tuple(train.path_inputs), desc="test features", **common
    )
    if num_classes is None:
        num_classes = int(max(train.labels.max(), test.labels.max())) + 1
    shared = {
        "batch_size": batch_size, "lr": lr, "seed": seed, "device": device,
        "progress": progress,
    }

    def regress(
        head_kind: str, x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor
    ) -> float:
        if head_kind == "mlp":
            settings = {"hidden": tuple(hidden), "epochs": epochs_mlp}
        else:
            settings = {"hidden": (), "epochs": epochs_linear_regressor}
        return fit_regressor(x_train, y_train, x_test, y_test, **settings, **shared).r2

    def classify(x_train: Tensor, x_test: Tensor) -> float:
        return fit_linear_probe(
            x_train, train.labels, x_test, test.labels,
            num_classes=num_classes, epochs=epochs_linear, **shared,
        ).top1

    def relative_r2(train_f: SequenceFeatures, test_f: SequenceFeatures) -> float:
        assert train_f.z_pair is not None and test_f.z_pair is not None
        assert train_f.first_action is not None and test_f.first_action is not None
        return regress(
            relative_head, train_f.z_pair, train_f.first_action, test_f.z_pair,
            test_f.first_action,
        )

    def individual_r2(train_f: SequenceFeatures, test_f: SequenceFeatures) -> float | None:
        if train_f.latents_first is None or test_f.latents_first is None:
            return None
        assert train_f.z_first is not None and test_f.z_first is not None
        return regress(
            "mlp",
            train_f.z_first,
            absolute_rotation_target(train_f.latents_first, canonical=canonical),
            test_f.z_first,
            absolute_rotation_target(test_f.latents_first, canonical=canonical),
        )

    def path_r2(
        train_f: SequenceFeatures, test_f: SequenceFeatures, inputs: str = "path_inputs"
    ) -> dict[int, float]:
        train_inputs, test_inputs = getattr(train_f, inputs), getattr(test_f, inputs)
        return {
            m: regress(path_head, train_inputs[m], train_f.path_targets[m], test_inputs[m],
                       test_f.path_targets[m])
            for m in train_inputs
        }

    # The ridge probes first: data without latents fail here, before minutes of MLP heads.
    ridge_results: dict[str, float] = {}
    if view_data is not None:
        encoders: dict[str, nn.Module] = {"": model}  # type: ignore[dict-item]
        if floor_model is not None:
            encoders["_floor"] = floor_model  # type: ignore[assignment]
        if pixel_floor:
            encoders["_pixels"] = PooledPixels(pixel_size)
        for suffix, encoder in encoders.items():
            ridge = _ridge_rotation(
                encoder, view_data, name=suffix.strip("_") or "model", pairs=ridge_pairs,
                k=ridge_k, batch_size=batch_size, num_workers=num_workers, seed=seed,
                device=device, progress=progress,
            )
            ridge_results[f"ridge_r2_indiv_rotation{suffix}"] = ridge.individual
            ridge_results[f"ridge_r2_rel_rotation{suffix}"] = ridge.relative

    floor_train = floor_test = None
    if floor_model is not None and mlp_floors:
        # Only what the floored heads need: no z_AGG probes, no ablations.
        floor_common = {**common, "m_vals": (), "ablations": False}
        floor_train = extract_sequence_features(
            floor_model, train_loader, path_ms=tuple(train.path_inputs),
            desc="random-init train features", **floor_common,
        )
        floor_test = extract_sequence_features(
            floor_model, test_loader, path_ms=tuple(train.path_inputs),
            desc="random-init test features", **floor_common,
        )

    results: dict[str, Any] = {}
    results["top1_agg"] = {m: classify(train.z_agg[m], test.z_agg[m]) for m in m_vals}
    assert train.z_first is not None and test.z_first is not None
    results["top1_encoder"] = classify(train.z_first, test.z_first)
    results[f"r2_rel_{kind_name}"] = relative_r2(train, test)
    if floor_train is not None and floor_test is not None:
        results[f"r2_rel_{kind_name}_floor"] = relative_r2(floor_train, floor_test)
    if action_kind == "rot":
        results["r2_indiv_rotation"] = individual_r2(train, test)
        if floor_train is not None and floor_test is not None:
            results["r2_indiv_rotation_floor"] = individual_r2(floor_train, floor_test)
    results["path_integration_r2"] = path_r2(train, test)
    if floor_train is not None and floor_test is not None:
        results["path_integration_r2_floor"] = path_r2(floor_train, floor_test)
    results["path_integration_r2_zero_actions"] = path_r2(
        train, test, "path_inputs_zero_actions"
    )
    results["path_integration_r2_zero_vision"] = path_r2(train, test, "path_inputs_zero_vision")
    results["knn_top1"] = None
    if m_vals:
        largest = max(m_vals)
        results["knn_top1"] = knn_top1(
            train.z_agg[largest], train.labels, test.z_agg[largest], test.labels,
            k=knn_k, temperature=knn_temperature, num_classes=num_classes,
        )
    results["rankme"] = rankme(train.z_first)
    results.update(ridge_results)
    for key, value in results.items():
        logger.info("%s: %s", key, value)
    return results


def _ridge_rotation(
    encoder: nn.Module,
    view_data: tuple[ViewSource, ViewSource],
    *,
    name: str,
    pairs: int,
    k: int,
    batch_size: int,
    num_workers: int,
    seed: int,
    device: torch.device | str | None,
    progress: bool,
) -> RotationR2:
    """Extract per-view features of both splits with ``encoder`` and run the ridge probes."""
    # Pixels stay on the CPU: pooling is cheap and the images come from there.
    where = None if isinstance(encoder, PooledPixels) else device
    train, test = (
        extract_view_features(
            encoder, data, batch_size=batch_size, num_workers=num_workers, device=where,
            progress=progress, desc=f"{name} {split} views",
        )
        for split, data in zip(("train", "test"), view_data, strict=True)
    )
    for split, feats in (("train", train), ("test", test)):
        if feats.latents is None or feats.objects is None:
            missing = "latents" if feats.latents is None else "object ids"
            raise ValueError(
                f"the {split} view_data carry no {missing}; "
                "the ridge rotation probes need per-view latents (Euler xyz first) and the "
                "object of each view ('object' or 'index'): pass such data or view_data=None."
            )
    ridge = rotation_ridge_r2(
        train.z, train.latents, train.objects, test.z, test.latents, test.objects,
        num_pairs=pairs, k=min(k, train.z.shape[1]), seed=seed,
    )
    logger.info(
        "ridge %s: penalties %.0e (individual), %.0e (relative)",
        name, ridge.penalty_individual, ridge.penalty_relative,
    )
    return ridge
