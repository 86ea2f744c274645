"""The run's results table and curves (loss; accuracy vs M_val; path-integration R^2).

Every R^2 is shown beside its floors (the same probe at random initialisation; raw pixels
for the ridge probes), so a reader can tell what the model learned from what was there
anyway.
"""

from pathlib import Path
from typing import Any

import torch


def _fmt(value: Any, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}" if percent else f"{value:.3f}"


def r2_rows(metrics: dict[str, Any]) -> list[tuple[str, Any, Any, Any]]:
    """``(probe, trained, random init, pixels)`` for every R^2 that the metrics hold; a floor
    the run did not compute is ``None``. Shared with ``compare.py``."""
    rel_key = next(
        (k for k in metrics
         if k.startswith("r2_rel_") and not k.endswith("_floor") and metrics[k] is not None),
        "r2_rel_rotation",
    )
    kind = rel_key[len("r2_rel_"):]
    candidates = [
        (f"relative {kind}, paper head", rel_key, f"{rel_key}_floor", None),
        ("individual rotation, paper head", "r2_indiv_rotation", "r2_indiv_rotation_floor",
         None),
        ("relative rotation, ridge", "ridge_r2_rel_rotation", "ridge_r2_rel_rotation_floor",
         "ridge_r2_rel_rotation_pixels"),
        ("individual rotation, ridge", "ridge_r2_indiv_rotation",
         "ridge_r2_indiv_rotation_floor", "ridge_r2_indiv_rotation_pixels"),
    ]
    return [
        (name, metrics.get(key), metrics.get(floor), metrics.get(pixels) if pixels else None)
        for name, key, floor, pixels in candidates
        if metrics.get(key) is not None
    ]


R2_LEGEND = (
    "random init: the same probe on the untrained model (same architecture and seed);\n"
    "pixels: the ridge on pooled pixels. An R^2 counts only as far as it beats both."
)


def format_results_table(
    metrics: dict[str, Any], config: Any, model_cfg: Any, device: torch.device
) -> str:
    """A plain-text summary: the headline numbers, every R^2 beside its floors (random init,
    pixels), then top-1 against M_val and path-integration R^2 against M."""
    rows = [
        ("variant", model_cfg.variant),
        ("dataset", f"{config.dataset} ({config.image_size} px, M_tr={config.seq_len})"),
        ("backbone", model_cfg.backbone),
        ("device", str(device)),
        ("train time", f"{metrics.get('train_seconds', 0):.0f} s, {metrics.get('steps')} steps"),
        ("final loss", _fmt(metrics.get("final_loss"))),
        ("top-1 encoder z_1 (%)", _fmt(metrics.get("top1_encoder"), percent=True)),
        ("kNN top-1 z_agg (%)", _fmt(metrics.get("knn_top1"), percent=True)),
        ("RankMe z_1", _fmt(metrics.get("rankme"))),
    ]
    width = max(len(name) for name, _ in rows)
    lines = ["", "seq-JEPA results", "-" * (width + 24)]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    r2 = r2_rows(metrics)
    if r2:
        name_width = max(len("R^2 (test)"), *(len(name) for name, *_ in r2))
        lines += ["", f"{'R^2 (test)':<{name_width}}  {'trained':>8} {'random init':>12} "
                  f"{'pixels':>8}"]
        lines += [
            f"{name:<{name_width}}  {_fmt(trained):>8} {_fmt(floor):>12} "
            f"{_fmt(pixels) if pixels is not None else '':>8}".rstrip()
            for name, trained, floor, pixels in r2
        ]
        lines += [R2_LEGEND]
    top1 = metrics.get("top1_agg") or {}
    if top1:
        lines += ["", "M_val          " + " ".join(f"{int(m):>6d}" for m in top1)]
        lines += ["top-1 z_agg %  " + " ".join(f"{100 * v:6.1f}" for v in top1.values())]
    path = metrics.get("path_integration_r2") or {}
    if path:
        lines += ["", "path length M  " + " ".join(f"{int(m):>6d}" for m in path)]
        lines += ["path R^2       " + " ".join(f"{v:6.3f}" for v in path.values())]
        for key, label in (("path_integration_r2_floor", "  random init  "),
                           ("path_integration_r2_zero_actions", "  no actions   "),
                           ("path_integration_r2_zero_vision", "  no vision    ")):
            values = metrics.get(key) or {}
            if values:
                lines += [label + " ".join(
                    f"{values[m]:6.3f}" if values.get(m) is not None else f"{'n/a':>6}"
                    for m in path
                )]
    return "\n".join(lines) + "\n"


def plot_curves(
    history: list[dict[str, float]],
    metrics: dict[str, Any],
    path: Path,
    *,
    monitor: list[dict[str, float]] | None = None,
) -> None:
    """Four panels: training loss, top-1 vs M_val, path-integration R^2 vs M, and the
    collapse monitor's gauges against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(20, 4))
    if history:
        axes[0].plot([r["step"] for r in history], [r["loss"] for r in history], lw=1)
    axes[0].set(title="training loss", xlabel="step", ylabel="loss")
    top1 = metrics.get("top1_agg") or {}
    if top1:
        axes[1].plot([int(m) for m in top1], [100 * v for v in top1.values()], "o-", label="z_agg")
    if metrics.get("top1_encoder") is not None:
        axes[1].axhline(100 * metrics["top1_encoder"], ls="--", c="gray", label="encoder z_1")
    axes[1].set(title="linear probe top-1 vs M_val", xlabel="M_val", ylabel="top-1 (%)")
    axes[1].legend()
    for key, label in (("path_integration_r2", "vision + actions"),
                       ("path_integration_r2_floor", "random init"),
                       ("path_integration_r2_zero_actions", "no actions"),
                       ("path_integration_r2_zero_vision", "no vision")):
        values = metrics.get(key) or {}
        if values:
            axes[2].plot([int(m) for m in values], list(values.values()), "o-", label=label)
    axes[2].set(title="path integration R^2", xlabel="observations M", ylabel="R^2")
    axes[2].legend()
    if monitor:
        steps = [row["step"] for row in monitor]
        for key, label in (("rankme_fraction", "RankMe / min(n, d)"),
                           ("std_ratio", "std of normalised z x sqrt(d)"),
                           ("teacher_cosine", "online-target cosine")):
            if all(key in row for row in monitor):
                axes[3].plot(steps, [row[key] for row in monitor], "o-", ms=3, label=label)
        axes[3].legend()
    axes[3].set(title="collapse monitor (0: collapsed)", xlabel="step", ylim=(0, 1.05))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
