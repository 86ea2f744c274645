"""Benchmark jepa_blocks' attention against PyTorch's and timm's, core by core and module by module.

Why it exists: the library ships its own Triton-free attention cores (``naive``, ``sdpa``,
``online``) and an ``Attention`` module; this script measures what they cost next to the
alternatives a user would otherwise reach for, on the shapes JEPA models actually use, and
checks three goals: the ``Attention(sdpa)`` wrapper is free (>= 0.95x a plain
qkv-Linear + SDPA + proj module), the ``online`` core's peak memory at N = 16k is <= 1/10 of
the naive core's, and on CPU ``online`` runs at >= 0.5x SDPA's speed for N >= 1k.

Two groups, compared only within themselves:

* core level -- input ``q, k, v (B, H, N, D)``: our ``attention_core`` with each core, and
  ``F.scaled_dot_product_attention`` with PyTorch's default choice and pinned to each backend;
* module level -- input ``x (B, N, H*D)``, projections included: our ``Attention`` with each
  core, a plain qkv-Linear + SDPA + proj module, ``timm.layers.Attention`` and
  ``nn.MultiheadAttention`` (all sharing the same weights).

Passes: ``fwd`` (inference, under ``no_grad``) and ``fwd+bwd`` (forward, then backward of a
fixed random upstream gradient). Reported per row: median time and inter-quartile range of
the repetitions, which are interleaved across the peers of a group so that load drift on a
shared machine hits all of them alike; GFLOP/s (core: fwd ``4 B H N^2 D``, fwd+bwd 3.5x;
module: plus ``8 B N d^2`` for the projections, 3x in fwd+bwd); % of a matmul ceiling
measured in the same run; peak extra memory of one call (CUDA: ``max_memory_allocated``;
CPU: the torch allocator's peak from the profiler's memory events, so torch tensors only,
inputs and weights excluded, the output included); the error against an fp64 naive
computation, ``max|out - ref| / max|ref|`` on batch element 0 (core: first <= 2 heads and
<= 256 query rows; fwd rows compare outputs, fwd+bwd rows compare dq (core) or dx (module,
only where a full fp64 reference fits, N <= 2048)); and the SDPA backend that ran (from
PyTorch's own dispatcher, ``torch._fused_sdp_choice``).

Rows that cannot run are listed with the reason, never dropped: a pinned backend PyTorch
refuses, an ``N x N`` core whose scores would exceed ``--max-mem-gib`` (the analytic bytes
are reported), or a row whose estimated time exceeds the per-call cap.

``--quick`` (the CPU results in ``benchmarks/results/``; ~3 minutes on 2 quiet cores): up to 3
repetitions within ~1 s of timing per group (calls of a second or more: the warm-up call is
the sample), 7 alternating pairs (within ~2.5 s; for seconds-long calls the back-to-back
timing samples) per goal ratio, smaller batches for the big shapes
(I-JEPA B=4, V-JEPA (1, 4), 4k (1, 2), 16k (1, 1)); for N >= 4096 only the peers the goals
need (naive, SDPA default, online, the plain module, ours with sdpa), at 16k core level
only. The full mode (CPU shapes: ViT-S B=8, V-JEPA B=2, 4k (1, 8), 16k (1, 8)) takes far
longer on 2 cores. Usage::

    python benchmarks/attention.py --quick --md benchmarks/results/attention-cpu.md \
        --json benchmarks/results/attention-cpu.json --plot benchmarks/results/attention-cpu.png
    python benchmarks/attention.py --device cuda --json attention-gpu.json   # bf16
"""

import argparse
import copy
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    Timing,
    configure_threads,
    machine_description,
    markdown_table,
    matmul_ceiling,
    peak_memory,
    synchronize,
    time_fn,
    write_json,
)

try:
    from jepa_blocks import Attention, attention_core
except ImportError:  # before the package re-exports them
    from jepa_blocks.layers.attention import Attention, attention_core

__all__ = ["main", "parse_args"]

GIB = 2**30
MIB = 2**20
SDPA_PINNED = ("math", "flash", "efficient", "cudnn")

# name -> (CPU shape, CUDA shape), each (B, H, N, D)
SHAPES: dict[str, tuple[tuple[int, int, int, int], tuple[int, int, int, int]]] = {
    "seq-JEPA aggregator d640": ((512, 4, 5, 160), (512, 4, 5, 160)),
    "seq-JEPA aggregator 8 views": ((512, 8, 9, 64), (512, 8, 9, 64)),
    "ViT-tiny 32px": ((64, 3, 65, 64), (64, 3, 65, 64)),
    "ViT-S/16 224": ((8, 6, 197, 64), (256, 6, 197, 64)),
    "I-JEPA ViT-H/14": ((32, 16, 256, 80), (32, 16, 256, 80)),
    "V-JEPA 16 frames": ((2, 16, 1568, 64), (16, 16, 1568, 64)),
    "long 4k": ((1, 8, 4096, 64), (8, 16, 4096, 128)),
    "long 16k": ((1, 8, 16384, 64), (2, 16, 16384, 64)),
}
QUICK_CPU = {
    "I-JEPA ViT-H/14": (4, 16, 256, 80),
    "V-JEPA 16 frames": (1, 4, 1568, 64),
    "long 4k": (1, 2, 4096, 64),
    "long 16k": (1, 1, 16384, 64),
}
SWEEP_N = (256, 512, 1024, 2048, 4096, 8192, 16384)
LONG_N = 4096  # quick mode trims the peer list from here on
QUICK_LONG_PEERS = {"naive", "sdpa default", "online", "plain qkv+SDPA+proj", "Attention(sdpa)"}
QUICK_16K_PEERS = {"naive", "sdpa default", "online"}
# (baseline, candidate, minimum N): pairs behind the goals, timed again as alternating pairs.
GOAL_PAIRS = (("plain qkv+SDPA+proj", "Attention(sdpa)", 1), ("sdpa default", "online", 1024))


class Skip(Exception):
    """A row that is reported with a reason instead of a time."""


@dataclass
class Peer:
    name: str
    level: str  # "core" | "module"
    run: Callable[[], object]  # one call of the measured pass
    backend: str
    materializes: bool = False  # keeps N x N scores
    # error(fresh): relative error vs fp64; fresh=True means run() was this peer's last call
    error: Callable[[bool], float | None] | None = None
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- helpers


def sdpa_choice(q, k, v) -> str:
    """The backend PyTorch's dispatcher picks for these inputs (private API, best effort)."""
    try:
        from torch.nn.attention import SDPBackend

        return SDPBackend(torch._fused_sdp_choice(q, k, v)).name.lower()
    except Exception:  # pragma: no cover - depends on the torch version
        return "unknown"


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    expected = expected.double()
    scale = expected.abs().max().clamp_min(1e-30)
    return float((actual.double() - expected).abs().max() / scale)


def flops(b, h, n, d, pass_: str, level: str) -> float:
    attn = 4.0 * b * h * n * n * d
    proj = 8.0 * b * n * (h * d) ** 2 if level == "module" else 0.0
    return attn * 3.5 + proj * 3.0 if pass_ == "fwd+bwd" else attn + proj


def scores_bytes(b, h, n, elt: int, pass_: str) -> int:
    # naive / math keep scores and probabilities (forward), plus their gradients (backward)
    return b * h * n * n * elt * (4 if pass_ == "fwd+bwd" else 2)


class PlainAttention(nn.Module):
    """The baseline a user writes by hand: qkv Linear, SDPA, proj Linear."""

    def __init__(self, dim, heads, device=None, dtype=None):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, device=device, dtype=dtype)
        self.proj = nn.Linear(dim, dim, device=device, dtype=dtype)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


# ----------------------------------------------------------------------------- peers


def core_peers(shape, pass_, device, dtype, block_size, gen) -> list[Peer]:
    b, h, n, d = shape
    grad = pass_ == "fwd+bwd"
    q, k, v = (
        torch.randn(b, h, n, d, generator=gen, device="cpu")
        .to(device=device, dtype=dtype)
        .requires_grad_(grad)
        for _ in range(3)
    )
    upstream = torch.randn(b, h, n, d, generator=gen).to(device=device, dtype=dtype)
    hs, rows = min(h, 2), min(n, 256)

    def reference():
        q0, k0, v0 = (t.detach()[:1, :hs].double() for t in (q, k, v))
        q0 = q0[:, :, :rows].requires_grad_(grad)
        ref = attention_core(q0, k0, v0, core="naive")
        if not grad:
            return ref
        (dq,) = torch.autograd.grad(ref, q0, upstream[:1, :hs, :rows].double())
        return dq

    ref_cache: dict[str, torch.Tensor] = {}

    def make(fn):
        def call():
            if grad:
                q.grad = k.grad = v.grad = None
                fn(q, k, v).backward(upstream)
                return None
            with torch.no_grad():
                return fn(q, k, v)

        def error(fresh: bool):
            if "ref" not in ref_cache:
                ref_cache["ref"] = reference()
            if grad:
                if not fresh:  # q.grad is from another peer's call: run this one
                    call()
                return rel_err(q.grad[:1, :hs, :rows], ref_cache["ref"])
            with torch.no_grad():
                return rel_err(fn(q, k, v)[:1, :hs, :rows], ref_cache["ref"])

        return call, error

    chosen = sdpa_choice(q, k, v)
    specs = [
        ("naive", lambda q, k, v: attention_core(q, k, v, core="naive"), "none", True),
        ("sdpa default", F.scaled_dot_product_attention, f"default: {chosen}", chosen == "math"),
    ]
    for backend in SDPA_PINNED:

        def pinned(q, k, v, backend=backend):
            return attention_core(q, k, v, core="sdpa", backend=backend)

        specs.append((f"sdpa {backend}", pinned, backend, backend == "math"))
    specs.append(
        (
            "online",
            lambda q, k, v: attention_core(q, k, v, core="online", block_size=block_size),
            f"online, block {block_size}",
            False,
        )
    )
    specs.append(
        (
            "attention_core(sdpa)",
            lambda q, k, v: attention_core(q, k, v),
            f"default: {chosen}",
            chosen == "math",
        )
    )
    peers = []
    for name, fn, backend, materializes in specs:
        call, error = make(fn)
        peers.append(Peer(name, "core", call, backend, materializes, error))
    return peers


def module_peers(shape, pass_, device, dtype, block_size, gen) -> list[Peer]:
    b, h, n, d = shape
    dim = h * d
    grad = pass_ == "fwd+bwd"
    torch.manual_seed(0)
    ours = Attention(dim, h, block_size=block_size, device=device, dtype=dtype).eval()
    plain = PlainAttention(dim, h, device=device, dtype=dtype).eval()
    plain.load_state_dict(ours.state_dict())
    from timm.layers import Attention as TimmAttention

    timm_attn = TimmAttention(dim, num_heads=h, qkv_bias=True).to(device, dtype).eval()
    timm_attn.load_state_dict(ours.state_dict())
    mha = nn.MultiheadAttention(dim, h, batch_first=True, device=device, dtype=dtype).eval()
    with torch.no_grad():
        mha.in_proj_weight.copy_(ours.qkv.weight)
        mha.in_proj_bias.copy_(ours.qkv.bias)
        mha.out_proj.weight.copy_(ours.proj.weight)
        mha.out_proj.bias.copy_(ours.proj.bias)
    x = torch.randn(b, n, dim, generator=gen).to(device=device, dtype=dtype).requires_grad_(grad)
    upstream = torch.randn(b, n, dim, generator=gen).to(device=device, dtype=dtype)
    rows = min(n, 256)
    ref_cache: dict[str, torch.Tensor | None] = {}

    def reference():
        x0 = x.detach()[:1].double()
        if grad:
            if n > 2048:
                return None  # a full fp64 N x N reference for dx does not fit
            ref_mod = copy.deepcopy(ours).double()
            ref_mod.core = "naive"
            x0.requires_grad_()
            (dx,) = torch.autograd.grad(ref_mod(x0), x0, upstream[:1].double())
            return dx
        # Output rows 0..rows-1 only: queries from those rows, keys/values from all.
        w, bias = ours.qkv.weight.double(), ours.qkv.bias.double()
        qkv = torch.nn.functional.linear(x0, w, bias)
        q, k, v = qkv.reshape(1, n, 3, h, d).permute(2, 0, 3, 1, 4)
        out = attention_core(q[:, :, :rows], k, v, core="naive")
        out = out.transpose(1, 2).reshape(1, rows, dim)
        return torch.nn.functional.linear(out, ours.proj.weight.double(), ours.proj.bias.double())

    def make(fn):
        def call():
            if grad:
                x.grad = None
                fn(x).backward(upstream)
                return None
            with torch.no_grad():
                return fn(x)

        def error(fresh: bool):
            if "ref" not in ref_cache:
                ref_cache["ref"] = reference()
            ref = ref_cache["ref"]
            if ref is None:
                return None
            if grad:
                if not fresh:
                    call()
                return rel_err(x.grad[:1], ref)
            with torch.no_grad():
                return rel_err(fn(x)[:1, :rows], ref)

        return call, error

    with torch.no_grad():
        probe = x.detach()[:1, :, :dim].reshape(1, n, h, d).transpose(1, 2)
        chosen = sdpa_choice(probe, probe, probe)
    variants = {}
    for core in ("sdpa", "online", "naive"):
        mod = copy.deepcopy(ours)
        mod.core = core
        variants[core] = mod
    specs = [
        ("plain qkv+SDPA+proj", plain, f"default: {chosen}", chosen == "math"),
        ("Attention(sdpa)", variants["sdpa"], f"default: {chosen}", chosen == "math"),
        ("Attention(online)", variants["online"], f"online, block {block_size}", False),
        ("Attention(naive)", variants["naive"], "none", True),
        ("timm Attention", timm_attn, f"default: {chosen}", chosen == "math"),
    ]
    mha_backend = f"default: {chosen}" if grad else "native MHA fast path (eval, no_grad)"
    peers = []
    for name, mod, backend, materializes in specs:
        call, error = make(mod)
        peers.append(Peer(name, "module", call, backend, materializes, error))
    call, error = make(lambda t: mha(t, t, t, need_weights=False)[0])
    peers.append(Peer("nn.MultiheadAttention", "module", call, mha_backend, False, error))
    return peers


# ----------------------------------------------------------------------------- running


def time_interleaved(
    calls: dict[str, Callable[[], object]],
    *,
    device,
    reps: int,
    max_seconds: float,
    prefill: dict[str, float] | None = None,
) -> dict[str, Timing]:
    """Time several callables with their repetitions interleaved (A B C A B C ...).

    ``prefill`` holds one already measured sample per callable (then, if the cap is already
    exceeded by those samples' total, no further repetition runs).
    """
    samples: dict[str, list[float]] = {name: [] for name in calls}
    if prefill:
        for name in calls:
            samples[name].append(prefill[name])
        if sum(prefill.values()) / 1e3 > max_seconds or reps <= 1:
            reps = 0
        else:
            reps -= 1
    start = time.perf_counter()
    for _ in range(reps):
        for name, call in calls.items():
            samples[name].append(time_fn(call, device=device, warmup=0, reps=1).median_ms)
        if time.perf_counter() - start > max_seconds:
            break
    out = {}
    for name, values in samples.items():
        values = sorted(values)
        half = len(values) // 2
        median = values[half] if len(values) % 2 else 0.5 * (values[half - 1] + values[half])
        q1 = values[len(values) // 4]
        q3 = values[(3 * len(values)) // 4] if len(values) > 1 else values[0]
        out[name] = Timing(median, q1, q3, values[0], values[-1], len(values))
    return out


def run_group(peers, shape, pass_, args, device, dtype, ceiling, label) -> list[dict]:
    b, h, n, d = shape
    elt = torch.tensor([], dtype=dtype).element_size()
    rows: dict[str, dict] = {}
    runnable: dict[str, Peer] = {}
    first_ms: dict[str, float] = {}
    for peer in peers:
        row = {
            "shape": label,
            "b": b,
            "h": h,
            "n": n,
            "d": d,
            "level": peer.level,
            "impl": peer.name,
            "pass": pass_,
            "device": str(device),
            "dtype": str(dtype).replace("torch.", ""),
            "backend": peer.backend,
            "status": "ok",
            "reason": "",
        }
        rows[peer.name] = row
        quick_keep = QUICK_16K_PEERS if n >= 16384 else QUICK_LONG_PEERS
        if args.quick and n >= LONG_N and peer.name not in quick_keep:
            row.update(status="not run", reason="--quick: long shapes run the goal peers only")
            continue
        if peer.materializes:
            need = scores_bytes(b, h, n, elt, pass_)
            row["analytic_bytes"] = need
            if need > args.max_mem_gib * GIB:
                row.update(
                    status="not run",
                    reason=f"N x N scores need ~{need / GIB:.1f} GiB > --max-mem-gib "
                    f"{args.max_mem_gib}",
                )
                continue
        slow = 0.25 if peer.materializes or peer.name == "online" else 0.5
        estimate = flops(b, h, n, d, pass_, peer.level) / (slow * ceiling * 1e9)
        if estimate > args.max_call_s:
            row.update(
                status="not run",
                reason=f"estimated {estimate:.0f} s per call > --max-call-s {args.max_call_s}",
            )
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = time.perf_counter()
                peer.run()  # warm-up, and the pinned-backend availability check
                synchronize(device)
                first_ms[peer.name] = (time.perf_counter() - start) * 1e3
        except (RuntimeError, torch.OutOfMemoryError) as err:
            message = str(err).split("PyTorch said:")[-1].strip().splitlines()[0][:60]
            row.update(status="not run", reason=f"PyTorch refused on {device.type}: {message}...")
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        runnable[peer.name] = peer
    if runnable:
        # Calls of a second or more: the warm-up call is already a fair sample (one-off
        # overheads are negligible at that length), so it counts and the group needs only
        # the repetitions that fit the time cap.
        long_calls = min(first_ms[name] for name in runnable) >= 1000.0
        timings = time_interleaved(
            {name: p.run for name, p in runnable.items()},
            device=device,
            reps=args.reps,
            max_seconds=args.group_seconds,
            prefill={name: first_ms[name] for name in runnable} if long_calls else None,
        )
        for name, peer in runnable.items():
            row = rows[name]
            timing = timings[name]
            gflops = flops(b, h, n, d, pass_, peer.level) / (timing.median_ms * 1e-3) / 1e9
            row.update(
                ms=timing.median_ms,
                q1_ms=timing.q1_ms,
                q3_ms=timing.q3_ms,
                min_ms=timing.min_ms,
                max_ms=timing.max_ms,
                reps=timing.reps,
                spread=timing.spread(),
                gflops=gflops,
                pct_ceiling=100.0 * gflops / ceiling,
            )
            fresh = False
            if not args.no_memory:
                row["peak_bytes"] = peak_memory(peer.run, device=device)
                fresh = True  # its gradients are still in place for the error check
            row["rel_err"] = peer.error(fresh) if peer.error is not None else None
        for base, candidate, min_n in GOAL_PAIRS:
            if base not in runnable or candidate not in runnable or n < min_n:
                continue
            if long_calls and args.quick:
                # Seconds-long calls, already timed back to back: reuse those samples.
                ratio = timings[base].median_ms / timings[candidate].median_ms
                paired = {
                    "paired_ratio": ratio,
                    "paired_ratio_q1": ratio,
                    "paired_ratio_q3": ratio,
                    "paired_reps": timings[candidate].reps,
                }
            else:
                paired = paired_ratio(
                    runnable[base].run,
                    runnable[candidate].run,
                    device=device,
                    reps=args.pair_reps,
                    max_seconds=args.group_seconds * 2.5,
                )
            rows[candidate].update(paired_with=base, **paired)
    return list(rows.values())


def paired_ratio(base, candidate, *, device, reps: int, max_seconds: float) -> dict:
    """Speed of ``candidate`` relative to ``base`` (base_ms / candidate_ms), from pairs.

    Each repetition times both back to back, alternating which goes first; the median of the
    per-pair ratios is robust to load that drifts between pairs on a shared machine.
    """
    ratios = []
    start = time.perf_counter()
    for rep in range(reps):
        first, second = (base, candidate) if rep % 2 == 0 else (candidate, base)
        t_first = time_fn(first, device=device, warmup=0, reps=1).median_ms
        t_second = time_fn(second, device=device, warmup=0, reps=1).median_ms
        base_ms, cand_ms = (t_first, t_second) if rep % 2 == 0 else (t_second, t_first)
        ratios.append(base_ms / cand_ms)
        # At least two pairs (one of each order), unless single calls are seconds long.
        enough = len(ratios) >= 2 or min(base_ms, cand_ms) >= 1000.0
        if time.perf_counter() - start > max_seconds and enough:
            break
    ratios.sort()
    return {
        "paired_ratio": statistics.median(ratios),
        "paired_ratio_q1": ratios[len(ratios) // 4],
        "paired_ratio_q3": ratios[(3 * len(ratios)) // 4],
        "paired_reps": len(ratios),
    }


def sweep(args, device, dtype, ceiling, done: list[dict]) -> list[dict]:
    """fwd+bwd time and peak memory of the naive / sdpa / online cores against N.

    A point already measured in the main table (same B, H, N, D) is reused, not rerun.
    """
    b, h, d = (1, 1, 64) if device.type == "cpu" else (1, 16, 64)
    out = []
    gen = torch.Generator().manual_seed(1)
    for n in SWEEP_N:
        reuse = [
            {**r, "shape": f"sweep N={n}", "reused_from": r["shape"]}
            for r in done
            if (r["b"], r["h"], r["n"], r["d"]) == (b, h, n, d)
            and r["pass"] == "fwd+bwd"
            and r["impl"] in ("naive", "sdpa default", "online")
        ]
        if len(reuse) == 3:
            out.extend(reuse)
            print(f"  sweep N={n}: reused from the main table", flush=True)
            continue
        peers = [
            p
            for p in core_peers((b, h, n, d), "fwd+bwd", device, dtype, args.block_size, gen)
            if p.name in ("naive", "sdpa default", "online")
        ]
        # The sweep is supporting evidence: two repetitions, three pairs.
        sweep_args = argparse.Namespace(**{**vars(args), "quick": False, "reps": 2, "pair_reps": 3})
        rows = run_group(
            peers, (b, h, n, d), "fwd+bwd", sweep_args, device, dtype, ceiling, f"sweep N={n}"
        )
        out.extend(rows)
        print(f"  sweep N={n}: " + ", ".join(f"{r['impl']} {fmt_ms(r)}" for r in rows), flush=True)
    return out


# ----------------------------------------------------------------------------- reporting


def fmt_ms(row) -> str:
    return f"{row['ms']:.3g} ms" if row.get("status") == "ok" else row.get("status", "")


def fmt_bytes(row) -> str:
    if row.get("peak_bytes") is not None:
        return f"{row['peak_bytes'] / MIB:.1f}"
    if row.get("analytic_bytes") is not None and row.get("status") != "ok":
        return f"~{row['analytic_bytes'] / MIB:.0f} (analytic)"
    return "-"


def _find(rows, label, impl, pass_):
    for row in rows:
        if row["shape"] == label and row["impl"] == impl and row["pass"] == pass_:
            return row
    return None


def _ratio_entry(row, base) -> dict:
    """Speed ratio base_ms / row_ms: from alternating pairs when measured, else medians."""
    paired = row.get("paired_ratio") is not None
    return {
        "shape": row["shape"],
        "pass": row["pass"],
        "ratio": row["paired_ratio"] if paired else base["ms"] / row["ms"],
        "ratio_of_medians": base["ms"] / row["ms"],
        "paired_reps": row.get("paired_reps", 0),
    }


def wrapper_overhead(device, dtype, pairs: int = 300) -> dict:
    """Per-call cost of ``Attention(sdpa)`` over the plain module on a tiny input.

    At (B, N, d) = (1, 5, 64) the arithmetic is negligible, so the difference of the two
    medians (alternating calls, forward under no_grad) is the wrapper's Python overhead. One
    CPU thread: tiny ops gain nothing from a second one, which only adds barrier waits.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _wrapper_overhead(device, dtype, pairs)
    finally:
        torch.set_num_threads(threads)


def _wrapper_overhead(device, dtype, pairs: int) -> dict:
    torch.manual_seed(0)
    ours = Attention(64, 4, device=device, dtype=dtype).eval()
    plain = PlainAttention(64, 4, device=device, dtype=dtype).eval()
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(1, 5, 64, device=device, dtype=dtype)
    ours_us, plain_us = [], []
    with torch.no_grad():
        for _ in range(20):
            ours(x), plain(x)
        for _ in range(pairs):
            for mod, samples in ((ours, ours_us), (plain, plain_us)):
                start = time.perf_counter()
                mod(x)
                synchronize(device)
                samples.append((time.perf_counter() - start) * 1e6)
    ours_med, plain_med = statistics.median(ours_us), statistics.median(plain_us)
    return {"ours_us": ours_med, "plain_us": plain_med, "overhead_us": ours_med - plain_med}


def goals(rows, sweep_rows, device) -> dict:
    result: dict[str, object] = {}
    # 1. the wrapper is free: Attention(sdpa) vs the plain module, speed ratio plain/ours.
    wrapper = []
    for row in rows:
        if row["impl"] != "Attention(sdpa)" or row.get("status") != "ok":
            continue
        plain = _find(rows, row["shape"], "plain qkv+SDPA+proj", row["pass"])
        if plain and plain.get("status") == "ok":
            wrapper.append(_ratio_entry(row, plain))
    result["wrapper_speed_ratios"] = wrapper
    result["wrapper_min_ratio"] = min((w["ratio"] for w in wrapper), default=None)
    # 2. online peak memory at the largest N vs naive (measured, else analytic).
    memory = []
    for source in (rows, sweep_rows):
        for row in source:
            if row["impl"] != "online" or row["n"] < 16384 or row.get("peak_bytes") is None:
                continue
            if row.get("reused_from"):
                continue
            naive = _find(source, row["shape"], "naive", row["pass"])
            if naive is None:
                continue
            naive_bytes = naive.get("peak_bytes") or naive.get("analytic_bytes")
            if naive_bytes:
                memory.append(
                    {
                        "shape": row["shape"],
                        "pass": row["pass"],
                        "online_bytes": row["peak_bytes"],
                        "naive_bytes": naive_bytes,
                        "naive_measured": naive.get("peak_bytes") is not None,
                        "ratio": row["peak_bytes"] / naive_bytes,
                    }
                )
    result["online_vs_naive_memory_16k"] = memory
    # 3. online speed vs SDPA default for N >= 1024 (speed ratio sdpa_ms / online_ms).
    speed = []
    for source in (rows, sweep_rows):
        for row in source:
            if row["impl"] != "online" or row["n"] < 1024 or row.get("status") != "ok":
                continue
            if row.get("reused_from"):
                continue
            ref = _find(source, row["shape"], "sdpa default", row["pass"])
            if ref and ref.get("status") == "ok":
                speed.append(_ratio_entry(row, ref))
    result["online_vs_sdpa_speed_n_ge_1k"] = speed
    result["online_vs_sdpa_min_ratio"] = min((s["ratio"] for s in speed), default=None)
    return result


def _paired_note(row) -> str:
    if row.get("paired_ratio") is None:
        return ""
    return (
        f"{row['paired_ratio']:.2f}x the speed of {row['paired_with']} "
        f"({row['paired_reps']} alternating pairs, IQR {row['paired_ratio_q1']:.2f}-"
        f"{row['paired_ratio_q3']:.2f})"
    )


def commentary(payload) -> list[str]:
    """Plain-language notes on what limits the numbers, derived from the run itself."""
    machine, goal = payload["machine"], payload["goals"]
    notes = list(payload["args"].get("note") or [])
    load, cores = machine.get("load_avg_1m"), machine.get("cpu_cores") or 1
    if machine["device"] == "cpu" and load is not None and load > 0.75 * cores:
        threads = machine.get("torch_threads", 1)
        why = (
            "with several threads every PyTorch op ends in a barrier that waits for a "
            "descheduled thread, so implementations made of many ops (naive, online, the "
            "modules) lose more than one-kernel SDPA"
            if threads > 1
            else "this run used 1 thread because under such load a second thread mostly adds "
            "barrier waits to every op (milliseconds each), which would measure the scheduler "
            "rather than the code"
        )
        notes.append(
            f"Caveat: the 1-minute load average was {load:.1f} on {cores} cores when this run "
            "started, so other processes shared the CPU: absolute times are inflated (compare "
            f"the matmul ceiling of {payload['ceiling_gflops']:.0f} GFLOP/s with the anchors' "
            f"~156 for 2 quiet threads), and {why}. The goal ratios come from alternating "
            "pairs (medians of per-pair ratios), not from the table medians."
        )
    if goal.get("online_vs_sdpa_min_ratio") is not None and goal["online_vs_sdpa_min_ratio"] < 0.5:
        notes.append(
            "Why online trails SDPA on CPU: both do the same GEMM FLOPs, but PyTorch's CPU "
            "flash kernel keeps each score tile in cache and fuses max / exp / sum / rescale, "
            "while the online core runs them as separate PyTorch ops that stream a tile of up "
            "to 16 MiB through memory 4-5 times, with ~10 op launches per tile; fwd+bwd is "
            "closer because the backward recomputes P with the same GEMMs SDPA runs."
        )
    if goal.get("wrapper_min_ratio") is not None and goal["wrapper_min_ratio"] < 0.95:
        worst = min(goal["wrapper_speed_ratios"], key=lambda w: w["ratio"])
        plain = _find(payload["rows"], worst["shape"], "plain qkv+SDPA+proj", worst["pass"])
        gap_us = plain["ms"] * 1e3 * (1.0 / worst["ratio"] - 1.0)
        overhead_us = (goal.get("wrapper_overhead") or {}).get("overhead_us", float("nan"))
        if overhead_us < 0.25 * gap_us:
            notes.append(
                f"The lowest wrapper ratio ({worst['shape']}, {worst['pass']}) implies "
                f"{gap_us:.0f} us of extra time per call, but the wrapper's measured per-call "
                f"overhead is {overhead_us:+.0f} us: the dip is timing noise of the shared "
                "machine (see the IQR of the paired ratios in the module table), not cost."
            )
        else:
            notes.append(
                f"The lowest wrapper ratio ({worst['shape']}, {worst['pass']}) is explained by "
                f"the wrapper's per-call overhead of {overhead_us:+.0f} us (validation, "
                "einops rearranges, the core dispatch) on a call this short."
            )
    return notes


def markdown(payload) -> str:
    machine, rows, sweep_rows, goal = (
        payload["machine"],
        payload["rows"],
        payload["sweep"],
        payload["goals"],
    )
    lines = [
        f"# Attention benchmark ({machine['device']}, {payload['dtype']})",
        "",
        f"Machine: {machine['cpu']}, {machine['cpu_cores']} cores, torch "
        f"{machine['torch']} ({machine['torch_threads']} threads)"
        + (f", GPU {machine['gpu']}" if "gpu" in machine else "")
        + f", {machine['date']}; 1-min load average at start "
        f"{machine.get('load_avg_1m', float('nan')):.2f}.",
        f"Matmul ceiling measured in this run: {payload['ceiling_gflops']:.1f} GFLOP/s "
        f"({payload['ceiling_size']}^3 {payload['dtype']}). Mode: "
        f"{'--quick' if payload['args']['quick'] else 'full'}; command: `{payload['command']}`;"
        f" total {payload['seconds']:.0f} s.",
        "",
        "## Goals (measured ratios)",
        "",
    ]
    wrapper = goal["wrapper_speed_ratios"]
    if wrapper:
        verdict = "met" if goal["wrapper_min_ratio"] >= 0.95 else "missed"
        lines.append(
            f"* `Attention(sdpa)` speed / plain qkv+SDPA+proj module (goal >= 0.95x at every "
            f"shape, paired median): min {goal['wrapper_min_ratio']:.4f}x -> **{verdict}**. "
            "Per shape: "
            + "; ".join(f"{w['shape']} {w['pass']} {w['ratio']:.3f}x" for w in wrapper)
            + "."
        )
    for m in goal["online_vs_naive_memory_16k"]:
        verdict = "met" if m["ratio"] <= 0.1 else "missed"
        kind = "measured" if m["naive_measured"] else "analytic N^2 (naive not run)"
        lines.append(
            f"* online / naive peak memory at N=16k ({m['shape']}, {m['pass']}; goal <= 0.1): "
            f"{m['online_bytes'] / MIB:.1f} MiB / {m['naive_bytes'] / MIB:.0f} MiB ({kind}) = "
            f"{m['ratio']:.4f} -> **{verdict}**."
        )
    overhead = goal.get("wrapper_overhead")
    if overhead:
        lines.append(
            f"* Wrapper overhead per call at a tiny input (1, 5, 64), forward: "
            f"{overhead['ours_us']:.0f} us vs {overhead['plain_us']:.0f} us for the plain "
            f"module ({overhead['overhead_us']:+.0f} us)."
        )
    speed = goal["online_vs_sdpa_speed_n_ge_1k"]
    if speed:
        verdict = "met" if goal["online_vs_sdpa_min_ratio"] >= 0.5 else "missed"
        lines.append(
            f"* online speed / SDPA default for N >= 1k (goal >= 0.5x, paired median): min "
            f"{goal['online_vs_sdpa_min_ratio']:.3f}x -> **{verdict}**. Per row: "
            + "; ".join(f"{s['shape']} {s['pass']} {s['ratio']:.2f}x" for s in speed)
            + "."
        )
    for note in payload.get("commentary", []):
        lines += ["", note]
    lines.append("")
    header = [
        "shape (B,H,N,D)",
        "impl",
        "pass",
        "backend",
        "ms (median)",
        "IQR ms",
        "GFLOP/s",
        "% ceiling",
        "peak MiB",
        "rel err",
        "note",
    ]
    for level, title in (("core", "Core level (q, k, v in)"), ("module", "Module level")):
        table = []
        for row in rows:
            if row["level"] != level:
                continue
            ok = row["status"] == "ok"
            err = row.get("rel_err")
            table.append(
                [
                    f"{row['shape']} ({row['b']},{row['h']},{row['n']},{row['d']})",
                    row["impl"],
                    row["pass"],
                    row["backend"],
                    f"{row['ms']:.3g}" if ok else row["status"],
                    row["spread"] if ok else "",
                    f"{row['gflops']:.1f}" if ok else "",
                    f"{row['pct_ceiling']:.0f}" if ok else "",
                    fmt_bytes(row),
                    f"{err:.1e}" if err is not None else "",
                    row["reason"] or _paired_note(row),
                ]
            )
        lines += [f"## {title}", "", markdown_table(header, table), ""]
    lines += [
        "## How this was measured",
        "",
        "* Times: median of the repetitions (interleaved across the peers of a group), IQR "
        "from their quartiles; the goal ratios from alternating pairs. fwd runs under "
        "`no_grad`; fwd+bwd includes the backward of a fixed random upstream gradient.",
        "* GFLOP/s: core fwd 4 B H N^2 D, fwd+bwd 3.5x that; module rows add 8 B N d^2 for "
        "the projections (3x in fwd+bwd). % ceiling is against the matmul measured above.",
        "* Peak MiB: extra memory of one call. CUDA: `torch.cuda.max_memory_allocated`; CPU: "
        "the peak of the torch CPU allocator's running total from the profiler's memory "
        "events (tensors only; inputs and weights excluded, the output included). "
        "'(analytic)' is B H N^2 x bytes x (2 fwd, 4 fwd+bwd) for a row not run.",
        "* rel err: max |out - ref| / max |ref| against an fp64 naive computation on batch "
        "element 0 (core: <= 2 heads, <= 256 query rows); fwd+bwd rows compare dq (core) or "
        "dx (module, only where an fp64 N x N reference fits: N <= 2048).",
        "* backend: what PyTorch's SDPA dispatcher picks for these inputs "
        "(`torch._fused_sdp_choice`), or the pinned backend; 'PyTorch refused' rows are "
        "backends this device cannot run.",
        "",
    ]
    if sweep_rows:
        table = [
            [
                row["n"],
                row["impl"],
                f"{row['ms']:.3g}" if row["status"] == "ok" else row["status"],
                fmt_bytes(row),
                row["reason"],
            ]
            for row in sweep_rows
        ]
        b, h, d = sweep_rows[0]["b"], sweep_rows[0]["h"], sweep_rows[0]["d"]
        lines += [
            f"## Sweep: fwd+bwd vs N at B={b}, H={h}, D={d} (plotted)",
            "",
            markdown_table(["N", "core", "ms", "peak MiB", "note"], table),
            "",
        ]
    return "\n".join(lines)


def plot(sweep_rows, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for impl, style in (("naive", "o-"), ("sdpa default", "s-"), ("online", "^-")):
        pts = [r for r in sweep_rows if r["impl"] == impl and r["status"] == "ok"]
        ax_t.plot([r["n"] for r in pts], [r["ms"] for r in pts], style, label=impl)
        mem = [r for r in pts if r.get("peak_bytes") is not None]
        ax_m.plot([r["n"] for r in mem], [r["peak_bytes"] / MIB for r in mem], style, label=impl)
        skipped = [r for r in sweep_rows if r["impl"] == impl and r["status"] != "ok"]
        analytic = [r for r in skipped if r.get("analytic_bytes")]
        if analytic:
            ax_m.plot(
                [r["n"] for r in analytic],
                [r["analytic_bytes"] / MIB for r in analytic],
                "x",
                color=ax_m.lines[-1].get_color() if mem else None,
                label=f"{impl} (analytic, not run)",
            )
    b, h, d = sweep_rows[0]["b"], sweep_rows[0]["h"], sweep_rows[0]["d"]
    for ax, ylabel in ((ax_t, "fwd+bwd time (ms)"), (ax_m, "peak extra memory (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length N")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(
        f"attention cores, B={b} H={h} D={d}, {sweep_rows[0]['device']} {sweep_rows[0]['dtype']}"
    )
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (bf16 on cuda)")
    parser.add_argument("--dtype", default=None, help="float32 / bfloat16 / float16")
    parser.add_argument("--quick", action="store_true", help="small CPU run, < 3 min")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per row")
    parser.add_argument(
        "--pair-reps", type=int, default=None, help="alternating pairs per goal ratio"
    )
    parser.add_argument(
        "--group-seconds", type=float, default=None, help="cap on the timing of one group of peers"
    )
    parser.add_argument(
        "--max-call-s", type=float, default=None, help="skip rows estimated to take longer per call"
    )
    parser.add_argument(
        "--max-mem-gib", type=float, default=None, help="skip N x N cores whose scores exceed this"
    )
    parser.add_argument("--block-size", type=int, default=None, help="online core tile")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--shapes", default=None, help="comma-separated substrings to keep")
    parser.add_argument("--no-memory", action="store_true", help="skip peak-memory runs")
    parser.add_argument("--no-sweep", action="store_true", help="skip the N sweep")
    parser.add_argument("--note", action="append", help="a paragraph for the report (repeatable)")
    parser.add_argument("--json", default=None, help="write every row here")
    parser.add_argument(
        "--render", default=None, help="re-render --md/--plot from a saved --json, no timing"
    )
    parser.add_argument("--md", default=None, help="write the markdown report here")
    parser.add_argument("--plot", default=None, help="write the N-sweep PNG here")
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    args.dtype = (
        getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if cuda else torch.float32)
    )
    if args.reps is None:
        args.reps = 3 if args.quick else 7
    if args.pair_reps is None:
        args.pair_reps = 7 if args.quick else 15
    if args.group_seconds is None:
        args.group_seconds = 1.0 if args.quick else 20.0
    if args.max_call_s is None:
        args.max_call_s = 60.0 if args.quick else 120.0
    if args.max_mem_gib is None:
        if cuda:
            total = torch.cuda.get_device_properties(torch.device(args.device)).total_memory
            args.max_mem_gib = 0.8 * total / GIB
        else:
            args.max_mem_gib = 6.0
    if args.block_size is None:
        args.block_size = 128 if cuda else 1024
    return args


def render(args) -> dict:
    """Rewrite the report and plot of a saved run (e.g. after a change of wording)."""
    import json

    payload = json.loads(Path(args.render).read_text())
    payload["commentary"] = commentary(payload)
    if args.plot and payload["sweep"]:
        plot(payload["sweep"], args.plot)
    if args.md:
        Path(args.md).write_text(markdown(payload) + "\n")
    return payload


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.render:
        return render(args)
    device = torch.device(args.device)
    dtype = args.dtype
    configure_threads(args.threads)
    started = time.perf_counter()
    machine = machine_description(device)
    ceiling_size = 8192 if device.type == "cuda" else 2048
    ceiling = matmul_ceiling(device, dtype, size=ceiling_size, reps=3 if args.quick else 5)
    print(f"{machine}\nmatmul ceiling {ceiling:.1f} GFLOP/s", flush=True)
    gen = torch.Generator().manual_seed(0)
    rows: list[dict] = []
    for label, (cpu_shape, cuda_shape) in SHAPES.items():
        if args.shapes and not any(s.lower() in label.lower() for s in args.shapes.split(",")):
            continue
        shape = cuda_shape if device.type == "cuda" else cpu_shape
        if args.quick and device.type == "cpu":
            shape = QUICK_CPU.get(label, shape)
        for pass_ in ("fwd", "fwd+bwd"):
            for build in (core_peers, module_peers):
                peers = build(shape, pass_, device, dtype, args.block_size, gen)
                group = run_group(peers, shape, pass_, args, device, dtype, ceiling, label)
                rows.extend(group)
                del peers
                summary = ", ".join(f"{r['impl']} {fmt_ms(r)}" for r in group)
                print(f"{label} {shape} {pass_}: {summary}", flush=True)
    sweep_rows = [] if args.no_sweep else sweep(args, device, dtype, ceiling, rows)
    payload = {
        "machine": machine,
        "dtype": str(dtype).replace("torch.", ""),
        "ceiling_gflops": ceiling,
        "ceiling_size": ceiling_size,
        "command": "python benchmarks/attention.py " + " ".join(argv or sys.argv[1:]),
        "args": {k: (str(v) if isinstance(v, torch.dtype) else v) for k, v in vars(args).items()},
        "rows": rows,
        "sweep": sweep_rows,
        "seconds": time.perf_counter() - started,
    }
    payload["goals"] = goals(rows, sweep_rows, device)
    payload["goals"]["wrapper_overhead"] = wrapper_overhead(device, dtype)
    payload["commentary"] = commentary(payload)
    if args.json:
        write_json(args.json, payload)
    if args.plot and sweep_rows:
        plot(sweep_rows, args.plot)
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(markdown(payload) + "\n")
    print(
        f"done in {payload['seconds']:.0f} s; goals: "
        f"wrapper min {payload['goals']['wrapper_min_ratio']}, "
        f"online/sdpa min {payload['goals']['online_vs_sdpa_min_ratio']}",
        flush=True,
    )
    return payload


if __name__ == "__main__":
    main()
