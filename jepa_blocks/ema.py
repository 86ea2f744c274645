"""The EMA target network and its momentum schedules.

seq-JEPA's target encoder is an exponential moving average of the online encoder,
``theta_t <- tau * theta_t + (1 - tau) * theta_o`` after every optimiser step, with tau rising
from 0.996 to 1 on a cosine (BYOL's schedule; spec §1.2). :class:`EMATarget` keeps the frozen
copy, updates parameters *and* floating buffers (BatchNorm statistics) with one fused
``torch._foreach_lerp_`` per group, and stores its step in ``state_dict`` so a resumed run
continues on exactly the same momentum.
"""

import copy
import math
import weakref
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor, nn

from jepa_blocks.training.unwrap import unwrap_model

__all__ = [
    "EMATarget",
    "MomentumSchedule",
    "ConstantMomentum",
    "CosineMomentum",
    "LinearMomentum",
    "WarmupMomentum",
]


def _check_momentum(name: str, value: float) -> None:
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise ValueError(f"{name} must lie in [0, 1], got {value}; EMA momentum is a fraction.")


class MomentumSchedule(ABC):
    """Momentum as a function of the optimiser step (0-based). Stateless: the step lives in
    :class:`EMATarget`'s ``state_dict``."""

    @abstractmethod
    def __call__(self, step: int) -> float: ...


class ConstantMomentum(MomentumSchedule):
    """The same momentum at every step."""

    def __init__(self, momentum: float = 0.996) -> None:
        _check_momentum("momentum", momentum)
        self.momentum = momentum

    def __call__(self, step: int) -> float:
        return self.momentum

    def __repr__(self) -> str:
        return f"ConstantMomentum({self.momentum})"


class _RampMomentum(MomentumSchedule):
    def __init__(
        self,
        base: float = 0.996,
        final: float = 1.0,
        *,
        total_steps: int,
        steps_per_epoch: int | None = None,
    ) -> None:
        _check_momentum("base", base)
        _check_momentum("final", final)
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}.")
        if steps_per_epoch is not None and steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1 or None, got {steps_per_epoch}.")
        self.base, self.final = base, final
        self.total_steps, self.steps_per_epoch = total_steps, steps_per_epoch

    def _progress(self, step: int) -> float:
        if self.steps_per_epoch is None:
            return min(step, self.total_steps) / self.total_steps
        # The official code moves tau once per epoch: progress = epoch / epochs.
        epochs = max(1, self.total_steps // self.steps_per_epoch)
        return min(step // self.steps_per_epoch, epochs) / epochs

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base={self.base}, final={self.final}, "
            f"total_steps={self.total_steps}, steps_per_epoch={self.steps_per_epoch})"
        )


class CosineMomentum(_RampMomentum):
    """``tau = final - (final - base) * (cos(pi * t) + 1) / 2`` with ``t`` = progress in [0, 1].

    The paper's (and BYOL's) schedule: 0.996 -> 1. By default ``t`` advances every step;
    pass ``steps_per_epoch`` to move once per epoch as the official code does.
    """

    def __call__(self, step: int) -> float:
        t = self._progress(step)
        return self.final - (self.final - self.base) * (math.cos(math.pi * t) + 1.0) / 2.0


class LinearMomentum(_RampMomentum):
    """``tau`` moves linearly from ``base`` to ``final`` over ``total_steps``."""

    def __call__(self, step: int) -> float:
        return self.base + (self.final - self.base) * self._progress(step)


class WarmupMomentum(MomentumSchedule):
    """Ramp linearly from ``start`` to ``schedule(warmup_steps)`` over ``warmup_steps``, then
    follow ``schedule`` (whose step count includes the warm-up)."""

    def __init__(self, schedule: MomentumSchedule, *, warmup_steps: int, start: float = 0.0):
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}.")
        _check_momentum("start", start)
        self.schedule, self.warmup_steps, self.start = schedule, warmup_steps, start

    def __call__(self, step: int) -> float:
        if step >= self.warmup_steps:
            return self.schedule(step)
        end = self.schedule(self.warmup_steps)
        return self.start + (end - self.start) * step / self.warmup_steps

    def __repr__(self) -> str:
        return f"WarmupMomentum({self.schedule!r}, warmup_steps={self.warmup_steps})"


def _split_buffers(module: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
    floats: list[Tensor] = []
    ints: list[Tensor] = []
    for buffer in module.buffers():
        (floats if buffer.is_floating_point() else ints).append(buffer)
    return floats, ints


class EMATarget(nn.Module):
    """A frozen copy of ``module`` that tracks it by exponential moving average.

    Call :meth:`update` with the online module after each optimiser step. The copy's
    parameters never require gradients, its forward runs under ``no_grad``, and it follows
    the train/eval mode of this wrapper (seq-JEPA's target runs in train mode during
    pre-training, so its BatchNorm layers use the target batch's statistics, spec §1.2).
    Keep it outside ``DistributedDataParallel``: every rank applies the same update to the
    same (all-reduced) online weights, so targets stay identical without communication.

    Args:
        module: the online module to copy (its current weights become the target's).
        schedule: momentum per step, a :class:`MomentumSchedule` or a float for a constant;
            default ``ConstantMomentum(0.996)``. For the paper, pass
            ``CosineMomentum(0.996, 1.0, total_steps=...)``.
        average_buffers: also average floating buffers (BatchNorm running statistics);
            integer buffers (``num_batches_tracked``) are copied. The official code averages
            parameters only.

    Raises:
        ValueError: a momentum outside [0, 1].
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        schedule: MomentumSchedule | float | None = None,
        average_buffers: bool = True,
    ) -> None:
        super().__init__()
        module = unwrap_model(module)
        if schedule is None:
            schedule = ConstantMomentum(0.996)
        elif isinstance(schedule, int | float):
            schedule = ConstantMomentum(float(schedule))
        self.schedule = schedule
        self.average_buffers = average_buffers
        self.target = copy.deepcopy(module)
        self.target.requires_grad_(False)
        # A Python int, not a buffer: reading a CUDA buffer every step would sync the host.
        # It reaches state_dict through get_extra_state, so a resumed run continues exactly.
        self.step = 0
        self._validated: weakref.ref[nn.Module] | None = None

    @property
    def momentum(self) -> float:
        """The momentum the next :meth:`update` will use."""
        return self.schedule(self.step)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The target's forward, under ``no_grad``."""
        with torch.no_grad():
            return self.target(*args, **kwargs)

    def _validate(self, online: nn.Module) -> None:
        # Structure is checked once per online module; the update itself is then a handful of
        # fused foreach calls with no Python work per parameter.
        if self._validated is not None and self._validated() is online:
            return
        target_params = dict(self.target.named_parameters())
        online_params = dict(online.named_parameters())
        if target_params.keys() != online_params.keys():
            missing = sorted(target_params.keys() - online_params.keys())[:5]
            extra = sorted(online_params.keys() - target_params.keys())[:5]
            raise ValueError(
                "online module does not match the EMA target: missing parameters "
                f"{missing}, unexpected {extra}; pass the module the target was copied from."
            )
        for name, param in target_params.items():
            online_param = online_params[name]
            if param.shape != online_param.shape or param.dtype != online_param.dtype:
                raise ValueError(
                    f"parameter {name!r} has shape {tuple(online_param.shape)} and dtype "
                    f"{online_param.dtype} online but {tuple(param.shape)} and {param.dtype} in "
                    "the target; pass the module the target was copied from (and move both "
                    "with .to())."
                )
        target_buffers = dict(self.target.named_buffers())
        online_buffers = dict(online.named_buffers())
        if target_buffers.keys() != online_buffers.keys():
            raise ValueError(
                "online module's buffers do not match the EMA target's "
                f"({sorted(target_buffers.keys() ^ online_buffers.keys())[:5]} differ); pass the "
                "module the target was copied from."
            )
        self._validated = weakref.ref(online)

    @torch.no_grad()
    def update(self, online: nn.Module) -> float:
        """Move the target towards ``online`` and advance the schedule by one step.

        Returns:
            The momentum used.

        Raises:
            ValueError: the schedule gave a momentum outside [0, 1], or ``online`` does not
                have the target's structure. Nothing changes in that case.
        """
        online = unwrap_model(online)
        momentum = float(self.schedule(self.step))
        _check_momentum("momentum", momentum)
        self._validate(online)
        weight = 1.0 - momentum
        # Lists are gathered afresh each call: .to()/.cuda() replace buffer tensors, so cached
        # references would go stale. Gathering costs microseconds; the lerp is memory-bound.
        target_params = list(self.target.parameters())
        if target_params:
            torch._foreach_lerp_(target_params, list(online.parameters()), weight)
        target_floats, target_ints = _split_buffers(self.target)
        online_floats, online_ints = _split_buffers(online)
        if target_floats:
            if self.average_buffers:
                torch._foreach_lerp_(target_floats, online_floats, weight)
            else:
                torch._foreach_copy_(target_floats, online_floats)
        if target_ints:
            torch._foreach_copy_(target_ints, online_ints)
        self.step += 1
        return momentum

    def get_extra_state(self) -> dict[str, int]:
        return {"step": self.step}

    def set_extra_state(self, state: dict[str, int]) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("step"), int):
            raise ValueError(f"EMATarget extra state must be {{'step': int}}, got {state!r}.")
        self.step = state["step"]

    def extra_repr(self) -> str:
        return (
            f"step={self.step}, schedule={self.schedule!r}, "
            f"average_buffers={self.average_buffers}"
        )
