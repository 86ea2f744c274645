"""Shared helpers for the end-to-end tests of ``examples/seq_jepa/train.py``.

The trainer is exercised as users run it: a fresh Python process per run (so resume really
starts from the files on disk, not from state left in this interpreter), with the environment
the tests need (offline, one rendering cache shared by every run of the session, one OMP thread
so that runs are deterministic and do not fight over the 2-core test machine). Every child is
killed if a test fails or times out.

Runs are tiny (the ``smoke`` preset: timm's ``test_resnet``, 60 sequences, 7 steps per epoch,
``log_every=1``), so process start-up (importing torch and timm, single-threaded) dominates.
Hence independent runs go two at a time (:func:`run_parallel`, one per core), and the
uninterrupted reference run is started once per session in the background
(:func:`baseline_run`) and shared by the resume and crash tests.
"""

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from jepa_blocks.data.objects import RenderedObjects

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples" / "seq_jepa"))

from presets import PRESETS  # noqa: E402

__all__ = [
    "REPO",
    "TRAIN",
    "SMOKE",
    "TIMEOUT_S",
    "TrainRun",
    "Background",
    "render_cache",
    "train_env",
    "run_train",
    "run_parallel",
    "start_train",
    "kill_tree",
    "wait_for",
    "baseline_run",
    "copy_run",
    "load_metrics",
    "step_checkpoints",
    "load_checkpoint",
    "assert_tensors_equal",
    "assert_states_equal",
    "assert_no_traceback",
    "all_finite",
]

TRAIN = REPO / "examples" / "seq_jepa" / "train.py"
#: Every test run: the smoke preset, no probes (evaluation is not what these tests are about),
#: no progress bar in the captured output.
SMOKE = ("--preset", "smoke", "--no-evaluate", "--no-progress")
#: Generous: a hang detector on a loaded 2-core machine, not a timing assertion.
TIMEOUT_S = 300.0


@dataclass
class TrainRun:
    """A finished run: exit code, captured output, and its output directory."""

    returncode: int
    stdout: str
    stderr: str
    out: Path

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        return f"exit code {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def render_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``JEPA_BLOCKS_CACHE`` for the session, filled here once with the smoke preset's
    objects so that no run (and no pair of runs started together) renders them again. A fixed
    path under the session's base temp, so every test module's ``cache`` fixture gets the
    same folder."""
    path = tmp_path_factory.getbasetemp() / "jepa-blocks-cache"
    if not path.exists():
        smoke = PRESETS["smoke"]
        # train.py's data.py asks for exactly these (root None -> $JEPA_BLOCKS_CACHE/objects).
        RenderedObjects(
            path / "objects",
            split="train",
            size=smoke["objects_size"],
            image_size=smoke["image_size"],
            seed=0,
        )
    return path


def train_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        JEPA_BLOCKS_CACHE=str(cache),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def _command(args: Sequence[str], launcher: Sequence[str] | None) -> list[str]:
    prefix = [sys.executable, *launcher] if launcher else [sys.executable]
    return [*prefix, str(TRAIN), *args]


_LIVE: set[subprocess.Popen] = set()


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` and everything it started (it leads its own session), then reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    _LIVE.discard(proc)


@atexit.register
def _kill_leftovers() -> None:  # an interrupted session must not leave trainers running
    for proc in list(_LIVE):
        kill_tree(proc)


class Background:
    """``train.py ARGS --out OUT`` running in the background, output to files next to OUT
    (a file, unlike a pipe, can never fill up and block the child)."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        cache: Path,
        out: Path,
        launcher: Sequence[str] | None = None,
        timeout: float = TIMEOUT_S,
    ) -> None:
        self.out = out
        out.parent.mkdir(parents=True, exist_ok=True)
        self.stdout_path = out.with_name(f"{out.name}.stdout")
        self.stderr_path = out.with_name(f"{out.name}.stderr")
        self.deadline = time.monotonic() + timeout
        with open(self.stdout_path, "w") as stdout, open(self.stderr_path, "w") as stderr:
            self.proc = subprocess.Popen(
                _command([*args, "--out", str(out)], launcher),
                cwd=REPO,
                env=train_env(cache),
                stdout=stdout,
                stderr=stderr,
                text=True,
                start_new_session=True,
            )
        _LIVE.add(self.proc)

    def poll(self) -> int | None:
        if self.proc.poll() is None and time.monotonic() > self.deadline:
            self.kill()
            pytest.fail(f"train.py {self.out} still running at its deadline (hung?)")
        return self.proc.poll()

    def kill(self) -> None:
        kill_tree(self.proc)

    def log(self) -> str:
        return self.stdout_path.read_text() + self.stderr_path.read_text()

    def result(self) -> TrainRun:
        """Wait for the exit (killed, and the test failed, past the deadline)."""
        try:
            self.proc.wait(timeout=max(0.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"train.py {self.out} timed out (hung?)\n{self.log()}")
        _LIVE.discard(self.proc)
        return TrainRun(
            self.proc.returncode,
            self.stdout_path.read_text(),
            self.stderr_path.read_text(),
            self.out,
        )


def run_train(
    args: Sequence[str],
    *,
    cache: Path,
    out: Path,
    launcher: Sequence[str] | None = None,
    timeout: float = TIMEOUT_S,
) -> TrainRun:
    """Run ``train.py ARGS --out OUT`` to completion (killed on timeout) and capture it."""
    job = Background(args, cache=cache, out=out, launcher=launcher, timeout=timeout)
    try:
        return job.result()
    finally:
        job.kill()


#: A job for :func:`run_parallel`: (args, out) or (args, out, launcher).
Job = tuple


def run_parallel(jobs: Mapping[str, Job], *, cache: Path, at_once: int = 2) -> dict[str, TrainRun]:
    """Run independent ``train.py`` invocations, ``at_once`` at a time (the start-up, mostly
    imports, is single-threaded: 2 at once use both cores of the test machine)."""
    queue = list(jobs.items())
    running: dict[str, Background] = {}
    results: dict[str, TrainRun] = {}
    try:
        while queue or running:
            while queue and len(running) < at_once:
                name, (args, out, *launcher) = queue.pop(0)
                running[name] = Background(
                    args, cache=cache, out=out, launcher=launcher[0] if launcher else None
                )
            for name, job in list(running.items()):
                if job.poll() is not None:
                    results[name] = job.result()
                    del running[name]
            time.sleep(0.02)
    finally:
        for job in running.values():
            job.kill()
    return {name: results[name] for name in jobs}


@contextmanager
def start_train(args: Sequence[str], *, cache: Path, out: Path) -> Iterator[Background]:
    """Start ``train.py`` in the background; on leaving the block it is killed if alive."""
    job = Background(args, cache=cache, out=out)
    try:
        yield job
    finally:
        job.kill()


def wait_for(
    condition: Any, proc: subprocess.Popen, *, poll_s: float = 0.001, timeout: float = TIMEOUT_S
) -> Any:
    """Poll ``condition()`` until it returns something truthy (returned) or ``proc`` exits
    (None). Fails the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            return condition() or None
        time.sleep(poll_s)
    pytest.fail(f"timed out after {timeout} s waiting for {condition}")


_BASELINE: list[Background] = []


def baseline_run(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Background:
    """The uninterrupted run of ``SMOKE`` (2 epochs, 14 steps), started once per session in
    the background (call ``.result()`` when it is needed; it overlaps with the caller's own
    runs) and shared by every test that compares against it. Never modify its folder:
    :func:`copy_run` it."""
    if not _BASELINE:
        out = tmp_path_factory.mktemp("baseline") / "run"
        _BASELINE.append(Background(SMOKE, cache=cache, out=out))
    return _BASELINE[0]


def copy_run(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination)
    return destination


def _reject_constant(name: str) -> None:
    raise ValueError(f"metrics.json holds {name}: not strict JSON")


def load_metrics(out: Path) -> dict[str, Any]:
    """Parse metrics.json strictly: NaN / Infinity are an error, as in most JSON readers."""
    return json.loads((out / "metrics.json").read_text(), parse_constant=_reject_constant)


def step_checkpoints(out: Path) -> list[Path]:
    """``ckpt-*.pt`` in ``OUT/checkpoints``, oldest first (temporary files excluded)."""
    folder = out / "checkpoints"
    return sorted(folder.glob("ckpt-*.pt")) if folder.is_dir() else []


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The payload, read the strict way users are told to read it."""
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_tensors_equal(a: Any, b: Any, where: str = "state") -> None:
    """Recursive exact equality of nested dicts / lists of tensors and plain values."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), f"{where}: tensor vs {type(b).__name__}"
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{tuple(a.shape)}"
        assert torch.equal(a, b), f"{where}: max |diff| {(a.double() - b.double()).abs().max()}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys differ"
        for key in a:
            assert_tensors_equal(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_tensors_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_states_equal(a: dict[str, Any], b: dict[str, Any]) -> None:
    """What an exact resume must reproduce bit for bit: online model, EMA target (BN buffers
    and schedule step included), optimizer moments, LR scheduler, data position, history."""
    for key in ("model", "target", "optimizer", "scheduler", "position", "history"):
        assert_tensors_equal(a["state"][key], b["state"][key], key)


def assert_no_traceback(text: str) -> None:
    assert "Traceback (most recent call last)" not in text, text


def all_finite(state: dict[str, Any]) -> bool:
    tensors = [v for v in state.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    return bool(tensors) and all(bool(torch.isfinite(t).all()) for t in tensors)
