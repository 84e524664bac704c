"""cocotb/pyuvm tests of the pushed (AXI4, AXI4-Lite) and fetched (DMA) parameter paths.

DUT: cnn_param_axi_top (rtl/cnn_param_axi_top.sv). Run through tb/test_axi.py, or
directly: tb.sim.run_cocotb(sim, "cosim.tb.tests_axi", testcase="DmaWholeNetworkTest",
toplevel="cnn_param_axi_top", sources=tb.test_axi.AXI_SOURCES, plusargs=[...]).
Each test writes build/test-results/<Test>-<sim>.json (summary). The checks are
the stream path's scoreboard (every stored word, every address's write count,
the final dump) plus the DMA read monitor and the bus responses (docs/
stimulus-paths.md).
"""

from __future__ import annotations

import itertools
import json
import time

import cocotb
import numpy as np
import pyuvm
from cocotb.simtime import get_sim_time
from cocotb.triggers import ReadOnly
from cosim.tb.env.axi_env import AxiParamEnv
from cosim.tb.env.axi_host import OKAY, SLVERR
from cosim.tb.env.axi_image import SegmentSpan
from cosim.tb.env.config import EnvConfig
from cosim.tb.env.prerun import PrerunError, prerun_check
from cosim.tb.env.signals import int_reader
from pyuvm import ConfigDB, uvm_test

#: DRAM byte address of the image in the DMA tests: not 4 KiB aligned, so the DMA's
#: 4 KiB splits fall inside segments at other places than the layout's own
DRAM_BASE = 0x4000_0A40
#: contiguous layers the AXI4-Lite test writes whole (plus 2 words of every segment)
LITE_LAYERS = (0, 16)

#: layers the DMA back-pressure run fetches, and DmaFirstLayersTest's layer count
BP_LAYERS = (0, 21)
FIRST_LAYERS = 6
NUM_KINDS = 3  # segment index = layer * NUM_KINDS + kind (cnn_layout_pkg NUM_KINDS)

#: flag bits of the AXI slaves (rtl/axi_param_slave.sv)
F_STRB, F_RANGE, F_BURST, F_ALIGN = 1, 2, 4, 8
#: flag bits of the DMA (rtl/param_dma.sv)
D_RESP, D_BASE = 1, 4


def _pauses(rng: np.random.Generator, p: float):
    """A cocotbext-axi pause generator: a seeded 4096-cycle pattern, repeated."""
    return itertools.cycle((rng.random(4096) < p).tolist())


def _no_pauses(*channels) -> None:
    """Stop the pause generators (cocotbext-axi leaves the last value otherwise)."""
    for ch in channels:
        ch.clear_pause_generator()
        ch.pause = False


class AxiBaseTest(uvm_test):
    """Builds AxiParamEnv, runs `stimulus`, writes the summary, fails on any error."""

    path = "axi4"

    def build_phase(self) -> None:
        self.t_build = time.perf_counter()
        self.cfg = EnvConfig.from_environment(cocotb.top, type(self).__name__)
        ConfigDB().set(None, "*", "cfg", self.cfg)
        self.env = AxiParamEnv("env", self)
        self.stim_wall = 0.0
        self.words_pushed = 0
        self.rng = np.random.default_rng(self.cfg.seed)

    def prerun(self) -> None:
        dut = self.cfg.dut

        def const(name: str) -> int | None:
            v = int_reader(getattr(dut, name))()
            return None if v < 0 else v

        data = next((getattr(dut, n) for n in ("s_axi_wdata", "s_axil_wdata", "m_axi_rdata")
                     if hasattr(dut, n)), None)
        params = {"word_bits": None if data is None else len(data),
                  "addr_bits": len(dut.mem_addr),
                  "mem_depth": const("cfg_mem_depth"), "num_layers": const("cfg_num_layers")}
        line = prerun_check(params, self.cfg.golden)
        if line is not None:
            self.write_summary({"passed": False, "prerun_error": line})
            raise PrerunError(line)

    async def run_phase(self) -> None:
        self.raise_objection()
        await ReadOnly()
        self.prerun()
        env = self.env
        await env.start()
        t0 = time.perf_counter()
        await self.stimulus()
        self.stim_wall = time.perf_counter() - t0
        await env.finish()
        self.drop_objection()

    async def stimulus(self) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- helpers

    def error(self, message: str, check: str) -> None:
        self.env.error(message, check)

    def check_equal(self, what: str, got: int, want: int, check: str) -> None:
        if got != want:
            self.error(f"{what}: got {got:#x}, expected {want:#x}", check)

    async def push(self, span: SegmentSpan, lite: bool = False) -> None:
        """Write a whole segment with its golden words (response OKAY expected)."""
        env = self.env
        data = env.image.span_bytes(span.base, span.words)
        resp = await env.host.write(span.base * env.word_bytes, data, lite=lite)
        env.expect(span.base, span.words)
        self.words_pushed += span.words
        self.check_equal(f"{span}: write response", resp, OKAY, "resp")

    async def push_words(self, base: int, n: int, lite: bool = False) -> None:
        env = self.env
        resp = await env.host.write(base * env.word_bytes, env.image.span_bytes(base, n),
                                    lite=lite)
        env.expect(base, n)
        self.words_pushed += n
        self.check_equal(f"words {base:#x}..{base + n - 1:#x}: write response", resp, OKAY,
                         "resp")

    async def bad_write(self, what: str, address: int, data: bytes, lite: bool = False,
                        size: int | None = None) -> None:
        """A write the slave must refuse (SLVERR); predictions are the caller's."""
        resp = await self.env.host.write(address, data, lite=lite, size=size)
        self.check_equal(f"{what} at {address:#x}: write response", resp, SLVERR, "resp")

    def check_slave(self, lite: bool, flags: int, words: int, slverr: int) -> None:
        """The slave's status outputs (skipped for a DUT that has none)."""
        s = self.env.host.status(lite)
        if s is None:
            return
        name = "axil" if lite else "axi"
        self.check_equal(f"{name}_error_flags", s.flags, flags, f"status.{name}_flags")
        self.check_equal(f"{name}_words", s.words, words, f"status.{name}_words")
        self.check_equal(f"{name}_slverr", s.slverr, slverr, f"status.{name}_slverr")
        if hasattr(self.cfg.dut, "collisions"):
            coll = int_reader(self.cfg.dut.collisions)()
            self.check_equal("collisions", coll, 0, "status.collisions")

    # ---------------------------------------------------------------- report

    def write_summary(self, fields: dict) -> None:
        cfg = self.cfg
        cfg.results_dir.mkdir(parents=True, exist_ok=True)
        path = cfg.results_dir / f"{cfg.test_name}-{cfg.sim}.json"
        out = {"test": cfg.test_name, "sim": cfg.sim, "seed": cfg.seed, "path": self.path}
        path.write_text(json.dumps(out | fields, indent=1) + "\n")
        return path

    def report_phase(self) -> None:
        sb, env = self.env.scoreboard, self.env
        stim = max(self.stim_wall, 1e-9)
        ck = env.checker
        self.summary = {
            **sb.result(),
            "ar_bursts": ck.bursts,
            "ar_beats": ck.beats,
            "dma_runs": ck.runs,
            "wall_s": round(self.stim_wall, 3),
            "words_per_s": round(sb.words_checked / stim),
            "total_wall_s": round(time.perf_counter() - self.t_build, 3),
            "sim_time_ns": get_sim_time("ns"),
            "monitor_batches": env.writes.monitor.batches,
            "errors": sb.errors[:20],
        }
        path = self.write_summary(self.summary)
        s = self.summary
        self.logger.info(
            f"{self.cfg.test_name} on {self.cfg.sim}: {'PASS' if s['passed'] else 'FAIL'}, "
            f"{s['words_checked']}/{s['words_expected']} writes checked, {s['mismatches']} "
            f"mismatches, {s['ar_bursts']} AR bursts, {s['wall_s']} s "
            f"({s['words_per_s']} words/s); {path}")

    def final_phase(self) -> None:
        sb = self.env.scoreboard
        if sb.mismatches:
            raise AssertionError(f"{sb.mismatches} error(s), first: " + " | ".join(sb.errors[:3]))
        if not sb.dump_checked:
            raise AssertionError("the final memory was not compared (no dump)")


# ---------------------------------------------------------------------- AXI4


@pyuvm.test(timeout_time=400, timeout_unit="ms")
class AxiWholeNetworkTest(AxiBaseTest):
    """Every segment over AXI4 (one write per segment, seeded random order)."""

    async def stimulus(self) -> None:
        spans = list(self.env.spans)
        order = self.rng.permutation(len(spans))
        for i in order:
            await self.push(spans[int(i)])
        await self.env.cycles(4)
        total = sum(s.words for s in spans)
        self.check_slave(False, 0, total, 0)


@pyuvm.test(timeout_time=100, timeout_unit="ms")
class AxiErrorsTest(AxiBaseTest):
    """AXI4 slave errors: partial strobes (the top lane low), an unaligned address, a
    narrow burst size, words beyond MEM_DEPTH: SLVERR, flags, nothing written where
    nothing may be; then good segments under W/B back-pressure."""

    async def stimulus(self) -> None:
        env = self.env
        wb, depth = env.word_bytes, int(env.layout.depth)
        victim = next(s for s in env.spans if s.kind == 0 and s.words > 8)
        vaddr = victim.base * wb
        data = env.image.span_bytes(victim.base, 4)
        slverr = 0
        # one word with its top strobe lane low: nothing written
        await self.bad_write("partial strobe (top lane low)", vaddr, data[:wb - 1])
        # four words, the last one's top lane low: three written
        await self.bad_write("last beat partial", vaddr, data[:4 * wb - 1])
        env.expect(victim.base, 3)
        # an unaligned start: the whole burst refused
        await self.bad_write("unaligned address", vaddr + 1, data[:2 * wb])
        slverr += 3
        flags = F_STRB | F_ALIGN
        if wb > 1:  # a narrower beat size: the whole burst refused
            await self.bad_write("narrow awsize", vaddr, data[:2 * wb],
                                 size=(wb - 1).bit_length() - 1)
            slverr += 1
            flags |= F_BURST
        # the last word of the layout, then one beyond MEM_DEPTH: one written
        last = depth - 1
        await self.bad_write("burst past MEM_DEPTH", last * wb,
                             env.image.span_bytes(last, 1) + bytes(wb))
        env.expect(last, 1)
        await self.bad_write("word at MEM_DEPTH", depth * wb, bytes(wb))
        slverr += 2
        flags |= F_RANGE
        await env.cycles(4)
        self.check_slave(False, flags, 4, slverr)
        # good segments (first layers, the victim, the last layer) under back-pressure
        host = env.host.axi
        rng = np.random.default_rng(self.cfg.seed + 17)
        host.w_channel.set_pause_generator(_pauses(rng, 0.3))
        host.b_channel.set_pause_generator(_pauses(rng, 0.5))
        layers = {0, 1, 2, victim.layer, env.spans[-1].layer}
        for span in env.spans:
            if span.layer in layers:
                await self.push(span)
        _no_pauses(host.w_channel, host.b_channel)
        await env.cycles(4)
        self.check_slave(False, flags, 4 + self.words_pushed, slverr)


# ---------------------------------------------------------------------- AXI4-Lite


@pyuvm.test(timeout_time=200, timeout_unit="ms")
class AxiLiteTest(AxiBaseTest):
    """AXI4-Lite: layers LITE_LAYERS whole (contiguous), the first and last word of every
    other segment (every region and segment reached), then the slave's errors."""

    path = "axi4-lite"

    async def stimulus(self) -> None:
        env = self.env
        wb, depth = env.word_bytes, int(env.layout.depth)
        lo, hi = LITE_LAYERS
        for span in env.spans:
            if lo <= span.layer < hi:
                await self.push(span, lite=True)
            else:
                await self.push_words(span.base, 1, lite=True)
                if span.words > 1:
                    await self.push_words(span.end - 1, 1, lite=True)
        good = self.words_pushed
        # the bad writes aim at a word no good write covers (a segment of the first/last
        # word part); a network of at most LITE_LAYERS layers has none: then any word
        # (it holds its golden value, which a refused write must leave unchanged)
        victim = next((s for s in env.spans if s.layer >= hi and s.words > 2),
                      next(s for s in env.spans if s.words > 2))
        data = env.image.span_bytes(victim.base + 1, 1)
        await self.bad_write("partial strobe (top lane low)", (victim.base + 1) * wb,
                             data[:wb - 1], lite=True)
        await self.bad_write("unaligned address", (victim.base + 1) * wb + 1, data[:wb - 1],
                             lite=True)
        await self.bad_write("word at MEM_DEPTH", depth * wb, bytes(wb), lite=True)
        await env.cycles(4)
        self.check_slave(True, F_STRB | F_ALIGN | F_RANGE, good, 3)


@pyuvm.test(timeout_time=1000, timeout_unit="ms")
class AxiLiteWholeNetworkTest(AxiBaseTest):
    """Every segment over AXI4-Lite, one transaction per word, each segment's AW/W
    queued at once (HostAxi.write_lite_words); every B response must be OKAY."""

    path = "axi4-lite"

    async def stimulus(self) -> None:
        env = self.env
        for span in env.spans:
            data = env.image.span_bytes(span.base, span.words)
            resps = await env.host.write_lite_words(span.base * env.word_bytes, data)
            env.expect(span.base, span.words)
            self.words_pushed += span.words
            self.check_equal(f"{span}: B responses", len(resps), span.words, "resp")
            bad = next((i for i, r in enumerate(resps) if r != OKAY), None)
            if bad is not None:
                self.check_equal(f"{span}: word {bad} write response", resps[bad], OKAY,
                                 "resp")
        await env.cycles(4)
        self.check_slave(True, 0, sum(s.words for s in self.env.spans), 0)


# ---------------------------------------------------------------------- DMA


class DmaBaseTest(AxiBaseTest):
    path = "dma"

    def preload(self, base: int) -> None:
        """The golden image into the RAM model at DRAM byte address `base`."""
        env = self.env
        if env.ram is None:
            raise RuntimeError("the DUT has no m_axi_* / dma_* ports (docs/stimulus-paths.md)")
        for span in env.spans:
            env.ram.write(base + span.base * env.word_bytes,
                          env.image.span_bytes(span.base, span.words))
        env.ram.window = (base, base + int(env.layout.depth) * env.word_bytes)

    def spans_of(self, first: int, count: int) -> list[SegmentSpan]:
        """The segments of indices [first, first + count) (count 0: to the end)."""
        end = count and first + count
        return [s for s in self.env.spans
                if s.index >= first and (not end or s.index < end)]

    async def fetch(self, base: int, complete: bool = True, first: int = 0, count: int = 0):
        """One DMA run from `base` over segments [first, first + count); the read
        checker sees its ARs."""
        env = self.env
        env.checker.begin(base, self.spans_of(first, count))
        status = await env.dma.run(base, first, count)
        env.read_monitor.drain()
        env.checker.end(complete and status.done and not status.error)
        if not status.done:
            self.error(f"DMA from {base:#x} not done, no progress after {status.cycles} "
                       f"cycles: {status}"
                       + (f"; {env.ram.model_failure}" if env.ram.model_failure else ""),
                       "dma.timeout")
        self.logger.info(f"DMA from {base:#x}: {status}")
        return status

    def check_dma(self, status, error: bool, flags: int, words: int) -> None:
        self.check_equal("dma_error", int(status.error), int(error), "status.dma_error")
        self.check_equal("dma_error_flags", status.flags, flags, "status.dma_flags")
        self.check_equal("dma_words", status.words, words, "status.dma_words")


@pyuvm.test(timeout_time=400, timeout_unit="ms")
class DmaWholeNetworkTest(DmaBaseTest):
    """The DMA fetches the whole image from the RAM model; every AR checked."""

    async def stimulus(self) -> None:
        env = self.env
        self.preload(DRAM_BASE)
        status = await self.fetch(DRAM_BASE)
        for span in env.spans:
            env.expect(span.base, span.words)
        total = sum(s.words for s in env.spans)
        self.check_dma(status, False, 0, total)
        self.check_equal("words fetched (AR beats)", env.checker.words_fetched, total,
                         "ar.beats")


@pyuvm.test(timeout_time=400, timeout_unit="ms")
class DmaErrorsTest(DmaBaseTest):
    """A misaligned base (error, nothing read), a DRAM that ends inside layer 0's biases
    (SLVERR: the words before it stored, the DMA stops), then layers BP_LAYERS with
    seeded AR/R back-pressure, then one record segment alone."""

    async def stimulus(self) -> None:
        env = self.env
        wb = env.word_bytes
        self.preload(DRAM_BASE)
        if wb > 1:
            status = await self.fetch(DRAM_BASE + 1, complete=False)
            self.check_dma(status, True, D_BASE, 0)
            self.check_equal("AR bursts after a misaligned base", env.checker.bursts, 0,
                             "ar.unexpected")
        # the DRAM ends after 4 words of layer 0's biases
        bias0 = next(s for s in env.spans if s.kind == 1)
        cut = bias0.base + min(4, bias0.words - 1)
        env.ram.window = (DRAM_BASE, DRAM_BASE + cut * wb)
        written = 0
        for span in env.spans:  # the DMA's order; it stops at the first unmapped word
            n = min(span.words, max(0, cut - span.base)) if span.end > cut else span.words
            env.expect(span.base, n)
            written += n
            if n < span.words:
                break
        status = await self.fetch(DRAM_BASE, complete=False)
        self.check_dma(status, True, D_BASE * (wb > 1) | D_RESP, written)
        # layers BP_LAYERS with back-pressure on AR and R
        self.preload(DRAM_BASE)
        rng = np.random.default_rng(self.cfg.seed + 29)
        env.ram.ar_channel.set_pause_generator(_pauses(rng, 0.5))
        env.ram.r_channel.set_pause_generator(_pauses(rng, 0.2))
        first, count = BP_LAYERS[0] * NUM_KINDS, (BP_LAYERS[1] - BP_LAYERS[0]) * NUM_KINDS
        status = await self.fetch(DRAM_BASE, first=first, count=count)
        _no_pauses(env.ram.ar_channel, env.ram.r_channel)
        spans = self.spans_of(first, count)
        for span in spans:
            env.expect(span.base, span.words)
        self.check_dma(status, False, D_BASE * (wb > 1) | D_RESP, sum(s.words for s in spans))
        # one layer's record alone (a one-segment reload)
        rec = next(s for s in reversed(env.spans) if s.kind == 2)
        status = await self.fetch(DRAM_BASE, first=rec.index, count=1)
        env.expect(rec.base, rec.words)
        self.check_dma(status, False, D_BASE * (wb > 1) | D_RESP, rec.words)


@pyuvm.test(timeout_time=100, timeout_unit="ms")
class DmaFirstLayersTest(DmaBaseTest):
    """The DMA fetches segments of layers FIRST_LAYERS only (seg_first / seg_count):
    nothing else may be read or written (the mutation runs use it: fast)."""

    async def stimulus(self) -> None:
        env = self.env
        self.preload(DRAM_BASE)
        count = FIRST_LAYERS * NUM_KINDS
        status = await self.fetch(DRAM_BASE, first=0, count=count)
        spans = self.spans_of(0, count)
        for span in spans:
            env.expect(span.base, span.words)
        total = sum(s.words for s in spans)
        self.check_dma(status, False, 0, total)
        self.check_equal("words fetched (AR beats)", env.checker.words_fetched, total,
                         "ar.beats")
