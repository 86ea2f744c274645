"""Rotation R² (ridge) of the encoder against training steps, from a run's checkpoints.

    python examples/seq_jepa/train.py --variant seq-jepa --out runs/curve/seq-jepa \\
        --save-every-steps 250 --keep-last 100 --no-evaluate
    python examples/seq_jepa/rotation_curve.py runs/curve/seq-jepa runs/curve/no-action \\
        --plot runs/curve/rotation-curve.png

For every checkpoint of each run (and step 0: the same architecture at the run's random
initialisation, i.e. the floor) the encoder embeds every view of the built-in objects once,
and :func:`jepa_blocks.eval.rotation_ridge_r2` fits the individual-rotation and the
relative-rotation ridge probes on the training objects and scores the held-out ones. Writes
``rotation_curve.json`` into each run directory and prints a markdown table; ``--plot`` draws
the curves of all runs in one figure, so a reader sees whether and when they part.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

import jepa_blocks as jb
from jepa_blocks.data.objects import ObjectSequences, RenderedObjects

sys.path.insert(0, str(Path(__file__).resolve().parent))

from config import (  # noqa: E402
    MODEL_FIELDS,
    RUN_FIELDS,
    TrainConfig,
    config_from_values,
    model_config,
)
from data import build_data  # noqa: E402
from model import build_model, build_target  # noqa: E402

from jepa_blocks.eval import extract_view_features, rotation_ridge_r2  # noqa: E402


@torch.no_grad()
def action_use(model: torch.nn.Module, target: jb.EMATarget, data: object) -> float | None:
    """How much the prediction uses the actions: the mean test loss ``1 - cos(z_hat, target)``
    with every sequence's actions replaced by another sequence's, minus the loss with its own
    (both in eval mode, on the held-out objects). 0: the predictor ignores the actions."""
    if getattr(model, "action_encoder", None) is None:
        return None
    model.eval()
    target.eval()
    own, shuffled, count = 0.0, 0.0, 0
    generator = torch.Generator().manual_seed(0)
    for batch in DataLoader(data, batch_size=256):
        views, actions = batch["views"], batch["actions"]
        m = actions.shape[1]
        goal = target(views[:, m])
        permuted = actions[torch.randperm(actions.shape[0], generator=generator)]
        for acts, bucket in ((actions, "own"), (permuted, "shuffled")):
            loss = jb.seq_jepa_loss(model(views, acts)["z_hat"], goal, reduction="sum")
            if bucket == "own":
                own += float(loss)
            else:
                shuffled += float(loss)
        count += actions.shape[0]
    return (shuffled - own) / count


def _load_config(run: Path) -> TrainConfig:
    """The run's config from its ``config.json`` (flat, before the model was nested, or not);
    keys of fields that no longer exist are dropped."""
    saved = json.loads((run / "config.json").read_text())["train"]
    known = {*RUN_FIELDS, *MODEL_FIELDS, "model"}
    return config_from_values({key: value for key, value in saved.items() if key in known})


def _checkpoints(run: Path) -> list[tuple[int, Path]]:
    found = []
    for path in (run / "checkpoints").glob("ckpt-*.pt"):
        step = path.stem.split("-")[-1]
        if step.isdigit():
            found.append((int(step), path))
    return sorted(found)


def rotation_curve(run: Path, *, num_pairs: int, every: int, progress: bool) -> list[dict]:
    """``[{step, individual, relative, action_use}]`` for step 0 (untrained) and every
    checkpoint whose step is a multiple of ``every``. Steps already in the run's
    ``rotation_curve.json`` with the same ``num_pairs`` are not computed again."""
    config = _load_config(run)
    torch.manual_seed(config.seed)  # as train.py: seed, build the data, build the model
    data = build_data(config)
    if data.view_train is None or data.view_test is None:
        raise SystemExit(f"error: {run}: its dataset has no per-view rotation latents.")
    model = build_model(model_config(config, data.dim_action))  # initial weights: the floor
    target = build_target(model, jb.ConstantMomentum(config.ema_base))
    sequences = None
    if isinstance(data.view_test, RenderedObjects):  # held-out sequences for action_use
        sequences = ObjectSequences(
            data.view_test, num_views=config.seq_len + 1, action=config.action,
            seed=config.seed + 3,
        )
    saved = run / "rotation_curve.json"
    done = {row["step"]: row for row in json.loads(saved.read_text())} if saved.exists() else {}
    rows = []
    for step, path in [(0, None), *_checkpoints(run)]:
        if step % every:
            continue
        if done.get(step, {}).get("num_pairs") == num_pairs:  # computed before, same probe
            rows.append(done[step])
            continue
        if path is not None:
            state = torch.load(path, map_location="cpu", weights_only=True)["state"]
            model.load_state_dict(state["model"])
            target.load_state_dict(state["target"])
        train = extract_view_features(model, data.view_train, progress=progress)
        test = extract_view_features(model, data.view_test, progress=progress)
        r2 = rotation_ridge_r2(
            train.z, train.latents, train.objects, test.z, test.latents, test.objects,
            num_pairs=num_pairs, seed=config.seed,
        )
        use = action_use(model, target, sequences) if sequences is not None else None
        done[step] = {"step": step, "individual": r2.individual, "relative": r2.relative,
                      "action_use": use, "num_pairs": num_pairs}
        rows.append(done[step])
        print(f"{run.name} step {step}: individual {r2.individual:.3f} "
              f"relative {r2.relative:.3f} action use {use if use is None else round(use, 4)}",
              flush=True)
        # Every step computed so far, this call's and earlier ones' (other --every), written
        # after each step: nothing is lost on a stop.
        saved.write_text(json.dumps([done[k] for k in sorted(done)], indent=2))
    return rows


def plot(curves: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for name, rows in curves.items():
        steps = [row["step"] for row in rows]
        for ax, key in zip(axes, ("individual", "relative"), strict=True):
            (line,) = ax.plot(steps, [row[key] for row in rows], "o-", ms=3, label=name)
            ax.axhline(rows[0][key], ls=":", c=line.get_color(), lw=1)
    for ax, key in zip(axes, ("individual", "relative"), strict=True):
        ax.set(title=f"{key} rotation R² (ridge; dotted: random init)", xlabel="training step",
               ylabel="test R²")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="train.py output directories")
    parser.add_argument("--num-pairs", type=int, default=20_000, help="relative-rotation pairs")
    parser.add_argument("--every", type=int, default=1,
                        help="only checkpoints whose step is a multiple of this")
    parser.add_argument("--plot", type=Path, help="write the curves of all runs here")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    if args.every < 1:
        raise SystemExit(f"error: --every must be >= 1, got {args.every}.")
    curves = {}
    for run in args.runs:
        if not (run / "config.json").exists():
            raise SystemExit(f"error: {run} is not a train.py output directory (no config.json).")
        curves[run.name] = rotation_curve(
            run, num_pairs=args.num_pairs, every=args.every, progress=args.progress
        )
    steps = sorted({row["step"] for rows in curves.values() for row in rows})
    print("\n| run | R² | " + " | ".join(f"step {s}" for s in steps) + " |")
    print("| --- | --- |" + " --- |" * len(steps))
    for name, rows in curves.items():
        by_step = {row["step"]: row for row in rows}
        for key in ("individual", "relative", "action_use"):
            cells = [
                "" if s not in by_step or by_step[s][key] is None else f"{by_step[s][key]:.3f}"
                for s in steps
            ]
            print(f"| `{name}` | {key} | " + " | ".join(cells) + " |")
    if args.plot:
        plot(curves, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
