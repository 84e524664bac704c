"""ComputeEnv: the command agent (sequencer + driver), the activation agent (monitor),
the activation scoreboard and the coverage collector."""

from __future__ import annotations

from cosim.tb.compute.coverage import ComputeCoverage
from cosim.tb.compute.driver import CommandDriver
from cosim.tb.compute.monitor import ActivationMonitor
from cosim.tb.compute.scoreboard import ActivationScoreboard
from pyuvm import uvm_agent, uvm_env, uvm_sequencer


class CommandAgent(uvm_agent):
    """Layer commands in: loads input tensors, runs descriptors."""

    def build_phase(self) -> None:
        self.sequencer = uvm_sequencer("sequencer", self)
        self.driver = CommandDriver("driver", self)

    def connect_phase(self) -> None:
        self.driver.seq_item_port.connect(self.sequencer.seq_item_export)


class ActivationAgent(uvm_agent):
    """Activations out: the monitor publishes what the engine wrote."""

    def build_phase(self) -> None:
        self.monitor = ActivationMonitor("monitor", self)


class ComputeEnv(uvm_env):
    def build_phase(self) -> None:
        self.commands = CommandAgent("commands", self)
        self.activations = ActivationAgent("activations", self)
        self.scoreboard = ActivationScoreboard("scoreboard", self)
        self.coverage = ComputeCoverage("coverage", self)

    def connect_phase(self) -> None:
        self.activations.monitor.ap.connect(self.scoreboard.analysis_export)
        self.activations.monitor.ap.connect(self.coverage.analysis_export)
