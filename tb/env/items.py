"""Sequence items: a WHOLE stream segment per item (never one word per item), and a reset.

A SegmentItem carries the header word and the data words as a numpy uint64 array;
the driver turns it into one stream word per clock. Malformed items are built by
`malformed()`, which also records what a correct loader must do with them: the error
flag bits it must raise and how many of the segment's own words it may write.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyuvm import uvm_sequence_item

from tb.env.config import (
    FLAG_COUNT,
    FLAG_EARLY_TLAST,
    FLAG_KIND,
    FLAG_LAYER,
    FLAG_MAGIC,
    FLAG_MISSING_TLAST,
    BackPressure,
)

#: Malformation tags understood by `malformed()`.
MALFORMATIONS = ("bad_magic", "unknown_layer", "unknown_kind", "wrong_count", "early_tlast",
                 "missing_tlast", "reserved_bits", "header_tlast")

_MAGIC_MASK = 0xFF << 56
_LAYER_SHIFT, _KIND_SHIFT, _COUNT_SHIFT = 48, 44, 16


class SegmentItem(uvm_sequence_item):
    """One stream segment: header word + data words (+ what the loader must do with it).

    Attributes:
        layer, name, kind: the segment (kind 0 weights, 1 biases, 2 record).
        header: the header word as driven (int).
        words: data words, np.uint64 (n,) or (n, limbs) for wider words.
        malformation: None, one of MALFORMATIONS, or "truncated" (cut short, for resets).
        expected_flags: error_flags bits the loader must raise for this item.
        dont_care_flags: bits the loader may raise or not (e.g. the count check of an
            unknown layer).
        expected_writes: how many of the segment's own words (from its base) the loader
            must write: all of them for a good segment, a prefix or none otherwise.
        tlast: whether the last driven word carries tlast (False: truncated item).
        extra: words driven after the data words (discarded by the loader).
        backpressure: optional BackPressure overriding the configured one.
    """

    def __init__(self, name: str = "segment", *, layer: int = 0, seg_name: str = "",
                 kind: int = 0, header: int = 0, words: np.ndarray | None = None,
                 malformation: str | None = None, expected_flags: int = 0,
                 dont_care_flags: int = 0, expected_writes: int | None = None,
                 tlast: bool = True, extra: np.ndarray | None = None,
                 backpressure: BackPressure | None = None) -> None:
        super().__init__(name)
        self.layer = layer
        self.seg_name = seg_name
        self.kind = kind
        self.header = int(header)
        self.words = np.zeros(0, dtype=np.uint64) if words is None else words
        self.malformation = malformation
        self.expected_flags = expected_flags
        self.dont_care_flags = dont_care_flags
        self.expected_writes = (self.count if expected_writes is None else expected_writes)
        self.tlast = tlast
        self.extra = extra
        self.backpressure = backpressure

    @classmethod
    def from_segment(cls, seg: Any, **kwargs: Any) -> SegmentItem:
        """An item for a golden.image.Segment (well formed unless kwargs say otherwise)."""
        return cls(f"{seg.name}.{seg.tensor}", layer=seg.layer, seg_name=seg.name,
                   kind=seg.kind, header=seg.header, words=seg.words, **kwargs)

    @property
    def count(self) -> int:
        """Data words carried (not counting extra words)."""
        return int(self.words.shape[0])

    @property
    def well_formed(self) -> bool:
        return self.malformation is None

    def stream(self) -> np.ndarray:
        """Every word to drive, header first, uint64 (n,) or (n, limbs) like the data
        words (the last one carries tlast when `self.tlast`)."""
        header = np.zeros((1,) + self.words.shape[1:], dtype=np.uint64)
        header.reshape(-1)[0] = self.header
        parts = [header, self.words] + ([] if self.extra is None else [self.extra])
        return np.concatenate([np.asarray(p, dtype=np.uint64) for p in parts])

    def __str__(self) -> str:
        tag = f" [{self.malformation}]" if self.malformation else ""
        return (f"{self.get_name()} layer {self.layer} kind {self.kind} header "
                f"{self.header:016x} {self.count} words{tag}")


class ResetItem(uvm_sequence_item):
    """Ask the driver to pulse rst_n (monitors are flushed before and rewound after)."""

    def __init__(self, name: str = "reset", cycles: int = 4) -> None:
        super().__init__(name)
        self.cycles = cycles

    def __str__(self) -> str:
        return f"reset ({self.cycles} cycles)"


def _with_field(header: int, shift: int, width: int, value: int) -> int:
    mask = ((1 << width) - 1) << shift
    return (header & ~mask) | ((value << shift) & mask)


def malformed(seg: Any, malformation: str, rng: np.random.Generator, num_layers: int,
              num_kinds: int = 3) -> SegmentItem:
    """A malformed variant of golden segment `seg`; every variant ends with a tlast word
    so that the loader is back in HEADER afterwards (see docs/rtl-interface.md)."""
    h, n = seg.header, seg.count
    item = SegmentItem.from_segment(seg, malformation=malformation)
    item.set_name(f"{seg.name}.{seg.tensor}.{malformation}")
    if malformation == "bad_magic":
        item.header = (h & ~_MAGIC_MASK) | (0x5A << 56)
        item.expected_flags, item.expected_writes = FLAG_MAGIC, 0
    elif malformation == "reserved_bits":
        item.header = h | (1 << int(rng.choice([0, 7, 15, 40, 43])))
        item.expected_flags, item.expected_writes = FLAG_MAGIC, 0
    elif malformation == "header_tlast":  # bad header carrying tlast: nothing follows
        item.header = (h & ~_MAGIC_MASK) | (0x00 << 56)
        item.words = item.words[:0]
        item.expected_flags, item.expected_writes = FLAG_MAGIC, 0
    elif malformation == "unknown_layer":
        item.header = _with_field(h, _LAYER_SHIFT, 8, int(rng.integers(num_layers, 256)))
        item.expected_flags, item.dont_care_flags, item.expected_writes = (
            FLAG_LAYER, FLAG_COUNT, 0)
    elif malformation == "unknown_kind":
        item.header = _with_field(h, _KIND_SHIFT, 4, int(rng.integers(num_kinds, 16)))
        item.expected_flags, item.dont_care_flags, item.expected_writes = (
            FLAG_KIND, FLAG_COUNT, 0)
    elif malformation == "wrong_count":
        delta = int(rng.choice([-1, 1])) if n > 1 else 1
        item.header = _with_field(h, _COUNT_SHIFT, 24, n + delta)
        item.expected_flags, item.expected_writes = FLAG_COUNT, 0
    elif malformation == "early_tlast":
        if n < 2:
            raise ValueError(f"early_tlast needs a segment of 2 or more words, {seg.name} "
                             f"{seg.tensor} has {n}")
        k = int(rng.integers(0, n - 1))  # tlast on data word k < n - 1
        item.words = item.words[:k + 1]
        item.expected_flags, item.expected_writes = FLAG_EARLY_TLAST, k + 1
    elif malformation == "missing_tlast":
        junk = rng.integers(0, 1 << 63, size=(int(rng.integers(1, 4)),) + seg.words.shape[1:],
                            dtype=np.uint64)
        item.extra = junk  # dropped by the loader; tlast on the last junk word
        item.expected_flags, item.expected_writes = FLAG_MISSING_TLAST, n
    else:
        raise ValueError(f"unknown malformation {malformation!r}; one of "
                         f"{', '.join(MALFORMATIONS)}")
    return item


def truncated(seg: Any, keep: int) -> SegmentItem:
    """The first `keep` data words of `seg` with no tlast: the loader stays in DATA
    (used to reset in the middle of a segment)."""
    item = SegmentItem.from_segment(seg, malformation="truncated", tlast=False)
    item.set_name(f"{seg.name}.{seg.tensor}.truncated")
    item.words = seg.words[:keep]
    item.expected_writes = keep
    return item
