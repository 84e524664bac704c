"""One validation layer: every bad input of issue 8 is one line and exit 2, and no edit of a
package that `verify` would reject reaches a stream or an image.

Through `cosim.cli.main` (the entry point of the `cosim` command), on the tiny package
(fast) and on one real MobileNetV2 package built per module (`cosim package`, slow).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cosim.golden.layout import Layout, read_layout_json
from cosim.quant.formats import PackageError, read_int_txt, read_regular_file, sha256_file
from cosim.quant.package import MANIFEST_NAME, load_checked_package, load_package, write_manifest
from cosim.quant.schema import (
    CHECKPOINT_SCHEMA,
    MANIFEST_SCHEMA,
    REPORT_SCHEMA,
    parse_json,
    validate,
)
from tiny_package import make_tiny_package, read_manifest, rewrite_file

from cosim import cli

DW = "features.1.conv.0.0"


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block takes longer than `seconds`."""
    def expire(signum, frame):  # noqa: ARG001
        raise TimeoutError(f"no answer within {seconds} s (a hang)")
    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """cosim.cli.main(argv) with a deadline; (status, stdout, stderr)."""
    capsys.readouterr()
    with deadline(120):
        try:
            status = cli.main(argv)
        except SystemExit as exit_:
            status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def assert_user_error(status: int, err: str, *names: str) -> str:
    """Exit 2, exactly one line `cosim: error: ...` naming every one of `names`."""
    assert status == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cosim: error: "), err
    assert "Traceback" not in err
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return make_tiny_package(tmp_path / "pkg")


def layer_of(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    return next(layer for layer in manifest["layers"] if layer["name"] == name)


def edit(root: Path, change: Callable[[dict[str, Any]], Any]) -> Path:
    manifest = read_manifest(root)
    change(manifest)
    write_manifest(root / MANIFEST_NAME, manifest)
    return root / MANIFEST_NAME


# ---------------------------------------------------------------- special files and paths


def test_good_package_checks(tiny: Path, capsys) -> None:
    status, out, err = run(["check", "--package", str(tiny)], capsys)
    assert status == 0 and err == "" and "valid" in out


@pytest.mark.parametrize("kind", ["directory", "fifo", "dev_zero", "dangling", "dev_null_dir"])
def test_manifest_special_files(tiny: Path, capsys, kind: str) -> None:
    manifest = tiny / MANIFEST_NAME
    manifest.unlink()
    if kind == "directory":
        manifest.mkdir()
    elif kind == "fifo":
        os.mkfifo(manifest)
    elif kind == "dev_zero":
        manifest.symlink_to("/dev/zero")
    elif kind == "dangling":
        manifest.symlink_to(tiny / "nowhere")
    else:
        manifest.symlink_to("/dev/null")
    status, _, err = run(["check", "--package", str(tiny)], capsys)
    line = assert_user_error(status, err, str(manifest))
    want = {"directory": "is a directory", "fifo": "is a FIFO", "dev_zero": "character device",
            "dangling": "missing", "dev_null_dir": "character device"}[kind]
    assert want in line


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "directory"])
def test_data_file_special_files(tiny: Path, capsys, kind: str) -> None:
    target = tiny / "layers" / DW / "weight.txt"
    target.unlink()
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "dev_zero":
        target.symlink_to("/dev/zero")
    else:
        target.mkdir()
    status, _, err = run(["check", "--package", str(tiny)], capsys)
    assert_user_error(status, err, "weight")  # the file, or the manifest entry's link


def test_reader_refuses_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with deadline(10), pytest.raises(PackageError, match="is a FIFO"):
        read_regular_file(fifo, "a file")
    with deadline(10), pytest.raises(PackageError, match="is a FIFO"):
        sha256_file(fifo)


@pytest.mark.parametrize("path", [".", "pkg\0x", "a" * 300, "x/" + "b" * 300 + "/c"])
def test_bad_package_paths(tmp_path: Path, capsys, monkeypatch, path: str) -> None:
    monkeypatch.chdir(tmp_path)
    status, _, err = run(["check", "--package", path], capsys)
    line = assert_user_error(status, err)
    assert "\0" not in line


def test_file_larger_than_its_bound_is_refused_before_reading(tiny: Path) -> None:
    weight = tiny / "layers" / DW / "weight.txt"
    with open(weight, "ab") as f:
        f.truncate(10 << 20)  # sparse: 10 MB the reader must not read
    with pytest.raises(PackageError, match="bytes; expected at most"):
        read_int_txt(weight, (4, 1, 3, 3), -128, 127)


# ---------------------------------------------------------------- numbers and JSON bounds


@pytest.mark.parametrize("digits,where,want", [
    (5000, "", "bytes; expected at most"), (30, ":4", "30 characters"),
    (19, ":4", "out of int8 range")])
def test_huge_integer_in_an_int_file(tiny: Path, capsys, digits: int, where: str,
                                     want: str) -> None:
    rel = f"layers/{DW}/weight.txt"
    lines = (tiny / rel).read_bytes().split(b"\n")
    lines[3] = b"9" * digits
    path = rewrite_file(tiny, rel, b"\n".join(lines))
    status, _, err = run(["check", "--package", str(tiny)], capsys)
    line = assert_user_error(status, err, f"{path}{where}")
    assert want in line


@pytest.mark.parametrize("rel,text", [
    ("layers/add_0/scale.txt", b"input0 " + b"1" * 400 + b"\ninput1 0.0625\noutput 0.125\n"),
    ("layers/add_0/zero_point.txt", b"input0 " + b"7" * 5000 + b"\ninput1 0\noutput 0\n"),
    ("scaling_factor.txt", b"features.0.0 " + b"8" * 5000 + b"\n"),
    (f"layers/{DW}/weight_float.txt", b"shape: 4 1 3 3\n" + b"1" * 400 + b"\n"),
    (f"layers/{DW}/weight_float.txt", b"shape: " + b"4" * 5000 + b" 1 3 3\n"),
])
def test_huge_numbers_in_txt_files(tiny: Path, capsys, rel: str, text: bytes) -> None:
    path = rewrite_file(tiny, rel, text)
    status, _, err = run(["check", "--package", str(tiny)], capsys)
    assert_user_error(status, err, str(path))


@pytest.mark.parametrize("text,want", [
    ("[" * 100_000 + "]" * 100_000, "nested 100000 levels"),
    ('{"a": ' + "1" * 5000 + "}", "5000 characters"),
    ('{"a": 1' + "0" * 400 + ".5}", "characters"),
    ('{"a": NaN}', "not JSON"),
    ('{"a": 1e999}', "float64 range"),
    ('{"a": 1, "a": 2}', "appears twice"),
    ("\ufeff{}", None),
    ('{"a": "\\ud800"}', None),
])
def test_bounded_json(tmp_path: Path, text: str, want: str | None) -> None:
    data = text.encode("utf-8", "surrogatepass")
    if want is None:
        parse_json(data, tmp_path / "x.json")  # legal JSON: no exception
        return
    with pytest.raises(PackageError) as info:
        parse_json(data, tmp_path / "x.json")
    assert want in str(info.value) and "\n" not in str(info.value)


def test_invalid_utf8_names_line(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"x.json:2: is not UTF-8"):
        parse_json(b'{\n"a": "\xff"}', tmp_path / "x.json")


@pytest.mark.parametrize("change,where", [
    (lambda d: d.update(format_version=2), "$.format_version: 2; expected 1"),
    (lambda d: d.update(format_version="1"), "$.format_version"),
    (lambda d: d.update(surprise=1), 'unknown key "surprise"'),
    (lambda d: layer_of(d, "features.0.0").update(stride=["2", 2]), ".stride[0]"),
    (lambda d: layer_of(d, "features.0.0").update(stride=[2.0, 2]), "expected an integer"),
    (lambda d: layer_of(d, "features.0.0").update(stride=[True, 2]), "expected an integer"),
    (lambda d: layer_of(d, "features.0.0").update(stride=[10**9, 2]), "[1, 16]"),
    (lambda d: layer_of(d, "features.0.0").update(padding=[-1, 1]), ".padding[0]"),
    (lambda d: layer_of(d, "features.0.0").update(dilation=[0, 1]), ".dilation[0]"),
    (lambda d: layer_of(d, "features.0.0").update(relu="yes"), ".relu"),
    (lambda d: layer_of(d, "features.0.0").pop("groups"), 'lacks "groups"'),
    (lambda d: layer_of(d, "features.0.0")["output"].update(zero_point=256), "zero_point"),
    (lambda d: layer_of(d, "features.0.0")["output"].update(scale=0.1), "not a power of two"),
    (lambda d: layer_of(d, "features.0.0")["output"].update(scale=2.0**-200),
     "not a power of two"),
    (lambda d: layer_of(d, "features.0.0").update(shift=200), ".shift"),
    (lambda d: layer_of(d, "features.0.0")["files"].update(extra=d["files"]["scaling_factor_txt"]),
     'unknown key "extra"'),
    (lambda d: d.update(layers="x"), "$.layers"),
    (lambda d: d["layers"].append(5), "$.layers[8]"),
    (lambda d: layer_of(d, "add_0").update(input=[{"scale": 0.0625, "zero_point": 0}]),
     ".input"),
])
def test_manifest_schema_errors(tiny: Path, capsys, change, where: str) -> None:
    manifest = edit(tiny, change)
    status, _, err = run(["check", "--package", str(tiny)], capsys)
    line = assert_user_error(status, err, str(manifest))
    assert where in line


@pytest.mark.parametrize("change,where", [
    # an input zero point edited in the manifest and in zero_point.txt alike: the layer
    # still reads what its producer wrote
    (lambda d: layer_of(d, "features.0.0")["input"].update(zero_point=65), "zero_point"),
    (lambda d: layer_of(d, "add_0")["input"][1].update(scale=0.125), "input[1] qparams"),
    (lambda d: layer_of(d, "avgpool")["output"].update(zero_point=3), "keeps the scale"),
    (lambda d: layer_of(d, DW).update(groups=2), "groups 2"),
    (lambda d: layer_of(d, DW).update(weight_shape=[4, 2, 3, 3], groups=1, kind="regular"),
     "takes 2 input channels"),
    (lambda d: layer_of(d, "classifier.1").update(weight_shape=[3, 5]), "takes 5 features"),
    (lambda d: layer_of(d, "classifier.1").update(inputs=["avgpool"]), "expected a flatten"),
    (lambda d: d["model"].update(num_classes=5), "num_classes"),
    (lambda d: (d["model"].update(input_shape=[3, 2, 2]),
                layer_of(d, "features.0.0").update(padding=[0, 0])), "output of size 0"),
    (lambda d: d["model"].update(input_shape=[1, 8, 8]), "takes 3 input channels"),
    (lambda d: d["model"].update(weighted_layers=4), "weighted_layers"),
])
def test_manifest_semantic_errors(tiny: Path, capsys, change, where: str) -> None:
    manifest = edit(tiny, change)
    if where == "zero_point":  # the per-layer file edited the same way
        rewrite_file(tiny, "layers/features.0.0/zero_point.txt",
                     b"input 65\nweight 0\noutput 0\n")
    status, _, err = run(["check", "--package", str(tiny)], capsys)
    line = assert_user_error(status, err, str(manifest))
    assert where in line


def test_params_float_is_parsed(tiny: Path, capsys) -> None:
    rel = "layers/classifier.1/bias_float.txt"
    path = rewrite_file(tiny, rel, b"shape: 3\n0.5\nnan\n0.25\n")
    status, _, err = run(["check", "--package", str(tiny)], capsys)
    assert_user_error(status, err, f"{path}:3")
    path = rewrite_file(tiny, rel, b"shape: 4\n0.5\n1\n0.25\n2\n")
    status, _, err = run(["check", "--package", str(tiny)], capsys)
    assert_user_error(status, err, f"{path}:1", "expected 3")


def test_golden_refuses_what_check_refuses_and_writes_nothing(tiny: Path, tmp_path: Path,
                                                             capsys) -> None:
    # the scaling_factor files edited too: only the shift rule can catch it
    edit(tiny, lambda d: layer_of(d, "features.0.0").update(shift=9))
    out = tmp_path / "golden"
    status, _, err = run(["golden", "--package", str(tiny), "--out", str(out)], capsys)
    assert_user_error(status, err, "shift 9")
    assert not out.exists()


def test_schemas_are_valid_draft_2020_12() -> None:
    from cosim.golden.layout import LAYOUT_SCHEMA
    from jsonschema import Draft202012Validator

    for schema in (MANIFEST_SCHEMA, REPORT_SCHEMA, CHECKPOINT_SCHEMA, LAYOUT_SCHEMA):
        Draft202012Validator.check_schema(schema)
        assert schema["additionalProperties"] is False


def test_schema_check_of_the_checker(tiny: Path) -> None:
    """The validator really runs: the good manifest passes, and removing any one
    required key of any layer is refused."""
    manifest = read_manifest(tiny)
    validate(manifest, MANIFEST_SCHEMA, "m")
    refused = 0
    for i, layer in enumerate(manifest["layers"]):
        for key in layer:
            broken = json.loads(json.dumps(manifest))
            broken["layers"][i].pop(key)
            with pytest.raises(PackageError):
                try:
                    validate(broken, MANIFEST_SCHEMA, "m")
                except PackageError:
                    refused += 1
                    raise
                # an optional key: the semantic rules must then refuse, or it is optional
                if key in ("input", "output", "start_dim"):
                    raise PackageError("m", "optional")
    assert refused > 40


# ---------------------------------------------------------------- layout.json


def test_layout_json_round_trip_and_errors(tiny: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "golden"
    status, _, err = run(["golden", "--package", str(tiny), "--out", str(out), "--no-plot"],
                         capsys)
    assert status == 0, err
    layout, table = read_layout_json(out / "layout.json")
    assert layout.table() == {k: v for k, v in table.items() if k not in ("stream", "package")}
    assert layout.layers == Layout.from_package(load_package(tiny)).layers
    status, out_text, err = run(["check", "--package", str(tiny), "--layout",
                                 str(out / "layout.json")], capsys)
    assert status == 0 and "depth" in out_text, err
    for change, want in [
        (lambda t: t.update(depth=t["depth"] + 1), "$.depth"),
        (lambda t: t["segments"][2].update(base=7), "$.segments[2]"),
        (lambda t: t["config"].update(word_bits=96), "word_bits"),
        (lambda t: t.update(depth=-1), "$.depth"),
        (lambda t: t["stream"].update(words=1), "$.stream"),
        (lambda t: t.update(extra=True), 'unknown key "extra"'),
    ]:
        broken = json.loads(json.dumps(table))
        change(broken)
        path = tmp_path / "layout.json"
        path.write_text(json.dumps(broken))
        status, _, err = run(["check", "--package", str(tiny), "--layout", str(path)], capsys)
        line = assert_user_error(status, err, str(path))
        assert want in line


# ---------------------------------------------------------------- report.json


def test_report_json_is_checked_before_the_long_verify(tiny: Path, monkeypatch) -> None:
    from cosim.quant import pipeline

    def never(*args, **kwargs):
        raise AssertionError("the rebuild ran before report.json was checked")

    monkeypatch.setattr(pipeline, "check_rebuild", never)
    for text in ("{not json", json.dumps({"float_top1": "high"}), json.dumps({"x": 1}), "[]"):
        (tiny / "report.json").write_text(text)
        with pytest.raises(PackageError) as info:
            pipeline.run_verify(tiny, 1)
        assert str(tiny / "report.json") in str(info.value)


def test_report_json_written_is_valid_and_non_finite_becomes_null(tmp_path: Path) -> None:
    from cosim.quant.pipeline import read_report, write_report
    from cosim.quant.verify import RebuildCheck

    fields = RebuildCheck.__dataclass_fields__
    values = {"images": 1, "elements": 10, "identical_elements": 10, "top1_reference": 100.0,
              "top1_rebuilt": 100.0, "top1_agreement": math.nan}
    check = RebuildCheck(**{k: v for k, v in values.items() if k in fields})
    report = write_report(tmp_path, None, check, {"export_seconds": 0.5})
    assert read_report(tmp_path) == report
    validate(report, REPORT_SCHEMA, tmp_path / "report.json")
    assert math.isfinite(report["rebuild_identical_fraction"])


# ---------------------------------------------------------------- checkpoint metadata


def test_checkpoint_metadata_schema() -> None:
    from cosim.quant.train import CHECKPOINT_FORMAT, CHECKPOINT_VERSION

    good = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "arch": "mobilenet_v2_relu", "num_classes": 10, "width_mult": 1.0,
            "data": {"name": "digits", "root": None, "image_size": 32, "download": False,
                     "imagenette_size": "160px"},
            "test_top1": 99.0, "torch_version": "2", "state_dict": {}}
    validate(good, CHECKPOINT_SCHEMA, "ckpt")
    for change in (lambda d: d.pop("num_classes"), lambda d: d.update(num_classes=0),
                   lambda d: d.update(num_classes=10.0), lambda d: d.update(width_mult=-1),
                   lambda d: d.update(version=2), lambda d: d.update(extra=1),
                   lambda d: d["data"].update(image_size="32"),
                   lambda d: d.update(arch="resnet")):
        broken = json.loads(json.dumps(good))
        change(broken)
        with pytest.raises(PackageError):
            validate(broken, CHECKPOINT_SCHEMA, "ckpt")


# ---------------------------------------------------------------- the real network


@pytest.fixture(scope="module")
def real_package(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("real") / "package"
    status = cli.main(["package", "--out", str(out), "--images", "2", "-q",
                       "--calibration-images", "64"])
    assert status == 0
    return out


@pytest.fixture
def real(real_package: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "package"
    shutil.copytree(real_package, copy, symlinks=True)
    return copy


REAL_EDITS = {
    "relu": lambda d: layer_of(d, "features.1.conv.0.0").update(relu=False),
    "padding": lambda d: layer_of(d, "features.0.0").update(padding=[0, 0]),
    "stride": lambda d: layer_of(d, "features.0.0").update(stride=[1, 1]),
    "stride_huge": lambda d: layer_of(d, "features.0.0").update(stride=[10**9, 2]),
    "dilation": lambda d: layer_of(d, "features.1.conv.0.0").update(dilation=[2, 2]),
    "num_classes": lambda d: d["model"].update(num_classes=9),
    "width_mult": lambda d: d["model"].update(width_mult=0.5),
    "add_relu": lambda d: next(x for x in d["layers"] if x["op"] == "add").update(relu=True),
    "kwargs_width_mult": lambda d: (d["model"]["kwargs"].update(width_mult=0.5),
                                    d["model"].update(width_mult=0.5)),
}


@pytest.mark.slow
@pytest.mark.parametrize("what", sorted(REAL_EDITS))
def test_real_package_structure_edits_are_refused_everywhere(real: Path, tmp_path: Path,
                                                             capsys, what: str) -> None:
    manifest = edit(real, REAL_EDITS[what])
    for argv in (["check", "--package", str(real)],
                 ["golden", "--package", str(real), "--out", str(tmp_path / "g"), "--no-plot"],
                 ["golden-verify", "--package", str(real), "--out", str(tmp_path / "v"),
                  "--images", "1", "--images-224", "0", "-q"]):
        status, _, err = run(argv, capsys)
        assert_user_error(status, err, str(manifest))
    assert not (tmp_path / "g").exists() and not (tmp_path / "v").exists()


@pytest.mark.slow
def test_real_package_input_zero_point_in_manifest_and_file(real: Path, capsys) -> None:
    def change(d: dict[str, Any]) -> None:
        layer_of(d, "features.0.0")["input"]["zero_point"] += 1
    manifest = edit(real, change)
    zp = read_manifest(real)["layers"][1]["input"]["zero_point"]
    rel = "params_quant_linear/features.0.0/zero_point.txt"
    lines = (real / rel).read_text().splitlines()
    lines = [f"input {zp}" if line.startswith("input ") else line for line in lines]
    rewrite_file(real, rel, ("\n".join(lines) + "\n").encode())
    status, _, err = run(["check", "--package", str(real)], capsys)
    assert_user_error(status, err, str(manifest), "input layer 'input'")


@pytest.mark.slow
def test_real_package_shift_edit_is_refused_by_golden_and_golden_verify(real: Path,
                                                                        tmp_path: Path,
                                                                        capsys) -> None:
    first = read_manifest(real)["layers"][1]
    edit(real, lambda d: layer_of(d, first["name"]).update(shift=first["shift"] + 1))
    for argv in (["golden", "--package", str(real), "--out", str(tmp_path / "g")],
                 ["golden-verify", "--package", str(real), "--out", str(tmp_path / "v"),
                  "--images", "1", "--images-224", "0", "-q"]):
        status, _, err = run(argv, capsys)
        assert_user_error(status, err, f"shift {first['shift'] + 1}")
    assert not (tmp_path / "g").exists() and not (tmp_path / "v").exists()


@pytest.mark.slow
def test_real_package_is_valid(real_package: Path) -> None:
    package = load_checked_package(real_package)
    assert package.manifest["model"]["arch"] == "mobilenet_v2_relu"


# ---------------------------------------------------------------- the issue-9 ops' fields

#: The arch of the every-op package: a user factory whose module does not exist.
EVERY_OP_ARCH = "cosim_no_such_module.nets:every_op"


@pytest.fixture(scope="module")
def every_op_package(tmp_path_factory) -> Path:
    """A package of tiny_package.every_op_net (every issue-9 op), quantized and exported."""
    from cosim.quant.data import DataConfig
    from cosim.quant.pipeline import QuantResult, run_export
    from cosim.quant.ptq import QuantConfig, quantize_model
    from tiny_package import every_op_net

    data = DataConfig(image_size=32)
    config = QuantConfig(method="minmax", calibration_images=32)
    folded, reference, details = quantize_model(every_op_net(), data, config, quiet=True)
    info = {"arch": EVERY_OP_ARCH, "kwargs": {"num_classes": 10}, "num_classes": 10}
    result = QuantResult(folded, reference, details, data, config, info, 0.0, 0.0, 0.0)
    out = tmp_path_factory.mktemp("every_op") / "package"
    run_export(result, out)
    return out


def _set(name: str, **fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: layer_of(d, name).update(fields)


def _drop(name: str, key: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: layer_of(d, name).pop(key)


def _qparam(name: str, key: str, change: Callable[[Any], Any],
            index: int | None = None) -> Callable[[dict[str, Any]], None]:
    def apply(d: dict[str, Any]) -> None:
        q = layer_of(d, name)[key]
        q = q[index] if index is not None else q
        q["zero_point"] = change(q["zero_point"])
    return apply


def _cat_from_stem(d: dict[str, Any]) -> None:
    """cat's second input from the 16x16 stem instead of the 8x8 grouped conv (qparams
    kept consistent, so only the H x W rule is left to refuse it)."""
    cat = layer_of(d, "cat")
    cat["inputs"][1] = "stem.0"
    cat["input"][1] = dict(layer_of(d, "stem.0")["output"])


#: Every field of a new op, corrupted one at a time: (edit, fragment of the one line).
OP_EDITS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "max_kernel_zero": (_set("pool", kernel_size=[0, 3]), "kernel_size[0]: 0 is out of range"),
    "max_kernel_huge": (_set("pool", kernel_size=[3, 65]), "kernel_size[1]: 65 is out of range"),
    "max_kernel_one_item": (_set("pool", kernel_size=[3]), "a list of 1 items; expected 2"),
    "max_kernel_text": (_set("pool", kernel_size="3"), "expected a list"),
    "max_stride_zero": (_set("pool", stride=[0, 2]), "stride[0]: 0 is out of range"),
    "max_padding_negative": (_set("pool", padding=[-1, 1]), "padding[0]: -1 is out of range"),
    "max_padding_over_half": (_set("pool", padding=[2, 2]),
                              "expected padding at most half the window"),
    "max_dilation_zero": (_set("pool", dilation=[1, 0]), "dilation[1]: 0 is out of range"),
    "max_ceil_mode_int": (_set("pool", ceil_mode=1), "expected true or false"),
    "max_unknown_key": (_set("pool", groups=1), "unknown key \"groups\""),
    "max_missing_stride": (_drop("pool", "stride"), "lacks \"stride\""),
    "max_window_larger_than_input": (_set("max_pool2d", kernel_size=[16, 16]),
                                     "expected at least 1"),
    "max_output_qparams": (_qparam("pool", "output", lambda z: z + 1),
                           "max_pool2d keeps the scale and zero point"),
    "max_input_qparams": (_qparam("pool", "input", lambda z: z + 1),
                          "of its input layer 'stem.0'; expected equal"),
    "avg_divisor_zero": (_set("avg", divisor_override=0), "divisor_override"),
    "avg_divisor_float": (_set("avg", divisor_override=2.5), "divisor_override"),
    "avg_count_include_pad_text": (_set("avg_pool2d", count_include_pad="no"),
                                   "count_include_pad"),
    "avg_padding_over_half": (_set("avg", padding=[0, 2]),
                              "expected padding at most half the window"),
    "avg_has_dilation": (_set("avg", dilation=[1, 1]), "unknown key \"dilation\""),
    "avg_missing_ceil_mode": (_drop("avg_pool2d", "ceil_mode"), "lacks \"ceil_mode\""),
    "avg_output_qparams": (_qparam("avg_pool2d", "output", lambda z: z + 1),
                           "avg_pool2d keeps the scale and zero point"),
    "adaptive_zero": (_set("head_pool", output_size=[0, 2]), "output_size[0]: 0 is out of range"),
    "adaptive_one_item": (_set("head_pool", output_size=[2]), "a list of 1 items"),
    "adaptive_changes_the_features": (_set("head_pool", output_size=[3, 3]),
                                      "takes 64 features (weight_shape[1])"),
    "relu_output_qparams": (_qparam("relu", "output", lambda z: z + 1),
                            "relu keeps the scale and zero point"),
    "relu_input_qparams": (_qparam("relu", "input", lambda z: z + 1),
                           "of its input layer 'pool'; expected equal"),
    "relu_two_inputs": (_set("relu", inputs=["pool", "stem.0"]), "a list of 2 items"),
    "relu6_unknown_key": (_set("hardtanh", min_val=0), "unknown key \"min_val\""),
    "relu6_output_qparams": (_qparam("dw_act", "output", lambda z: z + 1),
                             "relu6 keeps the scale and zero point"),
    "cat_dim": (_set("cat", dim=0), "dim: 0; expected 1"),
    "cat_one_input": (lambda d: layer_of(d, "cat").update(
        inputs=layer_of(d, "cat")["inputs"][:1], input=layer_of(d, "cat")["input"][:1]),
        "a list of 1 items; expected 2 to 64 items"),
    "cat_qparams_count": (lambda d: layer_of(d, "cat")["input"].append(
        dict(layer_of(d, "cat")["input"][0])), "3 input qparams for 2 inputs"),
    "cat_output_qparams": (_qparam("cat", "output", lambda z: z + 1),
                           "cat keeps the first input's"),
    "cat_input_qparams": (_qparam("cat", "input", lambda z: z + 1, 1),
                          "input[1] qparams"),
    "cat_spatial_sizes": (_cat_from_stem, "expected the same H x W"),
    "cat_channel_sum": (lambda d: layer_of(d, "dilated")["weight_shape"].__setitem__(1, 31),
                        "takes 31 input channels (weight_shape[1] * groups)"),
    "grouped_groups_not_dividing": (_set("grouped", groups=3),
                                    "expected groups to divide the 16 output channels"),
    "grouped_kind": (_set("grouped", kind="regular"), "kind 'regular'; expected 'grouped'"),
    "grouped_in_channels": (_set("grouped", groups=2), "takes 8 input channels"),
    "grouped_unknown_kind": (_set("grouped", kind="group"), "kind"),
    "depthwise_as_grouped": (_set("dw.0", kind="grouped"), "expected 'depthwise'"),
    "stem_kernel_too_big": (lambda d: layer_of(d, "stem.0")["weight_shape"].__setitem__(2, 32),
                            "weight_shape[2]: 32 is out of range"),
    "flatten_start_dim": (_set("flatten", start_dim=2), "start_dim: 2; expected 1"),
    "linear_from_pool": (_set("fc", inputs=["head_pool"]), "expected a flatten or linear"),
    "model_kwargs_key": (lambda d: d["model"]["kwargs"].update({"1x": 1}), "kwargs"),
    "model_kwargs_object": (lambda d: d["model"]["kwargs"].update(n={"a": 1}), "kwargs"),
    "model_kwargs_num_classes": (lambda d: d["model"]["kwargs"].update(num_classes=9),
                                 "model.kwargs.num_classes says 9"),
    "model_arch_space": (lambda d: d["model"].update(arch="my net"), "$.model.arch"),
}


def test_every_op_package_checks(every_op_package: Path, capsys) -> None:
    status, out, err = run(["check", "--package", str(every_op_package)], capsys)
    assert status == 0 and err == "", err


@pytest.mark.parametrize("what", sorted(OP_EDITS))
def test_new_op_field_edits_are_refused_in_one_line(every_op_package: Path, tmp_path: Path,
                                                    capsys, what: str) -> None:
    root = tmp_path / "package"
    shutil.copytree(every_op_package, root)
    change, fragment = OP_EDITS[what]
    manifest = edit(root, change)
    status, _, err = run(["check", "--package", str(root)], capsys)
    assert_user_error(status, err, str(manifest), fragment)
