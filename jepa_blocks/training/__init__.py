"""Training infrastructure shared by every example: the one atomic write, RNG capture,
checkpoints with exact resume, learning-rate schedules and parameter groups, export to stock
timm, the one unwrap of DDP / compile wrappers, the resumable epoch loop and the main job's
driver (``run``: output folder, trainer, training, report, exit codes)."""

from jepa_blocks.training.atomic import atomic_save, atomic_write, fsync_directory
from jepa_blocks.training.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    CheckpointManager,
    ConfigMismatchError,
)
from jepa_blocks.training.distributed import Distributed
from jepa_blocks.training.export import (
    export_timm_encoder,
    load_timm_encoder,
    timm_encoder_state_dict,
)
from jepa_blocks.training.loop import EpochLoop
from jepa_blocks.training.reporting import finite_or_null, parameter_checksum, precision_dtype
from jepa_blocks.training.rng import capture_rng_state, restore_rng_state
from jepa_blocks.training.run import NonFiniteLossError, default_out_dir, prepare_out_dir, run
from jepa_blocks.training.schedules import (
    adamw,
    load_optimizer_state,
    parameter_groups,
    warmup_cosine,
)
from jepa_blocks.training.serialization import check_weights_only_safe, weights_only_safe
from jepa_blocks.training.unwrap import unwrap_model

__all__ = [
    "FORMAT_VERSION",
    "NonFiniteLossError",
    "CheckpointError",
    "CheckpointManager",
    "ConfigMismatchError",
    "Distributed",
    "EpochLoop",
    "adamw",
    "atomic_save",
    "atomic_write",
    "capture_rng_state",
    "check_weights_only_safe",
    "default_out_dir",
    "export_timm_encoder",
    "finite_or_null",
    "fsync_directory",
    "load_optimizer_state",
    "load_timm_encoder",
    "parameter_checksum",
    "parameter_groups",
    "precision_dtype",
    "prepare_out_dir",
    "restore_rng_state",
    "run",
    "timm_encoder_state_dict",
    "unwrap_model",
    "warmup_cosine",
    "weights_only_safe",
]
