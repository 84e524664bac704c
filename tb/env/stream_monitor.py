"""StreamMonitor: one SegmentObservation per segment the loader finished, no per-clock wake.

Why not a classic passive monitor sampling s_axis_* every clock: that costs one
Python wake-up per clock, as much as the driver itself, and would halve the
throughput. Instead two cheap sources are combined:

- the driver's AcceptedSegment records (analysis port `accepted_ap`): the driver
  already samples the tvalid/tready handshake of every word, so it knows exactly
  which words, header first, were accepted and whether the last carried tlast;
- the DUT's own status (`LoaderStatus`: every status output of the contract,
  state, layer, kind, segments_done, words_written, error_flags, and the top's
  rst_writes), sampled in the ReadOnly phase: once per `wlog_tick` toggle (the
  loader toggles it when a segment ends, tlast accepted or segment dropped), at a
  probe inside an item (the driver pauses and publishes in ReadOnly), and at
  idle (before every reset, after it, and at the end of the test).

Each record is paired with the status at the tick that ended its segment and
published on `ap` (scoreboard, coverage); observations have a `point`: "end"
(segment end), "probe", "reset" (right after a reset), "idle". A record with
tlast still unpaired when the test drains (flush) means the loader never
signalled the end of that segment: that is reported by the scoreboard
(`tick_missing`). A record without tlast (a truncated item) is published with the
next tick or idle sample; the scoreboard checks the status at idle.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields

from cocotb.triggers import ReadOnly
from cosim.tb.env.config import STATE_NAMES, EnvConfig
from cosim.tb.env.driver import AcceptedSegment
from cosim.tb.env.signals import int_reader
from pyuvm import ConfigDB, uvm_analysis_port, uvm_monitor, uvm_subscriber


@dataclass(frozen=True)
class LoaderStatus:
    """Every status output of the contract at one moment (-1: X/Z)."""

    state: int
    layer: int
    kind: int
    segments_done: int
    words_written: int
    error_flags: int
    rst_writes: int = 0

    def differences(self, expected: LoaderStatus) -> list[str]:
        """Names of the fields that differ from `expected`."""
        return [f.name for f in fields(self)
                if getattr(self, f.name) != getattr(expected, f.name)]

    def text(self, name: str) -> str:
        v = getattr(self, name)
        if name == "state":
            return STATE_NAMES[v] if 0 <= v < len(STATE_NAMES) else f"{v} (no state)"
        return f"{v:#04x}" if name == "error_flags" else str(v)


@dataclass
class SegmentObservation:
    """A segment as it went in (driver record) and the loader's status after it."""

    record: AcceptedSegment | None
    status: LoaderStatus
    tick_missing: bool = False
    #: "end" (paired with its wlog_tick or drained), "probe", "reset", "idle"
    point: str = "end"
    #: the last record published with this status (the status is after all of them)
    final: bool = True

    @property
    def error_flags(self) -> int:
        return self.status.error_flags

    @property
    def segments_done(self) -> int:
        return self.status.segments_done

    @property
    def words_written(self) -> int:
        return self.status.words_written


class StreamMonitor(uvm_monitor):
    """Pairs accepted segments with the loader status at the segment's wlog_tick."""

    def build_phase(self) -> None:
        self.cfg: EnvConfig = ConfigDB().get(self, "", "cfg")
        self.ap = uvm_analysis_port("ap", self)
        self.accepted_export = uvm_subscriber.uvm_AnalysisImp(
            "accepted_export", self, self._accepted)
        self.pending: deque[AcceptedSegment] = deque()
        self.ticks = 0
        self.samples = 0

    def start_of_simulation_phase(self) -> None:
        dut = self.cfg.dut
        self.tick = dut.wlog_tick
        self._readers = {
            "state": int_reader(dut.state), "layer": int_reader(dut.layer),
            "kind": int_reader(dut.kind), "segments_done": int_reader(dut.segments_done),
            "words_written": int_reader(dut.words_written),
            "error_flags": int_reader(dut.error_flags)}
        if hasattr(dut, "rst_writes"):
            self._readers["rst_writes"] = int_reader(dut.rst_writes)
        self.rst_write_addr = int_reader(dut.rst_write_addr) if hasattr(
            dut, "rst_write_addr") else None
        self.rst_write_data = int_reader(dut.rst_write_data) if hasattr(
            dut, "rst_write_data") else None

    def status(self) -> LoaderStatus:
        """Read every status output now (call with the DUT settled, in ReadOnly)."""
        self.samples += 1
        return LoaderStatus(**{k: f() for k, f in self._readers.items()})

    def last_reset_write(self) -> str:
        """The last write the top logged while rst_n was low (for error messages)."""
        if self.rst_write_addr is None or self.rst_write_data is None:
            return "?"
        return f"address {self.rst_write_addr():#x}, data {self.rst_write_data():#018x}"

    def _accepted(self, rec: AcceptedSegment) -> None:
        if rec.probe:  # the driver publishes probes in ReadOnly
            self.ap.write(SegmentObservation(rec, self.status(), point="probe"))
        elif rec.reset:  # the driver publishes resets in ReadOnly, after the release
            self.ap.write(SegmentObservation(rec, self.status(), point="reset"))
        else:  # with tlast: ended by its tick; without: published with the next sample
            self.pending.append(rec)

    async def run_phase(self) -> None:
        change = self.tick.value_change
        while True:
            await change
            await ReadOnly()
            self.ticks += 1
            self._publish(at_tick=True)

    def _publish(self, at_tick: bool) -> None:
        if not self.pending:
            return
        status = self.status()
        while self.pending:
            rec = self.pending.popleft()
            self.ap.write(SegmentObservation(rec, status, rec.tlast and not at_tick,
                                             final=not self.pending))

    def flush(self) -> None:
        """Publish what is left, then an idle sample (call with the DUT settled, in
        ReadOnly: before a reset and at the end of the test)."""
        self._publish(at_tick=False)
        self.ap.write(SegmentObservation(None, self.status(), point="idle"))
