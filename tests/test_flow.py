"""The whole flow on the full network: `cosim package` on the shipped checkpoint.

One package is built per test session (about 15 s); tests that corrupt it work
on copies.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from cosim.quant import export
from cosim.quant.formats import MARKER_NAME, PackageError
from cosim.quant.model import mobilenet_v2_relu
from cosim.quant.package import load_package
from tiny_package import read_manifest, rewrite_file

from cosim import cli

pytestmark = pytest.mark.slow

CALIBRATION_IMAGES = 512
REBUILD_IMAGES = 54


def expected_weight_count() -> tuple[int, int]:
    """(weighted layers, weights) counted from the float model itself."""
    import torch.nn as nn

    layers = [m for m in mobilenet_v2_relu().modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return len(layers), sum(m.weight.numel() for m in layers)


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("flow") / "package"
    status = cli.main(["package", "--out", str(out), "--images", str(REBUILD_IMAGES), "-q",
                       "--calibration-images", str(CALIBRATION_IMAGES)])
    assert status == 0
    return out


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    status = cli.main(args)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# --- manifest and files ------------------------------------------------------------------


def test_manifest_lists_every_weighted_layer_of_the_full_network(package_dir):
    manifest = json.loads((package_dir / "manifest.json").read_text())
    weighted = [layer for layer in manifest["layers"] if layer["op"] in ("conv2d", "linear")]
    layers, weights = expected_weight_count()
    assert len(weighted) == layers == 53
    assert sum(math.prod(layer["weight_shape"]) for layer in weighted) == weights == 2_202_560
    kinds = [layer["kind"] for layer in weighted]
    assert kinds.count("depthwise") == 17 and kinds.count("linear") == 1
    ops = [layer["op"] for layer in manifest["layers"]]
    assert ops[0] == "quantize" and ops[-1] == "dequantize"
    assert {"add", "adaptive_avg_pool2d", "flatten"} <= set(ops)


def test_every_manifest_file_exists_and_matches_its_sha256(package_dir):
    manifest = json.loads((package_dir / "manifest.json").read_text())
    entries = list(manifest["files"].values())
    for layer in manifest["layers"]:
        entries += list(layer["files"].values())
    assert len(entries) > 53 * 9
    for entry in entries:
        data = (package_dir / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
    listed = {entry["path"] for entry in entries}
    on_disk = {path.relative_to(package_dir).as_posix() for path in package_dir.rglob("*")
               if path.is_file()} - {"manifest.json", "report.json", MARKER_NAME}
    assert on_disk == listed, "files on disk that the manifest does not list, or the reverse"


def test_weighted_layer_entries_carry_what_the_hardware_needs(package_dir):
    package = load_package(package_dir)
    for layer in package.weighted_layers():
        for key in ("name", "op", "weight_shape", "input", "weight", "output", "shift",
                    "bias_saturated", "relu", "files"):
            assert key in layer, (layer["name"], key)
        if layer["op"] == "conv2d":
            assert {"stride", "padding", "groups", "dilation"} <= set(layer)
        x, w, y = layer["input"]["scale"], layer["weight"]["scale"], layer["output"]["scale"]
        assert 2.0 ** layer["shift"] == y / (x * w)
        assert layer["weight"]["zero_point"] == 0


def test_package_is_internally_consistent(package_dir):
    package = load_package(package_dir)
    package.check_consistency()  # txt == hex, qparams == manifest, shifts, bias rule
    low, high = package.weighted_layers()[0]["weight"]["range"]
    for layer in package.weighted_layers():
        weights = package.weight_int8(layer["name"])
        assert weights.min() >= low and weights.max() <= high, layer["name"]


def test_scaling_factor_files_list_every_weighted_layer_in_order(package_dir):
    package = load_package(package_dir)
    names = [layer["name"] for layer in package.weighted_layers()]
    shifts = package.shifts()
    assert list(shifts) == names
    assert package.shifts_hex() == shifts


# --- accuracy and rebuild ------------------------------------------------------------------


def test_report_int8_top1_within_one_point_of_float(package_dir):
    report = json.loads((package_dir / "report.json").read_text())
    assert report["float_top1"] > 90.0, "the shipped checkpoint should classify digits"
    assert report["float_top1"] - report["int8_top1"] <= 1.0


def test_rebuild_from_files_equals_reference_on_real_images(package_dir):
    report = json.loads((package_dir / "report.json").read_text())
    rebuild = report["rebuild"]
    assert rebuild["images"] >= 50
    assert rebuild["elements"] == rebuild["images"] * 10
    assert rebuild["identical_elements"] == rebuild["elements"]
    assert report["rebuild_identical_fraction"] == 1.0
    assert rebuild["top1_rebuilt"] == rebuild["top1_reference"]


def test_rebuild_check_catches_a_changed_weight(package_copy, capsys):
    """Check of the checker: one flipped weight in the files makes verify fail."""
    rel = "params_quant_linear/classifier.1/weight.txt"
    lines = (package_copy / rel).read_text().splitlines()
    values = np.array([int(v) for v in lines[1:]])
    index = int(np.argmax(np.abs(values)))
    lines[1 + index] = str(-values[index])
    rewrite_file(package_copy, rel, ("\n".join(lines) + "\n").encode())
    hex_rel = "params_quant_linear/classifier.1/weight.hex"
    hex_lines = (package_copy / hex_rel).read_text().splitlines()
    hex_lines[index] = f"{(-values[index]) & 0xFF:02x}"
    rewrite_file(package_copy, hex_rel, ("\n".join(hex_lines) + "\n").encode())
    status, out, _ = run_cli(["verify", "--package", str(package_copy), "--images", "54", "-q"],
                             capsys)
    report = json.loads((package_copy / "report.json").read_text())
    assert status == 1
    assert report["rebuild"]["identical_fraction"] < 1.0


def test_quantize_then_export_reproduces_the_package(package_dir, tmp_path, capsys):
    """The two-step CLI path writes the same files as `package` (deterministic PTQ)."""
    quantized = tmp_path / "quantized.pt"
    out = tmp_path / "package"
    status, _, _ = run_cli(["quantize", "--out", str(quantized), "-q",
                            "--calibration-images", str(CALIBRATION_IMAGES)], capsys)
    assert status == 0
    status, _, _ = run_cli(["export", "--quantized", str(quantized), "--out", str(out)], capsys)
    assert status == 0
    first, second = read_manifest(package_dir), read_manifest(out)
    for a, b in zip(first["layers"], second["layers"], strict=True):
        assert a == b, a["name"]


# --- bad input: one line naming file and line, non-zero exit ----------------------------


def assert_one_line_error(status: int, err: str, *fragments: str) -> None:
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cosim: error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in err


LAYER = "features.2.conv.1.0"
WEIGHT_TXT = f"params_quant_linear/{LAYER}/weight.txt"
WEIGHT_HEX = f"params_quant_linear/{LAYER}/weight.hex"


def _edit_lines(path: Path, edit) -> bytes:
    lines = path.read_text().splitlines()
    edit(lines)
    return ("\n".join(lines) + "\n").encode()


def _verify(package: Path, capsys) -> tuple[int, str, str]:
    return run_cli(["verify", "--package", str(package), "--images", "2", "-q"], capsys)


def test_missing_file(package_copy, capsys):
    (package_copy / WEIGHT_HEX).unlink()
    status, _, err = _verify(package_copy, capsys)
    assert_one_line_error(status, err, WEIGHT_HEX, "missing")


def test_sha256_mismatch(package_copy, capsys):
    path = package_copy / WEIGHT_TXT
    path.write_text(path.read_text().replace("\n1\n", "\n2\n", 1))
    status, _, err = _verify(package_copy, capsys)
    assert_one_line_error(status, err, WEIGHT_TXT, "sha256")


def test_truncated_hex_file(package_copy, capsys):
    data = (package_copy / WEIGHT_HEX).read_bytes()
    rewrite_file(package_copy, WEIGHT_HEX, data[: len(data) // 2 - 1])
    status, _, err = _verify(package_copy, capsys)
    assert_one_line_error(status, err, WEIGHT_HEX)
    assert ":" in err.split(WEIGHT_HEX, 1)[1][:2], "the error names a line"


def test_wrong_value_count(package_copy, capsys):
    rewrite_file(package_copy, WEIGHT_TXT,
                 _edit_lines(package_copy / WEIGHT_TXT, lambda lines: lines.pop()))
    status, _, err = _verify(package_copy, capsys)
    assert_one_line_error(status, err, WEIGHT_TXT, "expected")


def test_non_hex_digit(package_copy, capsys):
    def edit(lines):
        lines[6] = "zz"

    rewrite_file(package_copy, WEIGHT_HEX, _edit_lines(package_copy / WEIGHT_HEX, edit))
    status, _, err = _verify(package_copy, capsys)
    assert_one_line_error(status, err, f"{WEIGHT_HEX}:7:", "'zz'")


def test_out_of_range_value(package_copy, capsys):
    def edit(lines):
        lines[4] = "300"

    rewrite_file(package_copy, WEIGHT_TXT, _edit_lines(package_copy / WEIGHT_TXT, edit))
    status, _, err = _verify(package_copy, capsys)
    assert_one_line_error(status, err, f"{WEIGHT_TXT}:5:", "300", "int8")


def test_wrong_shape_header(package_copy, capsys):
    def edit(lines):
        lines[0] = lines[0] + "0"

    rewrite_file(package_copy, WEIGHT_TXT, _edit_lines(package_copy / WEIGHT_TXT, edit))
    status, _, err = _verify(package_copy, capsys)
    assert_one_line_error(status, err, f"{WEIGHT_TXT}:1:", "shape")


def test_unknown_layer_in_scaling_factor(package_copy, capsys):
    rel = "params_quant_linear/scaling_factor.txt"

    def edit(lines):
        lines[3] = "features.99.conv " + lines[3].split()[1]

    rewrite_file(package_copy, rel, _edit_lines(package_copy / rel, edit))
    status, _, err = _verify(package_copy, capsys)
    assert_one_line_error(status, err, f"{rel}:4:", "features.99.conv")


def test_unknown_layer_in_manifest(package_copy, capsys):
    manifest = read_manifest(package_copy)
    for layer in manifest["layers"]:
        if layer["name"] == LAYER:
            layer["name"] = "features.2.conv.9"
        layer["inputs"] = ["features.2.conv.9" if name == LAYER else name
                           for name in layer["inputs"]]
    (package_copy / "manifest.json").write_text(json.dumps(manifest))
    rel = "params_quant_linear/scaling_factor.txt"
    text = (package_copy / rel).read_text().replace(LAYER + " ", "features.2.conv.9 ")
    rewrite_file(package_copy, rel, text.encode())
    status, _, err = _verify(package_copy, capsys)
    assert_one_line_error(status, err, "manifest.json", "'features.2.conv.9'",
                          "reference has 'features.2.conv.1.0'")


def test_txt_and_hex_disagree(package_copy, capsys):
    def edit(lines):
        lines[0] = f"{(int(lines[0], 16) + 1) & 0x7F:02x}"

    rewrite_file(package_copy, WEIGHT_HEX, _edit_lines(package_copy / WEIGHT_HEX, edit))
    status, _, err = _verify(package_copy, capsys)
    assert_one_line_error(status, err, WEIGHT_HEX)


def test_missing_package_and_bad_checkpoint(tmp_path, capsys):
    status, _, err = _verify(tmp_path / "nowhere", capsys)
    assert_one_line_error(status, err, "nowhere")
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    status, _, err = run_cli(["quantize", "--checkpoint", str(bogus), "-q"], capsys)
    assert_one_line_error(status, err, "bogus.pt")


def test_failed_export_leaves_no_half_written_package(package_dir, tmp_path, monkeypatch,
                                                      capsys):
    """An export that dies midway leaves the previous package untouched and no temp dir."""
    quantized = tmp_path / "quantized.pt"
    assert run_cli(["quantize", "--out", str(quantized), "-q", "--calibration-images", "16"],
                   capsys)[0] == 0
    out = tmp_path / "package"
    shutil.copytree(package_dir, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls = {"count": 0}
    real_write_hex = export.write_hex

    def failing_write_hex(path, values, bits):
        calls["count"] += 1
        if calls["count"] == 20:
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        real_write_hex(path, values, bits)

    monkeypatch.setattr(export, "write_hex", failing_write_hex)
    assert cli.main(["export", "--quantized", str(quantized), "--out", str(out)]) == 2
    assert capsys.readouterr().err.count("simulated") == 1
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["package", "quantized.pt"]
    fresh = tmp_path / "fresh"
    calls["count"] = 0
    assert cli.main(["export", "--quantized", str(quantized), "--out", str(fresh)]) == 2
    assert not fresh.exists()
    with pytest.raises(PackageError):
        load_package(fresh)


# --- CLI smoke --------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["train", "quantize", "export", "verify", "package"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: cosim " + command in capsys.readouterr().out


def test_unknown_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["frobnicate"])
    assert exit_info.value.code == 2


# --- any network: a custom CNN with every op, no model code importable ------------------

#: The arch the every-op package records: a factory whose module does not exist, so
#: anything that tried to import the architecture's code would fail.
USER_FACTORY = "cosim_no_such_module.nets:every_op"
EVERY_OP_IMAGES = 64


def _quantize_every_op(per_channel: bool = False):
    from cosim.quant.data import DataConfig
    from cosim.quant.pipeline import QuantResult
    from cosim.quant.ptq import QuantConfig, quantize_model
    from tiny_package import every_op_net

    data = DataConfig(image_size=32)
    config = QuantConfig(method="minmax", calibration_images=64, per_channel=per_channel)
    folded, reference, details = quantize_model(every_op_net(), data, config, quiet=True)
    info = {"arch": USER_FACTORY, "kwargs": {"num_classes": 10}, "num_classes": 10,
            "path": "every_op.pt", "sha256": None}
    return QuantResult(folded, reference, details, data, config, info, 0.0, 0.0, 0.0)


@pytest.fixture(scope="module")
def every_op(tmp_path_factory) -> tuple:
    """(in-memory quantize result, the result saved and loaded, package dir)."""
    from cosim.quant.pipeline import load_quant_result, run_export, save_quant_result

    root = tmp_path_factory.mktemp("every_op")
    result = _quantize_every_op()
    save_quant_result(result, root / "quantized.safetensors")
    loaded = load_quant_result(root / "quantized.safetensors")
    run_export(loaded, root / "package")
    return result, loaded, root / "package"


def _int_codes(model, images):
    import torch
    from cosim.quant import fx_quant
    from cosim.quant.graph import describe

    output = describe(model)[-1]
    with torch.no_grad(), fx_quant.quiet():
        logits = model(images)
    return torch.round(logits.double() / output["input"]["scale"]).long()


def _images(count: int = 16):
    import torch
    from cosim.quant.data import DataConfig, build_dataset

    test = build_dataset(DataConfig(image_size=32), "test")
    real = torch.stack([test[i][0] for i in range(count)])
    noise = torch.randn(count, 3, 32, 32, generator=torch.Generator().manual_seed(5)) * 2
    return torch.cat([real, noise])


def test_every_op_package_holds_every_op_and_conv_kind(every_op):
    import sys

    from cosim.quant.graph import OPS

    manifest = read_manifest(every_op[2])
    layers = manifest["layers"]
    assert {layer["op"] for layer in layers} == set(OPS)
    kinds = {layer["kind"] for layer in layers if "kind" in layer}
    assert kinds == {"regular", "depthwise", "grouped", "pointwise", "linear"}
    stem = layers[1]
    assert stem["weight_shape"][2:] == [7, 7] and stem["stride"] == [2, 2]
    pools = {layer["name"]: layer for layer in layers if layer["op"].endswith("pool2d")}
    assert pools["pool"]["kernel_size"] == [3, 3] and pools["max_pool2d"]["ceil_mode"] is True
    assert pools["avg"]["ceil_mode"] is True
    assert pools["avg_pool2d"]["count_include_pad"] is False
    assert pools["head_pool"]["output_size"] == [2, 2]
    cat = next(layer for layer in layers if layer["op"] == "cat")
    assert set(cat["files"]) == {"scale_txt", "zero_point_txt"} and len(cat["inputs"]) == 2
    assert manifest["model"]["arch"] == USER_FACTORY
    assert manifest["model"]["kwargs"] == {"num_classes": 10}
    assert "width_mult" not in manifest["model"]
    assert "cosim_no_such_module" not in sys.modules


def test_every_op_quantize_result_loads_without_model_code(every_op):
    result, loaded, _ = every_op
    images = _images()
    expected, got = _int_codes(result.reference, images), _int_codes(loaded.reference, images)
    assert expected.unique().numel() > 5, "outputs should not be constant"
    assert (expected == got).all()
    modules = dict(loaded.folded.named_modules())
    for name, module in result.folded.named_modules():
        if name in result.details["bias_float"]:
            assert (module.weight == modules[name].weight).all(), name


def test_every_op_package_checks_rebuilds_and_verifies(every_op, capsys):
    from cosim.quant.package import load_checked_package
    from cosim.quant.verify import check_rebuild

    package = load_checked_package(every_op[2])
    assert any("not a built-in architecture" in note for note in package.notes)
    check = check_rebuild(package, images=EVERY_OP_IMAGES, quiet=True)
    assert check.images == EVERY_OP_IMAGES and check.identical_fraction == 1.0
    status, _, err = run_cli(["verify", "--package", str(every_op[2]), "--images", "8", "-q"],
                             capsys)
    assert status == 0, err


def test_every_op_golden_model_equals_pytorch_on_every_layer(every_op):
    from cosim.golden.verify import verify_golden

    report = verify_golden(every_op[2], images=16, images_224=0)
    assert report["reference_identical"] is True
    assert {layer["op"] for layer in report["layers"]} >= {"cat", "max_pool2d", "avg_pool2d"}
    for layer in report["layers"]:
        assert layer["identical_fraction"] == 1.0, layer


@pytest.mark.parametrize("per_channel", [False, True])
def test_qgraph_of_the_node_list_is_the_converted_model(per_channel):
    """describe(qgraph.build(nodes)) gives the nodes back, and with the converted
    model's numbers it computes exactly what convert_fx's model computes."""
    from cosim.quant import qgraph
    from cosim.quant.graph import describe, layer_of_fx_node, structure

    result = _quantize_every_op(per_channel)
    nodes = describe(result.reference)
    layers = [structure(node) for node in nodes]
    built = qgraph.build(layers)
    assert [structure(node) for node in describe(built)] == layers
    assert sorted(layer_of_fx_node(describe(built)).values()) == sorted(
        layer["name"] for layer in layers)
    qgraph.transfer(built, layers, result.reference)
    images = _images()
    assert (_int_codes(built, images) == _int_codes(result.reference, images)).all()
    # check of the checker: one weight changed changes the outputs
    module = built.get_submodule("fc")
    weight = module.weight()
    flipped = weight.int_repr().clone()
    flipped[0] = -flipped[0]
    import torch

    if per_channel:
        changed = torch._make_per_channel_quantized_tensor(
            flipped, weight.q_per_channel_scales(), weight.q_per_channel_zero_points(), 0)
    else:
        changed = torch._make_per_tensor_quantized_tensor(flipped, weight.q_scale(), 0)
    module.set_weight_bias(changed, module.bias())
    assert not (_int_codes(built, images) == _int_codes(result.reference, images)).all()


def _converted(body, **modules):
    """convert_fx of a module with `modules` and forward `body(self, x)` (calibrated on noise),
    without quant.float_graph's normalization: the converted graph PyTorch makes."""
    import torch
    import torch.nn as nn
    from cosim.quant import fx_quant

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            for name, module in modules.items():
                setattr(self, name, module)

        def forward(self, x):
            return body(self, x)

    torch.manual_seed(0)
    example = torch.randn(2, 3, 8, 8)
    prepared = fx_quant.prepare(Net().eval(), fx_quant.po2_qconfig("minmax", (-64, 64), False),
                                example)
    prepared(example)
    return fx_quant.convert(prepared)


def _describe_error(model) -> str:
    from cosim.quant.graph import GraphError, describe

    with pytest.raises(GraphError) as info:
        describe(model)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_unsupported_graph_nodes_give_one_line_naming_node_and_op():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from cosim.quant.graph import SUPPORTED

    # on a quantized tensor (PyTorch quantizes a sigmoid between two convs)
    sig = _converted(lambda self, x: self.conv2(self.sig(self.conv(x))), sig=nn.Sigmoid(),
                     conv2=nn.Conv2d(4, 4, 1))
    assert _describe_error(sig) == (f"graph node 'sig' (call_module Sigmoid) is not a "
                                    f"supported op; supported: {SUPPORTED}")
    # left in float at the end of the network
    last = _converted(lambda self, x: self.sig(self.conv(x)), sig=nn.Sigmoid())
    assert _describe_error(last) == (
        "graph node 'sig' (call_module Sigmoid) runs in float after a dequantize (PyTorch left "
        f"it unquantized): it is not a supported op; supported: {SUPPORTED}")
    # PyTorch leaves x.flatten(1) in float between a dequantize and a quantize
    floated = _converted(lambda self, x: self.fc(self.conv(x).flatten(1)),
                         fc=nn.Linear(4 * 8 * 8, 3))
    assert _describe_error(floated).startswith(
        "graph node 'flatten' (call_method flatten) runs in float after a dequantize")
    clamp = _converted(lambda self, x: F.hardtanh(self.conv(x), -1.0, 1.0))
    assert "clamps to [-1.0, 1.0]; only hardtanh(0, 6) (relu6) is supported" in \
        _describe_error(clamp)
    twice = _converted(lambda self, x: self.conv2(self.conv2(self.conv(x))),
                       conv2=nn.Conv2d(4, 4, 1))
    assert "a module must be called once" in _describe_error(twice)
    along_h = _converted(lambda self, x: torch.cat([self.conv(x)] * 2, 2))
    assert "along dim 2; expected dim 1" in _describe_error(along_h)
    scaled = _converted(lambda self, x: self.conv2(self.conv(x) * 3), conv2=nn.Conv2d(4, 4, 1))
    assert re.fullmatch(r"graph node 'mul(_[0-9]+)?' \(call_function mul\) is not a supported "
                        r"op; supported: .*", _describe_error(scaled))


def test_describe_names_are_unique_and_stable():
    import torch.nn as nn
    import torch.nn.functional as F
    from cosim.quant.graph import describe

    def forward(self, x):
        x = self.act(self.pool(self.conv(x)))
        x = self.act(F.max_pool2d(x, 2))
        return F.adaptive_avg_pool2d(F.adaptive_avg_pool2d(x, 2), 1)

    model = _converted(forward, pool=nn.MaxPool2d(2), act=nn.ReLU())
    names = [node["name"] for node in describe(model)]
    assert names == ["input", "conv", "pool", "act", "max_pool2d", "act_1", "avgpool",
                     "avgpool_1", "output"]
    assert names == [node["name"] for node in describe(model)]
