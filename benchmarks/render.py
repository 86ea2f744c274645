"""Rendering speed of the built-in object dataset's pure-torch CPU ray caster.

    python benchmarks/render.py [--sizes 32 64 128] [--views 1024] [--threads 2]
                                [--json PATH] [--samples PATH] [--no-dataset]

Renders ``--views`` random views (3DIEBench-like latents) of 100 objects (10 classes x 10
instances) at each image size and reports views/s (wall clock, median of ``--reps``) and views
per CPU-second (``time.process_time``, which a busy shared machine inflates less than the wall
clock). The target is 1,000 views/s at 64 px on 2 cores. ``--no-dataset`` skips timing the
end-to-end build of the "default" :class:`RenderedObjects` (6,400 views at 64 px, no cache).
``--samples PATH`` writes a PNG grid: one row per class, the first column in the canonical
pose (facing the camera, +y up), the others at random latents.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    configure_threads,
    machine_description,
    markdown_table,
    time_fn,
    write_json,
)

from jepa_blocks.data.objects import (  # noqa: E402  # noqa: E402
    CLASS_NAMES,
    LATENT_RANGES,
    RenderedObjects,
    make_object,
    pack_parts,
    render_latents,
)

TARGET_VIEWS_PER_S = 1000.0  # at 64 px on 2 cores


def _latents(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    low = torch.tensor([r[0] for r in LATENT_RANGES])
    high = torch.tensor([r[1] for r in LATENT_RANGES])
    return low + (high - low) * torch.rand(n, 7, generator=generator)


def bench_sizes(sizes: list[int], views: int, reps: int) -> list[dict]:
    objects = [
        make_object(name, seed=0, instance=i) for name in CLASS_NAMES[:10] for i in range(10)
    ]
    prims = pack_parts(objects)
    per_view = prims[torch.arange(views) % len(objects)]
    latents = _latents(views, seed=1)
    rows = []
    for size in sizes:
        cpu: list[float] = []

        def call(size: int = size, cpu: list[float] = cpu) -> None:
            start = time.process_time()
            render_latents(per_view, latents, image_size=size)
            cpu.append(time.process_time() - start)

        timing = time_fn(call, warmup=1, reps=reps)
        cpu_s = min(cpu[1:])  # drop the warm-up call
        rows.append(
            {
                "image_size": size,
                "views": views,
                "median_ms": timing.median_ms,
                "q1_ms": timing.q1_ms,
                "q3_ms": timing.q3_ms,
                "views_per_s": views / (timing.median_ms * 1e-3),
                "best_views_per_s": views / (timing.min_ms * 1e-3),
                "views_per_cpu_s": views / cpu_s,
            }
        )
    return rows


def bench_dataset() -> dict:
    start = time.perf_counter()
    objects = RenderedObjects(size="default", split="all", cache=False)
    seconds = time.perf_counter() - start
    n = objects.images.shape[0] * objects.images.shape[1]
    return {"views": n, "image_size": 64, "seconds": seconds, "views_per_s": n / seconds}


def save_samples(path: Path, size: int = 64, per_class: int = 8, scale: int = 2) -> None:
    import matplotlib.pyplot as plt
    from einops import rearrange

    objects = [
        make_object(name, seed=0, instance=i) for name in CLASS_NAMES for i in range(per_class)
    ]
    prims = pack_parts(objects)
    latents = _latents(len(objects), seed=5)
    latents[::per_class, :3] = 0.0  # canonical pose in the first column
    images = render_latents(prims[torch.arange(len(objects))], latents, image_size=size)
    grid = rearrange(images, "(r c) ch h w -> (r h) (c w) ch", c=per_class)
    grid = grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, grid.numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--views", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--samples", type=Path, default=None)
    parser.add_argument("--no-dataset", action="store_true")
    args = parser.parse_args()

    threads = configure_threads(args.threads)
    machine = machine_description()
    rows = bench_sizes(args.sizes, args.views, args.reps)
    dataset = None if args.no_dataset else bench_dataset()
    machine["load_avg_1m_after"] = machine_description().get("load_avg_1m")

    print(f"# render benchmark ({threads} threads)\n")
    print(", ".join(f"{k}: {v}" for k, v in machine.items()) + "\n")
    table = [
        (
            r["image_size"],
            r["views"],
            f"{r['median_ms']:.0f} ({r['q1_ms']:.0f}-{r['q3_ms']:.0f})",
            f"{r['views_per_s']:.0f}",
            f"{r['best_views_per_s']:.0f}",
            f"{r['views_per_cpu_s']:.0f}",
        )
        for r in rows
    ]
    header = ("px", "views", "ms median (q1-q3)", "views/s", "best views/s", "views/CPU-s")
    print(markdown_table(header, table))
    for r in rows:
        if r["image_size"] == 64:
            verdict = "met" if r["views_per_s"] >= TARGET_VIEWS_PER_S else "missed"
            print(f"\ntarget {TARGET_VIEWS_PER_S:.0f} views/s at 64 px: {verdict}")
    if dataset is not None:
        print(
            f"\nRenderedObjects(size='default'): {dataset['views']} views at 64 px in "
            f"{dataset['seconds']:.1f} s ({dataset['views_per_s']:.0f} views/s, incl. generation)"
        )
    if args.json is not None:
        write_json(
            args.json, {"machine": machine, "threads": threads, "sizes": rows, "dataset": dataset}
        )
    if args.samples is not None:
        save_samples(args.samples)


if __name__ == "__main__":
    main()
