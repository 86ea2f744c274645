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
  (``jepa_blocks.layers.cuda_graph.graph_module``; goal >= 3x);
* before/after at the demo's shapes (``--demo-batch`` 32): today's step (AdamW's default,
  which on the CPU is the per-parameter loop) against the step ``examples/seq_jepa/train.py``
  now takes (fused AdamW), full and encoder-alone, interleaved rep by rep (ABAB, medians)
  because the machine may be shared; variants (channels-last, one thread) as extra rows; and the
  demo's seconds per step, modelled as step + one batch from the demo's DataLoader + one
  checkpoint save spread over the steps between saves (every epoch before, every 4th now).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
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
from presets import PRESETS  # noqa: E402

import jepa_blocks as jb  # noqa: E402
from jepa_blocks.layers.cuda_graph import graph_module  # noqa: E402
from jepa_blocks.training import CheckpointManager  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
#: torch's intra-op threads before --threads changes them (one per core): today's setting.
DEFAULT_THREADS = torch.get_num_threads()


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
    # fused, as examples/seq_jepa/train.py (the CPU default is the per-parameter loop)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    encoder_optimizer = torch.optim.AdamW(model.encoder.parameters(), lr=1e-4, fused=True)
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
        ("  AdamW step, fused (all parameters)", optimizer_step),
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


# ------------------------------------------------------------------ before / after (demo)

#: name -> (AdamW keyword arguments, channels-last, intra-op threads; None: torch's default).
#: "today" is the demo's step as it was: AdamW's default (the per-parameter loop on the CPU)
#: on torch's default threads (one per core); the demo now runs fused AdamW on one thread.
VARIANTS_CPU = {
    "today": ({}, False, None),
    "fused AdamW": ({"fused": True}, False, None),
    "fused AdamW, 1 thread (demo now)": ({"fused": True}, False, 1),
    "fused AdamW, 1 thread, channels-last": ({"fused": True}, True, 1),
}
BASELINE, IMPROVED = "today", "fused AdamW, 1 thread (demo now)"


class _StepVariant:
    """One configuration of the demo's step: its model, target, optimisers and inputs."""

    def __init__(self, name: str, args: argparse.Namespace, device: torch.device) -> None:
        optimizer_kwargs, self.channels_last, self.threads = VARIANTS_CPU[name]
        torch.manual_seed(0)
        config = SeqJEPAConfig(
            backbone=args.backbone, dropout=0.1, backbone_kwargs={"zero_init_last": False}
        )
        self.model = build_model(config).to(device)
        self.target = build_target(self.model, jb.CosineMomentum(total_steps=1000)).to(device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            self.target = self.target.to(memory_format=torch.channels_last)
        b, m, size = args.demo_batch, args.views, args.image_size
        self.views = torch.randn(b, m + 1, 3, size, size, device=device)
        self.actions = torch.randn(b, m, 4, device=device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, **optimizer_kwargs)
        self.encoder_optimizer = torch.optim.AdamW(
            self.model.encoder.parameters(), lr=1e-4, **optimizer_kwargs
        )
        self.model.train()
        self.target.train()

    def _threads(self) -> int:
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads or DEFAULT_THREADS)
        return before

    def full_step(self) -> None:
        # Channels-last weights take NCHW inputs: the convolutions' outputs follow the weights.
        loss, _ = compute_loss(self.model, self.target, self.views, self.actions)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.target.update(self.model.encoder)

    def encoder_step(self) -> None:
        observed = self.views[:, : self.actions.shape[1]].flatten(0, 1)
        loss = self.model.encoder(observed).square().mean()
        self.encoder_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.encoder_optimizer.step()

    def timed(self, fn) -> float:
        before = self._threads()
        try:
            start = time.perf_counter()
            fn()
            return (time.perf_counter() - start) * 1e3
        finally:
            torch.set_num_threads(before)

    def checkpoint_state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }


def _median_spread(samples: list[float]) -> tuple[float, str]:
    q = statistics.quantiles(samples, n=4, method="inclusive") if len(samples) > 1 else samples * 3
    return statistics.median(samples), f"{q[0]:.3g}-{q[2]:.3g}"


def _batch_fetch_ms(args: argparse.Namespace, reps: int) -> float:
    """One batch of the demo's DataLoader (built-in objects, 4 views, batch 32, no workers)."""
    from torch.utils.data import DataLoader

    from jepa_blocks.data.objects import ObjectSequences, RenderedObjects

    demo = PRESETS["demo"]
    objects = RenderedObjects(
        split="train", size=demo["objects_size"], image_size=demo["image_size"], seed=0
    )
    sequences = ObjectSequences(objects, num_views=demo["seq_len"] + 1, seed=0)
    loader = DataLoader(sequences, batch_size=demo["batch_size"], shuffle=True, drop_last=True)
    iterator = iter(loader)
    next(iterator)
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        next(iterator)
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def _checkpoint_ms(variant: _StepVariant, reps: int) -> float:
    """One save of the demo's checkpoint (model, EMA target, AdamW moments), as train.py."""
    samples = []
    with tempfile.TemporaryDirectory() as folder:
        manager = CheckpointManager(Path(folder), keep_last=1)
        for step in range(reps):
            start = time.perf_counter()
            manager.save(variant.checkpoint_state(), step=step, epoch=0, metric=1.0)
            samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def before_after(args: argparse.Namespace, device: torch.device) -> dict:
    """Today's step against train.py's, and variants, interleaved rep by rep (ABAB)."""
    variants = {name: _StepVariant(name, args, device) for name in VARIANTS_CPU}
    samples: dict[tuple[str, str], list[float]] = {
        (name, part): [] for name in variants for part in ("full", "encoder")
    }
    for rep in range(args.warmup + args.demo_reps):
        for name, variant in variants.items():
            for part, fn in (("full", variant.full_step), ("encoder", variant.encoder_step)):
                elapsed = variant.timed(fn)
                if rep >= args.warmup:
                    samples[(name, part)].append(elapsed)
    rows = []
    for name in variants:
        full, full_spread = _median_spread(samples[(name, "full")])
        encoder, encoder_spread = _median_spread(samples[(name, "encoder")])
        rows.append(
            {
                "config": name,
                "full_ms": full,
                "full_spread": full_spread,
                "encoder_ms": encoder,
                "encoder_spread": encoder_spread,
                "overhead": full / encoder - 1,
                "reps": args.demo_reps,
            }
        )
        print(
            f"{name:<30} full {full:8.1f} ms ({full_spread})  encoder-alone {encoder:8.1f} ms "
            f"({encoder_spread})  overhead {100 * (full / encoder - 1):5.1f}%",
            flush=True,
        )
    base = next(r for r in rows if r["config"] == BASELINE)
    for row in rows:
        row["speedup_vs_today"] = base["full_ms"] / row["full_ms"]
    # The demo loop: the step, one batch, and a checkpoint every `every` epochs of 25 steps.
    steps_per_epoch = 800 // PRESETS["demo"]["batch_size"]
    fetch = _batch_fetch_ms(args, reps=10)
    save = _checkpoint_ms(variants[IMPROVED], reps=3)
    demo = []
    for name, every in ((BASELINE, 1), (IMPROVED, PRESETS["demo"]["save_every_epochs"])):
        step_ms = next(r["full_ms"] for r in rows if r["config"] == name)
        per_step = step_ms + fetch + save / (steps_per_epoch * every)
        demo.append(
            {
                "config": name,
                "step_ms": step_ms,
                "batch_ms": fetch,
                "checkpoint_ms": save,
                "save_every_epochs": every,
                "s_per_step": per_step / 1e3,
                "steps_per_s": 1e3 / per_step,
            }
        )
    demo[1]["speedup"] = demo[1]["steps_per_s"] / demo[0]["steps_per_s"]
    print(
        f"demo loop: batch {fetch:.1f} ms, checkpoint {save:.0f} ms; "
        f"{demo[0]['s_per_step']:.3f} -> {demo[1]['s_per_step']:.3f} s/step "
        f"({demo[1]['speedup']:.2f}x steps/s)",
        flush=True,
    )
    return {"rows": rows, "demo_loop": demo}


def _before_after_lines(result: dict, args: argparse.Namespace) -> list[str]:
    rows, demo = result["rows"], result["demo_loop"]
    return [
        f"Before / after at the demo's shapes ({args.backbone}, batch {args.demo_batch}, "
        f"M = {args.views}, {args.image_size} px, dropout 0.1, fp32): every configuration runs "
        f"once per rep, in turn (ABAB), median of {args.demo_reps} reps after {args.warmup} "
        "warm-up rounds. *today* is the demo's step before this change (AdamW's default, the "
        f"per-parameter loop on the CPU, {DEFAULT_THREADS} threads: torch's default); the "
        "demo (`examples/seq_jepa/train.py`) now runs *fused AdamW, 1 thread*. The "
        "encoder-alone step runs in the same configuration as its row.",
        "",
        markdown_table(
            [
                "configuration",
                "full step ms",
                "q1-q3",
                "encoder-alone ms",
                "q1-q3",
                "overhead",
                "steps/s vs today",
            ],
            [
                [
                    r["config"],
                    f"{r['full_ms']:.1f}",
                    r["full_spread"],
                    f"{r['encoder_ms']:.1f}",
                    r["encoder_spread"],
                    f"{100 * r['overhead']:.1f}%",
                    f"{r['speedup_vs_today']:.2f}x",
                ]
                for r in rows
            ],
        ),
        "",
        "The demo's loop (`python examples/seq_jepa/train.py`), per step: the step above, one "
        "batch from the demo's DataLoader, and one checkpoint save spread over the steps "
        "between saves (25 steps an epoch):",
        "",
        markdown_table(
            [
                "configuration",
                "step ms",
                "batch ms",
                "checkpoint ms",
                "saved every",
                "s/step",
                "steps/s",
            ],
            [
                [
                    r["config"],
                    f"{r['step_ms']:.1f}",
                    f"{r['batch_ms']:.1f}",
                    f"{r['checkpoint_ms']:.0f}",
                    f"{r['save_every_epochs']} epoch(s)",
                    f"{r['s_per_step']:.3f}",
                    f"{r['steps_per_s']:.3f}",
                ]
                for r in demo
            ],
        ),
        "",
        f"**Demo steps per second: {demo[1]['speedup']:.2f}x today's.**",
        "",
    ]


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
    parser.add_argument("--demo-batch", type=int, default=32, help="before/after rows (CPU)")
    parser.add_argument("--demo-reps", type=int, default=7)
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
    comparison = before_after(args, device) if not cuda else None
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
        "before_after": comparison,
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
        f"Command: `python benchmarks/step.py --device {args.device}"
        f"{f' --threads {args.threads}' if args.threads else ''}`; {args.backbone}, batch "
        f"{args.batch}, M = {args.views}, {args.image_size} px, "
        f"{'bf16 autocast, channels-last' if cuda else 'fp32'}. Median of {args.reps} reps.",
        "",
        *(_before_after_lines(comparison, args) if comparison else []),
        f"Breakdown at batch {args.batch} (fused AdamW, as train.py; {machine['torch_threads']} "
        "thread(s)), each part timed on its own:",
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
