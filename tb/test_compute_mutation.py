"""Datapath mutation test of the compute engine (tb/compute_mutants.py).

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest tb/test_compute_mutation.py -v -s

The cheap tests check that every mutant's pattern occurs exactly once in
rtl/cnn_compute_engine.sv and that the reasons given for NOT_EXERCISED still hold
for the package. The slow one runs the Verilator LayerByLayerTest (whole network,
seed 1) on the original RTL (must pass), then on every mutant of COMPUTE_MUTANTS,
two at a time, asserts that all are killed, prints a table and writes
build/test-results/compute-mutation-verilator.json. A survivor of the test image is
run again on the stress image (tb/compute_mutants.prepare_stress).
COMPUTE_MUTATION_ALL=1 also runs HOLES and NOT_EXERCISED (reported, not asserted).
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


@pytest.mark.sim
@pytest.mark.slow
def test_compute_mutants_killed_verilator(network, prepared):  # noqa: F811
    if not simulator_available("verilator"):
        pytest.skip("verilator is not installed")
    failed, detail = baseline(network, prepared)
    assert not failed and detail.get("passed"), f"baseline fails on the original RTL: {detail}"
    failed, detail = baseline(network, prepare_stress(network, prepared), name="baseline-stress")
    assert not failed and detail.get("passed"), (f"baseline fails on the original RTL with the "
                                                 f"stress image: {detail}")
    mutants = list(COMPUTE_MUTANTS)
    if os.environ.get("COMPUTE_MUTATION_ALL", "") == "1":
        mutants += [m for m, _ in HOLES + NOT_EXERCISED]
    results, details, wall = run_compute_mutants(network, prepared, mutants, jobs=2)
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
    data["expected_killed"] = sorted(m.name for m in COMPUTE_MUTANTS)
    path.write_text(json.dumps(data, indent=1) + "\n")
    must = {m.name for m in COMPUTE_MUTANTS}
    alive = [r.mutant.name for r in results if r.mutant.name in must and not r.killed]
    assert not alive, f"mutants not killed: {alive}"
