"""Frozen-feature extraction from any seq-JEPA-like model, for the probes of spec §4.

Evaluation depends on a two-method contract, :class:`SequenceModel`, never on a concrete
class: ``encode`` runs the online encoder on every view and ``aggregate`` runs the sequence
aggregator on per-view embeddings and their actions (the last action is zeroed inside, as in
training). Everything here runs under ``torch.no_grad`` with every submodule in eval mode, and
each submodule's previous mode is restored afterwards: the official code probed with the
backbone in train mode, so BatchNorm statistics drifted during evaluation (spec §7.4.3).

Loaders yield dict batches:

============ ===================== =================================================
key          shape                 meaning
============ ===================== =================================================
views        (b, m+1, c, hh, ww)   the views of a sequence, in order
actions      (b, m, da)            a_i takes view i to view i+1
label        (b,)                  class label (for classification probes)
latents      (b, m+1, >=3)         optional; per-view latents, Euler xyz first (3DIEBench)
============ ===================== =================================================

Other keys are moved to the device and handed to path-integration target functions.
Features come back as float32 CPU tensors, labels as int64.

:func:`extract_view_features` embeds views one by one instead (every view of a per-view
dataset such as :class:`~jepa_blocks.data.objects.RenderedObjects`, or every view of the
sequences above), for the ridge probes of :mod:`jepa_blocks.eval.ridge`.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import einops
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from jepa_blocks._typing import Float, Tensor, typecheck
from jepa_blocks.actions import (
    canonicalize_quaternion,
    euler_to_quaternion,
    quaternion_multiply,
    relative_rotation,
)

__all__ = [
    "SequenceModel",
    "SequenceFeatures",
    "PathTargetFn",
    "eval_mode",
    "absolute_rotation_target",
    "rotation_path_target",
    "additive_path_target",
    "extract_sequence_features",
    "extract_aggregate_features",
    "extract_pair_features",
    "extract_single_view_features",
    "extract_path_integration_features",
    "ViewFeatures",
    "PooledPixels",
    "extract_view_features",
]

Batch = Mapping[str, Any]
PathTargetFn = Callable[[Batch, int], Tensor]
"""``target_fn(batch, m) -> (b, p)``: the transform from view 1 to view m + 1 of a batch."""


@runtime_checkable
class SequenceModel(Protocol):
    """What evaluation needs from a model (an ``nn.Module`` that has these two methods).

    ``encode(views)``: ``(b, k, c, hh, ww) -> (b, k, dv)``, the online encoder on each view.

    ``aggregate(z, actions)``: ``(b, m, dv), (b, m, da) -> (b, d_agg)``, the invariant
    representation z_AGG of ``m`` view embeddings. ``actions[:, i]`` takes view i to view
    i + 1; the model zeroes the last token's action itself (spec §1.5), so evaluation may pass
    a zero placeholder there.
    """

    def encode(self, views: Tensor) -> Tensor: ...

    def aggregate(self, z: Tensor, actions: Tensor) -> Tensor: ...


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


# ----------------------------------------------------------------------------- targets


@typecheck
def absolute_rotation_target(
    latents: Float[Tensor, "*batch l"], *, canonical: bool = False
) -> Float[Tensor, "*batch 4"]:
    """The absolute orientation quaternion ``(x, y, z, w)`` of latents whose first 3 entries
    are extrinsic xyz Euler angles (3DIEBench), the "Indiv. Rot." target (spec §4.1).

    Not canonicalised by default, like the official targets (spec §7.4.6); for in-distribution
    3DIEBench angles (each in ``[-pi/2, pi/2]``) ``w`` is non-negative anyway.

    Raises:
        ValueError: fewer than 3 latent entries.
    """
    if latents.shape[-1] < 3:
        raise ValueError(
            f"latents have {latents.shape[-1]} entries, need >= 3 (Euler x, y, z first)."
        )
    quaternion = euler_to_quaternion(latents[..., :3])
    return canonicalize_quaternion(quaternion) if canonical else quaternion


def rotation_path_target(batch: Batch, m: int, *, canonical: bool = False) -> Tensor:
    """Quaternion of ``R_1^-1 R_{m+1}``, the rotation from view 1 to view m + 1 (spec §4.1).

    From ``batch["latents"]`` (Euler xyz first) via :func:`jepa_blocks.actions.relative_rotation`
    when present; otherwise the product ``a_1 a_2 ... a_m`` of the relative-rotation actions,
    which is the same quaternion when the actions are the non-canonicalised
    ``q_i^-1 q_{i+1}`` (as in the official 3DIEBench pipeline).

    Raises:
        ValueError: ``m`` outside ``[1, views - 1]``, or actions that are not quaternions.
    """
    views = batch["views"].shape[1]
    if not 1 <= m <= views - 1:
        raise ValueError(
            f"path integration over M {m} needs view M + 1, but sequences have {views} "
            f"views; use M in [1, {views - 1}]."
        )
    if "latents" in batch:
        q = absolute_rotation_target(batch["latents"])
        target = relative_rotation(torch.stack((q[:, 0], q[:, m]), dim=1))[:, 0]
    else:
        actions = batch["actions"]
        if actions.shape[-1] != 4:
            raise ValueError(
                f"composing rotations needs quaternion actions (da = 4), got da = "
                f"{actions.shape[-1]}; pass latents or a target_fn for this action kind."
            )
        target = actions[:, 0]
        for i in range(1, m):
            target = quaternion_multiply(target, actions[:, i])
    return canonicalize_quaternion(target) if canonical else target


def additive_path_target(batch: Batch, m: int) -> Tensor:
    """``a_1 + ... + a_m``: the displacement from view 1 to view m + 1 for additive actions.

    For position deltas this is ``(pos_{m+1} - pos_1) / size`` (the STL-10 saccade target);
    for plain parameter deltas it is ``p_{m+1} - p_1``.

    Raises:
        ValueError: ``m`` outside ``[1, actions available]``.
    """
    actions = batch["actions"]
    if not 1 <= m <= actions.shape[1]:
        raise ValueError(
            f"path integration over M {m} needs {m} actions, sequences have "
            f"{actions.shape[1]}; use M in [1, {actions.shape[1]}]."
        )
    return actions[:, :m].sum(dim=1)


# ----------------------------------------------------------------------------- plumbing


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Every submodule in eval mode under ``torch.no_grad``; each one's mode restored after.

    Restoring per submodule (not ``model.train(previous)``) keeps mixed states intact, e.g.
    a frozen backbone that was deliberately in eval mode inside a training model.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module) or not isinstance(model, SequenceModel):
        raise ValueError(
            f"model must be an nn.Module with encode(views) and aggregate(z, actions) methods "
            f"(the SequenceModel protocol), got {type(model).__name__}; wrap your model so "
            "evaluation can switch it to eval mode."
        )
    return model


def _check_lengths(name: str, values: Iterable[int]) -> tuple[int, ...]:
    values = tuple(values)
    for value in values:
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be positive ints, got {values!r}.")
    return tuple(sorted(set(values)))


def _to_device(batch: Batch, device: torch.device) -> dict[str, Any]:
    if not isinstance(batch, Mapping):
        raise ValueError(
            f"loader must yield dict batches (views, actions, label, ...), got "
            f"{type(batch).__name__}."
        )
    return {
        key: value.to(device, non_blocking=True) if isinstance(value, Tensor) else value
        for key, value in batch.items()
    }


def _check_batch(batch: dict[str, Any], *, need: Sequence[str]) -> tuple[int, int]:
    for key in ("views", *need):
        if key not in batch:
            raise ValueError(
                f"batch is missing key {key!r} (has {sorted(batch)}); the loader must yield "
                "views (b, m+1, c, hh, ww), actions (b, m, da) and label (b,), plus latents "
                "(b, m+1, L) for rotation targets."
            )
    views = batch["views"]
    if views.dim() != 5:
        raise ValueError(
            f"batch['views'] must have shape (b, m+1, c, hh, ww), got {tuple(views.shape)}."
        )
    rows, num_views = views.shape[:2]
    if "actions" in need:
        actions = batch["actions"]
        if actions.dim() != 3 or actions.shape[:2] != (rows, num_views - 1):
            raise ValueError(
                f"batch['actions'] must have shape (b, m, da) = ({rows}, {num_views - 1}, da) "
                f"for {num_views} views, got {tuple(actions.shape)}."
            )
    if "label" in need and batch["label"].shape != (rows,):
        raise ValueError(
            f"batch['label'] must have shape (b,) = ({rows},), got "
            f"{tuple(batch['label'].shape)}."
        )
    if "latents" in need:
        latents = batch["latents"]
        if latents.dim() != 3 or latents.shape[:2] != (rows, num_views):
            raise ValueError(
                f"batch['latents'] must have shape (b, m+1, L) = ({rows}, {num_views}, L), "
                f"got {tuple(latents.shape)}."
            )
    return rows, num_views


def _encode(model: Any, views: Tensor) -> Tensor:
    z = model.encode(views)
    if not isinstance(z, Tensor) or z.dim() != 3 or z.shape[:2] != views.shape[:2]:
        shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(
            f"model.encode returned {shape} for views {tuple(views.shape)}; it must return "
            f"(b, k, dv) = ({views.shape[0]}, {views.shape[1]}, dv)."
        )
    return z


def _aggregate(model: Any, z: Tensor, actions: Tensor) -> Tensor:
    out = model.aggregate(z, actions)
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != z.shape[0]:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"model.aggregate returned {shape} for z {tuple(z.shape)}; it must return "
            f"(b, d_agg) with b = {z.shape[0]}."
        )
    return out


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


def _cpu(value: Tensor) -> Tensor:
    return value.detach().float().cpu()


# ----------------------------------------------------------------------------- extraction


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
        loader: yields dict batches (see the module docstring).
        m_vals: M_val values for z_AGG: views 1..M_val with actions a_1..a_{M_val}, the last
            zeroed by the model. ``M_val`` may equal the number of views; a_{M_val} does not
            exist then and a zero placeholder is passed.
        encoder: collect z_1 (and view 1's latents when batches carry them).
        pairs: collect ``[z_1 ; z_2]`` and a_1.
        path_ms: path-integration lengths M (each needs view M + 1), or ``"all"`` for
            ``1..views - 1``. The input is ``[z_AGG(views 1..M) ; a_M]`` with the *raw* action
            a_M (the paper does not say raw or embedded; raw keeps the head model-agnostic).
        path_target_fn: ``target_fn(batch, M) -> (b, p)``, see :func:`rotation_path_target`
            and :func:`additive_path_target`.
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
    all_path = path_ms == "all"
    path_list = () if all_path else _check_lengths("path_ms", path_ms)  # type: ignore[arg-type]
    want_path = all_path or bool(path_list)
    need = ["label"] if (m_vals or encoder) else []
    if m_vals or pairs or want_path:
        need.append("actions")
    target_device = _model_device(model_module) if device is None else torch.device(device)

    store: dict[str, list[Tensor]] = {}

    def put(key: str, value: Tensor) -> None:
        store.setdefault(key, []).append(_cpu(value) if value.is_floating_point() else value.cpu())

    num_views_first: int | None = None
    with eval_mode(model_module):
        bar = tqdm(loader, desc=desc, disable=None if progress else True, leave=False)
        for raw in bar:
            batch = _to_device(raw, target_device)
            rows, num_views = _check_batch(batch, need=need)
            if num_views_first is None:
                num_views_first = num_views
                if all_path:
                    path_list = tuple(range(1, num_views))
                    if not path_list:
                        raise ValueError(
                            "path integration needs sequences of at least 2 views, got 1."
                        )
            elif num_views != num_views_first:
                raise ValueError(
                    f"every batch must have the same number of views; got {num_views} after "
                    f"{num_views_first}. Use a fixed sequence length for evaluation."
                )
            if m_vals and m_vals[-1] > num_views:
                raise ValueError(
                    f"M_val {m_vals[-1]} is larger than the {num_views} views available per "
                    f"sequence; build the evaluation dataset with at least {m_vals[-1]} views "
                    f"or use m_vals <= {num_views}."
                )
            if path_list and path_list[-1] > num_views - 1:
                raise ValueError(
                    f"path integration over M {path_list[-1]} needs view M + 1 but sequences "
                    f"have {num_views} views; build the dataset with at least "
                    f"{path_list[-1] + 1} views or use M <= {num_views - 1}."
                )
            if pairs and num_views < 2:
                raise ValueError(
                    "pair features [z_1 ; z_2] need at least 2 views per sequence, got 1."
                )
            encoded = max(
                (*m_vals, *path_list, 2 if pairs else 0, 1 if encoder else 0), default=0
            )
            if encoded == 0:
                raise ValueError(
                    "nothing to extract; pass m_vals, encoder=True, pairs=True or path_ms."
                )
            z = _encode(model, batch["views"][:, :encoded])
            actions_padded = None
            if "actions" in need:
                actions = batch["actions"]
                placeholder = actions.new_zeros(rows, 1, actions.shape[-1])
                actions_padded = torch.cat((actions, placeholder), dim=1)  # (b, m+1, da)
            agg = _CachedAggregate(model, z, actions_padded)

            if "label" in batch:
                put("labels", batch["label"].long())
            for m_val in m_vals:
                put(f"agg{m_val}", agg(m_val))
            if encoder:
                put("z_first", z[:, 0])
                if "latents" in batch:
                    put("latents_first", batch["latents"][:, 0])
            if pairs:
                put("z_pair", torch.cat((z[:, 0], z[:, 1]), dim=-1))
                put("first_action", batch["actions"][:, 0])
            for m in path_list:
                a_m = batch["actions"][:, m - 1]
                put(f"path{m}", torch.cat((agg(m), a_m), dim=-1))
                if ablations:
                    zero_a = torch.cat((agg(m, zero_actions=True), torch.zeros_like(a_m)), -1)
                    put(f"path_za{m}", zero_a)
                    put(f"path_zv{m}", torch.cat((agg(m, zero_vision=True), a_m), dim=-1))
                target = path_target_fn(batch, m)
                if not isinstance(target, Tensor) or target.dim() < 1 or target.shape[0] != rows:
                    shape = tuple(target.shape) if isinstance(target, Tensor) else type(target)
                    raise ValueError(
                        f"path_target_fn returned {shape} for M {m}; it must return one "
                        f"target row per sequence, (b, p) with b = {rows}."
                    )
                put(f"target{m}", target.reshape(rows, -1))
    if num_views_first is None:
        raise ValueError("loader yielded no batches; pass a non-empty evaluation loader.")

    def cat(key: str) -> Tensor | None:
        return torch.cat(store[key]) if key in store else None

    def by_length(prefix: str, lengths: Iterable[int]) -> dict[int, Tensor]:
        return {m: torch.cat(store[f"{prefix}{m}"]) for m in lengths if f"{prefix}{m}" in store}

    labels = cat("labels")
    return SequenceFeatures(
        labels=labels if labels is not None else torch.empty(0, dtype=torch.long),
        z_agg=by_length("agg", m_vals),
        z_first=cat("z_first"),
        z_pair=cat("z_pair"),
        first_action=cat("first_action"),
        latents_first=cat("latents_first"),
        path_inputs=by_length("path", path_list),
        path_inputs_zero_actions=by_length("path_za", path_list),
        path_inputs_zero_vision=by_length("path_zv", path_list),
        path_targets=by_length("target", path_list),
    )


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

    Turn the latents into the regression target with :func:`absolute_rotation_target`.

    Returns:
        ``(z_1 (N, dv), latents_1 (N, L))``.

    Raises:
        ValueError: batches without ``latents``, or see :func:`extract_sequence_features`.
    """
    model_module = _check_model(model)
    target_device = _model_device(model_module) if device is None else torch.device(device)
    store: dict[str, list[Tensor]] = {"z": [], "latents": []}
    with eval_mode(model_module):
        bar = tqdm(loader, desc="z_1", disable=None if progress else True, leave=False)
        for raw in bar:
            batch = _to_device(raw, target_device)
            _check_batch(batch, need=["latents"])
            store["z"].append(_cpu(_encode(model, batch["views"][:, :1])[:, 0]))
            store["latents"].append(_cpu(batch["latents"][:, 0]))
    if not store["z"]:
        raise ValueError("loader yielded no batches; pass a non-empty evaluation loader.")
    return torch.cat(store["z"]), torch.cat(store["latents"])


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


# ----------------------------------------------------------------------------- per view


@dataclass
class ViewFeatures:
    """Per-view embeddings and what the data say about each view (one row per view).

    Attributes:
        z: ``(N, dv)`` float32 embeddings.
        latents: ``(N, L)`` float32 per-view latents (Euler xyz first), ``None`` when the
            data carry none.
        objects: ``(N,)`` int64 id of the object each view shows (``object`` of per-view
            items, ``index`` of sequence items), or ``None``.
        labels: ``(N,)`` int64 class labels, or ``None``.
    """

    z: Tensor
    latents: Tensor | None = None
    objects: Tensor | None = None
    labels: Tensor | None = None


class PooledPixels(nn.Module):
    """Raw pixels as an "encoder": each channel average-pooled to at most ``size x size``,
    then flattened, ``(b, c, hh, ww) -> (b, c * size * size)``.

    The floor of what a probe finds in the input itself: pass it to
    :func:`extract_view_features` like a trained encoder. Pooling keeps a ridge on it cheap
    (768 features for RGB at ``size=16`` instead of 3,072 at 32 px, or 49,152 at 128 px) and
    keeps the image's layout; images no larger than ``size`` pass unchanged. No parameters.

    Raises:
        ValueError: ``size`` < 1.
    """

    def __init__(self, size: int = 16) -> None:
        super().__init__()
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be an int >= 1 (pixels per side), got {size!r}.")
        self.size = size

    @typecheck
    def forward(self, images: Float[Tensor, "b c hh ww"]) -> Float[Tensor, "b d"]:
        height, width = images.shape[-2:]
        pooled = F.adaptive_avg_pool2d(images, (min(self.size, height), min(self.size, width)))
        return einops.rearrange(pooled, "b c hh ww -> b (c hh ww)")


ViewSource = Tensor | Dataset | Iterable[Batch]


def _view_batches(
    data: ViewSource, batch_size: int, num_workers: int
) -> Iterable[Batch] | Iterable[Tensor]:
    if isinstance(data, Tensor):
        if data.dim() != 4:
            raise ValueError(
                f"images must have shape (N, c, hh, ww), got {tuple(data.shape)}; pass one "
                "image per view."
            )
        return (data[start : start + batch_size] for start in range(0, data.shape[0], batch_size))
    if isinstance(data, Dataset) and hasattr(data, "__len__"):
        return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    return data


def _embed_views(encoder: nn.Module, views: Tensor) -> Tensor:
    """``(b, k, c, hh, ww) -> (b, k, dv)`` with a sequence model's ``encode`` or a plain
    ``(b, c, hh, ww) -> (b, dv)`` module."""
    if isinstance(encoder, SequenceModel):
        return _encode(encoder, views)
    flat = einops.rearrange(views, "b k c hh ww -> (b k) c hh ww")
    z = encoder(flat)
    if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[0] != flat.shape[0]:
        shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(
            f"the encoder returned {shape} for images {tuple(flat.shape)}; it must return "
            f"(b, dv) = ({flat.shape[0]}, dv), or have encode(views) -> (b, k, dv)."
        )
    return einops.rearrange(z, "(b k) dv -> b k dv", b=views.shape[0])


def extract_view_features(
    encoder: nn.Module,
    data: ViewSource,
    *,
    batch_size: int = 256,
    num_workers: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    desc: str = "view features",
) -> ViewFeatures:
    """Embed every view of ``data`` once (encoder in eval mode under ``no_grad``, each
    submodule's mode restored afterwards), in batches.

    ``encoder`` is either a :class:`SequenceModel` (its ``encode`` is used) or any module
    mapping images ``(b, c, hh, ww)`` to ``(b, dv)`` (a backbone, :class:`PooledPixels`).
    ``data`` is one of

    - an image tensor ``(N, c, hh, ww)`` (then only ``z`` is returned);
    - a map-style per-view dataset whose items are dicts with ``image`` ``(c, hh, ww)`` and
      optionally ``latents`` ``(L,)``, ``object`` and ``label`` (e.g.
      :class:`~jepa_blocks.data.objects.RenderedObjects`, whose items are already
      normalised); it is batched here in order, with ``num_workers`` workers;
    - an iterable of such batches (``image`` ``(b, c, hh, ww)``, ...), or of sequence batches
      (``views`` ``(b, k, c, hh, ww)``, optional ``latents`` ``(b, k, L)``, ``index`` (the
      object), ``label``), whose every view becomes a row, sequence by sequence; a
      map-style sequence dataset is batched the same way.

    Returns:
        :class:`ViewFeatures`, float32 and int64 on the CPU; ``latents``, ``objects`` and
        ``labels`` are ``None`` unless every batch carries them.

    Raises:
        ValueError: a non-positive ``batch_size``, images that are not ``(N, c, hh, ww)``,
            batches with neither ``image`` nor ``views`` or with mismatched shapes, batches
            that carry different keys, an encoder output of the wrong shape, or no views.
    """
    if not isinstance(encoder, nn.Module):
        raise ValueError(
            f"encoder must be an nn.Module (a SequenceModel or an image -> (b, dv) module), "
            f"got {type(encoder).__name__}."
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
    target_device = _model_device(encoder) if device is None else torch.device(device)
    store: dict[str, list[Tensor]] = {"z": [], "latents": [], "objects": [], "labels": []}
    with eval_mode(encoder):
        batches = _view_batches(data, batch_size, num_workers)
        for raw in tqdm(batches, desc=desc, disable=None if progress else True, leave=False):
            batch = {"image": raw} if isinstance(raw, Tensor) else _to_device(raw, target_device)
            if "image" in batch:
                views = batch["image"].to(target_device)
                if views.dim() != 4:
                    raise ValueError(
                        f"batch['image'] must have shape (b, c, hh, ww), got "
                        f"{tuple(views.shape)}."
                    )
                views = views[:, None]
                object_key = "object"
            elif "views" in batch:
                views = batch["views"]
                if views.dim() != 5:
                    raise ValueError(
                        f"batch['views'] must have shape (b, k, c, hh, ww), got "
                        f"{tuple(views.shape)}."
                    )
                object_key = "index" if "index" in batch else "object"
            else:
                raise ValueError(
                    f"batch has neither 'image' (per-view items) nor 'views' (sequences); it "
                    f"has {sorted(batch)}."
                )
            rows, num_views = views.shape[:2]
            per_view = (rows,) if "image" in batch else (rows, num_views)
            if "latents" in batch:
                latents = batch["latents"]
                if latents.dim() != len(per_view) + 1 or latents.shape[:-1] != per_view:
                    raise ValueError(
                        f"batch['latents'] must have shape ({', '.join(map(str, per_view))}, "
                        f"L) (one row per view), got {tuple(latents.shape)}."
                    )
                store["latents"].append(_cpu(latents.reshape(rows * num_views, -1)))
            for key, name in ((object_key, "objects"), ("label", "labels")):
                if key in batch:
                    if batch[key].shape != (rows,):
                        raise ValueError(
                            f"batch[{key!r}] must have shape (b,) = ({rows},), got "
                            f"{tuple(batch[key].shape)}."
                        )
                    ids = batch[key].reshape(rows, 1).expand(rows, num_views)
                    store[name].append(ids.flatten().long().cpu())
            store["z"].append(_cpu(_embed_views(encoder, views).flatten(0, 1)))
    if not store["z"]:
        raise ValueError("the data yielded no views; pass a non-empty dataset or loader.")

    def cat(name: str) -> Tensor | None:
        if not store[name]:
            return None
        if len(store[name]) != len(store["z"]):
            raise ValueError(
                f"only some batches carry {name}; every batch must carry the same keys."
            )
        return torch.cat(store[name])

    return ViewFeatures(
        z=torch.cat(store["z"]), latents=cat("latents"), objects=cat("objects"),
        labels=cat("labels"),
    )
