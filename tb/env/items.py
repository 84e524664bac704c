"""Sequence items: a WHOLE stream segment per item (never one word per item), and a reset.

A SegmentItem carries the header (an int of the layout's header width, driven as
HeaderSpec.words stream words, low word first) and the data words as a numpy uint64
array; the driver turns it into one stream word per clock. The header format is the
layout's (`set_header_spec`, called by the env from the golden layout; default: the
64-bit header of today's layout). Malformed items are built by
`malformed()`, which also records what a correct loader must do with them
(docs/rtl-interface.md): the error flag bits it must raise, how many of the
segment's own words it may write, the loader state after the item and, for a
mid-item probe, the state, flags and writes at that point. `malformed_space()`
enumerates every case of a segment (every header field, every reserved bit, every
tlast position that matters); nothing is drawn at random.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from cosim.tb.env.config import (
    FLAG_COUNT,
    FLAG_EARLY_TLAST,
    FLAG_KIND,
    FLAG_LAYER,
    FLAG_MAGIC,
    FLAG_MISSING_TLAST,
    STATE_DATA,
    STATE_DROP,
    STATE_HEADER,
    BackPressure,
    HeaderSpec,
)
from pyuvm import uvm_sequence_item

#: Malformation tags understood by `malformed()` (each takes an integer `detail`);
#: "header_word_tlast" (tlast on header word `detail` < the last) exists only for
#: headers of more than one stream word.
MALFORMATIONS = ("bad_magic", "reserved_bits", "unknown_layer", "unknown_kind", "wrong_count",
                 "header_tlast", "valid_header_tlast", "early_tlast", "missing_tlast",
                 "header_word_tlast")

_SPEC = HeaderSpec()


def set_header_spec(spec: HeaderSpec) -> None:
    """The header format items are built and driven with (one layout per simulation)."""
    global _SPEC
    _SPEC = spec


def header_spec() -> HeaderSpec:
    """The header format in use (set_header_spec)."""
    return _SPEC


def __getattr__(name: str) -> object:
    if name == "RESERVED_BITS":  # every header bit that belongs to no field (must be 0)
        return _SPEC.reserved_bits
    raise AttributeError(name)


def header_field(header: int, name: str) -> int:
    """Field `name` ("magic", "layer", "kind", "count") of a header."""
    return _SPEC.field(header, name)


def with_field(header: int, name: str, value: int) -> int:
    """`header` with field `name` replaced by `value` (truncated to the field)."""
    return _SPEC.with_field(header, name, value)


class SegmentItem(uvm_sequence_item):
    """One stream segment: header word + data words (+ what the loader must do with it).

    Attributes:
        layer, name, kind: the segment (kind 0 weights, 1 biases, 2 record).
        header: the header word as driven (int).
        words: data words, np.uint64 (n,) or (n, limbs) for wider words.
        malformation: None, one of MALFORMATIONS, or "truncated" (cut short, for resets).
        detail: the malformation's parameter (bit, value, word index, ...).
        expected_flags: error_flags bits the loader must raise for this item.
        dont_care_flags: bits the loader may raise or not.
        expected_writes: how many of the segment's own words (from its base) the loader
            must write: all of them for a good segment, a prefix or none otherwise.
        end_state: the loader state after the item's last word (STATE_*).
        tlast: whether the last driven word carries tlast (False: truncated item).
        extra: words driven after the data words (discarded by the loader).
        backpressure: optional BackPressure overriding the configured one.
        plan: optional explicit (stall, idle) cycles per stream word (int arrays or
            None), overriding every BackPressure: a deterministic pressure pattern.
        pressure: label of the pressure the sequence chose ("none", "stall", "idle").
        probe_after: stream word index (0 = header) after whose acceptance the driver
            pauses (tvalid low) and the loader status is checked; None: no probe.
        probe_state, probe_flags, probe_writes: the status expected at the probe
            (flags raised and words written by this item up to that point).
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
        self.detail = 0
        self.expected_flags = expected_flags
        self.dont_care_flags = dont_care_flags
        self.expected_writes = (self.count if expected_writes is None else expected_writes)
        self.end_state = STATE_HEADER if tlast else STATE_DATA
        self.tlast = tlast
        self.extra = extra
        self.backpressure = backpressure
        self.plan: tuple[np.ndarray | None, np.ndarray | None] | None = None
        self.pressure = "none"
        self.probe_after: int | None = None
        self.probe_state = STATE_HEADER
        self.probe_flags = 0
        self.probe_writes = 0

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

    @property
    def header_complete(self) -> bool:
        """Whether every header word is driven (False: tlast cut the header short; the
        loader then shows no new layer/kind)."""
        return self.malformation != "header_word_tlast"

    @property
    def header_layer(self) -> int:
        """The layer field as driven (what the `layer` port must show after the header)."""
        return header_field(self.header, "layer")

    @property
    def header_kind(self) -> int:
        """The kind field as driven (what the `kind` port must show after the header)."""
        return header_field(self.header, "kind")

    @property
    def header_words(self) -> int:
        """Stream words of the header as driven."""
        return self.detail + 1 if not self.header_complete else _SPEC.words

    @property
    def stream_len(self) -> int:
        return (self.header_words + self.count
                + (0 if self.extra is None else int(self.extra.shape[0])))

    def stream(self) -> np.ndarray:
        """Every word to drive, header words first (low word first), uint64 (n,) or
        (n, limbs) like the data words (the last one carries tlast when `self.tlast`)."""
        header = _SPEC.split(self.header)[:self.header_words]
        parts = [header, self.words] + ([] if self.extra is None else [self.extra])
        return np.concatenate([np.asarray(p, dtype=np.uint64) for p in parts])

    def probe(self, after: int, state: int, flags: int = 0, writes: int = 0) -> None:
        """Check the loader status once stream word `after` was accepted."""
        self.probe_after, self.probe_state = after, state
        self.probe_flags, self.probe_writes = flags, writes

    def __str__(self) -> str:
        tag = f" [{self.malformation} {self.detail}]" if self.malformation else ""
        press = f" under {self.pressure}" if self.pressure != "none" else ""
        digits = max(16, -(-_SPEC.bits // 4))
        return (f"{self.get_name()} layer {self.layer} kind {self.kind} header "
                f"{self.header:0{digits}x} {self.count} words{tag}{press}")


class ResetItem(uvm_sequence_item):
    """Ask the driver to pulse rst_n (monitors are flushed before and rewound after)."""

    def __init__(self, name: str = "reset", cycles: int = 4) -> None:
        super().__init__(name)
        self.cycles = cycles

    def __str__(self) -> str:
        return f"reset ({self.cycles} cycles)"


# ---------------------------------------------------------------------- malformations


def _bad_layers(num_layers: int) -> list[int]:
    """Out-of-range layer values: the boundary, one above, each power of two above the
    boundary, the largest."""
    width = _SPEC.field_map["layer"][1]
    top = (1 << width) - 1
    vals = {num_layers, num_layers + 1, top} | {1 << b for b in range(width)
                                              if 1 << b >= num_layers}
    return sorted(v for v in vals if num_layers <= v <= top)


def _bad_counts(n: int) -> list[int]:
    """Wrong counts for a segment of n words: 0, n - 1, n + 1, n with each count bit
    flipped (the whole field)."""
    width = _SPEC.field_map["count"][1]
    vals = {0, n - 1, n + 1} | {n ^ (1 << b) for b in range(width)}
    return sorted(v for v in vals if v != n and 0 <= v < 1 << width)


def _early_positions(n: int) -> list[int]:
    """Data-word indices k < n - 1 that get an early tlast: first, middle, next-to-last."""
    return sorted({k for k in (0, (n - 1) // 2, n - 2) if 0 <= k < n - 1})


def malformed_space(seg: Any, num_layers: int, num_kinds: int = 3,
                    header_fields: bool = True) -> list[tuple[str, int]]:
    """Every (malformation, detail) case of segment `seg`, in a fixed order.

    header_fields: include the header-field cases (magic bits, reserved bits, layer and
    kind values); the count, tlast and truncation cases depend on the segment and are
    always included. Truncations ("truncated", keep) end with a reset (the sequence's
    job): keep 0 (header only), the middle and all but the last data word.
    """
    n = seg.count
    cases: list[tuple[str, int]] = []
    if header_fields:
        fields = _SPEC.field_map
        cases += [("bad_magic", b) for b in range(fields["magic"][1])]
        cases += [("reserved_bits", b) for b in _SPEC.reserved_bits]
        cases += [("unknown_layer", v) for v in _bad_layers(num_layers)]
        cases += [("unknown_kind", v) for v in
                  range(num_kinds, 1 << fields["kind"][1])]
    cases += [("wrong_count", v) for v in _bad_counts(n)]
    cases += [("header_tlast", 0), ("valid_header_tlast", 0)]
    cases += [("header_word_tlast", j) for j in range(_SPEC.words - 1)]
    cases += [("early_tlast", k) for k in _early_positions(n)]
    cases += [("missing_tlast", j) for j in (1, 3)]
    cases += [("truncated", k) for k in sorted({0, n // 2, n - 1})]
    return cases


def malformed(seg: Any, malformation: str, detail: int, num_layers: int,
              num_kinds: int = 3) -> SegmentItem:
    """A malformed variant of golden segment `seg` (deterministic: `detail` picks the
    bit, value or word index). Every variant ends with a tlast word, so the loader is
    back in HEADER afterwards (docs/rtl-interface.md); "truncated" is built by
    `truncated()`. Items whose header is rejected without tlast get a probe right after
    the header (the loader must be in DROP with the flag raised); the tlast cases get
    a probe in DATA or DROP."""
    if malformation == "truncated":
        return truncated(seg, detail)
    h, n = seg.header, seg.count
    hw = _SPEC.words  # stream words of the header: data word k is stream word hw + k
    item = SegmentItem.from_segment(seg, malformation=malformation)
    item.detail = detail
    item.set_name(f"{seg.name}.{seg.tensor}.{malformation}.{detail}")
    item.expected_writes = 0
    bad_header = True
    if malformation == "bad_magic":
        item.header = h ^ (1 << (_SPEC.field_map["magic"][0] + detail))
        item.expected_flags = FLAG_MAGIC
    elif malformation == "reserved_bits":
        if detail not in _SPEC.reserved_bits:
            raise ValueError(f"bit {detail} is not a reserved header bit")
        item.header = h | (1 << detail)
        item.expected_flags = FLAG_MAGIC
    elif malformation == "unknown_layer":
        if detail < num_layers:
            raise ValueError(f"layer {detail} exists (num_layers {num_layers})")
        # the count check needs an existing (layer, kind): not raised here
        item.header = with_field(h, "layer", detail)
        item.expected_flags = FLAG_LAYER
    elif malformation == "unknown_kind":
        if detail < num_kinds:
            raise ValueError(f"kind {detail} exists (num_kinds {num_kinds})")
        item.header = with_field(h, "kind", detail)
        item.expected_flags = FLAG_KIND
    elif malformation == "wrong_count":
        if detail == n:
            raise ValueError(f"count {detail} is the segment's own count")
        item.header = with_field(h, "count", detail)
        item.expected_flags = FLAG_COUNT
    elif malformation == "header_tlast":  # bad header carrying tlast: nothing follows
        item.header = with_field(h, "magic", 0)
        item.words = item.words[:0]
        item.expected_flags = FLAG_MAGIC
    elif malformation == "valid_header_tlast":  # a good header alone, with tlast
        item.words = item.words[:0]
        item.expected_flags = FLAG_EARLY_TLAST
        bad_header = False
    elif malformation == "early_tlast":
        if not 0 <= detail < n - 1:
            raise ValueError(f"early_tlast needs 0 <= k < count - 1 = {n - 1}, got {detail} "
                             f"({seg.name} {seg.tensor} has {n} words)")
        item.words = item.words[:detail + 1]  # tlast on data word k
        item.expected_flags, item.expected_writes = FLAG_EARLY_TLAST, detail + 1
        # before data word k: in DATA, k words written
        item.probe(hw - 1 + detail, STATE_DATA, 0, detail)
        bad_header = False
    elif malformation == "missing_tlast":
        # junk after the last data word: a valid header first (a loader that left
        # DROP too early would start a segment), tlast on the last junk word
        junk_mask = (1 << min(_SPEC.word_bits, 64)) - 1
        junk = [~int(seg.words.reshape(n, -1)[j % n, 0]) & junk_mask
                for j in range(1, detail)]
        extra = np.zeros((detail - 1,) + seg.words.shape[1:], dtype=np.uint64)
        if junk:
            extra.reshape(detail - 1, -1)[:, 0] = junk
        item.extra = np.concatenate([_SPEC.split(h).astype(np.uint64), extra])
        item.expected_flags, item.expected_writes = FLAG_MISSING_TLAST, n
        # after the last data word
        item.probe(hw - 1 + n, STATE_DROP, FLAG_MISSING_TLAST, n)
        bad_header = False
    elif malformation == "header_word_tlast":  # tlast on header word `detail` < last
        if not 0 <= detail < hw - 1:
            raise ValueError(f"header_word_tlast needs 0 <= j < {hw - 1} (the header has "
                             f"{hw} stream words), got {detail}")
        item.words = item.words[:0]
        item.expected_flags = FLAG_EARLY_TLAST
        bad_header = False
    else:
        raise ValueError(f"unknown malformation {malformation!r}; one of "
                         f"{', '.join(MALFORMATIONS)}, truncated")
    if bad_header and item.count:
        # rejected: DROP until tlast, from the header's last word on
        item.probe(hw - 1, STATE_DROP, item.expected_flags, 0)
    return item


def truncated(seg: Any, keep: int) -> SegmentItem:
    """The header and the first `keep` data words of `seg` with no tlast: the loader
    stays in DATA (followed by a reset in the middle of the segment)."""
    if not 0 <= keep < seg.count:
        raise ValueError(f"truncated keeps 0..{seg.count - 1} words, got {keep}")
    item = SegmentItem.from_segment(seg, malformation="truncated", tlast=False)
    item.set_name(f"{seg.name}.{seg.tensor}.truncated.{keep}")
    item.detail = keep
    item.words = seg.words[:keep]
    item.expected_writes = keep
    item.end_state = STATE_DATA
    return item


def pressure_plan(kind: str, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A deterministic (stall, idle) plan for n stream words: "none"; "stall" (every
    word held under mem_stall for 1 or 2 cycles, alternating); "idle" (a tvalid-low
    gap of 1..3 cycles before every word, and every third word also stalled)."""
    k = np.arange(n)
    if kind == "none":
        return None, None
    if kind == "stall":
        return 1 + k % 2, None
    if kind == "idle":
        return np.where(k % 3 == 2, 1, 0), 1 + k % 3
    raise ValueError(f"pressure must be none, stall or idle, got {kind!r}")


PRESSURES = ("none", "stall", "idle")
