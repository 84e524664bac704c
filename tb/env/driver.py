"""SegmentDriver: drives s_axis_* one word per clock from whole-segment items.

Per clock the driver does the least Python work it can: deposit tdata (bit strings
precomputed per segment with numpy), await the rising edge, sample tready (raw
GPI read). tlast, tvalid and mem_stall are only
written when they change. Idle gaps (tvalid low) and back-pressure (mem_stall
high) come from per-segment numpy plans drawn from the seed (BackPressure.plan),
so the per-word loop does no random work and no logging.

Handshake sampling: the driver reads tready right after the rising edge at which it
presented a word. The contract makes tready a function of rst_n and mem_stall (both
driven here and not changed before that read), so the value read is the one the
loader saw at the edge on every simulator. Should a DUT compute tready from state
that changes at the edge, the write monitor and the scoreboard still see every
duplicated or skipped word.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge
from pyuvm import ConfigDB, uvm_analysis_port, uvm_driver

from tb.env.config import BackPressure, EnvConfig
from tb.env.items import ResetItem, SegmentItem
from tb.env.signals import binstr_depositor, raw_reader, to_binstrs


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
        self.words_driven = 0
        self.cycles = 0

    def start_of_simulation_phase(self) -> None:
        dut = self.cfg.dut
        self.clk_edge = RisingEdge(dut.clk)
        self.tdata, self.tvalid, self.tlast = (dut.s_axis_tdata, dut.s_axis_tvalid,
                                               dut.s_axis_tlast)
        self.mem_stall, self.rst_n, self.dump_req = dut.mem_stall, dut.rst_n, dut.dump_req
        self.put_tdata = binstr_depositor(dut.s_axis_tdata)
        self.tready_raw = raw_reader(dut.s_axis_tready)
        self.width = len(dut.s_axis_tdata)

    async def run_phase(self) -> None:
        await self.reset(self.cfg.reset_cycles, initial=True)
        for hook in self.start_hooks:
            await hook()
        while True:
            item = await self.seq_item_port.get_next_item()
            if isinstance(item, ResetItem):
                await self.reset(item.cycles)
                self.accepted_ap.write(AcceptedSegment(item, reset=True))
            else:
                self.accepted_ap.write(await self.drive(item))
            self.seq_item_port.item_done()

    # ------------------------------------------------------------------ reset / dump

    async def idle(self, cycles: int = 1) -> None:
        self.tvalid.value = 0
        self.tlast.value = 0
        self.mem_stall.value = 0
        for _ in range(cycles):
            await self.clk_edge

    async def reset(self, cycles: int, initial: bool = False) -> None:
        """Pulse rst_n low for `cycles` clocks; monitors drain before, rewind after."""
        await self.idle(1)
        if not initial:
            await ReadOnly()
            for hook in self.pre_reset_hooks:
                hook()
            await self.clk_edge
        self.rst_n.value = 0
        self.dump_req.value = 0
        self.tdata.value = 0
        await self.idle(cycles)
        self.rst_n.value = 1
        for hook in self.post_reset_hooks:
            hook()
        await self.clk_edge

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
        bp: BackPressure = item.backpressure or self.cfg.backpressure
        stall, idle = bp.plan(self.rng, len(words))
        rec = AcceptedSegment(item, tlast=item.tlast, backpressure=bp.pattern)
        if stall is None and idle is None:
            cycles = await self._drive_plain(words, item.tlast)
        else:
            cycles = await self._drive_pressured(words, item.tlast, stall, idle)
            pressured = np.zeros(len(words), dtype=bool)
            if stall is not None:
                pressured |= stall > 0
                rec.stall_cycles = int(stall.sum())
            if idle is not None:
                pressured |= idle > 0
                rec.idle_cycles = int(idle.sum())
            rec.pressured_words = np.flatnonzero(pressured[1:])
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
                               idle: np.ndarray | None) -> int:
        """Words with idle gaps before some of them and mem_stall held for some."""
        put, tvalid, edge, ready = self.put_tdata, self.tvalid, self.clk_edge, self.tready_raw
        stall_l = stall.tolist() if stall is not None else [0] * len(words)
        idle_l = idle.tolist() if idle is not None else [0] * len(words)
        last = len(words) - 1
        cycles = 0
        tvalid.value = 1
        for k, w in enumerate(words):
            g = idle_l[k]
            if g:
                tvalid.value = 0
                for _ in range(g):
                    await edge
                cycles += g
                tvalid.value = 1
            put(w)
            if k == last and tlast:
                self.tlast.value = 1
            s = stall_l[k]
            if s:
                self.mem_stall.value = 1
                for _ in range(s):
                    await edge
                cycles += s
                self.mem_stall.value = 0
            await edge
            cycles += 1
            if ready() != "1":
                cycles += await self._wait_ready()
        self.tlast.value = 0
        self.tvalid.value = 0
        return cycles
