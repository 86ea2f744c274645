"""Tests for jepa_blocks.training (checkpoint, atomic, rng, serialization): atomic writes and
their durability, pruning, best tracking, fallback, resume."""

import io
import logging
import os
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from jepa_blocks.training import (
    CheckpointError,
    CheckpointManager,
    ConfigMismatchError,
    atomic_save,
    atomic_write,
    capture_rng_state,
    check_weights_only_safe,
    restore_rng_state,
    weights_only_safe,
)


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _weights_only_roundtrip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# ----------------------------------------------------------------------------- atomic_save


def test_atomic_save_round_trip(tmp_path):
    obj = {"w": torch.arange(6.0).reshape(2, 3), "step": 3}
    path = atomic_save(obj, tmp_path / "a.pt")
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["w"], obj["w"]) and loaded["step"] == 3
    assert _files(tmp_path) == ["a.pt"]


def test_atomic_save_failed_rename_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "a.pt"
    atomic_save({"version": 1}, path)

    def crash(src, dst):
        raise OSError("simulated crash during rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        atomic_save({"version": 2}, path)
    with pytest.raises(OSError, match="simulated crash"):
        atomic_save({"version": 2}, tmp_path / "new.pt")
    monkeypatch.undo()
    assert _files(tmp_path) == ["a.pt"]  # no partial new.pt, no temporary
    assert torch.load(path, weights_only=True) == {"version": 1}


def test_atomic_save_crash_mid_write_leaves_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.pt"
    atomic_save({"version": 1}, path)
    real_save = torch.save

    def partial_save(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        f.write(buffer.getvalue()[:10])  # a truncated write, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", partial_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"version": 2}, path)
    monkeypatch.undo()
    assert _files(tmp_path) == ["a.pt"]
    assert torch.load(path, weights_only=True) == {"version": 1}


def test_atomic_write_fsyncs_the_file_before_the_rename_and_the_directory_after(
    tmp_path, monkeypatch
):
    """Durability cannot be seen by killing the process (the page cache survives a SIGKILL):
    spy on os.fsync. The data must reach the disk before the rename publishes it, and the
    directory entry after it."""
    import stat

    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        kind = "directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append(("fsync", kind))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", Path(dst).name))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_save({"version": 1}, tmp_path / "a.pt")
    assert events == [("fsync", "file"), ("replace", "a.pt"), ("fsync", "directory")]
    events.clear()
    atomic_write(tmp_path / "b.bin", lambda f: f.write(b"data"))
    assert events == [("fsync", "file"), ("replace", "b.bin"), ("fsync", "directory")]
    assert (tmp_path / "b.bin").read_bytes() == b"data"


def test_atomic_save_missing_directory(tmp_path):
    with pytest.raises(ValueError, match="does not exist; create it"):
        atomic_save({}, tmp_path / "nope" / "a.pt")


# --------------------------------------------------------------------------- pruning, best


@settings(max_examples=15, deadline=None)
@given(keep_last=st.integers(1, 4), saves=st.integers(1, 7))
def test_keep_last_prunes_oldest(keep_last, saves):
    with tempfile.TemporaryDirectory() as tmp:
        manager = CheckpointManager(tmp, keep_last=keep_last, keep_best=False)
        for i in range(saves):
            manager.save({"i": i}, step=10 * (i + 1), epoch=0)
        steps = [10 * (i + 1) for i in range(saves)][-keep_last:]
        assert _files(Path(tmp)) == [f"ckpt-{s:09d}.pt" for s in steps]
        assert manager.load_latest()["state"] == {"i": saves - 1}


@pytest.mark.parametrize(
    ("mode", "metrics", "best_index"),
    [
        ("min", [3.0, 1.0, 2.0, 1.0, float("nan"), 5.0], 1),  # tie keeps the earlier
        ("max", [0.1, 0.5, 0.4, 0.7, float("nan"), 0.2], 3),
        ("min", [float("nan"), 2.0, 4.0, 3.0], 1),
    ],
)
def test_best_tracking(tmp_path, mode, metrics, best_index):
    manager = CheckpointManager(tmp_path, keep_last=2, mode=mode, metric="val")
    for i, metric in enumerate(metrics):
        manager.save({"i": i}, step=i + 1, epoch=i, metric=metric)
    best = manager.load(manager.best_path)
    assert best["state"] == {"i": best_index}
    assert best["metric"] == metrics[best_index] and best["step"] == best_index + 1
    assert best["metric_name"] == "val"
    # best.pt outlives the pruning of its step checkpoint.
    assert not manager.path_for(best_index + 1).exists()


def test_best_survives_restart(tmp_path):
    first = CheckpointManager(tmp_path)
    first.save({"i": 0}, step=1, epoch=0, metric=1.0)
    second = CheckpointManager(tmp_path)
    assert second.load_latest()["step"] == 1
    second.save({"i": 1}, step=2, epoch=0, metric=2.0)  # worse than best.pt on disk
    assert second.load(second.best_path)["state"] == {"i": 0}
    second.save({"i": 2}, step=3, epoch=0, metric=0.5)
    assert second.load(second.best_path)["state"] == {"i": 2}


def test_payload_fields(tmp_path):
    manager = CheckpointManager(tmp_path, config={"lr": 1e-3}, library_version="9.9")
    manager.save({"x": torch.ones(2)}, step=7, epoch=2, metric=torch.tensor(0.25))
    payload = torch.load(tmp_path / "ckpt-000000007.pt", weights_only=True)
    assert {
        k: payload[k]
        for k in ("format_version", "library_version", "config", "step", "epoch", "metric")
    } == {
        "format_version": 1,
        "library_version": "9.9",
        "config": {"lr": 1e-3},
        "step": 7,
        "epoch": 2,
        "metric": 0.25,
    }
    assert CheckpointManager(tmp_path / "b").library_version  # resolved, never empty


# --------------------------------------------------------------------- corruption, resume


def test_corrupt_newest_falls_back_with_warning(tmp_path, caplog):
    manager = CheckpointManager(tmp_path, keep_last=3)
    for step in (10, 20, 30):
        manager.save({"step": step}, step=step, epoch=0)
    newest = manager.path_for(30)
    _truncate(newest)
    (tmp_path / "ckpt-000000040.pt").write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING, logger="jepa_blocks.training.checkpoint"):
        payload = CheckpointManager(tmp_path).load_latest()
    assert payload["state"] == {"step": 20}
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert str(newest) in messages and "ckpt-000000040.pt" in messages
    assert "corrupt or truncated" in messages
    assert "Falling back to ckpt-000000030.pt" in messages  # tried next, also damaged
    assert "Falling back to ckpt-000000020.pt" in messages


def test_truncated_file_raises_checkpoint_error_naming_path(tmp_path):
    manager = CheckpointManager(tmp_path)
    path = manager.save({"w": torch.randn(64, 64)}, step=1, epoch=0)
    _truncate(path, 0.7)
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ".*corrupt or truncated"):
        manager.load(path)
    assert issubclass(CheckpointError, ValueError)


def test_all_checkpoints_unreadable_raises_instead_of_restarting(tmp_path):
    manager = CheckpointManager(tmp_path)
    _truncate(manager.save({}, step=1, epoch=0))
    with pytest.raises(CheckpointError, match="(?s)none of the 1 checkpoint.*Delete the damaged"):
        CheckpointManager(tmp_path).load_latest()


def test_empty_directory_and_non_payload(tmp_path):
    assert CheckpointManager(tmp_path / "absent").load_latest() is None
    torch.save({"weights": torch.ones(1)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a CheckpointManager payload"):
        CheckpointManager(tmp_path).load(tmp_path / "plain.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CheckpointManager(tmp_path).load(tmp_path / "missing.pt")


def test_newer_format_is_not_skipped(tmp_path):
    manager = CheckpointManager(tmp_path)
    path = manager.save({}, step=1, epoch=0)
    payload = torch.load(path, weights_only=True)
    atomic_save({**payload, "format_version": 99}, path)
    with pytest.raises(CheckpointError, match="format_version 99.*upgrade jepa_blocks"):
        CheckpointManager(tmp_path).load_latest()


def test_leftover_temporaries_ignored_then_cleaned(tmp_path):
    manager = CheckpointManager(tmp_path)
    manager.save({"ok": True}, step=1, epoch=0)
    leftovers = [tmp_path / ".ckpt-000000002.pt.abc123.tmp", tmp_path / ".best.pt.0f.tmp"]
    for leftover in leftovers:
        leftover.write_bytes(b"partial")
    unrelated = tmp_path / ".notes.tmp"
    unrelated.write_bytes(b"keep me")
    resumed = CheckpointManager(tmp_path)
    assert resumed.load_latest()["state"] == {"ok": True}
    resumed.save({"ok": True}, step=2, epoch=0)
    assert not any(p.exists() for p in leftovers) and unrelated.exists()


def test_save_into_used_directory_requires_resume(tmp_path):
    CheckpointManager(tmp_path).save({}, step=5, epoch=0)
    fresh = CheckpointManager(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"already holds checkpoints \['ckpt-000000005.pt'\].*"
        "call load_latest",
    ):
        fresh.save({}, step=1, epoch=0)
    assert _files(tmp_path) == ["ckpt-000000005.pt"]


def test_checkpoints_after_resume_point_are_removed(tmp_path, caplog):
    manager = CheckpointManager(tmp_path, keep_last=5, keep_best=False)
    for step in (10, 20, 30):
        manager.save({"step": step}, step=step, epoch=0)
    _truncate(manager.path_for(30))
    resumed = CheckpointManager(tmp_path, keep_last=5, keep_best=False)
    assert resumed.load_latest()["step"] == 20
    with caplog.at_level(logging.WARNING, logger="jepa_blocks.training.checkpoint"):
        resumed.save({"step": 25}, step=25, epoch=0)
    assert "ckpt-000000030.pt" in caplog.text and "abandoned" in caplog.text
    assert _files(tmp_path) == ["ckpt-000000010.pt", "ckpt-000000020.pt", "ckpt-000000025.pt"]


# ------------------------------------------------------------------------------- config


def test_config_mismatch_names_fields_and_values(tmp_path):
    config = {"lr": 4e-4, "epochs": 100, "model": {"depth": 3, "heads": 4}, "seq": [1, 2]}
    CheckpointManager(tmp_path, config=config).save({}, step=1, epoch=0)
    changed = {
        "lr": 1e-3,
        "epochs": 200,
        "model": {"depth": 4, "heads": 4},
        "seq": (1, 2),
        "new": True,
    }
    with pytest.raises(ConfigMismatchError) as info:
        CheckpointManager(tmp_path, config=changed).load_latest()
    message = str(info.value)
    assert "4 field(s) differ" in message
    assert "lr: checkpoint 0.0004, now 0.001" in message
    assert "model.depth: checkpoint 3, now 4" in message
    assert "new: checkpoint '<missing>', now True" in message
    assert "epochs: checkpoint 100, now 200" in message
    assert "start a new --out directory or pass the same config" in message.lower()
    assert "seq" not in message  # a tuple equals the saved list
    assert issubclass(ConfigMismatchError, ValueError)
    ok = CheckpointManager(tmp_path, config=changed, ignore_keys=("lr", "epochs", "model", "new"))
    assert ok.load_latest()["config"] == config


def test_config_mismatch_count_excludes_ignored(tmp_path):
    CheckpointManager(tmp_path, config={"a": 1, "epochs": 1}).save({}, step=1, epoch=0)
    with pytest.raises(ConfigMismatchError, match=r"\(1 field\(s\) differ\):\n  a: checkpoint 1"):
        CheckpointManager(
            tmp_path, config={"a": 2, "epochs": 9}, ignore_keys=("epochs",)
        ).load_latest()


# ----------------------------------------------------------------------- validation errors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keep_last": 0}, "keep_last must be an int >= 1"),
        ({"mode": "avg"}, "mode must be 'min' or 'max'"),
        ({"ignore_keys": "epochs"}, r"write ignore_keys=\('epochs',\)"),
        ({"config": [1, 2]}, "config must be a dict"),
    ],
)
def test_constructor_errors(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        CheckpointManager(tmp_path, **kwargs)


def test_save_rejects_unsafe_state_before_writing(tmp_path):
    manager = CheckpointManager(tmp_path)
    state = {"data": {"order": np.arange(3)}}
    with pytest.raises(
        ValueError,
        match=r"state\['data'\]\['order'\] is a numpy.ndarray.*"
        "weights_only_safe",
    ):
        manager.save(state, step=1, epoch=0)
    with pytest.raises(ValueError, match="step must be a non-negative int"):
        manager.save({}, step=-1, epoch=0)
    with pytest.raises(ValueError, match="metric must be a float or None"):
        manager.save({}, step=1, epoch=0, metric="low")
    assert not tmp_path.exists() or _files(tmp_path) == []
    safe = weights_only_safe(state)
    manager.save(safe, step=1, epoch=0)
    assert torch.equal(manager.load_latest()["state"]["data"]["order"], torch.arange(3))


def test_weights_only_safe_conversions():
    from collections import namedtuple

    point = namedtuple("Point", "x y")
    obj = {
        "p": Path("/a"),
        "n": np.float32(1.5),
        "t": point(1, 2),
        "v": torch.__version__,
        "s": {3, 1},
        "i": np.int64(4),
    }
    with pytest.raises(ValueError, match="torch.load"):
        check_weights_only_safe(obj)
    safe = weights_only_safe(obj)
    check_weights_only_safe(safe)
    assert _weights_only_roundtrip(safe) == {
        "p": "/a",
        "n": 1.5,
        "t": (1, 2),
        "v": str(torch.__version__),
        "s": [1, 3],
        "i": 4,
    }
    with pytest.raises(ValueError, match="has no weights_only-safe form"):
        weights_only_safe({"f": len})


# ------------------------------------------------------------------------------ RNG state


def _draw(gen: torch.Generator) -> tuple:
    return (
        [random.random() for _ in range(3)] + [random.gauss(0, 1)],
        np.random.rand(3).tolist() + [np.random.randn()],
        torch.rand(3).tolist(),
        torch.rand(3, generator=gen).tolist(),
    )


def test_restore_rng_state_replays_the_same_numbers():
    gen = torch.Generator().manual_seed(123)
    random.gauss(0, 1)  # leave a cached gaussian in both python and numpy states
    np.random.randn()
    state = _weights_only_roundtrip(capture_rng_state({"sampler": gen}))
    first = _draw(gen)
    restore_rng_state(state, generators={"sampler": gen})
    assert _draw(gen) == first
    assert _draw(gen) != first  # the streams do advance


def test_restore_rng_state_errors_change_nothing():
    gen = torch.Generator().manual_seed(1)
    state = capture_rng_state()
    before = capture_rng_state({"sampler": gen})
    with pytest.raises(ValueError, match=r"no generator named \['sampler'\]"):
        restore_rng_state(state, generators={"sampler": gen})
    with pytest.raises(ValueError, match=r"RNG state lacks \['numpy'\]"):
        restore_rng_state({k: v for k, v in state.items() if k != "numpy"})
    after = capture_rng_state({"sampler": gen})
    assert torch.equal(after["torch"], before["torch"])
    assert torch.equal(after["generators"]["sampler"], before["generators"]["sampler"])
    assert after["python"] == before["python"]
    with pytest.raises(ValueError, match="must map names"):
        capture_rng_state({"sampler": 3})


# --------------------------------------------------------- realistic resume, weights_only


def _make(seed: int):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    return model, optimizer, scheduler, scaler


def _step(model, optimizer, scheduler, scaler, gen) -> float:
    x = torch.randn(6, 4, generator=gen)
    noise = torch.randn(6, 2)  # global RNG, restored by restore_rng_state
    loss = ((model(x) - noise) ** 2).mean()
    optimizer.zero_grad()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return loss.item()


def test_realistic_state_round_trips_weights_only_and_resumes_exactly(tmp_path):
    model, optimizer, scheduler, scaler = _make(0)
    gen = torch.Generator().manual_seed(7)
    for _ in range(2):
        _step(model, optimizer, scheduler, scaler, gen)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": capture_rng_state({"data": gen}),
        "data": {"epoch": 0, "batch": 2},
    }
    manager = CheckpointManager(tmp_path, config={"lr": 1e-2})
    manager.save(state, step=2, epoch=0, metric=0.5)
    expected = [_step(model, optimizer, scheduler, scaler, gen) for _ in range(3)]

    raw = torch.load(manager.path_for(2), weights_only=True)  # the contract, checked directly
    assert raw["state"]["scaler"]["scale"] == 2.0**10
    payload = CheckpointManager(tmp_path, config={"lr": 1e-2}).load_latest()
    model2, optimizer2, scheduler2, scaler2 = _make(1)  # different init, overwritten below
    model2.load_state_dict(payload["state"]["model"])
    optimizer2.load_state_dict(payload["state"]["optimizer"])
    scheduler2.load_state_dict(payload["state"]["scheduler"])
    scaler2.load_state_dict(payload["state"]["scaler"])
    gen2 = torch.Generator()
    restore_rng_state(payload["state"]["rng"], generators={"data": gen2})
    resumed = [_step(model2, optimizer2, scheduler2, scaler2, gen2) for _ in range(3)]
    assert resumed == expected
    for a, b in zip(model.state_dict().values(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_restore_rng_state_rolls_back_a_partial_restore():
    gen = torch.Generator().manual_seed(5)
    saved = capture_rng_state({"sampler": gen})
    torch.rand(4)
    torch.rand(4, generator=gen)
    before = capture_rng_state({"sampler": gen})
    broken = {**saved, "numpy": {**saved["numpy"], "keys": saved["numpy"]["keys"][:10]}}
    # numpy rejects the key after torch and the generator were already set.
    with pytest.raises(ValueError, match="could not be restored.*put back as it was"):
        restore_rng_state(broken, generators={"sampler": gen})
    after = capture_rng_state({"sampler": gen})
    assert torch.equal(after["torch"], before["torch"])
    assert not torch.equal(after["torch"], saved["torch"])
    assert torch.equal(after["generators"]["sampler"], before["generators"]["sampler"])
