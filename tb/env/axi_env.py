"""AxiParamEnv: the pushed (AXI4, AXI4-Lite) and fetched (DMA) parameter paths.

    HostAxi (cocotbext-axi masters) ==s_axi_*/s_axil_*==> DUT (cnn_param_axi_top)
    ParamRam (cocotbext-axi AxiRamRead) <==m_axi_*== DUT's DMA
                                   AR channel ──> ReadMonitor (AxiARMonitor) ─┐
    DUT ==wlog_*==> WriteMonitor ──WriteBatch──> Scoreboard <── golden image   │
                                                     ^  errors "ar.*" ─────────┘

The write monitor and the scoreboard are the stream path's own (tb/env/
write_monitor.py, scoreboard.py): ONE scoreboard checks every stored word of every
path against the golden image, counts the writes per address against the
prediction (`expect`), and compares the final memory dump.
"""

from __future__ import annotations

import logging

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cosim.tb.env.agent import WriteAgent
from cosim.tb.env.axi_dma import CLK_PERIOD_NS, DmaControl, ParamRam
from cosim.tb.env.axi_host import HostAxi
from cosim.tb.env.axi_image import ImageWords, segment_spans, word_bytes
from cosim.tb.env.axi_read_monitor import ReadChecker, ReadMonitor
from cosim.tb.env.config import EnvConfig
from cosim.tb.env.scoreboard import Scoreboard
from pyuvm import ConfigDB, uvm_env

_ENVS_BUILT = 0

#: DRAM size of the RAM model (AXI addresses are 32 bits in cnn_param_axi_top)
DRAM_SIZE = 2**32


class AxiParamEnv(uvm_env):
    """Bus models, the read monitor, the write monitor and the scoreboard."""

    def build_phase(self) -> None:
        global _ENVS_BUILT
        _ENVS_BUILT += 1
        self.first_in_simulation = _ENVS_BUILT == 1
        self.cfg: EnvConfig = ConfigDB().get(self, "", "cfg")
        self.writes = WriteAgent("writes", self)
        self.scoreboard = Scoreboard("scoreboard", self)
        golden = self.cfg.golden
        self.layout = golden.layout
        self.spans = segment_spans(self.layout)
        self.word_bytes = word_bytes(self.layout)
        self.image = ImageWords(golden.image, int(self.layout.config.word_bits))
        self.checker = ReadChecker(self.spans, int(self.layout.depth), self.word_bytes,
                                   self.error)

    def start_of_simulation_phase(self) -> None:
        dut = self.cfg.dut
        self.dut = dut
        # a Python clock: cocotbext-axi samples at the edge (see cnn_param_axi_top.sv)
        Clock(dut.clk, CLK_PERIOD_NS, "ns").start()
        self.clk_edge = RisingEdge(dut.clk)
        for name in ("rst_n", "dump_req"):
            getattr(dut, name).value = 0
        self.host = HostAxi(dut, dut.clk, dut.rst_n)
        models = self.host.models
        #: a DUT without the DMA's m_axi_* / dma_* ports (a user's top with a slave only)
        self.ram = self.dma = self.read_monitor = None
        if hasattr(dut, "m_axi_araddr"):
            self.ram = ParamRam(dut, dut.clk, dut.rst_n, DRAM_SIZE)
            self.dma = DmaControl(dut)
            self.dma.idle_inputs()
            self.read_monitor = ReadMonitor(dut, self.checker, dut.clk, dut.rst_n)
            models += [self.ram, self.read_monitor.mon]
        if not self.cfg.verbose:  # cocotbext-axi logs every burst at INFO
            for model in models:
                model.log.setLevel(logging.WARNING)

    def connect_phase(self) -> None:
        self.writes.monitor.ap.connect(self.scoreboard.write_export)

    async def run_phase(self) -> None:
        if self.read_monitor is not None:
            await self.read_monitor.run()

    # ------------------------------------------------------------------ helpers

    def error(self, message: str, check: str) -> None:
        self.scoreboard.error(message, check)

    def expect(self, base: int, n: int, times: int = 1) -> None:
        """Predict `times` writes of each word address base..base+n-1."""
        self.scoreboard.expected_count[base:base + n] += times

    async def cycles(self, n: int) -> None:
        await ClockCycles(self.dut.clk, n)

    async def reset(self, cycles: int = 4) -> None:
        """rst_n low for `cycles` clocks; the write monitor restarts its count."""
        await self.clk_edge
        await ReadOnly()
        self.writes.monitor.collect()
        await self.clk_edge
        self.dut.rst_n.value = 0
        await self.cycles(cycles)
        self.dut.rst_n.value = 1
        await self.clk_edge
        self.writes.monitor.on_reset()

    async def start(self) -> None:
        """First reset; from the second test of a simulation on, a baseline dump."""
        await self.reset()
        if not self.first_in_simulation and self.cfg.dump_file is not None:
            path = self.cfg.dump_file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            await self.dump_memory()
            self.scoreboard.load_baseline(path)

    async def dump_memory(self) -> None:
        await self.cycles(2)
        self.dut.dump_req.value = 1
        await self.cycles(2)
        self.dut.dump_req.value = 0
        await self.clk_edge

    async def finish(self) -> None:
        """Drain the monitors, dump the memory for the scoreboard."""
        await self.cycles(8)
        await ReadOnly()
        self.writes.monitor.collect()
        if self.read_monitor is not None:
            self.read_monitor.drain()
        await self.clk_edge
        if self.cfg.dump_file is not None:
            path = self.cfg.dump_file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            await self.dump_memory()
            self.scoreboard.dump_path = path
