"""ReadMonitor: every AXI4 read address of the DMA against the layout.

Passive: cocotbext-axi's AxiARMonitor samples the AR channel (it wakes only while
arvalid is high: one or two clocks per burst), so the monitor costs nothing per
beat. Each AR (check names in brackets, counted in the scoreboard's checks_failed):

- arburst INCR [ar.burst], arsize = log2(word bytes) [ar.size], arlen + 1 <= 256
  [ar.len], araddr a multiple of the word bytes [ar.align];
- no 4 KiB crossing: (araddr % 4096) + beats * word_bytes <= 4096 [ar.4k];
- the whole burst inside ONE segment of the layout, relative to the run's DRAM
  base, and that segment one of the run's (seg_first / seg_count) [ar.segment]
  (a burst into a gap, beyond the image, straddling two segments or into a
  segment the run does not fetch is an error);
- every word fetched at most once per run [ar.twice] and, at the end of a complete
  run, every segment word fetched exactly once [ar.missing].

The data beats (R) are not sampled: what the DUT stores is the write monitor's and
the scoreboard's job.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from cocotbext.axi import AxiARBus
from cocotbext.axi.axi_channels import AxiARMonitor
from cosim.tb.env.axi_image import SegmentSpan

MAX_BEATS = 256
PAGE = 4096
INCR = 1


class ReadChecker:
    """The checks of one DMA run, independent of any simulator (unit-testable)."""

    def __init__(self, spans: list[SegmentSpan], depth: int, word_bytes: int,
                 error: Callable[[str, str], None]) -> None:
        self.spans = sorted(spans, key=lambda s: s.base)
        self.starts = np.array([s.base for s in self.spans], dtype=np.int64)
        self.in_segment = np.zeros(depth, dtype=bool)
        for s in self.spans:
            self.in_segment[s.base:s.end] = True
        self.depth = depth
        self.word_bytes = word_bytes
        self.size = (word_bytes - 1).bit_length()
        self.error = error
        self.base = 0
        self.wanted = self.in_segment
        self.fetched = np.zeros(depth, dtype=np.int32)
        self.bursts = 0
        self.beats = 0
        self.runs = 0

    def begin(self, base: int, spans: list[SegmentSpan] | None = None) -> None:
        """A new DMA run from DRAM byte address `base` that must fetch `spans` (default:
        every segment); a burst into another segment is an error too."""
        self.base = base
        self.fetched[:] = 0
        self.runs += 1
        self.wanted = self.in_segment if spans is None else np.zeros_like(self.in_segment)
        for s in spans or ():
            self.wanted[s.base:s.end] = True

    def check(self, araddr: int, arlen: int, arsize: int, arburst: int) -> None:
        """One AR."""
        self.bursts += 1
        beats = arlen + 1
        self.beats += beats
        wb = self.word_bytes
        where = f"AR #{self.bursts} araddr {araddr:#x} arlen {arlen}"
        if arburst != INCR:
            self.error(f"{where}: arburst {arburst}, expected INCR (1)", "ar.burst")
        if arsize != self.size:
            self.error(f"{where}: arsize {arsize}, expected {self.size} (one {wb}-byte word "
                       "per beat)", "ar.size")
        if beats > MAX_BEATS:
            self.error(f"{where}: {beats} beats, more than {MAX_BEATS}", "ar.len")
        if araddr % wb:
            self.error(f"{where}: not a multiple of the {wb}-byte word", "ar.align")
        if araddr % PAGE + beats * wb > PAGE:
            self.error(f"{where}: {beats} beats of {wb} bytes cross the 4 KiB boundary at "
                       f"{(araddr // PAGE + 1) * PAGE:#x}", "ar.4k")
        first = (araddr - self.base) // wb
        last = first + beats - 1
        i = int(np.searchsorted(self.starts, first, side="right")) - 1
        span = self.spans[i] if i >= 0 else None
        if span is not None and span.base <= first and last < span.end and \
                not self.wanted[first]:
            self.error(f"{where}: {span} is not in this run's segments", "ar.segment")
        if span is None or first < span.base or last >= span.end:
            inside = span is not None and span.base <= first < span.end
            what = (f"runs past the end of {span} (words {span.base:#x}..{span.end - 1:#x})"
                    if inside else "starts outside every segment")
            self.error(f"{where}: words {first:#x}..{last:#x} (DRAM base {self.base:#x}) "
                       f"{what}", "ar.segment")
        lo, hi = max(first, 0), min(last + 1, self.depth)
        if lo < hi:
            again = np.flatnonzero(self.fetched[lo:hi] > 0)
            if again.size:
                self.error(f"{where}: {again.size} word(s) fetched again in this run, first "
                           f"{lo + int(again[0]):#x}", "ar.twice")
            self.fetched[lo:hi] += 1

    def end(self, complete: bool) -> None:
        """End of a run: a complete run fetched every word of its segments (exactly
        once)."""
        if not complete:
            return
        missing = np.flatnonzero(self.wanted & (self.fetched == 0))
        if missing.size:
            a = int(missing[0])
            i = int(np.searchsorted(self.starts, a, side="right")) - 1
            self.error(f"{missing.size} segment word(s) never fetched, first {a:#x} "
                       f"({self.spans[i]} word {a - self.spans[i].base})", "ar.missing")

    @property
    def words_fetched(self) -> int:
        return int(self.fetched.sum())


class ReadMonitor:
    """Samples the DUT's AR channel (prefix `m_axi`) and feeds a ReadChecker."""

    def __init__(self, dut, checker: ReadChecker, clock, reset=None) -> None:
        self.checker = checker
        self.mon = AxiARMonitor(AxiARBus.from_prefix(dut, "m_axi"), clock, reset,
                                reset_active_level=False)

    async def run(self) -> None:
        while True:
            ar = await self.mon.recv()
            self.checker.check(int(ar.araddr), int(ar.arlen), int(ar.arsize),
                               int(ar.arburst))

    def drain(self) -> None:
        """Check the ARs sampled but not yet taken from the queue."""
        while not self.mon.empty():
            ar = self.mon.recv_nowait()
            self.checker.check(int(ar.araddr), int(ar.arlen), int(ar.arsize),
                               int(ar.arburst))
