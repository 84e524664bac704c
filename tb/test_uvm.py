"""pytest entry of the pyuvm environment (tb/env/, tests in tb/tests_uvm.py).

    .venv/bin/python -m pytest tb/test_uvm.py -v                  # every test, both sims
    .venv/bin/python -m pytest tb/test_uvm.py -n auto             # in parallel
    .venv/bin/python -m pytest tb/test_uvm.py -k "WholeNetwork"   # throughput test, both sims
    RANDOM_SEED=1234 .venv/bin/python -m pytest tb/test_uvm.py -k "verilator-Malformed"
    COCOSIM_SEEDS=20 .venv/bin/python -m pytest tb/test_uvm.py -n 2 -k "icarus and seed"
    COCOSIM_VERBOSE=1 .venv/bin/python -m pytest tb/test_uvm.py -k WholeNetwork -s

Each case builds (cached) and runs one uvm_test on one simulator through
tb/sim.py's run_cocotb; the test writes build/test-results/<Test>-<sim>.json
(summary: sim, seed, words_expected, words_checked, mismatches, wall_s,
words_per_s, ...) and coverage-<Test>-<sim>.{json,txt}. Seeds are pinned
(PINNED_SEED = 1), so a verdict never depends on the run: RANDOM_SEED=N runs
every case with seed N instead, and COCOSIM_SEEDS=N (or a list "3,17,99") runs
every test that draws random numbers (RANDOM_TESTS) over seeds 1..N: one more
case per seed besides the pinned one (id `<sim>-<Test>-seed<k>`, results under
build/test-results/seeds/<k>/). Cases share nothing but the cached build and the
golden files, so `pytest -n auto` works.

Knobs passed through to the simulation: COCOSIM_BACKPRESSURE (e.g.
"bursty,idle(0.1)"), COCOSIM_VERBOSE=1 (one line per stored segment).

Any network: COCOSIM_PACKAGE=<package dir> (and optionally COCOSIM_GOLDEN=<the
golden dir made from it>) runs every test on that package; the RTL is built with a
cnn_layout_pkg.sv generated for its layout (tb/sim.py sources_for_layout). A
selection that does not fit (COCOSIM_GOLDEN alone, a golden dir of another package)
fails with one line.
"""

from __future__ import annotations

import json
import os

import pytest
from cosim.tb.sim import (
    DEFAULT_SEED,
    REPO,
    RESULTS_DIR,
    SIMS,
    run_cocotb,
    simulator_available,
    waves_hint,
)

TESTS = ("WholeNetworkTest", "RandomSubsetTest", "BackpressureTest", "ResetReloadTest",
         "MalformedTest")
#: tests whose stimulus depends on the seed (layer subset, stall/idle plans, cut point)
RANDOM_TESTS = ("RandomSubsetTest", "BackpressureTest", "ResetReloadTest")
#: the seed of every default case (RANDOM_SEED / COCOTB_RANDOM_SEED override it)
PINNED_SEED = DEFAULT_SEED
#: tests that stream the whole network (MobileNetV2: 281,046 words) at least once
SLOW = {"WholeNetworkTest", "BackpressureTest", "ResetReloadTest"}
PASS_THROUGH = ("COCOSIM_BACKPRESSURE", "COCOSIM_VERBOSE", "COCOSIM_PACKAGE", "COCOSIM_GOLDEN",
                "COCOSIM_ACCEL")


def extra_seeds(text: str | None = None) -> list[int]:
    """The seeds COCOSIM_SEEDS adds to the pinned one: "N" -> 1..N, "3,17,99" -> those,
    minus PINNED_SEED (its case runs anyway); unset or empty -> none."""
    text = (os.environ.get("COCOSIM_SEEDS", "") if text is None else text).strip()
    if not text:
        return []
    try:
        if "," in text:
            seeds = {int(s, 0) for s in text.split(",") if s.strip()}
        else:
            seeds = set(range(1, int(text, 0) + 1))
    except ValueError:
        raise pytest.UsageError(f"COCOSIM_SEEDS must be a count or a comma-separated list "
                                f"of seeds, got {text!r}") from None
    return sorted(seeds - {PINNED_SEED})


def _cases():
    for sim in SIMS:
        for test in TESTS:
            marks = [pytest.mark.sim]
            if test in SLOW:
                marks.append(pytest.mark.slow)
            if not simulator_available(sim):
                marks.append(pytest.mark.skip(reason=f"{sim} is not installed"))
            yield pytest.param(sim, test, None, marks=marks, id=f"{sim}-{test}")
            if test in RANDOM_TESTS:
                for s in extra_seeds():
                    yield pytest.param(sim, test, s, marks=marks, id=f"{sim}-{test}-seed{s}")


def _env_seed() -> int | None:
    for name in ("COCOTB_RANDOM_SEED", "RANDOM_SEED"):
        value = os.environ.get(name, "").strip()
        if value:
            return int(value, 0)
    return None


@pytest.mark.parametrize(("sim", "test", "seed"), list(_cases()))
def test_uvm(sim: str, test: str, seed: int | None, network) -> None:
    results = RESULTS_DIR if seed is None else RESULTS_DIR / "seeds" / str(seed)
    tag = None if seed is None else f"seed{seed}"
    seed_value = seed if seed is not None else (_env_seed() or PINNED_SEED)
    summary_path = results / f"{test}-{sim}.json"
    summary_path.unlink(missing_ok=True)
    dump = REPO / "build" / "sim" / "dumps" / f"{test}-{sim}{'-' + tag if tag else ''}.hex"
    env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
    env |= network.env
    env["COCOSIM_SIM"] = sim
    env["COCOSIM_RESULTS"] = str(results)
    xml = run_cocotb(sim, "cosim.tb.tests_uvm", testcase=test, extra_env=env,
                     plusargs=[f"+DUMP_FILE={dump}"], check=False, tag=tag,
                     seed_value=seed_value, sources=network.sources)
    waves = waves_hint(sim, "cosim.tb.tests_uvm", test, tag)
    assert summary_path.is_file(), (f"{test} on {sim} ended before its report phase; see the "
                                    f"log above and {xml}; {waves}")
    summary = json.loads(summary_path.read_text())
    if summary.get("prerun_error"):
        pytest.fail(summary["prerun_error"], pytrace=False)
    print(f"{test} on {sim}: seed {summary['seed']}, {summary['words_checked']}/"
          f"{summary['words_expected']} writes checked, {summary['mismatches']} mismatches, "
          f"{summary['stream_words']} words in {summary['wall_s']} s "
          f"({summary['words_per_s']} words/s), coverage {summary['coverage_percent']}%")
    assert summary["mismatches"] == 0, (
        f"{test} on {sim} (RANDOM_SEED={summary['seed']} reproduces; {waves}): "
        + "\n".join(summary["errors"]))
    assert summary["dump_checked"], f"{test} on {sim}: final memory not compared; see {xml}"
    assert summary["status_checks"] > 0, f"{test} on {sim}: no status output was checked"
    assert summary["passed"], f"{test} on {sim}: see {xml}; {waves}"
    from cosim.tb.sim import results_summary
    tests, failed = results_summary(xml)
    assert tests == 1 and not failed, (f"{test} on {sim}: cocotb reports {failed}; see {xml}; "
                                       f"{waves}")


# ---------------------------------------------------------------- env helpers, no simulator


def test_backpressure_parse_and_plan_are_seeded():
    import numpy as np
    from cosim.tb.env.config import BackPressure

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
    from cosim.tb.env.signals import decode_bits, to_binstrs

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
    from cosim.tb.env.scoreboard import read_memh

    f = tmp_path / "mem.hex"
    f.write_text("// 0x00000000\n@2\n00000000000000ff\nxxxxxxxxxxxxxxxx\n@10 abc 12\n")
    values, unknown = read_memh(f, 20)
    assert values[2] == 0xFF and values[16] == 0xABC and values[17] == 0x12
    assert np.flatnonzero(~unknown).tolist() == [2, 16, 17]


def test_malformed_items_carry_their_expectations():
    import numpy as np
    from cosim.golden.image import Segment, header_word, parse_header
    from cosim.golden.layout import LayoutError
    from cosim.tb.env.config import (
        FLAG_COUNT,
        FLAG_EARLY_TLAST,
        FLAG_KIND,
        FLAG_LAYER,
        FLAG_MAGIC,
        FLAG_MISSING_TLAST,
        STATE_DATA,
        STATE_DROP,
        STATE_HEADER,
    )
    from cosim.tb.env.items import (
        MALFORMATIONS,
        RESERVED_BITS,
        header_field,
        malformed,
        malformed_space,
        truncated,
    )

    words = np.arange(10, dtype=np.uint64)
    seg = Segment(3, "l3", 0, header_word(3, 0, 10), words)
    space = malformed_space(seg, num_layers=53)
    tags = {m for m, _ in space}
    # a one-word header cannot be cut short by a tlast on an earlier header word
    assert tags == set(MALFORMATIONS) - {"header_word_tlast"} | {"truncated"}
    assert len(space) == len(set(space)), "no case twice"
    # every reserved bit, every magic bit, every kind value, the layer boundary
    assert sorted(d for m, d in space if m == "reserved_bits") == list(RESERVED_BITS)
    assert len(RESERVED_BITS) == 64 - 8 - 8 - 4 - 24
    assert sorted(d for m, d in space if m == "bad_magic") == list(range(8))
    assert sorted(d for m, d in space if m == "unknown_kind") == list(range(3, 16))
    assert min(d for m, d in space if m == "unknown_layer") == 53
    assert sorted(d for m, d in space if m == "early_tlast") == [0, 4, 8]
    assert {10 ^ (1 << b) for b in range(24)} <= {d for m, d in space if m == "wrong_count"}
    flag_of = {"bad_magic": FLAG_MAGIC, "reserved_bits": FLAG_MAGIC,
               "unknown_layer": FLAG_LAYER, "unknown_kind": FLAG_KIND,
               "wrong_count": FLAG_COUNT, "header_tlast": FLAG_MAGIC,
               "valid_header_tlast": FLAG_EARLY_TLAST, "early_tlast": FLAG_EARLY_TLAST,
               "missing_tlast": FLAG_MISSING_TLAST}
    for m, d in space:
        it = malformed(seg, m, d, num_layers=53)
        assert it.stream().shape[0] == it.stream_len
        if m == "truncated":
            assert not it.tlast and it.end_state == STATE_DATA and it.expected_writes == d
            continue
        assert it.tlast and it.end_state == STATE_HEADER
        assert it.expected_flags == flag_of[m] and it.dont_care_flags == 0, (m, d)
        if m in ("bad_magic", "reserved_bits", "unknown_layer", "unknown_kind",
                 "wrong_count"):
            try:  # the golden parser refuses it, or it names another layer/kind/count
                fields = parse_header(it.header)
            except LayoutError:
                fields = None
            assert fields != (3, 0, 10), (m, d)
            assert it.expected_writes == 0
            assert (it.probe_after, it.probe_state, it.probe_flags) == (0, STATE_DROP,
                                                                        flag_of[m])
    assert header_field(malformed(seg, "unknown_layer", 200, 53).header, "layer") == 200
    early = malformed(seg, "early_tlast", 4, 53)
    assert early.count == 5 and early.expected_writes == 5
    assert (early.probe_after, early.probe_state, early.probe_writes) == (4, STATE_DATA, 4)
    missing = malformed(seg, "missing_tlast", 3, 53)
    assert missing.expected_writes == 10 and missing.stream().shape == (14,)
    assert int(missing.stream()[11]) == seg.header  # junk: a valid header, then more
    assert (missing.probe_after, missing.probe_state) == (10, STATE_DROP)
    assert malformed(seg, "header_tlast", 0, 53).stream().shape == (1,)
    valid = malformed(seg, "valid_header_tlast", 0, 53)
    assert valid.stream().shape == (1,) and valid.header == seg.header
    cut = truncated(seg, 4)
    assert not cut.tlast and cut.expected_writes == 4 and cut.stream().shape == (5,)
    with pytest.raises(ValueError):
        malformed(seg, "reserved_bits", 20, 53)  # bit 20 is a count bit
    with pytest.raises(ValueError):
        malformed(seg, "unknown_layer", 52, 53)


def test_multi_word_headers_split_low_word_first_and_shift_the_probes():
    """32-bit words: a 64-bit header is two stream words (bits [31:0] first); a
    128-bit word carries a 64-bit header zero-extended (bits 64..127 reserved)."""
    import numpy as np
    from cosim.golden.image import Segment, header_word
    from cosim.tb.env.config import FLAG_EARLY_TLAST, STATE_DATA, STATE_DROP, HeaderSpec
    from cosim.tb.env.items import (
        header_spec,
        malformed,
        malformed_space,
        set_header_spec,
    )

    default = header_spec()
    try:
        set_header_spec(HeaderSpec(64, 32, 0xA5, default.fields))
        h = header_word(3, 0, 10)
        seg = Segment(3, "l3", 0, h, np.arange(10, dtype=np.uint64))
        good = malformed(seg, "early_tlast", 4, 53)
        s = good.stream()
        assert s.shape == (2 + 5,) and int(s[0]) == h & 0xFFFFFFFF and int(s[1]) == h >> 32
        assert (good.probe_after, good.probe_state, good.probe_writes) == (5, STATE_DATA, 4)
        bad = malformed(seg, "unknown_kind", 7, 53)
        assert (bad.probe_after, bad.probe_state) == (1, STATE_DROP)
        cut = malformed(seg, "header_word_tlast", 0, 53)
        assert cut.stream().shape == (1,) and int(cut.stream()[0]) == h & 0xFFFFFFFF
        assert cut.expected_flags == FLAG_EARLY_TLAST and cut.expected_writes == 0
        assert not cut.header_complete
        assert ("header_word_tlast", 0) in malformed_space(seg, 53)
        missing = malformed(seg, "missing_tlast", 1, 53)
        assert missing.stream().shape == (2 + 10 + 2,)  # junk: the two header words
        assert (missing.probe_after, missing.probe_state) == (11, STATE_DROP)
        set_header_spec(HeaderSpec(64, 128, 0xA5, default.fields))
        seg = Segment(3, "l3", 0, h, np.ones((10, 2), dtype=np.uint64))
        wide = malformed(seg, "reserved_bits", 100, 53)
        s = wide.stream()
        assert s.shape == (11, 2) and int(s[0, 1]) == 1 << 36 and int(s[0, 0]) == h
        assert len(header_spec().reserved_bits) == 128 - 8 - 8 - 4 - 24
    finally:
        set_header_spec(default)


def test_pressure_plans_are_deterministic_and_press_every_word():
    from cosim.tb.env.items import PRESSURES, pressure_plan

    assert pressure_plan("none", 5) == (None, None)
    stall, idle = pressure_plan("stall", 7)
    assert idle is None and (stall > 0).all()
    stall, idle = pressure_plan("idle", 7)
    assert (idle > 0).all() and stall.any()
    for p in PRESSURES:
        a, b = pressure_plan(p, 9), pressure_plan(p, 9)
        assert all((x is None and y is None) or (x == y).all() for x, y in zip(a, b, strict=True))


def test_seed_list_from_the_environment():
    assert PINNED_SEED == 1
    assert extra_seeds("") == [] and extra_seeds("3") == [2, 3] and extra_seeds("1") == []
    assert extra_seeds("17, 3,17,1") == [3, 17]
    with pytest.raises(pytest.UsageError):
        extra_seeds("many")


def test_failure_messages_name_the_waves(monkeypatch, tmp_path):
    """A failing test says where its waves are, or how to record them."""
    from cosim.tb import sim

    monkeypatch.delenv("WAVES", raising=False)
    hint = waves_hint("icarus", "cosim.tb.tests_uvm", "WholeNetworkTest")
    assert "WAVES=1" in hint
    assert hint.endswith("icarus/tests_uvm.WholeNetworkTest/cnn_param_top.fst")
    monkeypatch.setattr(sim, "RUNS_ROOT", tmp_path)
    fst = sim.run_dir_of("icarus", "cosim.tb.tests_uvm", "WholeNetworkTest") / sim.WAVES_FILE
    fst.parent.mkdir(parents=True)
    fst.write_bytes(b"")
    monkeypatch.setenv("WAVES", "1")
    assert waves_hint("icarus", "cosim.tb.tests_uvm", "WholeNetworkTest") == \
        f"waves: {fst} (make waves opens the newest)"
