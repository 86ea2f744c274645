"""Running an example's ``train.py`` as users do, for the end-to-end tests of the LeJEPA and
I-JEPA examples: fresh background processes with the test environment, their output in files,
strict ``metrics.json`` reading, checkpoint loading and exact state comparison."""

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
#: A hang detector on a loaded 2-core machine, not a timing assertion.
TIMEOUT_S = 300.0
#: What torchrun sets for each of 2 ranks on one machine (launched directly: a torchrun
#: launcher would be one more interpreter importing torch, ~4 s of CPU on the test machine).
TORCHRUN_ENV = {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"}


def free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def load_script(name: str, path: Path) -> ModuleType:
    """A script under a module name of its own (``train`` is seq-JEPA's in the test session)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", JEPA_BLOCKS_CACHE=str(cache), OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


class ExampleRun:
    """``SCRIPT ARGS --out OUT`` in the background, its output in files beside OUT."""

    def __init__(self, script: Path, args: tuple[str, ...], out: Path, cache: Path, *,
                 name: str = "", env: dict[str, str] | None = None) -> None:
        self.out = out
        stem = name or out.name
        self.log_paths = (out.with_name(stem + ".stdout"), out.with_name(stem + ".stderr"))
        with open(self.log_paths[0], "w") as stdout, open(self.log_paths[1], "w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, str(script), *args, "--out", str(out)],
                cwd=REPO, env={**run_env(cache), **(env or {})}, stdout=stdout, stderr=stderr,
                text=True, start_new_session=True,
            )

    def wait(self) -> "ExampleRun":
        try:
            self.proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.out} timed out\n{self.output}")
        return self

    def kill(self) -> None:
        """SIGKILL the run and what it started (it leads its own session), if still alive."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    @property
    def returncode(self) -> int:
        return self.proc.returncode

    @property
    def stdout(self) -> str:
        return self.log_paths[0].read_text()

    @property
    def stderr(self) -> str:
        return self.log_paths[1].read_text()

    @property
    def output(self) -> str:
        return f"exit {self.proc.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def strict_metrics(out: Path) -> dict[str, Any]:
    """``metrics.json``, refusing NaN / Infinity as most JSON readers do."""

    def reject(name: str) -> None:
        raise ValueError(f"metrics.json holds {name}: not strict JSON")

    return json.loads((out / "metrics.json").read_text(), parse_constant=reject)


def checkpoint_state(out: Path, step: int) -> dict[str, Any]:
    path = out / "checkpoints" / f"ckpt-{step:09d}.pt"
    return torch.load(path, map_location="cpu", weights_only=True)["state"]


def assert_equal(a: Any, b: Any, where: str) -> None:
    """Exactly equal, recursively (tensors bit for bit), naming the first difference."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where}: max |diff| {(a.double() - b.double()).abs().max()}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys differ"
        for key in a:
            assert_equal(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
