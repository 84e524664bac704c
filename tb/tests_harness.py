"""The bench's baseline "the pure-HDL harness under cocotb, Python idle".

rtl/cnn_compute_harness.sv drives the whole run from its own initial block; this
test only waits (one value-change callback) for its `finished` output. Its wall
against the harness run as a plain simulator binary is what cocotb's scheduler
loop costs per simulated cycle with no Python work at all; against the pyuvm
compute test it is what the testbench itself costs (bench/compute.py).
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import RisingEdge


@cocotb.test()
async def HarnessIdle(dut) -> None:  # noqa: N802 (named like the pyuvm tests)
    """Wait for the harness to finish (run with +NO_FINISH)."""
    if str(dut.finished.value) != "1":  # x before the harness's initial block (Icarus)
        await RisingEdge(dut.finished)
