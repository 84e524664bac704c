"""The whole flow on the full network: `cosim package` on the shipped checkpoint.

One package is built per test session (about 15 s); tests that corrupt it work
on copies.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_package import read_manifest, rewrite_file

from quant import cli, export
from quant.formats import MARKER_NAME, PackageError
from quant.model import mobilenet_v2_relu
from quant.package import load_package

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


@pytest.fixture()
def package_copy(package_dir, tmp_path) -> Path:
    copy = tmp_path / "package"
    shutil.copytree(package_dir, copy)
    return copy


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
