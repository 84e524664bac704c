"""CommandDriver: loads a command's input tensors, runs its descriptors, and has the
BFM observe the outputs before the next command may overwrite anything."""

from __future__ import annotations

from pyuvm import ConfigDB, uvm_driver

from cosim.golden.engine_program import write_act_load


class CommandDriver(uvm_driver):
    def build_phase(self) -> None:
        self.cfg = ConfigDB().get(self, "", "compute_cfg")
        self.bfm = ConfigDB().get(self, "", "bfm")

    async def run_phase(self) -> None:
        while True:
            item = await self.seq_item_port.get_next_item()
            write_act_load(self.cfg.run / "act_load.hex", item.loads)
            await self.bfm.load_activations()
            if self._waves_here(item):
                await self.bfm.start_waves()
            status = await self.bfm.run(item.first, item.count)
            await self.bfm.observe(item, status)
            self.seq_item_port.item_done()

    def _waves_here(self, item) -> bool:
        """COMPUTE_WAVES_STEP names the step whose run is recorded (layer mode)."""
        name = self.cfg.waves_step
        return bool(name) and item.mode == "layer" and \
            self.cfg.program.steps[item.first].name == name
