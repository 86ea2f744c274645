"""The I-JEPA run's results table and its curves.

Every probe number stands beside its random-init floor (the same probe on an untrained copy
of the run's encoder), so a reader can tell what was learned from what was there anyway.
"""

from pathlib import Path
from typing import Any

__all__ = ["format_results_table", "plot_curves"]


def _fmt(value: Any, percent: bool = False, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}" if percent else f"{value:.{digits}f}"


def format_results_table(metrics: dict[str, Any], config: Any, device: Any) -> str:
    """Plain text: the run, then each metric beside its random-init floor."""
    if config.regularizer == "ema":
        objective = (f"EMA target {config.ema_start} -> {config.ema_end} (linear), "
                     "stop-gradient")
    else:
        objective = (f"SIGReg on {config.sigreg_on}, lam {config.lam}, no EMA, "
                     "no stop-gradient")
    header = [
        ("data", f"rendered objects ({config.objects_size}, {config.nuisances} scenes), "
                 f"{config.image_size} px, one view per object and epoch"),
        ("encoder", f"{config.vit} depth {config.depth}, patch {config.patch_size} "
                    f"({metrics.get('grid')} grid); predictor {config.pred_dim} wide, "
                    f"depth {config.pred_depth}, {config.pred_pos}"),
        ("objective", objective),
        ("device", str(device)),
        ("train time", f"{metrics.get('train_seconds', 0):.0f} s, {metrics.get('steps')} steps, "
                       f"batch {config.batch_size}"),
        ("final loss", f"{_fmt(metrics.get('final_loss'), digits=4)} (last "
                       f"{metrics.get('final_window_steps')} steps; prediction "
                       f"{_fmt(metrics.get('final_prediction'), digits=4)}, SIGReg "
                       f"{_fmt(metrics.get('final_sigreg'), digits=3)})"),
    ]
    width = max(len(name) for name, _ in header)
    lines = ["", f"I-JEPA results (--regularizer {config.regularizer})", "-" * 72]
    lines += [f"{name:<{width}}  {value}" for name, value in header]
    probed = metrics.get("probed_encoder", "online")
    rows = [
        (f"linear probe top-1 (%), {probed}", _fmt(metrics.get("linear_top1"), True),
         _fmt(metrics.get("linear_top1_floor"), True)),
        (f"kNN top-1, k={config.knn_k} (%), {probed}", _fmt(metrics.get("knn_top1"), True),
         _fmt(metrics.get("knn_top1_floor"), True)),
        (f"RankMe, {probed}", _fmt(metrics.get("rankme"), digits=1),
         _fmt(metrics.get("rankme_floor"), digits=1)),
    ]
    if metrics.get("online_linear_top1") is not None:
        rows += [
            ("linear probe top-1 (%), online", _fmt(metrics["online_linear_top1"], True),
             _fmt(metrics.get("linear_top1_floor"), True)),
            (f"kNN top-1, k={config.knn_k} (%), online", _fmt(metrics["online_knn_top1"], True),
             _fmt(metrics.get("knn_top1_floor"), True)),
            ("RankMe, online", _fmt(metrics["online_rankme"], digits=1),
             _fmt(metrics.get("rankme_floor"), digits=1)),
        ]
    name_width = max(len(name) for name, *_ in rows)
    lines += ["", f"{'metric':<{name_width}}  {'trained':>8}  {'random init':>11}"]
    lines += [f"{name:<{name_width}}  {a:>8}  {b:>11}".rstrip() for name, a, b in rows]
    classes = metrics.get("num_classes")
    chance = f"chance: {100 / classes:.1f} % ({classes} classes). " if classes else ""
    lines += [
        f"{chance}Probes read mean-pooled encoder tokens of held-out objects;",
        "random init: the same probe on the untrained encoder (same architecture and seed).",
    ]
    return "\n".join(lines) + "\n"


def plot_curves(history: list[dict[str, Any]], evals: list[dict[str, Any]],
                metrics: dict[str, Any], path: Path) -> None:
    """Three panels: the loss and its terms, the learning rate and EMA momentum, and the
    probes against steps (floors dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    steps = [row["step"] for row in history]
    axes[0].plot(steps, [row["loss"] for row in history], lw=0.8, label="loss")
    axes[0].plot(steps, [row["prediction"] for row in history], lw=0.8, label="prediction")
    axes[0].set(title="I-JEPA loss", xlabel="step", ylabel="loss")
    axes[0].legend(loc="upper right")
    twin = axes[0].twinx()
    twin.plot(steps, [row["sigreg"] for row in history], lw=0.8, c="C3")
    twin.set_ylabel("SIGReg (EMA: a gauge only)", color="C3")
    axes[1].plot(steps, [row["lr"] for row in history], lw=0.8, c="C0")
    axes[1].set(title="schedules", xlabel="step")
    axes[1].set_ylabel("learning rate", color="C0")
    if any(row.get("momentum") is not None for row in history):
        momentum = axes[1].twinx()
        momentum.plot(steps, [row["momentum"] for row in history], lw=0.8, c="C1")
        momentum.set_ylabel("EMA momentum", color="C1")
    if evals:
        eval_steps = [row["step"] for row in evals]
        axes[2].plot(eval_steps, [100 * row["linear_top1"] for row in evals], "o-",
                     label="linear top-1")
        axes[2].plot(eval_steps, [100 * row["knn_top1"] for row in evals], "s-",
                     label="kNN top-1")
        rank_axis = axes[2].twinx()
        rank_axis.plot(eval_steps, [row["rankme"] for row in evals], "^:", c="C2")
        rank_axis.set_ylabel("RankMe (dotted)", color="C2")
    for key, colour in (("linear_top1_floor", "C0"), ("knn_top1_floor", "C1")):
        if metrics.get(key) is not None:
            axes[2].axhline(100 * metrics[key], ls="--", c=colour, lw=0.8)
    axes[2].set(title="probes on held-out objects (dashed: random init)", xlabel="step",
                ylabel="top-1 (%)")
    axes[2].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
