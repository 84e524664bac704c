"""quant.package: manifest validation, readers, consistency checks on a tiny package."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cosim.quant.formats import PackageError, sha256_file
from cosim.quant.package import (
    MANIFEST_NAME,
    OPS,
    Package,
    conv_kind,
    expected_shift,
    file_entry,
    load_package,
    manifest_qparams,
    po2_exponent,
    write_manifest,
)
from tiny_package import make_tiny_package, read_manifest, rewrite_file, tiny_weighted_layers

DW = "features.1.conv.0.0"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_tiny_package(tmp_path / "pkg")


def one_line_error(fn, *args) -> str:
    with pytest.raises(PackageError) as info:
        fn(*args)
    text = str(info.value)
    assert "\n" not in text
    return text


def edit_manifest(root: Path, change) -> Path:
    manifest = read_manifest(root)
    change(manifest)
    write_manifest(root / MANIFEST_NAME, manifest)
    return root / MANIFEST_NAME


def layer_of(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    return next(layer for layer in manifest["layers"] if layer["name"] == name)


# ---------------------------------------------------------------- a good package


def test_load_and_read_tiny_package(root: Path) -> None:
    pkg = load_package(root)
    assert isinstance(pkg, Package) and pkg.root == root
    assert [layer["name"] for layer in pkg.layers] == [
        "input", "features.0.0", DW, "add_0", "avgpool", "flatten", "classifier.1", "output"]
    assert [layer["name"] for layer in pkg.weighted_layers()] == [
        "features.0.0", DW, "classifier.1"]
    expected = tiny_weighted_layers()
    for name, p in expected.items():
        np.testing.assert_array_equal(pkg.weight_int8(name), p["weight"])
        np.testing.assert_array_equal(pkg.weight_hex(name), p["weight"])
        np.testing.assert_array_equal(pkg.bias_int16(name), pkg.bias_int16_hex(name))
        assert pkg.weight_float(name).dtype == np.float32
        np.testing.assert_array_equal(pkg.bias_float(name), p["bias"].astype(np.float32))
        assert pkg.bias_quant_float(name).shape == (p["weight"].shape[0],)
    assert pkg.bias_int16("features.0.0")[2] == 32767
    assert pkg.layer("features.0.0")["bias_saturated"] == 1
    assert pkg.shifts() == {"features.0.0": [8], DW: [6, 7, 8, -3], "classifier.1": [7]}
    assert pkg.shifts_hex() == pkg.shifts()
    assert pkg.qparams(DW) == {
        "scale": {"input": [2.0**-4], "weight": [2.0**-6, 2.0**-7, 2.0**-8, 8.0],
                  "output": [2.0**-4]},
        "zero_point": {"input": [0], "weight": [0, 0, 0, 0], "output": [0]},
    }
    assert pkg.qparams("add_0") == manifest_qparams(pkg.layer("add_0"))
    assert pkg.qparams("input") == {"scale": {"output": [2.0**-5]},
                                    "zero_point": {"output": [64]}}
    pkg.check_consistency()


def test_make_tiny_package_twice_replaces(root: Path) -> None:
    (root / "stale.txt").write_text("x")
    make_tiny_package(root)
    assert not (root / "stale.txt").exists()
    assert sorted(p.name for p in root.parent.iterdir()) == ["pkg"]
    load_package(root).check_consistency()


def test_unknown_layer_lookup(root: Path) -> None:
    pkg = load_package(root)
    assert one_line_error(pkg.layer, "nope") == f"{root / MANIFEST_NAME}: unknown layer 'nope'"
    assert one_line_error(pkg.weight_int8, "add_0") == (
        f"{root / MANIFEST_NAME}: layer 'add_0' is add, not conv2d or linear")
    assert one_line_error(pkg.qparams, "flatten") == (
        f"{root / MANIFEST_NAME}: layer 'flatten' (flatten) has no scale.txt/zero_point.txt")


def test_helpers() -> None:
    assert conv_kind([32, 3, 3, 3], 1) == "regular"
    assert conv_kind([32, 1, 3, 3], 32) == "depthwise"
    assert conv_kind([16, 32, 1, 1], 1) == "pointwise"
    assert po2_exponent(0.03125) == -5 and po2_exponent(8.0) == 3
    assert po2_exponent(0.03) is None and po2_exponent(0.0) is None
    assert expected_shift(2.0**-5, 2.0**-7, 2.0**-4) == 8
    assert expected_shift(2.0**-4, 8.0, 2.0**-4) == -3
    with pytest.raises(ValueError, match="w_scale 0.3 is not a power of two"):
        expected_shift(0.5, 0.3, 0.5)


# ---------------------------------------------------------------- manifest errors


def test_missing_package_and_manifest(tmp_path: Path) -> None:
    assert one_line_error(load_package, tmp_path / "none") == (
        f"{tmp_path / 'none'}: missing or not a directory; expected a package directory")
    assert one_line_error(load_package, tmp_path) == (
        f"{tmp_path / MANIFEST_NAME}: missing; expected the package manifest (JSON)")


def test_invalid_json_names_line(root: Path) -> None:
    (root / MANIFEST_NAME).write_text('{\n "format": "x",\n oops\n}\n')
    assert one_line_error(load_package, root) == (
        f"{root / MANIFEST_NAME}:3: invalid JSON: Expecting property name enclosed in double "
        "quotes (column 2)")


def test_wrong_format_and_version(root: Path) -> None:
    m = edit_manifest(root, lambda d: d.update(format_version=2))
    assert one_line_error(load_package, root) == (
        f"{m}: $.format_version: 2; expected 1")
    edit_manifest(root, lambda d: d.update(format="other", format_version=1))
    assert one_line_error(load_package, root) == (
        f'{m}: $.format: "other"; expected "cnn-cosim-parameter-package"')


def test_missing_top_level_key(root: Path) -> None:
    m = edit_manifest(root, lambda d: d.pop("calibration"))
    assert one_line_error(load_package, root).startswith(f'{m}: $: lacks "calibration"; ')


def test_missing_layer_key(root: Path) -> None:
    m = edit_manifest(root, lambda d: layer_of(d, DW).pop("weight_shape"))
    assert one_line_error(load_package, root).startswith(
        f'{m}: $.layers[2] ("{DW}"): lacks "weight_shape"; expected keys name, op, ')


def test_missing_file_role(root: Path) -> None:
    m = edit_manifest(root, lambda d: layer_of(d, DW)["files"].pop("weight_hex"))
    assert one_line_error(load_package, root).startswith(
        f'{m}: $.layers[2] ("{DW}").files: lacks "weight_hex"; expected keys ')
    edit_manifest(root, lambda d: d["files"].pop("scaling_factor_hex"))
    assert one_line_error(load_package, root) == (
        f'{m}: $.files: lacks "scaling_factor_hex"; expected keys scaling_factor_txt, '
        "scaling_factor_hex")


def test_unknown_op(root: Path) -> None:
    m = edit_manifest(root, lambda d: layer_of(d, "flatten").update(op="reshape"))
    assert one_line_error(load_package, root) == (
        f'{m}: $.layers[5] ("flatten").op: "reshape"; expected one of '
        + ", ".join(json.dumps(op) for op in OPS))
    assert OPS == ("quantize", "conv2d", "linear", "add", "cat", "max_pool2d", "avg_pool2d",
                   "adaptive_avg_pool2d", "relu", "relu6", "flatten", "dequantize")


def test_unknown_input_layer(root: Path) -> None:
    m = edit_manifest(root, lambda d: layer_of(d, "add_0").update(inputs=["features.0.0", "x"]))
    assert one_line_error(load_package, root) == (
        f'{m}: $.layers[3] ("add_0"): input \'x\' is not an earlier layer; inputs must name '
        "earlier layers")


def test_input_must_be_earlier(root: Path) -> None:
    m = edit_manifest(root, lambda d: layer_of(d, "features.0.0").update(inputs=["add_0"]))
    assert one_line_error(load_package, root) == (
        f'{m}: $.layers[1] ("features.0.0"): input \'add_0\' is not an earlier layer; inputs '
        "must name earlier layers")


def test_duplicate_layer_name(root: Path) -> None:
    m = edit_manifest(root, lambda d: layer_of(d, "flatten").update(name="avgpool"))
    assert one_line_error(load_package, root) == (
        f'{m}: $.layers[5] ("avgpool"): the name appears twice; layer names must be unique')


@pytest.mark.parametrize("bad", ["../outside.txt", "/etc/passwd", "layers/../../x.txt"])
def test_path_escaping_package(root: Path, bad: str) -> None:
    m = edit_manifest(root, lambda d: layer_of(d, DW)["files"]["weight_txt"].update(path=bad))
    assert one_line_error(load_package, root) == (
        f'{m}: $.layers[2] ("{DW}") file \'weight_txt\' path {bad!r} escapes the package or '
        "names a folder; expected a relative POSIX file path without '..'")


def test_path_escaping_through_symlink(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    os.symlink(outside, root / "link.txt")
    m = edit_manifest(root, lambda d: d["files"].update(
        reference_model={"path": "link.txt", "sha256": sha256_file(outside)}))
    assert one_line_error(load_package, root) == (
        f"{m}: package file 'reference_model' path 'link.txt' escapes the package (through a "
        "link)")


def test_type_checks(root: Path) -> None:
    m = edit_manifest(root, lambda d: layer_of(d, DW).update(kind="regular"))
    assert one_line_error(load_package, root) == (
        f'{m}: $.layers[2] ("{DW}"): kind \'regular\'; expected \'depthwise\' for weight_shape '
        "[4, 1, 3, 3] and groups 4")
    make_tiny_package(root)
    edit_manifest(root, lambda d: layer_of(d, DW).update(shift=3))
    assert one_line_error(load_package, root) == (
        f'{m}: $.layers[2] ("{DW}"): shift 3; expected a list of 4 values '
        "(per_channel_symmetric)")
    make_tiny_package(root)
    edit_manifest(root, lambda d: layer_of(d, "classifier.1").update(bias_shape=[4]))
    assert one_line_error(load_package, root) == (
        f'{m}: $.layers[6] ("classifier.1"): bias_shape [4]; expected [3] (one bias per '
        "output channel)")
    make_tiny_package(root)
    edit_manifest(root, lambda d: layer_of(d, "input")["output"].update(scale=-1))
    assert one_line_error(load_package, root) == (
        f'{m}: $.layers[0] ("input").output.scale: -1 is out of range; expected a value > 0')


def test_missing_data_file(root: Path) -> None:
    path = root / "layers" / DW / "weight.hex"
    path.unlink()
    assert one_line_error(load_package, root) == (
        f"{path}: missing; expected the file listed in manifest.json as layer '{DW}' file "
        "'weight_hex'")


def test_sha256_mismatch(root: Path) -> None:
    path = root / "layers" / DW / "weight.hex"
    before = sha256_file(path)
    path.write_text(path.read_text() + "00\n")
    after = sha256_file(path)
    assert one_line_error(load_package, root) == (
        f"{path}: sha256 mismatch: manifest says {before[:12]}…, file is {after[:12]}…")


# ---------------------------------------------------------------- file errors through Package


def test_truncated_weight_txt_through_package(root: Path) -> None:
    rel = f"layers/{DW}/weight.txt"
    lines = (root / rel).read_text().splitlines()
    path = rewrite_file(root, rel, ("\n".join(lines[:-1]) + "\n").encode())
    pkg = load_package(root)
    assert one_line_error(pkg.weight_int8, DW) == f"{path}:36: expected 36 values, found 35"


def test_non_hex_through_package(root: Path) -> None:
    rel = "layers/classifier.1/bias_int16.hex"
    path = rewrite_file(root, rel, b"0001\n00zz\n0003\n")
    pkg = load_package(root)
    assert one_line_error(pkg.bias_int16_hex, "classifier.1") == (
        f"{path}:2: '00zz' is not a 4-digit hex value")


def test_unknown_layer_in_scaling_factor_txt(root: Path) -> None:
    path = rewrite_file(root, "scaling_factor.txt",
                        f"features.0.0 8\nfeatures.7.0 1\n{DW} 6 7 8 -3\nclassifier.1 7\n".encode())
    pkg = load_package(root)
    assert one_line_error(pkg.shifts) == (
        f"{path}:2: unknown layer 'features.7.0'; expected '{DW}'")


def test_scaling_factor_txt_count_from_manifest(root: Path) -> None:
    path = rewrite_file(root, "scaling_factor.txt",
                        f"features.0.0 8\n{DW} 6 7 8\nclassifier.1 7\n".encode())
    pkg = load_package(root)
    assert one_line_error(pkg.shifts) == f"{path}:2: layer '{DW}' has 3 shifts, expected 4"


def test_scaling_factor_hex_truncated(root: Path) -> None:
    path = rewrite_file(root, "scaling_factor.hex", b"08\n06\n07\n08\nfd\n")
    pkg = load_package(root)
    assert one_line_error(pkg.shifts_hex) == f"{path}:5: expected 6 values, found 5"


# ---------------------------------------------------------------- check_consistency


def test_weight_txt_hex_disagreement(root: Path) -> None:
    rel = f"layers/{DW}/weight.hex"
    lines = (root / rel).read_text().splitlines()
    lines[4] = "%02x" % ((int(lines[4], 16) + 1) % 256)
    path = rewrite_file(root, rel, ("\n".join(lines) + "\n").encode())
    pkg = load_package(root)
    txt = root / "layers" / DW / "weight.txt"
    w = tiny_weighted_layers()[DW]["weight"].ravel()
    wrong = int(np.int8(np.uint8((int(w[4]) + 1) % 256)))
    assert one_line_error(pkg.check_consistency) == (
        f"{txt}:6: value {int(w[4])} disagrees with {path}:5, which decodes to {wrong}")


def test_bias_txt_hex_disagreement(root: Path) -> None:
    rel = "layers/classifier.1/bias_int16.hex"
    lines = (root / rel).read_text().splitlines()
    lines[2] = "7777"
    path = rewrite_file(root, rel, ("\n".join(lines) + "\n").encode())
    txt = root / "layers" / "classifier.1" / "bias_int16.txt"
    got = load_package(root).bias_int16("classifier.1")[2]
    assert one_line_error(load_package(root).check_consistency) == (
        f"{txt}:4: value {got} disagrees with {path}:3, which decodes to {0x7777}")


def test_bias_rule_disagreement(root: Path) -> None:
    rel = "layers/classifier.1/bias.txt"
    lines = (root / rel).read_text().splitlines()
    lines[1] = "100"  # 100 / (2^-3 * 2^-6) = 51200 saturates to 32767
    rewrite_file(root, rel, ("\n".join(lines) + "\n").encode())
    txt = root / "layers" / "classifier.1" / "bias_int16.txt"
    got = load_package(root).bias_int16("classifier.1")[0]
    assert one_line_error(load_package(root).check_consistency) == (
        f"{txt}:2: bias_int16 {got} != round_half_even(bias / (x_scale * w_scale)) saturated = "
        f"32767, from {root / rel}:2")


def test_qparams_file_disagrees_with_manifest(root: Path) -> None:
    rel = "layers/add_0/scale.txt"
    path = rewrite_file(root, rel, b"input0 0.0625\ninput1 0.0625\noutput 0.25\n")
    assert one_line_error(load_package(root).check_consistency) == (
        f"{path}:3: output scale [0.25] disagrees with manifest.json [0.125]")
    make_tiny_package(root)
    rel = f"layers/{DW}/zero_point.txt"
    path = rewrite_file(root, rel, b"output 0\ninput 0\nweight 0 0 5 0\n")
    assert one_line_error(load_package(root).check_consistency) == (
        f"{path}:3: weight zero_point [0, 0, 5, 0] disagrees with manifest.json [0, 0, 0, 0]")


def test_manifest_shift_rule(root: Path) -> None:
    m = edit_manifest(root, lambda d: layer_of(d, DW).update(shift=[6, 7, 9, -3]))
    assert one_line_error(load_package, root) == (
        f'{m}: $.layers[2] ("{DW}") channel 2: shift 9 != log2(y_scale / (x_scale * w_scale)) '
        "= log2(0.0625 / (0.0625 * 0.00390625)) = 8")


def test_manifest_scale_not_po2(root: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        layer_of(d, "classifier.1")["weight"]["scale"] = 0.015
    m = edit_manifest(root, change)
    assert one_line_error(load_package, root) == (
        f'{m}: $.layers[6] ("classifier.1").weight.scale: 0.015 is not a power of two; '
        "expected 2**e with e in [-128, 127]")


def test_scaling_factor_files_disagree_with_manifest(root: Path) -> None:
    path = rewrite_file(root, "scaling_factor.txt",
                        f"features.0.0 8\n{DW} 6 7 8 3\nclassifier.1 7\n".encode())
    assert one_line_error(load_package(root).check_consistency) == (
        f"{path}:2: layer '{DW}' shifts [6, 7, 8, 3] disagree with manifest.json shift "
        "[6, 7, 8, -3]")
    make_tiny_package(root)
    path = rewrite_file(root, "scaling_factor.hex", b"08\n06\n07\n08\n03\n07\n")
    assert one_line_error(load_package(root).check_consistency) == (
        f"{path}:5: shift 3 (layer '{DW}', channel 3) disagrees with manifest.json shift -3")


# ---------------------------------------------------------------- writing


def test_write_manifest_is_sorted_and_converts_numpy(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    write_manifest(path, {"b": np.int64(3), "a": [np.float32(0.5)], "c": np.arange(2)})
    assert path.read_text() == '{\n "a": [\n  0.5\n ],\n "b": 3,\n "c": [\n  0,\n  1\n ]\n}\n'
    with pytest.raises(ValueError):
        write_manifest(path, {"x": float("nan")})
    assert json.loads(path.read_text())["b"] == 3  # the failed write left the old file
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_file_entry(tmp_path: Path) -> None:
    (tmp_path / "layers").mkdir()
    f = tmp_path / "layers" / "w.hex"
    f.write_text("00\n")
    want = {"path": "layers/w.hex", "sha256": sha256_file(f)}
    assert file_entry(tmp_path, f) == want
    assert file_entry(tmp_path, "layers/w.hex") == want
    with pytest.raises(ValueError, match="outside the package"):
        file_entry(tmp_path / "layers", tmp_path / "x")
