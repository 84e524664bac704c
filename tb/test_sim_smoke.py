"""pytest entry of the bare cocotb tests (tb/test_bare.py) on Icarus and Verilator.

    .venv/bin/python -m pytest tb/test_sim_smoke.py -v            # both simulators
    WAVES=1 .venv/bin/python -m pytest tb/test_sim_smoke.py -k icarus

The whole MobileNetV2 stream (280,940 words) goes through the RTL once per
simulator; JUnit XML lands in build/test-results/, the cocotb run directory in
build/sim/runs/<sim>/.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from cosim.tb.sim import (
    SIMS,
    compile_icarus,
    fst_signal_names,
    gtkw_signals,
    lint_verilator,
    run_cocotb,
)


def test_rtl_lints_clean_in_verilator():
    run = lint_verilator()
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "%Warning" not in out, out


def test_every_rtl_file_lints_clean_together():
    """All of rtl/*.sv in one Verilator run, every top at once: also what no single top
    shows (a task argument hiding a port of another top, say)."""
    from cosim.tb.sim import RTL_DIR

    run = lint_verilator(sorted(RTL_DIR.glob("*.sv")), top=None)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "%Warning" not in out, out


def test_rtl_compiles_in_icarus(tmp_path):
    run = compile_icarus(tmp_path / "top.vvp")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "warning" not in out.lower(), out


#: accelerator variants whose generated layout packages must lint and compile clean too:
#: the shipped files (32-bit words with two-word headers, 128-bit words) and
#: default.toml with byte addresses (tb/mutants.py VARIANTS)
LINT_VARIANTS = ("acc32_16x16", "acc128", "byte64")


@pytest.mark.parametrize("variant", LINT_VARIANTS)
def test_rtl_lints_and_compiles_for_other_accelerators(variant, tmp_path, golden_dir):
    """MobileNetV2 laid out for another accelerator file: the loader, memory and top
    with that generated package, clean in Verilator -Wall and Icarus -Wall."""
    from cosim.tb.mutants import variant_sources

    sources = variant_sources(variant)
    assert sources[0].name == "cnn_layout_pkg.sv" and "build" in sources[0].parts
    run = lint_verilator(sources)
    out = run.stdout + run.stderr
    assert run.returncode == 0 and "%Warning" not in out, out
    run = compile_icarus(tmp_path / "top.vvp", sources)
    out = run.stdout + run.stderr
    assert run.returncode == 0 and "warning" not in out.lower(), out


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMS)
def test_bare_loop(sim, golden_dir):
    """The whole golden stream, one word per clock, then a memory dump == image.npz."""
    run_cocotb(sim, "cosim.tb.test_bare", testcase="bare_loop",
               plusargs=["+DUMP_FILE=param_memory.hex"])


@pytest.mark.sim
@pytest.mark.parametrize("sim", SIMS)
def test_bad_headers(sim, golden_dir):
    """Malformed segments raise their error flag and never write."""
    run_cocotb(sim, "cosim.tb.test_bare", testcase="bad_headers")


@pytest.mark.sim
@pytest.mark.parametrize("sim", SIMS)
def test_write_log(sim, golden_dir):
    """The batched write log (wlog_*) read from Python, a few layers of the stream."""
    run_cocotb(sim, "cosim.tb.test_bare", testcase="write_log",
               extra_env={"BARE_LAYERS": "0,1,2,51,52"})


@pytest.mark.sim
def test_write_log_flags_x_icarus(golden_dir):
    """An X on the write bus is logged as bad on Icarus (4-state)."""
    run_cocotb("icarus", "cosim.tb.test_bare", testcase="write_log_flags_x")


@pytest.mark.sim
@pytest.mark.parametrize("sim", [
    "icarus", pytest.param("verilator", marks=pytest.mark.slow)])  # a tracing Verilator build
def test_gtkw_save_file_matches_the_waves(sim, golden_dir, monkeypatch):
    """WAVES=1 writes an FST holding every signal tb/cnn_param.gtkw shows, and GTKWave
    opens it with the save file (headless, under Xvfb). Skipped, before anything runs,
    where fst2vcd, gtkwave or xvfb-run is not installed."""
    missing = [tool for tool in GTKWAVE_TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: the waves check needs GTKWave and "
                    "Xvfb (make setup installs them as root; apt-get install gtkwave xvfb)")
    monkeypatch.delenv("WAVES", raising=False)
    xml = run_cocotb(sim, "cosim.tb.test_bare", testcase="bare_loop", waves=True, tag="waves",
                     extra_env={"BARE_LAYERS": "52"})
    fst = xml.parents[1] / "sim" / "runs" / sim / "test_bare.bare_loop.waves" / "cnn_param_top.fst"
    names = fst_signal_names(fst)
    missing = [s for s in gtkw_signals() if s not in names]
    assert not missing, f"{missing} not in {fst}"
    assert (fst.parent / "cnn_param.gtkw").is_file()
    _check_gtkwave_loads(fst, fst.parent / "cnn_param.gtkw")


#: tools the waves test runs: fst2vcd (signal names), gtkwave under xvfb-run
GTKWAVE_TOOLS = ("fst2vcd", "gtkwave", "xvfb-run")

GTKWAVE_PROBE = """set facs [ gtkwave::getNumFacs ]
set shown [ gtkwave::getDisplayedSignals ]
puts "GTKWAVE-PROBE facs=$facs displayed=[llength $shown]"
gtkwave::/File/Quit
"""


def _check_gtkwave_loads(fst, save) -> None:
    """GTKWave itself opens the FST with the save file (headless, under Xvfb) and shows
    every signal of the save file (the caller checked that the tools exist)."""
    script = fst.parent / "probe.tcl"
    script.write_text(GTKWAVE_PROBE)
    run = subprocess.run(["xvfb-run", "-a", "gtkwave", f"--script={script}", str(fst),
                          str(save)], capture_output=True, text=True, timeout=120)
    found = re.search(r"GTKWAVE-PROBE facs=(\d+) displayed=(\d+)", run.stdout + run.stderr)
    assert found, f"gtkwave did not run the probe: {run.stdout[-500:]} {run.stderr[-500:]}"
    assert int(found.group(1)) > 0
    assert int(found.group(2)) >= len(gtkw_signals())


@pytest.mark.sim
@pytest.mark.parametrize("sim", SIMS)
def test_stall(sim, golden_dir):
    """Back-pressure (mem_stall) and tvalid gaps on a few layers."""
    run_cocotb(sim, "cosim.tb.test_bare", testcase="stall")
