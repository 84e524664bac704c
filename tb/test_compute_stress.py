"""The compute engine on the STRESS network (tb/compute/stress.py): every datapath corner
the shipped MobileNetV2 does not reach (negative and zero shifts, per-channel shifts,
ReLU clamps at zp_y != 0, |acc| > 2^30, one-step pixels, stride-2 right/bottom padding
of odd maps, high saturation, add and pool ties, pool zero point).

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest tb/test_compute_stress.py -v

The package is written under build/compute/stress/package (idempotent: rewritten only
when its manifest differs from what make_stress_package writes); results under
build/test-results/compute-stress/.

Verilator: the whole stress network layer by layer, then chained. Icarus: the first
step of each kind, layer by layer in one simulation.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import pytest
from cosim.tb.sim import BUILD, RESULTS_DIR, simulator_available
from cosim.tb.test_compute import (
    ICARUS_KINDS,
    _explain,
    kinds_of,
    prepare_for,
    run_compute,
    run_each_kind_icarus,
)

STRESS_DIR = BUILD / "compute" / "stress"
PACKAGE = STRESS_DIR / "package"
RESULTS = RESULTS_DIR / "compute-stress"

#: the coverage bins the stress network is built to hit (LayerThenChainedTest, 2 images)
DESIGNED_BINS = (
    "kind=regular stride=1", "kind=regular stride=2",
    *(f"pad_edge kind={k} stride={s} edge={e}" for k in ("regular", "depthwise")
      for s in (1, 2) for e in ("top", "bottom", "left", "right")),
    "kind=depthwise stride=1", "kind=depthwise stride=2", "kind=pointwise stride=1",
    "kind=linear stride=1", "kind=add stride=1", "kind=pool stride=1",
    *(f"shift kind={k} n={n}" for k in ("regular", "depthwise", "pointwise", "linear")
      for n in ("negative", "zero", "positive")),
    *(f"saturate kind={k} end={e}" for k in ("regular", "depthwise", "pointwise", "linear",
                                             "add") for e in ("low", "high")),
    *(f"tie kind={k}" for k in ("regular", "depthwise", "pointwise", "linear", "add",
                                  "pool")),
)

pytestmark = pytest.mark.sim


def stress_package() -> Path:
    """build/compute/stress/package, (re)written only when it differs from the generator's."""
    from cosim.tb.compute.stress import make_stress_package

    STRESS_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=STRESS_DIR) as tmp:
        fresh = make_stress_package(Path(tmp) / "package")
        manifest = (fresh / "manifest.json").read_bytes()
        old = PACKAGE / "manifest.json"
        if not old.is_file() or old.read_bytes() != manifest:
            if PACKAGE.exists():
                shutil.rmtree(PACKAGE)
            shutil.move(str(fresh), str(PACKAGE))
    return PACKAGE


@pytest.fixture(scope="module")
def stress_network():
    from cosim.tb.sim import select_network

    return select_network({"COCOSIM_PACKAGE": str(stress_package())})


@pytest.fixture(scope="module")
def stress_prepared(stress_network):
    return prepare_for(stress_network, images=2)


def _require(sim: str) -> None:
    if not simulator_available(sim):
        pytest.skip(f"{sim} is not installed")


def test_stress_package_valid(stress_network, stress_prepared):
    """Loadable, accepted by the golden model and the program builder; the corners the
    mutation test relies on exist in the package (tb/compute_mutants reasons all False
    except the accelerator's bias-lane alignment)."""
    from cosim.quant.package import load_package
    from cosim.tb.compute_mutants import check_not_exercised

    package = load_package(stress_network.package_dir)
    assert "data" not in package.manifest
    assert package.manifest["model"]["input_shape"] == [3, 9, 9]
    weights = sum(math.prod(e["weight_shape"]) for e in package.layers
                  if e["op"] in ("conv2d", "linear"))
    assert weights < 500_000
    holds = check_not_exercised(package, stress_prepared.program, stress_network.layout.config)
    assert {k for k, v in holds.items() if v} == {"tiles_bias_aligned"}, holds


def test_stress_verilator(stress_network, stress_prepared):
    """LayerThenChainedTest: every code identical, top-1 equal, the designed bins hit."""
    _require("verilator")
    s = run_compute("verilator", "LayerThenChainedTest", stress_network, stress_prepared,
                    tag="stress", results=RESULTS)
    assert s["passed"], _explain(s)
    n = len(stress_prepared.program.steps)
    modes = {(r["mode"], r["name"]) for r in s["steps"]}
    assert len({m for m in modes if m[0] == "layer"}) == n
    assert len({m for m in modes if m[0] == "chained"}) == n
    assert s["codes_identical"] == s["codes_checked"] > 0
    assert len(s["top1"]) == stress_prepared.images
    assert all(t["golden"] == t["rtl"] for t in s["top1"])
    assert s["parameter_load"]["image_words_wrong"] == 0
    cov = json.loads((RESULTS / "coverage-LayerThenChainedTest-verilator.json").read_text())
    missing = [b for b in DESIGNED_BINS if not cov["hits"].get(b)]
    assert not missing, f"designed bins not hit: {missing}"


def test_stress_each_kind_icarus(stress_network, stress_prepared):
    """Icarus: the first step of each kind, layer by layer in one simulation
    (COMPUTE_LAYERS=kinds; the whole stress network chained takes about a minute on
    Icarus, the Verilator test above runs it)."""
    assert kinds_of(stress_prepared.program) == sorted(ICARUS_KINDS)
    s = run_each_kind_icarus(stress_network, stress_prepared, "stress-kinds",
                             RESULTS / "icarus")
    assert s["codes_identical"] == s["codes_checked"] > 0
