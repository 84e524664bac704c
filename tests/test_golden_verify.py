"""The golden model on the whole network: every layer equals PyTorch on real images.

One full MobileNetV2-ReLU package is built per session (64 calibration images,
about 6 s); verification runs on a few images for speed (the CLI's defaults use
54 + 4).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from cosim.golden.infer import IntegerModel, _build_layer
from cosim.golden.verify import LAYER_FIELDS, torch_activations, verify_golden
from cosim.quant import fx_quant
from cosim.quant.choices import SHIPPED_CHECKPOINT
from cosim.quant.data import DataConfig, build_dataset
from cosim.quant.graph import describe
from cosim.quant.package import load_package
from cosim.quant.pipeline import run_export, run_quantize
from cosim.quant.ptq import QuantConfig

from cosim import cli_golden_verify

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory):
    result = run_quantize(SHIPPED_CHECKPOINT, QuantConfig(calibration_images=64), quiet=True)
    out = tmp_path_factory.mktemp("golden") / "package"
    run_export(result, out)
    return out


@pytest.fixture(scope="module")
def package(package_dir):
    return load_package(package_dir)


def images(count: int, size: int = 32) -> np.ndarray:
    dataset = build_dataset(DataConfig(image_size=size), "test")
    return np.stack([dataset[i][0].numpy() for i in range(count)])


def test_every_layer_equals_pytorch_at_both_sizes(package):
    report = verify_golden(package, images=6, images_224=1)
    names = [layer["name"] for layer in package.layers]
    assert [layer["name"] for layer in report["layers"]] == names
    assert [layer["op"] for layer in report["layers"]] == [layer["op"] for layer in package.layers]
    for layer in report["layers"]:
        assert tuple(layer) == LAYER_FIELDS
        assert layer["elements"] > 0
        assert layer["identical_fraction"] == 1.0, layer
        assert layer["max_abs_diff"] == 0
    assert report["identical"] and report["reference_identical"]
    assert (report["images"], report["images_224"], report["rounding"]) == (7, 1, "half_even")
    assert report["top1_agreement"] == 100.0
    json.dumps(report)  # JSON-serializable as written by the CLI


def test_checker_catches_one_changed_weight(package):
    golden = IntegerModel.from_package(package)
    name = "features.2.conv.0.0"
    weight = golden.weight(name)
    weight[3, 5, 0, 0] += 1 if weight[3, 5, 0, 0] < 64 else -1
    golden.set_weight(name, weight)
    report = verify_golden(package, images=3, images_224=0, golden=golden)
    fractions = {layer["name"]: layer["identical_fraction"] for layer in report["layers"]}
    names = [layer["name"] for layer in report["layers"]]
    position = names.index(name)
    assert all(fractions[n] == 1.0 for n in names[:position])
    assert fractions[name] < 1.0
    assert not report["identical"] and report["reference_identical"]


def test_half_up_reports_differing_fractions(package):
    report = verify_golden(package, images=4, images_224=0, rounding="half-up")
    assert report["rounding"] == "half_up" and not report["float32_step"]
    layers = {layer["name"]: layer for layer in report["layers"]}
    for layer in layers.values():
        assert layer["differing_fraction"] == pytest.approx(1.0 - layer["identical_fraction"])
        assert 0.0 <= layer["differing_fraction_isolated"] <= 1.0
    assert layers["input"]["differing_fraction"] == 0.0
    weighted = [layer for layer in layers.values() if layer["op"] == "conv2d"]
    assert any(layer["differing_fraction_isolated"] > 0 for layer in weighted)
    assert max(layer["differing_fraction_isolated"] for layer in weighted) < 0.05
    assert max(layer["max_abs_diff"] for layer in weighted) >= 1


def test_run_returns_every_layer_in_pytorch_layout(package):
    golden = IntegerModel.from_package(package)
    x = images(2)
    out = golden.run(x)
    assert list(out) == [layer["name"] for layer in package.layers] == golden.names
    for layer in package.layers:
        value = out[layer["name"]]
        if layer["op"] == "dequantize":
            assert value.dtype == np.float32 and value.shape == (2, 10)
        else:
            assert value.dtype == np.uint8
    assert out["input"].shape == (2, 3, 32, 32)
    assert out["features.0.0"].shape == (2, 32, 16, 16)
    assert out["flatten"].shape == (2, 1280) and out["classifier.1"].shape == (2, 10)
    classifier = package.layer("classifier.1")["output"]
    expected = (out["classifier.1"].astype(np.float32) - classifier["zero_point"]) \
        * np.float32(classifier["scale"])
    np.testing.assert_array_equal(out["output"], expected)
    np.testing.assert_array_equal(golden.logits(x), out["output"])
    big = golden.run(images(1, 224))
    assert big["features.18.0"].shape == (1, 1280, 7, 7) and big["avgpool"].shape[2:] == (1, 1)


def test_cli_writes_verify_json_and_prints_the_table(package_dir, tmp_path, capsys):
    status = cli_golden_verify.main(["--package", str(package_dir), "--out", str(tmp_path / "g"),
                              "--images", "2", "--images-224", "0", "-q"])
    printed = capsys.readouterr().out
    assert status == 0
    report = json.loads((tmp_path / "g" / "verify.json").read_text())
    assert report["images"] == 2 and report["identical"]
    assert "features.17.conv.2" in printed and "all 67 layers identical" in printed
    assert not list((tmp_path / "g").glob(".verify.json.tmp-*"))


def test_cli_half_up_reports_and_exits_zero(package_dir, tmp_path, capsys):
    status = cli_golden_verify.main(["--package", str(package_dir), "--out", str(tmp_path),
                              "--images", "1", "--images-224", "0", "--rounding", "half-up",
                              "-q"])
    assert status == 0
    assert "differing" in capsys.readouterr().out
    assert "differing_fraction" in json.loads((tmp_path / "verify.json").read_text())["layers"][1]


def test_cli_rounding_defaults_to_the_accelerator_files(package_dir, tmp_path):
    """--accel FILE: its datapath.rounding is the default; --rounding still wins."""
    text = (tmp_path / "src.toml")
    from cosim.golden.accelerator import SHIPPED_ACCELERATORS

    text.write_text(SHIPPED_ACCELERATORS["default"].read_text()
                    .replace('rounding = "half_even"', 'rounding = "half_up"'))
    for extra, want in (([], "half_up"), (["--rounding", "half-even"], "half_even")):
        out = tmp_path / want / "g"
        status = cli_golden_verify.main(["--package", str(package_dir), "--out", str(out),
                                         "--images", "1", "--images-224", "0", "-q",
                                         "--accel", str(text), *extra])
        assert status == 0
        assert json.loads((out / "verify.json").read_text())["rounding"] == want
    assert "rounding = \"half_up\"" in text.read_text()  # the replacement really happened


def test_cli_exit_status_one_when_a_layer_differs(package_dir, tmp_path, monkeypatch, capsys):
    import cosim.golden.verify

    real = cosim.golden.verify.verify_golden

    def broken(*args, **kwargs):
        report = real(*args, **kwargs)
        report["layers"][5]["identical_fraction"] = 0.5
        report["identical"] = False
        return report

    # cli_golden_verify imports verify_golden when it runs
    monkeypatch.setattr(cosim.golden.verify, "verify_golden", broken)
    status = cli_golden_verify.main(["--package", str(package_dir), "--out", str(tmp_path),
                              "--images", "1", "--images-224", "0", "-q"])
    assert status == 1
    assert "1 layer(s) differ" in capsys.readouterr().out


def test_cli_user_errors(tmp_path, capsys):
    assert cli_golden_verify.main(["--package", str(tmp_path / "missing"), "-q"]) == 2
    assert "error:" in capsys.readouterr().err
    assert cli_golden_verify.main(["--package", str(tmp_path), "--images", "0",
                                   "--images-224", "0"]) == 2
    with pytest.raises(SystemExit):
        cli_golden_verify.main(["--images", "-3"])


def test_register_adds_the_subcommand():
    parser = argparse.ArgumentParser(prog="cosim")
    cli_golden_verify.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["golden-verify", "--rounding", "half-up", "--images-224", "0"])
    assert args.handler is cli_golden_verify.run
    assert (args.rounding, args.images, args.images_224) == ("half-up", 54, 0)


# --- every issue-9 op inside a converted FX model ------------------------------------------


class AllOps(nn.Module):
    """Every op of the manifest format once, in the memory formats FX models run them: an
    average pool on the NCHW input quantize, then channels-last tensors after conv1."""

    def __init__(self) -> None:
        super().__init__()
        self.pool0 = nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.mp = nn.MaxPool2d(3, 2, 1)
        self.act = nn.ReLU()
        self.grouped = nn.Conv2d(8, 8, 7, padding=3, groups=2)
        self.r6 = nn.ReLU6()
        self.dw = nn.Conv2d(16, 16, 3, padding=(1, 2), dilation=(1, 2), groups=16)
        self.pw = nn.Conv2d(16, 16, 1)
        self.aap = nn.AdaptiveAvgPool2d((2, 3))
        self.fc = nn.Linear(16 * 6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool0(x)
        x = self.relu1(self.conv1(x))
        x = self.act(self.mp(x))
        y = self.r6(self.grouped(x))
        z = torch.cat([x, y], 1)
        z = F.max_pool2d(z, 2, ceil_mode=True)
        z = F.avg_pool2d(z, 3, 1, 1, count_include_pad=False)
        z = self.pw(self.dw(z)) + z
        z = F.relu6(F.relu(z))
        z = self.aap(z)
        return self.fc(torch.flatten(z, 1))


class DescribedPackage:
    """The parts of a Package the golden layer builder reads, taken from describe()'s
    nodes of a converted model (no files): qparams per role, int8 weights, int16 biases."""

    manifest_path = "<described model>"

    def __init__(self, nodes: list[dict]) -> None:
        self.nodes = {node["name"]: node for node in nodes}

    def qparams(self, name: str) -> dict:
        node = self.nodes[name]
        roles: dict[str, Any] = {"output": node["output"]}
        if node["op"] in ("conv2d", "linear"):
            roles["input"] = node["input"]
            weight = node["module"].weight()
            scales = (weight.q_per_channel_scales().tolist()
                      if weight.qscheme() == torch.per_channel_symmetric else [weight.q_scale()])
            roles["weight"] = {"scale": scales, "zero_point": [0] * len(scales)}
        elif node["op"] in ("add", "cat"):
            roles |= {f"input{i}": q for i, q in enumerate(node["input"])}
        return {key: {role: list(np.atleast_1d(q[key]).tolist()) for role, q in roles.items()}
                for key in ("scale", "zero_point")}

    def weight_int8(self, name: str) -> np.ndarray:
        return self.nodes[name]["module"].weight().int_repr().numpy().astype(np.int64)

    def bias_int16(self, name: str) -> np.ndarray:
        return snap_bias(self.nodes[name])


def snap_bias(node: dict) -> np.ndarray:
    """int16 bias of a weighted node; the module then carries bias_int16 * x_s * w_s (the
    exporter's snapping), so that PyTorch and an integer datapath agree."""
    module = node["module"]
    weight = module.weight()
    w_scales = (weight.q_per_channel_scales().numpy()
                if weight.qscheme() == torch.per_channel_symmetric
                else np.full(weight.shape[0], weight.q_scale()))
    unit = node["input"]["scale"] * w_scales
    bias = module.bias().detach().numpy().astype(np.float64)
    integers = np.clip(np.rint(bias / unit), -32768, 32767).astype(np.int64)
    module.set_weight_bias(weight, torch.from_numpy((integers * unit).astype(np.float32)))
    return integers


@pytest.fixture(scope="module")
def all_ops_model():
    torch.manual_seed(0)
    model = AllOps().eval()
    images = torch.randn(6, 3, 20, 20) * 1.3 + 0.11  # an odd input zero point (tie rule)
    qconfig = fx_quant.po2_qconfig("minmax", (-64, 64), per_channel=False)
    prepared = fx_quant.prepare(model, qconfig, images)
    prepared(images)
    converted = fx_quant.convert(prepared)
    nodes = describe(converted)
    package = DescribedPackage(nodes)
    outputs: dict = {}
    formats: dict = {}
    layers = [_build_layer(package, {k: v for k, v in node.items() if k != "module"}, outputs,
                           "half_even", True, formats) for node in nodes]  # snaps the biases
    return converted, IntegerModel(layers, "half_even", True), nodes, images


@pytest.mark.filterwarnings("ignore:All inputs of this cat operator")
def test_every_new_op_in_a_converted_model_equals_pytorch(all_ops_model):
    """golden-verify's FX-node mapping and the golden ops on what an FX model runs: every
    layer of a model with every issue-9 op, recorded node by node, equals the golden model."""
    converted, golden, nodes, images = all_ops_model
    ops = {node["op"] for node in nodes}
    assert ops >= {"quantize", "avg_pool2d", "conv2d", "max_pool2d", "relu", "relu6", "cat",
                   "add", "adaptive_avg_pool2d", "flatten", "linear", "dequantize"}
    assert {node.get("kind") for node in nodes} >= {"regular", "grouped", "depthwise",
                                                   "pointwise"}
    assert nodes[0]["output"]["zero_point"] % 2 == 1  # NCHW avg pool: zp added before rne
    cat = next(node for node in nodes if node["op"] == "cat")
    assert cat["input"][0] != cat["input"][1]  # the cat requantizes its second input
    with fx_quant.quiet():
        expected = torch_activations(converted, images)
    assert list(expected) == golden.names == [node["name"] for node in nodes]
    got = golden.run(images.numpy())
    for name in golden.names:
        assert got[name].shape == expected[name].shape, name
        differ = np.count_nonzero(got[name] != expected[name])
        assert differ == 0, f"{name} ({golden.op(name)}): {differ} values differ"


@pytest.mark.filterwarnings("ignore:All inputs of this cat operator")
def test_all_ops_checker_catches_the_wrong_pool_kernel(all_ops_model):
    """The same comparison fails when the first pool uses the channels-last kernel on the
    NCHW input (ties with an odd zero point round the other way)."""
    converted, golden, nodes, images = all_ops_model
    pool = golden._layer("pool0")
    with fx_quant.quiet():
        expected = torch_activations(converted, images)["pool0"]
    pool.channels_last = True
    try:
        assert np.count_nonzero(golden.run(images.numpy())["pool0"] != expected) > 0
    finally:
        pool.channels_last = False
