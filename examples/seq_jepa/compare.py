"""Compare finished runs side by side as markdown (used for RESULTS.md).

    python examples/seq_jepa/compare.py runs/seqjepa runs/no-action runs/byol
    python examples/seq_jepa/compare.py --summary runs/*-s0 runs/*-s1 runs/*-s2  # mean ± std
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import r2_rows  # noqa: E402


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def compare(run_dirs: list[Path]) -> str:
    runs = []
    for run in run_dirs:
        metrics = json.loads((run / "metrics.json").read_text())
        config = json.loads((run / "config.json").read_text())
        runs.append((run, metrics, config))
    lines = [
        "| run | variant | top-1 z_agg (M_val = max) | top-1 encoder | train time |",
        "| --- | --- | --- | --- | --- |",
    ]
    for run, metrics, config in runs:
        top1 = metrics.get("top1_agg") or {}
        last = top1[max(top1, key=int)] if top1 else None
        lines.append(
            f"| `{run.name}` | {config['model']['variant']} | {_pct(last)} | "
            f"{_pct(metrics.get('top1_encoder'))} | {metrics.get('train_seconds', 0):.0f} s |"
        )
    lines += _r2_table(runs)
    m_vals = sorted({int(m) for _, metrics, _ in runs for m in metrics.get("top1_agg") or {}})
    if m_vals:
        lines += ["", "| run | " + " | ".join(f"M_val={m}" for m in m_vals) + " |",
                  "| --- |" + " --- |" * len(m_vals)]
        for run, metrics, _ in runs:
            top1 = metrics.get("top1_agg") or {}
            lines.append(f"| `{run.name}` | " + " | ".join(_pct(top1.get(str(m)))
                                                        for m in m_vals) + " |")
    lines += _path_table(runs)
    return "\n".join(lines) + "\n"


def _r2_table(runs: list[tuple[Path, dict, dict]]) -> list[str]:
    """Every transformation R² beside its floors: the same probe on the untrained model
    ("random init") and, for the ridge probes, on pooled pixels. An R² shows what the model
    learned only as far as it beats them."""
    rows = [(run, row) for run, metrics, _ in runs for row in r2_rows(metrics)]
    if not rows:
        return []
    lines = ["", "| run | R² (test) | trained | random init | pixels |",
             "| --- | --- | --- | --- | --- |"]
    for run, (name, trained, floor, pixels) in rows:
        pixel_cell = _num(pixels) if "ridge" in name else ""
        lines.append(f"| `{run.name}` | {name} | {_num(trained)} | {_num(floor)} | "
                     f"{pixel_cell} |")
    return lines


def _path_table(runs: list[tuple[Path, dict, dict]]) -> list[str]:
    """Path-integration R² per length, with its random-init floor and both ablations:
    "actions zeroed" shows how much comes from vision; "vision zeroed" how much the aggregate
    integrates the actions in its tokens (none for runs without action tokens, whose
    aggregate then carries nothing)."""
    keys = {
        "vision + actions": "path_integration_r2",
        "random init": "path_integration_r2_floor",
        "actions zeroed": "path_integration_r2_zero_actions",
        "vision zeroed": "path_integration_r2_zero_vision",
    }
    full = keys["vision + actions"]
    lengths = sorted({int(m) for _, metrics, _ in runs for m in metrics.get(full) or {}})
    if not lengths:
        return []
    lines = ["", "| run | path R² | " + " | ".join(f"M={m}" for m in lengths) + " |",
             "| --- | --- |" + " --- |" * len(lengths)]
    for run, metrics, _ in runs:
        for label, key in keys.items():
            if key not in metrics:  # runs from before the floors existed
                continue
            values = metrics.get(key) or {}
            lines.append(f"| `{run.name}` | {label} | " + " | ".join(_num(values.get(str(m)))
                                                                 for m in lengths) + " |")
    return lines


#: The numbers of the seed summary: (column, metrics key path, scale, decimals).
SUMMARY_COLUMNS = (
    ("top-1 z_agg M_val=1", ("top1_agg", "1"), 100.0, 1),
    ("top-1 z_agg M_val=max", ("top1_agg", "max"), 100.0, 1),
    ("top-1 encoder", ("top1_encoder",), 100.0, 1),
    ("ridge rel. rot. R²", ("ridge_r2_rel_rotation",), 1.0, 3),
    ("its floor", ("ridge_r2_rel_rotation_floor",), 1.0, 3),
    ("ridge indiv. rot. R²", ("ridge_r2_indiv_rotation",), 1.0, 3),
    ("its floor", ("ridge_r2_indiv_rotation_floor",), 1.0, 3),
    ("train time (s)", ("train_seconds",), 1.0, 0),
)


def _lookup(metrics: dict, path: tuple[str, ...]) -> float | None:
    value: object = metrics
    for part in path:
        if not isinstance(value, dict):
            return None
        if part == "max" and value:
            part = max(value, key=int)
        value = value.get(part)
    return value if isinstance(value, int | float) else None


def _mean_std(values: list[float], scale: float, digits: int) -> str:
    if not values:
        return "n/a"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{scale * mean:.{digits}f}"
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def summary(run_dirs: list[Path]) -> str:
    """One row per variant: mean ± sample std over its runs (e.g. seeds) of the headline
    numbers, each rotation R² beside its random-init floor; ``n`` says how many runs."""
    by_variant: dict[str, list[dict]] = {}
    for run in run_dirs:
        metrics = json.loads((run / "metrics.json").read_text())
        variant = json.loads((run / "config.json").read_text())["model"]["variant"]
        by_variant.setdefault(variant, []).append(metrics)
    lines = ["| variant | n | " + " | ".join(column[0] for column in SUMMARY_COLUMNS) + " |",
             "| --- | --- |" + " --- |" * len(SUMMARY_COLUMNS)]
    for variant, runs in by_variant.items():
        cells = []
        for _, path, scale, digits in SUMMARY_COLUMNS:
            values = [v for v in (_lookup(m, path) for m in runs) if v is not None]
            cells.append(_mean_std(values, scale, digits))
        lines.append(f"| {variant} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path, help="train.py output directories")
    parser.add_argument("--summary", action="store_true", help="mean ± std per variant")
    args = parser.parse_args(argv)
    missing = [str(run) for run in args.runs if not (run / "metrics.json").is_file()]
    if missing:
        parser.error(f"no metrics.json in {', '.join(missing)}: pass train.py output directories")
    print(summary(args.runs) if args.summary else compare(args.runs))


if __name__ == "__main__":
    main()
