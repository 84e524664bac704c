"""ComputeBfm: the only code that touches the pins of cnn_compute_top.

Every action is a toggle of a *_req input (the RTL acts at the next rising edge)
and at most one wait for the result, so a whole tensor or the whole parameter
stream costs a handful of Python wake-ups, never one per word.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cocotb.queue import Queue
from cocotb.triggers import ClockCycles, FallingEdge, First, ReadOnly, RisingEdge, Timer
from cosim.tb.compute.dump import read_dump, read_stats
from cosim.tb.compute.items import ActivationObservation


@dataclass(frozen=True)
class RunStatus:
    """What the engine reported for one run of descriptors."""

    cycles: int          # clock cycles from start to idle
    done_count: int      # descriptors finished
    err: int             # sticky error bits (cnn_compute_engine.sv)
    err_desc: int        # the failing descriptor
    timed_out: bool = False  # still busy after the cycle budget (a hung engine)


class ComputeBfm:
    """Pins of cnn_compute_top: reset, parameter play, backdoor loads/dumps, runs."""

    def __init__(self, dut: Any, work: Path, program: Any) -> None:
        self.dut = dut
        self.clk = dut.clk
        self.work = Path(work)
        self.program = program
        self.results: Queue = Queue()  # ActivationObservation, for the monitor
        self.period_ns = 10  # cnn_compute_top CLK_PERIOD_NS
        self._toggles = ("play_req", "param_dump_req", "act_load_req", "act_dump_req",
                         "desc_load_req", "stats_dump_req", "start_req", "wave_req")

    async def reset(self, cycles: int = 4) -> None:
        d = self.dut
        for name in self._toggles:
            getattr(d, name).value = 0
        d.play_count.value = 0
        d.act_dump_lo.value = 0
        d.act_dump_hi.value = 0
        d.first_desc.value = 0
        d.num_desc.value = 0
        d.rst_n.value = 0
        await ClockCycles(self.clk, cycles)
        d.rst_n.value = 1
        await RisingEdge(self.clk)

    async def _toggle(self, name: str) -> None:
        sig = getattr(self.dut, name)
        sig.value = 1 - int(sig.value)
        await ClockCycles(self.clk, 2)  # acted on at the first edge; settled after the second

    async def cycle(self) -> int:
        await ReadOnly()
        value = int(self.dut.cycle.value)
        await RisingEdge(self.clk)
        return value

    async def play_params(self, count: int) -> int:
        """Play `count` words of +PARAM_STREAM through the loader; returns the cycles."""
        self.dut.play_count.value = count
        t0 = int(self.dut.cycle.value)
        await self._toggle("play_req")
        if int(self.dut.playing.value):
            await FallingEdge(self.dut.playing)
        await ClockCycles(self.clk, 4)  # the loader's last write
        return int(self.dut.cycle.value) - t0

    async def load_descriptors(self) -> None:
        await self._toggle("desc_load_req")

    async def load_activations(self) -> None:
        await self._toggle("act_load_req")

    async def dump_activations(self, lo: int, hi: int) -> None:
        self.dut.act_dump_lo.value = lo
        self.dut.act_dump_hi.value = hi
        await self._toggle("act_dump_req")

    async def start_waves(self) -> None:
        """Waves from the next edge on (a build with `define COMPUTE_WAVES)."""
        await self._toggle("wave_req")

    async def dump_stats(self) -> None:
        await self._toggle("stats_dump_req")

    async def run(self, first: int, count: int, budget: int) -> RunStatus:
        """Run descriptors first .. first + count - 1; wait (one Python wake-up) until the
        engine is idle, at most `budget` cycles (then timed_out: the engine hangs)."""
        d = self.dut
        d.first_desc.value = first
        d.num_desc.value = count
        t0 = int(d.cycle.value)
        await self._toggle("start_req")
        timed_out = False
        if int(d.busy.value):
            limit = Timer(budget * self.period_ns, "ns")
            timed_out = (await First(FallingEdge(d.busy), limit)) is limit
        await RisingEdge(self.clk)
        await ReadOnly()
        status = RunStatus(int(d.cycle.value) - t0, int(d.done_count.value), int(d.err.value),
                           int(d.err_desc.value), timed_out)
        await RisingEdge(self.clk)
        return status

    def write_check(self) -> dict[str, int | str]:
        """param_write_checker's counts: expected (image words it holds), checked,
        wrong, duplicate, unexpected, first_index and first_kind of the first bad write."""
        d = self.dut
        counts: dict[str, int | str] = {
            name: int(getattr(d, f"pchk_{name}").value)
            for name in ("expected", "checked", "wrong", "duplicate", "unexpected",
                         "first_index")}
        counts["first_kind"] = ("none", "unexpected", "duplicate", "wrong")[
            int(d.pchk_first_kind.value)]
        return counts

    def parameters(self) -> dict[str, int]:
        """The build's cfg_* constants."""
        return {name[4:]: int(getattr(self.dut, name).value)
                for name in ("cfg_word_bits", "cfg_tile_oc", "cfg_lanes", "cfg_bias_bits",
                             "cfg_round_half_even", "cfg_act_depth", "cfg_stream_depth",
                             "cfg_wbuf_depth", "cfg_mem_depth")}

    async def observe(self, command: Any, status: RunStatus) -> None:
        """Dump the outputs of `command`'s checked steps and the per-step cycles (one
        dump each) and queue the observation for the monitor."""
        program, lanes = self.program, self.program.lanes
        outs = [program.steps[i].output for i in command.check]
        lo = min(t.base for t in outs)
        hi = max(t.last for t in outs)
        await self.dump_activations(lo, hi)
        words, unknown = read_dump(self.work / "act_dump.hex", lo, hi, lanes)
        await self.dump_stats()
        stats = read_stats(self.work / "stats.hex", command.first + command.count)
        obs = ActivationObservation(command, status)
        for i, t in zip(command.check, outs, strict=True):
            obs.outputs[i] = (words[t.base - lo:t.end - lo], unknown[t.base - lo:t.end - lo])
        for i in range(command.first, command.first + command.count):
            obs.cycles[i] = int(stats[i]) if i < stats.size else -1
        self.results.put_nowait(obs)
