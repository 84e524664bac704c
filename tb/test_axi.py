"""pytest entry of the pushed and fetched parameter paths (tb/tests_axi.py).

    .venv/bin/python -m pytest tb/test_axi.py -v                 # every test, both sims
    .venv/bin/python -m pytest tb/test_axi.py -k "icarus and Dma"
    .venv/bin/python -m pytest tb/test_axi.py -k mutant          # checks of the checker

Each case builds (cached) cnn_param_axi_top and runs one test of tb/tests_axi.py on
one simulator; the test writes build/test-results/<Test>-<sim>.json. Seeds are pinned
(PINNED_SEED; RANDOM_SEED=N overrides). The mutant cases build the RTL with one
fault-injection define (rtl/axi_param_slave.sv, rtl/param_dma.sv) and require the
named checks to fail.
"""

from __future__ import annotations

import json
import os

import pytest
from cosim.tb.sim import (
    DEFAULT_SEED,
    REPO,
    RESULTS_DIR,
    RTL_DIR,
    SIMS,
    run_cocotb,
    simulator_available,
)

TOPLEVEL = "cnn_param_axi_top"
MODULE = "cosim.tb.tests_axi"
AXI_RTL = ("param_memory.sv", "axi_param_slave.sv", "axi_lite_param_slave.sv", "param_dma.sv",
           "cnn_param_axi_top.sv")
TESTS = ("AxiWholeNetworkTest", "AxiErrorsTest", "AxiLiteTest", "AxiLiteWholeNetworkTest",
         "DmaWholeNetworkTest", "DmaErrorsTest", "DmaFirstLayersTest")
SLOW = {"AxiWholeNetworkTest", "AxiLiteWholeNetworkTest", "DmaWholeNetworkTest"}
PINNED_SEED = DEFAULT_SEED
PASS_THROUGH = ("COCOSIM_VERBOSE", "COCOSIM_PACKAGE", "COCOSIM_GOLDEN", "COCOSIM_ACCEL")

#: fault injections -> (test that must catch it, checks that must fail)
MUTANTS = {
    "DMA_MUT_SKIP_WORD": ("DmaFirstLayersTest", {"ar.missing", "counts", "dump"}),
    "DMA_MUT_DOUBLE_BURST": ("DmaFirstLayersTest", {"ar.twice", "counts"}),
    "DMA_MUT_CROSS_4K": ("DmaFirstLayersTest", {"ar.4k", "dma.timeout"}),
    "AXI_MUT_WSTRB_LANE": ("AxiErrorsTest", {"resp", "counts"}),
    "AXI_MUT_ADDR_PLUS1": ("AxiErrorsTest", {"write"}),
}


def axi_sources(network) -> list:
    """The network's layout package (tb.sim.select_network) and the AXI top's modules."""
    return [network.sources[0], *(RTL_DIR / n for n in AXI_RTL)]


def _run(sim: str, test: str, network, defines: dict | None = None, tag: str | None = None,
         group: str = "axi-mutants") -> dict:
    name = f"{test}-{sim}"
    results = RESULTS_DIR if tag is None else RESULTS_DIR / group / tag
    summary_path = results / f"{name}.json"
    summary_path.unlink(missing_ok=True)
    dump = REPO / "build" / "sim" / "dumps" / f"axi-{name}{'-' + tag if tag else ''}.hex"
    env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
    env |= network.env
    env["COCOSIM_SIM"] = sim
    env["COCOSIM_RESULTS"] = str(results)
    seed = int(os.environ.get("RANDOM_SEED", "0") or 0, 0) or PINNED_SEED
    xml = run_cocotb(sim, MODULE, testcase=test, extra_env=env, plusargs=[f"+DUMP_FILE={dump}"],
                     check=False, tag=tag, seed_value=seed, sources=axi_sources(network),
                     defines=defines, toplevel=TOPLEVEL)
    assert summary_path.is_file(), f"{test} on {sim} ended before its report phase; see {xml}"
    summary = json.loads(summary_path.read_text())
    if summary.get("prerun_error"):
        pytest.fail(summary["prerun_error"], pytrace=False)
    summary["xml"] = str(xml)
    return summary


def _cases():
    for sim in SIMS:
        for test in TESTS:
            marks = [pytest.mark.sim]
            if test in SLOW:
                marks.append(pytest.mark.slow)
            if not simulator_available(sim):
                marks.append(pytest.mark.skip(reason=f"{sim} is not installed"))
            yield pytest.param(sim, test, marks=marks, id=f"{sim}-{test}")


@pytest.mark.parametrize(("sim", "test"), list(_cases()))
def test_axi(sim: str, test: str, network) -> None:
    s = _run(sim, test, network)
    print(f"{test} on {sim}: seed {s['seed']}, {s['words_checked']}/{s['words_expected']} "
          f"writes checked, {s['mismatches']} mismatches, {s['ar_bursts']} AR bursts, "
          f"{s['wall_s']} s ({s['words_per_s']} words/s)")
    assert s["mismatches"] == 0, f"{test} on {sim}: " + "\n".join(s["errors"])
    assert s["dump_checked"], f"{test} on {sim}: final memory not compared; see {s['xml']}"
    assert s["words_checked"] > 0 and s["words_checked"] == s["words_expected"]
    if test.startswith("Dma"):
        assert s["ar_bursts"] > 0
    assert s["passed"]


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("define", list(MUTANTS))
def test_axi_mutant_is_caught(define: str, network) -> None:
    """A faulty slave or DMA (one define) fails the named checks (Icarus, pinned seed)."""
    if not simulator_available("icarus"):
        pytest.skip("icarus is not installed")
    test, checks = MUTANTS[define]
    s = _run("icarus", test, network, defines={define: 1}, tag=define.lower())
    failed = set(s["checks_failed"])
    assert not s["passed"], f"{define} survived {test}"
    assert checks <= failed, (f"{define}: expected {sorted(checks)} to fail, got "
                              f"{s['checks_failed']}")


# ---------------------------------------------------------------- other accelerators

#: accelerator variants (tb/mutants.py: shipped files by stem, "byte64" = default.toml
#: with byte addresses): 32-bit words (an AXI4-Lite-sized bus), 128-bit words
VARIANTS = ("acc32_16x16", "acc128", "byte64")
#: the short tests every variant runs in make test; the whole-network ones are matrix
VARIANT_TESTS = ("AxiErrorsTest", "AxiLiteTest", "DmaFirstLayersTest")
VARIANT_SLOW = ("AxiWholeNetworkTest", "DmaWholeNetworkTest")


def _variant_network(variant: str):
    from cosim.tb.mutants import variant_env
    from cosim.tb.sim import select_network

    return select_network(variant_env(variant))


def _variant_cases():
    for variant in VARIANTS:
        for test in VARIANT_TESTS + VARIANT_SLOW:
            marks = [pytest.mark.sim]
            if test in VARIANT_SLOW:
                marks += [pytest.mark.slow, pytest.mark.matrix]
            yield pytest.param(variant, test, marks=marks, id=f"icarus-{variant}-{test}")


@pytest.mark.parametrize(("variant", "test"), list(_variant_cases()))
def test_axi_accelerator(variant: str, test: str) -> None:
    """The AXI and DMA paths on another word width / address unit (Icarus)."""
    if not simulator_available("icarus"):
        pytest.skip("icarus is not installed")
    s = _run("icarus", test, _variant_network(variant), tag=variant, group="axi-accel")
    assert s["mismatches"] == 0, f"{test} on {variant}: " + "\n".join(s["errors"])
    assert s["passed"] and s["words_checked"] == s["words_expected"] > 0


@pytest.mark.parametrize("variant", ("", *VARIANTS))
def test_axi_rtl_lints_and_compiles(variant: str, tmp_path) -> None:
    """verilator --lint-only -Wall and iverilog -g2012 -Wall of cnn_param_axi_top:
    no warning, for the default package and each variant's generated one."""
    import subprocess

    from cosim.tb.mutants import variant_sources
    from cosim.tb.sim import verilator_root

    srcs = [str(p) for p in [variant_sources(variant)[0], *(RTL_DIR / n for n in AXI_RTL)]]
    lint = subprocess.run([str(verilator_root() / "bin" / "verilator"), "--lint-only", "-Wall",
                           "--timing", "--top-module", TOPLEVEL, *srcs],
                          capture_output=True, text=True,
                          env=os.environ | {"VERILATOR_ROOT": str(verilator_root())})
    assert lint.returncode == 0 and "%Warning" not in lint.stderr, lint.stderr
    comp = subprocess.run(["iverilog", "-g2012", "-Wall", "-s", TOPLEVEL, "-o",
                           str(tmp_path / "top.vvp"), *srcs], capture_output=True, text=True)
    assert comp.returncode == 0 and not comp.stderr.strip(), comp.stderr


# ---------------------------------------------------------------- no simulator


def test_read_checker_catches_bad_bursts() -> None:
    """ReadChecker on hand-made ARs: legal ones pass, each illegal one names its check."""
    from cosim.tb.env.axi_image import SegmentSpan
    from cosim.tb.env.axi_read_monitor import ReadChecker

    spans = [SegmentSpan(0, 0, "a", 0, 600), SegmentSpan(0, 1, "a", 1024, 8)]
    errors: list[str] = []
    ck = ReadChecker(spans, 2048, 8, lambda m, c: errors.append(c))
    base = 0x1000
    ck.begin(base)
    ck.check(base, 255, 3, 1)                    # words 0..255, ends at 4 KiB
    ck.check(base + 256 * 8, 255, 3, 1)
    ck.check(base + 512 * 8, 87, 3, 1)
    ck.check(base + 1024 * 8, 7, 3, 1)
    ck.end(True)
    assert errors == []
    errors.clear()
    ck.begin(base)
    ck.check(base, 1, 3, 1)
    ck.check(base + 8, 0, 3, 1)                  # word 1 again
    assert errors == ["ar.twice"]
    cases = [((base + 600 * 8, 0, 3, 1), "ar.segment"),
             ((base + 1020 * 8, 7, 3, 1), "ar.segment"), ((base + 4, 0, 3, 1), "ar.align"),
             ((base, 0, 2, 1), "ar.size"), ((base, 0, 3, 2), "ar.burst"),
             ((base + 0xF00, 63, 3, 1), "ar.4k")]
    for args, check in cases:
        errors.clear()
        ck.begin(base)
        ck.check(*args)
        assert check in errors, (args, errors)
    errors.clear()
    ck.begin(base)
    ck.check(base, 255, 3, 1)
    ck.end(True)
    assert "ar.missing" in errors


def test_words_to_bytes_little_endian() -> None:
    import numpy as np
    from cosim.tb.env.axi_image import words_to_bytes

    assert words_to_bytes(np.array([0x0102030405060708], dtype=np.uint64), 64) == \
        bytes(range(8, 0, -1))
    assert words_to_bytes(np.array([0x11223344], dtype=np.uint64), 32) == \
        bytes([0x44, 0x33, 0x22, 0x11])
    wide = np.array([[1, 2]], dtype=np.uint64)   # 128 bits, limb 0 low
    assert words_to_bytes(wide, 128) == (1).to_bytes(8, "little") + (2).to_bytes(8, "little")
