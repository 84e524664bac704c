"""Sequence items of the compute environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyuvm import uvm_sequence_item


class LayerCommand(uvm_sequence_item):
    """Run descriptors first .. first + count - 1 after loading `loads` into the
    activation memory, then observe the outputs of the `check` steps.

    mode: "layer" (one step fed the golden input) or "chained" (the whole network on
    one image, the engine's own outputs feeding the next step). loads: (Tensor, words
    uint8 [n, lanes]) pairs written with one backdoor load."""

    def __init__(self, name: str, mode: str, image: int, first: int, count: int,
                 loads: list[tuple[Any, np.ndarray]], check: list[int]) -> None:
        super().__init__(name)
        self.mode = mode
        self.image = image
        self.first = first
        self.count = count
        self.loads = loads
        self.check = check

    def __str__(self) -> str:
        return (f"{self.mode} image {self.image}: descriptors {self.first}.."
                f"{self.first + self.count - 1}")


@dataclass
class ActivationObservation:
    """What the engine wrote: per checked step index, its output words (uint8 [n,
    lanes]) and a mask of words holding x/z; the run status and per-step cycles."""

    command: LayerCommand
    status: Any
    outputs: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    cycles: dict[int, int] = field(default_factory=dict)
