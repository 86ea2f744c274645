"""Compare finished runs side by side as markdown (used for RESULTS.md).

    python examples/seq_jepa/compare.py runs/seqjepa runs/no-action runs/byol
"""

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


if __name__ == "__main__":
    print(compare([Path(arg) for arg in sys.argv[1:]]))
