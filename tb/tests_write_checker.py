"""cocotb unit test of rtl/param_write_checker.sv (run by tb/test_write_checker.py).

The expected image (+PARAM_EXPECT, +PARAM_EXPECT_MASK) holds words at indices
IMAGE_INDICES of a DEPTH-word memory. One write of each kind, in order, and after
each one every count must have moved exactly as the contract says (a right write:
checked only; a wrong word, a repeated address, an index outside the image or
beyond DEPTH: checked and that count), and first_bad_* must name the first bad
write and never change after it. The writes come from ENV WRITE_CHECKER_CASE
(written by the pytest entry, together with the image files): JSON list of
[word index, data as hex, expected effect].
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

COUNTS = ("checked", "wrong", "duplicate", "unexpected")
KINDS = {"unexpected": 1, "duplicate": 2, "wrong": 3}


def _counts(dut) -> dict[str, int]:
    return {name: int(getattr(dut, name).value) for name in COUNTS}


@cocotb.test()
async def every_kind_of_write(dut) -> None:
    case = json.loads(os.environ["WRITE_CHECKER_CASE"])
    width, byte_addr = int(case["width"]), bool(case["byte_addr"])
    cocotb.start_soon(Clock(dut.clk, 10, "ns").start())
    dut.we.value = 0
    dut.waddr.value = 0
    dut.wdata.value = 0
    await RisingEdge(dut.clk)
    await ReadOnly()
    assert int(dut.expected_words.value) == case["image_words"], (
        f"expected_words {int(dut.expected_words.value)}, the image has {case['image_words']}")
    first: tuple[int, int] | None = None
    for index, data, effect in case["writes"]:
        await FallingEdge(dut.clk)
        before = _counts(dut)
        dut.we.value = 1
        dut.waddr.value = index * (width // 8) if byte_addr else index
        dut.wdata.value = int(data, 16) if data != "x" else int(dut.wdata.value)
        if data == "x":
            dut.wdata.value = cocotb.types.LogicArray("x" * width)
        await FallingEdge(dut.clk)
        dut.we.value = 0
        await ReadOnly()
        after = _counts(dut)
        want = dict(before, checked=before["checked"] + 1)
        if effect != "ok":
            want[effect] += 1
            if first is None:
                first = (KINDS[effect], index)
        assert after == want, f"write of {data} at index {index} ({effect}): counts {after}, " \
                              f"expected {want}"
        got_first = (int(dut.first_bad_kind.value), int(dut.first_bad_index.value))
        assert got_first == (first or (0, 0)), f"first bad write {got_first}, expected {first}"
