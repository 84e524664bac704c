"""Rows for the RTL simulation: parameter bytes checked per second, per simulator.

For each simulator, in this run and one after the other (never in parallel),
the bare cocotb loop (tb/test_bare.py::bare_loop: one word per clock, no
pyuvm, memory checked once at the end) and the pyuvm WholeNetworkTest stream
the same 280,940 words through the same RTL build, twice, alternating; each
keeps its fastest run. The ratio of their throughputs is the cost of the
verification environment.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TB = REPO / "tb"
WORD_BYTES = 8
TARGET_RATIO = 0.7
TARGET_VERILATOR_SECONDS = 20.0
REPEATS = 2  # alternate bare / pyuvm runs and keep each one's fastest


def _tb():
    if str(TB) not in sys.path:
        sys.path.insert(0, str(TB))
    from cosim.tb import sim

    return sim


def _bare(sim_module, simulator: str, scratch: Path) -> dict:
    sim_module.run_cocotb(simulator, "cosim.tb.test_bare", "bare_loop", tag="bench",
                          extra_env={"BARE_BENCH_DIR": str(scratch)},
                          plusargs=[f"+DUMP_FILE={scratch / f'bare-{simulator}.hex'}"])
    return json.loads((scratch / f"bare_loop_{simulator}.json").read_text())


def _environment(sim_module, simulator: str, scratch: Path) -> dict:
    env = {"COCOSIM_SIM": simulator, "COCOSIM_RESULTS": str(scratch)}
    sim_module.run_cocotb(simulator, "cosim.tb.tests_uvm", "WholeNetworkTest", tag="bench",
                          extra_env=env,
                          plusargs=[f"+DUMP_FILE={scratch / f'uvm-{simulator}.hex'}"])
    return json.loads((scratch / f"WholeNetworkTest-{simulator}.json").read_text())


def rows() -> list[dict]:
    """One row per simulator: pyuvm whole-network run vs the bare loop, same run."""
    sim_module = _tb()
    sim_module.ensure_golden()
    out = []
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        for simulator in sim_module.SIMS:
            bares, uvms = [], []
            for _ in range(REPEATS):
                bares.append(_bare(sim_module, simulator, scratch))
                uvms.append(_environment(sim_module, simulator, scratch))
            for uvm in uvms:
                if uvm["mismatches"] or uvm["words_checked"] != uvm["words_expected"]:
                    raise RuntimeError(f"{simulator}: the whole-network test failed: {uvm}")
            bare = min(bares, key=lambda run: run["seconds"])
            uvm = min(uvms, key=lambda run: run["wall_s"])
            throughput_ratio = uvm["words_per_s"] / bare["words_per_s"]
            checked_bytes = uvm["words_checked"] * WORD_BYTES
            detail = (f"{checked_bytes / uvm['wall_s'] / 1e3:.0f} kB/s of parameters checked; "
                      f"throughput {throughput_ratio:.2f}x the bare loop "
                      f"(target >= {TARGET_RATIO})")
            if simulator == "verilator":
                detail += f"; whole network {uvm['wall_s']:.1f} s (target <= " \
                          f"{TARGET_VERILATOR_SECONDS:.0f} s)"
            out.append({
                "name": f"pyuvm whole network on {simulator} "
                        f"({uvm['stream_words']:,} words, every write checked)",
                "seconds": uvm["wall_s"],
                "baseline": "bare cocotb loop, same words, same RTL build",
                "baseline_seconds": bare["seconds"],
                "detail": detail,
                "bytes_checked_per_s": checked_bytes / uvm["wall_s"],
                "throughput_ratio": throughput_ratio,
            })
    return out


if __name__ == "__main__":
    os.chdir(REPO)
    for row in rows():
        print(row)
