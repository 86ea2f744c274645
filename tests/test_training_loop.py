"""jepa_blocks.training.EpochLoop on a toy regression: the checkpoint cadence, a stop at
max_steps, and a resume that reproduces the uninterrupted run exactly."""

from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from jepa_blocks.data.sampler import ResumableSampler
from jepa_blocks.training import (
    CheckpointManager,
    Distributed,
    capture_rng_state,
    restore_rng_state,
)
from jepa_blocks.training.loop import EpochLoop


class _Data(torch.utils.data.Dataset):
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(24, 3, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5])
        self.epochs_seen: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs_seen.append(epoch)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        return self.x[index], self.y[index]


class _Toy(EpochLoop):
    def __init__(self, out: Path, *, max_steps: int = 0, resume: bool = False) -> None:
        self.config = SimpleNamespace(
            epochs=3, log_every=2, save_every_steps=0, save_every_epochs=2, max_steps=max_steps,
            progress=False, num_workers=0,
        )
        self.dist = Distributed("cpu")
        self.device = torch.device("cpu")
        self.out = out
        self.dataset = _Data()
        self.batch_per_rank = 4
        self.sampler = ResumableSampler(len(self.dataset), seed=0, drop_last=True)
        self.loader_generator = torch.Generator().manual_seed(0)
        self.steps_per_epoch = len(self.sampler) // self.batch_per_rank
        self.total_steps = self.steps_per_epoch * self.config.epochs
        torch.manual_seed(0)
        self.model = nn.Linear(3, 1)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.checkpoints = CheckpointManager(out, keep_last=10)
        self.init_loop()
        if resume:
            state = self.checkpoints.load_latest()["state"]
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            restore_rng_state(state["rng"], generators={"loader": self.loader_generator})
            self.load_loop_state(state)

    def train_step(self, batch):
        x, y = batch
        loss = (self.model(x).squeeze(1) - y).pow(2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def step_context(self):
        return (self.optimizer.param_groups[0]["lr"],)

    def record(self, pending):
        for step, loss, lr in pending:
            self.history.append({"step": step, "loss": float(loss), "lr": lr})

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": capture_rng_state({"loader": self.loader_generator}),
            **self.loop_state(),
        }


def test_runs_every_epoch_and_saves_at_every_second_and_the_last(tmp_path: Path) -> None:
    toy = _Toy(tmp_path)
    assert toy.train()
    assert [row["step"] for row in toy.history] == list(range(18))  # 3 epochs x 6 steps
    assert toy.dataset.epochs_seen == [0, 1, 2]
    assert [int(p.stem.split("-")[1]) for p in toy.checkpoints.checkpoints()] == [12, 18]
    assert toy.history[-1]["loss"] < toy.history[0]["loss"]


def test_a_stop_then_resume_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    whole = _Toy(tmp_path / "whole")
    whole.train()
    first = _Toy(tmp_path / "split", max_steps=8)  # mid-epoch 1
    assert not first.train()
    assert first.global_step == 8 and first.step_in_epoch == 2
    resumed = _Toy(tmp_path / "split", resume=True)
    assert resumed.train()
    assert resumed.history == whole.history
    for a, b in zip(resumed.model.parameters(), whole.model.parameters(), strict=True):
        assert torch.equal(a, b)
