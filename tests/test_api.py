"""cosim.api, the Python entry for notebooks: the same flow as the command line."""

from __future__ import annotations

import json

import pytest
import torch.nn as nn
from cosim.quant.choices import SHIPPED_CHECKPOINTS
from cosim.quant.data import DataConfig
from cosim.quant.errors import UserError
from cosim.quant.ptq import QuantConfig

from cosim import api

DIGITS = DataConfig("digits", image_size=32)
FAST = QuantConfig(calibration_images=64)


def test_checkpoint_to_golden_verify_through_the_api(tmp_path):
    result = api.quantize(SHIPPED_CHECKPOINTS["small_cnn"], config=FAST)
    assert result.checkpoint_info["arch"] == "small_cnn"
    assert 0.0 <= result.int8_top1 <= 100.0
    manifest = api.export(result, tmp_path / "package")
    assert manifest["model"]["arch"] == "small_cnn"
    assert (tmp_path / "package" / "manifest.json").is_file()
    check = api.verify(tmp_path / "package", images=16)
    assert check.identical_fraction == 1.0
    golden = api.golden(tmp_path / "package", tmp_path / "golden")
    layout = json.loads((golden / "layout.json").read_text())
    assert len(layout["layers"]) == manifest["model"]["weighted_layers"]
    report = api.golden_verify(tmp_path / "package", images=8)
    assert report["identical"] and report["images"] == 8


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        x = self.pool(nn.functional.relu(self.bn(self.conv(x))))
        return self.fc(x.view(x.size(0), -1))


def test_a_module_in_memory_is_quantized_and_recorded_by_its_class(tmp_path):
    result = api.quantize(Tiny().eval(), data=DIGITS, config=FAST)
    assert result.checkpoint_info["arch"] == f"{Tiny.__module__}:Tiny"
    manifest = api.export(result, tmp_path / "package")
    ops = [layer["op"] for layer in manifest["layers"]]
    assert ops == ["quantize", "conv2d", "max_pool2d", "flatten", "linear", "dequantize"]
    assert api.verify(tmp_path / "package", images=8).identical_fraction == 1.0


def test_api_mistakes_are_user_errors():
    with pytest.raises(UserError, match="name the data"):
        api.quantize(Tiny())
    with pytest.raises(UserError, match="model_kwargs needs model"):
        api.quantize(SHIPPED_CHECKPOINTS["small_cnn"], model_kwargs={"num_classes": 10})
    with pytest.raises(UserError, match="records model small_cnn"):
        api.quantize(SHIPPED_CHECKPOINTS["small_cnn"], model="resnet18")
