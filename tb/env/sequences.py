"""Sequences: which segments go into the loader, in which order, and how malformed.

Every sequence reads the golden segments (tiling order) from the EnvConfig in
ConfigDB and sends whole-segment items. Randomness comes from `cfg.child_rng`, so a
seed reproduces the same choices.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyuvm import ConfigDB, uvm_sequence

from tb.env.config import BackPressure, EnvConfig
from tb.env.items import MALFORMATIONS, ResetItem, SegmentItem, malformed, truncated


class SegmentSequence(uvm_sequence):
    """Base: access to the configuration and the golden segments, send helpers."""

    salt = 100  # per-sequence random stream

    def __init__(self, name: str = "segment_seq") -> None:
        super().__init__(name)
        self.cfg: EnvConfig = ConfigDB().get(None, "", "cfg")
        self.rng: np.random.Generator = self.cfg.child_rng(self.salt)
        self.items_sent = 0

    @property
    def segments(self) -> list[Any]:
        return self.cfg.golden.segments

    async def send(self, item: SegmentItem | ResetItem) -> None:
        await self.start_item(item)
        await self.finish_item(item)
        self.items_sent += 1

    async def send_segments(self, segments: list[Any],
                            backpressure: BackPressure | None = None) -> None:
        for seg in segments:
            await self.send(SegmentItem.from_segment(seg, backpressure=backpressure))

    async def reset(self, cycles: int | None = None) -> None:
        await self.send(ResetItem(cycles=cycles or self.cfg.reset_cycles))


class WholeNetworkSeq(SegmentSequence):
    """Every segment of the network, in tiling (stream) order."""

    async def body(self) -> None:
        await self.send_segments(self.segments)


class RandomSubsetSeq(SegmentSequence):
    """A random subset of the layers (each with its three segments), in layer order.

    fraction: expected share of layers kept (at least one layer is always sent).
    """

    salt = 101
    fraction = 0.3

    def chosen_layers(self) -> list[int]:
        n = self.cfg.golden.num_layers
        keep = np.flatnonzero(self.rng.random(n) < self.fraction)
        if keep.size == 0:
            keep = np.array([int(self.rng.integers(n))])
        return keep.tolist()

    async def body(self) -> None:
        layers = set(self.chosen_layers())
        await self.send_segments([s for s in self.segments if s.layer in layers])


class BackpressureSeq(SegmentSequence):
    """The whole network with back-pressure chosen per segment (random stalls, bursty
    stalls, idle gaps only, none), overriding the configured back-pressure item by item.

    Coverage closure: afterwards, every (layer kind, segment kind, stall pattern)
    combination the first pass missed (a network has few regular or linear layers)
    is driven once more with one segment of that kind.
    """

    salt = 102
    patterns = (BackPressure("random", stall_p=0.2, idle_p=0.1),
                BackPressure("bursty", burst_len=(4, 32), burst_every=(16, 256), idle_p=0.05),
                BackPressure("none", idle_p=0.1),
                BackPressure("none"))

    async def body(self) -> None:
        layers = self.cfg.golden.layout.layers
        choice = self.rng.integers(0, len(self.patterns), len(self.segments))
        seen: set[tuple[str, int, str]] = set()
        for seg, c in zip(self.segments, choice.tolist(), strict=True):
            bp = self.patterns[c]
            await self.send(SegmentItem.from_segment(seg, backpressure=bp))
            seen.add((layers[seg.layer].kind, seg.kind, bp.pattern))
        smallest: dict[tuple[str, int], Any] = {}
        for seg in self.segments:
            key = (layers[seg.layer].kind, seg.kind)
            if key not in smallest or seg.count < smallest[key].count:
                smallest[key] = seg
        for (lk, kind), seg in sorted(smallest.items()):
            for bp in self.patterns:
                if (lk, kind, bp.pattern) not in seen:
                    await self.send(SegmentItem.from_segment(seg, backpressure=bp))
                    seen.add((lk, kind, bp.pattern))


class ResetReloadSeq(SegmentSequence):
    """Part of the network, a reset in the middle of a segment, then a full reload.

    The first pass stops inside a randomly chosen segment (the loader is left in DATA),
    the driver pulses rst_n, and the whole network follows. The scoreboard predicts
    the first pass's writes too, so every address is checked for its write count
    and the final memory must be exactly the golden image.
    """

    salt = 103

    async def body(self) -> None:
        segs = self.segments
        big = [i for i, s in enumerate(segs) if s.count >= 4]
        cut = int(self.rng.choice(big[: max(1, len(big) // 2)]))
        await self.send_segments(segs[:cut])
        seg = segs[cut]
        await self.send(truncated(seg, int(self.rng.integers(1, seg.count - 1))))
        await self.reset()
        await self.send_segments(segs)


class MalformedSeq(SegmentSequence):
    """Each malformation, in its own reset window: good segment, malformed segment,
    good segment. The scoreboard checks the flags (sticky until reset), that the good
    segments around it are stored, and that the malformed one wrote nothing outside
    its own range (and only what the contract allows inside it)."""

    salt = 104
    malformations = MALFORMATIONS
    repeats = 3   # each malformation on this many victims (different random details)

    def pick(self, min_words: int = 2, max_words: int = 64) -> Any:
        small = [s for s in self.segments if min_words <= s.count <= max_words]
        return small[int(self.rng.integers(len(small)))]

    async def body(self) -> None:
        n = self.cfg.golden.num_layers
        for m in [m for _ in range(self.repeats) for m in self.malformations]:
            victim = self.pick()
            around = [s for s in self.segments if s is not victim and s.count <= 1024]
            before, after = (around[int(i)] for i in self.rng.choice(len(around), 2,
                                                                     replace=False))
            await self.reset()
            await self.send_segments([before])
            await self.send(malformed(victim, m, self.rng, n))
            await self.send_segments([after])
            # the victim itself, well formed, still loads after the bad one
            await self.send_segments([victim])
