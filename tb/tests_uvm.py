"""cocotb/pyuvm test module: uvm_tests that pick sequences (tb/env/ does the work).

Run through tb/test_uvm.py (pytest) or directly with tb.sim.run_cocotb(sim,
"cosim.tb.tests_uvm", testcase="WholeNetworkTest", plusargs=["+DUMP_FILE=..."]).
Each test writes build/test-results/<Test>-<sim>.json (summary) and
coverage-<Test>-<sim>.{json,txt}.
"""

from __future__ import annotations

import json
import time

import cocotb
import pyuvm
from cocotb.simtime import get_sim_time
from cocotb.triggers import Event, ReadOnly
from cosim.tb.env import (
    BackpressureSeq,
    CnnParamEnv,
    EnvConfig,
    MalformedSeq,
    RandomSubsetSeq,
    ResetReloadSeq,
    StopStimulus,
    WholeNetworkSeq,
)
from cosim.tb.env.prerun import PrerunError, dut_parameters, prerun_check
from pyuvm import ConfigDB, uvm_test


class CnnBaseTest(uvm_test):
    """Builds the env from EnvConfig.from_environment, runs `sequence`, writes the
    summary JSON, fails in final_phase if the scoreboard saw anything wrong.

    Every test has a 200 ms simulated-time limit (the whole network takes about 3 ms)."""

    sequence = WholeNetworkSeq
    backpressure: str | None = None   # None: COCOSIM_BACKPRESSURE or "none"

    def build_phase(self) -> None:
        self.t_build = time.perf_counter()
        self.cfg = EnvConfig.from_environment(cocotb.top, type(self).__name__,
                                              self.backpressure)
        self.cfg.prerun_gate = Event()  # the driver starts once prerun() passed
        ConfigDB().set(None, "*", "cfg", self.cfg)
        self.env = CnnParamEnv("env", self)
        self.stim_wall = self.run_wall = 0.0

    def prerun(self) -> None:
        """The pre-run check (tb/env/prerun.py), at time 0 in ReadOnly (the DUT's
        constant outputs settled), before the driver's first write: on a disagreement
        the summary JSON gets `prerun_error` (one line) and the test stops."""
        cfg = self.cfg
        line = prerun_check(dut_parameters(cfg.dut), cfg.golden)
        if line is None:
            return
        cfg.results_dir.mkdir(parents=True, exist_ok=True)
        path = cfg.results_dir / f"{cfg.test_name}-{cfg.sim}.json"
        path.write_text(json.dumps({"test": cfg.test_name, "sim": cfg.sim, "seed": cfg.seed,
                                    "passed": False, "prerun_error": line}, indent=1) + "\n")
        self.logger.error(line)
        raise PrerunError(line)

    async def run_phase(self) -> None:
        self.raise_objection()
        await ReadOnly()
        self.prerun()
        self.cfg.prerun_gate.set()
        seq = self.sequence(self.sequence.__name__)
        t0 = time.perf_counter()
        self.stopped = ""
        try:
            await seq.start(self.env.seqr)
        except StopStimulus as e:  # COCOSIM_STOP_ON_ERROR: the killer needs one failure
            self.stopped = str(e)
            self.logger.warning(self.stopped)
        self.stim_wall = time.perf_counter() - t0
        await self.env.finish()
        self.run_wall = time.perf_counter() - t0
        self.drop_objection()

    def report_phase(self) -> None:
        cfg, sb, drv = self.cfg, self.env.scoreboard, self.env.stream.driver
        wmon = self.env.writes.monitor
        cov = getattr(self.env.coverage, "summary", {})
        stim = max(self.stim_wall, 1e-9)
        self.summary = {
            "test": cfg.test_name,
            "sim": cfg.sim,
            "seed": cfg.seed,
            **sb.result(),
            "status_checks": sb.status_checks,
            "handshake_violations": drv.violations,
            "stopped_early": self.stopped,
            "stream_words": drv.words_driven,
            "segments": sb.segments_seen,
            "cycles": drv.cycles,
            "backpressure": cfg.backpressure.label,
            "wall_s": round(self.stim_wall, 3),
            "words_per_s": round(drv.words_driven / stim),
            "run_wall_s": round(self.run_wall, 3),
            "total_wall_s": round(time.perf_counter() - self.t_build, 3),
            "sim_time_ns": get_sim_time("ns"),
            "monitor_batches": wmon.batches,
            "coverage_percent": cov.get("percent"),
            "coverage_holes": len(cov.get("holes", [])),
            "errors": sb.errors[:20],
        }
        cfg.results_dir.mkdir(parents=True, exist_ok=True)
        path = cfg.results_dir / f"{cfg.test_name}-{cfg.sim}.json"
        path.write_text(json.dumps(self.summary, indent=1) + "\n")
        s = self.summary
        self.logger.info(
            f"{s['test']} on {s['sim']}: {'PASS' if s['passed'] else 'FAIL'}, seed {s['seed']}, "
            f"{s['words_checked']}/{s['words_expected']} writes checked, "
            f"{s['mismatches']} mismatches, {s['stream_words']} stream words in "
            f"{s['wall_s']} s ({s['words_per_s']} words/s); {path}")

    def final_phase(self) -> None:
        sb = self.env.scoreboard
        if sb.mismatches:
            raise AssertionError(
                f"{sb.mismatches} error(s), first: " + " | ".join(sb.errors[:3]))
        if not sb.dump_checked:
            raise AssertionError("the final memory was not compared (no dump)")


@pyuvm.test(timeout_time=200, timeout_unit="ms")
class WholeNetworkTest(CnnBaseTest):
    """The whole network in tiling order, no back-pressure (the throughput test)."""

    sequence = WholeNetworkSeq


@pyuvm.test(timeout_time=200, timeout_unit="ms")
class RandomSubsetTest(CnnBaseTest):
    """A random subset of layers; untouched segments must stay unwritten."""

    sequence = RandomSubsetSeq
    backpressure = "random(0.1),idle(0.05)"


@pyuvm.test(timeout_time=200, timeout_unit="ms")
class BackpressureTest(CnnBaseTest):
    """Whole network, per-segment random / bursty mem_stall and idle gaps."""

    sequence = BackpressureSeq
    backpressure = "random(0.2),idle(0.1)"


@pyuvm.test(timeout_time=200, timeout_unit="ms")
class ResetReloadTest(CnnBaseTest):
    """Reset in the middle of a segment, then a full reload."""

    sequence = ResetReloadSeq


@pyuvm.test(timeout_time=200, timeout_unit="ms")
class MalformedTest(CnnBaseTest):
    """Every malformation (enumerated) under every pressure: expected error flags and
    status, nothing written outside its range, resets clear everything."""

    sequence = MalformedSeq
