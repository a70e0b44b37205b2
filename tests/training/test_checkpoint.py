"""Atomic checkpoints: complete or invisible, old ones removed only after a new one is complete."""

from __future__ import annotations

import pytest
import torch

from nano_banana.training import checkpoint as ck


def state(step: int) -> dict:
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))], lr=1e-3, betas=(0.9, 0.99))
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    return {
        "adapters": {"w": torch.full((2, 2), float(step))},
        "optimizer": opt.state_dict(),
        "run": {"step": step, "recent": [1.0, 2.0]},
        "ema": None,
    }


def test_pack_round_trip_keeps_types():
    original = state(3)
    tensors: dict = {}
    tree = ck.pack_state(original, tensors, "t")
    back = ck.unpack_state(tree, tensors)
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.99)  # tuple stays a tuple
    assert set(back["optimizer"]["state"]) == {0}  # int keys stay ints
    assert torch.equal(
        back["optimizer"]["state"][0]["exp_avg"], original["optimizer"]["state"][0]["exp_avg"]
    )
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))])
    opt.load_state_dict(back["optimizer"])


def test_save_load_and_prune(tmp_path):
    for step in (2, 4, 6):
        ck.save_checkpoint(tmp_path, step, state(step), keep=2)
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [4, 6]
    step, loaded = ck.load_checkpoint(ck.find_latest(tmp_path))
    assert step == 6 and torch.equal(loaded["adapters"]["w"], torch.full((2, 2), 6.0))


def test_fault_during_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    ck.save_checkpoint(tmp_path, 2, state(2), keep=1)

    def crash(folder, step):
        raise OSError("killed (injected)")

    monkeypatch.setattr(ck, "_write_marker", crash)
    with pytest.raises(OSError):
        ck.save_checkpoint(tmp_path, 4, state(4), keep=1)
    monkeypatch.undo()
    assert ck.find_latest(tmp_path).name == "checkpoint-0000002"  # kept although keep=1
    assert ck.load_checkpoint(ck.find_latest(tmp_path))[0] == 2


def test_find_latest_skips_unfinished_and_damaged(tmp_path):
    ck.save_checkpoint(tmp_path, 2, state(2), keep=5)
    ck.save_checkpoint(tmp_path, 4, state(4), keep=5)
    root = ck.checkpoint_root(tmp_path)
    (root / "checkpoint-0000009").mkdir()  # no marker: never finished
    damaged = root / "checkpoint-0000004" / ck.TENSORS
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes
    damaged.write_bytes(bytes(data))
    assert ck.find_latest(tmp_path).name == "checkpoint-0000002"
    with pytest.raises(ck.CheckpointError, match="hash"):
        ck.load_checkpoint(root / "checkpoint-0000004")
    with pytest.raises(ck.CheckpointError, match="incomplete"):
        ck.resolve_resume(tmp_path, str(root / "checkpoint-0000009"))
    assert ck.resolve_resume(tmp_path / "fresh", "latest") is None


def test_nan_state_is_never_written_and_an_old_one_is_skipped(tmp_path, monkeypatch):
    """A diverged run's state (NaN/Inf) would only continue the divergence when resumed."""
    ck.save_checkpoint(tmp_path, 2, state(2), keep=5)
    poisoned = state(4)
    poisoned["optimizer"]["state"][0]["exp_avg_sq"][0] = float("inf")
    with pytest.raises(ck.CheckpointError, match="step 4 not written: it holds NaN/Inf"):
        ck.save_checkpoint(tmp_path, 4, poisoned, keep=5)
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [2]
    # one written before this rule (the check switched off to make it) is skipped and refused
    monkeypatch.setattr(ck, "check_finite", lambda tensors, what: None)
    ck.save_checkpoint(tmp_path, 4, poisoned, keep=5)
    monkeypatch.undo()
    root = ck.checkpoint_root(tmp_path)
    assert ck.find_latest(tmp_path) == root / "checkpoint-0000002"
    assert ck.resolve_resume(tmp_path, "latest") == root / "checkpoint-0000002"
    with pytest.raises(ck.CheckpointError, match="cannot be resumed: it holds NaN/Inf"):
        ck.load_checkpoint(root / "checkpoint-0000004")
