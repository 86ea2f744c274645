"""Tests for jepa_blocks.ema: the update against a manual loop (parameters and BatchNorm
buffers), the momentum schedules against their formulas (the official per-epoch cosine
included), no-grad behaviour, exact resume from ``state_dict`` and errors without side effects."""

import copy
import io
import math

import pytest
import torch
from torch import nn

from jepa_blocks.ema import (
    ConstantMomentum,
    CosineMomentum,
    EMATarget,
    LinearMomentum,
    MomentumSchedule,
    WarmupMomentum,
)


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def _train_step(online: nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 4, generator=g)
    optimizer.zero_grad()
    online(x).square().mean().backward()
    optimizer.step()


def _manual_ema(
    target: dict[str, torch.Tensor], online: nn.Module, tau: float, average_buffers: bool = True
) -> None:
    for name, value in online.state_dict().items():
        if value.is_floating_point() and (
            average_buffers or name in dict(online.named_parameters())
        ):
            target[name] = tau * target[name] + (1 - tau) * value
        else:
            target[name] = value.clone()


def _assert_state_close(ema: EMATarget, expected: dict[str, torch.Tensor]) -> None:
    for name, value in ema.target.state_dict().items():
        torch.testing.assert_close(value, expected[name], atol=1e-6, rtol=1e-6, msg=name)


@pytest.mark.parametrize("average_buffers", [True, False])
def test_update_matches_manual_loop(average_buffers: bool) -> None:
    online = _net()
    optimizer = torch.optim.SGD(online.parameters(), lr=0.1)
    schedule = CosineMomentum(0.9, 1.0, total_steps=6)
    ema = EMATarget(online, schedule=schedule, average_buffers=average_buffers)
    expected = {k: v.clone() for k, v in online.state_dict().items()}
    for step in range(5):
        _train_step(online, optimizer, seed=step)
        tau = schedule(step)
        assert ema.momentum == tau
        assert ema.update(online) == tau
        _manual_ema(expected, online, tau, average_buffers)
        _assert_state_close(ema, expected)
    assert ema.step == 5
    # BatchNorm statistics moved: averaged (not a copy) or copied, as asked.
    target_bn, online_bn = ema.target[1], online[1]
    assert torch.equal(target_bn.num_batches_tracked, online_bn.num_batches_tracked)
    assert torch.equal(target_bn.running_mean, online_bn.running_mean) == (not average_buffers)
    assert not torch.equal(ema.target[0].weight, online[0].weight)


def test_momentum_extremes() -> None:
    online = _net()
    ema = EMATarget(online, schedule=1.0)
    frozen = copy.deepcopy(ema.target.state_dict())
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    ema.update(online)  # tau = 1: the target does not move
    for name, value in frozen.items():
        if value.is_floating_point():
            assert torch.equal(ema.target.state_dict()[name], value), name
    ema.schedule = ConstantMomentum(0.0)
    ema.update(online)  # tau = 0: the target becomes the online module
    for name, value in online.state_dict().items():
        assert torch.equal(ema.target.state_dict()[name], value), name


def test_default_schedule_and_float_schedule() -> None:
    ema = EMATarget(_net())
    assert isinstance(ema.schedule, ConstantMomentum) and ema.momentum == 0.996
    assert EMATarget(_net(), schedule=0.9).momentum == 0.9
    assert EMATarget(_net(), schedule=1).momentum == 1.0


def test_target_is_frozen_and_runs_without_grad() -> None:
    online = _net()
    ema = EMATarget(online)
    assert ema.target is not online
    assert all(not p.requires_grad for p in ema.parameters())
    trainable = [p for p in ema.parameters() if p.requires_grad]
    assert trainable == []
    out = ema(torch.randn(5, 4, requires_grad=True))
    assert out.shape == (5, 3) and not out.requires_grad and out.grad_fn is None
    # Online parameters are untouched: still trainable, separate storage.
    assert all(p.requires_grad for p in online.parameters())
    assert all(
        p.data_ptr() != q.data_ptr()
        for p, q in zip(online.parameters(), ema.parameters(), strict=True)
    )


def test_target_follows_train_and_eval_mode() -> None:
    ema = EMATarget(_net())
    ema.train()
    x = torch.randn(6, 4) * 3 + 2
    ema(x)  # train mode: BatchNorm uses (and tracks) the target batch's statistics
    assert ema.target[1].num_batches_tracked == 1
    ema.eval()
    ema(x)
    assert ema.target[1].num_batches_tracked == 1 and not ema.target.training


# ----------------------------------------------------------------------------- schedules


def test_constant_schedule() -> None:
    schedule = ConstantMomentum(0.99)
    assert [schedule(s) for s in (0, 10, 10**6)] == [0.99] * 3


def test_cosine_schedule_per_step() -> None:
    schedule = CosineMomentum(0.996, 1.0, total_steps=100)
    assert schedule(0) == pytest.approx(0.996, abs=1e-12)
    assert schedule(50) == pytest.approx(0.998, abs=1e-12)  # the midpoint
    assert schedule(100) == pytest.approx(1.0, abs=1e-12)
    assert schedule(1000) == pytest.approx(1.0, abs=1e-12)  # clamped after the end
    for step in (7, 33, 81):
        expected = 1.0 - (1.0 - 0.996) * (math.cos(math.pi * step / 100) + 1) / 2
        assert schedule(step) == pytest.approx(expected, abs=1e-15)
    values = [schedule(s) for s in range(101)]
    assert all(a <= b for a, b in zip(values, values[1:], strict=False))


def test_cosine_schedule_per_epoch_matches_official_formula() -> None:
    # engine.py: tau = 1 - (1 - base) * (cos(pi * epoch / E) + 1) / 2, constant within an epoch.
    epochs, steps_per_epoch = 10, 7
    schedule = CosineMomentum(
        0.996, total_steps=epochs * steps_per_epoch, steps_per_epoch=steps_per_epoch
    )
    for step in range(epochs * steps_per_epoch + 5):
        epoch = min(step // steps_per_epoch, epochs)
        expected = 1 - (1 - 0.996) * (math.cos(math.pi * epoch / epochs) + 1) / 2
        assert schedule(step) == pytest.approx(expected, abs=1e-15), step
    assert schedule(0) == schedule(steps_per_epoch - 1) != schedule(steps_per_epoch)


def test_linear_schedule() -> None:
    schedule = LinearMomentum(0.9, 1.0, total_steps=10)
    for step, expected in ((0, 0.9), (5, 0.95), (10, 1.0), (20, 1.0)):
        assert schedule(step) == pytest.approx(expected, abs=1e-12)
    per_epoch = LinearMomentum(0.9, 1.0, total_steps=10, steps_per_epoch=5)
    assert [per_epoch(s) for s in (0, 4, 5, 9, 10)] == pytest.approx([0.9, 0.9, 0.95, 0.95, 1.0])


def test_warmup_schedule() -> None:
    inner = CosineMomentum(0.99, 1.0, total_steps=20)
    schedule = WarmupMomentum(inner, warmup_steps=4, start=0.5)
    end = inner(4)
    assert schedule(0) == 0.5
    assert schedule(2) == pytest.approx(0.5 + (end - 0.5) / 2)
    for step in (4, 10, 20):
        assert schedule(step) == inner(step)
    assert WarmupMomentum(inner, warmup_steps=0)(0) == inner(0)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: ConstantMomentum(1.5), r"momentum must lie in \[0, 1\], got 1.5"),
        (lambda: ConstantMomentum(float("nan")), r"momentum must lie in \[0, 1\]"),
        (lambda: CosineMomentum(-0.1, total_steps=5), r"base must lie in \[0, 1\]"),
        (lambda: CosineMomentum(0.9, 1.1, total_steps=5), r"final must lie in \[0, 1\]"),
        (lambda: CosineMomentum(total_steps=0), "total_steps must be >= 1"),
        (lambda: LinearMomentum(total_steps=5, steps_per_epoch=0), "steps_per_epoch must be"),
        (lambda: WarmupMomentum(ConstantMomentum(), warmup_steps=-1), "warmup_steps must be"),
        (
            lambda: WarmupMomentum(ConstantMomentum(), warmup_steps=2, start=2.0),
            r"start must lie in \[0, 1\]",
        ),
        (lambda: EMATarget(_net(), schedule=1.5), r"momentum must lie in \[0, 1\]"),
    ],
)
def test_schedule_errors(build, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()


class _BadSchedule(MomentumSchedule):
    def __call__(self, step: int) -> float:
        return 0.5 if step < 2 else 1.5


def test_out_of_range_momentum_changes_nothing() -> None:
    online = _net()
    ema = EMATarget(online, schedule=_BadSchedule())
    ema.update(online)
    ema.update(online)
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    before = copy.deepcopy(ema.state_dict())
    with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\], got 1.5"):
        ema.update(online)
    assert ema.step == 2
    for name, value in ema.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, before[name]), name


def test_mismatched_online_module_changes_nothing() -> None:
    ema = EMATarget(_net())
    before = copy.deepcopy(ema.target.state_dict())
    other = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 5))
    with pytest.raises(ValueError, match=r"parameter '3.weight' has shape \(5, 8\) and dtype"):
        ema.update(other)
    with pytest.raises(ValueError, match=r"float64 online but \(8, 4\) and torch.float32"):
        ema.update(_net().double())
    with pytest.raises(ValueError, match="missing parameters.*pass the module the target"):
        ema.update(nn.Sequential(nn.Linear(4, 8)))
    no_bn = nn.Sequential(nn.Linear(4, 8), nn.Identity(), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(ValueError, match="missing parameters"):
        ema.update(no_bn)
    bn_without_stats = _net()
    bn_without_stats[1] = nn.BatchNorm1d(8, track_running_stats=False)
    with pytest.raises(ValueError, match="buffers do not match"):
        ema.update(bn_without_stats)
    assert ema.step == 0
    for name, value in ema.target.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_unwraps_data_parallel_wrapper() -> None:
    online = _net()
    wrapped = nn.DataParallel(online)  # a .module wrapper, like DistributedDataParallel
    ema = EMATarget(wrapped, schedule=0.5)
    assert not isinstance(ema.target, nn.DataParallel)
    assert set(ema.target.state_dict()) == set(online.state_dict())
    expected = {k: v.clone() for k, v in online.state_dict().items()}
    with torch.no_grad():
        for p in online.parameters():
            p.mul_(2.0)
    ema.update(wrapped)
    _manual_ema(expected, online, 0.5)
    _assert_state_close(ema, expected)


class _FakeCompiled(nn.Module):
    """Stands in for ``torch.compile``'s wrapper, which keeps the module as ``_orig_mod``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self._orig_mod = module


def test_unwraps_compiled_wrapper() -> None:
    online = _net()
    ema = EMATarget(_FakeCompiled(online), schedule=0.0)
    with torch.no_grad():
        online[0].weight.add_(1.0)
    ema.update(_FakeCompiled(online))
    assert torch.equal(ema.target[0].weight, online[0].weight)


def test_updates_reach_replaced_buffers_after_to() -> None:
    online = _net()
    ema = EMATarget(online, schedule=0.5)
    ema.update(online)  # validation and any caching happen on the first update
    old_mean = ema.target[1].running_mean
    ema.to(torch.float64)
    online.to(torch.float64)
    assert ema.target[1].running_mean is not old_mean  # .to() replaced the buffer tensor
    online(torch.randn(6, 4, dtype=torch.float64) * 3 + 1)  # move the online statistics
    expected = {k: v.clone() for k, v in ema.target.state_dict().items()}
    ema.update(online)
    _manual_ema(expected, online, 0.5)
    _assert_state_close(ema, expected)
    assert ema.target[1].running_mean.dtype == torch.float64


def _run(online: nn.Module, ema: EMATarget, optimizer, steps: range) -> None:
    for step in steps:
        _train_step(online, optimizer, seed=step)
        ema.update(online)


def test_exact_resume_from_state_dict() -> None:
    def fresh() -> tuple[nn.Module, EMATarget, torch.optim.Optimizer]:
        torch.manual_seed(1)
        online = _net()
        schedule = CosineMomentum(0.9, 1.0, total_steps=10)
        optimizer = torch.optim.SGD(online.parameters(), lr=0.1, momentum=0.9)
        return online, EMATarget(online, schedule=schedule), optimizer

    online, ema, optimizer = fresh()
    _run(online, ema, optimizer, range(10))
    uninterrupted = ema.state_dict()

    online, ema, optimizer = fresh()
    _run(online, ema, optimizer, range(6))
    buffer = io.BytesIO()
    torch.save(
        {
            "online": online.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
        },
        buffer,
    )
    state = ema.state_dict()
    assert state["_extra_state"] == {"step": 6}

    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    online, resumed, optimizer = fresh()  # a new process: everything rebuilt from scratch
    online.load_state_dict(checkpoint["online"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    resumed.load_state_dict(checkpoint["ema"])
    assert resumed.step == 6 and resumed.momentum == ema.momentum
    _run(online, resumed, optimizer, range(6, 10))
    resumed_state = resumed.state_dict()
    assert resumed_state.keys() == uninterrupted.keys()
    for name, value in uninterrupted.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(resumed_state[name], value), name
        else:
            assert resumed_state[name] == value, name


def test_bad_extra_state() -> None:
    ema = EMATarget(_net())
    state = ema.state_dict()
    state["_extra_state"] = {"step": "six"}
    with pytest.raises(ValueError, match="extra state must be"):
        ema.load_state_dict(state)
