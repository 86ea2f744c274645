"""seq-JEPA's evaluation protocol (spec §4.1, §4.3, §6.4): every probe of the paper, with floors.

:func:`evaluate_sequence_model` extracts frozen features once per split with the library's
generic blocks (:mod:`jepa_blocks.eval`), then trains every head of the paper on them and
returns a JSON-ready dict; given per-view data and an untrained copy of the model, it adds the
closed-form ridge rotation probes and puts every R^2 beside its floors. ``train.py`` runs it
after training; the model only has to satisfy :class:`jepa_blocks.eval.SequenceModel`.
"""

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from jepa_blocks.eval import (
    PathTargetFn,
    PooledPixels,
    RotationR2,
    SequenceFeatures,
    SequenceModel,
    absolute_rotation_target,
    additive_path_target,
    extract_sequence_features,
    extract_view_features,
    fit_linear_probe,
    fit_regressor,
    knn_top1,
    model_device,
    rankme,
    rotation_path_target,
    rotation_ridge_r2,
)
from jepa_blocks.eval.views import ViewSource

__all__ = ["evaluate_sequence_model"]

logger = logging.getLogger("seq_jepa.evaluate")

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
      object ids, anything :func:`~jepa_blocks.eval.extract_view_features` takes):
      closed-form ridge probes (:func:`~jepa_blocks.eval.rotation_ridge_r2`) fitted on
      every training view and ``ridge_pairs`` pairs, which do not overfit like the MLP heads:
      ``ridge_r2_indiv_rotation`` and ``ridge_r2_rel_rotation``; with ``floor_model`` also
      ``ridge_r2_indiv_rotation_floor`` and ``ridge_r2_rel_rotation_floor``; with
      ``pixel_floor`` also ``ridge_r2_indiv_rotation_pixels`` and
      ``ridge_r2_rel_rotation_pixels``, the ridge on the normalised pixels average-pooled to
      at most ``pixel_size`` x ``pixel_size``
      (:class:`~jepa_blocks.eval.PooledPixels`; 768 features for RGB at 16).
      Without ``view_data`` the ridge keys are absent.

    Accuracies are fractions in ``[0, 1]``; every value is a float, ``None`` or a dict with
    int keys, so the result is ``json.dumps``-able (JSON turns the keys into strings).

    Args:
        model: a :class:`~jepa_blocks.eval.SequenceModel` ``nn.Module``.
        train_loader, test_loader: dict batches (see :mod:`jepa_blocks.eval.contract`);
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
        device = model_device(model)
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
        train_f: SequenceFeatures,
        test_f: SequenceFeatures,
        inputs: Callable[[SequenceFeatures], dict[int, Tensor]] = lambda f: f.path_inputs,
    ) -> dict[int, float]:
        train_inputs, test_inputs = inputs(train_f), inputs(test_f)
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
        train, test, lambda f: f.path_inputs_zero_actions
    )
    results["path_integration_r2_zero_vision"] = path_r2(
        train, test, lambda f: f.path_inputs_zero_vision
    )
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
