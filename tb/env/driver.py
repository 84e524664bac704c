"""SegmentDriver: drives s_axis_* one word per clock from whole-segment items.

Per clock the driver does the least Python work it can: deposit tdata (bit strings
precomputed per segment with numpy), await the rising edge, sample tready (raw
GPI read). tlast, tvalid and mem_stall are only
written when they change. Idle gaps (tvalid low) and back-pressure (mem_stall
high) come from per-segment numpy plans drawn from the seed (BackPressure.plan),
so the per-word loop does no random work and no logging. An item may also carry an
explicit deterministic plan (SegmentItem.plan) and a probe (pause after a given
word so that the loader status is checked there).

Idle cycles (tvalid low: gaps, probes, resets, the end of a test) are never
quiet: they carry junk on tdata and tlast in a fixed rotation of four patterns
(the item's own header with tlast=1; its complement with mem_stall=1; the word
about to be driven with tlast=1; all ones with tlast=1 and mem_stall=1), so a
loader that latches anything without tvalid, or leaves DROP on an idle tlast,
shows up, and mem_stall also rises while tvalid is low. During a reset the
driver offers words (tvalid high every other reset cycle): s_axis_tready must
stay 0 and nothing may be written. The driver checks s_axis_tready against the
contract (rst_n && !mem_stall) on every stall, idle and reset cycle and reports
violations through `error_hooks` (the scoreboard).

Handshake sampling: the driver reads tready right after the rising edge at which it
presented a word. The contract makes tready a function of rst_n and mem_stall (both
driven here and not changed before that read), so the value read is the one the
loader saw at the edge on every simulator. Should a DUT compute tready from state
that changes at the edge, the write monitor and the scoreboard still see every
duplicated or skipped word.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge, Timer
from cosim.tb.env.config import BackPressure, EnvConfig
from cosim.tb.env.items import ResetItem, SegmentItem
from cosim.tb.env.signals import binstr_depositor, raw_reader, to_binstrs
from pyuvm import ConfigDB, uvm_analysis_port, uvm_driver


@dataclass
class AcceptedSegment:
    """What the driver put on the bus for one item (published after its last word)."""

    item: SegmentItem | ResetItem
    words_accepted: int = 0          # stream words accepted, header included
    tlast: bool = True
    backpressure: str = "none"
    stall_cycles: int = 0
    idle_cycles: int = 0
    busy_cycles: int = 0             # clocks from the first to the last accepted word
    #: data-word indices (0 = first data word) that saw a stall or an idle gap first
    pressured_words: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    reset: bool = False
    #: a probe: published (in ReadOnly) in the middle of the item, after word
    #: item.probe_after was accepted; the item's record follows at its end
    probe: bool = False


class SegmentDriver(uvm_driver):
    """Drives SegmentItems (and ResetItems) into cnn_param_top's s_axis_* port."""

    def build_phase(self) -> None:
        self.cfg: EnvConfig = ConfigDB().get(self, "", "cfg")
        self.accepted_ap = uvm_analysis_port("accepted_ap", self)
        self.rng = self.cfg.child_rng(1)
        #: coroutine functions awaited once after the first reset, before any item
        self.start_hooks: list[Callable[[], Awaitable[None]]] = []
        #: callables run around a reset: pre (monitors flush), post (monitors rewind)
        self.pre_reset_hooks: list[Callable[[], None]] = []
        self.post_reset_hooks: list[Callable[[], None]] = []
        #: callables (check, message) called on a handshake violation
        self.error_hooks: list[Callable[[str, str], None]] = []
        self.words_driven = 0
        self.cycles = 0
        self.idle_count = 0    # idle cycles driven so far (selects the junk pattern)
        self.out_of_reset = False  # rst_n was released by this driver
        self.violations = 0
        self._junk: list[str] = []  # set per item (_set_junk) once the width is known

    def start_of_simulation_phase(self) -> None:
        dut = self.cfg.dut
        self.clk_edge = RisingEdge(dut.clk)
        self.tdata, self.tvalid, self.tlast = (dut.s_axis_tdata, dut.s_axis_tvalid,
                                               dut.s_axis_tlast)
        self.mem_stall, self.rst_n, self.dump_req = dut.mem_stall, dut.rst_n, dut.dump_req
        self.put_tdata = binstr_depositor(dut.s_axis_tdata)
        self.tready_raw = raw_reader(dut.s_axis_tready)
        self.width = len(dut.s_axis_tdata)
        self._ones = "1" * self.width
        self._junk = [self._ones] * 4

    def violation(self, check: str, message: str) -> None:
        """A handshake violation seen by the driver (reported, never raised)."""
        self.violations += 1
        for hook in self.error_hooks:
            hook(check, message)

    def _set_junk(self, header: str) -> None:
        """The junk words of the coming idle cycles: this item's header and its complement."""
        inv = "".join("1" if c == "0" else "0" for c in header)
        self._junk = [header, inv, "", self._ones]

    async def _idle_cycles(self, n: int, next_word: str = "", tready_check: bool = True
                           ) -> None:
        """n clocks with tvalid low and junk on tdata/tlast (rotating patterns, see the
        module docstring); mem_stall is 1 on half of them. tready must follow mem_stall.
        Leaves tvalid 0, tlast 0, mem_stall 0."""
        put, edge, ready = self.put_tdata, self.clk_edge, self.tready_raw
        self.tvalid.value = 0
        for _ in range(n):
            p = self.idle_count & 3
            self.idle_count += 1
            stall = p in (1, 3)
            put(self._junk[p] or next_word or self._ones)
            self.tlast.value = 0 if p == 1 else 1
            self.mem_stall.value = int(stall)
            await edge
            if tready_check and ready() != ("0" if stall else "1"):
                self.violation("handshake.tready", f"s_axis_tready {ready()} on an idle "
                               f"cycle with mem_stall {int(stall)} (rst_n 1): expected "
                               f"{0 if stall else 1}")
        self.tlast.value = 0
        self.mem_stall.value = 0

    async def run_phase(self) -> None:
        gate = self.cfg.prerun_gate
        if gate is not None:  # the test's pre-run check first (tb/env/prerun.py)
            await gate.wait()
            await Timer(1, "ps")  # out of the ReadOnly phase the check ran in
        await self.reset(self.cfg.reset_cycles, initial=True)
        await ReadOnly()
        self.accepted_ap.write(AcceptedSegment(ResetItem("initial_reset"), reset=True))
        await self.clk_edge
        for hook in self.start_hooks:
            await hook()
        while True:
            item = await self.seq_item_port.get_next_item()
            if isinstance(item, ResetItem):
                await self.reset(item.cycles)
                await ReadOnly()  # the status right after the reset, settled
                self.accepted_ap.write(AcceptedSegment(item, reset=True))
                await self.clk_edge
            else:
                self.accepted_ap.write(await self.drive(item))
            self.seq_item_port.item_done()

    # ------------------------------------------------------------------ reset / dump

    async def idle(self, cycles: int = 1) -> None:
        """`cycles` clocks with tvalid low (junk on tdata/tlast, mem_stall sometimes)."""
        await self._idle_cycles(cycles, tready_check=self.out_of_reset)

    async def reset(self, cycles: int, initial: bool = False) -> None:
        """Pulse rst_n low for `cycles` clocks; monitors drain before, rewind after.

        Before the reset (not the initial one) the pre-reset hooks run in ReadOnly (the
        monitors publish what is pending and the loader's idle status). During reset
        the driver offers junk words (tvalid 1 on every other cycle, tlast alternating)
        and checks that s_axis_tready stays 0. After the release, the reset hooks'
        counterparts run, one more clock, then `post_reset_check_hooks` in ReadOnly
        (the status must be all zero)."""
        await self.idle(1)
        if not initial:
            await ReadOnly()
            for hook in self.pre_reset_hooks:
                hook()
            await self.clk_edge
        self.rst_n.value = 0
        self.out_of_reset = False
        self.dump_req.value = 0
        put, edge, ready = self.put_tdata, self.clk_edge, self.tready_raw
        for c in range(cycles):
            offer = c % 2 == 0
            self.tvalid.value = int(offer)
            self.tlast.value = int(c % 4 == 2)
            self.mem_stall.value = 0
            put(self._junk[c & 3] or self._ones)
            await edge
            if ready() != "0":
                self.violation("handshake.tready_reset",
                               f"s_axis_tready {ready()} during reset (cycle {c} of {cycles}"
                               f", tvalid {int(offer)}, mem_stall 0): expected 0")
        self.tvalid.value = 0
        self.tlast.value = 0
        self.put_tdata("0" * self.width)
        self.rst_n.value = 1
        for hook in self.post_reset_hooks:
            hook()
        await self.clk_edge
        self.out_of_reset = True

    async def dump_memory(self) -> None:
        """Rising edge on dump_req: the memory writes +DUMP_FILE ($writememh)."""
        await self.idle(2)
        self.dump_req.value = 1
        await self.idle(2)
        self.dump_req.value = 0
        await self.clk_edge

    # ------------------------------------------------------------------ segments

    async def drive(self, item: SegmentItem) -> AcceptedSegment:
        words = to_binstrs(item.stream(), self.width)
        self._set_junk(words[0])
        bp: BackPressure = item.backpressure or self.cfg.backpressure
        if item.plan is not None:
            stall, idle = item.plan
            label = "periodic"
        else:
            stall, idle = bp.plan(self.rng, len(words))
            label = bp.pattern
        rec = AcceptedSegment(item, tlast=item.tlast, backpressure=label)
        if stall is None and idle is None and item.probe_after is None:
            cycles = await self._drive_plain(words, item.tlast)
        else:
            cycles = await self._drive_pressured(words, item.tlast, stall, idle,
                                                 item.probe_after, item)
            pressured = np.zeros(len(words), dtype=bool)
            if stall is not None:
                pressured |= stall > 0
                rec.stall_cycles = int(stall.sum())
            if idle is not None:
                pressured |= idle > 0
                rec.idle_cycles = int(idle.sum())
            rec.pressured_words = np.flatnonzero(pressured[item.header_words:])
        rec.words_accepted = len(words)
        rec.busy_cycles = cycles
        self.words_driven += len(words)
        self.cycles += cycles
        return rec

    async def _drive_plain(self, words: list[str], tlast: bool) -> int:
        """Back-to-back words, tvalid high throughout: the hot loop."""
        put, edge, ready = self.put_tdata, self.clk_edge, self.tready_raw
        cycles = len(words)
        self.tvalid.value = 1
        for w in words[:-1]:
            put(w)
            await edge
            if ready() != "1":
                cycles += await self._wait_ready()
        if tlast:
            self.tlast.value = 1
        put(words[-1])
        await edge
        if ready() != "1":
            cycles += await self._wait_ready()
        self.tlast.value = 0
        self.tvalid.value = 0  # overridden at no cost if the next item starts now
        return cycles

    async def _wait_ready(self) -> int:
        """Hold the word until tready; the clocks it took. Raises after
        cfg.ready_timeout clocks (a hung DUT must not hang the regression)."""
        edge, ready, limit = self.clk_edge, self.tready_raw, self.cfg.ready_timeout
        waited = 0
        while ready() != "1":
            waited += 1
            if waited > limit:
                raise TimeoutError(f"s_axis_tready stayed low for {limit} clocks with "
                                   "mem_stall low")
            await edge
        return waited

    async def _drive_pressured(self, words: list[str], tlast: bool, stall: np.ndarray | None,
                               idle: np.ndarray | None, probe_after: int | None = None,
                               item: SegmentItem | None = None) -> int:
        """Words with idle gaps (junk, see _idle_cycles) before some of them, mem_stall
        held for some (tready must be 0 then), and an optional probe after word
        `probe_after`: 2 idle clocks, the probe record published in ReadOnly, 1 more."""
        put, tvalid, edge, ready = self.put_tdata, self.tvalid, self.clk_edge, self.tready_raw
        stall_l = _as_list(stall, len(words))
        idle_l = _as_list(idle, len(words))
        last = len(words) - 1
        cycles = 0
        tvalid.value = 1
        for k, w in enumerate(words):
            g = idle_l[k]
            if g:
                await self._idle_cycles(g, w)
                cycles += g
                tvalid.value = 1
            put(w)
            self.tlast.value = int(k == last and tlast)
            s = stall_l[k]
            if s:
                self.mem_stall.value = 1
                for _ in range(s):
                    await edge
                    if ready() != "0":
                        self.violation("handshake.tready_stall",
                                       f"s_axis_tready {ready()} with mem_stall 1: expected 0")
                cycles += s
                self.mem_stall.value = 0
            await edge
            cycles += 1
            if ready() != "1":
                cycles += await self._wait_ready()
            if k == probe_after:
                await self._idle_cycles(2, w)
                await ReadOnly()
                self.accepted_ap.write(AcceptedSegment(item, probe=True))
                await edge
                cycles += 3
                if k < last:
                    tvalid.value = 1
        self.tlast.value = 0
        self.tvalid.value = 0
        return cycles


def _as_list(plan: np.ndarray | Sequence[int] | None, n: int) -> list[int]:
    if plan is None:
        return [0] * n
    values = [int(v) for v in np.asarray(plan).tolist()]
    if len(values) != n:
        raise ValueError(f"plan of {len(values)} entries for {n} stream words")
    return values
