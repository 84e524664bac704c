"""pytest entry: networks other than the default stream through the reference loader.

    .venv/bin/python -m pytest tb/test_networks.py -v

- A synthetic multi-op package (tests/synthetic_nets.py `multi_op_spec`: 7x7 stride-2
  stem, max pool, 5x5 dilated, relu, depthwise, grouped, cat, pointwise, add, avg
  pool, relu6, global pool, flatten, linear; per-channel and per-tensor layers) goes
  through the pyuvm WholeNetworkTest and MalformedTest on Icarus, with the RTL built
  from a cnn_layout_pkg.sv generated for its layout: 0 mismatches, final memory equal
  to the golden image.
- COCOSIM_GOLDEN without COCOSIM_PACKAGE, or a golden directory of another package,
  fails with one line before any simulator runs.

The ResNet-18-sized run (11.2M weights, about 1.4M stream words) is not here: it
takes minutes (docs/testbench.md has the figures); run it by hand with
COCOSIM_PACKAGE=<package> pytest tb/test_uvm.py -k WholeNetwork.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from cosim.tb.sim import REPO, RESULTS_DIR, run_cocotb, select_network

sys.path.insert(0, str(REPO / "tests"))
from cosim.tb.env.config import GoldenSelectionError  # noqa: E402
from synthetic_nets import multi_op_spec, write_network  # noqa: E402

NETWORKS_DIR = REPO / "build" / "sim" / "networks"


@pytest.fixture(scope="module")
def multi_op_package() -> Path:
    """build/sim/networks/multi_op/package (rewritten each session: a few ms)."""
    return write_network(NETWORKS_DIR / "multi_op" / "package", multi_op_spec(), seed=11,
                         arch="synthetic-multi-op")


@pytest.mark.sim
@pytest.mark.skipif(shutil.which("iverilog") is None, reason="icarus is not installed")
@pytest.mark.parametrize("test", ["WholeNetworkTest", "MalformedTest"])
def test_multi_op_network_through_the_loader_on_icarus(multi_op_package, test):
    network = select_network({"COCOSIM_PACKAGE": str(multi_op_package)})
    kinds = {s.kind for s in network.layout.layers}
    assert kinds == {"regular", "depthwise", "grouped", "pointwise", "linear"}
    assert network.sources[0] != REPO / "rtl" / "cnn_layout_pkg.sv"  # a generated package
    results = RESULTS_DIR / "networks" / "multi_op"
    summary_path = results / f"{test}-icarus.json"
    summary_path.unlink(missing_ok=True)
    dump = REPO / "build" / "sim" / "dumps" / f"{test}-icarus-multi_op.hex"
    run_cocotb("icarus", "cosim.tb.tests_uvm", testcase=test, tag="multi_op",
               extra_env={**network.env, "COCOSIM_SIM": "icarus",
                          "COCOSIM_RESULTS": str(results)},
               plusargs=[f"+DUMP_FILE={dump}"], sources=network.sources, check=False)
    assert summary_path.is_file(), f"{test} ended before its report phase; see the log above"
    summary = json.loads(summary_path.read_text())
    assert summary["mismatches"] == 0, "\n".join(summary["errors"])
    assert summary["dump_checked"] and summary["passed"]
    if test == "WholeNetworkTest":
        assert summary["words_checked"] == summary["words_expected"] == \
            network.layout.used_words
        assert summary["segments"] == 3 * len(network.layout.layers)


def test_golden_without_package_is_one_line():
    with pytest.raises(GoldenSelectionError) as info:
        select_network({"COCOSIM_GOLDEN": "build/golden"})
    assert "without COCOSIM_PACKAGE" in str(info.value) and "\n" not in str(info.value)


def test_golden_of_another_package_is_one_line(multi_op_package, tmp_path):
    """A golden directory made from another package (its layout.json names other layers)
    is refused, naming both directories."""
    from cosim.golden.image import write_golden
    from cosim.golden.layout import Layout
    from cosim.quant.package import Package

    other = write_network(tmp_path / "other", multi_op_spec(num_classes=3), seed=2)
    package = Package(other, json.loads((other / "manifest.json").read_text()))
    write_golden(package, Layout.from_package(package), tmp_path / "golden", plot=False)
    with pytest.raises(GoldenSelectionError) as info:
        select_network({"COCOSIM_PACKAGE": str(multi_op_package),
                        "COCOSIM_GOLDEN": str(tmp_path / "golden")})
    text = str(info.value)
    assert "disagree" in text and str(multi_op_package) in text and "\n" not in text


def test_stale_image_of_the_same_layout_is_one_line(multi_op_package, tmp_path):
    """Same layers, other values (another seed): layout.json's layout fits, but it records
    another package's manifest (the pre-run package check); without that record (a
    golden folder of an older cosim golden) image.npz still tells."""
    from cosim.golden.image import write_golden
    from cosim.golden.layout import Layout
    from cosim.quant.package import Package

    other = write_network(tmp_path / "other", multi_op_spec(), seed=3)
    package = Package(other, json.loads((other / "manifest.json").read_text()))
    golden = tmp_path / "golden"
    write_golden(package, Layout.from_package(package), golden, plot=False)
    env = {"COCOSIM_PACKAGE": str(multi_op_package), "COCOSIM_GOLDEN": str(golden)}
    with pytest.raises(GoldenSelectionError, match=r"^pre-run check: the golden folder .* was "
                       r"made from package [0-9a-f]{16} .*, COCOSIM_PACKAGE .* is package"):
        select_network(env)
    table = json.loads((golden / "layout.json").read_text())
    del table["package"]
    (golden / "layout.json").write_text(json.dumps(table))
    with pytest.raises(GoldenSelectionError, match="does not hold the image of package"):
        select_network(env)
