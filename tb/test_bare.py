"""Bare cocotb tests of cnn_param_top (no pyuvm): the baseline loop and its checks.

Run through tb/sim.py (``run_cocotb(sim, "cosim.tb.test_bare")``), not by pytest
directly (tb/conftest.py keeps pytest from collecting this module).

- ``bare_loop``: drives the golden stream (build/golden/stream.hex and
  stream_tlast.hex) at one word per clock (tvalid held high, mem_stall 0), dumps
  the memory ($writememh via dump_req) and checks that every expected address of
  image.npz holds its word (integer equality, mismatches counted) and that no
  other address was written; reports words/s (the `make bench` baseline, also
  written to build/bench/bare_loop_<sim>.json).
- ``write_log``: the same stream with a monitor that wakes on ``wlog_tick`` and
  reads the write log in batches (the pattern a pyuvm monitor uses); checks every
  write (address, data, bad bit) in order.
- ``stall``: random mem_stall back-pressure and tvalid gaps on a few layers: no
  write while mem_stall is 1, s_axis_tready follows mem_stall, every word lands
  once (dump compared with the image).
- ``bad_headers``: malformed segments (bad magic, reserved bit, layer, kind,
  count, early/missing tlast) raise their error flag and write nothing where a
  header is rejected; a good segment after them still loads.

Knobs (environment of the simulator process):
  BARE_LAYERS     comma-separated layer indices: stream only their segments
                  (default: the whole network; ``stall``: layers 0,1,2,52)
  BARE_GOLDEN_DIR golden directory (default build/golden)
  BARE_BENCH_DIR  where bare_loop_<sim>.json goes (default build/bench; "" = off)
"""

from __future__ import annotations

import csv
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge
from cosim.quant.workdir import build_root
from cosim.tb.env.config import MEM_POISON  # the memory's initial contents

REPO = Path(__file__).resolve().parents[1]
LOG_ENTRIES = 1024  # cnn_param_top's default LOG_ENTRIES

# error_flags bits (docs/rtl-interface.md)
ERR_MAGIC, ERR_LAYER, ERR_KIND, ERR_COUNT, ERR_EARLY_LAST, ERR_NO_LAST, ERR_ADDR = range(7)


# ---------------------------------------------------------------- golden files

@dataclass
class SegmentRow:
    layer: int
    kind: int
    header_line: int  # 1-based line of the header in stream.hex
    words: int
    base: int


@dataclass
class Stimulus:
    words: list[int]         # stream words, headers included
    tlast: list[int]
    segments: list[SegmentRow]
    exp_addr: np.ndarray     # expected addresses (int64, ascending)
    exp_word: np.ndarray     # their words (uint64)

    @property
    def data_words(self) -> int:
        return sum(s.words for s in self.segments)


def golden_dir() -> Path:
    return Path(os.environ.get("BARE_GOLDEN_DIR") or build_root() / "golden")


def read_segments(gdir: Path) -> list[SegmentRow]:
    with open(gdir / "stream_segments.csv", newline="") as f:
        return [SegmentRow(int(r["layer"]), int(r["kind"]), int(r["header_line"]),
                           int(r["words"]), int(r["base"])) for r in csv.DictReader(f)]


def load_stimulus(layers: set[int] | None = None) -> Stimulus:
    """The golden stream (or the segments of `layers`) and the image it must leave."""
    gdir = golden_dir()
    words = np.array([int(t, 16) for t in (gdir / "stream.hex").read_text().split()],
                     dtype=np.uint64)
    tlast = np.array((gdir / "stream_tlast.hex").read_text().split(), dtype=np.uint8)
    segments = read_segments(gdir)
    image = np.load(gdir / "image.npz")
    addr, data = image["addresses"].astype(np.int64), image["words"]
    if layers is not None:
        segments = [s for s in segments if s.layer in layers]
        keep = np.zeros(words.shape[0], dtype=bool)
        for s in segments:
            keep[s.header_line - 1:s.header_line + s.words] = True
        words, tlast = words[keep], tlast[keep]
        want = np.concatenate([np.arange(s.base, s.base + s.words) for s in segments])
        idx = np.searchsorted(addr, want)
        assert np.array_equal(addr[idx], want), "image.npz lacks segment addresses"
        order = np.argsort(want)
        addr, data = want[order], data[idx][order]
    assert len(words) == len(tlast) == len(segments) + sum(s.words for s in segments)
    return Stimulus(words.tolist(), tlast.tolist(), segments, addr, data)


def env_layers() -> set[int] | None:
    spec = os.environ.get("BARE_LAYERS", "").strip()
    return {int(x) for x in spec.split(",") if x.strip()} if spec else None


def read_dump(path: Path, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """($writememh words as uint64, written mask): X/Z words and words still holding the
    memory's poison pattern (MEM_POISON, its initial contents) count as never written."""
    words = np.zeros(depth, dtype=np.uint64)
    known = np.zeros(depth, dtype=bool)
    addr = 0
    for line in path.read_text().splitlines():
        for tok in line.split("//", 1)[0].split():  # Icarus writes "// 0x<addr>" comments
            if tok.startswith("@"):
                addr = int(tok[1:], 16)
                continue
            low = tok.lower()
            if "x" not in low and "z" not in low:
                words[addr] = int(low, 16)
                known[addr] = int(low, 16) != MEM_POISON
            addr += 1
    return words, known


# ---------------------------------------------------------------- DUT helpers

async def reset(dut, cycles: int = 2) -> None:
    """Inputs idle, rst_n low for `cycles` rising edges, then high."""
    dut.rst_n.value = 0
    dut.s_axis_tvalid.value = 0
    dut.s_axis_tlast.value = 0
    dut.s_axis_tdata.value = 0
    dut.mem_stall.value = 0
    dut.dump_req.value = 0
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst_n.value = 1
    await RisingEdge(dut.clk)


async def drive(dut, words: list[int], tlast: list[int]) -> float:
    """One word per clock, tvalid held high (tready must stay 1); returns wall seconds."""
    tdata, tlast_h, edge = dut.s_axis_tdata, dut.s_axis_tlast, RisingEdge(dut.clk)
    assert int(dut.s_axis_tready.value) == 1, "s_axis_tready low with mem_stall 0 after reset"
    dut.s_axis_tvalid.value = 1
    t0 = time.perf_counter()
    last = 0
    tlast_h.value = 0
    for w, t in zip(words, tlast, strict=True):
        tdata.value = w
        if t != last:
            tlast_h.value = t
            last = t
        await edge
    seconds = time.perf_counter() - t0
    dut.s_axis_tvalid.value = 0
    tlast_h.value = 0
    return seconds


async def dump_memory(dut, name: str = "param_memory.hex") -> Path:
    """Raise dump_req; return the $writememh file once it is written."""
    path = Path(str(cocotb.plusargs.get("DUMP_FILE", name))).resolve()
    await RisingEdge(dut.clk)
    dut.dump_req.value = 1
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    dut.dump_req.value = 0
    await RisingEdge(dut.clk)
    assert path.is_file(), f"no memory dump at {path} (plusarg +DUMP_FILE)"
    return path


def compare_image(dut, stim: Stimulus, path: Path, depth: int) -> tuple[int, int]:
    """(mismatching expected addresses, written addresses outside the image); logs examples."""
    words, known = read_dump(path, depth)
    got, got_known = words[stim.exp_addr], known[stim.exp_addr]
    bad = np.flatnonzero(~got_known | (got != stim.exp_word))
    for i in bad[:10]:
        a = int(stim.exp_addr[i])
        dut._log.error("address %#07x: expected %016x, got %s", a, int(stim.exp_word[i]),
                       f"{int(got[i]):016x}" if got_known[i] else "X (never written)")
    outside = np.ones(depth, dtype=bool)
    outside[stim.exp_addr] = False
    # unwritten words hold the poison pattern on every simulator (rtl/param_memory.sv)
    extra = np.flatnonzero(outside & known)
    for a in extra[:10]:
        dut._log.error("address %#07x outside the image was written: %016x", a, int(words[a]))
    return int(bad.size), int(extra.size)


def mem_depth(dut) -> int:
    """MEM_DEPTH of the layout package (from golden/layout.json, else the RTL package)."""
    meta = golden_dir() / "layout.json"
    if meta.is_file():
        from cosim.golden.layout import read_layout_json
        return int(read_layout_json(meta)[1]["depth"])
    text = (REPO / "rtl" / "cnn_layout_pkg.sv").read_text()
    return int(text.split("localparam int MEM_DEPTH =")[1].split(";")[0])


def check_status(dut, stim: Stimulus) -> list[str]:
    problems = []
    flags = int(dut.error_flags.value)
    if flags:
        problems.append(f"error_flags = {flags:#04x}")
    done, written = int(dut.segments_done.value), int(dut.words_written.value)
    if done != len(stim.segments):
        problems.append(f"segments_done {done} != {len(stim.segments)}")
    if written != stim.data_words:
        problems.append(f"words_written {written} != {stim.data_words}")
    if int(dut.wlog_count.value) != written:
        problems.append(f"wlog_count {int(dut.wlog_count.value)} != words_written {written}")
    return problems


# ---------------------------------------------------------------- tests

@cocotb.test()
async def bare_loop(dut):
    """The golden stream at one word per clock, then a dump compared with image.npz."""
    layers = env_layers()
    t_load = time.perf_counter()
    stim = load_stimulus(layers)
    t_load = time.perf_counter() - t_load
    await reset(dut)
    sim_t0 = cocotb.utils.get_sim_time("ns")
    seconds = await drive(dut, stim.words, stim.tlast)
    sim_ns = cocotb.utils.get_sim_time("ns") - sim_t0
    for _ in range(2):
        await RisingEdge(dut.clk)
    t_dump = time.perf_counter()
    path = await dump_memory(dut)
    mismatches, extra = compare_image(dut, stim, path, mem_depth(dut))
    t_dump = time.perf_counter() - t_dump
    rate = len(stim.words) / seconds
    dut._log.info("bare loop on %s: %d words (%d segments%s) in %.2f s wall = %.0f words/s; "
                  "%.0f ns simulated; load %.2f s, dump+compare %.2f s",
                  cocotb.SIM_NAME, len(stim.words), len(stim.segments),
                  f", layers {sorted(layers)}" if layers else ", whole network", seconds, rate,
                  sim_ns, t_load, t_dump)
    dut._log.info("memory check: %d expected words, %d mismatches, %d writes outside the image",
                  stim.exp_addr.size, mismatches, extra)
    bench_dir = os.environ.get("BARE_BENCH_DIR", str(build_root() / "bench"))
    if bench_dir and layers is None:
        Path(bench_dir).mkdir(parents=True, exist_ok=True)
        sim = "verilator" if "verilator" in cocotb.SIM_NAME.lower() else "icarus"
        (Path(bench_dir) / f"bare_loop_{sim}.json").write_text(json.dumps({
            "sim": cocotb.SIM_NAME, "sim_version": cocotb.SIM_VERSION,
            "words": len(stim.words), "segments": len(stim.segments),
            "seconds": round(seconds, 3), "words_per_s": round(rate, 1),
            "sim_ns": sim_ns, "mismatches": mismatches, "extra_writes": extra,
        }, indent=1) + "\n")
    problems = check_status(dut, stim)
    if mismatches:
        problems.append(f"{mismatches} of {stim.exp_addr.size} expected words differ")
    if extra:
        problems.append(f"{extra} addresses outside the image were written")
    assert not problems, "; ".join(problems)


@cocotb.test()
async def write_log(dut):
    """Stream with a batched write-log monitor (wakes on wlog_tick) checking every write."""
    stim = load_stimulus(env_layers())
    exp_addr = np.concatenate([np.arange(s.base, s.base + s.words) for s in stim.segments])
    data = np.array(stim.words, dtype=np.uint64)
    is_data = np.ones(len(stim.words), dtype=bool)
    pos = 0
    for s in stim.segments:
        is_data[pos] = False  # header
        pos += s.words + 1
    exp_data = data[is_data]
    state = {"read": 0, "bad": 0, "wakeups": 0, "errors": []}

    async def monitor():
        addr_h, data_h, bad_h = dut.wlog_addr, dut.wlog_data, dut.wlog_bad
        while True:
            await dut.wlog_tick.value_change
            await ReadOnly()  # wlog_count and the entries settle with the tick
            count = int(dut.wlog_count.value)
            state["wakeups"] += 1
            for n in range(state["read"], count):
                slot = n % LOG_ENTRIES
                a, d = int(addr_h[slot].value), int(data_h[slot].value)
                if int(bad_h[slot].value):
                    state["bad"] += 1
                if n >= exp_addr.size or a != exp_addr[n] or d != int(exp_data[n]):
                    if len(state["errors"]) < 10:
                        state["errors"].append(f"write {n}: {a:#x} {d:016x}")
            state["read"] = count

    await reset(dut)
    task = cocotb.start_soon(monitor())
    seconds = await drive(dut, stim.words, stim.tlast)
    for _ in range(4):
        await RisingEdge(dut.clk)
    task.cancel()
    dut._log.info("write-log monitor on %s: %d writes read in %d wake-ups; %.2f s wall = "
                  "%.0f words/s", cocotb.SIM_NAME, state["read"], state["wakeups"], seconds,
                  len(stim.words) / seconds)
    assert not state["errors"], f"write log differs from the stream: {state['errors']}"
    assert state["read"] == exp_addr.size, f"read {state['read']} of {exp_addr.size} writes"
    assert state["bad"] == 0, f"{state['bad']} writes with X/Z"
    assert not check_status(dut, stim), check_status(dut, stim)


@cocotb.test()
async def stall(dut):
    """Random mem_stall and tvalid gaps: no write while stalled, every word stored once."""
    stim = load_stimulus(env_layers() or {0, 1, 2, 52})
    rng = random.Random(cocotb.RANDOM_SEED)
    await reset(dut)
    tdata, tlast, tvalid = dut.s_axis_tdata, dut.s_axis_tlast, dut.s_axis_tvalid
    stall_h, tready, we = dut.mem_stall, dut.s_axis_tready, dut.mem_we
    edge, problems, i, cycles = RisingEdge(dut.clk), [], 0, 0
    while i < len(stim.words):
        stalled = rng.random() < 0.3
        valid = rng.random() >= 0.2
        stall_h.value = int(stalled)
        tvalid.value = int(valid)
        tdata.value = stim.words[i] if valid else rng.getrandbits(64)
        tlast.value = stim.tlast[i] if valid else rng.getrandbits(1)
        await ReadOnly()
        if int(tready.value) != (not stalled) or (stalled and int(we.value)):
            if len(problems) < 10:
                problems.append(f"cycle {cycles}: mem_stall {int(stalled)}, s_axis_tready "
                                f"{int(tready.value)}, mem_we {int(we.value)}")
        await edge
        cycles += 1
        i += int(valid and not stalled)
    tvalid.value = 0
    stall_h.value = 0
    for _ in range(2):
        await edge
    path = await dump_memory(dut)
    mismatches, extra = compare_image(dut, stim, path, mem_depth(dut))
    dut._log.info("stall: %d words in %d cycles, %d mismatches, %d extra writes",
                  len(stim.words), cycles, mismatches, extra)
    problems += check_status(dut, stim)
    if mismatches or extra:
        problems.append(f"{mismatches} mismatching words, {extra} writes outside the image")
    assert not problems, "; ".join(problems)


@cocotb.test()
async def bad_headers(dut):
    """Malformed segments set their flag and never write; a good segment still loads."""
    from cosim.golden.image import header_word  # the one header encoder

    gdir = golden_dir()
    segs = read_segments(gdir)
    seg = next(s for s in segs if s.kind == 1 and s.words >= 3)  # a short bias segment
    all_words = (gdir / "stream.hex").read_text().split()
    body = [int(t, 16) for t in all_words[seg.header_line:seg.header_line + seg.words]]
    good = header_word(seg.layer, seg.kind, seg.words)
    n_layers = max(s.layer for s in segs) + 1

    def segment(header, data, last_at=None):
        last_at = len(data) if last_at is None else last_at  # index into [header] + data
        words = [header, *data]
        return words, [int(i == last_at) for i in range(len(words))]

    cases = {  # name: (words, tlast, flag, words written)
        "bad magic": (*segment(good ^ (0x5A << 56), body), ERR_MAGIC, 0),
        "reserved bit": (*segment(good | 1, body), ERR_MAGIC, 0),
        "layer out of range": (*segment(header_word(n_layers, 0, seg.words), body), ERR_LAYER,
                               0),
        "kind out of range": (*segment(header_word(seg.layer, 3, seg.words), body), ERR_KIND, 0),
        "count + 1": (*segment(header_word(seg.layer, seg.kind, seg.words + 1),
                               [*body, 0]), ERR_COUNT, 0),
        "count - 1": (*segment(header_word(seg.layer, seg.kind, seg.words - 1), body[:-1]),
                      ERR_COUNT, 0),
        "early tlast": (*segment(good, body[:-1]), ERR_EARLY_LAST, seg.words - 1),
        "no tlast": (*segment(good, [*body, 7], last_at=seg.words + 1), ERR_NO_LAST, seg.words),
    }
    failures: dict[str, list[str]] = {}
    for name, (words, tlast, flag, n_written) in cases.items():
        await reset(dut)
        await drive(dut, words, tlast)
        await RisingEdge(dut.clk)
        await ReadOnly()
        flags, written = int(dut.error_flags.value), int(dut.words_written.value)
        state, done = int(dut.state.value), int(dut.segments_done.value)
        if flags != 1 << flag or written != n_written or state != 0 or done != 0:
            failures.setdefault(name, []).append(
                f"error_flags {flags:#04x} (want {1 << flag:#04x}), words_written {written} "
                f"(want {n_written}), state {state} (want 0), segments_done {done} (want 0)")
        await RisingEdge(dut.clk)
        # the same loader, flags still set: the correct segment loads at its base
        await drive(dut, *segment(good, body))
        await RisingEdge(dut.clk)
        await ReadOnly()
        if int(dut.segments_done.value) != 1 or int(dut.state.value) != 0:
            failures.setdefault(name, []).append(
                f"the good segment after it did not load (segments_done "
                f"{int(dut.segments_done.value)})")
        await RisingEdge(dut.clk)
    for name, problems in failures.items():
        dut._log.error("%s: %s", name, "; ".join(problems))
    assert not failures, (f"{len(failures)} of {len(cases)} malformed-segment cases failed: "
                          f"{', '.join(failures)}")


@cocotb.test()
async def write_log_flags_x(dut):
    """A data word with X bits is logged with wlog_bad = 1 (4-state simulators only)."""
    from cocotb.types import LogicArray
    from cosim.golden.image import header_word

    if "verilator" in cocotb.SIM_NAME.lower():
        dut._log.info("2-state simulator: wlog_bad is always 0, nothing to check")
        return
    segs = read_segments(golden_dir())
    seg = next(s for s in segs if s.kind == 1 and s.words >= 3)
    await reset(dut)
    await drive(dut, [header_word(seg.layer, seg.kind, seg.words)], [0])
    dut.s_axis_tvalid.value = 1
    dut.s_axis_tdata.value = LogicArray("0" * 56 + "x" * 8)  # lane 0 unknown
    await RisingEdge(dut.clk)
    dut.s_axis_tvalid.value = 0
    await drive(dut, list(range(1, seg.words)), [0] * (seg.words - 2) + [1])
    await RisingEdge(dut.clk)
    await ReadOnly()
    bad = [int(dut.wlog_bad[i].value) for i in range(seg.words)]
    assert int(dut.wlog_count.value) == seg.words, int(dut.wlog_count.value)
    assert bad == [1] + [0] * (seg.words - 1), bad
