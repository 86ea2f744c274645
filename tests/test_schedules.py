"""jepa_blocks.training.schedules: the warm-up + cosine multiplier against its formula, and the
weight-decay parameter groups."""

import math

import pytest
import torch
from torch import nn

from jepa_blocks.training import parameter_groups, warmup_cosine

KW = {"warmup_steps": 10, "total_steps": 110, "lr": 4e-4, "initial_lr": 1e-5, "final_lr": 1e-6}


def test_warmup_then_cosine_equals_the_formula() -> None:
    lr = KW["lr"]
    assert warmup_cosine(0, **KW) * lr == pytest.approx(1e-5)
    assert warmup_cosine(5, **KW) * lr == pytest.approx(1e-5 + (lr - 1e-5) / 2)
    assert warmup_cosine(10, **KW) == pytest.approx(1.0)
    for step in (35, 60, 85):
        progress = (step - 10) / 100
        expected = 1e-6 + (lr - 1e-6) * 0.5 * (1 + math.cos(math.pi * progress))
        assert warmup_cosine(step, **KW) * lr == pytest.approx(expected)
    assert warmup_cosine(110, **KW) * lr == pytest.approx(1e-6)
    assert warmup_cosine(500, **KW) * lr == pytest.approx(1e-6)  # held after the end
    no_warmup = {**KW, "warmup_steps": 0}
    assert warmup_cosine(0, **no_warmup) == pytest.approx(1.0)


def test_schedule_drives_lambda_lr() -> None:
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=KW["lr"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, **KW))
    for _ in range(10):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(KW["lr"])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"lr": 0.0}, "lr must be > 0"),
        ({"warmup_steps": -1}, "warmup_steps and total_steps must be >= 0, got -1"),
    ],
)
def test_bad_schedule(change, match) -> None:
    with pytest.raises(ValueError, match=match):
        warmup_cosine(0, **{**KW, **change})


def test_parameter_groups_decay_weights_only() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2, bias=False))
    model.token = nn.Parameter(torch.zeros(1, 1, 4))
    frozen = nn.Parameter(torch.zeros(5, 5), requires_grad=False)
    model.frozen = frozen
    decay, no_decay = parameter_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    ids = {id(p) for p in decay["params"]}
    assert ids == {id(model[0].weight), id(model[2].weight), id(model.token)}
    assert {id(p) for p in no_decay["params"]} == {
        id(model[0].bias), id(model[1].weight), id(model[1].bias)
    }
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        parameter_groups(model, -1.0)


def test_adamw_is_fused_on_the_cpu_and_a_resume_keeps_it() -> None:
    from jepa_blocks.training import adamw, load_optimizer_state

    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    optimizer = adamw(model, lr=1e-3, weight_decay=0.05, device=torch.device("cpu"))
    assert [g["fused"] for g in optimizer.param_groups] == [True, True]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0.0]
    model(torch.randn(2, 3)).sum().backward()
    optimizer.step()
    # A checkpoint of the per-parameter loop (written before the fused optimiser) ...
    old = torch.optim.AdamW(parameter_groups(model, 0.05), lr=1e-3)
    old.load_state_dict(optimizer.state_dict())
    for group in old.param_groups:
        group["fused"] = None
    saved = old.state_dict()
    # ... restores the moments and keeps the fused kernel.
    fresh = adamw(model, lr=1e-3, weight_decay=0.05, device=torch.device("cpu"))
    load_optimizer_state(fresh, saved)
    assert [g["fused"] for g in fresh.param_groups] == [True, True]
    first = next(iter(model.parameters()))
    assert torch.equal(fresh.state[first]["exp_avg"], optimizer.state[first]["exp_avg"])
