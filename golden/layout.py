"""The parameter-memory layout: the single definition of where every parameter is stored.

Conventions (docs/layout.md has the worked example):

- Addresses are **word addresses** (one `word_bits`-bit word each), never bytes
  (`address_unit = "byte"` only changes the DUT's address port, see svpkg).
- A segment is a sequence of elements (int8 weights, int16/int32 biases, record
  parts) packed densely into words: lane order "little" puts element j at bits
  [(j+1)e-1:je] (elements may straddle words), "big" puts element 0 in the top bits.
  Values are two's complement. The default is little-endian int8/int16 lanes.
- Memory = three regions in `region_order` (default `weights`, `biases`,
  `records`); each starts at a multiple of `region_align` right after the previous
  one. In a region the weighted layers follow in execution order, each segment
  base a multiple of `segment_align`. Gaps are never written.
- Segment kinds (the stream's header `kind`): 0 weights, 1 biases, 2 record.
- Words are `np.uint64` arrays: shape (n,) up to 64-bit words (values below
  2^word_bits), (n, ceil(word_bits / 64)) for wider words (column 0 = bits [63:0]).

Everything here depends only on layer shapes and per-channel-ness, never on values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from cosim.quant.errors import UserError

__all__ = [
    "CONTROL_FIELDS",
    "GEOMETRY_FIELDS",
    "KERNEL_ORDERS",
    "LAYER_KINDS",
    "RECORD_FIXED_WORDS",
    "REGIONS",
    "TENSORS",
    "Coordinates",
    "ElementPlace",
    "HeaderFormat",
    "LaneInfo",
    "LayerShape",
    "Layout",
    "LayoutConfig",
    "LayoutError",
    "RecordFields",
    "RegionInfo",
    "SegmentInfo",
    "bytes_to_words",
    "package_shapes",
    "segment_words",
    "words_to_bytes",
    "ADDRESS_UNITS",
    "BIAS_BITS",
    "DEPTHWISE_LOOPS",
    "LANE_ORDERS",
    "RECORD_FORMATS",
    "WEIGHT_LOOPS",
    "read_layout_json",
]

#: Layer kinds and their record code (bits [27:25] of the record word). "grouped" is a
#: conv with 1 < groups whose groups have more than one input channel each (weight
#: [OC, IC/groups, KH, KW]); it tiles like a regular conv over that weight matrix.
LAYER_KINDS = ("regular", "depthwise", "pointwise", "linear", "grouped")
#: Words of a record before the per-channel words with 64-bit words (default):
#: control, channels, kernel (LayoutConfig.record_fixed_words in general).
RECORD_FIXED_WORDS = 3
#: Record geometry fields: name -> (record word, lsb, width, lowest value). Word 1
#: ("channels"): out/in channels and groups; word 2 ("kernel"): one byte each.
GEOMETRY_FIELDS: dict[str, tuple[int, int, int, int]] = {
    "out_channels": (1, 0, 24, 1), "in_channels": (1, 24, 24, 1), "groups": (1, 48, 16, 1),
    "kernel_h": (2, 0, 8, 1), "kernel_w": (2, 8, 8, 1),
    "stride_h": (2, 16, 8, 1), "stride_w": (2, 24, 8, 1),
    "padding_h": (2, 32, 8, 0), "padding_w": (2, 40, 8, 0),
    "dilation_h": (2, 48, 8, 1), "dilation_w": (2, 56, 8, 1),
}
#: Control-word fields: name -> (lsb, width, signed); bits [31:28] and [63:56] are 0.
CONTROL_FIELDS: dict[str, tuple[int, int, bool]] = {
    "shift": (0, 8, True), "input_zero_point": (8, 8, False),
    "output_zero_point": (16, 8, False), "relu": (24, 1, False), "kind": (25, 3, False),
    "input_exp": (32, 8, True), "weight_exp": (40, 8, True), "output_exp": (48, 8, True),
}
#: Segment tensors; the index is the segment kind code (0, 1, 2).
TENSORS = ("weight", "bias", "record")
#: Regions in address order; REGIONS[k] holds the segments of TENSORS[k].
REGIONS = ("weights", "biases", "records")
KERNEL_ORDERS = ("kh_kw", "kw_kh")

#: Header limits of the default header (8-bit layer index, 24-bit word count);
#: HeaderFormat.max_layers / max_segment_words in general.
MAX_LAYERS = 256
MAX_SEGMENT_WORDS = (1 << 24) - 1


class LayoutError(UserError, ValueError):
    """A layout problem (bad option, shape, coordinate or value); the text is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message.replace("\r", " ").replace("\n", " "))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _round_up(a: int, b: int) -> int:
    return _ceil_div(a, b) * b


def _check_int(value: Any, what: str, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
        raise LayoutError(f"{what} must be an integer >= {lo}, got {value!r}")
    return int(value)


# ---------------------------------------------------------------- configuration

#: Weight loop names (outer -> inner) of a regular/pointwise/linear/grouped layer and of
#: a depthwise layer; the default orders give today's layout.
WEIGHT_LOOPS = ("oc_tile", "ic_tile", "kh", "kw", "oc", "ic")
DEPTHWISE_LOOPS = ("c_tile", "kh", "kw", "c")
LANE_ORDERS = ("little", "big")
RECORD_FORMATS = ("word_aligned", "packed")
ADDRESS_UNITS = ("word", "byte")
BIAS_BITS = (16, 32)
#: Bits of a record's fixed parts (control, channels, kernel), each one 64-bit value.
RECORD_PART_BITS = 64
#: Header fields every header has, in this order.
HEADER_FIELD_NAMES = ("magic", "layer", "kind", "count")


def _swap_kernel(order: Sequence[str]) -> tuple[str, ...]:
    return tuple({"kh": "kw", "kw": "kh"}.get(n, n) for n in order)


def _permutation(value: Any, names: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or sorted(
            map(str, value)) != sorted(names) or len(value) != len(names):
        raise LayoutError(f"{what} must be a permutation of {', '.join(names)}, got {value!r}")
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class HeaderFormat:
    """The stream header: a `bits`-bit integer holding the fields (name, lsb, width)
    magic, layer, kind and count; `magic` is the magic field's value. A header wider
    than a word spans ceil(bits / word_bits) words, low word first."""

    bits: int = 64
    magic: int = 0xA5
    fields: tuple[tuple[str, int, int], ...] = (("magic", 56, 8), ("layer", 48, 8),
                                                ("kind", 44, 4), ("count", 16, 24))

    def __post_init__(self) -> None:
        bits = _check_int(self.bits, "header.bits")
        if bits > 4096:
            raise LayoutError(f"header.bits must be at most 4096, got {bits}")
        fields = self.fields
        if isinstance(fields, dict):
            items = []
            for name, f in fields.items():
                if isinstance(f, dict):
                    if set(f) != {"lsb", "width"}:
                        raise LayoutError(f"header.fields.{name} must have lsb and width, "
                                          f"got {sorted(f)}")
                    items.append((name, f["lsb"], f["width"]))
                else:
                    items.append((name, *tuple(f)))
            fields = tuple(items)
        try:
            table = {str(n): (lsb, w) for n, lsb, w in fields}
        except (TypeError, ValueError):
            raise LayoutError(f"header.fields must be (name, lsb, width) triples, "
                              f"got {fields!r}") from None
        if sorted(table) != sorted(HEADER_FIELD_NAMES) or len(table) != len(fields):
            raise LayoutError(f"header.fields must be exactly {', '.join(HEADER_FIELD_NAMES)}, "
                              f"got {', '.join(n for n, _, _ in fields)}")
        norm = []
        used = 0
        for name in HEADER_FIELD_NAMES:
            lsb = _check_int(table[name][0], f"header.fields.{name}.lsb", 0)
            width = _check_int(table[name][1], f"header.fields.{name}.width")
            if lsb + width > bits:
                raise LayoutError(f"header.fields.{name}: bits [{lsb + width - 1}:{lsb}] must "
                                  f"lie inside the {bits}-bit header")
            mask = ((1 << width) - 1) << lsb
            if used & mask:
                raise LayoutError(f"header.fields.{name}: bits [{lsb + width - 1}:{lsb}] "
                                  "overlap another header field")
            used |= mask
            norm.append((name, lsb, width))
        object.__setattr__(self, "fields", tuple(norm))
        if self.width("kind") < 2:
            raise LayoutError(f"header.fields.kind.width must be >= 2 (3 segment kinds), "
                              f"got {self.width('kind')}")
        magic = _check_int(self.magic, "header.magic", 0)
        if magic >> self.width("magic"):
            raise LayoutError(f"header.magic {magic:#x} does not fit in the "
                              f"{self.width('magic')}-bit magic field")

    def field(self, name: str) -> tuple[int, int]:
        """(lsb, width) of a header field."""
        for n, lsb, width in self.fields:
            if n == name:
                return lsb, width
        raise LayoutError(f"header field must be one of {', '.join(HEADER_FIELD_NAMES)}, "
                          f"got {name!r}")

    def width(self, name: str) -> int:
        return self.field(name)[1]

    @property
    def field_dict(self) -> dict[str, tuple[int, int]]:
        """name -> (lsb, width), the form of image.HEADER_FIELDS."""
        return {n: (lsb, w) for n, lsb, w in self.fields}

    @property
    def max_layers(self) -> int:
        """Layers the layer field can index (2^width)."""
        return 1 << self.width("layer")

    @property
    def max_segment_words(self) -> int:
        """Largest data word count the count field holds (2^width - 1)."""
        return (1 << self.width("count")) - 1

    def words(self, word_bits: int) -> int:
        """Words of one header: ceil(bits / word_bits)."""
        return _ceil_div(self.bits, word_bits)

    def as_dict(self) -> dict[str, Any]:
        return {"bits": self.bits, "magic": self.magic,
                "fields": {n: {"lsb": lsb, "width": w} for n, lsb, w in self.fields}}


@dataclass(frozen=True)
class LayoutConfig:
    """Layout options (docs/accelerator-file.md names the accelerator-file key of each).

    word_bits: memory word width, a multiple of 8 in [8, 1024]; tile_oc / tile_ic:
    output / input-channel tile (independent of the word width); tile_dw: depthwise
    channel tile (None: tile_ic); weight_loop_order / depthwise_loop_order: loops
    outer -> inner (None: the default, with kh/kw swapped when kernel_order is
    "kw_kh"; kernel_order is then derived from weight_loop_order); bias_bits 16 or 32;
    lane_order "little" (element j at bits [(j+1)e-1:je]) or "big" (element 0 at the
    top); record_format "word_aligned" or "packed"; region_order: the regions in
    address order; segment_align / region_align in words (region_align a multiple of
    segment_align); memory_depth: None (the layout's end) or a depth in words;
    address_unit "word" or "byte" (the DUT's address port; tables stay in words);
    header: the stream header format. LayoutConfig() is today's layout (default.toml).
    """

    word_bits: int = 64
    tile_oc: int = 8
    tile_ic: int = 8
    kernel_order: str = "kh_kw"
    segment_align: int = 8
    region_align: int = 4096
    tile_dw: int | None = None
    weight_loop_order: tuple[str, ...] | None = None
    depthwise_loop_order: tuple[str, ...] | None = None
    bias_bits: int = 16
    lane_order: str = "little"
    record_format: str = "word_aligned"
    region_order: tuple[str, ...] = ("weights", "biases", "records")
    memory_depth: int | None = None
    address_unit: str = "word"
    header: HeaderFormat = HeaderFormat()

    def __post_init__(self) -> None:
        bits = _check_int(self.word_bits, "word_bits", 8)
        if bits % 8 or bits > 1024:
            raise LayoutError(f"word_bits must be a multiple of 8 in [8, 1024], got {bits}")
        for name in ("tile_oc", "tile_ic"):
            if _check_int(getattr(self, name), name) > 4096:
                raise LayoutError(f"{name} must be at most 4096, got {getattr(self, name)}")
        if self.tile_dw is None:
            object.__setattr__(self, "tile_dw", int(self.tile_ic))
        elif _check_int(self.tile_dw, "tile_dw") > 4096:
            raise LayoutError(f"tile_dw must be at most 4096, got {self.tile_dw}")
        for name in ("word_bits", "tile_oc", "tile_ic", "tile_dw"):
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.kernel_order not in KERNEL_ORDERS:
            raise LayoutError(f"kernel_order must be one of {', '.join(KERNEL_ORDERS)}, "
                              f"got {self.kernel_order!r}")
        swap = self.kernel_order == "kw_kh"
        for name, loops in (("weight_loop_order", WEIGHT_LOOPS),
                            ("depthwise_loop_order", DEPTHWISE_LOOPS)):
            value = getattr(self, name)
            if value is None:
                value = _swap_kernel(loops) if swap else loops
            else:
                value = _permutation(value, loops, name)
            object.__setattr__(self, name, value)
        order = self.weight_loop_order
        derived = "kh_kw" if order.index("kh") < order.index("kw") else "kw_kh"
        if swap and derived != "kw_kh":
            raise LayoutError(f"kernel_order kw_kh contradicts weight_loop_order "
                              f"{list(order)} (kh outside kw)")
        object.__setattr__(self, "kernel_order", derived)
        if self.bias_bits not in BIAS_BITS or isinstance(self.bias_bits, bool):
            raise LayoutError(f"bias_bits must be 16 or 32, got {self.bias_bits!r}")
        if self.lane_order not in LANE_ORDERS:
            raise LayoutError(f"lane_order must be one of {', '.join(LANE_ORDERS)}, "
                              f"got {self.lane_order!r}")
        if self.lane_order == "big" and bits % self.bias_bits:
            raise LayoutError(f"lane_order big needs bias_bits ({self.bias_bits}) to divide "
                              f"word_bits ({bits})")
        if self.record_format not in RECORD_FORMATS:
            raise LayoutError(f"record_format must be one of {', '.join(RECORD_FORMATS)}, "
                              f"got {self.record_format!r}")
        object.__setattr__(self, "region_order",
                           _permutation(self.region_order, REGIONS, "region_order"))
        seg = _check_int(self.segment_align, "segment_align")
        reg = _check_int(self.region_align, "region_align")
        if reg % seg:
            raise LayoutError(f"region_align ({reg}) must be a multiple of segment_align ({seg})")
        if self.memory_depth is not None:
            object.__setattr__(self, "memory_depth", _check_int(self.memory_depth,
                                                                "memory_depth"))
        if self.address_unit not in ADDRESS_UNITS:
            raise LayoutError(f"address_unit must be one of {', '.join(ADDRESS_UNITS)}, "
                              f"got {self.address_unit!r}")
        header = self.header
        if isinstance(header, dict):
            try:
                header = HeaderFormat(**header)
            except TypeError as e:
                raise LayoutError(f"header: {e}") from None
        elif not isinstance(header, HeaderFormat):
            raise LayoutError(f"header must be a HeaderFormat, got {header!r}")
        object.__setattr__(self, "header", header)

    @property
    def lanes(self) -> int:
        """int8 lanes per word (word_bits / 8)."""
        return self.word_bits // 8

    @property
    def word_bytes(self) -> int:
        """Bytes per word (word_bits / 8)."""
        return self.word_bits // 8

    @property
    def bias_lanes(self) -> int:
        """Whole bias elements per word (word_bits // bias_bits; biases may straddle words
        in little lane order when bias_bits does not divide word_bits)."""
        return self.word_bits // self.bias_bits

    @property
    def limbs(self) -> int:
        """uint64 columns per word (1 up to 64-bit words)."""
        return _ceil_div(self.word_bits, 64)

    @property
    def header_words(self) -> int:
        """Words of one stream header."""
        return self.header.words(self.word_bits)

    @property
    def record_part_words(self) -> int:
        """Words of one fixed record part (control, channels, kernel) when word_aligned."""
        return max(1, _ceil_div(RECORD_PART_BITS, self.word_bits))

    @property
    def record_fixed_words(self) -> int:
        """Words before the per-channel words of a word_aligned record (3 by default)."""
        return 3 * self.record_part_words

    def as_dict(self) -> dict[str, Any]:
        """Every field as plain JSON data (LayoutConfig(**as_dict()) gives it back)."""
        return {"word_bits": self.word_bits, "tile_oc": self.tile_oc, "tile_ic": self.tile_ic,
                "kernel_order": self.kernel_order, "segment_align": self.segment_align,
                "region_align": self.region_align, "tile_dw": self.tile_dw,
                "weight_loop_order": list(self.weight_loop_order),
                "depthwise_loop_order": list(self.depthwise_loop_order),
                "bias_bits": self.bias_bits, "lane_order": self.lane_order,
                "record_format": self.record_format, "region_order": list(self.region_order),
                "memory_depth": self.memory_depth, "address_unit": self.address_unit,
                "header": self.header.as_dict()}


# ---------------------------------------------------------------- layer shapes and records


@dataclass(frozen=True)
class LayerShape:
    """What the layout needs of a weighted layer.

    kind: regular | depthwise | pointwise | linear | grouped; weight_shape: OIHW for
    convs ([C, 1, KH, KW] for depthwise, [OC, IC/groups, KH, KW] for grouped), [OC, IC]
    for linear; per_channel: per-output-channel weight scales and shifts (the record
    grows).
    """

    name: str
    kind: str
    weight_shape: tuple[int, ...]
    per_channel: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight_shape", tuple(int(d) for d in self.weight_shape))
        shape, where = self.weight_shape, f"layer {self.name!r}"
        if self.kind not in LAYER_KINDS:
            raise LayoutError(f"{where}: kind {self.kind!r} is not one of "
                              f"{', '.join(LAYER_KINDS)}")
        want = 2 if self.kind == "linear" else 4
        if len(shape) != want or min(shape) < 1:
            raise LayoutError(f"{where}: {self.kind} weight_shape {list(shape)} must have "
                              f"{want} positive dimensions")
        if self.kind == "depthwise" and shape[1] != 1:
            raise LayoutError(f"{where}: depthwise weight_shape {list(shape)} needs 1 input "
                              "channel per group")
        if self.kind == "pointwise" and shape[2:] != (1, 1):
            raise LayoutError(f"{where}: pointwise weight_shape {list(shape)} needs a 1x1 kernel")

    @property
    def dims(self) -> tuple[int, int, int, int]:
        """(OC, IC, KH, KW); a linear layer is [OC, IC, 1, 1], a depthwise one [C, 1, KH, KW]."""
        s = self.weight_shape
        return (s[0], s[1], 1, 1) if len(s) == 2 else (s[0], s[1], s[2], s[3])

    @property
    def out_channels(self) -> int:
        return self.weight_shape[0]


@dataclass(frozen=True)
class RecordFields:
    """The per-layer record: everything but weights and biases that the datapath needs.

    shift n and the scale exponents are int8 (log2 of the po2 scale); zero points
    uint8. shift and weight_exp have 1 entry per-tensor, out_channels per-channel.
    Geometry: groups, stride, padding, dilation ([h, w] pairs; a linear layer has 1,
    (1, 1), (0, 0), (1, 1)); out_channels, in_channels (all input channels, not per
    group) and kernel (kh, kw) follow from the layout's weight shape and groups when
    left None (`Layout.pack_record` checks them when given; `unpack_record` fills them).
    """

    kind: str
    relu: bool
    input_zero_point: int
    output_zero_point: int
    input_exp: int
    output_exp: int
    shift: tuple[int, ...]
    weight_exp: tuple[int, ...]
    groups: int = 1
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    out_channels: int | None = None
    in_channels: int | None = None
    kernel: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shift", tuple(int(v) for v in self.shift))
        object.__setattr__(self, "weight_exp", tuple(int(v) for v in self.weight_exp))
        for name in ("stride", "padding", "dilation", "kernel"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))


# ---------------------------------------------------------------- table entries


@dataclass(frozen=True)
class SegmentInfo:
    """One segment: the words of one tensor of one layer, [base, end) in words.

    padding_words: words holding only padding lanes; padding_lanes: zero lanes that
    pad partial tiles (int8 lanes, or int16 lanes for biases).
    """

    layer: int
    name: str
    tensor: str
    region: str
    base: int
    words: int
    padding_words: int
    padding_lanes: int

    @property
    def kind(self) -> int:
        """Segment kind code: 0 weights, 1 biases, 2 record."""
        return TENSORS.index(self.tensor)

    @property
    def end(self) -> int:
        """First address after the segment (exclusive)."""
        return self.base + self.words


@dataclass(frozen=True)
class RegionInfo:
    """A region: base, end (after its last segment, exclusive), used = sum of its words."""

    name: str
    base: int
    end: int
    used: int

    @property
    def span(self) -> int:
        return self.end - self.base


@dataclass(frozen=True)
class LaneInfo:
    """One lane of a located word. oc is the output channel (depthwise: the channel),
    ic the input channel (None for bias and record lanes); padding lanes hold 0 and
    carry the coordinates they would have in an unpadded tile. kh, kw: the kernel
    position of a weight lane; lsb: bit offset of the element in the word (it may
    continue into the next word); bits: element width."""

    lane: int
    oc: int
    ic: int | None
    padding: bool
    kh: int | None = None
    kw: int | None = None
    lsb: int = 0
    bits: int = 8


@dataclass(frozen=True)
class ElementPlace:
    """Where one element is stored (`Layout.place_of`): word address, lane (element
    slot in the word, in lane order), lsb (bit offset of the element's bit 0 in the
    word; an element straddling words continues at bit 0 of address + 1) and bits."""

    address: int
    lane: int
    lsb: int
    bits: int


@dataclass(frozen=True)
class Coordinates:
    """What is stored at a word address (`Layout.locate`).

    Weights: oc_tile, ic_tile, kh, kw of the word's first element and one LaneInfo
    per int8 lane (depthwise: oc_tile is the channel tile, ic_tile 0). Biases:
    oc_tile, one LaneInfo per bias element starting in the word. Records: field
    "control", "channels", "kernel" (the fixed parts), "shift" or "weight_exp"
    (per-channel lanes, one LaneInfo per int8 lane), "padding" (packed tail).
    """

    layer: int
    name: str
    tensor: str
    region: str
    address: int
    word_index: int
    oc_tile: int | None = None
    ic_tile: int | None = None
    kh: int | None = None
    kw: int | None = None
    field: str | None = None
    lanes: tuple[LaneInfo, ...] = ()


# ---------------------------------------------------------------- word <-> byte helpers


def bytes_to_words(lanes: np.ndarray, config: LayoutConfig) -> np.ndarray:
    """[n, word_bits/8] uint8 (byte 0 = bits [7:0]) -> words (uint64 (n,) or (n, limbs))."""
    wb = config.word_bytes
    b = np.ascontiguousarray(lanes, dtype=np.uint8).reshape(-1, wb)
    full = 8 * config.limbs
    if wb != full:
        padded = np.zeros((b.shape[0], full), dtype=np.uint8)
        padded[:, :wb] = b
        b = padded
    words = b.view("<u8").astype(np.uint64)
    return words.reshape(-1) if config.limbs == 1 else words.reshape(-1, config.limbs)


def words_to_bytes(words: np.ndarray, config: LayoutConfig) -> np.ndarray:
    """words (uint64 (n,) or (n, limbs)) -> [n, word_bits/8] uint8, byte 0 = bits [7:0];
    LayoutError on a bad dtype or shape or a value with bits above word_bits."""
    w = np.asarray(words)
    if w.dtype != np.uint64:
        if not np.issubdtype(w.dtype, np.integer) or (w.size and int(w.min()) < 0):
            raise LayoutError(f"words must be unsigned integers, got dtype {w.dtype}")
        w = w.astype(np.uint64)
    if config.limbs > 1 and (w.ndim != 2 or w.shape[1] != config.limbs):
        raise LayoutError(f"{config.word_bits}-bit words need shape (n, {config.limbs}), "
                          f"got {w.shape}")
    if config.limbs == 1 and w.ndim != 1:
        raise LayoutError(f"{config.word_bits}-bit words need a 1-D array, got shape {w.shape}")
    b = np.ascontiguousarray(w, dtype="<u8").view(np.uint8).reshape(-1, 8 * config.limbs)
    wb = config.word_bytes
    if wb != b.shape[1]:
        if b.size and np.any(b[:, wb:]):
            raise LayoutError(f"a word has bits set above bit {config.word_bits - 1}")
        b = b[:, :wb]
    return b


def _to_rows(elements: np.ndarray, ebytes: int, words: int, config: LayoutConfig) -> np.ndarray:
    """Word rows [words, word_bytes] (byte 0 = bits [7:0]) holding `elements` (a flat
    signed integer array, `ebytes` bytes each) in lane order, zero padded at the end."""
    wb = config.word_bytes
    big = config.lane_order == "big"
    dtype = {1: "i1", 2: "i2", 4: "i4"}[ebytes]
    stream = np.ascontiguousarray(elements, dtype=(">" if big else "<") + dtype).view(np.uint8)
    flat = np.zeros(words * wb, dtype=np.uint8)
    flat[:stream.size] = stream.reshape(-1)
    rows = flat.reshape(words, wb)
    return rows[:, ::-1] if big else rows


def _from_rows(rows: np.ndarray, ebytes: int, count: int, config: LayoutConfig) -> np.ndarray:
    """The first `count` signed elements (`ebytes` bytes each, int64) of word rows; the
    inverse of _to_rows."""
    big = config.lane_order == "big"
    flat = np.ascontiguousarray(rows[:, ::-1] if big else rows).reshape(-1)
    dtype = (">" if big else "<") + {1: "i1", 2: "i2", 4: "i4"}[ebytes]
    return flat[:count * ebytes].view(dtype).astype(np.int64)


def _padding_rows(real: np.ndarray, ebytes: int, words: int, config: LayoutConfig) -> int:
    """Words whose every byte belongs to a padding element (`real`: flat bool per element)."""
    per_byte = np.repeat(real, ebytes) if ebytes != 1 else real
    mask = _to_rows(per_byte.astype(np.int8), 1, words, config)
    return int(np.count_nonzero(~mask.any(axis=1)))


# ---------------------------------------------------------------- word counts


def _weight_axes(shape: LayerShape, config: LayoutConfig
                 ) -> tuple[tuple[int, ...], tuple[str, ...], tuple[int, ...]]:
    """(padded tile shape, its axis names, transpose to the loop order) of a layer's
    weights: (oc_tile, oc, ic_tile, ic, kh, kw), depthwise (c_tile, c, kh, kw)."""
    OC, IC, KH, KW = shape.dims
    if shape.kind == "depthwise":
        tiles: tuple[int, ...] = (_ceil_div(OC, config.tile_dw), config.tile_dw, KH, KW)
        names, order = ("c_tile", "c", "kh", "kw"), config.depthwise_loop_order
    else:
        tiles = (_ceil_div(OC, config.tile_oc), config.tile_oc, _ceil_div(IC, config.tile_ic),
                 config.tile_ic, KH, KW)
        names, order = ("oc_tile", "oc", "ic_tile", "ic", "kh", "kw"), config.weight_loop_order
    return tiles, names, tuple(names.index(n) for n in order)


def _weight_mask(shape: LayerShape, config: LayoutConfig) -> np.ndarray:
    """Flat bool per weight element in stream order: True for a real (unpadded) weight."""
    OC, IC, KH, KW = shape.dims
    tiles, _, order = _weight_axes(shape, config)
    if shape.kind == "depthwise":
        mask = np.zeros((tiles[0] * tiles[1], KH, KW), dtype=bool)
        mask[:OC] = True
    else:
        mask = np.zeros((tiles[0] * tiles[1], tiles[2] * tiles[3], KH, KW), dtype=bool)
        mask[:OC, :IC] = True
    return mask.reshape(tiles).transpose(order).reshape(-1)


def _record_bytes(shape: LayerShape) -> int:
    """Bytes of a packed record: 3 fixed 64-bit parts, then OC shifts and OC weight
    exponents when per-channel."""
    return 3 * RECORD_PART_BITS // 8 + (2 * shape.out_channels if shape.per_channel else 0)


def segment_words(shape: LayerShape, tensor: str, config: LayoutConfig) -> tuple[int, int, int]:
    """(words, padding_words, padding_lanes) of one segment, from the formulas.

    padding_words: words whose every byte belongs to a padding element; padding_lanes:
    element slots (int8 for weights and records, bias_bits for biases) in the segment's
    words that hold no parameter (records: per-channel lanes, or packed tail bytes).
    """
    oc, ic, kh, kw = shape.dims
    k = kh * kw
    wb = config.word_bytes
    if tensor == "weight":
        mask = _weight_mask(shape, config)
        words = _ceil_div(mask.size, wb)
        real = oc * k if shape.kind == "depthwise" else oc * ic * k
        return words, _padding_rows(mask, 1, words, config), words * wb - real
    if tensor == "bias":
        n = _round_up(oc, config.tile_oc)
        eb = config.bias_bits // 8
        words = _ceil_div(n * eb, wb)
        real = np.arange(n) < oc
        return (words, _padding_rows(real, eb, words, config),
                words * config.word_bits // config.bias_bits - oc)
    if tensor == "record":
        if config.record_format == "packed":
            nbytes = _record_bytes(shape)
            words = _ceil_div(nbytes, wb)
            return words, 0, words * wb - nbytes
        if not shape.per_channel:
            return config.record_fixed_words, 0, 0
        n = _ceil_div(oc, config.lanes)
        return config.record_fixed_words + 2 * n, 0, 2 * (n * config.lanes - oc)
    raise LayoutError(f"tensor must be one of {', '.join(TENSORS)}, got {tensor!r}")


def _int_array(values: Any, shape: tuple[int, ...], lo: int, hi: int, what: str) -> np.ndarray:
    a = np.asarray(values)
    if a.shape != shape:
        raise LayoutError(f"{what} has shape {list(a.shape)}, expected {list(shape)}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise LayoutError(f"{what} must be integers, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.size and (int(a.min()) < lo or int(a.max()) > hi):
        raise LayoutError(f"{what} has values outside [{lo}, {hi}]")
    return a


def _check_field(value: int, lo: int, hi: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not lo <= value <= hi:
        raise LayoutError(f"{what} is {value!r}, expected an integer in [{lo}, {hi}]")
    return int(value)


# ---------------------------------------------------------------- the layout


class Layout:
    """Segment placement for a list of weighted layers (execution order) and a config.

    Attributes: layers, config, segments (address order), regions (REGIONS order),
    end (first address after the last region), depth (memory depth in words: end,
    or config.memory_depth when given), accelerator (None, or the accelerator file's
    record {"name", "sha256", ...} that table() and layout.json carry).
    """

    def __init__(self, layers: Sequence[LayerShape], config: LayoutConfig | None = None,
                 accelerator: dict[str, Any] | None = None) -> None:
        self.config = config or LayoutConfig()
        self.accelerator = dict(accelerator) if accelerator is not None else None
        self.layers: list[LayerShape] = list(layers)
        cfg = self.config
        hdr = cfg.header
        if not self.layers:
            raise LayoutError("a layout needs at least one weighted layer")
        if len(self.layers) > hdr.max_layers:
            raise LayoutError(f"{len(self.layers)} weighted layers; the stream header's "
                              f"{hdr.width('layer')}-bit layer index allows {hdr.max_layers}")
        names = [s.name for s in self.layers]
        if len(set(names)) != len(names):
            raise LayoutError("layer names must be unique")
        self._index = {name: i for i, name in enumerate(names)}
        self.segments: list[SegmentInfo] = []
        regions: dict[str, RegionInfo] = {}
        self._by_key: dict[tuple[int, str], SegmentInfo] = {}
        cursor = 0
        for region in cfg.region_order:
            tensor = TENSORS[REGIONS.index(region)]
            base = _round_up(cursor, cfg.region_align)
            address, used = base, 0
            for i, shape in enumerate(self.layers):
                words, pad_words, pad_lanes = segment_words(shape, tensor, cfg)
                if words > hdr.max_segment_words:
                    raise LayoutError(f"layer {shape.name!r} {tensor} segment has {words} words; "
                                      f"the stream header's {hdr.width('count')}-bit count "
                                      f"allows {hdr.max_segment_words}")
                address = _round_up(address, cfg.segment_align)
                seg = SegmentInfo(i, shape.name, tensor, region, address, words, pad_words,
                                  pad_lanes)
                self.segments.append(seg)
                self._by_key[(i, tensor)] = seg
                address += words
                used += words
            regions[region] = RegionInfo(region, base, address, used)
            cursor = address
        self.regions: list[RegionInfo] = [regions[r] for r in REGIONS]
        self.end = cursor
        if cfg.memory_depth is not None and cfg.memory_depth < cursor:
            raise LayoutError(f"memory_depth {cfg.memory_depth} is below the layout's depth "
                              f"{cursor} words")
        self.depth = cfg.memory_depth if cfg.memory_depth is not None else cursor
        self._bases = np.array([s.base for s in self.segments], dtype=np.int64)

    # -- construction
    @classmethod
    def from_shapes(cls, layers: Sequence[LayerShape], config: LayoutConfig | None = None,
                    accelerator: dict[str, Any] | None = None) -> Layout:
        """The layout of `layers` (execution order), no package needed."""
        return cls(layers, config, accelerator)

    @classmethod
    def from_package(cls, package: Any, config: LayoutConfig | None = None,
                     accelerator: dict[str, Any] | None = None) -> Layout:
        """The layout of a loaded `quant.package.Package` (its weighted layers)."""
        return cls(package_shapes(package), config, accelerator)

    # -- lookup
    @property
    def addr_bits(self) -> int:
        """Bits of a word address: clog2(depth) (at least 1)."""
        return max(1, (self.depth - 1).bit_length())

    @property
    def mem_addr_bits(self) -> int:
        """Bits of the DUT's memory address port: addr_bits for word addressing,
        clog2(depth * word_bytes) for byte addressing."""
        if self.config.address_unit == "word":
            return self.addr_bits
        return max(1, (self.depth * self.config.word_bytes - 1).bit_length())

    def layer_index(self, layer: int | str) -> int:
        """Index of a layer given by index or name."""
        if isinstance(layer, str):
            if layer not in self._index:
                raise LayoutError(f"unknown layer {layer!r}")
            return self._index[layer]
        if isinstance(layer, bool) or not isinstance(layer, int | np.integer) or not (
            0 <= layer < len(self.layers)
        ):
            raise LayoutError(f"layer index {layer!r} is not in [0, {len(self.layers)})")
        return int(layer)

    def segment(self, layer: int | str, tensor: str) -> SegmentInfo:
        """The segment of `tensor` ("weight", "bias" or "record") of a layer."""
        if tensor not in TENSORS:
            raise LayoutError(f"tensor must be one of {', '.join(TENSORS)}, got {tensor!r}")
        return self._by_key[(self.layer_index(layer), tensor)]

    def region(self, name: str) -> RegionInfo:
        for r in self.regions:
            if r.name == name:
                return r
        raise LayoutError(f"region must be one of {', '.join(REGIONS)}, got {name!r}")

    @property
    def used_words(self) -> int:
        """Words actually stored (sum over segments)."""
        return sum(r.used for r in self.regions)

    # -- element positions
    def _strides(self, i: int) -> tuple[tuple[int, ...], tuple[str, ...], dict[str, int]]:
        """(tile shape, axis names, name -> element stride in stream order) of weights."""
        tiles, names, order = _weight_axes(self.layers[i], self.config)
        strides, step = {}, 1
        for axis in reversed(order):
            strides[names[axis]] = step
            step *= tiles[axis]
        return tiles, names, strides

    def _byte_place(self, base: int, offset: int, ebytes: int) -> ElementPlace:
        """Where the element whose first byte is segment byte `offset` lies (lane order)."""
        cfg = self.config
        word, r = divmod(offset, cfg.word_bytes)
        if cfg.lane_order == "little":
            return ElementPlace(base + word, r // ebytes, 8 * r, 8 * ebytes)
        j = r // ebytes
        return ElementPlace(base + word, j, cfg.word_bits - 8 * ebytes * (j + 1), 8 * ebytes)

    def _record_control_place(self, base: int, byte: int) -> ElementPlace:
        """A byte of the control part (an integer, not lanes, when word_aligned)."""
        cfg = self.config
        if cfg.record_format == "packed":
            return self._byte_place(base, byte, 1)
        word, r = divmod(byte, cfg.word_bytes)
        return ElementPlace(base + word, r, 8 * r, 8)

    def place_of(self, layer: int | str, tensor: str, oc: int, ic: int = 0, kh: int = 0,
                 kw: int = 0, field: str = "shift") -> ElementPlace:
        """Where one parameter is stored: its word address, lane (element slot in the
        word), lsb (bit offset of the element's bit 0 in that word; an element that
        straddles words continues at bit 0 of the next) and bits.

        weight: oc, ic, kh, kw (depthwise: oc = channel, ic = 0; linear: kh = kw = 0);
        bias: oc; record: field "shift" or "weight_exp" of channel oc (per-tensor: the
        byte of the control part, oc = 0).
        """
        i = self.layer_index(layer)
        seg, shape, cfg = self.segment(i, tensor), self.layers[i], self.config
        OC, IC, KH, KW = shape.dims
        _check_field(oc, 0, OC - 1, "oc")
        if tensor == "weight":
            _check_field(ic, 0, IC - 1, "ic")
            _check_field(kh, 0, KH - 1, "kh")
            _check_field(kw, 0, KW - 1, "kw")
            _, _, st = self._strides(i)
            if shape.kind == "depthwise":
                c_tile, c = divmod(oc, cfg.tile_dw)
                k = c_tile * st["c_tile"] + c * st["c"]
            else:
                oc_tile, oc_in = divmod(oc, cfg.tile_oc)
                ic_tile, ic_in = divmod(ic, cfg.tile_ic)
                k = (oc_tile * st["oc_tile"] + oc_in * st["oc"] + ic_tile * st["ic_tile"]
                     + ic_in * st["ic"])
            return self._byte_place(seg.base, k + kh * st["kh"] + kw * st["kw"], 1)
        if tensor == "bias":
            eb = cfg.bias_bits // 8
            return self._byte_place(seg.base, oc * eb, eb)
        if field not in ("shift", "weight_exp"):
            raise LayoutError(f"record field must be shift or weight_exp, got {field!r}")
        if not shape.per_channel:
            return self._record_control_place(seg.base, 0 if field == "shift" else 5)
        if cfg.record_format == "packed":
            return self._byte_place(seg.base, 3 * RECORD_PART_BITS // 8 + oc
                                    + (OC if field == "weight_exp" else 0), 1)
        n = _ceil_div(OC, cfg.lanes)
        base = seg.base + cfg.record_fixed_words + (n if field == "weight_exp" else 0)
        return self._byte_place(base, oc, 1)

    def address_of(self, layer: int | str, tensor: str, oc: int, ic: int = 0, kh: int = 0,
                   kw: int = 0, field: str = "shift") -> tuple[int, int]:
        """(word address, lane) of one parameter (`place_of` without the bit offset).

        weight: oc, ic, kh, kw (depthwise: oc = channel, ic = 0; linear: kh = kw = 0);
        bias: oc (bias lane); record: per-tensor (base, 0) for the control word,
        per-channel the int8 lane of channel oc's shift (field="weight_exp": its weight
        exponent, ceil(OC / lanes) words further when word_aligned).
        """
        place = self.place_of(layer, tensor, oc, ic, kh, kw, field)
        if tensor == "record" and not self.layers[self.layer_index(layer)].per_channel:
            return place.address, 0 if field == "shift" else place.lane
        return place.address, place.lane

    # -- reverse map
    def locate(self, address: int) -> Coordinates | None:
        """What the word at `address` holds; None in a gap or outside the memory.

        lanes: one LaneInfo per element whose first byte is in this word (weights and
        per-channel record lanes: int8; biases: bias_bits), with its lsb in the word."""
        if isinstance(address, bool) or not isinstance(address, int | np.integer):
            raise LayoutError(f"address must be an integer, got {address!r}")
        address = int(address)
        pos = int(np.searchsorted(self._bases, address, side="right")) - 1
        if pos < 0 or address >= self.segments[pos].end:
            return None
        seg = self.segments[pos]
        i = seg.layer
        shape, cfg, w = self.layers[i], self.config, address - seg.base
        OC, IC, KH, KW = shape.dims
        wb = cfg.word_bytes
        common = {"layer": seg.layer, "name": seg.name, "tensor": seg.tensor,
                  "region": seg.region, "address": address, "word_index": w}

        def place(offset: int, ebytes: int) -> ElementPlace:
            return self._byte_place(seg.base, offset, ebytes)

        if seg.tensor == "weight":
            tiles, names, st = self._strides(i)
            total = int(np.prod(tiles))
            lanes, first = [], None
            for off in range(w * wb, min((w + 1) * wb, total)):
                c = {n: (off // st[n]) % tiles[names.index(n)] for n in names}
                if shape.kind == "depthwise":
                    oc, ic = c["c_tile"] * cfg.tile_dw + c["c"], 0
                    pad = oc >= OC
                    tile = (c["c_tile"], 0)
                else:
                    oc = c["oc_tile"] * cfg.tile_oc + c["oc"]
                    ic = c["ic_tile"] * cfg.tile_ic + c["ic"]
                    pad = oc >= OC or ic >= IC
                    tile = (c["oc_tile"], c["ic_tile"])
                p = place(off, 1)
                lanes.append(LaneInfo(p.lane, oc, ic, pad, c["kh"], c["kw"], p.lsb, 8))
                if first is None:
                    first = (*tile, c["kh"], c["kw"])
            if first is None:  # a word of tail padding only
                return Coordinates(**common, lanes=())
            return Coordinates(**common, oc_tile=first[0], ic_tile=first[1], kh=first[2],
                               kw=first[3], lanes=tuple(lanes))
        if seg.tensor == "bias":
            eb = cfg.bias_bits // 8
            lo, hi = _ceil_div(w * wb, eb), _ceil_div((w + 1) * wb, eb)
            lanes = []
            for k in range(lo, hi):
                p = place(k * eb, eb)
                lanes.append(LaneInfo(p.lane, k, None, k >= OC, None, None, p.lsb,
                                      cfg.bias_bits))
            return Coordinates(**common, oc_tile=(lo // cfg.tile_oc) if lanes else None,
                               lanes=tuple(lanes))
        fixed = 3 * RECORD_PART_BITS // 8
        parts = ("control", "channels", "kernel")
        if cfg.record_format == "packed":
            off = w * wb
            pc = OC if shape.per_channel else 0
            if off < fixed:
                fld = parts[off // 8]
            elif off < fixed + 2 * pc:
                fld = ("shift", "weight_exp")[(off - fixed) // OC]
            else:
                fld = "padding"
            lanes = []
            for b in range(max(off, fixed), (w + 1) * wb):
                k = b - fixed
                which, ch = divmod(k, OC) if k < 2 * pc else (2, pc + k - 2 * pc)
                p = place(b, 1)
                lanes.append(LaneInfo(p.lane, ch if which < 2 else OC + k - 2 * pc, None,
                                      which >= 2, None, None, p.lsb, 8))
            return Coordinates(**common, field=fld, lanes=tuple(lanes))
        if w < cfg.record_fixed_words:
            return Coordinates(**common, field=parts[w // cfg.record_part_words])
        per_field = _ceil_div(OC, cfg.lanes)
        which, word = divmod(w - cfg.record_fixed_words, per_field)
        first = word * cfg.lanes
        lanes = []
        for lane in range(cfg.lanes):
            p = place(lane, 1)
            lanes.append(LaneInfo(p.lane, first + lane, None, first + lane >= OC, None, None,
                                  p.lsb, 8))
        return Coordinates(**common, field=("shift", "weight_exp")[which], lanes=tuple(lanes))

    # -- packing
    def _check_words(self, i: int, tensor: str, words: np.ndarray) -> np.ndarray:
        b = words_to_bytes(words, self.config)
        want = self.segment(i, tensor).words
        if b.shape[0] != want:
            raise LayoutError(f"layer {self.layers[i].name!r} {tensor}: got {b.shape[0]} words, "
                              f"expected {want}")
        return b

    def _tail_is_zero(self, rows: np.ndarray, nbytes: int) -> bool:
        """True when every stream byte from `nbytes` on (end padding) is zero."""
        flat = np.ascontiguousarray(rows[:, ::-1] if self.config.lane_order == "big" else rows)
        return not np.any(flat.reshape(-1)[nbytes:])

    def pack_weights(self, layer: int | str, weights: Any) -> np.ndarray:
        """Words of a layer's weight segment from its int8 weights (weight_shape)."""
        i = self.layer_index(layer)
        shape, cfg = self.layers[i], self.config
        OC, IC, KH, KW = shape.dims
        w = _int_array(weights, shape.weight_shape, -128, 127,
                       f"layer {shape.name!r} weights").reshape(OC, IC, KH, KW)
        tiles, _, order = _weight_axes(shape, cfg)
        if shape.kind == "depthwise":
            padded = np.zeros((tiles[0] * tiles[1], KH, KW), dtype=np.int8)
            padded[:OC] = w[:, 0]
        else:
            padded = np.zeros((tiles[0] * tiles[1], tiles[2] * tiles[3], KH, KW), dtype=np.int8)
            padded[:OC, :IC] = w
        elements = padded.reshape(tiles).transpose(order).reshape(-1)
        rows = _to_rows(elements, 1, self.segment(i, "weight").words, cfg)
        return bytes_to_words(rows, cfg)

    def unpack_weights(self, layer: int | str, words: np.ndarray,
                       check_padding: bool = True) -> np.ndarray:
        """int64 weights (weight_shape) from a layer's weight words; LayoutError if a
        padding lane is not zero (unless check_padding is False)."""
        i = self.layer_index(layer)
        shape, cfg = self.layers[i], self.config
        OC, IC, KH, KW = shape.dims
        tiles, _, order = _weight_axes(shape, cfg)
        rows = self._check_words(i, "weight", words)
        n = int(np.prod(tiles))
        elements = _from_rows(rows, 1, n, cfg)
        moved = tuple(tiles[d] for d in order)
        padded = elements.reshape(moved).transpose(np.argsort(order))
        if shape.kind == "depthwise":
            padded = padded.reshape(-1, KH, KW)
            w = padded[:OC, None]
        else:
            padded = padded.reshape(tiles[0] * tiles[1], tiles[2] * tiles[3], KH, KW)
            w = padded[:OC, :IC]
        if check_padding and (np.count_nonzero(padded) != np.count_nonzero(w)
                              or not self._tail_is_zero(rows, n)):
            raise LayoutError(f"layer {shape.name!r} weights: a padding lane is not zero")
        return w.astype(np.int64).reshape(shape.weight_shape)

    def pack_biases(self, layer: int | str, biases: Any) -> np.ndarray:
        """Words of a layer's bias segment from its biases ([OC], int16 or int32 as
        bias_bits says)."""
        i = self.layer_index(layer)
        shape, cfg = self.layers[i], self.config
        hi = (1 << (cfg.bias_bits - 1)) - 1
        b = _int_array(biases, (shape.out_channels,), -hi - 1, hi,
                       f"layer {shape.name!r} biases")
        padded = np.zeros(_round_up(shape.out_channels, cfg.tile_oc), dtype=np.int64)
        padded[:b.size] = b
        rows = _to_rows(padded, cfg.bias_bits // 8, self.segment(i, "bias").words, cfg)
        return bytes_to_words(rows, cfg)

    def unpack_biases(self, layer: int | str, words: np.ndarray,
                      check_padding: bool = True) -> np.ndarray:
        """int64 biases ([OC]) from a layer's bias words."""
        i = self.layer_index(layer)
        shape, cfg = self.layers[i], self.config
        eb = cfg.bias_bits // 8
        n = _round_up(shape.out_channels, cfg.tile_oc)
        rows = self._check_words(i, "bias", words)
        flat = _from_rows(rows, eb, n, cfg)
        if check_padding and (np.any(flat[shape.out_channels:])
                              or not self._tail_is_zero(rows, n * eb)):
            raise LayoutError(f"layer {shape.name!r} biases: a padding lane is not zero")
        return flat[:shape.out_channels]


    def record_geometry(self, layer: int | str, fields: RecordFields) -> dict[str, int]:
        """The geometry fields (GEOMETRY_FIELDS names) of a layer's record, checked
        against the layout's shape and kind; LayoutError (one line, naming the layer
        and the field) when a value disagrees or does not fit its field."""
        i = self.layer_index(layer)
        shape = self.layers[i]
        where = f"layer {shape.name!r} record"
        OC, IC, KH, KW = shape.dims
        pairs = {}
        for name in ("stride", "padding", "dilation", "kernel"):
            value = getattr(fields, name)
            if value is not None and (len(value) != 2 or any(
                    isinstance(v, bool) or not isinstance(v, int | np.integer) for v in value)):
                raise LayoutError(f"{where}: {name} {list(value)!r} must be two integers [h, w]")
            pairs[name] = value
        groups = fields.groups
        if isinstance(groups, bool) or not isinstance(groups, int | np.integer) or groups < 1:
            raise LayoutError(f"{where}: groups is {groups!r}, expected an integer >= 1")
        groups = int(groups)
        kind = shape.kind
        if kind in ("regular", "pointwise", "linear") and groups != 1:
            hint = "; a grouped conv is kind 'grouped'" if kind == "regular" else ""
            raise LayoutError(f"{where}: groups is {groups}; a {kind} layer has groups 1{hint}")
        if kind == "grouped" and groups == 1:
            raise LayoutError(f"{where}: groups is 1; a grouped conv has groups > 1")
        if kind in ("depthwise", "grouped") and OC % groups:
            raise LayoutError(f"{where}: groups {groups} does not divide the {OC} output "
                              "channels")
        want = {"out_channels": OC, "in_channels": IC * groups, "kernel": (KH, KW)}
        for name, value in want.items():
            got = pairs.get(name, getattr(fields, name, None))
            if got is not None and tuple(np.atleast_1d(got).tolist()) != tuple(
                    np.atleast_1d(value).tolist()):
                raise LayoutError(f"{where}: {name} is {got!r}; the layout's weight shape "
                                  f"{list(shape.weight_shape)} with groups {groups} gives "
                                  f"{value!r}")
        stride, padding, dilation = (pairs[n] for n in ("stride", "padding", "dilation"))
        if kind == "linear" and (stride, padding, dilation) != ((1, 1), (0, 0), (1, 1)):
            raise LayoutError(f"{where}: a linear layer has stride [1, 1], padding [0, 0] and "
                              f"dilation [1, 1], got {list(stride)}, {list(padding)}, "
                              f"{list(dilation)}")
        values = {"out_channels": OC, "in_channels": IC * groups, "groups": groups,
                  "kernel_h": KH, "kernel_w": KW, "stride_h": stride[0], "stride_w": stride[1],
                  "padding_h": padding[0], "padding_w": padding[1], "dilation_h": dilation[0],
                  "dilation_w": dilation[1]}
        for name, (_, _, width, lo) in GEOMETRY_FIELDS.items():
            _check_field(values[name], lo, (1 << width) - 1,
                         f"{where} {name} ({width}-bit field)")
        return {k: int(v) for k, v in values.items()}

    def _record_rows(self, i: int, parts: Sequence[int], per_channel: Sequence[np.ndarray]
                     ) -> np.ndarray:
        """Word rows of a record from its 3 fixed 64-bit parts and per-channel int8 arrays."""
        cfg = self.config
        words = self.segment(i, "record").words
        if cfg.record_format == "packed":
            seq = np.concatenate([np.frombuffer(b"".join(int(v).to_bytes(8, "little")
                                                         for v in parts), dtype=np.int8),
                                  *[np.asarray(a, dtype=np.int8) for a in per_channel]])
            return _to_rows(seq, 1, words, cfg)
        pw = cfg.record_part_words
        rows = [np.frombuffer(int(v).to_bytes(pw * cfg.word_bytes, "little"),
                              dtype=np.uint8).reshape(pw, cfg.word_bytes) for v in parts]
        for values in per_channel:
            n = _ceil_div(len(values), cfg.lanes)
            rows.append(_to_rows(np.asarray(values, dtype=np.int8), 1, n, cfg))
        return np.concatenate(rows)

    def pack_record(self, layer: int | str, fields: RecordFields) -> np.ndarray:
        """Words of a layer's record segment (bit fields in docs/layout.md): control,
        channels and kernel parts, then per-channel shift and weight-exponent lanes."""
        i = self.layer_index(layer)
        shape = self.layers[i]
        where = f"layer {shape.name!r} record"
        if fields.kind != shape.kind:
            raise LayoutError(f"{where}: kind {fields.kind!r} != layout kind {shape.kind!r}")
        count = shape.out_channels if shape.per_channel else 1
        if len(fields.shift) != count or len(fields.weight_exp) != count:
            raise LayoutError(f"{where}: needs {count} shift and weight_exp values "
                              f"({'per-channel' if shape.per_channel else 'per-tensor'})")
        shifts = [_check_field(v, -128, 127, f"{where} shift") for v in fields.shift]
        wexps = [_check_field(v, -128, 127, f"{where} weight_exp") for v in fields.weight_exp]
        control = np.zeros(8, dtype=np.uint8)
        control[0] = 0 if shape.per_channel else shifts[0] & 0xFF
        control[1] = _check_field(fields.input_zero_point, 0, 255, f"{where} input zero point")
        control[2] = _check_field(fields.output_zero_point, 0, 255, f"{where} output zero point")
        control[3] = int(bool(fields.relu)) | LAYER_KINDS.index(shape.kind) << 1
        control[4] = _check_field(fields.input_exp, -128, 127, f"{where} input_exp") & 0xFF
        control[5] = 0 if shape.per_channel else wexps[0] & 0xFF
        control[6] = _check_field(fields.output_exp, -128, 127, f"{where} output_exp") & 0xFF
        geometry = [0, 0]
        for name, value in self.record_geometry(i, fields).items():
            word, lsb, _, _ = GEOMETRY_FIELDS[name]
            geometry[word - 1] |= value << lsb
        parts = [int.from_bytes(control.tobytes(), "little"), *geometry]
        per_channel = [np.array(shifts), np.array(wexps)] if shape.per_channel else []
        return bytes_to_words(self._record_rows(i, parts, per_channel), self.config)

    def unpack_record(self, layer: int | str, words: np.ndarray,
                      check_padding: bool = True) -> RecordFields:
        """RecordFields from a layer's record words; LayoutError on a reserved bit set,
        a kind code or geometry that disagrees with the layout or (check_padding) a
        nonzero pad lane."""
        i = self.layer_index(layer)
        shape, cfg = self.layers[i], self.config
        where = f"layer {shape.name!r} record"
        rows = self._check_words(i, "record", words)
        oc = shape.out_channels
        pc = oc if shape.per_channel else 0
        fixed = 3 * RECORD_PART_BITS // 8
        if cfg.record_format == "packed":
            seq = _from_rows(rows, 1, rows.shape[0] * cfg.word_bytes, cfg)
            parts = [int.from_bytes((seq[8 * p:8 * p + 8] & 0xFF).astype(np.uint8).tobytes(),
                                    "little") for p in range(3)]
            lanes = seq[fixed:fixed + 2 * pc].reshape(2, pc) if pc else None
            if check_padding and np.any(seq[fixed + 2 * pc:]):
                raise LayoutError(f"{where}: a padding lane is not zero")
        else:
            pw = cfg.record_part_words
            parts = [int.from_bytes(rows[p * pw:(p + 1) * pw].tobytes(), "little")
                     for p in range(3)]
            if any(v >> RECORD_PART_BITS for v in parts):
                raise LayoutError(f"{where}: reserved bits are not zero")
            lanes = None
            if pc:
                n = _ceil_div(oc, cfg.lanes)
                per = [_from_rows(rows[cfg.record_fixed_words + k * n:
                                       cfg.record_fixed_words + (k + 1) * n], 1, n * cfg.lanes,
                                  cfg) for k in range(2)]
                full = np.stack(per)
                if check_padding and np.any(full[:, oc:]):
                    raise LayoutError(f"{where}: a padding lane is not zero")
                lanes = full[:, :oc]
        c = np.frombuffer(parts[0].to_bytes(8, "little"), dtype=np.uint8)
        code = (int(c[3]) >> 1) & 0x7
        if int(c[3]) >> 4 or int(c[7]):
            raise LayoutError(f"{where}: reserved bits are not zero")
        if code >= len(LAYER_KINDS) or LAYER_KINDS[code] != shape.kind:
            raise LayoutError(f"{where}: kind code {code} disagrees with layout kind "
                              f"{shape.kind!r}")
        s8 = c.view(np.int8)
        g = {name: (parts[word] >> lsb) & ((1 << width) - 1)
             for name, (word, lsb, width, _) in GEOMETRY_FIELDS.items()}
        if shape.per_channel:
            if check_padding and (c[0] or c[5]):
                raise LayoutError(f"{where}: per-channel control word must have n = 0 and "
                                  "weight exponent 0")
            assert lanes is not None
            shift, wexp = tuple(lanes[0].tolist()), tuple(lanes[1].tolist())
        else:
            shift, wexp = (int(s8[0]),), (int(s8[5]),)
        fields = RecordFields(
            kind=shape.kind, relu=bool(c[3] & 1), input_zero_point=int(c[1]),
            output_zero_point=int(c[2]), input_exp=int(s8[4]), output_exp=int(s8[6]),
            shift=shift, weight_exp=wexp, groups=g["groups"],
            stride=(g["stride_h"], g["stride_w"]), padding=(g["padding_h"], g["padding_w"]),
            dilation=(g["dilation_h"], g["dilation_w"]), out_channels=g["out_channels"],
            in_channels=g["in_channels"], kernel=(g["kernel_h"], g["kernel_w"]))
        if self.record_geometry(i, fields) != g:  # raises on a disagreeing field
            raise LayoutError(f"{where}: geometry fields out of range")
        return fields

    # -- tables
    def table(self) -> dict[str, Any]:
        """The computed layout as plain data (layout.json): config, depth, regions,
        segments (and accelerator when the layout records one)."""
        table = {
            "config": self.config.as_dict(),
            "depth": self.depth,
            "addr_bits": self.addr_bits,
            "used_words": self.used_words,
            "layers": [{"index": i, "name": s.name, "kind": s.kind,
                        "weight_shape": list(s.weight_shape), "per_channel": s.per_channel}
                       for i, s in enumerate(self.layers)],
            "regions": [{"name": r.name, "base": r.base, "end": r.end, "used": r.used}
                        for r in self.regions],
            "segments": [{"layer": s.layer, "name": s.name, "tensor": s.tensor, "kind": s.kind,
                          "region": s.region, "base": s.base, "end": s.end, "words": s.words,
                          "padding_words": s.padding_words, "padding_lanes": s.padding_lanes}
                         for s in self.segments],
        }
        if self.accelerator is not None:
            table["accelerator"] = dict(self.accelerator)
        return table


def package_shapes(package: Any) -> list[LayerShape]:
    """LayerShapes of a loaded package's weighted layers, in execution order."""
    return [LayerShape(layer["name"], layer["kind"], tuple(layer["weight_shape"]),
                       layer["weight"]["qscheme"] == "per_channel_symmetric")
            for layer in package.weighted_layers()]



# ---------------------------------------------------------------- layout.json

LAYOUT_JSON_MAX_BYTES = 16 << 20
_U = {"type": "integer", "minimum": 0, "maximum": 1 << 40}
_SEGMENT_PROPS = {
    "layer": {"type": "integer", "minimum": 0, "maximum": MAX_LAYERS - 1},
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "tensor": {"enum": list(TENSORS)}, "kind": {"enum": [0, 1, 2]},
    "region": {"enum": list(REGIONS)},
    "base": _U, "end": _U, "words": {**_U, "maximum": MAX_SEGMENT_WORDS},
    "padding_words": _U, "padding_lanes": _U,
}
_FIELD = {"type": "object", "additionalProperties": False, "required": ["lsb", "width"],
          "properties": {"lsb": {"type": "integer", "minimum": 0, "maximum": 4095},
                         "width": {"type": "integer", "minimum": 1, "maximum": 4096}}}
_HEADER_FIELDS_SCHEMA = {"type": "object", "additionalProperties": False,
                         "required": list(HEADER_FIELD_NAMES),
                         "properties": {n: _FIELD for n in HEADER_FIELD_NAMES}}
_HEADER_SCHEMA = {"type": "object", "additionalProperties": False,
                  "required": ["bits", "magic", "fields"],
                  "properties": {"bits": {"type": "integer", "minimum": 1, "maximum": 4096},
                                 "magic": {"type": "integer", "minimum": 0},
                                 "fields": _HEADER_FIELDS_SCHEMA}}
#: JSON Schema (Draft 2020-12) of golden/layout.json as golden.image.write_golden writes it
#: (Layout.table() plus the stream header description).
LAYOUT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "layout.json of cosim golden (docs/layout.md)",
    "type": "object", "additionalProperties": False,
    "required": ["config", "depth", "addr_bits", "used_words", "layers", "regions", "segments",
                 "stream"],
    "properties": {
        "config": {
            "type": "object", "additionalProperties": False,
            "required": ["word_bits", "tile_oc", "tile_ic", "kernel_order", "segment_align",
                         "region_align"],
            "properties": {
                "word_bits": {"type": "integer", "minimum": 8, "maximum": 1024,
                              "multipleOf": 8},
                "tile_oc": {"type": "integer", "minimum": 1, "maximum": 4096},
                "tile_ic": {"type": "integer", "minimum": 1, "maximum": 4096},
                "kernel_order": {"enum": list(KERNEL_ORDERS)},
                "segment_align": {"type": "integer", "minimum": 1, "maximum": 1 << 20},
                "region_align": {"type": "integer", "minimum": 1, "maximum": 1 << 30},
                "tile_dw": {"type": "integer", "minimum": 1, "maximum": 4096},
                "weight_loop_order": {"type": "array", "minItems": 6, "maxItems": 6,
                                      "uniqueItems": True,
                                      "items": {"enum": list(WEIGHT_LOOPS)}},
                "depthwise_loop_order": {"type": "array", "minItems": 4, "maxItems": 4,
                                         "uniqueItems": True,
                                         "items": {"enum": list(DEPTHWISE_LOOPS)}},
                "bias_bits": {"enum": list(BIAS_BITS)},
                "lane_order": {"enum": list(LANE_ORDERS)},
                "record_format": {"enum": list(RECORD_FORMATS)},
                "region_order": {"type": "array", "minItems": 3, "maxItems": 3,
                                 "uniqueItems": True, "items": {"enum": list(REGIONS)}},
                "memory_depth": {"anyOf": [{"type": "null"}, _U]},
                "address_unit": {"enum": list(ADDRESS_UNITS)},
                "header": _HEADER_SCHEMA,
            },
        },
        "depth": _U, "addr_bits": {"type": "integer", "minimum": 1, "maximum": 64},
        "used_words": _U,
        "layers": {"type": "array", "minItems": 1, "maxItems": MAX_LAYERS, "items": {
            "type": "object", "additionalProperties": False,
            "required": ["index", "name", "kind", "weight_shape", "per_channel"],
            "properties": {
                "index": {"type": "integer", "minimum": 0, "maximum": MAX_LAYERS - 1},
                "name": {"type": "string", "minLength": 1, "maxLength": 200},
                "kind": {"enum": list(LAYER_KINDS)},
                "weight_shape": {"type": "array", "minItems": 2, "maxItems": 4,
                                 "items": {"type": "integer", "minimum": 1,
                                           "maximum": 1 << 20}},
                "per_channel": {"type": "boolean"},
            }}},
        "regions": {"type": "array", "minItems": 3, "maxItems": 3, "items": {
            "type": "object", "additionalProperties": False,
            "required": ["name", "base", "end", "used"],
            "properties": {"name": {"enum": list(REGIONS)}, "base": _U, "end": _U, "used": _U}}},
        "segments": {"type": "array", "minItems": 3, "maxItems": 3 * MAX_LAYERS, "items": {
            "type": "object", "additionalProperties": False,
            "required": list(_SEGMENT_PROPS), "properties": _SEGMENT_PROPS}},
        "accelerator": {
            "type": "object", "additionalProperties": False, "required": ["name", "sha256"],
            "properties": {"name": {"type": "string", "pattern": "^[a-z0-9_-]{1,64}$"},
                           "sha256": {"anyOf": [{"type": "null"},
                                                {"type": "string",
                                                 "pattern": "^[0-9a-f]{64}$"}]},
                           "path": {"type": "string", "maxLength": 4096},
                           "overrides": {"type": "array", "maxItems": 64,
                                         "items": {"type": "string", "maxLength": 200}}}},
        "package": {
            "type": "object", "additionalProperties": False, "required": ["manifest_sha256"],
            "properties": {"manifest_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                           "path": {"type": "string", "maxLength": 4096}}},
        "stream": {
            "type": "object", "additionalProperties": False,
            "required": ["header_magic", "header_fields", "segments", "words"],
            "properties": {
                "header_magic": {"type": "integer", "minimum": 0},
                "header_fields": _HEADER_FIELDS_SCHEMA,
                "header_bits": {"type": "integer", "minimum": 1, "maximum": 4096},
                "header_words": {"type": "integer", "minimum": 1, "maximum": 4096},
                "segments": {"type": "integer", "minimum": 3, "maximum": 3 * MAX_LAYERS},
                "words": _U,
            }},
    },
}


def read_layout_json(path: Any) -> tuple[Layout, dict[str, Any]]:
    """Read golden/layout.json: (the Layout it describes, the table as read).

    The file must be a regular file of bounded size holding bounded JSON that matches
    LAYOUT_SCHEMA; then the layout is recomputed from its config and layers and must
    equal the file's depth, address bits, regions and segments, and the stream counts
    must follow (3 segments per layer, one header word per segment). PackageError
    (one line naming the file) otherwise.
    """
    from cosim.quant.formats import PackageError
    from cosim.quant.schema import read_json

    table = read_json(path, LAYOUT_SCHEMA, "the layout table of cosim golden (JSON)",
                      max_bytes=LAYOUT_JSON_MAX_BYTES)
    try:
        config = LayoutConfig(**table["config"])
        shapes = []
        for i, entry in enumerate(table["layers"]):
            if entry["index"] != i:
                raise LayoutError(f"$.layers[{i}].index is {entry['index']}; expected {i}")
            shapes.append(LayerShape(entry["name"], entry["kind"], tuple(entry["weight_shape"]),
                                     entry["per_channel"]))
        layout = Layout(shapes, config, table.get("accelerator"))
    except LayoutError as e:
        raise PackageError(path, str(e)) from None
    want = layout.table()
    c = config
    gives = (f"the layout of the file's config (word_bits {c.word_bits}, tile {c.tile_oc}x"
             f"{c.tile_ic}) and layers gives")
    for key in ("depth", "addr_bits", "used_words", "regions", "segments"):
        if table[key] != want[key]:
            got, exp = table[key], want[key]
            if isinstance(got, list) and len(got) == len(exp):
                i = next(i for i, (a, b) in enumerate(zip(got, exp, strict=True)) if a != b)
                raise PackageError(path, f"$.{key}[{i}] is {got[i]}; {gives} {exp[i]}")
            raise PackageError(path, f"$.{key} is {str(got)[:80]}; {gives} {str(exp)[:80]}")
    stream = table["stream"]
    hdr = config.header
    if stream["header_magic"] != hdr.magic or stream["header_fields"] != hdr.as_dict()[
            "fields"] or stream.get("header_bits", hdr.bits) != hdr.bits:
        raise PackageError(path, "$.stream header description disagrees with "
                           "$.config.header")
    segments = 3 * len(shapes)
    words = segments * config.header_words + layout.used_words
    if stream["segments"] != segments or stream["words"] != words:
        raise PackageError(path, f"$.stream says {stream['segments']} segments, "
                           f"{stream['words']} words; the layout gives {segments} segments, "
                           f"{words} words (data words plus {config.header_words} header "
                           "word(s) per segment)")
    return layout, table
