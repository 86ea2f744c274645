"""Frozen sequence features from any :class:`~jepa_blocks.eval.contract.SequenceModel`.

One pass over a loader of dict batches (see :mod:`jepa_blocks.eval.contract`) extracts every
feature the probes of spec §4 need: z_AGG per inference length, the encoder output of view 1,
pairs of views with the action between them, and path-integration inputs with their targets
and ablations. Each batch becomes a :class:`SequenceFeatures` on the CPU (features float32,
labels int64); the batches are concatenated at the end. The model runs under
:func:`~jepa_blocks.eval.contract.eval_mode`, its modes restored on every exit.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import torch

from jepa_blocks._typing import Tensor
from jepa_blocks.eval.contract import (
    Batch,
    SequenceModel,
    _aggregate,
    _check_batch,
    _check_lengths,
    _check_model,
    _cpu,
    _encode,
    _progress,
    _resolve_device,
    _to_device,
    eval_mode,
)
from jepa_blocks.eval.targets import PathTargetFn, rotation_path_target

__all__ = [
    "SequenceFeatures",
    "extract_sequence_features",
    "extract_aggregate_features",
    "extract_pair_features",
    "extract_single_view_features",
    "extract_path_integration_features",
]


@dataclass
class SequenceFeatures:
    """Everything one pass over a loader can extract (empty / ``None`` where not asked for).

    Attributes:
        labels: ``(N,)`` class labels (empty when batches carry no ``label``).
        z_agg: ``{M_val: (N, d_agg)}``, z_AGG from views 1..M_val.
        z_first: ``(N, dv)`` encoder output of view 1.
        z_pair: ``(N, 2 dv)`` ``[z_1 ; z_2]``, the input of relative-transform regressors.
        first_action: ``(N, da)`` a_1, their target.
        latents_first: ``(N, L)`` latents of view 1 (when batches carry ``latents``).
        path_inputs: ``{M: (N, d_agg + da)}`` ``[z_AGG(views 1..M) ; a_M]``.
        path_inputs_zero_actions: the same with every action zeroed (aggregator and a_M).
        path_inputs_zero_vision: the same with every encoder output zeroed.
        path_targets: ``{M: (N, p)}`` the transform from view 1 to view M + 1.
    """

    labels: Tensor
    z_agg: dict[int, Tensor] = field(default_factory=dict)
    z_first: Tensor | None = None
    z_pair: Tensor | None = None
    first_action: Tensor | None = None
    latents_first: Tensor | None = None
    path_inputs: dict[int, Tensor] = field(default_factory=dict)
    path_inputs_zero_actions: dict[int, Tensor] = field(default_factory=dict)
    path_inputs_zero_vision: dict[int, Tensor] = field(default_factory=dict)
    path_targets: dict[int, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class _Request:
    """What one pass extracts; ``path_ms`` None: every length the sequences allow."""

    m_vals: tuple[int, ...]
    encoder: bool
    pairs: bool
    path_ms: tuple[int, ...] | None
    ablations: bool

    @property
    def needs(self) -> list[str]:
        """The batch keys this request reads besides ``views``."""
        need = ["label"] if (self.m_vals or self.encoder) else []
        if self.m_vals or self.pairs or self.path_ms is None or self.path_ms:
            need.append("actions")
        return need


class _CachedAggregate:
    """z_AGG of one batch's prefixes, each (length, ablation) computed once."""

    def __init__(self, model: Any, z: Tensor, actions_padded: Tensor | None) -> None:
        self.model = model
        self.z = z
        self.actions = actions_padded
        self.cache: dict[tuple[int, bool, bool], Tensor] = {}

    def __call__(self, m: int, zero_actions: bool = False, zero_vision: bool = False) -> Tensor:
        key = (m, zero_actions, zero_vision)
        if key not in self.cache:
            assert self.actions is not None
            z_in = self.z[:, :m]
            a_in = self.actions[:, :m]
            self.cache[key] = _aggregate(
                self.model,
                torch.zeros_like(z_in) if zero_vision else z_in,
                torch.zeros_like(a_in) if zero_actions else a_in,
            )
        return self.cache[key]


def _batches(
    loader: Iterable[Batch], device: torch.device, *, desc: str, progress: bool
) -> Iterator[dict[str, Any]]:
    """The loader's dict batches on ``device``, behind a progress bar."""
    for raw in _progress(loader, desc=desc, progress=progress):
        yield _to_device(raw, device)


def _path_lengths(request: _Request, num_views: int) -> tuple[int, ...]:
    """The path-integration lengths M, fixed by the first batch when ``path_ms="all"``."""
    if request.path_ms is not None:
        return request.path_ms
    if num_views < 2:
        raise ValueError("path integration needs sequences of at least 2 views, got 1.")
    return tuple(range(1, num_views))


def _views_to_encode(request: _Request, path_ms: tuple[int, ...], num_views: int) -> int:
    """How many leading views the request needs; raises if the sequences are too short."""
    if request.m_vals and request.m_vals[-1] > num_views:
        raise ValueError(
            f"M_val {request.m_vals[-1]} is larger than the {num_views} views available per "
            f"sequence; build the evaluation dataset with at least {request.m_vals[-1]} views "
            f"or use m_vals <= {num_views}."
        )
    if path_ms and path_ms[-1] > num_views - 1:
        raise ValueError(
            f"path integration over M {path_ms[-1]} needs view M + 1 but sequences "
            f"have {num_views} views; build the dataset with at least "
            f"{path_ms[-1] + 1} views or use M <= {num_views - 1}."
        )
    if request.pairs and num_views < 2:
        raise ValueError("pair features [z_1 ; z_2] need at least 2 views per sequence, got 1.")
    encoded = max(
        (*request.m_vals, *path_ms, 2 if request.pairs else 0, 1 if request.encoder else 0),
        default=0,
    )
    if encoded == 0:
        raise ValueError("nothing to extract; pass m_vals, encoder=True, pairs=True or path_ms.")
    return encoded


def _path_target(target_fn: PathTargetFn, batch: dict, m: int, rows: int) -> Tensor:
    target = target_fn(batch, m)
    if not isinstance(target, Tensor) or target.dim() < 1 or target.shape[0] != rows:
        shape = tuple(target.shape) if isinstance(target, Tensor) else type(target)
        raise ValueError(
            f"path_target_fn returned {shape} for M {m}; it must return one "
            f"target row per sequence, (b, p) with b = {rows}."
        )
    return target.reshape(rows, -1)


def _to_cpu(features: SequenceFeatures) -> SequenceFeatures:
    """Every tensor on the CPU: floating ones detached as float32, labels as they are."""

    def move(value: Tensor) -> Tensor:
        return _cpu(value) if value.is_floating_point() else value.cpu()

    changes: dict[str, Any] = {}
    for item in fields(features):
        value = getattr(features, item.name)
        if isinstance(value, dict):
            changes[item.name] = {m: move(tensor) for m, tensor in value.items()}
        elif value is not None:
            changes[item.name] = move(value)
    return replace(features, **changes)


def _concatenate(parts: list[SequenceFeatures]) -> SequenceFeatures:
    """Row-wise concatenation of per-batch features (optional ones where batches have them)."""
    merged: dict[str, Any] = {}
    for item in fields(SequenceFeatures):
        values = [getattr(part, item.name) for part in parts]
        if isinstance(values[0], dict):
            merged[item.name] = {m: torch.cat([value[m] for value in values]) for m in values[0]}
        else:
            present = [value for value in values if value is not None]
            merged[item.name] = torch.cat(present) if present else None
    return SequenceFeatures(**merged)


def _batch_features(
    model: Any,
    batch: dict,
    request: _Request,
    *,
    path_ms: tuple[int, ...],
    target_fn: PathTargetFn,
    rows: int,
    encoded: int,
) -> SequenceFeatures:
    """One batch's features, on the CPU; each view encoded once, each z_AGG computed once."""
    z = _encode(model, batch["views"][:, :encoded])
    actions_padded = None
    if "actions" in request.needs:
        actions = batch["actions"]
        placeholder = actions.new_zeros(rows, 1, actions.shape[-1])
        actions_padded = torch.cat((actions, placeholder), dim=1)  # (b, m+1, da)
    agg = _CachedAggregate(model, z, actions_padded)

    labels = batch["label"].long() if "label" in batch else torch.empty(0, dtype=torch.long)
    feats = SequenceFeatures(labels=labels, z_agg={m_val: agg(m_val) for m_val in request.m_vals})
    if request.encoder:
        feats.z_first = z[:, 0]
        if "latents" in batch:
            feats.latents_first = batch["latents"][:, 0]
    if request.pairs:
        feats.z_pair = torch.cat((z[:, 0], z[:, 1]), dim=-1)
        feats.first_action = batch["actions"][:, 0]
    for m in path_ms:
        a_m = batch["actions"][:, m - 1]
        feats.path_inputs[m] = torch.cat((agg(m), a_m), dim=-1)
        if request.ablations:
            zero_a = torch.cat((agg(m, zero_actions=True), torch.zeros_like(a_m)), -1)
            feats.path_inputs_zero_actions[m] = zero_a
            feats.path_inputs_zero_vision[m] = torch.cat((agg(m, zero_vision=True), a_m), -1)
        feats.path_targets[m] = _path_target(target_fn, batch, m, rows)
    return _to_cpu(feats)


def extract_sequence_features(
    model: SequenceModel,
    loader: Iterable[Batch],
    *,
    m_vals: Iterable[int] = (),
    encoder: bool = False,
    pairs: bool = False,
    path_ms: Iterable[int] | Literal["all"] = (),
    path_target_fn: PathTargetFn = rotation_path_target,
    ablations: bool = False,
    device: torch.device | str | None = None,
    progress: bool = True,
    desc: str = "features",
) -> SequenceFeatures:
    """One pass over ``loader``: every feature the seq-JEPA protocol needs (spec §4).

    Each batch is encoded once (only as many views as the largest request needs) and the
    aggregator is reused across requests.

    Args:
        model: a :class:`SequenceModel` ``nn.Module``; put in eval mode, then restored.
        loader: yields dict batches (see :mod:`jepa_blocks.eval.contract`).
        m_vals: M_val values for z_AGG: views 1..M_val with actions a_1..a_{M_val}, the last
            zeroed by the model. ``M_val`` may equal the number of views; a_{M_val} does not
            exist then and a zero placeholder is passed.
        encoder: collect z_1 (and view 1's latents when batches carry them).
        pairs: collect ``[z_1 ; z_2]`` and a_1.
        path_ms: path-integration lengths M (each needs view M + 1), or ``"all"`` for
            ``1..views - 1``. The input is ``[z_AGG(views 1..M) ; a_M]`` with the *raw* action
            a_M (the paper does not say raw or embedded; raw keeps the head model-agnostic).
        path_target_fn: ``target_fn(batch, M) -> (b, p)``, see
            :mod:`jepa_blocks.eval.targets`.
        ablations: also collect path inputs with every action zeroed (aggregator actions and
            a_M) and with every encoder output zeroed (spec §1.11). Actions are zeroed *raw*,
            before the model embeds them: the contract exposes no embedding. With a
            BatchNorm action embedding a zero raw action embeds to a constant, not to zero;
            either way no action information reaches the head.
        device: where the model runs; default the device of its first parameter.
        progress: tqdm bar over batches (hidden when stderr is not a terminal).
        desc: the bar's label.

    Raises:
        ValueError: a model without the protocol, a non-positive length, an M_val larger
            than the views available, a path M without a view M + 1, malformed batches, an
            empty loader, or model outputs of the wrong shape. The model's modes are
            restored on every exit.
    """
    model_module = _check_model(model)
    m_vals = _check_lengths("m_vals", m_vals)
    path_lengths = None  # "all": every length the first batch allows
    if path_ms != "all":
        path_lengths = _check_lengths("path_ms", path_ms)  # type: ignore[arg-type]
    request = _Request(m_vals, encoder, pairs, path_lengths, ablations)
    target_device = _resolve_device(model_module, device)
    parts: list[SequenceFeatures] = []
    num_views_first = 0
    with eval_mode(model_module):
        for batch in _batches(loader, target_device, desc=desc, progress=progress):
            rows, num_views = _check_batch(batch, need=request.needs)
            if not parts:
                num_views_first = num_views
                lengths = _path_lengths(request, num_views)
            elif num_views != num_views_first:
                raise ValueError(
                    f"every batch must have the same number of views; got {num_views} after "
                    f"{num_views_first}. Use a fixed sequence length for evaluation."
                )
            encoded = _views_to_encode(request, lengths, num_views)
            parts.append(_batch_features(
                model, batch, request, path_ms=lengths, target_fn=path_target_fn, rows=rows,
                encoded=encoded,
            ))
    if not parts:
        raise ValueError("loader yielded no batches; pass a non-empty evaluation loader.")
    return _concatenate(parts)


def extract_aggregate_features(
    model: SequenceModel,
    loader: Iterable[Batch],
    *,
    m_val: int,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> tuple[Tensor, Tensor]:
    """z_AGG from views 1..M_val (with a_1..a_{M_val}, the last zeroed) and the labels.

    Returns:
        ``(z_agg (N, d_agg), labels (N,))``.

    Raises:
        ValueError: see :func:`extract_sequence_features`, e.g. ``M_val`` above the number
            of views available.
    """
    feats = extract_sequence_features(
        model, loader, m_vals=(m_val,), device=device, progress=progress, desc=f"z_agg M={m_val}"
    )
    return feats.z_agg[m_val], feats.labels


def extract_pair_features(
    model: SequenceModel,
    loader: Iterable[Batch],
    *,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> tuple[Tensor, Tensor]:
    """``[z_1 ; z_2]`` and the relative action a_1 between them (relative-transform R^2).

    Returns:
        ``(pairs (N, 2 dv), a_1 (N, da))``.
    """
    feats = extract_sequence_features(
        model, loader, pairs=True, device=device, progress=progress, desc="pairs"
    )
    assert feats.z_pair is not None and feats.first_action is not None
    return feats.z_pair, feats.first_action


def extract_single_view_features(
    model: SequenceModel,
    loader: Iterable[Batch],
    *,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> tuple[Tensor, Tensor]:
    """The encoder output z_1 of view 1 and that view's latents (individual-rotation R^2).

    Turn the latents into the regression target with
    :func:`~jepa_blocks.eval.targets.absolute_rotation_target`.

    Returns:
        ``(z_1 (N, dv), latents_1 (N, L))``.

    Raises:
        ValueError: batches without ``latents``, or see :func:`extract_sequence_features`.
    """
    model_module = _check_model(model)
    target_device = _resolve_device(model_module, device)
    z_first, latents_first = [], []
    with eval_mode(model_module):
        for batch in _batches(loader, target_device, desc="z_1", progress=progress):
            _check_batch(batch, need=["latents"])
            z_first.append(_cpu(_encode(model, batch["views"][:, :1])[:, 0]))
            latents_first.append(_cpu(batch["latents"][:, 0]))
    if not z_first:
        raise ValueError("loader yielded no batches; pass a non-empty evaluation loader.")
    return torch.cat(z_first), torch.cat(latents_first)


def extract_path_integration_features(
    model: SequenceModel,
    loader: Iterable[Batch],
    *,
    ms: Iterable[int] | Literal["all"] = "all",
    target_fn: PathTargetFn = rotation_path_target,
    zero_actions: bool = False,
    zero_vision: bool = False,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> dict[int, tuple[Tensor, Tensor]]:
    """Path-integration inputs ``[z_AGG(views 1..M) ; a_M]`` and targets, per M [P §4.4].

    Args:
        ms: the lengths M, or ``"all"`` for ``1..views - 1``.
        target_fn: the transform from view 1 to view M + 1 (default: rotations).
        zero_actions: zero every action fed to the aggregator and a_M (raw, before embedding).
        zero_vision: zero every encoder output before aggregation.

    Returns:
        ``{M: (inputs (N, d_agg + da), targets (N, p))}``.

    Raises:
        ValueError: both ablations at once, or see :func:`extract_sequence_features`.
    """
    if zero_actions and zero_vision:
        raise ValueError(
            "zero_actions and zero_vision together leave the head a constant input; pick one "
            "ablation per call."
        )
    feats = extract_sequence_features(
        model,
        loader,
        path_ms=ms,
        path_target_fn=target_fn,
        ablations=zero_actions or zero_vision,
        device=device,
        progress=progress,
        desc="path integration",
    )
    if zero_actions:
        inputs = feats.path_inputs_zero_actions
    elif zero_vision:
        inputs = feats.path_inputs_zero_vision
    else:
        inputs = feats.path_inputs
    return {m: (inputs[m], feats.path_targets[m]) for m in inputs}
