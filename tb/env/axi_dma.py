"""DMA side: a DRAM model preloaded with the image and the DMA's start/done control.

- `ParamRam`: cocotbext-axi's AxiRamRead (the read half of AxiRam; the DUT's DMA only
  reads) holding the golden image at `base + word * word_bytes`. Reads outside the
  mapped window [lo, hi) answer SLVERR (the DRAM ends there), so a test can make
  the DMA see a bus error. If the DUT issues a burst that crosses 4 KiB, the model's
  own assertion would kill its read process and the whole test with it: the
  read monitor reports the crossing (ar.4k) first, and ParamRam keeps the test
  alive (the DMA then waits for data that never comes: dma.timeout).
- `DmaControl`: pulses dma_start with dma_base and waits for dma_done (with a cycle
  limit), returning the DMA's status outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, First, ReadOnly, RisingEdge
from cocotbext.axi import AxiRamRead, AxiReadBus
from cosim.tb.env.signals import int_reader

CLK_PERIOD_NS = 10  # the testbench's clock of cnn_param_axi_top


class BusError(Exception):
    """A read outside the DRAM's mapped window (answered with SLVERR)."""


class ParamRam(AxiRamRead):
    """AXI4 read-only RAM (cocotbext-axi) with a mapped window and crash-proof reads."""

    def __init__(self, dut, clock, reset, size: int) -> None:
        super().__init__(AxiReadBus.from_prefix(dut, "m_axi"), clock, reset,
                         reset_active_level=False, size=size)
        self.window = (0, size)
        self.model_failure = ""
        self.beats = 0

    async def _read(self, address, length):
        lo, hi = self.window
        if not (lo <= address and address + length <= hi):
            raise BusError(f"read at {address:#x} outside the DRAM window {lo:#x}..{hi:#x}")
        self.beats += 1
        return self.read(address % self.size, length)

    async def _process_read(self):
        try:
            await super()._process_read()
        except AssertionError as e:  # cocotbext-axi's own check (4 KiB crossing)
            self.model_failure = f"AXI RAM model refused a burst: {e or 'assertion'}"
            self.log.error(self.model_failure)


@dataclass
class DmaStatus:
    done: bool
    error: bool
    flags: int
    words: int
    bursts: int
    cycles: int

    def __str__(self) -> str:
        return (f"done {int(self.done)} error {int(self.error)} flags {self.flags:#04x} "
                f"words {self.words} bursts {self.bursts} in {self.cycles} cycles")


class DmaControl:
    """dma_start / dma_base in, dma_busy / dma_done / dma_error / counters out."""

    def __init__(self, dut) -> None:
        self.dut = dut
        self.clk_edge = RisingEdge(dut.clk)
        self.read_done = int_reader(dut.dma_done)
        self.read_error = int_reader(dut.dma_error)
        self.read_flags = int_reader(dut.dma_error_flags)
        self.read_words = int_reader(dut.dma_words)
        self.read_bursts = int_reader(dut.dma_bursts)

    def idle_inputs(self) -> None:
        for name in ("dma_start", "dma_base", "dma_seg_first", "dma_seg_count"):
            getattr(self.dut, name).value = 0

    async def run(self, base: int, first: int = 0, count: int = 0,
                  stall_cycles: int = 20_000) -> DmaStatus:
        """Start the DMA at DRAM byte address `base` for segment indices [first,
        first + count) (count 0: to the end); wait for done. A DMA that writes no word
        for `stall_cycles` clocks is given up on (status.done False)."""
        dut = self.dut
        t0 = get_sim_time("ns")
        dut.dma_base.value = base
        dut.dma_seg_first.value = first
        dut.dma_seg_count.value = count
        dut.dma_start.value = 1
        await self.clk_edge
        dut.dma_start.value = 0
        await self.clk_edge
        done = RisingEdge(dut.dma_done)
        last = -1
        await ReadOnly()
        while not self.read_done():
            words = self.read_words()
            if words == last:
                break  # no progress since the last look
            last = words
            await First(done, ClockCycles(dut.clk, stall_cycles))
            await ReadOnly()
        cycles = round((get_sim_time("ns") - t0) / CLK_PERIOD_NS)
        status = DmaStatus(bool(self.read_done()), bool(self.read_error()), self.read_flags(),
                           self.read_words(), self.read_bursts(), cycles)
        await self.clk_edge
        return status
