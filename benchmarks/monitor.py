"""The collapse monitor's cost as a fraction of the demo's training step.

    python benchmarks/monitor.py              # CPU, the demo preset (1 thread), 20 reps
    python benchmarks/monitor.py --quick      # a few reps of the smoke preset (tests)

Builds ``examples/seq_jepa/train.py``'s Trainer for the preset, takes real batches from its
loader, and times, interleaved rep by rep (the machine may be shared): one optimiser step
(``Trainer.train_step`` with the monitor off) and one measurement (``Trainer._monitor``: the gauges
on the step's view embeddings plus the EMA target's forward on view 1 for the teacher cosine,
its BatchNorm buffers put back). The overhead is ``measurement / monitor_every / step``; the
goal is <= 1 % at the demo's ``monitor_every`` (25). Writes ``results/monitor-<device>.md``
and ``.json`` (or ``--out``).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import jepa_blocks as jb

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "seq_jepa"))

from _common import machine_description, markdown_table, write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def measure(preset: str, reps: int, threads: int) -> dict:
    import train  # the example's module

    argv = ["--preset", preset, "--no-progress", "--monitor-every", "0", "--threads", str(threads)]
    config = train.resolve_config(train.parse_args(argv))
    from config import TrainConfig
    from presets import PRESETS

    every = PRESETS[preset].get("monitor_every", TrainConfig.monitor_every)
    with tempfile.TemporaryDirectory() as out:
        trainer = train.Trainer(config, Path(out), resume=False)
        trainer.monitor = jb.CollapseMonitor(every, warn=False)
        trainer.network.train()
        trainer.target.train()
        steps, looks = [], []
        batches = iter(trainer.loader())
        for rep in range(reps + 1):  # the first rep is a warm-up
            batch = next(batches)
            views = batch["views"]
            start = time.perf_counter()
            trainer.train_step(batch)  # the monitor is off at this step
            step_ms = (time.perf_counter() - start) * 1e3
            with torch.no_grad():
                z = trainer.model.encode(views[:, : batch["actions"].shape[1]])
            start = time.perf_counter()
            trainer._monitor(views, z)
            look_ms = (time.perf_counter() - start) * 1e3
            if rep:
                steps.append(step_ms)
                looks.append(look_ms)
    step, look = statistics.median(steps), statistics.median(looks)
    return {
        "preset": preset,
        "batch": config.batch_size,
        "views": config.seq_len,
        "monitor_every": every,
        "reps": reps,
        "step_ms": round(step, 2),
        "measurement_ms": round(look, 2),
        "overhead_pct": round(100 * look / every / step, 3),
        "measurement_vs_step_pct": round(100 * look / step, 2),
    }


def report(result: dict, machine: dict) -> str:
    rows = [
        ["optimiser step (monitor off)", f"{result['step_ms']:.1f}"],
        ["one measurement (gauges + target forward)", f"{result['measurement_ms']:.1f}"],
        [
            f"overhead at monitor_every = {result['monitor_every']}",
            f"{result['overhead_pct']:.2f} % (goal <= 1 %)",
        ],
    ]
    lines = [
        "# CollapseMonitor overhead on the demo's step",
        "",
        f"Machine: {machine['cpu']}, {machine['cpu_cores']} cores, "
        f"{machine['torch_threads']} torch thread(s), torch {machine['torch']}, "
        f"{machine['date']}; 1-minute load average {machine.get('load_avg_1m', float('nan')):.1f} "
        "(interleaving keeps the ratio fair on a shared machine; the times are not idle ones).",
        f"Preset `{result['preset']}`: batch {result['batch']}, M = {result['views']}, medians of "
        f"{result['reps']} interleaved reps.",
        "",
        markdown_table(["", "ms"], rows),
        "",
        "Command: `python benchmarks/monitor.py`",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smoke preset, 3 reps")
    parser.add_argument("--out", type=Path, help="folder for monitor-cpu.{md,json}")
    args = parser.parse_args(argv)
    preset, reps = ("smoke", 3) if args.quick else (args.preset, args.reps)
    result = measure(preset, reps, args.threads)
    machine = machine_description("cpu")
    text = report(result, machine)
    print(text)
    folder = args.out or RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "monitor-cpu.md").write_text(text)
    write_json(folder / "monitor-cpu.json", {"machine": machine, "result": result})
    return result


if __name__ == "__main__":
    main()
