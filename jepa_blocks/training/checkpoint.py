"""Crash-safe checkpoints: a directory manager for exact resume.

A training run must survive being killed at any instant: the last good checkpoint is never
overwritten in place (write a temporary file, fsync, rename, fsync the directory), a corrupt
or truncated file is skipped with a warning in favour of the previous good one, and resume
is exact because every random number generator in play is saved with the model, optimizer,
scheduler, scaler and data position.

Everything is saved so that ``torch.load(..., weights_only=True)`` can read it back: only
tensors, dicts, lists, tuples, str, bytes, int, float, bool, None, ``torch.Size``,
``torch.dtype`` and ``torch.device``. :meth:`CheckpointManager.save` checks this *before*
writing, because an unloadable checkpoint is only discovered when it is needed most.

Typical use (the manager never touches a model itself; the caller owns what goes in
``state``)::

    manager = CheckpointManager(out_dir, keep_last=3, config=config, ignore_keys=("epochs",))
    payload = manager.load_latest()
    if payload is not None:
        model.load_state_dict(payload["state"]["model"])
        restore_rng_state(payload["state"]["rng"], generators={"sampler": sampler_gen})
    ...
    manager.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                  "rng": capture_rng_state({"sampler": sampler_gen})},
                 step=step, epoch=epoch, metric=val_loss)

Under ``torchrun``/DDP, call :meth:`CheckpointManager.save` on rank 0 only.
"""

import logging
import math
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from jepa_blocks.training.atomic import atomic_save, atomic_write, fsync_directory
from jepa_blocks.training.config_diff import config_differences
from jepa_blocks.training.serialization import (
    check_weights_only_safe,
    kind_name,
    weights_only_safe,
)

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "ConfigMismatchError",
    "CheckpointManager",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the payload layout written by :class:`CheckpointManager`."""

_CKPT_RE = re.compile(r"^ckpt-(\d+)\.pt$")
# Temporary files written by atomic_write for the manager's own names: ".<final>.<hex>.tmp".
_TMP_RE = re.compile(r"^\.(?:ckpt-\d+\.pt|best\.pt)\.[0-9a-f]+\.tmp$")
_BEST_NAME = "best.pt"
_PAYLOAD_KEYS = ("format_version", "library_version", "config", "step", "epoch", "metric", "state")


class CheckpointError(ValueError):
    """A checkpoint file cannot be used (corrupt, truncated, unsafe or of an unknown layout)."""


class _UnreadableCheckpointError(CheckpointError):
    """Raised for damaged files, the case where ``load_latest`` may fall back."""


class ConfigMismatchError(ValueError):
    """The checkpoint was written with a different configuration than the one resuming."""


# -------------------------------------------------------------------------------- manager


def installed_version() -> str:
    import sys

    package = sys.modules.get("jepa_blocks")
    version = getattr(package, "__version__", None)
    if isinstance(version, str):
        return str(version)
    from importlib import metadata

    try:
        return metadata.version("jepa-blocks")
    except metadata.PackageNotFoundError:
        return "unknown"


def _check_int(name: str, value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}; pass e.g. {name}=0.")
    return value


class CheckpointManager:
    """Keeps a directory of ``ckpt-<step:09d>.pt`` files plus ``best.pt`` for crash-safe resume.

    Args:
        directory: where checkpoints live (created on the first save).
        keep_last: how many of the newest step checkpoints to keep (>= 1). Older ones are
            deleted only after the new one is durable.
        keep_best: maintain ``best.pt``, a copy (a hard link where the file system allows)
            of the checkpoint with the best ``metric`` so far.
        metric: the metric's name, recorded for the reader (e.g. ``"val_loss"``).
        mode: ``"min"`` or ``"max"``: which direction is better. Ties keep the earlier one.
        config: the run's configuration (a dict of plain values, nested dicts allowed),
            stored in every checkpoint and compared on :meth:`load_latest`.
        ignore_keys: config keys (dotted for nested values, a prefix covers its children)
            allowed to differ on resume, e.g. ``("epochs",)`` to extend a run.
        library_version: recorded in the payload; defaults to the installed jepa_blocks.

    Payload of every file: ``{"format_version", "library_version", "torch_version",
    "config", "step", "epoch", "metric", "metric_name", "state"}``.

    There is no ``latest`` pointer file: the newest readable ``ckpt-*.pt`` by step is the
    latest, which cannot go stale. Temporary files left by a crash are ignored when loading
    and deleted on the next :meth:`save`.

    Raises:
        ValueError: for ``keep_last < 1``, an unknown ``mode`` or a config that
            ``torch.load(weights_only=True)`` could not read back.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        keep_last: int = 3,
        keep_best: bool = True,
        metric: str = "loss",
        mode: str = "min",
        config: Mapping[str, Any] | None = None,
        ignore_keys: Iterable[str] = (),
        library_version: str | None = None,
    ) -> None:
        if type(keep_last) is not int or keep_last < 1:
            raise ValueError(
                f"keep_last must be an int >= 1, got {keep_last!r}; keep at least the newest "
                "checkpoint (e.g. keep_last=3)."
            )
        if mode not in ("min", "max"):
            raise ValueError(
                f"mode must be 'min' or 'max', got {mode!r}; use 'min' for a loss and 'max' "
                "for an accuracy."
            )
        if isinstance(ignore_keys, str):
            raise ValueError(
                f"ignore_keys must be a collection of keys, got the string {ignore_keys!r}; "
                f"write ignore_keys=({ignore_keys!r},)."
            )
        if config is not None:
            if not isinstance(config, Mapping):
                raise ValueError(
                    f"config must be a dict, got {kind_name(config)}; pass "
                    "dataclasses.asdict(config) or vars(args)."
                )
            config = weights_only_safe(config)
            check_weights_only_safe(config, name="config")
        self.directory = Path(directory)
        self.keep_last = keep_last
        self.keep_best = bool(keep_best)
        self.metric = str(metric)
        self.mode = mode
        self.config: dict[str, Any] | None = config
        self.ignore_keys: tuple[str, ...] = tuple(str(k) for k in ignore_keys)
        self.library_version = (
            str(library_version) if library_version is not None else installed_version()
        )
        # (step, metric) of best.pt once known; read lazily from disk on the first save.
        self._best: tuple[int, float] | None = None
        self._best_known = False
        # Saving into a directory that holds checkpoints requires having looked at them first
        # (load_latest), so two runs never mix; _resumed_step is the step resumed from.
        self._attached = False
        self._resumed_step: int | None = None

    # ---------------------------------------------------------------------------- paths

    @property
    def best_path(self) -> Path:
        return self.directory / _BEST_NAME

    def path_for(self, step: int) -> Path:
        """The file name used for ``step``."""
        return self.directory / f"ckpt-{step:09d}.pt"

    def checkpoints(self) -> list[Path]:
        """Step checkpoints present in the directory, oldest first (unverified)."""
        if not self.directory.is_dir():
            return []
        found = []
        for entry in self.directory.iterdir():
            match = _CKPT_RE.match(entry.name)
            if match and entry.is_file():
                found.append((int(match.group(1)), entry))
        return [path for _, path in sorted(found)]

    @staticmethod
    def _step_of(path: Path) -> int:
        match = _CKPT_RE.match(path.name)
        assert match is not None
        return int(match.group(1))

    # ----------------------------------------------------------------------------- save

    def save(
        self,
        state: Mapping[str, Any],
        *,
        step: int,
        epoch: int,
        metric: float | None = None,
    ) -> Path:
        """Write ``ckpt-<step>.pt`` atomically, update ``best.pt``, prune old checkpoints.

        Args:
            state: the caller's state dicts (model, ema, optimizer, scheduler, scaler, rng,
                data position, ...); must survive ``torch.load(weights_only=True)``.
            step: global optimizer step (orders the checkpoints).
            epoch: epoch counter, recorded.
            metric: value of ``self.metric`` for best tracking; None skips it. NaN never
                counts as an improvement.

        Returns:
            The path written.

        Raises:
            ValueError: for a negative/non-int step or epoch, a non-numeric metric, an
                unsafe ``state``, or a directory that already holds checkpoints when this
                manager has neither called :meth:`load_latest` nor saved yet (two runs must
                not mix). Checked before anything is written.

        Checkpoints with a step above ``step`` (left behind when :meth:`load_latest` skipped
        damaged files, or from a run resumed at an earlier step) are removed with a warning
        once the new file is durable, so that the next resume cannot jump back to them.
        """
        step = _check_int("step", step)
        epoch = _check_int("epoch", epoch)
        if metric is not None:
            if isinstance(metric, torch.Tensor) and metric.numel() == 1:
                metric = metric.item()
            if isinstance(metric, bool) or not isinstance(metric, (int, float, np.number)):
                raise ValueError(
                    f"metric must be a float or None, got {kind_name(metric)}; pass float(value)."
                )
            metric = float(metric)
        if not isinstance(state, Mapping):
            raise ValueError(
                f"state must be a dict of state dicts, got {kind_name(state)}; pass e.g. "
                "{'model': model.state_dict(), 'optimizer': optimizer.state_dict()}."
            )
        state = dict(state)
        check_weights_only_safe(state, name="state")

        existing = self.checkpoints()
        if not self._attached and existing:
            names = [p.name for p in existing]
            raise ValueError(
                f"{str(self.directory)!r} already holds checkpoints {names} from an earlier run; "
                "call load_latest() first to resume it, or start a new --out directory."
            )
        later = [p for p in existing if self._step_of(p) > step]

        payload = {
            "format_version": FORMAT_VERSION,
            "library_version": self.library_version,
            "torch_version": str(torch.__version__),
            "config": self.config,
            "step": step,
            "epoch": epoch,
            "metric": metric,
            "metric_name": self.metric,
            "state": state,
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries()
        path = atomic_save(payload, self.path_for(step))

        if self.keep_best and metric is not None and self._improves(step, metric):
            self._publish_best(path)
            self._best = (step, metric)

        # Only now that the new file is durable may older ones go.
        if later:
            logger.warning(
                "removing %s: newer than step %d written after resuming from step %s, so "
                "they belong to an abandoned run (or were unreadable).",
                [p.name for p in later],
                step,
                self._resumed_step,
            )
        kept = [p for p in existing if self._step_of(p) < step]
        doomed = later + kept[: max(0, len(kept) - (self.keep_last - 1))]
        for old in doomed:
            old.unlink(missing_ok=True)
        if doomed:
            fsync_directory(self.directory)
        self._attached = True
        return path

    def _improves(self, step: int, metric: float) -> bool:
        if math.isnan(metric):
            return False
        if not self._best_known:
            self._best = self._read_best()
            self._best_known = True
        if self._best is None:
            return True
        best_step, best_metric = self._best
        if best_step > step:  # best.pt belongs to an abandoned, later timeline
            return True
        return metric < best_metric if self.mode == "min" else metric > best_metric

    def _read_best(self) -> tuple[int, float] | None:
        if not self.best_path.is_file():
            return None
        try:
            # mmap reads only the pickled metadata, not the tensors.
            payload = torch.load(self.best_path, map_location="cpu", weights_only=True, mmap=True)
            best = (int(payload["step"]), float(payload["metric"]))
        except Exception as err:  # noqa: BLE001 - any damage means "no usable best"
            logger.warning("ignoring unreadable %s (%s); it will be replaced.", self.best_path, err)
            return None
        return None if math.isnan(best[1]) else best

    def _publish_best(self, source: Path) -> None:
        def copy(f: IO[bytes]) -> None:
            with open(source, "rb") as src:
                shutil.copyfileobj(src, f, length=16 << 20)

        # Files are never modified in place (always replaced), so a hard link is safe and
        # costs no space; a copy is the fallback on file systems without links.
        tmp = self.directory / f".{_BEST_NAME}.{secrets.token_hex(6)}.tmp"
        try:
            os.link(source, tmp)
        except OSError:
            atomic_write(self.best_path, copy)
            return
        try:
            os.replace(tmp, self.best_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_directory(self.directory)

    def _remove_stale_temporaries(self) -> None:
        for entry in self.directory.iterdir():
            if _TMP_RE.match(entry.name):
                logger.info("removing %s left by an interrupted save", entry)
                entry.unlink(missing_ok=True)

    # ----------------------------------------------------------------------------- load

    def load(
        self, path: str | os.PathLike, *, map_location: Any = "cpu", check_config: bool = False
    ) -> dict[str, Any]:
        """Read one checkpoint with ``torch.load(weights_only=True)``.

        Args:
            path: a file written by :meth:`save` (a step checkpoint or ``best.pt``).
            map_location: as for ``torch.load``.
            check_config: compare its config with this manager's (see :meth:`load_latest`).

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            CheckpointError: naming the path and the cause for a corrupt, truncated or
                unsafe file, one that is not a checkpoint payload, or one written by a newer
                format version.
            ConfigMismatchError: with ``check_config``, on a config mismatch.
        """
        payload = self._read(Path(path), map_location)
        if check_config:
            self._check_config(payload, Path(path))
        return payload

    def _read(self, path: Path, map_location: Any) -> dict[str, Any]:
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
        try:
            payload = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:  # noqa: BLE001 - every read failure means a damaged file
            raise _UnreadableCheckpointError(
                f"checkpoint {str(path)!r} is corrupt or truncated and cannot be read "
                f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                "resume from an earlier checkpoint or delete it."
            ) from err
        if not isinstance(payload, dict) or any(k not in payload for k in _PAYLOAD_KEYS):
            have = sorted(payload) if isinstance(payload, dict) else kind_name(payload)
            raise _UnreadableCheckpointError(
                f"checkpoint {str(path)!r} is not a CheckpointManager payload (expected keys "
                f"{list(_PAYLOAD_KEYS)}, found {have}); load it with torch.load instead."
            )
        version = payload["format_version"]
        if type(version) is not int or version > FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint {str(path)!r} has format_version {version!r} but this jepa_blocks "
                f"reads up to {FORMAT_VERSION}; upgrade jepa_blocks (written by "
                f"{payload.get('library_version')!r})."
            )
        return payload

    def load_latest(self, *, map_location: Any = "cpu") -> dict[str, Any] | None:
        """The newest readable step checkpoint, or None if the directory holds none.

        Scans ``ckpt-*.pt`` from the highest step down; a corrupt or truncated file logs a
        warning naming it and the cause, and the previous one is tried. Temporary files
        from an interrupted save are ignored. Call it before the first :meth:`save` in a
        directory that may hold checkpoints.

        Raises:
            CheckpointError: if checkpoints exist but none is readable (listing each), so
                that a run never silently restarts from scratch over them.
            ConfigMismatchError: if the manager has a ``config`` and the checkpoint's
                differs outside ``ignore_keys``; the message names every differing field
                with both values.
        """
        candidates = self.checkpoints()
        failures = []
        newest_first = list(reversed(candidates))
        for index, path in enumerate(newest_first):
            try:
                payload = self._read(path, map_location)
            except _UnreadableCheckpointError as err:
                failures.append(str(err))
                following = newest_first[index + 1 : index + 2]
                logger.warning(
                    "skipping %s: %s %s",
                    path,
                    err,
                    f"Falling back to {following[0].name}."
                    if following
                    else "No earlier checkpoint is left.",
                )
                continue
            self._check_config(payload, path)
            self._attached = True
            self._resumed_step = int(payload["step"])
            return payload
        if failures:
            raise CheckpointError(
                f"none of the {len(failures)} checkpoint(s) in {str(self.directory)!r} can be "
                "read:\n  " + "\n  ".join(failures) + "\nDelete the damaged files to start "
                "over, or start a new --out directory."
            )
        self._attached = True
        return None

    def _check_config(self, payload: Mapping[str, Any], path: Path) -> None:
        if self.config is None:
            return
        saved = payload.get("config")
        if saved is None:
            logger.warning("%s records no config; cannot check it against the current one.", path)
            return
        diffs = config_differences(saved, self.config, self.ignore_keys)
        if diffs:
            lines = "\n".join(
                f"  {key}: checkpoint {old!r}, now {new!r}" for key, old, new in diffs
            )
            raise ConfigMismatchError(
                f"checkpoint {str(path)!r} was written with a different config "
                f"({len(diffs)} field(s) differ):\n{lines}\n"
                "Start a new --out directory or pass the same config (or declare keys "
                "that may change on resume with ignore_keys=(...))."
            )
