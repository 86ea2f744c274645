"""A seq-JEPA training step, broken down, against the encoder alone on the same views.

    python benchmarks/step.py                 # CPU: ResNet-18, 32 px, batch 64, M = 3
    python benchmarks/step.py --device cuda   # GPU: the paper's shapes (128 px, batch 512), bf16
    python benchmarks/step.py --json out.json

Measures, in one run on one machine:

* the full step (encoder on M views, EMA target on the target view, action encoder, tokens,
  aggregator, predictor, loss, backward, AdamW, EMA update) and the *encoder-alone* step
  (the same M views through the encoder, a stand-in loss, backward, AdamW on the encoder);
  the goal is an overhead (full / encoder-alone - 1) of at most 15% on a GPU, 25% on the CPU;
* each part alone: encoder fwd+bwd, target forward, aggregator fwd+bwd, predictor fwd+bwd,
  optimizer step, EMA update;
* the EMA update: ``EMATarget.update`` (fused ``torch._foreach_lerp_``) against the
  per-parameter loop most code uses (``t.mul_(m).add_(o, alpha=1 - m)``; goal >= 3x on the
  CPU, >= 10x on a GPU), on ResNet-18 and ResNet-50;
* on CUDA only: the aggregator's forward+backward eager against captured as a CUDA graph
  (``jepa_blocks.cuda_graph.graph_module``; goal >= 3x).
"""

import argparse
import os
import sys
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "seq_jepa"))

from _common import (  # noqa: E402
    configure_threads,
    machine_description,
    markdown_table,
    synchronize,
    time_fn,
    write_json,
)
from model import SeqJEPAConfig, build_model, build_target, compute_loss  # noqa: E402

import jepa_blocks as jb  # noqa: E402
from jepa_blocks.cuda_graph import graph_module  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def step_breakdown(args: argparse.Namespace, device: torch.device) -> list[dict]:
    b, m, size = args.batch, args.views, args.image_size
    config = SeqJEPAConfig(backbone=args.backbone, dropout=0.1)
    model = build_model(config).to(device)
    target = build_target(model, jb.CosineMomentum(total_steps=1000)).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        target = target.to(memory_format=torch.channels_last)
    views = torch.randn(b, m + 1, 3, size, size, device=device)
    actions = torch.randn(b, m, 4, device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    encoder_optimizer = torch.optim.AdamW(model.encoder.parameters(), lr=1e-4)
    observed = views[:, :m].flatten(0, 1)
    if device.type == "cuda":
        observed = observed.contiguous(memory_format=torch.channels_last)
    model.train()
    target.train()

    def full_step() -> None:
        with _autocast(device):
            loss, _ = compute_loss(model, target, views, actions)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        target.update(model.encoder)

    def encoder_step() -> None:
        with _autocast(device):
            loss = model.encoder(observed).float().square().mean()
        encoder_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        encoder_optimizer.step()

    def encoder_fwd_bwd() -> None:
        with _autocast(device):
            loss = model.encoder(observed).float().square().mean()
        loss.backward()

    def target_forward() -> None:
        with _autocast(device):
            target(views[:, -1])

    tokens = torch.randn(b, m, model.aggregator.dim, device=device, requires_grad=True)
    z_agg = torch.randn(b, model.aggregator.dim, device=device, requires_grad=True)
    cond = torch.randn(b, config.dim_action_embed, device=device)

    def aggregator_fwd_bwd() -> None:
        with _autocast(device):
            out = model.aggregator(tokens)
        out.float().sum().backward()

    def predictor_fwd_bwd() -> None:
        with _autocast(device):
            out = model.predictor(z_agg, cond)
        out.float().sum().backward()

    def optimizer_step() -> None:
        optimizer.step()

    def ema_update() -> None:
        target.update(model.encoder)

    full_step()  # materialise gradients and optimizer state before timing the parts
    parts = [
        ("full seq-JEPA step", full_step),
        ("encoder-alone step (same M views)", encoder_step),
        ("  encoder fwd+bwd", encoder_fwd_bwd),
        ("  EMA target forward (target view)", target_forward),
        ("  aggregator fwd+bwd", aggregator_fwd_bwd),
        ("  predictor fwd+bwd", predictor_fwd_bwd),
        ("  AdamW step (all parameters)", optimizer_step),
        ("  EMA update (foreach)", ema_update),
    ]
    rows = []
    for name, fn in parts:
        timing = time_fn(fn, device=device, warmup=args.warmup, reps=args.reps)
        rows.append(
            {
                "part": name.strip(),
                "ms": timing.median_ms,
                "spread": timing.spread(),
                "reps": timing.reps,
            }
        )
        print(f"{name:<40} {timing.median_ms:9.2f} ms  ({timing.spread()})", flush=True)
    return rows


def _ema_row(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    import timm

    online = timm.create_model(name, num_classes=0).to(device)
    ema = jb.EMATarget(online, schedule=0.996)
    target_params = list(ema.target.parameters())
    online_params = list(online.parameters())

    @torch.no_grad()
    def loop_update() -> None:
        for t, o in zip(target_params, online_params, strict=True):
            t.mul_(0.996).add_(o, alpha=1 - 0.996)

    def fused_update() -> None:
        ema.update(online)

    # The loop averages parameters only, the fused update parameters AND BN buffers: the
    # comparison is conservative for ours.
    loop = time_fn(loop_update, device=device, warmup=args.warmup, reps=args.reps * 4)
    fused = time_fn(fused_update, device=device, warmup=args.warmup, reps=args.reps * 4)
    count = sum(p.numel() for p in online_params)
    speedup = loop.median_ms / fused.median_ms
    print(
        f"EMA {name} ({count / 1e6:.1f} M): loop {loop.median_ms:.3f} ms, "
        f"foreach {fused.median_ms:.3f} ms, {speedup:.2f}x",
        flush=True,
    )
    return {
        "model": name,
        "params": count,
        "loop_ms": loop.median_ms,
        "foreach_ms": fused.median_ms,
        "speedup": speedup,
    }


def ema_comparison(args: argparse.Namespace, device: torch.device) -> list[dict]:
    return [_ema_row(name, args, device) for name in ("resnet18", "resnet50")]


def _capture_row(
    dim: int, tokens_n: int, batch: int, args: argparse.Namespace, device: torch.device
) -> dict:
    aggregator = jb.SequenceAggregator(dim, depth=3, heads=4, dropout=0.0).to(device)
    tokens = torch.randn(batch, tokens_n - 1, dim, device=device, requires_grad=True)

    def eager() -> None:
        with _autocast(device):
            out = aggregator(tokens)
        out.float().sum().backward()

    eager_timing = time_fn(eager, device=device, warmup=3, reps=args.reps * 4)
    row = {
        "dim": dim,
        "tokens": tokens_n,
        "batch": batch,
        "eager_ms": eager_timing.median_ms,
        "captured_ms": None,
        "speedup": None,
    }
    if device.type == "cuda":
        graphed = jb.SequenceAggregator(dim, depth=3, heads=4, dropout=0.0).to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            graphed = graph_module(graphed, (tokens,))

        def captured() -> None:
            with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
                out = graphed(tokens)
            out.float().sum().backward()

        captured_timing = time_fn(captured, device=device, warmup=3, reps=args.reps * 4)
        row["captured_ms"] = captured_timing.median_ms
        row["speedup"] = eager_timing.median_ms / captured_timing.median_ms
    print(
        f"aggregator d={dim} n={tokens_n} b={batch}: eager {row['eager_ms']:.2f} ms, "
        f"captured {row['captured_ms'] or float('nan'):.2f} ms",
        flush=True,
    )
    return row


def aggregator_capture(args: argparse.Namespace, device: torch.device) -> list[dict]:
    # (dim, tokens incl. [AGG], batch): the paper's aggregator at M = 4 and 8, and d = 512.
    shapes = ((640, 5, 512), (640, 9, 256), (512, 5, 512))
    if device.type != "cuda":
        shapes = ((640, 5, 64),)  # the CPU has no graphs: one eager reference row
    return [_capture_row(dim, n, batch, args, device) for dim, n, batch in shapes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--views", type=int, default=3, help="M: observed views per sequence")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    configure_threads(args.threads)
    cuda = device.type == "cuda"
    args.batch = args.batch or (512 if cuda else 64)
    args.image_size = args.image_size or (128 if cuda else 32)
    machine = machine_description(device)
    print(f"machine: {machine}", flush=True)
    print(
        f"step: {args.backbone}, batch {args.batch}, M={args.views}, {args.image_size} px, "
        f"{'bf16 autocast' if cuda else 'fp32'}",
        flush=True,
    )
    breakdown = step_breakdown(args, device)
    synchronize(device)
    full = breakdown[0]["ms"]
    encoder_alone = breakdown[1]["ms"]
    overhead = full / encoder_alone - 1
    print(f"overhead over the encoder alone: {100 * overhead:.1f}%", flush=True)
    ema = ema_comparison(args, device)
    capture = aggregator_capture(args, device)
    payload = {
        "machine": machine,
        "config": vars(args) | {"json": None, "markdown": None},
        "breakdown": breakdown,
        "overhead": overhead,
        "ema": ema,
        "aggregator_capture": capture,
    }
    if args.json:
        write_json(args.json, payload)
    markdown = args.markdown or RESULTS / f"step-{device.type}.md"
    lines = [
        f"# seq-JEPA training step ({device.type})",
        "",
        f"Machine: {machine}",
        "",
        f"Command: `python benchmarks/step.py --device {args.device}`; {args.backbone}, batch "
        f"{args.batch}, M = {args.views}, {args.image_size} px, "
        f"{'bf16 autocast, channels-last' if cuda else 'fp32'}. Median of {args.reps} reps.",
        "",
        markdown_table(
            ["part", "median ms", "q1-q3"],
            [[r["part"], f"{r['ms']:.2f}", r["spread"]] for r in breakdown],
        ),
        "",
        f"**Overhead of the full step over the encoder alone: {100 * overhead:.1f}%** "
        f"(goal: <= {15 if cuda else 25}%).",
        "",
        "EMA update, fused foreach (parameters + BN buffers) vs per-parameter loop "
        "(parameters only):",
        "",
        markdown_table(
            ["model", "params", "loop ms", "foreach ms", "speedup"],
            [
                [
                    r["model"],
                    f"{r['params']:,}",
                    f"{r['loop_ms']:.3f}",
                    f"{r['foreach_ms']:.3f}",
                    f"{r['speedup']:.2f}x",
                ]
                for r in ema
            ],
        ),
        "",
        "Aggregator (3 layers, 4 heads, no dropout) forward+backward, eager vs CUDA graph:",
        "",
        markdown_table(
            ["dim", "tokens", "batch", "eager ms", "captured ms", "speedup"],
            [
                [
                    r["dim"],
                    r["tokens"],
                    r["batch"],
                    f"{r['eager_ms']:.2f}",
                    "n/a (CPU)" if r["captured_ms"] is None else f"{r['captured_ms']:.2f}",
                    "n/a" if r["speedup"] is None else f"{r['speedup']:.2f}x",
                ]
                for r in capture
            ],
        ),
        "",
    ]
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text("\n".join(lines))
    print(f"wrote {markdown}", flush=True)


if __name__ == "__main__":
    main()
