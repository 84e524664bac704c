"""pytest entry of the compute engine (tb/tests_compute.py on cnn_compute_top).

    .venv/bin/python -m pytest tb/test_compute.py -v
    .venv/bin/python -m pytest tb/test_compute.py -k verilator

Verilator: the whole network, layer by layer and chained, every activation of every
layer against the golden model (hardware arithmetic), RTL top-1 = golden top-1 on
COMPUTE_IMAGES images (default 2). Icarus: the first step of each kind, layer by
layer. Each run prepares its work folder under build/compute/<network>/ (the
parameter stream, descriptors, golden codes; tb/compute/prepare.py) and builds
cnn_compute_top with that network's memory sizes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from cosim.tb.sim import (
    BUILD,
    RESULTS_DIR,
    RTL_DIR,
    run_cocotb,
    simulator_available,
)

TOPLEVEL = "cnn_compute_top"
MODULE = "cosim.tb.tests_compute"
COMPUTE_RTL = ("param_loader.sv", "param_memory.sv", "act_memory.sv", "param_stream_player.sv",
               "cnn_compute_engine.sv", "cnn_compute_top.sv")
PASS_THROUGH = ("COCOSIM_VERBOSE", "COCOSIM_PACKAGE", "COCOSIM_GOLDEN", "COCOSIM_ACCEL")
IMAGES = int(os.environ.get("COMPUTE_IMAGES", "2") or 2)

pytestmark = pytest.mark.sim


def compute_sources(network) -> list[Path]:
    """The network's layout package and the compute top's modules."""
    return [network.sources[0], *(RTL_DIR / n for n in COMPUTE_RTL)]


def accelerator_rounding(network) -> str:
    """The accelerator file's datapath rounding (default accelerator: half_even)."""
    from cosim.golden.accelerator import load_accelerator

    if network.accel is not None:
        return load_accelerator(network.accel).rounding
    record = getattr(network.layout, "accelerator", None) or {}
    path = record.get("path") if isinstance(record, dict) else None
    if path and Path(path).is_file():
        return load_accelerator(Path(path)).rounding
    return "half_even"


@pytest.fixture(scope="module")
def prepared(network):
    from cosim.quant.package import load_package
    from cosim.tb.compute.prepare import prepare

    package = load_package(network.package_dir)
    key = hashlib.sha256(f"{network.package_dir}|{network.golden_dir}|{IMAGES}".encode())
    work = BUILD / "compute" / key.hexdigest()[:12]
    return prepare(work, package, network.layout, accelerator_rounding(network), IMAGES)


def run_compute(sim: str, test: str, network, prepared, env: dict | None = None,
                sources: list[Path] | None = None, tag: str | None = None,
                results=None) -> dict:
    """Build (cached) and run one compute test; return its summary JSON."""
    results = Path(results or RESULTS_DIR)
    summary_path = results / f"{test}-{sim}.json"
    summary_path.unlink(missing_ok=True)
    run_env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
    run_env |= network.env
    run_env |= {"COCOSIM_SIM": sim, "COCOSIM_RESULTS": str(results),
                "COMPUTE_WORK": str(prepared.work)}
    run_env |= env or {}
    xml = run_cocotb(sim, MODULE, testcase=test, extra_env=run_env, plusargs=prepared.plusargs,
                     check=False, tag=tag, sources=sources or compute_sources(network),
                     parameters=prepared.parameters, toplevel=TOPLEVEL)
    assert summary_path.is_file(), f"{test} on {sim} ended before its report phase; see {xml}"
    summary = json.loads(summary_path.read_text())
    summary["xml"] = str(xml)
    return summary


def _require(sim: str) -> None:
    if not simulator_available(sim):
        pytest.skip(f"{sim} is not installed")


def _explain(summary: dict) -> str:
    failed = [s for s in summary.get("steps", []) if s["mismatches"] or s["padding_errors"]
              or s["unknown_words"]]
    lines = [f"{summary['test']} on {summary['sim']}: {summary['steps_failed']} step(s) "
             f"failed; errors: {summary['errors'][:3]}"]
    for s in failed[:5]:
        lines.append(f"  {s['mode']} {s['name']}: {s['mismatches']}/{s['codes']} codes differ, "
                     f"first {s['first'][:3]}")
    return "\n".join(lines)


@pytest.mark.slow
def test_whole_network_verilator(network, prepared):
    """Every step layer by layer, then the whole network chained on IMAGES images."""
    _require("verilator")
    s = run_compute("verilator", "LayerThenChainedTest", network, prepared)
    assert s["passed"], _explain(s)
    n = len(prepared.program.steps)
    modes = {(r["mode"], r["name"]) for r in s["steps"]}
    assert len({m for m in modes if m[0] == "layer"}) == n
    assert len({m for m in modes if m[0] == "chained"}) == n
    assert s["codes_identical"] == s["codes_checked"] > 0
    assert len(s["top1"]) == prepared.images
    assert all(t["golden"] == t["rtl"] for t in s["top1"])
    assert s["parameter_load"]["image_words_wrong"] == 0


def test_each_kind_icarus(network, prepared):
    """The first step of each kind (regular, depthwise, pointwise, linear, add, pool)."""
    _require("icarus")
    s = run_compute("icarus", "LayerByLayerTest", network, prepared,
                    env={"COMPUTE_LAYERS": "kinds"})
    assert s["passed"], _explain(s)
    kinds = {(r["op"], r["kind"]) for r in s["steps"]}
    want = {(st.op, st.kind) for st in prepared.program.steps}
    assert kinds == want
