"""Pre-run checks: the DUT, the golden side and the accelerator file must agree.

Before the first clock, `prerun_check` compares what the DUT was built with
(its port widths and the constant `cfg_*` outputs of cnn_param_top, which work
on every simulator: Verilator shows no parameters through VPI) and what the
testbench was given:

- word width (`s_axis_tdata` width) with the golden layout's word_bits;
- memory address width (`mem_addr` width) with the layout's address bits
  (word or byte addresses, `memory.address_unit`);
- MEM_DEPTH (`cfg_mem_depth`) with the layout's memory depth;
- NUM_LAYERS (`cfg_num_layers`) with the layout's weighted layers;
- the DUT's layout package (the cnn_layout_pkg.sv it was built from, named by
  COCOSIM_RTL_PKG, set by tb/sim.py) with the package the golden layout
  generates (golden.svpkg.generate; compared without comments);
- the accelerator file the user gave (COCOSIM_ACCEL) with the one the golden
  layout.json records (name and sha256).

The first disagreement is returned as ONE line naming both values, e.g.
``pre-run check: DUT WORD_W is 32, the golden layout (build/golden/layout.json)
has word_bits 64``; the test stops there (nothing is driven).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

PRERUN = "pre-run check"


class PrerunError(RuntimeError):
    """The DUT, the golden side and the accelerator file disagree (one line)."""


def package_digest(text: str) -> str:
    """sha256 of an SV package's code: comments, blank lines and indentation removed
    (the generated file's header names the network and its source; the tables do not
    depend on that)."""
    code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    lines = []
    for line in code.splitlines():
        line = line.split("//", 1)[0].strip()
        if line:
            lines.append(re.sub(r"\s+", " ", line))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def layout_memory(layout: Any) -> tuple[int, int]:
    """(memory depth in words, address bits of the DUT's memory port) of a Layout."""
    return int(layout.depth), int(layout.mem_addr_bits)


def dut_parameters(dut: Any) -> dict[str, int | None]:
    """What the DUT was built with: port widths (`s_axis_tdata`, `mem_addr`) and the
    cfg_* constant outputs (None when the DUT has no such port or its value is not a
    number yet; a top without the stream or write-bus ports, e.g. an AXI top, is
    checked on its cfg_* outputs)."""
    from cosim.tb.env.signals import int_reader

    def const(name: str) -> int | None:
        if not hasattr(dut, name):
            return None
        v = int_reader(getattr(dut, name))()
        return None if v < 0 else v

    def width(name: str, fallback: str) -> int | None:
        return len(getattr(dut, name)) if hasattr(dut, name) else const(fallback)

    return {"word_bits": width("s_axis_tdata", "cfg_word_bits"),
            "addr_bits": width("mem_addr", "cfg_addr_bits"),
            "mem_depth": const("cfg_mem_depth"), "num_layers": const("cfg_num_layers")}


def _where(golden: Any) -> str:
    if golden.golden_dir is not None and (Path(golden.golden_dir) / "layout.json").is_file():
        return f"the golden layout ({_shown(Path(golden.golden_dir) / 'layout.json')})"
    return f"the golden layout (computed from package {_shown(Path(golden.package_dir))})"


def _shown(path: Path) -> str:
    """A path as the line shows it: relative to the repository when inside it (the
    simulator runs in its own run directory, so the cwd would say nothing)."""
    from cosim.tb.env.config import REPO
    try:
        return str(Path(path).resolve().relative_to(REPO.resolve()))
    except ValueError:
        return str(path)


def recorded_accelerator(golden: Any) -> dict[str, str] | None:
    """{"name", "sha256"} the golden layout.json records (None: none recorded)."""
    table = golden.layout_table
    if not table:
        return None
    acc = table.get("config", {}).get("accelerator") or table.get("accelerator")
    return acc if isinstance(acc, dict) else None


def prerun_check(dut_params: dict[str, int | None], golden: Any,
                 env: Any = None) -> str | None:
    """The first disagreement between the DUT, the golden side (a GoldenData) and the
    accelerator file, as one line; None when everything agrees."""
    env = os.environ if env is None else env
    layout = golden.layout
    where = _where(golden)
    word_bits = int(layout.config.word_bits)
    if dut_params.get("word_bits") not in (None, word_bits):
        return (f"{PRERUN}: DUT WORD_W is {dut_params['word_bits']}, {where} has word_bits "
                f"{word_bits}")
    depth, addr_bits = layout_memory(layout)
    if dut_params.get("addr_bits") not in (None, addr_bits):
        unit = getattr(layout.config, "address_unit", "word")
        return (f"{PRERUN}: DUT memory address width is {dut_params['addr_bits']} bits, "
                f"{where} has {addr_bits} ({unit} addresses, depth {depth})")
    if dut_params.get("mem_depth") not in (None, depth):
        return f"{PRERUN}: DUT MEM_DEPTH is {dut_params['mem_depth']}, {where} has depth {depth}"
    layers = len(layout.layers)
    if dut_params.get("num_layers") not in (None, layers):
        return (f"{PRERUN}: DUT NUM_LAYERS is {dut_params['num_layers']}, {where} has "
                f"{layers} weighted layers")
    pkg = str(env.get("COCOSIM_RTL_PKG", "")).strip()
    if pkg and Path(pkg).is_file():
        from cosim.golden import svpkg

        got = package_digest(Path(pkg).read_text(encoding="utf-8", errors="replace"))
        want = package_digest(svpkg.generate(layout, "pre-run check"))
        if got != want:
            return (f"{PRERUN}: the DUT's layout package {_shown(Path(pkg))} has code sha256 "
                    f"{got[:16]}, {where} generates one with sha256 {want[:16]} (built for "
                    "another network or accelerator; rebuild the RTL for this golden side)")
    accel = str(env.get("COCOSIM_ACCEL", "")).strip()
    if accel:
        path = Path(accel)
        if not path.is_file():
            return f"{PRERUN}: COCOSIM_ACCEL={accel}: no such accelerator file"
        got = file_sha256(path)
        rec = recorded_accelerator(golden)
        if golden.golden_dir is not None and rec is None:
            return (f"{PRERUN}: accelerator file {accel} has sha256 {got[:16]}, {where} "
                    "records no accelerator (made by an older cosim golden; rerun it with "
                    "--accel)")
        if rec is not None and rec.get("sha256") != got:
            return (f"{PRERUN}: accelerator file {accel} has sha256 {got[:16]}, {where} was "
                    f"made with accelerator {rec.get('name')!r} (sha256 "
                    f"{str(rec.get('sha256'))[:16]})")
    return None
