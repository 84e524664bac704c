"""Host side: cocotbext-axi masters that push the image into the DUT's AXI slaves.

- AXI4 (`s_axi_*`): AxiMasterWrite; one `write()` per segment, which cocotbext-axi
  splits into INCR bursts of at most 256 beats that never cross 4 KiB.
- AXI4-Lite (`s_axil_*`): AxiLiteMasterWrite; one transaction per word.

Both return the write response (OKAY / SLVERR); the env compares it with the
prediction. The status counters of the slaves are read with `status()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cocotbext.axi import AxiLiteMasterWrite, AxiLiteWriteBus, AxiMasterWrite, AxiWriteBus
from cocotbext.axi.constants import AxiResp
from cosim.tb.env.signals import int_reader

OKAY, SLVERR = int(AxiResp.OKAY), int(AxiResp.SLVERR)


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

    def status(self, lite: bool = False) -> SlaveStatus | None:
        """The slave's status outputs (None when the DUT has none of them)."""
        readers = self._lite if lite else self._axi
        return None if readers is None else SlaveStatus(*[f() for f in readers])


def _readers(dut, names: tuple[str, ...]):
    if not all(hasattr(dut, n) for n in names):
        return None
    return [int_reader(getattr(dut, n)) for n in names]
