"""`cosim demo` end to end on a reduced setting, into a temporary build directory.

The report must exist and carry the numbers this run produced (read back from
the run's own artifacts, never from constants).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from html_links import assert_links_exist

from cosim import cli

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus")]


@pytest.fixture(scope="module")
def demo_build(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("demo") / "build"
    status = cli.main(["demo", "--build", str(build), "--calibration-images", "32",
                       "--images", "8", "--verify-images", "4", "--verify-images-224", "1",
                       "--sims", "icarus"])
    assert status == 0
    return build


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_demo_writes_every_stage(demo_build):
    for rel in ("package/manifest.json", "package/report.json", "golden/stream.hex",
                "golden/image.hex", "golden/verify.json", "golden/memory_map.png",
                "test-results/WholeNetworkTest-icarus.json", "report/index.html",
                "report/summary.json"):
        assert (demo_build / rel).is_file(), rel


def test_report_carries_the_numbers_of_this_run(demo_build):
    summary = read(demo_build / "report" / "summary.json")
    package = read(demo_build / "package" / "report.json")
    verify = read(demo_build / "golden" / "verify.json")
    simulation = read(demo_build / "test-results" / "WholeNetworkTest-icarus.json")
    assert summary["float_top1"] == package["float_top1"]
    assert summary["int8_top1"] == package["int8_top1"]
    assert summary["rebuild_identical_fraction"] == package["rebuild_identical_fraction"] == 1.0
    identical = sum(layer["identical_fraction"] == 1.0 for layer in verify["layers"])
    assert summary["layers_identical"] == identical == len(verify["layers"])
    assert summary["images"] == verify["images"] == 5
    icarus = summary["simulators"]["icarus"]
    assert icarus["words_checked"] == simulation["words_checked"] == simulation["words_expected"]
    assert icarus["mismatches"] == simulation["mismatches"] == 0
    page = (demo_build / "report" / "index.html").read_text()
    assert f"{package['int8_top1']:.2f}" in page
    assert f"{simulation['words_checked']:,}" in page


def test_the_demo_is_cosim_run_on_the_shipped_project(demo_build):
    summary = read(demo_build / "report" / "summary.json")
    project = summary["project"]
    assert project["name"] == "demo" and project["file"].endswith("projects/demo.toml")
    assert project["rtl"]["top"] == "cnn_param_top" and project["simulators"] == ["icarus"]
    assert summary["accelerator"] == "default"
    assert project["command"] == f"cosim demo --build {demo_build}"
    logs = sorted(p.name for p in (demo_build / "logs").glob("*.log"))
    assert logs == ["1-package.log", "2-golden.log", "3-golden-verify.log", "4-sim-icarus.log",
                    "5-waves.log"], logs
    # the simulator builds and runs went into the demo's build folder too
    assert list((demo_build / "sim" / "icarus").glob("*/build.ok"))


def test_every_local_link_of_the_report_exists(demo_build):
    assert_links_exist(demo_build / "report" / "index.html")


def test_report_links_the_waves_of_the_demo(demo_build):
    summary = read(demo_build / "report" / "summary.json")
    waves = Path(summary["waves"])
    assert waves.name == "cnn_param_top.fst" and waves.is_file()
    assert "demo-waves" in str(waves)
