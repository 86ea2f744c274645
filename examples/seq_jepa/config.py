"""The run's configuration: ``TrainConfig`` with the model's ``SeqJEPAConfig`` nested, the
command line generated from both, the checks that run before any work, and the fields a
resumed run must share with the run it continues.

Presets (``presets.py``) and flags are flat: a key that names a ``SeqJEPAConfig`` field
(``--depth``, ``--variant``, ``--attn-core``, ...) goes to ``config.model``, any other to the
run. Old ``config.json`` files (model fields at the top of ``"train"``) read the same way.
"""

import argparse
import types
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import timm
from model import ACTION_NORM_CALLS, VARIANTS, SeqJEPAConfig
from presets import PRESETS

import jepa_blocks as jb

__all__ = [
    "OPERATIONAL_FIELDS",
    "TrainConfig",
    "checked_config",
    "config_from_values",
    "ignored_on_resume",
    "model_config",
    "parse_args",
    "resolve_config",
]


@dataclass
class TrainConfig:
    """Everything that defines a training run; the model is the nested ``SeqJEPAConfig``
    (its ``dim_action``, ``image_size`` and ``backbone_kwargs`` are filled in from the data
    and the run by :func:`model_config`)."""

    preset: str = "demo"
    model: SeqJEPAConfig = field(default_factory=SeqJEPAConfig)
    dataset: str = "objects"  # objects | 3diebench | cifar100 | stl10-pls
    data_dir: str | None = None
    image_size: int = 32
    objects_size: str = "default"  # built-in dataset scale: small | default | large
    # built-in objects: scene latents (floor hue, light) drawn per view (3DIEBench), per object
    # or fixed (RenderedObjects(nuisances=...))
    nuisances: str = "view"
    action: str = "rot"  # rot | rotcolor (objects, 3diebench); all|crop|jitter|blur; pos
    seq_len: int = 3  # M_tr: observed views per training sequence (plus one target)
    # The official code's init (torchvision zero_init_residual=True, timm's zero_init_last):
    # each residual block starts as the identity. See the demo preset for why it is off there.
    zero_init_residual: bool = True
    epochs: int = 25
    batch_size: int = 64  # GLOBAL batch: split evenly across torchrun ranks
    lr: float = 4e-4
    initial_lr: float = 1e-5
    final_lr: float = 1e-5
    warmup_epochs: int = 20
    weight_decay: float = 1e-3
    ema_base: float = 0.996
    ema_final: float = 1.0
    m_val_max: int = 8
    probe_epochs_linear: int = 300
    probe_epochs_mlp: int = 300
    probe_epochs_linear_regressor: int = 50
    probe_batch_size: int = 256
    path_max: int = 0  # path-integration lengths 1..path_max (0: every length the data allows)
    probe_repeats: int = 1  # built-in data: random sequences per training object for the probes
    seed: int = 0
    # operational (not part of the checkpoint compatibility check)
    num_workers: int = 0
    threads: int = 0  # torch's intra-op threads; 0: torch's default (one per core)
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    compile: bool = False
    sync_bn: bool = False
    nan_policy: str = "stop"  # stop | skip
    log_every: int = 10
    # CollapseMonitor (RankMe, per-dim std, SIGReg statistic, teacher cosine) every k steps;
    # 0 turns it off. It does not change the training (a no-grad look at the step's embeddings).
    monitor_every: int = 25
    save_every_steps: int = 0  # 0: at epoch ends only
    save_every_epochs: int = 1  # at every k-th epoch end (and the last); SIGTERM always saves
    keep_last: int = 3
    max_steps: int = 0  # 0: run all epochs (tests stop early to simulate interruption)
    evaluate: bool = True
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


#: Fields that may differ between a run and its resumption.
OPERATIONAL_FIELDS = (
    "monitor_every",
    "data_dir",
    "num_workers",
    "threads",
    "device",
    "compile",
    "nan_policy",  # a stopped run may be resumed with --nan-policy skip, as the error suggests
    "log_every",
    "save_every_steps",
    "save_every_epochs",
    "keep_last",
    "max_steps",
    "evaluate",
    "progress",
    "probe_epochs_linear",
    "probe_epochs_mlp",
    "probe_epochs_linear_regressor",
    "probe_batch_size",
    "probe_repeats",
    "path_max",
    "extra",
)


#: Model fields set from the data and the run, never from a flag.
DERIVED_MODEL_FIELDS = ("dim_action", "image_size", "backbone_kwargs")
MODEL_FIELDS = tuple(f.name for f in fields(SeqJEPAConfig) if f.name not in DERIVED_MODEL_FIELDS)
RUN_FIELDS = tuple(f.name for f in fields(TrainConfig) if f.name != "model")
#: Model fields a run may change on resume (a choice of kernel, not of weights).
OPERATIONAL_MODEL_FIELDS = ("attn_core",)


def config_from_values(values: Mapping[str, Any]) -> TrainConfig:
    """A ``TrainConfig`` from flat values (a preset, flags, an old ``config.json``'s
    ``"train"``) or nested ones (``"model"``: a dict of ``SeqJEPAConfig`` fields).

    Raises:
        ValueError: a key that is no field of either, or a model value its checks refuse.
    """
    run: dict[str, Any] = {}
    model: dict[str, Any] = {}
    for key, value in values.items():
        if key == "model":
            model.update(value)
        elif key in MODEL_FIELDS:
            model[key] = value
        elif key in RUN_FIELDS:
            run[key] = value
        else:
            raise ValueError(f"unknown configuration key {key!r}.")
    model = {k: v for k, v in model.items() if k not in DERIVED_MODEL_FIELDS}
    return TrainConfig(**run, model=SeqJEPAConfig(**model))


def _flag_type(annotation: Any) -> type:
    """The argparse type of a dataclass field (``int | None`` -> int)."""
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    return annotation if annotation in (int, float, bool) else str


def parse_args(
    argv: list[str] | None = None, *, description: str | None = None
) -> argparse.Namespace:
    """The command line: ``--preset``, ``--out``, ``--resume`` and a flag per field."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="demo", help=f"one of {sorted(PRESETS)}")
    parser.add_argument("--variant", help=f"one of {VARIANTS} (default seq-jepa)")
    parser.add_argument("--data-dir", help="dataset root (paper presets)")
    parser.add_argument(
        "--out", type=Path, help="output directory (default runs/<preset>-<date>-<time>)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints")
    flagged = [f for f in fields(TrainConfig) if f.name in RUN_FIELDS] + [
        f for f in fields(SeqJEPAConfig) if f.name in MODEL_FIELDS
    ]
    for f in flagged:
        if f.name in ("preset", "variant", "data_dir", "extra"):
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = _flag_type(f.type)
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            parser.add_argument(flag, type=kind, default=None)
    return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """Preset, then command-line overrides. Errors here come before any work starts."""
    if args.preset not in PRESETS:
        raise SystemExit(
            f"error: unknown preset {args.preset!r}; choose one of {', '.join(sorted(PRESETS))}."
        )
    values: dict[str, Any] = {"preset": args.preset, **PRESETS[args.preset]}
    for name in (*RUN_FIELDS, *MODEL_FIELDS):
        given = getattr(args, name, None)
        if given is not None:
            values[name] = given
    variant = values.get("variant", "seq-jepa")
    if variant not in VARIANTS:
        raise SystemExit(f"error: unknown variant {variant!r}; choose one of {VARIANTS}.")
    if values.get("action_norm_calls", "single") not in ACTION_NORM_CALLS:
        raise SystemExit(
            f"error: --action-norm-calls must be one of {', '.join(ACTION_NORM_CALLS)}, got "
            f"{values['action_norm_calls']!r}."
        )
    attn_core = values.get("attn_core")
    if attn_core is not None and attn_core not in jb.ATTENTION_CORES:
        raise SystemExit(
            f"error: --attn-core must be one of {', '.join(jb.ATTENTION_CORES)}, got "
            f"{attn_core!r}."
        )
    lam = values.get("sigreg_lambda", 0.05)
    if not 0.0 <= lam <= 1.0:
        raise SystemExit(f"error: --sigreg-lambda must be in [0, 1], got {lam} (LeJEPA: 0.05).")
    try:
        config = config_from_values(values)
    except ValueError as error:  # the model's own checks
        raise SystemExit(f"error: {error}") from None
    if config.dataset != "objects" and not config.data_dir:
        raise SystemExit(
            f"error: preset {config.preset!r} trains on {config.dataset}, which is not built in: "
            "pass --data-dir pointing at the dataset root."
        )
    if config.nan_policy not in ("stop", "skip"):
        raise SystemExit(
            f"error: --nan-policy must be 'stop' or 'skip', got {config.nan_policy!r}."
        )
    if config.precision not in ("auto", "fp32", "bf16", "fp16"):
        raise SystemExit(f"error: unknown --precision {config.precision!r}.")
    if config.monitor_every < 0:
        raise SystemExit(
            f"error: --monitor-every must be >= 0 (0 turns the collapse monitor off), got "
            f"{config.monitor_every}."
        )
    if config.threads < 0:
        raise SystemExit(
            f"error: --threads must be >= 0 (0: torch's default), got {config.threads}."
        )
    if config.save_every_epochs < 1:
        raise SystemExit(
            f"error: --save-every-epochs must be >= 1, got {config.save_every_epochs} (the last "
            "epoch always saves; --save-every-steps adds saves within epochs)."
        )
    if config.seq_len < 1 or config.m_val_max < 1 or config.epochs < 1:
        raise SystemExit("error: --seq-len, --m-val-max and --epochs must be >= 1.")
    backbone = config.model.backbone
    if not config.zero_init_residual and _timm_module(backbone) != "timm.models.resnet":
        raise SystemExit(
            f"error: --no-zero-init-residual sets timm's zero_init_last, which only ResNets "
            f"(resnet*, seresnet*, ...) have; --backbone {backbone!r} is not one. Drop "
            "the flag (add --zero-init-residual under the demo preset) or pick a ResNet."
        )
    return config


def _timm_module(name: str) -> str | None:
    """The timm module defining model ``name`` (None for a name timm does not know; the
    backbone adapter reports those with close matches)."""
    return timm.models.model_entrypoint(name).__module__ if timm.is_model(name) else None


#: Checked fields added after checkpoints were written without them, with the value those
#: runs had: left out of the check while they hold it, so such runs still resume (in a
#: mismatch message, '<missing>' for one of these fields means this default).
ADDED_FIELD_DEFAULTS: dict[str, Any] = {
    "action_norm_calls": "single",
    "nuisances": "view",
    "sigreg_lambda": 0.05,
    "sigreg_slices": 1024,
}


def model_config(config: TrainConfig, dim_action: int) -> SeqJEPAConfig:
    """``config.model`` completed from the data (``dim_action``) and the run (``image_size``
    for ViT backbones; the residual init, passed to timm only when off, so its default stands
    for every other backbone)."""
    kwargs = {} if config.zero_init_residual else {"zero_init_last": False}
    return replace(
        config.model,
        dim_action=dim_action,
        image_size=config.image_size,
        backbone_kwargs={**config.model.backbone_kwargs, **kwargs},
    )


def ignored_on_resume() -> tuple[str, ...]:
    """Checked-config keys a resumed run may change or lack: the operational model fields,
    and the model fields that ``"train"`` carried (flat) before the model was nested: they are
    checked under ``"model"``."""
    moved = ("variant", "backbone", "cifar_stem", "dim_action_embed", "depth", "heads",
             "pred_hidden", "dropout", "action_norm_calls", "sigreg_lambda")
    return (
        *(f"model.{name}" for name in OPERATIONAL_MODEL_FIELDS),
        *(f"train.{name}" for name in moved),
    )


def checked_config(config: TrainConfig, model_cfg: SeqJEPAConfig) -> dict[str, Any]:
    """The fields a resumed run must share with the run that wrote the checkpoint."""
    train = {
        k: v for k, v in asdict(config).items() if k not in (*OPERATIONAL_FIELDS, "model")
    }
    checked = {"train": train, "model": model_cfg.to_dict()}
    checked["model"].pop("image_size", None)  # train.image_size, which is checked
    for section in checked.values():
        for key, default in ADDED_FIELD_DEFAULTS.items():
            if key in section and section[key] == default:
                del section[key]
    return checked


