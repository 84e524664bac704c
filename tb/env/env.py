"""CnnParamEnv: wires the agents, the scoreboard and the coverage collector.

    sequence -> seqr -> driver ==s_axis_*==> DUT ==wlog_*==> write monitor
                          |                   |                  | WriteBatch
                          | AcceptedSegment   | wlog_tick,       v
                          v                   | status      scoreboard <- golden image
                     stream monitor <---------+                  ^
                          | SegmentObservation ------------------+--> coverage
"""

from __future__ import annotations

from cocotb.triggers import ReadOnly
from cosim.tb.env.agent import StreamAgent, WriteAgent
from cosim.tb.env.config import EnvConfig
from cosim.tb.env.coverage import CoverageCollector
from cosim.tb.env.items import set_header_spec
from cosim.tb.env.scoreboard import Scoreboard
from pyuvm import ConfigDB, uvm_env

#: environments built in this simulator process: the memory is never cleared, so from
#: the second test of one simulation on, the scoreboard needs the memory's contents
#: at the start (a baseline dump) to tell "untouched" from "written by this test".
_ENVS_BUILT = 0


class CnnParamEnv(uvm_env):
    """The whole environment for cnn_param_top."""

    def build_phase(self) -> None:
        global _ENVS_BUILT
        _ENVS_BUILT += 1
        self.first_in_simulation = _ENVS_BUILT == 1
        self.cfg: EnvConfig = ConfigDB().get(self, "", "cfg")
        set_header_spec(self.cfg.golden.header)  # items build and drive this format
        self.stream = StreamAgent("stream", self)
        self.writes = WriteAgent("writes", self)
        self.scoreboard = Scoreboard("scoreboard", self)
        self.coverage = CoverageCollector("coverage", self)

    def connect_phase(self) -> None:
        wmon, smon = self.writes.monitor, self.stream.monitor
        wmon.ap.connect(self.scoreboard.write_export)
        wmon.ap.connect(self.coverage.write_export)
        smon.ap.connect(self.scoreboard.segment_export)
        smon.ap.connect(self.coverage.segment_export)
        drv = self.stream.driver
        drv.pre_reset_hooks += [wmon.collect, smon.flush]  # writes, then idle status
        drv.post_reset_hooks.append(wmon.on_reset)
        drv.error_hooks.append(self.scoreboard.handshake_error)
        self.scoreboard.reset_write_text = smon.last_reset_write
        if not self.first_in_simulation and self.cfg.dump_file is not None:
            drv.start_hooks.append(self.dump_baseline)

    async def dump_baseline(self) -> None:
        """Dump the memory before any item (an earlier test of this simulation wrote it)."""
        path = self.cfg.dump_file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        await self.stream.driver.dump_memory()
        self.scoreboard.load_baseline(path)

    @property
    def seqr(self):
        return self.stream.seqr

    async def finish(self, dump: bool = True) -> None:
        """End of stimulus: drain both monitors (the stream monitor's idle status is
        checked), then dump the memory for the scoreboard (cfg.dump_file: +DUMP_FILE or
        the RTL's default; dump=False leaves the scoreboard to fail the run)."""
        drv = self.stream.driver
        await drv.idle(4)
        await ReadOnly()
        self.writes.monitor.collect()
        self.stream.monitor.flush()
        await drv.clk_edge
        if dump and self.cfg.dump_file is not None:
            path = self.cfg.dump_file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            await drv.dump_memory()
            self.scoreboard.dump_path = path
