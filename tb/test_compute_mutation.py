"""Datapath mutation test of the compute engine (tb/compute_mutants.py).

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest tb/test_compute_mutation.py -v -s

The cheap tests check that every mutant's pattern occurs exactly once in
rtl/cnn_compute_engine.sv and that the reasons given for NOT_EXERCISED still hold
for the package. The slow one runs the Verilator LayerByLayerTest (whole network,
seed 1) on the original RTL (must pass), then on every mutant of COMPUTE_MUTANTS,
two at a time, asserts that all are killed, prints a table and writes
build/test-results/compute-mutation-verilator.json. A survivor of the test image is
run again on the stress image (tb/compute_mutants.prepare_stress), then on the STRESS
package (tb/compute/stress.py, LayerByLayerTest on that synthetic network, seed 1):
the HOLES and NOT_EXERCISED mutants of STRESS_KILLED run too and must all be killed
(by the stress package: the shipped network cannot reveal them).
COMPUTE_MUTATION_ALL=1 also runs the rest of HOLES and NOT_EXERCISED
(bias_lane_from_tile_lane: reported, not asserted).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cosim.tb.compute_mutants import (
    COMPUTE_MUTANTS,
    HOLES,
    NOT_EXERCISED,
    REASONS,
    STRESS_KILLED,
    apply_all,
    baseline,
    check_not_exercised,
    prepare_stress,
    run_compute_mutants,
    table,
)
from cosim.tb.mutants import write_report
from cosim.tb.sim import RESULTS_DIR, RTL_DIR, simulator_available
from cosim.tb.test_compute import compute_sources, prepared  # noqa: F401  (fixture)


def test_patterns_apply_once():
    """Every mutant (killed ones and NOT_EXERCISED) applies exactly once; names unique."""
    others = [m for m, _ in HOLES + NOT_EXERCISED]
    names = [m.name for m in COMPUTE_MUTANTS] + [m.name for m in others]
    assert len(names) == len(set(names))
    assert len(COMPUTE_MUTANTS) >= 12
    text = (RTL_DIR / "cnn_compute_engine.sv").read_text()
    for name, m in zip(names, [*COMPUTE_MUTANTS, *others], strict=True):
        assert m.area == "datapath" and m.bug, name
        assert text.count(m.pattern) == 1, f"{name}: pattern not found exactly once"
    assert all(reason in REASONS for _, reason in NOT_EXERCISED)


def test_patterns_apply_on_sources(network):
    assert apply_all([Path(p) for p in compute_sources(network)]) == len(
        COMPUTE_MUTANTS) + len(HOLES) + len(NOT_EXERCISED)


def test_not_exercised_reasons_hold(network):
    """The package still cannot reveal the NOT_EXERCISED bugs (otherwise they belong in
    COMPUTE_MUTANTS, with the 100 % assertion)."""
    from cosim.golden.engine_program import build_program
    from cosim.quant.package import load_package

    package = load_package(network.package_dir)
    program = build_program(package, network.layout, input_shape=(3, 32, 32))
    holds = check_not_exercised(package, program, network.layout.config)
    broken = [k for k, v in holds.items() if not v]
    assert not broken, f"the package exercises {broken}: move those mutants to COMPUTE_MUTANTS"


def _stress():
    """(network, prepared) of the stress package (built under build/compute/stress/)."""
    from cosim.tb.sim import select_network
    from cosim.tb.test_compute import prepare_for
    from cosim.tb.test_compute_stress import stress_package

    net = select_network({"COCOSIM_PACKAGE": str(stress_package())})
    return net, prepare_for(net, images=2)


def test_stress_package_exercises_not_exercised():
    """The stress package reveals what the shipped one cannot: every reason of the
    STRESS_KILLED mutants is False on it (only the accelerator's bias-lane alignment
    holds, and its mutant is not in STRESS_KILLED)."""
    from cosim.quant.package import load_package

    net, prep = _stress()
    holds = check_not_exercised(load_package(net.package_dir), prep.program, net.layout.config)
    by_name = {m.name: reason for m, reason in NOT_EXERCISED}
    for name in STRESS_KILLED:
        if name in by_name:
            assert not holds[by_name[name]], f"{name}: the stress package still has {by_name[name]}"
    assert {k for k, v in holds.items() if v} == {"tiles_bias_aligned"}


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.compute_mutation
def test_compute_mutants_killed_verilator(network, prepared):  # noqa: F811
    if not simulator_available("verilator"):
        pytest.skip("verilator is not installed")
    failed, detail = baseline(network, prepared)
    assert not failed and detail.get("passed"), f"baseline fails on the original RTL: {detail}"
    failed, detail = baseline(network, prepare_stress(network, prepared), name="baseline-stress")
    assert not failed and detail.get("passed"), (f"baseline fails on the original RTL with the "
                                                 f"stress image: {detail}")
    stress = _stress()
    failed, detail = baseline(*stress, name="baseline-stresspkg")
    assert not failed and detail.get("passed"), (f"baseline fails on the original RTL with the "
                                                 f"stress package: {detail}")
    others = [m for m, _ in HOLES + NOT_EXERCISED]
    mutants = list(COMPUTE_MUTANTS) + [m for m in others if m.name in STRESS_KILLED]
    if os.environ.get("COMPUTE_MUTATION_ALL", "") == "1":
        mutants += [m for m in others if m.name not in STRESS_KILLED]
    results, details, wall = run_compute_mutants(network, prepared, mutants, jobs=2,
                                                 second=stress)
    print(f"\ncompute mutation (verilator, LayerByLayerTest, seed 1): "
          f"{sum(r.killed for r in results)}/{len(results)} killed in {wall:.0f} s")
    print(table(results, details))
    from cosim.tb.compute_mutants import killer_for, mutant_work

    path = write_report(results, "verilator",
                        killer_for(network, prepared, mutant_work(prepared, "report")), wall,
                        RESULTS_DIR / "compute-mutation-verilator.json")
    data = json.loads(path.read_text())  # + the stimulus that killed, the failing steps
    for entry in data["mutants"]:
        d = details.get(entry["name"], {})
        entry["stimulus"] = d.get("stimulus", "") if entry["killed"] else ""
        entry["steps_failed"] = d.get("steps_failed", 0)
        entry["first_step"] = d.get("first_step", "")
    must = {m.name for m in COMPUTE_MUTANTS} | set(STRESS_KILLED)
    data["expected_killed"] = sorted(must)
    path.write_text(json.dumps(data, indent=1) + "\n")
    alive = [r.mutant.name for r in results if r.mutant.name in must and not r.killed]
    assert not alive, f"mutants not killed: {alive}"
