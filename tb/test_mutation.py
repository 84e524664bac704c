"""Mutation test: the testbench must fail on every RTL mutant of tb/mutants.py.

    .venv/bin/python -m pytest tb/test_mutation.py -s          # prints killed/total
    MUTATION_KILLER=test_bare:bare_loop,stall,bad_headers \
        .venv/bin/python -m pytest tb/test_mutation.py

Runs on Icarus (a build takes about a second). The killer first runs on the
original RTL and must pass there, or a "kill" would mean nothing.
"""

from __future__ import annotations

import pytest
from mutants import MUTANTS, Killer, apply, report, run_killer, run_mutants


def test_every_mutant_pattern_applies_exactly_once(tmp_path):
    for m in MUTANTS:
        copies = apply(m, root=tmp_path)
        assert m.replacement in next(p for p in copies if p.name == m.file).read_text()


@pytest.mark.sim
@pytest.mark.slow
def test_testbench_kills_every_mutant_icarus(golden_dir):
    killer = Killer.from_env()
    failed, xml = run_killer(killer, "icarus", tag="mutant-baseline")
    assert not failed, f"the killer fails on the original RTL ({failed}); see {xml}"
    results = run_mutants(MUTANTS, killer, "icarus")
    text = report(results)
    print(text)
    alive = [r.mutant.name for r in results if not r.killed]
    assert not alive, f"mutants not killed: {alive}\n{text}"
