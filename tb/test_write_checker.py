"""pytest entry of the unit test of rtl/param_write_checker.sv (tb/tests_write_checker.py).

Icarus (4-state: an x word is wrong) for word widths 32, 64 and 128 bits with word
and byte addresses; Verilator (2-state) for the default 64-bit word addresses.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from cosim.golden.image import MemoryImage, image_hex
from cosim.golden.layout import LayoutConfig
from cosim.tb.sim import BUILD, RTL_DIR, results_summary, run_cocotb, simulator_available

pytestmark = pytest.mark.sim

DEPTH = 64
IMAGE_INDICES = np.r_[2:20, 30:41, 60:64]  # three runs: '@' lines in both files


def _case(width: int, byte_addr: bool, four_state: bool) -> tuple[dict, MemoryImage]:
    rng = np.random.default_rng(width + byte_addr)  # pinned: the words only
    limbs = max(1, width // 64)
    words = rng.integers(0, 2**63, size=(IMAGE_INDICES.size, limbs), dtype=np.uint64)
    if width < 64:
        words &= np.uint64((1 << width) - 1)
    image = MemoryImage(IMAGE_INDICES.astype(np.int64), words[:, 0] if limbs == 1 else words)

    def word(k: int) -> int:
        w = image.words[k]
        return int(w) if limbs == 1 else sum(int(v) << (64 * i) for i, v in enumerate(w))

    hexw = width // 4
    flip = f"{word(3) ^ (1 << (width - 1)):0{hexw}x}"        # the top bit of one word
    writes = [
        [int(IMAGE_INDICES[0]), f"{word(0):0{hexw}x}", "ok"],
        [int(IMAGE_INDICES[3]), flip, "wrong"],                 # wrong first: first_bad
        [int(IMAGE_INDICES[5]), f"{word(5):0{hexw}x}", "ok"],
        [int(IMAGE_INDICES[5]), f"{word(5):0{hexw}x}", "duplicate"],
        [25, f"{word(6):0{hexw}x}", "unexpected"],              # a hole between runs
        [int(IMAGE_INDICES[-1]), f"{word(IMAGE_INDICES.size - 1) ^ 1:0{hexw}x}", "wrong"],
        [int(IMAGE_INDICES[4]), f"{word(4):0{hexw}x}", "ok"],
    ]
    if four_state:
        writes.append([int(IMAGE_INDICES[7]), "x", "wrong"])     # x data never equals
    case = {"width": width, "byte_addr": int(byte_addr), "image_words": IMAGE_INDICES.size,
            "writes": writes}
    return case, image


@pytest.mark.parametrize("sim,width,byte_addr", [
    ("icarus", 32, False), ("icarus", 64, False), ("icarus", 128, False),
    ("icarus", 64, True), ("icarus", 128, True), ("verilator", 64, False)])
def test_write_checker_counts_every_kind(sim, width, byte_addr):
    if not simulator_available(sim):
        pytest.skip(f"{sim} is not installed")
    case, image = _case(width, byte_addr, four_state=(sim == "icarus"))
    run = BUILD / "write_checker" / f"{sim}-{width}-{int(byte_addr)}"
    run.mkdir(parents=True, exist_ok=True)
    text, mask = image_hex(image, LayoutConfig(word_bits=width))
    (run / "image.hex").write_bytes(text)
    (run / "mask.hex").write_bytes(mask)
    addr_w = (DEPTH * (width // 8) if byte_addr else DEPTH).bit_length()
    xml = run_cocotb(sim, "cosim.tb.tests_write_checker", "every_kind_of_write",
                     extra_env={"WRITE_CHECKER_CASE": json.dumps(case)},
                     plusargs=[f"+PARAM_EXPECT={run / 'image.hex'}",
                               f"+PARAM_EXPECT_MASK={run / 'mask.hex'}"],
                     sources=[RTL_DIR / "param_write_checker.sv"],
                     parameters={"DEPTH": DEPTH, "WIDTH": width, "ADDR_W": addr_w,
                                 "BYTE_ADDR": int(byte_addr)},
                     toplevel="param_write_checker", tag=f"{width}-{int(byte_addr)}",
                     check=False)
    tests, failed = results_summary(xml)
    assert tests == 1 and not failed, f"{sim} {width}-bit: {failed}; see {xml}"
