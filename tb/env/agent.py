"""Agents: the active stream agent (sequencer, driver, stream monitor) and the passive
memory-write agent (write monitor)."""

from __future__ import annotations

from cosim.tb.env.driver import SegmentDriver
from cosim.tb.env.stream_monitor import StreamMonitor
from cosim.tb.env.write_monitor import WriteMonitor
from pyuvm import uvm_agent, uvm_sequencer


class StreamAgent(uvm_agent):
    """s_axis_* side: sequencer -> driver; the stream monitor pairs what the driver
    put on the bus with the loader's status."""

    def build_phase(self) -> None:
        super().build_phase()
        self.seqr = uvm_sequencer("seqr", self)
        self.driver = SegmentDriver("driver", self)
        self.monitor = StreamMonitor("monitor", self)

    def connect_phase(self) -> None:
        self.driver.seq_item_port.connect(self.seqr.seq_item_export)
        self.driver.accepted_ap.connect(self.monitor.accepted_export)


class WriteAgent(uvm_agent):
    """Memory-write side (passive): the write-log monitor."""

    def build_phase(self) -> None:
        super().build_phase()
        self.monitor = WriteMonitor("monitor", self)
