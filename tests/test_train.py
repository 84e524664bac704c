"""Float training of any ModelSpec: determinism for a seed, checkpoint round trip, bad
checkpoints, foreign state dicts, user-factory checkpoints, the shipped checkpoints."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import uuid

import pytest
import torch
from cosim.quant.choices import SHIPPED_CHECKPOINT, SHIPPED_CHECKPOINTS
from cosim.quant.data import DataConfig, build_dataset
from cosim.quant.model import ModelError, ModelSpec, build_model, mobilenet_v2_relu, output_classes
from cosim.quant.train import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    TrainConfig,
    evaluate_top1,
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
    assert info["arch"] == "mobilenet_v2_relu"
    assert info["kwargs"] == {"num_classes": 10, "width_mult": 0.25}
    assert info["train"]["model"] == {"arch": "mobilenet_v2_relu",
                                      "kwargs": {"num_classes": 10, "width_mult": 0.25}}
    assert info["train_seconds"] > 0 and info["train_threads"] >= 1
    assert info["state_dict_dtype"] == "float32"
    assert info["data"]["image_size"] == 16
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, tiny_checkpoint["state_dict"][name]), name
    assert len(info["sha256"]) == 64


def test_shipped_checkpoint_loads_and_describes_its_training():
    model, info = load_checkpoint(SHIPPED_CHECKPOINT)
    assert info["arch"] == "mobilenet_v2_relu" and info["num_classes"] == 10
    assert info["kwargs"] == {"num_classes": 10, "width_mult": 1.0}  # written without kwargs
    assert info["data"]["name"] == "digits"
    assert info["train"]["seed"] == 0 and info["train"]["epochs"] >= 1
    assert info["test_top1"] > 90.0


@pytest.mark.parametrize("arch", sorted(SHIPPED_CHECKPOINTS))
def test_shipped_checkpoints_load_and_their_arch_builds(arch):
    """Each shipped checkpoint records its arch and kwargs; building that spec gives the
    same names and shapes; the recorded float top-1 (measured on the stored weights at
    training) is what evaluate_top1 measures now on the digits test split."""
    path = SHIPPED_CHECKPOINTS[arch]
    model, info = load_checkpoint(path)
    assert info["arch"] == arch and info["num_classes"] == 10
    assert info["data"] == {"name": "digits", "root": None, "image_size": 32,
                            "download": False, "imagenette_size": "160px"}
    built = build_model(ModelSpec(info["arch"], info["kwargs"]))
    assert [(k, v.shape) for k, v in built.state_dict().items()] == \
        [(k, v.shape) for k, v in model.state_dict().items()]
    assert all(v.dtype == torch.float32 for v in model.state_dict().values()
               if v.is_floating_point())
    assert info["test_top1"] >= 95.0
    if arch != "mobilenet_v2_relu":  # the recipe and the measured time are recorded
        assert info["train"]["model"] == {"arch": arch, "kwargs": info["kwargs"]}
        assert info["train_seconds"] > 0 and info["train_threads"] >= 1
        test_set = build_dataset(DataConfig(**info["data"]), "test")
        assert evaluate_top1(model, test_set) == pytest.approx(info["test_top1"], abs=0.3)


def test_small_cnn_trains_deterministically_and_round_trips(tmp_path):
    config = TrainConfig(epochs=1, batch_size=128, seed=5,
                         model=ModelSpec("small_cnn", {"channels": 4}))
    first = train_float(TINY_DATA, config, quiet=True)
    again = train_float(TINY_DATA, config, quiet=True)
    for name, tensor in first["state_dict"].items():
        assert torch.equal(tensor, again["state_dict"][name]), name
    assert first["arch"] == "small_cnn"
    assert first["kwargs"] == {"num_classes": 10, "channels": 4}
    assert "width_mult" not in first
    path = tmp_path / "small.pt"
    save_checkpoint(first, path)
    model, info = load_checkpoint(path)
    assert info["arch"] == "small_cnn" and info["kwargs"] == first["kwargs"]
    assert model.conv1.out_channels == 4
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, first["state_dict"][name]), name


def test_float16_storage_loads_as_float32(tmp_path):
    config = TrainConfig(epochs=1, batch_size=128, seed=5, store_float16=True,
                         model=ModelSpec("small_cnn", {"channels": 4}))
    checkpoint = train_float(TINY_DATA, config, quiet=True)
    assert checkpoint["state_dict_dtype"] == "float16"
    assert checkpoint["state_dict"]["conv1.weight"].dtype == torch.float16
    assert checkpoint["state_dict"]["bn1.num_batches_tracked"].dtype == torch.int64
    path = tmp_path / "half.pt"
    save_checkpoint(checkpoint, path)
    model, info = load_checkpoint(path)
    assert model.conv1.weight.dtype == torch.float32
    assert torch.equal(model.conv1.weight, checkpoint["state_dict"]["conv1.weight"].float())
    test_set = build_dataset(TINY_DATA, "test")
    assert evaluate_top1(model, test_set) == info["test_top1"]  # measured on fp16 weights
    assert 0 <= info["test_top1_float32"] <= 100


@pytest.mark.parametrize("config, expected", [
    (TrainConfig(width_mult=0.5, model=ModelSpec("small_cnn", {})), "applies to"),
    (TrainConfig(model=ModelSpec("small_cnn", {"num_classes": 5})), "num_classes 5"),
    (TrainConfig(width_mult=0.5, model=ModelSpec("mobilenet_v2_relu", {"width_mult": 0.25})),
     "disagrees"),
])
def test_training_settings_that_disagree(config, expected):
    with pytest.raises(ModelError, match=expected) as error:
        train_float(TINY_DATA, config, quiet=True)
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------- foreign files

RESNET = ModelSpec("resnet18", {"num_classes": 10})


@pytest.fixture(scope="module")
def resnet_state() -> dict:
    torch.manual_seed(11)
    return build_model(RESNET).state_dict()


def _same_weights(model: torch.nn.Module, state: dict) -> None:
    loaded = model.state_dict()
    assert list(loaded) == list(state)
    for name, tensor in state.items():
        assert torch.equal(loaded[name], tensor), name


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "model", "module.", "model+module.",
                                  "torchvision-reference"])
def test_foreign_state_dicts_load_into_resnet18(resnet_state, tmp_path, wrap):
    state = resnet_state
    if "module." in wrap:
        state = {f"module.{k}": v for k, v in state.items()}
    obj = {"bare": state, "module.": state, "state_dict": {"state_dict": state, "epoch": 3},
           "model": {"model": state}, "model+module.": {"model": state},
           "torchvision-reference": {"model": state, "optimizer": {"state": {}},
                                     "epoch": 89, "args": argparse.Namespace(lr=0.1)}}[wrap]
    path = tmp_path / "foreign.pth"
    torch.save(obj, path)
    model, info = load_checkpoint(path, model=RESNET)
    assert not model.training
    _same_weights(model, resnet_state)
    assert info["arch"] == "resnet18" and info["kwargs"] == {"num_classes": 10}
    assert info["num_classes"] == 10 and info["data"] is None
    assert info["path"] == str(path) and len(info["sha256"]) == 64
    assert ("prefix stripped" in info["source"]) == ("module." in wrap)


def test_a_foreign_file_needs_its_model(resnet_state, tmp_path):
    path = tmp_path / "foreign.pth"
    torch.save(resnet_state, path)
    with pytest.raises(CheckpointError, match="--model") as error:
        load_checkpoint(path)
    assert "\n" not in str(error.value)


def _edited(state: dict, edit: str) -> dict:
    state = dict(state)
    if edit == "missing":
        del state["layer4.1.bn2.running_var"]
    elif edit == "unexpected":
        state["layer5.0.conv1.weight"] = torch.zeros(1)
    elif edit == "shape":
        state["fc.weight"] = torch.zeros(1000, 512)
    elif edit == "not a tensor":
        state["fc.bias"] = [0.0] * 10
    elif edit == "dtype":
        state["bn1.num_batches_tracked"] = torch.tensor(1.5)
    return state


@pytest.mark.parametrize("edit, expected", [
    ("missing", "no weight 'layer4.1.bn2.running_var'"),
    ("unexpected", "unexpected weight 'layer5.0.conv1.weight'"),
    ("shape", "weight 'fc.weight' has shape [1000, 512], model resnet18(num_classes=10) "
              "expects [10, 512]"),
    ("not a tensor", "'fc.bias' holding a list"),
    ("dtype", "weight 'bn1.num_batches_tracked' has dtype torch.float32"),
])
def test_a_mismatching_state_dict_is_one_line(resnet_state, tmp_path, edit, expected):
    path = tmp_path / "edited.pth"
    torch.save(_edited(resnet_state, edit), path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path, model=RESNET)
    text = str(error.value)
    assert "\n" not in text and expected in text and str(path) in text, text


def test_a_foreign_file_that_is_not_a_state_dict(tmp_path):
    for name, obj in (("list.pth", [torch.zeros(1)]), ("empty.pth", {}),
                      ("nested.pth", {"weights": {"a": torch.zeros(1)}})):
        path = tmp_path / name
        torch.save(obj, path)
        with pytest.raises(CheckpointError) as error:
            load_checkpoint(path, model=RESNET)
        assert "\n" not in str(error.value) and name in str(error.value)


def test_a_cosim_checkpoint_and_another_model(tmp_path):
    path = SHIPPED_CHECKPOINTS["small_cnn"]
    with pytest.raises(CheckpointError, match="records model small_cnn") as error:
        load_checkpoint(path, model=RESNET)
    assert "\n" not in str(error.value)
    with pytest.raises(CheckpointError, match="records model"):
        load_checkpoint(path, model=ModelSpec("small_cnn", {"channels": 8}))
    model, _ = load_checkpoint(path, model=ModelSpec("small_cnn", {}))  # agrees: loads
    assert output_classes(model) == 10


# ---------------------------------------------------------------- user-factory checkpoints

USER_MODULE = """
import torch.nn as nn

def net(num_classes=10, width=4):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(width * 8 * 8, num_classes))
"""


@pytest.fixture
def user_factory(tmp_path, monkeypatch) -> str:
    name = f"h4_train_factory_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield f"{name}:net"
    sys.modules.pop(name, None)


def test_a_user_factory_trains_and_loads_only_when_named(user_factory, tmp_path):
    spec = ModelSpec(user_factory, {"num_classes": 10, "width": 3})
    config = TrainConfig(epochs=1, batch_size=256, seed=1, model=spec)
    with pytest.raises(ModelError, match="imports code only when"):
        train_float(TINY_DATA, config, quiet=True)
    checkpoint = train_float(TINY_DATA, config, quiet=True, allow_import=True)
    assert checkpoint["arch"] == user_factory and checkpoint["kwargs"] == spec.kwargs
    path = tmp_path / "user.pt"
    save_checkpoint(checkpoint, path)
    sys.modules.pop(user_factory.split(":")[0], None)
    refusals = [({}, "cosim imports code only when you name it"),
                ({"model": spec}, "imports code only when"),
                ({"model": ModelSpec(user_factory, {"width": 5}), "allow_import": True},
                 "records model"),
                ({"model": RESNET, "allow_import": True}, "records model")]
    for kwargs, expected in refusals:
        with pytest.raises(CheckpointError, match=expected) as error:
            load_checkpoint(path, **kwargs)
        assert "\n" not in str(error.value)
    assert user_factory.split(":")[0] not in sys.modules, "imported without allow_import"
    model, info = load_checkpoint(path, model=ModelSpec(user_factory, {}), allow_import=True)
    assert info["arch"] == user_factory and info["kwargs"] == {"num_classes": 10, "width": 3}
    assert info["num_classes"] == 10 and "width_mult" not in info
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, checkpoint["state_dict"][name]), name


def test_a_user_factory_of_another_class_count_is_refused(user_factory):
    config = TrainConfig(epochs=1, model=ModelSpec(user_factory, {"num_classes": 4}))
    with pytest.raises(ModelError, match="4 outputs but the digits data has 10"):
        train_float(TINY_DATA, config, quiet=True, allow_import=True)


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
    kwargs = dict(tiny_checkpoint["kwargs"], width_mult=1.0)  # weights are for width 0.25
    broken = dict(tiny_checkpoint, width_mult=1.0, kwargs=kwargs)
    path = tmp_path / "broken.pt"
    save_checkpoint(broken, path)
    with pytest.raises(CheckpointError, match="'features.0.0.weight' has shape") as error:
        load_checkpoint(path)
    assert "\n" not in str(error.value)


def test_width_mult_that_disagrees_with_kwargs(tiny_checkpoint, tmp_path):
    path = tmp_path / "broken.pt"
    save_checkpoint(dict(tiny_checkpoint, width_mult=1.0), path)
    with pytest.raises(CheckpointError, match="kwargs width_mult 0.25 disagrees") as error:
        load_checkpoint(path)
    assert "\n" not in str(error.value)


def test_checkpoint_for_another_class_count_is_refused_before_quantizing(tiny_checkpoint,
                                                                        tmp_path, capsys):
    """A 5-class model quantized on the 10-class digits: one line naming both counts,
    exit 2, nothing written (it used to quantize to 10% top-1 without a word)."""
    from cosim import cli

    model = mobilenet_v2_relu(5, TINY_TRAIN.width_mult)
    five = dict(tiny_checkpoint, num_classes=5, state_dict=model.state_dict(),
                kwargs=dict(tiny_checkpoint["kwargs"], num_classes=5))
    path = tmp_path / "five.pt"
    save_checkpoint(five, path)
    out = tmp_path / "q.safetensors"
    status = cli.main(["quantize", "--checkpoint", str(path), "--out", str(out), "-q",
                       "--calibration-images", "8"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert str(path) in err and "5" in err and "10" in err
    assert not out.exists()


def test_a_user_model_that_fails_in_training_is_a_user_error(tmp_path, monkeypatch):
    """An in-place add on a tensor autograd needs fails in backward: one ModelError line
    naming the model and the fix, not an internal error."""
    name = f"inplace_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "import torch.nn as nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 10)\n"
        "    def forward(self, x):\n"
        "        x = self.conv(x).relu()\n"
        "        x += 1.0\n"
        "        return self.fc(x.mean((2, 3)))\n"
        "def net(num_classes=10):\n"
        "    return Net()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = TrainConfig(epochs=1, batch_size=64, model=ModelSpec(f"{name}:net"))
    with pytest.raises(ModelError, match=r"training failed in the model's forward or "
                                         r"backward pass .*write x = x \+ y"):
        train_float(DataConfig("digits", image_size=8), config, quiet=True,
                    allow_import=True)
