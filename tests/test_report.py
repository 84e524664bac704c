"""The run report (cosim/report.py) and the per-layer SQNR (cosim/sqnr.py).

Most tests build the report from small synthetic artifacts written in tmp_path; the
tiny-package tests quantize a real (briefly calibrated) package once per module; the
last test reads the real build/ artifacts and is skipped when they are missing.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from html_links import assert_links_exist, local_targets

from cosim import cli
from cosim.report import build_report, find_waves
from cosim.sqnr import layer_sqnr, sqnr_db

REPO = Path(__file__).resolve().parents[1]

# A 1x1 PNG (valid file; the page only embeds it).
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5f3c2d60000000049454e44ae426082")

REPORT = {
    "float_top1": 87.5, "int8_top1": 86.25, "top1_drop": 1.25, "top1_agreement": 97.5,
    "logit_sqnr_db": 21.75, "quantize_seconds": 1.5, "export_seconds": 0.25,
    "weights": 1234, "weighted_layers": 3, "bias_saturated": 3, "test_split": "digits test",
    "rebuild": {"elements": 80, "identical_elements": 80, "identical_fraction": 1.0,
                "images": 8, "top1_agreement": 100.0, "top1_rebuilt": 87.5,
                "top1_reference": 87.5},
    "rebuild_identical_fraction": 1.0,
}

SIMS = {
    "icarus": {"words_checked": 1000, "words_expected": 1000, "mismatches": 0,
               "words_per_s": 2500, "wall_s": 0.4, "coverage_percent": 80.5},
    "verilator": {"words_checked": 1000, "words_expected": 1000, "mismatches": 2,
                  "words_per_s": 40000, "wall_s": 0.025, "coverage_percent": 81.0},
}

SQNR = [{"name": "features.0.0", "sqnr_db": 31.5, "images": 4},
        {"name": "features.1.conv.0.0", "sqnr_db": 24.0, "images": 4},
        {"name": "classifier.1", "sqnr_db": 27.25, "images": 4}]


def _layer(name, op, kind, shape, x, w, y, shift, saturated, relu):
    entry = {"name": name, "op": op, "kind": kind, "weight_shape": shape,
             "bias_shape": [shape[0]], "input": {"scale": x, "zero_point": 0},
             "weight": {"qscheme": "per_tensor_symmetric", "scale": w, "zero_point": 0},
             "output": {"scale": y, "zero_point": 0}, "shift": shift,
             "bias_saturated": saturated, "relu": relu,
             "files": {"weight_hex": {"path": f"params_quant_linear/{name}/weight.hex",
                                      "sha256": "0" * 64},
                       "bias_int16_hex": {"path": f"params_quant_linear/{name}/bias_int16.hex",
                                          "sha256": "0" * 64}}}
    if isinstance(w, list):
        entry["weight"]["qscheme"] = "per_channel_symmetric"
    return entry


MANIFEST = {
    "format": "cnn-cosim-parameter-package", "format_version": 1,
    "model": {"arch": "mobilenet_v2_relu", "num_classes": 3, "input_shape": [3, 8, 8],
              "width_mult": 1.0},
    "data": {"name": "digits", "image_size": 8},
    "quantization": {"method": "mse", "per_channel": False, "weight_range": "guarded"},
    "files": {},
    "layers": [
        {"name": "input", "op": "quantize", "inputs": [], "files": {},
         "output": {"scale": 2.0**-5, "zero_point": 64}},
        _layer("features.0.0", "conv2d", "regular", [4, 3, 3, 3], 2.0**-5, 2.0**-7, 2.0**-4,
               8, 1, True),
        _layer("features.1.conv.0.0", "conv2d", "depthwise", [4, 1, 3, 3], 2.0**-4,
               [2.0**-6, 2.0**-7, 2.0**-8, 2.0**3], 2.0**-4, [6, 7, 8, -3], 0, True),
        _layer("classifier.1", "linear", "linear", [3, 4], 2.0**-4, 2.0**-6, 2.0**-2, 8, 2,
               False),
    ],
}

VERIFY = {
    "package": "build/package", "rounding": "half_even", "float32_step": True,
    "images": 11, "images_224": 3, "image_size": 8, "identical": False,
    "top1_agreement": 90.9, "top1_golden": 81.8, "top1_pytorch": 81.8,
    "reference_identical": True, "seconds": {"total": 1.0, "golden": 0.1, "pytorch": 0.5},
    "layers": [
        {"name": "input", "op": "quantize", "elements": 2112, "identical_fraction": 1.0,
         "max_abs_diff": 0.0},
        {"name": "features.0.0", "op": "conv2d", "elements": 704, "identical_fraction": 1.0,
         "max_abs_diff": 0.0},
        {"name": "features.1.conv.0.0", "op": "conv2d", "elements": 704,
         "identical_fraction": 0.75, "max_abs_diff": 2.0},
        {"name": "classifier.1", "op": "linear", "elements": 33, "identical_fraction": 1.0,
         "max_abs_diff": 0.0},
    ],
}

LAYOUT = {
    "config": {"word_bits": 64, "tile_oc": 8, "tile_ic": 8, "kernel_order": "kh_kw",
               "segment_align": 8, "region_align": 4096},
    "depth": 8195, "addr_bits": 14, "used_words": 40,
    "regions": [{"name": "weights", "base": 0, "end": 24, "used": 21},
                {"name": "biases", "base": 4096, "end": 4112, "used": 16},
                {"name": "records", "base": 8192, "end": 8195, "used": 3}],
    "segments": [], "layers": [], "stream": {"segments": 9, "words": 49},
}

BENCH = {"machine": {"python": "3.11", "cores": 2},
         "rows": [{"group": "golden model", "name": "golden inference", "seconds": 0.125,
                   "baseline": "PyTorch", "baseline_seconds": 0.0625, "ratio": 2.0,
                   "detail": "bit-exact"}]}


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


#: a compute-engine summary (tb/tests_compute.py), one layer mismatching
COMPUTE = {"test": "LayerThenChainedTest", "sim": "verilator", "passed": False,
           "rounding": "half_up", "codes_checked": 300, "codes_identical": 299,
           "steps_checked": 2, "coverage_percent": 62.5, "coverage_holes": ["tie kind=pool"],
           "top1": [{"image": 0, "golden": 3, "rtl": 3}],
           "steps": [{"mode": "layer", "image": 0, "name": "features.0.0", "op": "weighted",
                      "kind": "regular", "cycles": 1234, "macs": 5678, "utilization": 0.0575,
                      "identical": 1.0, "mismatches": 0, "padding_errors": 0,
                      "unknown_words": 0, "first": []},
                     {"mode": "chained", "image": 0, "name": "classifier.1", "op": "weighted",
                      "kind": "linear", "cycles": 99, "macs": 100, "utilization": 0.0158,
                      "identical": 0.99, "mismatches": 1, "padding_errors": 0,
                      "unknown_words": 0,
                      "first": [{"channel": 7, "y": 0, "x": 0, "expected": 12, "got": 13,
                                 "accumulator": -4242}]}]}


def write_synthetic_build(build: Path, sims=("icarus", "verilator")) -> Path:
    """Minimal but schema-correct artifacts of every kind the report reads."""
    pkg, golden, results = build / "package", build / "golden", build / "test-results"
    _write_json(pkg / "report.json", REPORT)
    _write_json(pkg / "manifest.json", MANIFEST)
    hexdir = pkg / "params_quant_linear" / "features.0.0"
    hexdir.mkdir(parents=True)
    (hexdir / "weight.hex").write_text("01\nff\n")
    (pkg / "params_quant_linear" / "scaling_factor.hex").write_text("08\n")
    (pkg / "params_float").mkdir()
    _write_json(golden / "verify.json", VERIFY)
    _write_json(golden / "layout.json", LAYOUT)
    (golden / "memory_map.png").write_bytes(PNG_1X1)
    for name in ("image.hex", "stream.hex", "address_map.md"):
        (golden / name).write_text("00\n")
    (golden / "address_map.csv").write_text(
        "layer,name,kind,tensor,region,base,end,words,padding_words,padding_lanes,gap_after\n"
        "0,features.0.0,regular,weight,weights,0,24,21,0,0,0\n")
    for sim in sims:
        _write_json(results / f"WholeNetworkTest-{sim}.json",
                    {"test": "WholeNetworkTest", "sim": sim, "seed": 7, "passed": True,
                     "stream_words": 49, "segments": 9, "backpressure": "none",
                     "coverage_holes": 3} | SIMS[sim])
    (results / "coverage-WholeNetworkTest-icarus.txt").parent.mkdir(parents=True,
                                                                     exist_ok=True)
    (results / "coverage-WholeNetworkTest-icarus.txt").write_text("coverage\n")
    _write_json(build / "bench.json", BENCH)
    _write_json(results / "LayerThenChainedTest-verilator.json", COMPUTE)
    run = build / "sim" / "runs" / "icarus" / "test_bare.bare_loop.waves"
    run.mkdir(parents=True)
    (run / "cnn_param_top.fst").write_bytes(b"FST")
    return build


@pytest.fixture()
def synthetic(tmp_path) -> Path:
    return write_synthetic_build(tmp_path / "build")


# ----------------------------------------------------------------------------- synthetic


def test_report_from_synthetic_artifacts(synthetic):
    index = build_report(synthetic, sqnr=SQNR)
    assert index == synthetic / "report" / "index.html"
    page = index.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    for png in ("quant_error.png", "shifts.png", "memory_map.png"):
        assert (index.parent / png).stat().st_size > 0
        assert f'src="{png}"' in page
    assert_links_exist(index)
    # numbers on the page come from the inputs
    assert "87.50%" in page and "86.25%" in page and "21.8 dB" in page
    assert "3 of 4 layers identical" in page and "on 11 images incl. 3 at 224x224" in page
    assert "features.1.conv.0.0" in page and "6..8" not in page  # per-channel: -3..8
    assert "-3..8" in page
    assert "40,000" in page and "320.0" in page  # words/s and kB/s (40000 * 64 / 8 / 1000)
    assert "0x01000" in page  # the biases region base, 14 address bits -> 5 hex digits
    assert "golden inference" in page  # bench row
    assert "gtkwave " in page and "tb/cnn_param.gtkw" in page
    # the compute section: per layer cycles, utilization, identical fraction, mismatches
    compute = page[page.index('id="compute"'):page.index('id="files"')]
    assert "299 of 300 codes identical" in compute and "1 of 1 images" in compute
    assert "1,234" in compute and "5.8%" in compute and "99.000%" in compute
    assert "c7 y0 x0: 12→13 (acc -4242)" in compute


def test_summary_numbers_equal_the_inputs(synthetic):
    index = build_report(synthetic, sqnr=SQNR)
    summary = json.loads((index.parent / "summary.json").read_text())
    for key in ("float_top1", "int8_top1", "top1_drop", "top1_agreement", "logit_sqnr_db",
                "rebuild_identical_fraction"):
        assert summary[key] == REPORT[key], key
    assert summary["layers_identical"] == 3 and summary["layers_total"] == 4
    assert summary["images"] == VERIFY["images"]
    assert summary["images_224"] == VERIFY["images_224"]
    values = [row["sqnr_db"] for row in SQNR]
    assert summary["sqnr_min_db"] == min(values)
    assert summary["sqnr_median_db"] == statistics.median(values)
    assert summary["sqnr_min_layer"] == "features.1.conv.0.0"
    assert summary["bias_saturated_layers"] == {"features.0.0": 1, "features.1.conv.0.0": 0,
                                                "classifier.1": 2}
    assert summary["shift_min"] == -3 and summary["shift_max"] == 8
    assert set(summary["simulators"]) == set(SIMS)
    for sim, expected in SIMS.items():
        got = summary["simulators"][sim]
        for key in ("words_checked", "mismatches", "words_per_s"):
            assert got[key] == expected[key], (sim, key)
        assert got["kB_per_s"] == pytest.approx(expected["words_per_s"] * 8 / 1000)
    assert summary["missing"] == []


def test_missing_artifacts_say_what_to_run(tmp_path):
    build = tmp_path / "empty"
    index = build_report(build)
    page = index.read_text(encoding="utf-8")
    for command in ("cosim package --out", "cosim golden --package",
                    "cosim golden-verify --package",
                    ".venv/bin/python -m pytest -q tb/test_uvm.py -k WholeNetworkTest",
                    "make bench",
                    "WAVES=1 .venv/bin/python -m pytest -q tb/test_sim_smoke.py -k gtkw"):
        assert command in page, command
    for artifact in ("package/report.json", "package/manifest.json", "golden/verify.json",
                     "golden/layout.json", "golden/memory_map.png", "bench.json",
                     "cnn_param_top.fst"):
        assert f"{artifact}</code>" in page, artifact
    summary = json.loads((index.parent / "summary.json").read_text())
    assert summary["float_top1"] is None and summary["layers_identical"] is None
    assert summary["simulators"] == {}
    assert any(m.endswith("package/report.json") for m in summary["missing"])
    assert not (index.parent / "quant_error.png").exists()
    for target in local_targets(index):
        assert target.exists(), target


def test_each_section_reports_its_own_gap(synthetic):
    (synthetic / "golden" / "verify.json").unlink()
    (synthetic / "test-results" / "WholeNetworkTest-verilator.json").unlink()
    (synthetic / "golden" / "layout.json").unlink()
    index = build_report(synthetic, sqnr=SQNR)
    page = index.read_text(encoding="utf-8")
    golden = page.split('id="golden"')[1].split("</section>")[0]
    assert "verify.json</code>" in golden and "cosim golden-verify" in golden
    sim = page.split('id="simulation"')[1].split("</section>")[0]
    assert "WholeNetworkTest-verilator.json</code>" in sim and "icarus" in sim
    memory = page.split('id="memory"')[1].split("</section>")[0]
    assert "layout.json</code>" in memory and "from address_map.csv" in memory
    assert "weights" in memory  # the region table falls back to address_map.csv
    summary = json.loads((index.parent / "summary.json").read_text())
    assert summary["float_top1"] == REPORT["float_top1"]  # other sections unaffected
    assert list(summary["simulators"]) == ["icarus"]
    assert_links_exist(index)


def test_unreadable_json_does_not_crash(synthetic):
    (synthetic / "package" / "report.json").write_text("{not json")
    (synthetic / "test-results" / "WholeNetworkTest-icarus.json").write_text("[")
    index = build_report(synthetic, sqnr=SQNR)
    page = index.read_text(encoding="utf-8")
    accuracy = page.split('id="accuracy"')[1].split("</section>")[0]
    assert "Unreadable" in accuracy and "cosim package --out" in accuracy
    assert "WholeNetworkTest-icarus.json: unreadable" in page
    summary = json.loads((index.parent / "summary.json").read_text())
    assert summary["float_top1"] is None and list(summary["simulators"]) == ["verilator"]


def test_sqnr_failure_is_reported_and_the_rest_is_drawn(synthetic):
    # The synthetic manifest is no loadable package: layer_sqnr fails, the page says why.
    index = build_report(synthetic, sqnr_images=2)
    page = index.read_text(encoding="utf-8")
    assert "SQNR not computed" in page
    assert (index.parent / "quant_error.png").is_file()  # bias saturation still plotted
    summary = json.loads((index.parent / "summary.json").read_text())
    assert summary["sqnr_min_db"] is None
    assert summary["bias_saturated_layers"]["classifier.1"] == 2


def test_waves_argument_and_other_output_folder(synthetic, tmp_path):
    waves = tmp_path / "my waves" / "run.fst"
    waves.parent.mkdir()
    waves.write_bytes(b"FST")
    out = tmp_path / "elsewhere" / "report"
    index = build_report(synthetic, out=out, waves=waves, sqnr=SQNR)
    assert index == out / "index.html"
    page = index.read_text(encoding="utf-8")
    assert "Given wave file" in page and "run.fst" in page
    assert str(REPO / "tb" / "cnn_param.gtkw") in page or "tb/cnn_param.gtkw" in page
    assert_links_exist(index)
    assert (out / "summary.json").is_file()


def test_find_waves_newest_first(synthetic):
    older = synthetic / "sim" / "runs" / "verilator" / "old" / "cnn_param_top.fst"
    older.parent.mkdir(parents=True)
    older.write_bytes(b"FST")
    import os

    os.utime(older, (1, 1))
    found = find_waves(synthetic)
    assert found[-1] == older and len(found) == 2


def test_sqnr_db_edge_cases():
    assert sqnr_db(100.0, 1.0) == pytest.approx(20.0)
    assert sqnr_db(1.0, 0.0) == math.inf
    assert sqnr_db(0.0, 1.0) == -math.inf
    assert math.isnan(sqnr_db(0.0, 0.0))


def test_non_finite_sqnr_stays_valid_json(synthetic):
    rows = [dict(SQNR[0], sqnr_db=math.inf)] + SQNR[1:]
    index = build_report(synthetic, sqnr=rows)
    text = (index.parent / "summary.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text)["sqnr_min_db"] == 24.0


# ----------------------------------------------------------------------------- tiny real package


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("report") / "build"
    status = cli.main(["package", "--out", str(build / "package"), "-q",
                       "--calibration-images", "16", "--images", "2"])
    assert status == 0
    return build


@pytest.mark.slow
def test_layer_sqnr_on_a_tiny_real_package(tiny_build):
    rows = layer_sqnr(tiny_build / "package", images=4)
    manifest = json.loads((tiny_build / "package" / "manifest.json").read_text())
    weighted = [x["name"] for x in manifest["layers"] if x["op"] in ("conv2d", "linear")]
    assert [row["name"] for row in rows] == weighted
    assert all(math.isfinite(row["sqnr_db"]) for row in rows)
    assert rows[0]["sqnr_db"] > 10.0
    assert all(row["images"] == 4 for row in rows)


@pytest.mark.slow
def test_report_computes_sqnr_from_the_package(tiny_build, tmp_path):
    index = build_report(tiny_build, out=tmp_path / "r", sqnr_images=4)
    summary = json.loads((index.parent / "summary.json").read_text())
    report = json.loads((tiny_build / "package" / "report.json").read_text())
    assert summary["float_top1"] == report["float_top1"]
    assert summary["int8_top1"] == report["int8_top1"]
    values = [row["sqnr_db"] for row in layer_sqnr(tiny_build / "package", images=4)]
    assert summary["sqnr_min_db"] == pytest.approx(min(values))
    assert summary["sqnr_median_db"] == pytest.approx(statistics.median(values))
    assert summary["sqnr_layers"] == len(values) == 53
    assert_links_exist(index)


# ----------------------------------------------------------------------------- real build/


REAL = REPO / "build"


@pytest.mark.skipif(not all((REAL / p).is_file() for p in
                            ("package/report.json", "package/manifest.json",
                             "golden/verify.json")),
                    reason="no real build/ artifacts (make package golden)")
def test_report_on_the_real_build(tmp_path):
    index = build_report(REAL, out=tmp_path / "report", sqnr_images=4)
    assert_links_exist(index)
    summary = json.loads((index.parent / "summary.json").read_text())
    report = json.loads((REAL / "package" / "report.json").read_text())
    verify = json.loads((REAL / "golden" / "verify.json").read_text())
    assert summary["float_top1"] == report["float_top1"]
    assert summary["int8_top1"] == report["int8_top1"]
    assert summary["images"] == verify["images"]
    assert summary["layers_identical"] == sum(
        1 for x in verify["layers"] if x["identical_fraction"] == 1.0)
    assert summary["sqnr_layers"] == report.get("weighted_layers", summary["sqnr_layers"])
    assert summary["sqnr_min_db"] is not None and summary["sqnr_min_db"] > 10.0
    for path in sorted((REAL / "test-results").glob("WholeNetworkTest-*.json")):
        try:
            sim = json.loads(path.read_text())
        except json.JSONDecodeError:  # being rewritten by a running simulation
            continue
        got = summary["simulators"].get(sim["sim"])
        if got is not None:
            assert got["words_checked"] == sim["words_checked"]
            assert got["mismatches"] == sim["mismatches"]


def test_report_shows_the_project_and_the_accelerator_of_the_run(synthetic):
    """cosim run hands its project over: name, top and accelerator are on the page and
    in summary.json; layout.json's accelerator record (cosim golden --accel) wins."""
    project = {"name": "my-accel", "file": "/p/cosim.toml", "arch": None,
               "accelerator": {"name": "from-project", "file": "/p/accel.toml"},
               "rtl": {"top": "my_param_top", "sources": ["/p/rtl/top.sv"]},
               "stimulus": "stream", "simulators": ["icarus"], "test": "WholeNetworkTest",
               "build": str(synthetic), "command": "cosim run --project /p/cosim.toml"}
    index = build_report(synthetic, sqnr=SQNR, project=project)
    page = index.read_text()
    summary = json.loads((index.parent / "summary.json").read_text())
    assert "my-accel" in page and "my_param_top" in page and "from-project" in page
    assert summary["accelerator"] == "from-project" and summary["project"] == project
    layout = dict(LAYOUT, accelerator={"name": "acc32-mine", "sha256": "ab" * 32,
                                       "path": "/p/accel.toml"})
    _write_json(synthetic / "golden" / "layout.json", layout)
    index = build_report(synthetic, sqnr=SQNR, project=project)
    page = index.read_text()
    assert "acc32-mine" in page and "abababababababab" in page
    assert json.loads((index.parent / "summary.json").read_text())["accelerator"] == \
        "acc32-mine"
    # a missing artifact of a project's run names the command that makes it: cosim run
    (synthetic / "golden" / "verify.json").unlink()
    page = build_report(synthetic, sqnr=SQNR, project=project).read_text()
    assert "cosim run --project /p/cosim.toml" in page
    # without a project (python -m cosim.report) nothing of it appears
    _write_json(synthetic / "golden" / "layout.json", LAYOUT)
    _write_json(synthetic / "golden" / "verify.json", VERIFY)
    index = build_report(synthetic, sqnr=SQNR)
    summary = json.loads((index.parent / "summary.json").read_text())
    assert "project" not in summary and "accelerator" not in summary
