"""Host side: cocotbext-axi masters that push the image into the DUT's AXI slaves.

- AXI4 (`s_axi_*`): AxiMasterWrite; one `write()` per segment, which cocotbext-axi
  splits into INCR bursts of at most 256 beats that never cross 4 KiB.
- AXI4-Lite (`s_axil_*`): AxiLiteMasterWrite; one transaction per word. `write()`
  goes through its command layer (any address/length, partial strobes);
  `write_lite_words()` queues a whole segment's AW and W beats at once on the
  master's cocotbext-axi channel sources and takes every B from its B sink (no
  per-word coroutine: the whole-image run).

Both return the write response (OKAY / SLVERR); the env compares it with the
prediction. The status counters of the slaves are read with `status()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cocotb.triggers import Timer
from cocotbext.axi import AxiLiteMasterWrite, AxiLiteWriteBus, AxiMasterWrite, AxiWriteBus
from cocotbext.axi.axil_channels import AxiLiteAWTransaction, AxiLiteWTransaction
from cocotbext.axi.constants import AxiResp
from cosim.tb.env.axi_dma import CLK_PERIOD_NS
from cosim.tb.env.signals import int_reader

OKAY, SLVERR = int(AxiResp.OKAY), int(AxiResp.SLVERR)
#: cycles without a new B response after which write_lite_words gives up
LITE_STALL_CYCLES = 10_000


@dataclass
class SlaveStatus:
    flags: int
    words: int
    slverr: int
    bursts: int = 0


class HostAxi:
    """The AXI4 and AXI4-Lite masters of a host on one DUT."""

    def __init__(self, dut, clock, reset) -> None:
        self.dut = dut
        #: a DUT without s_axi_* / s_axil_* ports (a user's top with one slave) gets None
        self.axi = self.lite = None
        if hasattr(dut, "s_axi_awaddr"):
            self.axi = AxiMasterWrite(AxiWriteBus.from_prefix(dut, "s_axi"), clock, reset,
                                      reset_active_level=False)
        if hasattr(dut, "s_axil_awaddr"):
            self.lite = AxiLiteMasterWrite(AxiLiteWriteBus.from_prefix(dut, "s_axil"), clock,
                                           reset, reset_active_level=False)
            # many writes outstanding: cocotbext-axi limits its AW/W/B queues to 2
            # entries; unlimited, write_lite_words queues a whole segment
            for ch in (self.lite.aw_channel, self.lite.w_channel, self.lite.b_channel):
                ch.queue_occupancy_limit = -1
        self._axi = _readers(dut, ("axi_error_flags", "axi_words", "axi_slverr", "axi_bursts"))
        self._lite = _readers(dut, ("axil_error_flags", "axil_words", "axil_slverr"))

    @property
    def models(self) -> list:
        return [m for m in (self.axi, self.lite) if m is not None]

    async def write(self, address: int, data: bytes, lite: bool = False,
                    size: int | None = None) -> int:
        """Write `data` at byte `address`; the response code (worst of the bursts)."""
        if (self.lite if lite else self.axi) is None:
            raise RuntimeError(f"the DUT has no {'s_axil' if lite else 's_axi'}_* ports "
                               "(docs/stimulus-paths.md)")
        if lite:
            resp = await self.lite.write(address, data)
        else:
            resp = await self.axi.write(address, data, size=size)
        return int(resp.resp)

    async def write_lite_words(self, address: int, data: bytes) -> list[int]:
        """Write whole words `data` from word-aligned byte `address` over AXI4-Lite, one
        transaction (AW, W with a full strobe, B) per word, all AW/W queued at once
        on the master's channel sources: the slave sees them back to back. Returns
        the B response of every word, in order (shorter when the slave stopped
        answering for LITE_STALL_CYCLES cycles). Not concurrently with write()."""
        lite = self.lite
        if lite is None:
            raise RuntimeError("the DUT has no s_axil_* ports (docs/stimulus-paths.md)")
        wb = lite.byte_lanes
        if address % wb or len(data) % wb:
            raise ValueError(f"write_lite_words: {address:#x}+{len(data)} is not whole words")
        aw, w, b = lite.aw_channel, lite.w_channel, lite.b_channel
        if not (b.empty() and aw.idle() and w.idle() and lite.idle()):
            raise RuntimeError("write_lite_words: AXI4-Lite transactions still in flight")
        n = len(data) // wb
        strb = lite.strb_mask
        for k in range(n):
            aw.send_nowait(AxiLiteAWTransaction(awaddr=address + k * wb))
            w.send_nowait(AxiLiteWTransaction(
                wdata=int.from_bytes(data[k * wb:(k + 1) * wb], "little"), wstrb=strb))
        # at most one B per cycle: sleep for the B still missing, then look again
        stalled = 0
        while b.count() < n and stalled < LITE_STALL_CYCLES:
            before = b.count()
            wait = max(n - before, 1)
            await Timer(wait * CLK_PERIOD_NS, "ns")
            stalled = stalled + wait if b.count() == before else 0
        return [int(b.recv_nowait().bresp) for _ in range(b.count())]

    def status(self, lite: bool = False) -> SlaveStatus | None:
        """The slave's status outputs (None when the DUT has none of them)."""
        readers = self._lite if lite else self._axi
        return None if readers is None else SlaveStatus(*[f() for f in readers])


def _readers(dut, names: tuple[str, ...]):
    if not all(hasattr(dut, n) for n in names):
        return None
    return [int_reader(getattr(dut, n)) for n in names]
