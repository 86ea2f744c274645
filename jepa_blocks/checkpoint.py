"""Crash-safe checkpoints: atomic writes, RNG capture, and a directory manager for resume.

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
import random
import re
import secrets
import shutil
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePath
from typing import IO, Any

import numpy as np
import torch

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "ConfigMismatchError",
    "CheckpointManager",
    "atomic_save",
    "capture_rng_state",
    "restore_rng_state",
    "check_weights_only_safe",
    "weights_only_safe",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the payload layout written by :class:`CheckpointManager`."""

_CKPT_RE = re.compile(r"^ckpt-(\d+)\.pt$")
# Temporary files written by _atomic_write for the manager's own names: ".<final>.<hex>.tmp".
_TMP_RE = re.compile(r"^\.(?:ckpt-\d+\.pt|best\.pt)\.[0-9a-f]+\.tmp$")
_BEST_NAME = "best.pt"
_PAYLOAD_KEYS = ("format_version", "library_version", "config", "step", "epoch", "metric", "state")


class CheckpointError(ValueError):
    """A checkpoint file cannot be used (corrupt, truncated, unsafe or of an unknown layout)."""


class _UnreadableCheckpointError(CheckpointError):
    """Raised for damaged files, the case where ``load_latest`` may fall back."""


class ConfigMismatchError(ValueError):
    """The checkpoint was written with a different configuration than the one resuming."""


# ------------------------------------------------------------------------- atomic writes


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; directories cannot be opened this way on Windows.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, then publish it atomically.

    The final name either keeps its old content or gets the complete new content, never a
    partial file: the data is fsynced before ``os.replace`` and the directory after it.
    """
    path = Path(path)
    directory = path.parent
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # os.open with 0o666 lets the umask decide permissions, as a plain open() would.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(directory)
    return path


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` that never leaves a partial file under ``path``.

    Writes to a temporary file in the same directory, flushes and fsyncs it, renames it onto
    ``path`` with ``os.replace`` (atomic on POSIX and Windows), then fsyncs the directory. If
    anything fails, the temporary file is removed and an existing ``path`` is left untouched.

    Returns:
        The final path.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(
            f"directory {str(path.parent)!r} does not exist; create it before saving "
            f"(e.g. Path({str(path.parent)!r}).mkdir(parents=True))."
        )
    return _atomic_write(path, lambda f: torch.save(obj, f))


# ------------------------------------------------------------------ weights_only safety

_SCALARS = (str, bytes, int, float, bool, type(None))
_TORCH_LEAVES = (torch.Size, torch.dtype, torch.device)


def _unsafe_leaf(obj: Any, where: str) -> str | None:
    """Path and type of the first value that ``torch.load(weights_only=True)`` rejects."""
    kind = type(obj)
    if kind in _SCALARS or kind in _TORCH_LEAVES:
        return None
    if kind is torch.Tensor or kind is torch.nn.Parameter:
        return None
    if kind is dict or kind is OrderedDict:
        for key, value in obj.items():
            if type(key) not in _SCALARS:
                return f"{where} has a key of type {_kind_name(key)}"
            found = _unsafe_leaf(value, f"{where}[{key!r}]")
            if found is not None:
                return found
        return None
    if kind is list or kind is tuple:
        for i, value in enumerate(obj):
            found = _unsafe_leaf(value, f"{where}[{i}]")
            if found is not None:
                return found
        return None
    return f"{where} is a {_kind_name(obj)}"


def _kind_name(obj: Any) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def check_weights_only_safe(obj: Any, *, name: str = "state") -> None:
    """Raise ``ValueError`` if ``torch.load(weights_only=True)`` could not read ``obj`` back.

    Accepted: tensors and ``nn.Parameter``, dict / OrderedDict (str, int, float, bool or None
    keys), list, tuple, str, bytes, int, float, bool, None, ``torch.Size``, ``torch.dtype``
    and ``torch.device``. Subclasses (a ``str`` enum, ``torch.__version__``, a namedtuple)
    are rejected because pickle records their class.

    Raises:
        ValueError: naming the first offending entry (e.g. ``state['rng']['numpy']``) and
            the fix.
    """
    found = _unsafe_leaf(obj, name)
    if found is not None:
        raise ValueError(
            f"{found}, which torch.load(weights_only=True) cannot read back; convert it with "
            "jepa_blocks.checkpoint.weights_only_safe(...) (numpy arrays -> tensors, numpy "
            "scalars and str/int/float subclasses -> builtins, paths -> str, namedtuples -> "
            "tuples) or store a plain state_dict()."
        )


def weights_only_safe(obj: Any) -> Any:
    """Return a copy of ``obj`` that ``torch.load(weights_only=True)`` can read back.

    Converts numpy arrays to tensors, numpy scalars and subclasses of str/int/float/bool to
    the builtin type, paths to str, other mappings to dict, namedtuples and other tuple
    subclasses to tuple, sets to sorted lists. Tensors are returned as they are (no copy).
    Optimizer, LR-scheduler and ``GradScaler`` state dicts of PyTorch are already safe;
    this is for the caller's own extras (data positions, metrics history, numpy state).

    Raises:
        ValueError: for a value with no safe equivalent (a function, a module, ...).
    """
    return _to_safe(obj, "obj")


def _to_safe(obj: Any, where: str) -> Any:
    kind = type(obj)
    if kind in _SCALARS or kind in _TORCH_LEAVES or isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.array(obj, copy=True))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, Mapping):
        return {
            _to_safe(key, f"{where} key"): _to_safe(value, f"{where}[{key!r}]")
            for key, value in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        items = [_to_safe(value, f"{where}[{i}]") for i, value in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, (set, frozenset)):
        try:
            items = sorted(obj)
        except TypeError:  # mixed types: any order, but a deterministic one is preferred
            items = list(obj)
        return [_to_safe(value, f"{where} item") for value in items]
    raise ValueError(
        f"{where} is a {_kind_name(obj)}, which has no weights_only-safe form; store its "
        "state_dict() or plain numbers instead."
    )


# ------------------------------------------------------------------------------- RNG state


def capture_rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict:
    """Snapshot every random number generator that can influence training.

    Args:
        generators: named ``torch.Generator`` objects in play besides the global ones
            (a sampler's, a dataset's), saved under their names.

    Returns:
        ``{"python", "numpy", "torch", "cuda", "generators"}``, readable with
        ``torch.load(weights_only=True)``: Python's ``random`` state as a list of ints,
        numpy's legacy global MT19937 state with its key as an int64 tensor, torch's CPU
        state, one state per visible CUDA device (empty when CUDA is unavailable) and one
        per named generator.
    """
    generators = dict(generators or {})
    for name, gen in generators.items():
        if type(name) is not str or not isinstance(gen, torch.Generator):
            raise ValueError(
                f"generators must map names (str) to torch.Generator objects, got "
                f"{name!r}: {_kind_name(gen)}; pass e.g. {{'sampler': sampler.generator}}."
            )
    version, mt_state, gauss_next = random.getstate()
    bit_generator, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {
        "python": {
            "version": int(version),
            "state": [int(v) for v in mt_state],
            "gauss_next": gauss_next,
        },
        "numpy": {
            "bit_generator": str(bit_generator),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        "cuda": list(cuda),
        "generators": {name: gen.get_state() for name, gen in generators.items()},
    }


def restore_rng_state(
    state: Mapping[str, Any], *, generators: Mapping[str, torch.Generator] | None = None
) -> None:
    """Put every generator back to a :func:`capture_rng_state` snapshot.

    Args:
        state: the snapshot (tensors may live on any device; they are moved to CPU).
        generators: the live generators to restore, by the names used at capture. Names in
            ``state`` that are not passed here are left alone.

    Raises:
        ValueError: if ``state`` lacks a section or a requested generator, or a state is
            rejected (wrong size, wrong device); nothing has changed then (a part-way
            failure puts the previous states back before raising).

    CUDA states are restored for ``min(saved, visible)`` devices, with a warning when the
    counts differ (resuming on another machine cannot be bit-exact then).
    """
    missing = [k for k in ("python", "numpy", "torch", "cuda", "generators") if k not in state]
    if missing:
        raise ValueError(
            f"RNG state lacks {missing}; pass the dict returned by capture_rng_state() "
            "(e.g. payload['state']['rng'])."
        )
    generators = dict(generators or {})
    absent = sorted(set(generators) - set(state["generators"]))
    if absent:
        raise ValueError(
            f"RNG state has no generator named {absent} (saved: "
            f"{sorted(state['generators'])}); pass the same names to capture_rng_state() "
            "when saving."
        )
    snapshot = capture_rng_state(generators)
    try:
        _set_rng_state(state, generators)
    except Exception as err:
        _set_rng_state(snapshot, generators)
        raise ValueError(
            f"RNG state could not be restored ({type(err).__name__}: {err}); every generator "
            "was put back as it was. Pass an unmodified capture_rng_state() snapshot, with "
            "generators of the same device as when it was captured."
        ) from err
    except BaseException:
        _set_rng_state(snapshot, generators)
        raise


def _set_rng_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator]) -> None:
    for name, gen in generators.items():
        gen.set_state(state["generators"][name].cpu())
    torch.set_rng_state(state["torch"].cpu())
    numpy_state = state["numpy"]
    keys = numpy_state["keys"]
    keys = keys.cpu().numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state(
        (
            numpy_state["bit_generator"],
            keys.astype(np.uint32),
            int(numpy_state["pos"]),
            int(numpy_state["has_gauss"]),
            float(numpy_state["cached_gaussian"]),
        )
    )
    python_state = state["python"]
    random.setstate(
        (python_state["version"], tuple(python_state["state"]), python_state["gauss_next"])
    )
    saved_cuda = list(state["cuda"])
    if saved_cuda and torch.cuda.is_available():
        count = torch.cuda.device_count()
        if count != len(saved_cuda):
            logger.warning(
                "RNG state holds %d CUDA device state(s) but %d device(s) are visible; "
                "restoring the first %d, so resume is not bit-exact on the others.",
                len(saved_cuda),
                count,
                min(count, len(saved_cuda)),
            )
        for index, cuda_state in enumerate(saved_cuda[:count]):
            torch.cuda.set_rng_state(cuda_state.cpu(), device=index)
    elif saved_cuda:
        logger.warning(
            "RNG state holds %d CUDA device state(s) but CUDA is not available; CUDA "
            "generators are not restored.",
            len(saved_cuda),
        )


# ---------------------------------------------------------------------------- config diff


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _normalise(value: Any) -> Any:
    # A config read from JSON/argparse gives lists where the saved one may hold tuples.
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


_MISSING = "<missing>"


def _config_differences(
    saved: Mapping[str, Any], current: Mapping[str, Any], ignore: tuple[str, ...]
) -> list[tuple[str, Any, Any]]:
    saved_flat, current_flat = _flatten(saved), _flatten(current)

    def ignored(key: str) -> bool:
        return any(key == k or key.startswith(f"{k}.") for k in ignore)

    diffs = []
    for key in sorted(set(saved_flat) | set(current_flat)):
        if ignored(key):
            continue
        old, new = saved_flat.get(key, _MISSING), current_flat.get(key, _MISSING)
        if _normalise(old) != _normalise(new):
            diffs.append((key, old, new))
    return diffs


# -------------------------------------------------------------------------------- manager


def _library_version() -> str:
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
                    f"config must be a dict, got {_kind_name(config)}; pass "
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
            str(library_version) if library_version is not None else _library_version()
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
                    f"metric must be a float or None, got {_kind_name(metric)}; pass float(value)."
                )
            metric = float(metric)
        if not isinstance(state, Mapping):
            raise ValueError(
                f"state must be a dict of state dicts, got {_kind_name(state)}; pass e.g. "
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
            _fsync_directory(self.directory)
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
            _atomic_write(self.best_path, copy)
            return
        try:
            os.replace(tmp, self.best_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_directory(self.directory)

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
            have = sorted(payload) if isinstance(payload, dict) else _kind_name(payload)
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
        diffs = _config_differences(saved, self.config, self.ignore_keys)
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
