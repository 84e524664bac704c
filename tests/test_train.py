"""Float training: determinism for a seed, checkpoint round trip, bad checkpoints."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from quant.choices import SHIPPED_CHECKPOINT
from quant.data import DataConfig
from quant.model import mobilenet_v2_relu
from quant.train import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    TrainConfig,
    load_checkpoint,
    save_checkpoint,
    train_float,
)

TINY_DATA = DataConfig(image_size=16)
TINY_TRAIN = TrainConfig(epochs=1, batch_size=256, width_mult=0.25, seed=3)


@pytest.fixture(scope="module")
def tiny_checkpoint() -> dict:
    return train_float(TINY_DATA, TINY_TRAIN, quiet=True)


def test_training_is_deterministic_for_a_seed(tiny_checkpoint):
    again = train_float(TINY_DATA, TINY_TRAIN, quiet=True)
    for name, tensor in tiny_checkpoint["state_dict"].items():
        assert torch.equal(tensor, again["state_dict"][name]), name
    assert again["test_top1"] == tiny_checkpoint["test_top1"]


def test_a_different_seed_trains_a_different_model(tiny_checkpoint):
    other = train_float(TINY_DATA, dataclasses.replace(TINY_TRAIN, seed=4), quiet=True)
    name = "classifier.1.weight"
    assert not torch.equal(other["state_dict"][name], tiny_checkpoint["state_dict"][name])


def test_checkpoint_round_trip(tiny_checkpoint, tmp_path):
    path = tmp_path / "sub" / "model.pt"
    save_checkpoint(tiny_checkpoint, path)
    assert not list(path.parent.glob(".*.tmp")), "temp file left behind"
    model, info = load_checkpoint(path)
    assert not model.training
    assert info["width_mult"] == 0.25 and info["num_classes"] == 10
    assert info["data"]["image_size"] == 16
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, tiny_checkpoint["state_dict"][name]), name
    assert len(info["sha256"]) == 64


def test_shipped_checkpoint_loads_and_describes_its_training():
    model, info = load_checkpoint(SHIPPED_CHECKPOINT)
    assert info["arch"] == "mobilenet_v2_relu" and info["num_classes"] == 10
    assert info["data"]["name"] == "digits"
    assert info["train"]["seed"] == 0 and info["train"]["epochs"] >= 1
    assert info["test_top1"] > 90.0


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")


def test_garbage_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(path)


def test_foreign_torch_file_is_rejected(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": mobilenet_v2_relu().state_dict()}, path)
    with pytest.raises(CheckpointError, match=f"not a {CHECKPOINT_FORMAT} file"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_model(tiny_checkpoint, tmp_path):
    broken = dict(tiny_checkpoint, width_mult=1.0)  # weights are for width 0.25
    path = tmp_path / "broken.pt"
    save_checkpoint(broken, path)
    with pytest.raises(CheckpointError, match="do not fit") as error:
        load_checkpoint(path)
    assert "\n" not in str(error.value)


def test_checkpoint_for_another_class_count_is_refused_before_quantizing(tiny_checkpoint,
                                                                        tmp_path, capsys):
    """A 5-class model quantized on the 10-class digits: one line naming both counts,
    exit 2, nothing written (it used to quantize to 10% top-1 without a word)."""
    from quant import cli

    model = mobilenet_v2_relu(5, TINY_TRAIN.width_mult)
    five = dict(tiny_checkpoint, num_classes=5, state_dict=model.state_dict())
    path = tmp_path / "five.pt"
    save_checkpoint(five, path)
    out = tmp_path / "q.safetensors"
    status = cli.main(["quantize", "--checkpoint", str(path), "--out", str(out), "-q",
                       "--calibration-images", "8"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert str(path) in err and "5" in err and "10" in err
    assert not out.exists()
