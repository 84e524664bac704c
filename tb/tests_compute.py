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
from cosim.tb.env.scoreboard import read_memh
from pyuvm import ConfigDB, uvm_test


class ComputeBaseTest(uvm_test):
    """Pre-run check, parameter load through the loader (checked against the golden
    image), descriptors, then `sequences`; fails in final_phase on any mismatch."""

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
        layout = cfg.golden.layout.config
        want = {"word_bits": layout.word_bits, "tile_oc": layout.tile_oc,
                "lanes": layout.tile_ic, "bias_bits": layout.bias_bits,
                "round_half_even": int(cfg.rounding == "half_even")}
        for key, value in want.items():
            if got[key] != value:
                self.errors.append(f"pre-run: the build has {key} = {got[key]}, the "
                                   f"accelerator and run need {value}")
        if got["act_depth"] < cfg.program.act_words:
            self.errors.append(f"pre-run: activation memory of {got['act_depth']} words, the "
                               f"program needs {cfg.program.act_words}")

    async def load_parameters(self) -> None:
        """Play the golden stream into the loader; every stored word must equal the image."""
        cfg, bfm, golden = self.cfg, self.bfm, self.cfg.golden
        n_words = sum(s.count + s.header_words.shape[0] for s in golden.segments)
        t0 = time.perf_counter()
        cycles = await bfm.play_params(n_words)
        await bfm.dump_params()
        self.walls["parameter_load_s"] = time.perf_counter() - t0
        dut = cocotb.top
        flags = int(dut.load_error_flags.value)
        written = int(dut.words_written.value)
        image = golden.image
        if flags:
            self.errors.append(f"parameter load: loader error flags {flags:#x}")
        if written != image.addresses.size:
            self.errors.append(f"parameter load: {written} words written, the image has "
                               f"{image.addresses.size}")
        limbs = 1 if image.words.ndim == 1 else image.words.shape[1]
        depth = int(dut.cfg_mem_depth.value)
        values, unknown = read_memh(cfg.run / "param_dump.hex", depth, limbs)
        got = values[image.addresses]
        bad = unknown[image.addresses] | (got != image.words if limbs == 1
                                           else (got != image.words).any(axis=1))
        if bad.any():
            first = int(image.addresses[bad.argmax()])
            self.errors.append(f"parameter load: {int(bad.sum())} stored words differ from "
                               f"the golden image (first at address {first:#x})")
        self.load = {"stream_words": n_words, "cycles": cycles, "words_written": written,
                     "image_words_checked": int(image.addresses.size),
                     "image_words_wrong": int(bad.sum()),
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
        self.summary = {
            "test": cfg.test_name, "sim": cfg.sim, "rounding": cfg.rounding,
            "passed": sb.passed() and not self.errors and not cfg.skipped,
            "errors": self.errors + sb.errors[:20]
            + ([f"{len(cfg.skipped)} command(s) not run after the engine hung"]
               if cfg.skipped else []),
            "parameter_load": self.load,
            "compute_wall_s": round(self.walls.get("compute_s", 0.0), 3),
            "total_wall_s": round(time.perf_counter() - self.t_build, 3),
            "coverage_percent": coverage["percent"],
            "coverage_holes": coverage["holes"],
            **sb.summary(),
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
