"""StreamMonitor: one SegmentObservation per segment the loader finished, no per-clock wake.

Why not a classic passive monitor sampling s_axis_* every clock: that costs one
Python wake-up per clock, as much as the driver itself, and would halve the
throughput. Instead two cheap sources are combined:

- the driver's AcceptedSegment records (analysis port `accepted_ap`): the driver
  already samples the tvalid/tready handshake of every word, so it knows exactly
  which words, header first, were accepted and whether the last carried tlast;
- the DUT's own status, sampled once per `wlog_tick` toggle (the loader toggles it
  when a segment ends, tlast accepted or segment dropped): segments_done,
  words_written and error_flags, read in the ReadOnly phase.

Each record is paired with the status at the tick that ended its segment and
published on `ap` (scoreboard, coverage). A record still unpaired when the test
drains (flush) means the loader never signalled the end of that segment: that is
reported as an error by the scoreboard (`tick_missing`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from cocotb.triggers import ReadOnly
from pyuvm import ConfigDB, uvm_analysis_port, uvm_monitor, uvm_subscriber

from tb.env.config import EnvConfig
from tb.env.driver import AcceptedSegment
from tb.env.signals import int_reader


@dataclass
class SegmentObservation:
    """A segment as it went in (driver record) and the loader's status after it."""

    record: AcceptedSegment
    error_flags: int
    segments_done: int
    words_written: int
    tick_missing: bool = False


class StreamMonitor(uvm_monitor):
    """Pairs accepted segments with the loader status at the segment's wlog_tick."""

    def build_phase(self) -> None:
        self.cfg: EnvConfig = ConfigDB().get(self, "", "cfg")
        self.ap = uvm_analysis_port("ap", self)
        self.accepted_export = uvm_subscriber.uvm_AnalysisImp(
            "accepted_export", self, self._accepted)
        self.pending: deque[AcceptedSegment] = deque()
        self.ticks = 0

    def start_of_simulation_phase(self) -> None:
        dut = self.cfg.dut
        self.tick = dut.wlog_tick
        self.flags = int_reader(dut.error_flags)
        self.done = int_reader(dut.segments_done)
        self.written = int_reader(dut.words_written)

    def _accepted(self, rec: AcceptedSegment) -> None:
        if rec.reset:  # a reset ends everything pending (their ticks may never come)
            self.flush()
            self.ap.write(SegmentObservation(rec, self.flags(), self.done(), self.written()))
        elif rec.tlast:
            self.pending.append(rec)
        else:  # truncated (no tlast): the loader is mid-segment, no tick will come
            self.ap.write(SegmentObservation(rec, self.flags(), self.done(), self.written()))

    async def run_phase(self) -> None:
        change = self.tick.value_change
        while True:
            await change
            await ReadOnly()
            self.ticks += 1
            self._publish(tick_missing=False)

    def _publish(self, tick_missing: bool) -> None:
        if not self.pending:
            return
        flags, done, written = self.flags(), self.done(), self.written()
        while self.pending:
            self.ap.write(SegmentObservation(self.pending.popleft(), flags, done, written,
                                             tick_missing))

    def flush(self) -> None:
        """Publish what is left (call with the DUT settled, e.g. in ReadOnly)."""
        self._publish(tick_missing=True)
