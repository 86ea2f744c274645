"""Shared helpers for the benchmarks: timing, ceilings, peak memory, machine info, output.

Why it exists: every benchmark in ``benchmarks/`` must report the same statistics the same way
(median and spread of several repetitions, a matmul ceiling measured in the same run, peak
memory measured rather than guessed, the machine it ran on), so their tables can be compared.

* :func:`time_fn` -- median / quartiles / min / max in milliseconds. CUDA work is timed with
  CUDA events after a synchronize; CPU work with ``time.perf_counter``.
* :func:`matmul_ceiling` -- GFLOP/s of a square matmul in the benchmark's dtype.
* :func:`peak_memory` -- extra bytes allocated at peak during one call: on CUDA from
  ``torch.cuda.max_memory_allocated`` (minus what was allocated before); on CPU from the
  profiler's allocator events (``profile_memory=True``), i.e. tensors allocated through the
  torch CPU allocator, not the Python heap or library scratch buffers.
* :func:`saved_tensor_bytes` -- bytes the autograd graph keeps for backward
  (``saved_tensors_hooks``), deduplicated by storage.
* :func:`machine_description`, :func:`write_json`, :func:`markdown_table`.
"""

import contextlib
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

__all__ = [
    "Timing",
    "configure_threads",
    "machine_description",
    "markdown_table",
    "matmul_ceiling",
    "peak_memory",
    "saved_tensor_bytes",
    "synchronize",
    "time_fn",
    "write_json",
]


@dataclass(frozen=True)
class Timing:
    """Wall-clock statistics of repeated calls, in milliseconds."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    min_ms: float
    max_ms: float
    reps: int

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms

    def as_dict(self) -> dict:
        return asdict(self)

    def spread(self) -> str:
        """``"q1-q3"`` as printed in the tables."""
        return f"{self.q1_ms:.3g}-{self.q3_ms:.3g}"


def configure_threads(threads: int | None) -> int:
    """Pin torch's intra-op threads (``None`` keeps the default); return the count in use."""
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _quartiles(samples: Sequence[float]) -> tuple[float, float]:
    if len(samples) < 2:
        return samples[0], samples[0]
    q = statistics.quantiles(samples, n=4, method="inclusive")
    return q[0], q[2]


def time_fn(
    fn: Callable[[], object],
    *,
    device: torch.device | str = "cpu",
    warmup: int = 1,
    reps: int = 5,
    max_seconds: float | None = None,
) -> Timing:
    """Time ``fn()`` ``reps`` times after ``warmup`` untimed calls.

    ``max_seconds`` caps the timed phase: after each repetition, if the elapsed time says the
    remaining ones would exceed it, timing stops early (at least one repetition is kept); the
    number actually run is in ``Timing.reps``.
    """
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    synchronize(device)
    samples: list[float] = []
    start_all = time.perf_counter()
    for _ in range(reps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
        if max_seconds is not None and time.perf_counter() - start_all > max_seconds:
            break
    q1, q3 = _quartiles(samples)
    return Timing(
        median_ms=statistics.median(samples),
        q1_ms=q1,
        q3_ms=q3,
        min_ms=min(samples),
        max_ms=max(samples),
        reps=len(samples),
    )


def matmul_ceiling(
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    size: int | None = None,
    reps: int = 5,
) -> float:
    """Median GFLOP/s of a ``size^3`` matmul (2048 on CPU, 8192 on CUDA by default)."""
    device = torch.device(device)
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    timing = time_fn(lambda: torch.mm(a, b), device=device, warmup=1, reps=reps)
    return 2.0 * size**3 / (timing.median_ms * 1e-3) / 1e9


@contextlib.contextmanager
def _silenced_stderr_fd():
    """Silence file descriptor 2 itself (C++ logging bypasses ``sys.stderr``)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _cpu_peak_bytes(fn: Callable[[], object]) -> int:
    from torch.profiler import ProfilerActivity, profile

    # Kineto logs profiler start/stop lines from C++ on stderr; they are noise here.
    with _silenced_stderr_fd():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            result = fn()
        del result
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        if event.device_type() != torch.autograd.DeviceType.CPU:
            continue
        current += event.nbytes()
        peak = max(peak, current)
    return peak


def peak_memory(fn: Callable[[], object], *, device: torch.device | str = "cpu") -> int:
    """Peak bytes allocated by one call of ``fn`` beyond what was allocated before it.

    CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``. CPU: the
    running sum of the profiler's allocator events (torch tensors only). The result of ``fn``
    counts while alive (it is dropped after the call).
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        del result
        return int(peak)
    return _cpu_peak_bytes(fn)


def saved_tensor_bytes(fn: Callable[[], object]) -> int:
    """Bytes of the tensors autograd saves for backward while running ``fn`` (by storage)."""
    storages: dict[tuple, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[(storage.data_ptr(), t.device)] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = fn()
    del result
    return sum(storages.values())


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(device: torch.device | str = "cpu") -> dict:
    """What the numbers were measured on: CPU/GPU model, cores, threads, versions, date."""
    device = torch.device(device)
    info = {
        "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    try:
        info["load_avg_1m"] = os.getloadavg()[0]
    except OSError:
        pass
    return info


def write_json(path: str | os.PathLike, payload: dict) -> None:
    """Write ``payload`` as indented JSON, creating the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
