"""cocotb/pyuvm tests of the compute engine (tb/compute/ does the work).

Run through tb/test_compute.py (pytest), which prepares the work folder
(tb/compute/prepare.py) and builds cnn_compute_top for the network. Each test writes
build/test-results/<Test>-<sim>.json (per-step results) and
coverage-<Test>-<sim>.{json,txt} (bins and holes).
"""

from __future__ import annotations

import json
import time

import cocotb
import pyuvm
from cocotb.triggers import ReadOnly, RisingEdge
from cosim.tb.compute.bfm import ComputeBfm
from cosim.tb.compute.config import ComputeConfig
from cosim.tb.compute.env import ComputeEnv
from cosim.tb.compute.sequences import ChainedSeq, LayerByLayerSeq
from pyuvm import ConfigDB, uvm_test


class ComputeBaseTest(uvm_test):
    """Pre-run check, parameter load through the loader (every write checked in HDL
    against the golden image), descriptors, then `sequences`; fails in final_phase on
    any mismatch."""

    sequences: tuple[type, ...] = ()

    def build_phase(self) -> None:
        self.t_build = time.perf_counter()
        self.cfg = ComputeConfig.from_environment(type(self).__name__)
        ConfigDB().set(None, "*", "compute_cfg", self.cfg)
        self.bfm = ComputeBfm(cocotb.top, self.cfg.run, self.cfg.program)
        ConfigDB().set(None, "*", "bfm", self.bfm)
        self.env = ComputeEnv("env", self)
        self.load: dict = {}
        self.errors: list[str] = []
        self.walls: dict[str, float] = {}

    def prerun(self) -> None:
        """The build's constants against the network and accelerator (one line each)."""
        cfg, got = self.cfg, self.bfm.parameters()
        want = {**cfg.accelerator, "round_half_even": int(cfg.rounding == "half_even")}
        for key, value in want.items():
            if got[key] != value:
                self.errors.append(f"pre-run: the build has {key} = {got[key]}, the "
                                   f"accelerator and run need {value}")
        if got["act_depth"] < cfg.program.act_words:
            self.errors.append(f"pre-run: activation memory of {got['act_depth']} words, the "
                               f"program needs {cfg.program.act_words}")

    async def load_parameters(self) -> None:
        """Play the golden stream into the loader. param_write_checker (HDL) compares
        every write with the golden image as it happens; here its counts must say: every
        image word written once, with its golden value, and nothing else."""
        cfg, bfm, dut = self.cfg, self.bfm, cocotb.top
        n_words = int(cfg.run_info["stream_words"])
        image_words = int(cfg.run_info["image_words"])
        t0 = time.perf_counter()
        cycles = await bfm.play_params(n_words)
        self.walls["parameter_load_s"] = time.perf_counter() - t0
        flags = int(dut.load_error_flags.value)
        written = int(dut.words_written.value)
        check = bfm.write_check()
        if flags:
            self.errors.append(f"parameter load: loader error flags {flags:#x}")
        if check["expected"] != image_words:
            self.errors.append(f"parameter load: the write checker holds {check['expected']} "
                               f"image words (+PARAM_EXPECT), the image has {image_words}")
        if written != image_words or check["checked"] != image_words:
            self.errors.append(f"parameter load: {written} words written "
                               f"({check['checked']} checked), the image has {image_words}")
        bad = check["wrong"] + check["duplicate"] + check["unexpected"]
        if bad:
            self.errors.append(
                f"parameter load: {check['wrong']} write(s) differ from the golden image, "
                f"{check['duplicate']} repeat an address, {check['unexpected']} fall outside "
                f"the image (first: {check['first_kind']} at word {check['first_index']:#x})")
        self.load = {"stream_words": n_words, "cycles": cycles, "words_written": written,
                     "image_words_checked": check["checked"],
                     "image_words_wrong": bad,
                     "wall_s": round(self.walls["parameter_load_s"], 3)}

    async def run_phase(self) -> None:
        self.raise_objection()
        await ReadOnly()  # the DUT's constant outputs have settled
        self.prerun()
        await RisingEdge(cocotb.top.clk)
        await self.bfm.reset()
        await self.load_parameters()
        await self.bfm.load_descriptors()
        t0 = time.perf_counter()
        if not self.errors:
            for seq in self.sequences:
                await seq(seq.__name__).start(self.env.commands.sequencer)
        self.walls["compute_s"] = time.perf_counter() - t0
        self.drop_objection()

    def report_phase(self) -> None:
        cfg, sb, cov = self.cfg, self.env.scoreboard, self.env.coverage
        coverage = cov.report()
        board = sb.summary()
        steps_ok = sb.passed() if self.sequences else not sb.errors
        self.summary = {
            "test": cfg.test_name, "sim": cfg.sim, "rounding": cfg.rounding,
            "passed": steps_ok and not self.errors and not cfg.skipped,
            "parameter_load": self.load,
            "compute_wall_s": round(self.walls.get("compute_s", 0.0), 3),
            "total_wall_s": round(time.perf_counter() - self.t_build, 3),
            "walls": {k: round(v, 3) for k, v in cfg.walls.items()},
            "coverage_percent": coverage["percent"],
            "coverage_holes": coverage["holes"],
            **board,
            # the test's own errors (pre-run, parameter load, hang) and the scoreboard's
            "errors": self.errors + board["errors"]
            + ([f"{len(cfg.skipped)} command(s) not run after the engine hung"]
               if cfg.skipped else []),
        }
        cfg.results_dir.mkdir(parents=True, exist_ok=True)
        (cfg.results_dir / f"{cfg.test_name}-{cfg.sim}.json").write_text(
            json.dumps(self.summary, indent=1) + "\n")
        (cfg.results_dir / f"coverage-{cfg.test_name}-{cfg.sim}.json").write_text(
            json.dumps(coverage, indent=1) + "\n")
        (cfg.results_dir / f"coverage-{cfg.test_name}-{cfg.sim}.txt").write_text(
            cov.hole_report() + "\n")
        s = self.summary
        self.logger.info(f"{s['test']} on {s['sim']}: {'PASS' if s['passed'] else 'FAIL'}, "
                         f"{s['steps_checked']} steps, {s['codes_identical']}/"
                         f"{s['codes_checked']} codes identical, coverage "
                         f"{s['coverage_percent']}%")

    def final_phase(self) -> None:
        for e in self.errors:
            self.logger.error(e)
        if not self.summary["passed"]:
            first = (self.errors + self.env.scoreboard.errors)[:3]
            raise AssertionError(f"compute check failed: {self.summary['steps_failed']} "
                                 f"step(s) differ; " + " | ".join(first))


@pyuvm.test()
class LayerByLayerTest(ComputeBaseTest):
    """Every selected step fed the golden input (COMPUTE_LAYERS; default all)."""

    sequences = (LayerByLayerSeq,)


@pyuvm.test()
class ChainedTest(ComputeBaseTest):
    """The whole network per image on the engine's own outputs; RTL top-1 = golden."""

    sequences = (ChainedSeq,)


@pyuvm.test()
class LayerThenChainedTest(ComputeBaseTest):
    """Both modes in one simulation (one parameter load)."""

    sequences = (LayerByLayerSeq, ChainedSeq)


@pyuvm.test()
class ParameterLoadTest(ComputeBaseTest):
    """The parameter load alone (every write checked in HDL), no layer: the bench's
    parameter-load row, repeated against the bare cocotb loop."""

    sequences = ()


@cocotb.test()
async def StartupOnly(dut) -> None:  # noqa: N802 (the bench filters tests by class-like name)
    """No check at all: the bench's measure of the fixed cost of a run (simulator
    process, Python, cocotb, pyuvm and this module) on the same build."""
    await RisingEdge(dut.clk)
