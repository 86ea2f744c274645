"""The cost of the runtime type-check switch (``JEPA_BLOCKS_TYPECHECK``) per block call.

    python benchmarks/typecheck.py [--json PATH]

The switch is read when ``jepa_blocks`` is imported, so each setting runs in its own
subprocess; both time the same calls on the same inputs. Small inputs make the fixed,
per-call cost of checking visible; at training shapes it is the same absolute number of
microseconds, so the relative cost shrinks as the work grows (the paper-shape aggregator row
shows it).
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULTS = Path(__file__).resolve().parent / "results"

WORKER = r"""
import json, sys, torch
sys.path.insert(0, sys.argv[1])
import jepa_blocks as jb
from _common import time_fn
torch.set_num_threads(1)
torch.manual_seed(0)
b, m = 4, 3
encoder = jb.ActionEncoder(4, 16).eval()
concat = jb.ViewActionConcat(32, 16)
aggregator = jb.SequenceAggregator(48, depth=1, heads=4).eval()
predictor = jb.ConditionedPredictor(48, 16, 32, hidden=64).eval()
paper_aggregator = jb.SequenceAggregator(640, depth=3, heads=4).eval()
actions, z = torch.randn(b, m, 4), torch.randn(b, m, 32)
e, tokens = torch.randn(b, m, 16), torch.randn(b, m, 48)
z_agg, cond = torch.randn(b, 48), torch.randn(b, 16)
pred, tgt = torch.randn(b, 32), torch.randn(b, 32)
paper_tokens = torch.randn(64, 3, 640)
calls = {
    "ActionEncoder (4, 3, 4)": lambda: encoder(actions),
    "ViewActionConcat (4, 3, 32+16)": lambda: concat(z, e),
    "SequenceAggregator d=48, depth 1": lambda: aggregator(tokens),
    "ConditionedPredictor 64->32": lambda: predictor(z_agg, cond),
    "seq_jepa_loss (4, 32)": lambda: jb.seq_jepa_loss(pred, tgt),
    "euler_to_quaternion (4, 3, 3)": lambda: jb.euler_to_quaternion(actions[..., :3]),
    "SequenceAggregator paper d=640, b=64": lambda: paper_aggregator(paper_tokens),
}
out = {}
with torch.no_grad():
    for name, fn in calls.items():
        reps = 20 if "paper" in name else 300
        out[name] = time_fn(fn, warmup=5, reps=reps).median_ms * 1e3
print(json.dumps({"enabled": jb._typing.typecheck_enabled(), "us": out}))
"""


def run(enabled: bool) -> dict:
    env = {**os.environ, "JEPA_BLOCKS_TYPECHECK": "1" if enabled else "0", "HF_HUB_OFFLINE": "1"}
    here = str(Path(__file__).resolve().parent)
    result = subprocess.run(
        [sys.executable, "-c", WORKER, here], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=RESULTS / "typecheck-cpu.md")
    args = parser.parse_args()
    from _common import machine_description, markdown_table, write_json

    off, on = run(False), run(True)
    assert not off["enabled"] and on["enabled"], "the switch did not take effect"
    rows = []
    for name, us_off in off["us"].items():
        us_on = on["us"][name]
        rows.append({"call": name, "off_us": us_off, "on_us": us_on, "overhead_us": us_on - us_off,
                     "ratio": us_on / us_off})
        print(f"{name:<40} off {us_off:9.1f} us  on {us_on:9.1f} us  "
              f"+{us_on - us_off:8.1f} us ({us_on / us_off:.2f}x)", flush=True)
    machine = machine_description("cpu")
    if args.json:
        write_json(args.json, {"machine": machine, "rows": rows})
    table = markdown_table(
        ["call", "off (us)", "on (us)", "added (us)", "ratio"],
        [[r["call"], f"{r['off_us']:.1f}", f"{r['on_us']:.1f}", f"{r['overhead_us']:.1f}",
          f"{r['ratio']:.2f}x"] for r in rows],
    )
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(
        "# Cost of JEPA_BLOCKS_TYPECHECK=1 per block call (CPU, 1 thread)\n\n"
        f"Machine: {machine}\n\nCommand: `python benchmarks/typecheck.py`. Median per call, "
        "no_grad, eval mode. Off is the default: the decorator returns the function "
        "unchanged, so the off column is the block itself.\n\n" + table + "\n"
    )
    print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
