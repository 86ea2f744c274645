"""Mask sampling speed: ``MultiBlockMasks`` against a per-sample Python loop, same run, CPU.

    python benchmarks/masks.py [--threads 1] [--batch 256 2048] [--grid 14]

The loop is the official I-JEPA collator's algorithm (``src/masks/multiblock.py``), written
out here with its off-by-one corner fixed: per sample, 4 target blocks then one context block
drawn with ``torch.randint`` and built as a ``(h, w)`` mask, the context constrained to the
targets' complement and redrawn while it keeps ``min_keep`` patches or fewer. It returns
index lists as the official one does (its batch truncation, a few microseconds, is left out).
Both produce the same kind of masks for the paper's defaults on the same grid.
"""

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import (  # noqa: E402
    configure_threads,
    machine_description,
    markdown_table,
    time_fn,
    write_json,
)

from jepa_blocks import MultiBlockMasks  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


class LoopMasks:
    """The official collator's per-sample algorithm (one block size per batch, shared uniform
    for scale and aspect, context redrawn up to 20 times before its constraint is relaxed)."""

    def __init__(self, grid: int, *, npred: int = 4, min_keep: int = 10) -> None:
        self.height = self.width = grid
        self.npred, self.min_keep = npred, min_keep

    def _size(self, g: torch.Generator, scale, aspect) -> tuple[int, int]:
        u = torch.rand(1, generator=g).item()
        keep = int(self.height * self.width * (scale[0] + u * (scale[1] - scale[0])))
        ratio = aspect[0] + u * (aspect[1] - aspect[0])
        h = min(int(round(math.sqrt(keep * ratio))), self.height)
        w = min(int(round(math.sqrt(keep / ratio))), self.width)
        return h, w

    def _block(self, size, acceptable=None):
        h, w = size
        tries, timeout = 0, 20
        while True:
            top = torch.randint(0, self.height - h + 1, (1,))
            left = torch.randint(0, self.width - w + 1, (1,))
            mask = torch.zeros((self.height, self.width), dtype=torch.int32)
            mask[top : top + h, left : left + w] = 1
            if acceptable is not None:
                for region in acceptable[: max(len(acceptable) - tries, 0)]:
                    mask *= region
            index = torch.nonzero(mask.flatten())
            if len(index) > self.min_keep:
                break
            timeout -= 1
            if timeout == 0:
                tries, timeout = tries + 1, 20
        complement = torch.ones((self.height, self.width), dtype=torch.int32)
        complement[top : top + h, left : left + w] = 0
        return index.squeeze(), complement

    def __call__(self, batch_size: int, g: torch.Generator):
        p_size = self._size(g, (0.15, 0.2), (0.75, 1.5))
        e_size = self._size(g, (0.85, 1.0), (1.0, 1.0))
        preds, encs = [], []
        for _ in range(batch_size):
            masks, complements = [], []
            for _ in range(self.npred):
                mask, complement = self._block(p_size)
                masks.append(mask)
                complements.append(complement)
            preds.append(masks)
            encs.append([self._block(e_size, acceptable=complements)[0]])
        return encs, preds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, nargs="+", default=[256, 2048])
    parser.add_argument("--grid", type=int, default=14)
    parser.add_argument("--out", type=Path, default=RESULTS / "masks-cpu")
    args = parser.parse_args()
    threads = configure_threads(args.threads)
    vectorised = MultiBlockMasks((args.grid, args.grid))
    loop = LoopMasks(args.grid)
    g = torch.Generator().manual_seed(0)
    rows, records = [], []
    for batch in args.batch:
        fast = time_fn(lambda b=batch: vectorised(b, g), warmup=3, reps=30)
        slow = time_fn(lambda b=batch: loop(b, g), warmup=1, reps=5, max_seconds=20)
        speedup = slow.median_ms / fast.median_ms
        records.append(
            {
                "batch": batch,
                "grid": [args.grid, args.grid],
                "multiblock_ms": fast.as_dict(),
                "loop_ms": slow.as_dict(),
                "speedup": speedup,
                "multiblock_masks_per_s": batch / fast.median_ms * 1e3,
                "loop_masks_per_s": batch / slow.median_ms * 1e3,
            }
        )
        rows.append(
            [
                batch,
                f"{fast.median_ms:.2f} ({fast.spread()})",
                f"{slow.median_ms:.1f} ({slow.spread()})",
                f"{batch / fast.median_ms * 1e3:,.0f}",
                f"{batch / slow.median_ms * 1e3:,.0f}",
                f"{speedup:.0f}x",
            ]
        )
    machine = machine_description("cpu")
    header = [
        "batch",
        "MultiBlockMasks ms (q1-q3)",
        "per-sample loop ms (q1-q3)",
        "MultiBlockMasks masks/s",
        "loop masks/s",
        "speedup",
    ]
    table = markdown_table(header, rows)
    text = (
        f"# Mask sampling, {args.grid} x {args.grid} grid, I-JEPA defaults (CPU, "
        f"{threads} thread{'s' if threads > 1 else ''})\n\n"
        f"Machine: {machine}\n\n"
        f"Command: `python benchmarks/masks.py --threads {args.threads}`. Median of repeated "
        "calls, same run. The loop is the official collator's per-sample algorithm written "
        "in the benchmark (corner fixed, no batch truncation); `MultiBlockMasks` draws the "
        "whole batch with tensor ops (4 targets, one context, min_keep 10).\n\n"
        f"{table}\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    write_json(args.out.with_suffix(".json"), {"machine": machine, "results": records})
    print(text)


if __name__ == "__main__":
    main()
