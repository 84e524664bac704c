"""Mutation test: the testbench must fail on every RTL mutant of tb/mutants.py.

    .venv/bin/python -m pytest tb/test_mutation.py -s -k icarus    # prints killed/total
    make mutation SIM=verilator                                    # the Verilator run
    MUTATION_KILLER=test_bare:bare_loop,stall,bad_headers \\
        .venv/bin/python -m pytest tb/test_mutation.py -k icarus

The Icarus run is part of `make test` (a build takes about a second); the
Verilator one (a C++ build per mutant) runs only when MUTATION_SIMS names it
(`make mutation SIM=verilator` sets it). The killer first runs on the original
RTL and must pass there, or a "kill" would mean nothing. Every mutant must be
killed; the report (printed, and build/test-results/mutation-<sim>.json) names
the test that killed each one and the scoreboard checks that fired, and every
check of the scoreboard that a mutant can reach must have fired at least once
(a check that never fires is not known to work).
"""

from __future__ import annotations

import os
import time

import pytest
from cosim.tb.mutants import (
    CONTROL_CLASSES,
    MUTANTS,
    Killer,
    apply,
    killer_checks,
    report,
    run_killer,
    run_mutants,
    write_report,
)
from cosim.tb.sim import SIMS

#: scoreboard / driver checks each of which some mutant must trip (check the checker)
CHECKS_THAT_MUST_FIRE = (
    "write", "counts", "dump", "dump.missing", "reset_writes",
    "handshake.tready", "handshake.tready_stall", "handshake.tready_reset",
    "status.state", "status.layer", "status.kind", "status.segments_done",
    "status.words_written", "status.error_flags",
)


def test_every_mutant_pattern_applies_exactly_once(tmp_path):
    for m in MUTANTS:
        copies = apply(m, root=tmp_path)
        assert m.replacement in next(p for p in copies if p.name == m.file).read_text()
    names = [m.name for m in MUTANTS]
    assert len(set(names)) == len(names), "mutant names must be unique"
    control = [m for m in MUTANTS if m.area in CONTROL_CLASSES]
    assert len(MUTANTS) >= 20 and 2 * len(control) >= len(MUTANTS), (
        f"{len(MUTANTS)} mutants, {len(control)} in {CONTROL_CLASSES}")


def _enabled(sim: str) -> bool:
    if sim == "icarus":
        return True
    return sim in os.environ.get("MUTATION_SIMS", "").replace(",", " ").split()


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMS)
def test_testbench_kills_every_mutant(sim, golden_dir):
    if not _enabled(sim):
        pytest.skip(f"the {sim} mutation run is `make mutation SIM={sim}` "
                    f"(MUTATION_SIMS={sim})")
    t0 = time.perf_counter()
    killer = Killer.from_env()
    for variant in sorted({m.variant for m in MUTANTS}):  # "" = the default package
        tag = "mutant-baseline" + (f"-{variant}" if variant else "")
        failed, xml = run_killer(killer, sim, tag=tag, variant=variant)
        first = killer_checks(sim, tag)[1]
        what = f"the original RTL{' of ' + variant if variant else ''}"
        assert not failed, f"the killer fails on {what} ({failed}: {first}); see {xml}"
    results = run_mutants(MUTANTS, killer, sim)
    wall = time.perf_counter() - t0
    text = report(results)
    path = write_report(results, sim, killer, wall)
    print(f"\n{text}\nmutation test on {sim}: {wall:.1f} s wall; report {path}")
    alive = [r.mutant.name for r in results if not r.killed]
    assert not alive, f"mutants not killed: {alive}\n{text}"
    if killer == Killer():  # the default killer: every check must have fired somewhere
        fired = {c for r in results for c in r.checks}
        silent = [c for c in CHECKS_THAT_MUST_FIRE if c not in fired]
        assert not silent, f"checks no mutant tripped: {silent}\n{text}"
