"""ActivationMonitor: publishes every observation the BFM made (output words of the
finished descriptors, read back with one backdoor dump per command)."""

from __future__ import annotations

from pyuvm import ConfigDB, uvm_analysis_port, uvm_component


class ActivationMonitor(uvm_component):
    def build_phase(self) -> None:
        self.ap = uvm_analysis_port("ap", self)
        self.bfm = ConfigDB().get(self, "", "bfm")

    async def run_phase(self) -> None:
        while True:
            observation = await self.bfm.results.get()
            self.ap.write(observation)
