"""Benchmark SIGReg forward+backward: our O(n m)-memory blocks against a materialising baseline.

Why it exists: ``jepa_blocks.losses.sigreg`` computes the empirical characteristic function knot by
knot in a custom autograd function (``_EmpiricalCF``) so that memory stays ``O(n m)``, where
the straightforward implementation keeps ``t * x`` for every sample, slice and knot, an
``(n, m, knots)`` tensor. This script measures what that costs and saves, in the same run:

* ``baseline`` -- written here, the textbook SIGReg (paper Algorithm 1): ``x = z @ A``,
  ``tx = x[..., None] * t`` (the ``(n, m, knots)`` tensor), ``mean cos / mean sin`` over
  ``n``, ``torch.trapezoid`` of ``|phi - exp(-t^2/2)|^2 exp(-t^2/2)`` over the knots, times
  ``n``, mean over slices; plain autograd.
* ``sigreg`` -- our function on the same directions (it validates its inputs: a finiteness
  check of ``z`` and a norm check of the directions, each a host sync on CUDA).
* ``SIGReg`` -- our module (``check_finite=False``, the sync-free training path); its cost
  includes drawing its directions (a counter hash of ``(seed, step)``) on every call. At
  step 0 those are the directions the other two get, so all three compute the same number.

Every pass is forward + backward: ``torch.autograd.grad(loss, z)`` for ``z (n, d)``, the
directions fixed. Before any timing, the baseline is checked equal to ``sigreg`` and to
``SIGReg`` (value and gradient, relative error <= 1e-5 in fp32, and in fp64) on a small size.

Peak memory (extra bytes of one call beyond the inputs; the returned gradient counts):
on CUDA ``torch.cuda.max_memory_allocated``; on the CPU the running total of the torch CPU
allocator's allocation/free events recorded by the profiler (``profile_memory=True``,
``benchmarks/_common.py``), i.e. every torch tensor, exact to the byte, but not the Python
heap or a library's private scratch space. ``tracemalloc`` would see none of the tensors.

The baseline's memory is predicted before it runs, from its bytes per ``(n m knots)`` element
measured at a small calibration size in the same run; a configuration whose prediction exceeds
``--max-baseline-gb`` (6 GB on the CPU, 80 % of the device on CUDA) is skipped and reported
as ``skipped (would need X GB)``.

Timing: the profiled memory call runs first and doubles as a warm-up for calls of a second or
more (then every call allocates fresh pages anyway); shorter ones get ``--warmup`` more calls.
Repetitions are interleaved across the implementations (order alternating) so that load drift
on a shared machine hits all alike; ``--max-seconds`` caps the timing of one configuration
(at least one repetition). CUDA calls are timed with CUDA events after a synchronize.

Reference lines (``jepa-family.md`` section 6): paper Table 6 (V100) 0.465 ms at
n = m = 512 and 8.69 ms at n = m = 8192; our goal on an H200 is < 2 ms at n = m = 8192.
The paper does not give the embedding width of that table; we use ``d = 512`` (``--dim``).

Usage::

    python benchmarks/sigreg.py --quick                      # smoke run, a few seconds
    OMP_NUM_THREADS=1 python benchmarks/sigreg.py --threads 1 \\
        --md benchmarks/results/sigreg-cpu.md --json benchmarks/results/sigreg-cpu.json
    python benchmarks/sigreg.py --render benchmarks/results/sigreg-cpu.json \\
        --md benchmarks/results/sigreg-cpu.md                # re-render, no timing
    python benchmarks/sigreg.py --device cuda \\
        --md benchmarks/results/sigreg-gpu.md --json benchmarks/results/sigreg-gpu.json
"""

import argparse
import gc
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    Timing,
    configure_threads,
    machine_description,
    markdown_table,
    peak_memory,
    synchronize,
    time_fn,
    write_json,
)

from jepa_blocks._typing import typecheck_enabled  # noqa: E402
from jepa_blocks.losses.sigreg import SIGReg, sigreg  # noqa: E402

__all__ = ["baseline_sigreg", "check_agreement", "main", "parse_args"]

MIB = 2**20
GB = 1e9
TOLERANCE = 1e-5
IMPLS = ("baseline", "sigreg", "SIGReg")
# (n, m): the diagonal n = m, n at the paper's m = 1024, m at n = 1024.
_SIDES = (512, 1024, 2048, 4096, 8192)
SIZES = tuple(
    dict.fromkeys(
        [(s, s) for s in _SIDES] + [(s, 1024) for s in _SIDES] + [(1024, s) for s in _SIDES]
    )
)
HEADLINE = (8192, 8192)
QUICK_SIZES = ((128, 128), (256, 64), (64, 256), (256, 256))
QUICK_HEADLINE = (512, 512)
CHECK_SIZE = (256, 128)  # (n, m) of the agreement check
CALIBRATION_SIZE = (256, 256)  # (n, m) where the baseline's bytes per element are measured
REFERENCES = {
    "paper_v100_512_ms": 0.465,
    "paper_v100_8192_ms": 8.69,
    "goal_h200_8192_ms": 2.0,
}


# ----------------------------------------------------------------------------- implementations


def baseline_sigreg(z: torch.Tensor, directions: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """SIGReg written the straightforward way: materialises ``t * x``, shape ``(n, m, knots)``.

    ``z (n, d)``, ``directions (d, m)`` with unit columns, ``knots (T,)`` increasing.
    """
    x = z @ directions  # (n, m)
    tx = x.unsqueeze(-1) * knots  # (n, m, T): kept by autograd for cos' and sin' backward
    real = torch.cos(tx).mean(0)  # (m, T)
    imag = torch.sin(tx).mean(0)
    gaussian_cf = torch.exp(-knots.square() / 2)
    integrand = ((real - gaussian_cf).square() + imag.square()) * gaussian_cf  # w(t) = exp(-t^2/2)
    per_slice = torch.trapezoid(integrand, knots, dim=-1) * z.shape[0]
    return per_slice.mean()


def _make_inputs(n: int, m: int, d: int, num_knots: int, device, dtype, seed: int = 0):
    """``z (n, d)`` requiring grad, the module at step 0, its directions ``(d, m)``, knots."""
    gen = torch.Generator().manual_seed(seed + 1000 * n + m)
    # Drawn in fp32 and cast, so the fp32 and fp64 inputs hold the same numbers.
    z = torch.randn(n, d, generator=gen).to(device=device, dtype=dtype).requires_grad_(True)
    module = SIGReg(m, num_knots, distributed=False, check_finite=False, device=device)
    directions = module.directions(d).to(dtype)
    knots = torch.linspace(-5.0, 5.0, num_knots, dtype=dtype, device=device)
    return z, module, directions, knots


def _losses(z, module, directions, knots, num_knots: int) -> dict[str, Callable[[], torch.Tensor]]:
    """The statistic of each implementation on the same ``z`` and directions."""
    # sigreg's own quadrature for the paper's 17 knots; our linspace knots otherwise.
    knot_kw = {} if num_knots == 17 else {"knots": knots}
    return {
        "baseline": lambda: baseline_sigreg(z, directions, knots),
        "sigreg": lambda: sigreg(z, directions, distributed=False, **knot_kw),
        "SIGReg": lambda: module(z),
    }


def _calls(z, module, directions, knots, num_knots: int) -> dict[str, Callable[[], object]]:
    """One forward+backward per implementation; each returns the gradient w.r.t. ``z``."""

    def grad_of(loss: Callable[[], torch.Tensor]) -> Callable[[], object]:
        return lambda: torch.autograd.grad(loss(), z)[0]

    return {
        name: grad_of(loss)
        for name, loss in _losses(z, module, directions, knots, num_knots).items()
    }


def _rel(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual, expected = actual.detach().double(), expected.detach().double()
    scale = expected.abs().max().clamp_min(1e-30)
    return float((actual - expected).abs().max() / scale)


def check_agreement(d: int, num_knots: int, device, size=CHECK_SIZE) -> dict:
    """Value and gradient of ``sigreg`` and ``SIGReg`` against the baseline, fp32 and fp64.

    Also each fp32 result against the fp64 baseline (accuracy, for information).
    """
    n, m = size
    out: dict = {"n": n, "m": m, "d": d, "knots": num_knots, "tolerance": TOLERANCE}
    values: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}
    for dtype in (torch.float32, torch.float64):
        z, module, directions, knots = _make_inputs(n, m, d, num_knots, device, dtype, seed=7)
        results = {}
        for name, loss in _losses(z, module, directions, knots, num_knots).items():
            value = loss()
            (grad,) = torch.autograd.grad(value, z)
            results[name] = (value.detach(), grad)
        key = str(dtype).removeprefix("torch.")
        values[key] = results
        for name in ("sigreg", "SIGReg"):
            out[f"{name}_vs_baseline_{key}"] = {
                "value": _rel(results[name][0], results["baseline"][0]),
                "grad": _rel(results[name][1], results["baseline"][1]),
            }
    ref = values["float64"]["baseline"]
    for name in IMPLS:
        out[f"{name}_fp32_vs_fp64_baseline"] = {
            "value": _rel(values["float32"][name][0], ref[0]),
            "grad": _rel(values["float32"][name][1], ref[1]),
        }
    out["statistic"] = float(ref[0])
    worst = max(err for key in out if "_vs_baseline_" in key for err in out[key].values())
    out["max_rel_err"] = worst
    out["passed"] = worst <= TOLERANCE
    return out


# ----------------------------------------------------------------------------- measuring


def _timings(samples: dict[str, list[float]]) -> dict[str, Timing]:
    out = {}
    for name, values in samples.items():
        if len(values) >= 2:
            q = statistics.quantiles(values, n=4, method="inclusive")
            q1, q3 = q[0], q[2]
        else:
            q1 = q3 = values[0]
        out[name] = Timing(statistics.median(values), q1, q3, min(values), max(values), len(values))
    return out


def time_interleaved(
    calls: dict[str, Callable[[], object]], *, device, reps: int, max_seconds: float
) -> dict[str, Timing]:
    """Repetitions interleaved across ``calls``, the order reversed every other round."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    start = time.perf_counter()
    for rep in range(max(reps, 1)):
        for name in names if rep % 2 == 0 else reversed(names):
            samples[name].append(time_fn(calls[name], device=device, warmup=0, reps=1).median_ms)
        if time.perf_counter() - start > max_seconds:
            break
    return _timings(samples)


def calibrate_baseline(d: int, num_knots: int, device) -> dict:
    """The baseline's measured peak bytes per ``(n m knots)`` element at a small size."""
    n, m = CALIBRATION_SIZE
    z, module, directions, knots = _make_inputs(n, m, d, num_knots, device, torch.float32)
    fn = _calls(z, module, directions, knots, num_knots)["baseline"]
    fn()  # first call: lazy initialisation stays out of the measurement
    peak = peak_memory(fn, device=device)
    return {"n": n, "m": m, "peak_bytes": peak, "bytes_per_element": peak / (n * m * num_knots)}


def predicted_baseline_bytes(n: int, m: int, num_knots: int, bytes_per_element: float) -> float:
    return bytes_per_element * n * m * num_knots


def measure_config(n: int, m: int, args, device, bytes_per_element: float, headline: bool) -> dict:
    d, num_knots = args.dim, args.knots
    predicted = predicted_baseline_bytes(n, m, num_knots, bytes_per_element)
    row: dict = {
        "n": n,
        "m": m,
        "d": d,
        "knots": num_knots,
        "headline": headline,
        "baseline_predicted_bytes": predicted,
        "skipped": {},
    }
    impls = ["baseline", "sigreg"]
    if args.module == "all" or (args.module == "headline" and headline):
        impls.append("SIGReg")
    else:
        row["skipped"]["SIGReg"] = "not run (--module)"
    if predicted > args.max_baseline_gb * GB:
        impls.remove("baseline")
        row["skipped"]["baseline"] = f"skipped (would need {predicted / GB:.1f} GB)"
    z, module, directions, knots = _make_inputs(n, m, d, num_knots, device, torch.float32)
    calls = {
        name: fn
        for name, fn in _calls(z, module, directions, knots, num_knots).items()
        if name in impls
    }
    first_s: dict[str, float] = {}
    for name, fn in calls.items():
        t0 = time.perf_counter()
        row[f"{name}_peak_bytes"] = peak_memory(fn, device=device)
        synchronize(device)
        first_s[name] = time.perf_counter() - t0
    for name, fn in calls.items():
        warmup = args.warmup if device.type == "cuda" or first_s[name] < 1.0 else 0
        if warmup:
            time_fn(fn, device=device, warmup=warmup - 1, reps=1)
    timings = time_interleaved(calls, device=device, reps=args.reps, max_seconds=args.max_seconds)
    for name, timing in timings.items():
        row[f"{name}_timing"] = timing.as_dict()
        row[f"{name}_ms"] = timing.median_ms
    if "baseline" in calls:
        for name in ("sigreg", "SIGReg"):
            if name in calls:
                row[f"time_ratio_{name}"] = row["baseline_ms"] / row[f"{name}_ms"]
                row[f"mem_ratio_{name}"] = row["baseline_peak_bytes"] / max(
                    row[f"{name}_peak_bytes"], 1
                )
    del z, module, directions, knots, calls
    if n * m >= 2**20:  # a full collection costs ~0.3 s; only worth it after big tensors
        gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


# ----------------------------------------------------------------------------- reporting


def lscpu() -> dict:
    """CPU model, counts from ``lscpu`` (empty where it is missing)."""
    try:
        text = subprocess.run(
            ["lscpu"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    keys = {
        "Model name": "model",
        "CPU(s)": "cpus",
        "Thread(s) per core": "threads_per_core",
        "Core(s) per socket": "cores_per_socket",
        "Socket(s)": "sockets",
    }
    return {short: fields[long] for long, short in keys.items() if long in fields}


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _ms(row: dict, name: str) -> str:
    if f"{name}_ms" not in row:
        return row["skipped"].get(name, "-")
    t = row[f"{name}_timing"]
    return f"{t['median_ms']:.4g} ({t['q1_ms']:.3g}-{t['q3_ms']:.3g}, {t['reps']}x)"


def _mib(row: dict, name: str) -> str:
    key = f"{name}_peak_bytes"
    return f"{row[key] / MIB:.1f}" if key in row else "-"


def _ratio(row: dict, key: str) -> str:
    return f"{row[key]:.2f}x" if key in row else "-"


TABLE_HEADER = [
    "n",
    "m",
    "baseline ms (q1-q3, reps)",
    "sigreg ms (q1-q3, reps)",
    "SIGReg ms (q1-q3, reps)",
    "time baseline/sigreg",
    "baseline peak MiB",
    "sigreg peak MiB",
    "SIGReg peak MiB",
    "mem baseline/sigreg",
    "baseline predicted GB",
]


def table_rows(rows: list[dict]) -> list[list[str]]:
    return [
        [
            str(r["n"]),
            str(r["m"]),
            _ms(r, "baseline"),
            _ms(r, "sigreg"),
            _ms(r, "SIGReg"),
            _ratio(r, "time_ratio_sigreg"),
            _mib(r, "baseline"),
            _mib(r, "sigreg"),
            _mib(r, "SIGReg"),
            _ratio(r, "mem_ratio_sigreg"),
            f"{r['baseline_predicted_bytes'] / GB:.2f}",
        ]
        for r in rows
    ]


def _headline_lines(payload: dict) -> list[str]:
    row = next((r for r in payload["rows"] if r["headline"]), None)
    if row is None:
        return []
    cuda = payload["machine"]["device"].startswith("cuda")
    lines = [
        f"## Headline: n = m = {row['n']}"
        if row["n"] == row["m"]
        else f"## Headline: n = {row['n']}, m = {row['m']}",
        "",
        f"* `sigreg` forward+backward: **{row['sigreg_ms']:.4g} ms**, peak "
        f"{row['sigreg_peak_bytes'] / MIB:.1f} MiB.",
    ]
    if "SIGReg_ms" in row:
        lines.append(
            f"* `SIGReg` module (directions drawn in the call, no checks): "
            f"**{row['SIGReg_ms']:.4g} ms**, peak {row['SIGReg_peak_bytes'] / MIB:.1f} MiB."
        )
    if "baseline_ms" in row:
        lines.append(
            f"* baseline: {row['baseline_ms']:.4g} ms, peak "
            f"{row['baseline_peak_bytes'] / MIB:.1f} MiB -> baseline/ours time "
            f"{row['time_ratio_sigreg']:.2f}x, memory {row['mem_ratio_sigreg']:.1f}x."
        )
    else:
        lines.append(
            f"* baseline: {row['skipped']['baseline']} (limit "
            f"{payload['config']['max_baseline_gb']:g} GB)."
        )
    best = min(row.get("SIGReg_ms", math.inf), row["sigreg_ms"])
    refs = payload["references"]
    if cuda and row["n"] == row["m"] == 8192:
        verdict = "met" if best < refs["goal_h200_8192_ms"] else "missed"
        lines.append(
            f"* Goal on an H200: < {refs['goal_h200_8192_ms']:g} ms at n = m = 8192 -> "
            f"**{verdict}** ({best:.4g} ms on {payload['machine'].get('gpu', 'this GPU')})."
        )
    else:
        lines.append(
            f"* Goal on an H200: < {refs['goal_h200_8192_ms']:g} ms at n = m = 8192 (a GPU "
            "goal; not measurable here)."
        )
    small = next((r for r in payload["rows"] if r["n"] == r["m"] == 512), None)
    here = f"; here `sigreg` takes {small['sigreg_ms']:.4g} ms at n = m = 512" if small else ""
    lines += [
        f"* Reference, paper Table 6 (V100): {refs['paper_v100_8192_ms']} ms at n = m = 8192, "
        f"{refs['paper_v100_512_ms']} ms at n = m = 512 (embedding width not stated){here}.",
        "",
    ]
    return lines


def markdown(payload: dict) -> str:
    machine, config, check = payload["machine"], payload["config"], payload["check"]
    cpu = machine.get("lscpu", {})
    device = machine["device"]
    lines = [
        f"# SIGReg forward+backward: ours vs a materialising baseline ({device}, float32)",
        "",
        f"Machine: {cpu.get('model', machine['cpu'])}, {cpu.get('cpus', machine['cpu_cores'])} "
        f"CPUs ({cpu.get('threads_per_core', '?')} thread(s) per core)"
        + (f", GPU {machine['gpu']} (CUDA {machine['cuda']})" if "gpu" in machine else "")
        + f"; torch {machine['torch']}, {machine['torch_threads']} intra-op thread(s) "
        f"(OMP_NUM_THREADS={machine.get('omp_num_threads')}); {machine['date']}; load average "
        f"(1/5/15 min) {machine.get('load_start')} at start, {machine.get('load_end')} at end; "
        f"runtime type checking {'on' if machine.get('typecheck') else 'off'}.",
        "",
        f"Command: `{payload['command']}`; total {payload['seconds']:.0f} s. Embedding width "
        f"d = {config['dim']}, {config['knots']} knots on [-5, 5], fp32, n samples, m slices; "
        "each pass is forward + backward w.r.t. z.",
        "",
    ]
    for note in config.get("note") or []:
        lines += [note, ""]
    lines += [
        "## Agreement check (before timing)",
        "",
        f"At n = {check['n']}, m = {check['m']}, d = {check['d']}: max relative error of value "
        f"and gradient against the baseline {check['max_rel_err']:.1e} (tolerance "
        f"{check['tolerance']:g}) -> **{'passed' if check['passed'] else 'FAILED'}**.",
        "",
        markdown_table(
            ["comparison", "value rel err", "grad rel err"],
            [
                [key.replace("_", " "), f"{v['value']:.1e}", f"{v['grad']:.1e}"]
                for key, v in check.items()
                if isinstance(v, dict)
            ],
        ),
        "",
    ]
    lines += _headline_lines(payload)
    both = [r for r in payload["rows"] if "time_ratio_sigreg" in r]
    if both:
        times = [r["time_ratio_sigreg"] for r in both]
        mems = [r["mem_ratio_sigreg"] for r in both]
        lines += [
            f"Where the baseline ran ({len(both)} sizes, up to n m = "
            f"{max(r['n'] * r['m'] for r in both):,}): baseline/`sigreg` time "
            f"{min(times):.2f}-{max(times):.2f}x, peak memory {min(mems):.1f}-{max(mems):.1f}x "
            f"({config['knots']} knots).",
            "",
        ]
    lines += [
        "## All sizes",
        "",
        markdown_table(TABLE_HEADER, table_rows(payload["rows"])),
        "",
        "## How this was measured",
        "",
        "* Time: median of the repetitions (q1-q3, count), interleaved across the "
        "implementations with the order alternating; "
        + (
            f"CUDA events after a synchronize, each call after the profiled memory call and "
            f"{config['warmup']} warm-up call(s)."
            if device.startswith("cuda")
            else "`time.perf_counter`. Calls of a second or more are timed from the first "
            "repetition (the profiled memory call before it is the warm-up)."
        ),
        "* Peak memory: extra bytes of one call beyond the inputs (z and the directions); the "
        "returned gradient counts, and `SIGReg`'s own directions. "
        + (
            "`torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`."
            if device.startswith("cuda")
            else "The peak of the running total of the torch CPU allocator's events in the "
            "profiler (`torch.profiler.profile(profile_memory=True)`): every torch tensor "
            "allocation and free, exact; not the Python heap or a library's scratch space "
            "(e.g. BLAS buffers). tracemalloc sees none of the tensors."
        ),
        f"* Baseline guard: predicted bytes = {payload['calibration']['bytes_per_element']:.2f} "
        f"bytes per (n m knots) element (measured at n = {payload['calibration']['n']}, m = "
        f"{payload['calibration']['m']}) x n m knots; skipped above "
        f"{config['max_baseline_gb']:g} GB.",
        "* `sigreg` includes its input validation; `SIGReg` (`check_finite=False`) includes "
        "drawing its directions each call; the baseline and `sigreg` get those same "
        "directions as an input.",
    ]
    if config["module"] != "all":
        where = "the headline size only" if config["module"] == "headline" else "no size"
        lines.append(f"* `SIGReg` was run at {where} (`--module {config['module']}`).")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- entry point


def _parse_size(text: str) -> tuple[int, int]:
    n, _, m = text.lower().partition("x")
    return int(n), int(m or n)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="small smoke sweep, seconds")
    parser.add_argument("--dim", type=int, default=None, help="embedding width d (512)")
    parser.add_argument("--knots", type=int, default=17, help="integration knots (17)")
    parser.add_argument(
        "--sizes", default=None, help="comma-separated NxM list replacing the sweep"
    )
    parser.add_argument("--headline", default=None, help="NxM of the headline row (8192x8192)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (cpu 3, cuda 20)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up calls (cpu 1, cuda 3)")
    parser.add_argument(
        "--max-seconds", type=float, default=None, help="cap on one configuration's timing"
    )
    parser.add_argument(
        "--max-baseline-gb",
        type=float,
        default=None,
        help="skip baseline runs predicted above this (cpu 6, cuda 80%% of the device)",
    )
    parser.add_argument(
        "--module",
        choices=("all", "headline", "none"),
        default=None,
        help="sizes at which the SIGReg module runs (cpu: headline, cuda: all)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--note", action="append", help="a paragraph for the report")
    parser.add_argument("--json", default=None, help="write the rows here")
    parser.add_argument(
        "--render", default=None, help="rewrite --md from a saved --json, no timing"
    )
    parser.add_argument("--md", default=None, help="write the markdown report here")
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if args.dim is None:
        args.dim = 64 if args.quick else 512
    if args.reps is None:
        args.reps = 20 if cuda else 3
    if args.warmup is None:
        args.warmup = 3 if cuda else 1
    if args.max_seconds is None:
        args.max_seconds = 10.0 if cuda else (2.0 if args.quick else 20.0)
    if args.module is None:
        args.module = "all" if cuda else "headline"
    if args.max_baseline_gb is None:
        if cuda and torch.cuda.is_available():
            total = torch.cuda.get_device_properties(torch.device(args.device)).total_memory
            args.max_baseline_gb = 0.8 * total / GB
        else:
            args.max_baseline_gb = 6.0
    args.headline = (
        _parse_size(args.headline)
        if args.headline
        else (QUICK_HEADLINE if args.quick else HEADLINE)
    )
    if args.sizes:
        args.sizes = [_parse_size(s) for s in args.sizes.split(",") if s.strip()]
    else:
        args.sizes = list(QUICK_SIZES if args.quick else SIZES)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.render:
        payload = json.loads(Path(args.render).read_text())
        report = markdown(payload)
        print(report)
        if args.md:
            Path(args.md).write_text(report + "\n")
        return payload
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but torch.cuda.is_available() is False.")
    configure_threads(args.threads)
    started = time.perf_counter()
    machine = machine_description(device)
    machine.update(
        lscpu=lscpu(),
        load_start=_load(),
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
        typecheck=typecheck_enabled(),
    )
    if device.type == "cuda":
        machine["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    print(machine, flush=True)

    check = check_agreement(args.dim, args.knots, device)
    print(
        f"agreement check at n={check['n']} m={check['m']} d={check['d']}: max rel err "
        f"{check['max_rel_err']:.2e} (tolerance {TOLERANCE:g}) -> "
        f"{'passed' if check['passed'] else 'FAILED'}",
        flush=True,
    )
    if not check["passed"]:
        raise SystemExit(f"error: the baseline and ours disagree: {check}")
    calibration = calibrate_baseline(args.dim, args.knots, device)
    print(f"baseline memory: {calibration['bytes_per_element']:.2f} bytes per (n m knots) element")

    sizes = list(dict.fromkeys([*args.sizes, args.headline]))
    sizes.sort(key=lambda s: (s[0] * s[1], s))
    rows = []
    for n, m in sizes:
        row = measure_config(
            n, m, args, device, calibration["bytes_per_element"], headline=(n, m) == args.headline
        )
        rows.append(row)
        print(markdown_table(TABLE_HEADER, table_rows([row])).splitlines()[-1], flush=True)

    machine["load_end"] = _load()
    payload = {
        "machine": machine,
        "config": {k: v for k, v in vars(args).items() if k not in ("json", "md", "render")},
        "command": "python " + shlex.join(["benchmarks/sigreg.py", *(argv or sys.argv[1:])]),
        "seconds": time.perf_counter() - started,
        "check": check,
        "calibration": calibration,
        "references": REFERENCES,
        "memory_method": (
            "torch.cuda.max_memory_allocated"
            if device.type == "cuda"
            else "torch profiler CPU allocator events (profile_memory=True), torch tensors only"
        ),
        "rows": rows,
    }
    report = markdown(payload)
    print("\n" + report, flush=True)
    if args.json:
        write_json(args.json, payload)
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(report + "\n")
    return payload


if __name__ == "__main__":
    main()
