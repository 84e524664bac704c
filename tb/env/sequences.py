"""Sequences: which segments go into the loader, in which order, and how malformed.

Every sequence reads the golden segments (tiling order) from the EnvConfig in
ConfigDB and sends whole-segment items. Randomness comes from `cfg.child_rng`, so a
seed reproduces the same choices.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from cosim.tb.env.config import BackPressure, EnvConfig
from cosim.tb.env.items import (
    PRESSURES,
    ResetItem,
    SegmentItem,
    malformed,
    malformed_space,
    pressure_plan,
    truncated,
)
from pyuvm import ConfigDB, uvm_sequence


class StopStimulus(Exception):
    """Raised by a sequence that stops early (EnvConfig.stop_on_error)."""


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

    def check_stop(self) -> None:
        """With cfg.stop_on_error, raise StopStimulus once the scoreboard has seen an
        error (call between complete cases)."""
        if self.cfg.stop_on_error and self.cfg.errors_seen:
            raise StopStimulus(f"{self.cfg.errors_seen} error(s) seen, stimulus stopped "
                               "(COCOSIM_STOP_ON_ERROR)")


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
    """Every malformation of `items.malformed_space`, enumerated (nothing sampled), each
    under every pressure of `items.PRESSURES` (none; mem_stall on every word; tvalid-low
    gaps with junk data and tlast before every word), each in its own reset window:
    reset, the malformed item, then its victim well formed (it must still load, with
    the flags of the bad one still set). Victims: one segment per kind (weights,
    biases, record), see `victims()`; the header-field cases rotate over them.

    The scoreboard checks the flags (sticky until reset), the status at the probe
    inside the item (DROP after a rejected header, DATA before an early tlast, DROP
    after a missing tlast), at the item's end and at idle before every reset, that the
    malformed item wrote nothing outside its own range and only what the contract
    allows inside it, and that the reset cleared everything.
    """

    salt = 104
    pressures = PRESSURES

    def victims(self) -> list[Any]:
        """One well-formed segment per kind, the smallest that exercises the data path:
        weights with >= 9 words (a word past the first 8); biases with >= 4 words
        (first, middle, next-to-last and last differ) and a negative lane 0 (bit 15),
        one holding an all-zero word if there is one (a dropped zero write must show);
        the first record."""
        segs = self.segments

        def words_of(s: Any) -> np.ndarray:
            return np.asarray(s.words, dtype=np.uint64).reshape(s.count, -1)

        def has_zero(s: Any) -> bool:
            return bool((words_of(s) == 0).all(1).any())

        def pick(kind: int, ok) -> Any:
            # at most 64 words when the network has one (a short case), else at most 512
            # (wide tiles on narrow words: acc32_16x16), else the smallest; a segment
            # holding a zero word first within each tier
            found = sorted((s for s in segs if s.kind == kind and ok(s)),
                           key=lambda s: (s.count > 64, s.count > 512, not has_zero(s),
                                          s.count, s.layer))
            if not found:
                raise ValueError(f"no segment of kind {kind} fits the malformed sequence")
            return found[0]

        # bit 15: the sign of int16 bias lane 0 (the top bit of a narrower word)
        sign = np.uint64(min(15, int(self.cfg.golden.layout.config.word_bits) - 1))
        return [pick(0, lambda s: s.count >= 9),
                pick(1, lambda s: s.count >= 4
                     and bool((words_of(s)[:, 0] >> sign & np.uint64(1)).any())),
                pick(2, lambda s: True)]

    def cases(self) -> list[tuple[Any, str, int]]:
        """(victim, malformation, detail) for every case, in a fixed order."""
        n = self.cfg.golden.num_layers
        victims = self.victims()
        out: list[tuple[Any, str, int]] = []
        header = [c for c in malformed_space(victims[0], n)
                  if c[0] in ("bad_magic", "reserved_bits", "unknown_layer", "unknown_kind")]
        for i, (m, d) in enumerate(header):
            out.append((victims[i % len(victims)], m, d))
        for v in victims:
            out += [(v, m, d) for m, d in malformed_space(v, n, header_fields=False)]
        return out

    async def body(self) -> None:
        n = self.cfg.golden.num_layers
        for victim, m, d in self.cases():
            self.check_stop()  # a case runs under every pressure, then may stop
            for pressure in self.pressures:
                await self.reset()
                item = malformed(victim, m, d, n)
                good = SegmentItem.from_segment(victim)
                for it in (item, good):
                    it.pressure = pressure
                    it.plan = pressure_plan(pressure, it.stream_len)
                await self.send(item)
                if m != "truncated":  # a truncated item is followed by the next reset
                    await self.send(good)
        await self.reset()
