"""WriteMonitor: reads the DUT's write log in batches, wakes only on `wlog_tick`.

The top records every memory write in a circular log (wlog_addr/wlog_data/wlog_bad,
LOG_ENTRIES entries) and toggles `wlog_tick` every LOG_ENTRIES/2 writes and at each
segment end (docs/rtl-interface.md). On each toggle the monitor waits for ReadOnly
(all writes of the time step settled), reads wlog_count and entries
[last_read, wlog_count) with raw GPI reads decoded by numpy, and publishes one
WriteBatch on `ap`. About 1,100 wake-ups for the whole network instead of 280,000.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cocotb.triggers import ReadOnly
from cosim.tb.env.config import EnvConfig
from cosim.tb.env.signals import ArrayReader, int_reader
from pyuvm import ConfigDB, uvm_analysis_port, uvm_monitor


@dataclass
class WriteBatch:
    """Consecutive memory writes: addresses (int64), words (uint64), X/Z flags."""

    first: int                 # index of the first write since reset
    addresses: np.ndarray
    words: np.ndarray
    bad: np.ndarray            # wlog_bad or an X/Z bit read in the address or the data
    epoch: int                 # resets seen so far
    last_cycle: int = -1       # wlog_cycle of the last write (-1 when unreadable)
    overrun: int = 0           # writes lost because the log wrapped before it was read

    def __len__(self) -> int:
        return int(self.addresses.shape[0])


class WriteMonitor(uvm_monitor):
    """Publishes every memory write of the DUT, in batches."""

    def build_phase(self) -> None:
        self.cfg: EnvConfig = ConfigDB().get(self, "", "cfg")
        self.ap = uvm_analysis_port("ap", self)
        self.last_read = 0
        self.epoch = 0
        self.batches = 0
        self.writes = 0

    def start_of_simulation_phase(self) -> None:
        dut = self.cfg.dut
        self.tick = dut.wlog_tick
        self.count = int_reader(dut.wlog_count)
        self.addr = ArrayReader(dut.wlog_addr)
        self.data = ArrayReader(dut.wlog_data)
        # 2-state simulators (Verilator) hold wlog_bad at 0 (docs/rtl-interface.md):
        # reading it there would cost a GPI call per write for nothing
        self.bad = ArrayReader(dut.wlog_bad) if self.cfg.four_state else None
        self.cycle = ArrayReader(dut.wlog_cycle) if hasattr(dut, "wlog_cycle") else None
        self.entries = self.addr.size

    async def run_phase(self) -> None:
        change = self.tick.value_change
        while True:
            await change
            await ReadOnly()
            self.collect()

    def collect(self) -> None:
        """Read and publish entries [last_read, wlog_count). Call with the DUT settled."""
        count = self.count()
        if count < 0:
            count = self.last_read  # X after power-up, before the first reset
        n = count - self.last_read
        if n <= 0:
            return
        overrun = max(0, n - self.entries)
        first = self.last_read + overrun
        addr, addr_x = self.addr.read_range(first, count)
        data, data_x = self.data.read_range(first, count)
        bad = addr_x | data_x
        if self.bad is not None:
            bad_v, bad_x = self.bad.read_range(first, count)
            bad |= (bad_v != 0) | bad_x
        last_cycle = -1
        if self.cycle is not None:
            c, cx = self.cycle.read_range(count - 1, count)
            last_cycle = -1 if cx[0] else int(c[0])
        self.last_read = count
        self.batches += 1
        self.writes += count - first
        self.ap.write(WriteBatch(first, addr.astype(np.int64), data, bad, self.epoch,
                                 last_cycle, overrun))

    def on_reset(self) -> None:
        """wlog_count restarts at 0 after a reset."""
        self.last_read = 0
        self.epoch += 1
