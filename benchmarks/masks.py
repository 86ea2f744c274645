"""Mask sampling speed: ``MultiBlockMasks`` against a per-sample Python loop, same run, CPU;
and the context encoder's step time as a function of kept tokens.

    python benchmarks/masks.py [--threads 1] [--batch 256 2048] [--grid 14]
    python benchmarks/masks.py --quick       # seconds: one small batch, a 4-image encoder step

The loop is the official I-JEPA collator's algorithm (``src/masks/multiblock.py``), written
out here with its off-by-one corner fixed: per sample, 4 target blocks then one context block
drawn with ``torch.randint`` and built as a ``(h, w)`` mask, the context constrained to the
targets' complement and redrawn while it keeps ``min_keep`` patches or fewer. It returns
index lists as the official one does (its batch truncation, a few microseconds, is left out).
Both produce the same kind of masks for the paper's defaults on the same grid.

Context encoder: ``MaskedEncoder`` (a timm ViT, ``vit_tiny_patch16_224`` at 64 px with 8-px
patches, an 8 x 8 grid) forward + backward (mean square of the outputs) with masks keeping
exactly 25/50/75/100% of the patches per sample (the first k of a random permutation, so no
padding), against the same ViT on all patches (``encoder(images)``, no mask) in the same run.
Calls are interleaved (one of each configuration per round) so a load change on a shared
machine hits all of them alike. The ratios are compared with the kept-token ratio, class
token included: ``(k + prefix) / (n + prefix)``. Peak memory is the CPU allocator's peak
during one step (``_common.peak_memory``).
"""

import argparse
import math
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import (  # noqa: E402
    Timing,
    configure_threads,
    machine_description,
    markdown_table,
    peak_memory,
    time_fn,
    write_json,
)

from jepa_blocks import MaskedEncoder, MultiBlockMasks  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FRACTIONS = (0.25, 0.5, 0.75, 1.0)
PROPORTIONAL_TOLERANCE = 0.15  # |time ratio / token ratio - 1| allowed for "proportional"


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


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _interleaved(fns: Sequence[Callable[[], object]], *, warmup: int, reps: int) -> list[Timing]:
    """Time each of ``fns`` ``reps`` times, one call of each per round (after ``warmup``
    rounds), so a change of load on the machine falls on all of them alike."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for fn, out in zip(fns, samples, strict=True):
            out.append(time_fn(fn, warmup=0, reps=1).median_ms)
    timings = []
    for out in samples:
        q = statistics.quantiles(out, n=4, method="inclusive") if len(out) > 1 else [out[0]] * 3
        timings.append(
            Timing(
                median_ms=statistics.median(out), q1_ms=q[0], q3_ms=q[2],
                min_ms=min(out), max_ms=max(out), reps=len(out),
            )
        )
    return timings


def exact_keep_masks(batch: int, n: int, keep: int, g: torch.Generator) -> torch.Tensor:
    """``(batch, n)`` masks keeping exactly ``keep`` patches each: the first ``keep`` of a
    random permutation per sample."""
    order = torch.rand(batch, n, generator=g).argsort(dim=1)[:, :keep]
    return torch.zeros(batch, n, dtype=torch.bool).scatter_(1, order, True)


def encoder_section(args: argparse.Namespace, g: torch.Generator) -> dict:
    """``MaskedEncoder`` forward + backward time and peak memory against kept tokens."""
    torch.manual_seed(0)
    encoder = MaskedEncoder(args.encoder, image_size=args.image_size, patch_size=args.patch_size)
    n = encoder.grid[0] * encoder.grid[1]
    prefix = encoder.num_prefix
    images = torch.randn(args.encoder_batch, 3, args.image_size, args.image_size, generator=g)

    def step(mask: torch.Tensor | None) -> None:
        encoder.zero_grad(set_to_none=True)
        out = encoder(images) if mask is None else encoder(images, mask)[0]
        out.float().square().mean().backward()

    def measured_peak(fn: Callable[[], None]) -> int:
        # Free the last step's gradients first: freed inside the profiled call, they would
        # count as negative allocations and hide their own size from the peak.
        encoder.zero_grad(set_to_none=True)
        return peak_memory(fn)

    configs: list[tuple[str, int, torch.Tensor | None]] = [("all patches (no mask)", n, None)]
    for fraction in FRACTIONS:
        keep = round(fraction * n)
        configs.append((f"{fraction:g}", keep, exact_keep_masks(args.encoder_batch, n, keep, g)))
    steps = [lambda m=mask: step(m) for _, _, mask in configs]
    timings = _interleaved(steps, warmup=1, reps=args.encoder_reps)
    peaks = [measured_peak(fn) for fn in steps]
    base_ms, base_peak = timings[0].median_ms, peaks[0]
    rows = []
    for (label, keep, _), timing, peak in zip(configs, timings, peaks, strict=True):
        token_ratio = (keep + prefix) / (n + prefix)
        time_ratio = timing.median_ms / base_ms
        rows.append(
            {
                "kept_fraction": None if label.startswith("all") else float(label),
                "label": label,
                "kept_patches": keep,
                "tokens": keep + prefix,
                "token_ratio": token_ratio,
                "step_ms": timing.as_dict(),
                "time_ratio": time_ratio,
                "time_over_token_ratio": time_ratio / token_ratio,
                "peak_mib": peak / 2**20,
                "peak_ratio": peak / base_peak if base_peak else None,
            }
        )
    masked = rows[1:]
    # Least squares of step time on tokens over the masked rows: the intercept is the cost
    # that does not scale with kept tokens (patch embedding of the whole grid, gathers, ...).
    xs = [r["tokens"] for r in masked]
    ys = [r["step_ms"]["median_ms"] for r in masked]
    slope, intercept = statistics.linear_regression(xs, ys)
    over = [r["time_over_token_ratio"] for r in masked]
    deviation = max(abs(v - 1) for v in over)
    param_bytes = sum(p.numel() * p.element_size() for p in encoder.parameters())
    return {
        "encoder": args.encoder,
        "image_size": args.image_size,
        "patch_size": args.patch_size,
        "grid": list(encoder.grid),
        "prefix_tokens": prefix,
        "batch": args.encoder_batch,
        "reps": args.encoder_reps,
        "rows": rows,
        "fit_ms_per_token": slope,
        "fit_intercept_ms": intercept,
        "fit_intercept_over_baseline": intercept / base_ms,
        "time_over_token_ratio_range": [min(over), max(over)],
        "max_deviation": deviation,
        "param_grad_mib": param_bytes / 2**20,
        "tolerance": PROPORTIONAL_TOLERANCE,
        "proportional": deviation <= PROPORTIONAL_TOLERANCE,
    }


ENCODER_HEADER = [
    "kept fraction",
    "kept patches (+cls)",
    "token ratio",
    "fwd+bwd ms (q1-q3)",
    "time ratio",
    "time / token ratio",
    "peak MiB",
    "peak ratio",
]


def encoder_markdown(result: dict) -> str:
    rows = [
        [
            r["label"],
            f"{r['kept_patches']} (+{result['prefix_tokens']})",
            f"{r['token_ratio']:.3f}",
            f"{r['step_ms']['median_ms']:.1f} ({r['step_ms']['q1_ms']:.4g}-"
            f"{r['step_ms']['q3_ms']:.4g})",
            f"{r['time_ratio']:.3f}",
            f"{r['time_over_token_ratio']:.2f}",
            f"{r['peak_mib']:.1f}",
            f"{r['peak_ratio']:.3f}" if r["peak_ratio"] is not None else "-",
        ]
        for r in result["rows"]
    ]
    gh, gw = result["grid"]
    low, high = result["time_over_token_ratio_range"]
    if result["fit_intercept_ms"] > 0:
        intercept_note = (
            ": the cost that does not scale with kept tokens (patch embedding of the whole "
            "grid, the gather)"
        )
    else:
        intercept_note = (
            ": no measurable fixed cost (patch embedding of the whole grid, the gather); a "
            "small negative intercept comes from the attention's term quadratic in tokens, "
            "which bends the curve up"
        )
    verdict = ("" if result["proportional"] else "NOT ") + "proportional to kept tokens"
    return (
        f"## Context encoder step time against kept tokens\n\n"
        f"`MaskedEncoder('{result['encoder']}', image_size={result['image_size']}, "
        f"patch_size={result['patch_size']})`: {gh} x {gw} = {gh * gw} patches plus "
        f"{result['prefix_tokens']} class token, batch {result['batch']}, forward + backward "
        f"(mean square of the outputs), median of {result['reps']} interleaved rounds. Masks "
        "keep exactly the given fraction of patches per sample (no padding); the baseline is "
        "the same ViT on all patches without a mask. Ratios are to the baseline; the token "
        "ratio counts the class token. Peak memory is the torch CPU allocator's peak during "
        f"one step, the parameter gradients ({result['param_grad_mib']:.1f} MiB, the same "
        "for every row) included.\n\n"
        f"{markdown_table(ENCODER_HEADER, rows)}\n\n"
        f"Verdict: step time is {verdict} (time / token ratio {low:.2f}-{high:.2f} over the "
        f"masked rows; within +-{result['tolerance']:.0%} of 1 counts as proportional). "
        "Least-squares fit over the masked rows: "
        f"{result['fit_ms_per_token']:.2f} ms per token of each sample (the batch of "
        f"{result['batch']}), intercept "
        f"{result['fit_intercept_ms']:.1f} ms ({result['fit_intercept_over_baseline']:.1%} of "
        f"the all-patch step){intercept_note}.\n"
    )


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, nargs="+", default=None, help="[256 2048]")
    parser.add_argument("--grid", type=int, default=14)
    parser.add_argument("--encoder", default="vit_tiny_patch16_224")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--patch-size", type=int, default=8)
    parser.add_argument("--encoder-batch", type=int, default=None, help="32 (--quick: 4)")
    parser.add_argument("--encoder-reps", type=int, default=None, help="7 (--quick: 3)")
    parser.add_argument("--quick", action="store_true", help="seconds: small batches, few reps")
    parser.add_argument("--out", type=Path, default=RESULTS / "masks-cpu")
    args = parser.parse_args(argv)
    if args.batch is None:
        args.batch = [256] if args.quick else [256, 2048]
    if args.encoder_batch is None:
        args.encoder_batch = 4 if args.quick else 32
    if args.encoder_reps is None:
        args.encoder_reps = 3 if args.quick else 7
    threads = configure_threads(args.threads)
    load_start = _load()
    vectorised = MultiBlockMasks((args.grid, args.grid))
    loop = LoopMasks(args.grid)
    g = torch.Generator().manual_seed(0)
    rows, records = [], []
    for batch in args.batch:
        fast = time_fn(lambda b=batch: vectorised(b, g), warmup=3, reps=10 if args.quick else 30)
        slow = time_fn(
            lambda b=batch: loop(b, g), warmup=1, reps=3 if args.quick else 5, max_seconds=20
        )
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
    encoder = encoder_section(args, g)
    machine = machine_description("cpu")
    load_end = machine.get("load_avg_1m")
    header = [
        "batch",
        "MultiBlockMasks ms (q1-q3)",
        "per-sample loop ms (q1-q3)",
        "MultiBlockMasks masks/s",
        "loop masks/s",
        "speedup",
    ]
    table = markdown_table(header, rows)
    command = f"python benchmarks/masks.py --threads {args.threads}" + (
        " --quick" if args.quick else ""
    )
    load = (
        f"Load average (1 min) on the {machine['cpu_cores']} cores: "
        f"{load_start:.2f} at the start, {load_end:.2f} at the end (a shared machine).\n\n"
        if load_start is not None and load_end is not None
        else ""
    )
    text = (
        f"# Mask sampling, {args.grid} x {args.grid} grid, I-JEPA defaults (CPU, "
        f"{threads} thread{'s' if threads > 1 else ''})\n\n"
        f"Machine: {machine}\n\n"
        f"{load}"
        f"Command: `{command}`. Median of repeated "
        "calls, same run. The loop is the official collator's per-sample algorithm written "
        "in the benchmark (corner fixed, no batch truncation); `MultiBlockMasks` draws the "
        "whole batch with tensor ops (4 targets, one context, min_keep 10).\n\n"
        f"{table}\n\n"
        f"{encoder_markdown(encoder)}"
    )
    payload = {
        "machine": machine,
        "load_avg_1m_start": load_start,
        "command": command,
        "results": records,
        "encoder": encoder,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    write_json(args.out.with_suffix(".json"), payload)
    print(text)
    return payload


if __name__ == "__main__":
    main()
