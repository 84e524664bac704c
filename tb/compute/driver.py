"""CommandDriver: loads a command's input tensors, runs its descriptors, and has the
BFM observe the outputs before the next command may overwrite anything."""

from __future__ import annotations

import time

from cosim.golden.engine_program import write_act_load
from pyuvm import ConfigDB, uvm_driver


class CommandDriver(uvm_driver):
    def build_phase(self) -> None:
        self.hung = False
        self.cfg = ConfigDB().get(self, "", "compute_cfg")
        self.bfm = ConfigDB().get(self, "", "bfm")

    async def run_phase(self) -> None:
        while True:
            item = await self.seq_item_port.get_next_item()
            if self.hung:  # the engine hangs: drop the command, say so once per command
                self.cfg.skipped.append(str(item))
                self.seq_item_port.item_done()
                continue
            t0 = time.perf_counter()
            write_act_load(self.cfg.run / "act_load.hex", item.loads)
            await self.bfm.load_activations()
            if self._waves_here(item):
                await self.bfm.start_waves()
            t1 = time.perf_counter()
            status = await self.bfm.run(item.first, item.count, self.budget(item))
            t2 = time.perf_counter()
            await self.bfm.observe(item, status)
            cfg = self.cfg
            cfg.timed("act_load_s", t1 - t0)
            cfg.timed("engine_s", t2 - t1)
            cfg.timed("observe_s", time.perf_counter() - t2)
            self.seq_item_port.item_done()
            if status.timed_out:
                self.hung = True  # the engine never went idle: no further command

    def budget(self, item) -> int:
        """Cycles a command may take before it counts as hung: generous (8x the PE-array
        bound of its MACs, 64 cycles per word moved, 200,000 for the rest)."""
        pe = self.cfg.pe_macs_per_cycle
        total = 200_000
        for step in self.cfg.program.steps[item.first:item.first + item.count]:
            words = step.output.words + sum(t.words for t in step.inputs)
            total += 8 * step.macs // pe + 64 * words
        return total

    def _waves_here(self, item) -> bool:
        """COMPUTE_WAVES_STEP names the step whose run is recorded (layer mode)."""
        name = self.cfg.waves_step
        return bool(name) and item.mode == "layer" and \
            self.cfg.program.steps[item.first].name == name
