"""Sequences of the compute environment: which layers run, on which inputs."""

from __future__ import annotations

from cosim.tb.compute.items import LayerCommand
from pyuvm import ConfigDB, uvm_sequence


class LayerByLayerSeq(uvm_sequence):
    """Every selected step alone, fed the golden codes of its inputs (image 0): a
    mismatch is that layer's own bug, not an earlier layer's."""

    async def body(self) -> None:
        cfg = ConfigDB().get(None, "", "compute_cfg")
        program, expected = cfg.program, cfg.expected
        for index in cfg.selected_steps():
            step = program.steps[index]
            loads = [(t, _golden_words(cfg, expected, t.name, 0)) for t in step.inputs]
            item = LayerCommand(f"layer {step.name}", "layer", 0, index, 1, loads, [index])
            await self.start_item(item)
            await self.finish_item(item)


class ChainedSeq(uvm_sequence):
    """The whole network per image: the input codes in, every descriptor in one run,
    every step's output checked afterwards (the memory keeps them all)."""

    async def body(self) -> None:
        cfg = ConfigDB().get(None, "", "compute_cfg")
        program, expected = cfg.program, cfg.expected
        n = len(program.steps)
        for image in range(cfg.image_count):
            loads = [(program.input, expected[f"input/{image}"])]
            item = LayerCommand(f"chained image {image}", "chained", image, 0, n, loads,
                                list(range(n)))
            await self.start_item(item)
            await self.finish_item(item)


def _golden_words(cfg, expected, name: str, image: int):
    """The golden words of tensor `name` (the network input, or a step's output)."""
    program = cfg.program
    name = program.aliases.get(name, name)
    if name == program.input_name:
        return expected[f"input/{image}"]
    return expected[f"out/{image}/{name}"]
