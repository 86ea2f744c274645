"""The LeJEPA run's results table, its curves, and the loss-accuracy rank correlation.

Every probe number stands beside its random-init floor (the same probe on an untrained copy
of the run's model), so a reader can tell what was learned from what was there anyway.

The paper reports that LeJEPA's training loss tracks the linear-probe accuracy: a Spearman
correlation of about 0.85 between the two, 0.99 once the loss is divided by ``lam ** 0.4``
(Balestriero & LeCun, arXiv 2511.08544). Here it is measured between the training loss
(mean over the steps since the previous evaluation point) and the linear-probe top-1 at the
evaluation points of one run. Within one run ``lam`` is fixed, so dividing by ``lam ** 0.4``
is a monotone rescaling and the rank correlation cannot change: the paper's 0.99 pools runs
of different ``lam``. Both are reported, and they agree by construction.
"""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "spearman",
    "loss_accuracy_correlation",
    "format_results_table",
    "plot_curves",
]


def _ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        stop = start
        while stop + 1 < len(order) and values[order[stop + 1]] == values[order[start]]:
            stop += 1
        for position in range(start, stop + 1):
            ranks[order[position]] = (start + stop) / 2 + 1
        start = stop + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson's on the ranks, ties averaged); ``None`` for fewer
    than 3 pairs or a constant sequence, where it is undefined.

    Raises:
        ValueError: sequences of different lengths.
    """
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}.")
    if len(x) < 3:
        return None
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    var_x = sum((a - mx) ** 2 for a in rx)
    var_y = sum((b - my) ** 2 for b in ry)
    if var_x == 0 or var_y == 0:
        return None
    return cov / math.sqrt(var_x * var_y)


def loss_accuracy_correlation(evals: list[dict[str, Any]], lam: float) -> dict[str, Any]:
    """Spearman correlation between training loss and probe top-1 over the evaluation points
    that have a training loss (step 0 has none).

    Returns:
        ``{"spearman_loss_top1", "spearman_scaled_loss_top1", "spearman_step_top1", "points"}``;
        negative loss correlations mean that a lower loss goes with a higher accuracy. The
        correlation of the *step* with the accuracy is the reference: within one run anything
        that falls steadily with training correlates with an accuracy that rises steadily, so
        the loss tells more than the clock only where the two differ.
    """
    points = [row for row in evals if row.get("train_loss") is not None]
    losses = [row["train_loss"] for row in points]
    top1 = [row["linear_top1"] for row in points]
    scale = lam**0.4 if lam > 0 else 1.0
    return {
        "spearman_loss_top1": spearman(losses, top1),
        "spearman_scaled_loss_top1": spearman([loss / scale for loss in losses], top1),
        "spearman_step_top1": spearman([row["step"] for row in points], top1),
        "points": len(points),
    }


def _fmt(value: Any, percent: bool = False, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}" if percent else f"{value:.{digits}f}"


def format_results_table(metrics: dict[str, Any], config: Any, device: Any) -> str:
    """Plain text: the run, then each metric beside its random-init floor."""
    header = [
        ("data", f"rendered objects ({config.objects_size}, {config.nuisances} scenes, "
                 f"views from {config.views_from}), {config.num_global} x {config.image_size} px "
                 f"global + {config.num_local} x {config.local_size} px local views"),
        ("backbone", f"{config.backbone}{' (cifar stem)' if config.cifar_stem else ''}, "
                     f"projector {config.proj_hidden}-{config.proj_dim}, lam {config.lam}"),
        ("device", str(device)),
        ("train time", f"{metrics.get('train_seconds', 0):.0f} s, {metrics.get('steps')} steps, "
                       f"batch {config.batch_size}"),
        ("final loss", f"{_fmt(metrics.get('final_loss'), digits=4)} (last "
                       f"{metrics.get('final_window_steps')} steps; invariance "
                       f"{_fmt(metrics.get('final_invariance'), digits=4)}, SIGReg "
                       f"{_fmt(metrics.get('final_sigreg'), digits=3)})"),
    ]
    width = max(len(name) for name, _ in header)
    lines = ["", "LeJEPA results", "-" * 72]
    lines += [f"{name:<{width}}  {value}" for name, value in header]
    rows = [
        ("linear probe top-1 (%)", _fmt(metrics.get("linear_top1"), True),
         _fmt(metrics.get("linear_top1_floor"), True)),
        (f"kNN top-1, k={config.knn_k} (%)", _fmt(metrics.get("knn_top1"), True),
         _fmt(metrics.get("knn_top1_floor"), True)),
        ("RankMe, backbone", _fmt(metrics.get("rankme"), digits=1),
         _fmt(metrics.get("rankme_floor"), digits=1)),
    ]
    corr = metrics.get("loss_accuracy") or {}
    rows += [
        (f"Spearman(loss, top-1), {corr.get('points', 0)} pts",
         _fmt(corr.get("spearman_loss_top1")), ""),
        ("... loss / lam^0.4", _fmt(corr.get("spearman_scaled_loss_top1")), ""),
        ("... reference: step", _fmt(corr.get("spearman_step_top1")), ""),
    ]
    name_width = max(len(name) for name, *_ in rows)
    lines += ["", f"{'metric':<{name_width}}  {'trained':>8}  {'random init':>11}"]
    lines += [f"{name:<{name_width}}  {a:>8}  {b:>11}".rstrip() for name, a, b in rows]
    classes = metrics.get("num_classes")
    lines += [
        f"chance: {100 / classes:.1f} % ({classes} classes). random init: the same probe on the "
        "untrained model" if classes else "random init: the same probe on the untrained model",
        "(same architecture and seed). Spearman over the evaluation points after step 0",
        "(negative: loss down, accuracy up); with one lam the rescaled loss has the same ranks,",
        "and the step's correlation is what time alone explains (see lejepa_report.py).",
    ]
    return "\n".join(lines) + "\n"


def plot_curves(history: list[dict[str, Any]], evals: list[dict[str, Any]],
                metrics: dict[str, Any], path: Path) -> None:
    """Four panels: the loss, its two terms, the probes against steps (floors dashed), and
    the loss against probe top-1 at the evaluation points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(20, 4))
    steps = [row["step"] for row in history]
    axes[0].plot(steps, [row["loss"] for row in history], lw=0.8)
    axes[0].set(title="LeJEPA loss", xlabel="step", ylabel="loss")
    axes[1].plot(steps, [row["invariance"] for row in history], lw=0.8, c="C0")
    axes[1].set(title="loss terms", xlabel="step")
    axes[1].set_ylabel("invariance", color="C0")
    twin = axes[1].twinx()
    twin.plot(steps, [row["sigreg"] for row in history], lw=0.8, c="C3")
    twin.set_ylabel("SIGReg", color="C3")
    if evals:
        eval_steps = [row["step"] for row in evals]
        axes[2].plot(eval_steps, [100 * row["linear_top1"] for row in evals], "o-",
                     label="linear top-1")
        axes[2].plot(eval_steps, [100 * row["knn_top1"] for row in evals], "s-",
                     label="kNN top-1")
        rank_axis = axes[2].twinx()
        rank_axis.plot(eval_steps, [row["rankme"] for row in evals], "^:", c="C2")
        rank_axis.set_ylabel("RankMe (dotted)", color="C2")
        points = [row for row in evals if row.get("train_loss") is not None]
        axes[3].plot([row["train_loss"] for row in points],
                     [100 * row["linear_top1"] for row in points], "o-")
        for row in points:
            axes[3].annotate(str(row["step"]), (row["train_loss"], 100 * row["linear_top1"]),
                             fontsize=7)
    for key, colour in (("linear_top1_floor", "C0"), ("knn_top1_floor", "C1")):
        if metrics.get(key) is not None:
            axes[2].axhline(100 * metrics[key], ls="--", c=colour, lw=0.8)
    axes[2].set(title="probes on held-out objects (dashed: random init)", xlabel="step",
                ylabel="top-1 (%)")
    axes[2].legend(loc="lower right")
    corr = (metrics.get("loss_accuracy") or {}).get("spearman_loss_top1")
    axes[3].set(title=f"loss vs linear top-1 (Spearman {_fmt(corr)})",
                xlabel="training loss (window mean)", ylabel="top-1 (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
