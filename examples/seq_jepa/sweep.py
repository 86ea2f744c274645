"""The sweep behind RESULTS.md's 300-step table: short runs, the encoder ridge-probed at steps.

    python examples/seq_jepa/sweep.py --variant seq-jepa --nuisances fixed --steps 300 \
        --eval-at 0,100,200,300 --threads 1 --tag fixed-base --out sweep.jsonl
    python examples/seq_jepa/sweep.py --variant supervised-rot --lr 1e-3 ...   # the ceiling

An in-process loop with train.py's model, data, optimiser groups and schedules (AdamW, warm-up
then cosine, the EMA cosine), cut to what a sweep needs: no checkpoints, no DDP, and levers
that train.py does not expose (the predictor mode, a supervised orientation-regression run
as the ceiling). At each ``--eval-at`` step the encoder embeds ``--eval-views`` views of every
object and the ridge probes give the individual and relative rotation R²; one JSON line per
evaluation goes to ``--out``. The main job stays ``train.py``.
"""

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch
from model import SeqJEPAConfig, build_model, build_target, compute_loss, online_for_target
from torch import nn

import jepa_blocks as jb
from jepa_blocks.data.objects import (
    OBJECTS_MEAN,
    OBJECTS_STD,
    ObjectSequences,
    RenderedObjects,
    _normalize,
)
from jepa_blocks.eval.ridge import rotation_ridge_r2
from jepa_blocks.training import parameter_groups, warmup_cosine

p = argparse.ArgumentParser()
p.add_argument("--variant", default="seq-jepa")
p.add_argument("--steps", type=int, default=300)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--seq-len", type=int, default=3)
p.add_argument("--lr", type=float, default=3e-4)
p.add_argument("--wd", type=float, default=1e-3)
p.add_argument("--warmup", type=int, default=50)
p.add_argument("--ema", type=float, default=0.996)
p.add_argument("--ema-final", type=float, default=1.0)
p.add_argument("--image-size", type=int, default=32)
p.add_argument("--backbone", default="resnet18")
p.add_argument("--depth", type=int, default=3)
p.add_argument("--de", type=int, default=128)
p.add_argument("--pred-hidden", type=int, default=1024)
p.add_argument("--dropout", type=float, default=0.1)
p.add_argument("--eval-at", default="0,100,200,300")
p.add_argument("--eval-views", type=int, default=16)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--tag", default="")
p.add_argument("--nuisances", default="view")
p.add_argument("--pred-mode", default="concat")
p.add_argument("--norm-first", action="store_true")
p.add_argument("--action", default="rot")
p.add_argument("--out", default="sweep.jsonl")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
tr = RenderedObjects(
    split="train", size="large", image_size=a.image_size, seed=0, nuisances=a.nuisances
)
va = RenderedObjects(
    split="val", size="large", image_size=a.image_size, seed=0, nuisances=a.nuisances
)
ds = ObjectSequences(tr, num_views=a.seq_len + 1, seed=a.seed, action=a.action)
kw = {} if "resnet" not in a.backbone else {"zero_init_last": False}
cfg = SeqJEPAConfig(
    variant="seq-jepa" if a.variant == "supervised-rot" else a.variant,
    backbone=a.backbone,
    backbone_kwargs=kw,
    dim_action=ds.dim_action,
    dim_action_embed=a.de,
    depth=a.depth,
    pred_hidden=a.pred_hidden,
    dropout=a.dropout,
    predictor_mode=a.pred_mode,
    norm_first=a.norm_first,
)
model = build_model(replace(cfg, variant="seq-jepa") if a.variant == "supervised-rot" else cfg)
sched = jb.CosineMomentum(a.ema, a.ema_final, total_steps=max(1, a.steps))
target = build_target(model, sched)
target.train()
opt = torch.optim.AdamW(parameter_groups(model, a.wd), lr=a.lr)
lrs = torch.optim.lr_scheduler.LambdaLR(
    opt,
    lambda s: warmup_cosine(
        s, warmup_steps=a.warmup, total_steps=a.steps, lr=a.lr, initial_lr=a.lr / 10, final_lr=1e-5
    ),
)
eval_at = {int(s) for s in a.eval_at.split(",")}


def feats(objs, nv):
    imgs = objs.images[:, :nv]
    n = imgs.shape[0]
    x = imgs.reshape(-1, *imgs.shape[2:])
    enc = model.encoder
    was = enc.training
    enc.eval()
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], 1024):
            out.append(enc(_normalize(x[i : i + 1024], OBJECTS_MEAN, OBJECTS_STD)))
    enc.train(was)
    z = torch.cat(out)
    lat = objs.latents[:, :nv].reshape(-1, 7)
    ob = torch.arange(n).repeat_interleave(nv)
    return z, lat, ob


def probe(step, loss):
    t = time.time()
    ztr, ltr, otr = feats(tr, a.eval_views)
    zte, lte, ote = feats(va, a.eval_views)
    r = rotation_ridge_r2(ztr, ltr, otr, zte, lte, ote, num_pairs=20000)
    # object identity readout: nearest-class-centroid top1 on val using train class means
    cls_tr = tr.labels.repeat_interleave(a.eval_views)
    cls_te = va.labels.repeat_interleave(a.eval_views)
    zs = (ztr - ztr.mean(0)) / (ztr.std(0) + 1e-6)
    zt = (zte - ztr.mean(0)) / (ztr.std(0) + 1e-6)
    cent = torch.stack([zs[cls_tr == c].mean(0) for c in range(tr.num_classes)])
    acc = float((torch.cdist(zt, cent).argmin(1) == cls_te).float().mean())
    rec = dict(
        tag=a.tag,
        variant=a.variant,
        step=step,
        loss=loss,
        indiv=round(r.individual, 4),
        rel=round(r.relative, 4),
        ncc=round(acc, 4),
        rankme=round(jb.eval.rankme(ztr[:4096]), 1),
        eval_s=round(time.time() - t, 1),
        train_s=round(train_s, 1),
        args=vars(a),
    )
    print(json.dumps({k: v for k, v in rec.items() if k != "args"}), flush=True)
    with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")


def after_step(loss: torch.Tensor, seconds: float) -> None:
    """The bookkeeping of both loops: time, loss, a progress line, the probes due now."""
    global step, train_s
    train_s += seconds
    losses.append(float(loss.detach()))
    step += 1
    if step % 50 == 0:
        print(
            f"step {step} loss {sum(losses[-50:]) / 50:.4f} {train_s / step:.3f}s/step", flush=True
        )
    if step in eval_at:
        probe(step, sum(losses[-20:]) / len(losses[-20:]))


train_s = 0.0
step = 0
epoch = 0
losses = []
if 0 in eval_at:
    probe(0, None)
model.train()
if a.variant == "supervised-rot":
    from jepa_blocks.eval import absolute_rotation_target

    head = nn.Linear(model.encoder.dim, 4)
    sopt = torch.optim.AdamW(
        list(model.encoder.parameters()) + list(head.parameters()), lr=a.lr, weight_decay=a.wd
    )
    imgs = tr.images.reshape(-1, 3, a.image_size, a.image_size)
    lats = tr.latents.reshape(-1, 7)
    g = torch.Generator().manual_seed(a.seed)
    while step < a.steps:
        t = time.time()
        idx = torch.randint(0, len(imgs), (a.batch * (a.seq_len + 1),), generator=g)
        x = _normalize(imgs[idx], OBJECTS_MEAN, OBJECTS_STD)
        y = absolute_rotation_target(lats[idx].double()).float()
        loss = (head(model.encoder(x)) - y).square().mean()
        sopt.zero_grad()
        loss.backward()
        sopt.step()
        after_step(loss, time.time() - t)
while step < a.steps:
    ds.set_epoch(epoch)
    g = torch.Generator().manual_seed(a.seed * 1000 + epoch)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=a.batch, shuffle=True, drop_last=True, generator=g
    )
    for batch in loader:
        t = time.time()
        loss, _ = compute_loss(model, target, batch["views"], batch["actions"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lrs.step()
        target.update(online_for_target(model))
        after_step(loss, time.time() - t)
        if step >= a.steps:
            break
    epoch += 1
