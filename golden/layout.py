"""The parameter-memory layout: the single definition of where every parameter is stored.

Conventions (docs/layout.md has the worked example):

- Addresses are **word addresses** (one `word_bits`-bit word each), never bytes.
- A word holds lanes, little-endian: lane 0 is bits [7:0] (int8 lanes) or [15:0]
  (int16 bias lanes). Values are two's complement.
- Memory = three regions in this order: `weights`, `biases`, `records`; each starts
  at a multiple of `region_align` right after the previous one. In a region the
  weighted layers follow in execution order, each segment base a multiple of
  `segment_align`. Gaps are never written.
- Segment kinds (the stream's header `kind`): 0 weights, 1 biases, 2 record.
- Words are `np.uint64` arrays: shape (n,) for 64-bit words, (n, word_bits // 64)
  for wider words (column 0 = bits [63:0]).

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
]

#: Layer kinds and their record code (bits [27:25] of the record word). "grouped" is a
#: conv with 1 < groups whose groups have more than one input channel each (weight
#: [OC, IC/groups, KH, KW]); it tiles like a regular conv over that weight matrix.
LAYER_KINDS = ("regular", "depthwise", "pointwise", "linear", "grouped")
#: Words of a record before the per-channel words: control, channels, kernel.
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

#: Header limits the layout must respect (8-bit layer index, 24-bit word count).
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


@dataclass(frozen=True)
class LayoutConfig:
    """Layout options. Alignments are in words.

    word_bits: memory word width, a multiple of 64; tile_ic: input-channel tile =
    int8 lanes per weight word (tile_ic * 8 == word_bits); tile_oc: output-channel
    tile; kernel_order: "kh_kw" (kh outer, kw inner) or "kw_kh"; segment_align /
    region_align: every segment / region base is a multiple of it (region_align a
    multiple of segment_align).
    """

    word_bits: int = 64
    tile_oc: int = 8
    tile_ic: int = 8
    kernel_order: str = "kh_kw"
    segment_align: int = 8
    region_align: int = 4096

    def __post_init__(self) -> None:
        bits = _check_int(self.word_bits, "word_bits", 64)
        if bits % 64:
            raise LayoutError(f"word_bits must be a multiple of 64, got {bits}")
        tile_ic = _check_int(self.tile_ic, "tile_ic")
        if tile_ic * 8 != bits:
            raise LayoutError(f"tile_ic ({tile_ic}) must equal word_bits / 8 = {bits // 8} "
                              "(one int8 lane per input channel of the tile)")
        _check_int(self.tile_oc, "tile_oc")
        if self.kernel_order not in KERNEL_ORDERS:
            raise LayoutError(f"kernel_order must be one of {', '.join(KERNEL_ORDERS)}, "
                              f"got {self.kernel_order!r}")
        seg = _check_int(self.segment_align, "segment_align")
        reg = _check_int(self.region_align, "region_align")
        if reg % seg:
            raise LayoutError(f"region_align ({reg}) must be a multiple of segment_align ({seg})")

    @property
    def lanes(self) -> int:
        """int8 lanes per word (= tile_ic)."""
        return self.word_bits // 8

    @property
    def bias_lanes(self) -> int:
        """int16 lanes per bias word."""
        return self.word_bits // 16

    @property
    def limbs(self) -> int:
        """uint64 columns per word (1 for 64-bit words)."""
        return self.word_bits // 64

    def as_dict(self) -> dict[str, Any]:
        return {"word_bits": self.word_bits, "tile_oc": self.tile_oc, "tile_ic": self.tile_ic,
                "kernel_order": self.kernel_order, "segment_align": self.segment_align,
                "region_align": self.region_align}


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
    carry the coordinates they would have in an unpadded tile."""

    lane: int
    oc: int
    ic: int | None
    padding: bool


@dataclass(frozen=True)
class Coordinates:
    """What is stored at a word address (`Layout.locate`).

    Weights: oc_tile, ic_tile, kh, kw and one LaneInfo per int8 lane (depthwise:
    oc_tile is the channel tile, ic_tile 0). Biases: oc_tile, one LaneInfo per
    int16 lane. Records: field "control" (word 0), "channels" (word 1), "kernel"
    (word 2), "shift" or "weight_exp" (per-channel words, one LaneInfo per int8 lane).
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
    b = np.ascontiguousarray(lanes, dtype=np.uint8).reshape(-1, config.word_bits // 8)
    words = b.view("<u8").astype(np.uint64)
    return words.reshape(-1) if config.limbs == 1 else words.reshape(-1, config.limbs)


def words_to_bytes(words: np.ndarray, config: LayoutConfig) -> np.ndarray:
    """words (uint64 (n,) or (n, limbs)) -> [n, word_bits/8] uint8, byte 0 = bits [7:0]."""
    w = np.asarray(words)
    if w.dtype != np.uint64:
        if not np.issubdtype(w.dtype, np.integer) or (w.size and int(w.min()) < 0):
            raise LayoutError(f"words must be unsigned integers, got dtype {w.dtype}")
        w = w.astype(np.uint64)
    if config.limbs > 1 and (w.ndim != 2 or w.shape[1] != config.limbs):
        raise LayoutError(f"{config.word_bits}-bit words need shape (n, {config.limbs}), "
                          f"got {w.shape}")
    if config.limbs == 1 and w.ndim != 1:
        raise LayoutError(f"64-bit words need a 1-D array, got shape {w.shape}")
    return np.ascontiguousarray(w, dtype="<u8").view(np.uint8).reshape(-1, config.word_bits // 8)


# ---------------------------------------------------------------- word counts


def segment_words(shape: LayerShape, tensor: str, config: LayoutConfig) -> tuple[int, int, int]:
    """(words, padding_words, padding_lanes) of one segment, from the formulas."""
    oc, ic, kh, kw = shape.dims
    k = kh * kw
    if tensor == "weight":
        if shape.kind == "depthwise":
            words = _ceil_div(oc, config.tile_ic) * k
            return words, 0, words * config.tile_ic - oc * k
        oct_, ict = _ceil_div(oc, config.tile_oc), _ceil_div(ic, config.tile_ic)
        words = oct_ * ict * k * config.tile_oc
        pad_words = (oct_ * config.tile_oc - oc) * ict * k
        return words, pad_words, words * config.tile_ic - oc * ic * k
    if tensor == "bias":
        lanes = config.bias_lanes
        words = _ceil_div(_round_up(oc, config.tile_oc), lanes)
        return words, words - _ceil_div(oc, lanes), words * lanes - oc
    if tensor == "record":
        if not shape.per_channel:
            return RECORD_FIXED_WORDS, 0, 0
        n = _ceil_div(oc, config.lanes)
        return RECORD_FIXED_WORDS + 2 * n, 0, 2 * (n * config.lanes - oc)
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
    depth (total words: end of the records region).
    """

    def __init__(self, layers: Sequence[LayerShape], config: LayoutConfig | None = None) -> None:
        self.config = config or LayoutConfig()
        self.layers: list[LayerShape] = list(layers)
        if not self.layers:
            raise LayoutError("a layout needs at least one weighted layer")
        if len(self.layers) > MAX_LAYERS:
            raise LayoutError(f"{len(self.layers)} weighted layers; the stream header's "
                              f"8-bit layer index allows {MAX_LAYERS}")
        names = [s.name for s in self.layers]
        if len(set(names)) != len(names):
            raise LayoutError("layer names must be unique")
        self._index = {name: i for i, name in enumerate(names)}
        cfg = self.config
        self.segments: list[SegmentInfo] = []
        self.regions: list[RegionInfo] = []
        self._by_key: dict[tuple[int, str], SegmentInfo] = {}
        cursor = 0
        for tensor, region in zip(TENSORS, REGIONS, strict=True):
            base = _round_up(cursor, cfg.region_align)
            address, used = base, 0
            for i, shape in enumerate(self.layers):
                words, pad_words, pad_lanes = segment_words(shape, tensor, cfg)
                if words > MAX_SEGMENT_WORDS:
                    raise LayoutError(f"layer {shape.name!r} {tensor} segment has {words} words; "
                                      f"the stream header's 24-bit count allows "
                                      f"{MAX_SEGMENT_WORDS}")
                address = _round_up(address, cfg.segment_align)
                seg = SegmentInfo(i, shape.name, tensor, region, address, words, pad_words,
                                  pad_lanes)
                self.segments.append(seg)
                self._by_key[(i, tensor)] = seg
                address += words
                used += words
            self.regions.append(RegionInfo(region, base, address, used))
            cursor = address
        self.depth = cursor
        self._bases = np.array([s.base for s in self.segments], dtype=np.int64)

    # -- construction
    @classmethod
    def from_shapes(cls, layers: Sequence[LayerShape],
                    config: LayoutConfig | None = None) -> Layout:
        """The layout of `layers` (execution order), no package needed."""
        return cls(layers, config)

    @classmethod
    def from_package(cls, package: Any, config: LayoutConfig | None = None) -> Layout:
        """The layout of a loaded `quant.package.Package` (its weighted layers)."""
        return cls(package_shapes(package), config)

    # -- lookup
    @property
    def addr_bits(self) -> int:
        """Bits of a word address: clog2(depth) (at least 1)."""
        return max(1, (self.depth - 1).bit_length())

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

    # -- forward map
    def address_of(self, layer: int | str, tensor: str, oc: int, ic: int = 0, kh: int = 0,
                   kw: int = 0) -> tuple[int, int]:
        """(word address, lane) of one parameter.

        weight: oc, ic, kh, kw (depthwise: oc = channel, ic = 0; linear: kh = kw = 0);
        bias: oc (int16 lane); record: per-tensor (base, 0) for the control word,
        per-channel the int8 lane of channel oc's shift (its weight exponent is
        ceil(OC / lanes) words further; the shifts start after the control, channels
        and kernel words).
        """
        i = self.layer_index(layer)
        seg, shape, cfg = self.segment(i, tensor), self.layers[i], self.config
        OC, IC, KH, KW = shape.dims
        _check_field(oc, 0, OC - 1, "oc")
        if tensor == "weight":
            _check_field(ic, 0, IC - 1, "ic")
            _check_field(kh, 0, KH - 1, "kh")
            _check_field(kw, 0, KW - 1, "kw")
            k = kh * KW + kw if cfg.kernel_order == "kh_kw" else kw * KH + kh
            if shape.kind == "depthwise":
                c_tile, lane = divmod(oc, cfg.tile_ic)
                return seg.base + c_tile * KH * KW + k, lane
            oc_tile, oc_in = divmod(oc, cfg.tile_oc)
            ic_tile, lane = divmod(ic, cfg.tile_ic)
            ict = _ceil_div(IC, cfg.tile_ic)
            return seg.base + ((oc_tile * ict + ic_tile) * KH * KW + k) * cfg.tile_oc + oc_in, lane
        if tensor == "bias":
            word, lane = divmod(oc, cfg.bias_lanes)
            return seg.base + word, lane
        if not shape.per_channel:
            return seg.base, 0
        word, lane = divmod(oc, cfg.lanes)
        return seg.base + RECORD_FIXED_WORDS + word, lane

    # -- reverse map
    def locate(self, address: int) -> Coordinates | None:
        """What the word at `address` holds; None in a gap or outside the memory."""
        if isinstance(address, bool) or not isinstance(address, int | np.integer):
            raise LayoutError(f"address must be an integer, got {address!r}")
        address = int(address)
        pos = int(np.searchsorted(self._bases, address, side="right")) - 1
        if pos < 0 or address >= self.segments[pos].end:
            return None
        seg = self.segments[pos]
        shape, cfg, w = self.layers[seg.layer], self.config, address - seg.base
        OC, IC, KH, KW = shape.dims
        common = {"layer": seg.layer, "name": seg.name, "tensor": seg.tensor,
                  "region": seg.region, "address": address, "word_index": w}

        def kernel(k: int) -> tuple[int, int]:
            return divmod(k, KW) if cfg.kernel_order == "kh_kw" else divmod(k, KH)[::-1]

        if seg.tensor == "weight":
            if shape.kind == "depthwise":
                c_tile, k = divmod(w, KH * KW)
                kh, kw = kernel(k)
                lanes = tuple(LaneInfo(lane, c, 0, c >= OC) for lane in range(cfg.tile_ic)
                              for c in [c_tile * cfg.tile_ic + lane])
                return Coordinates(**common, oc_tile=c_tile, ic_tile=0, kh=kh, kw=kw,
                                   lanes=lanes)
            rest, oc_in = divmod(w, cfg.tile_oc)
            rest, k = divmod(rest, KH * KW)
            oc_tile, ic_tile = divmod(rest, _ceil_div(IC, cfg.tile_ic))
            kh, kw = kernel(k)
            oc = oc_tile * cfg.tile_oc + oc_in
            lanes = tuple(LaneInfo(lane, oc, ic, oc >= OC or ic >= IC)
                          for lane in range(cfg.tile_ic) for ic in [ic_tile * cfg.tile_ic + lane])
            return Coordinates(**common, oc_tile=oc_tile, ic_tile=ic_tile, kh=kh, kw=kw,
                               lanes=lanes)
        if seg.tensor == "bias":
            first = w * cfg.bias_lanes
            lanes = tuple(LaneInfo(lane, first + lane, None, first + lane >= OC)
                          for lane in range(cfg.bias_lanes))
            return Coordinates(**common, oc_tile=first // cfg.tile_oc, lanes=lanes)
        if w < RECORD_FIXED_WORDS:
            return Coordinates(**common, field=("control", "channels", "kernel")[w])
        per_field = _ceil_div(OC, cfg.lanes)
        which, word = divmod(w - RECORD_FIXED_WORDS, per_field)
        first = word * cfg.lanes
        lanes = tuple(LaneInfo(lane, first + lane, None, first + lane >= OC)
                      for lane in range(cfg.lanes))
        return Coordinates(**common, field=("shift", "weight_exp")[which], lanes=lanes)

    # -- packing
    def _check_words(self, i: int, tensor: str, words: np.ndarray) -> np.ndarray:
        b = words_to_bytes(words, self.config)
        want = self.segment(i, tensor).words
        if b.shape[0] != want:
            raise LayoutError(f"layer {self.layers[i].name!r} {tensor}: got {b.shape[0]} words, "
                              f"expected {want}")
        return b

    def _weight_tiles(self, i: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(padded tile shape, transpose to word order) of a layer's weights."""
        shape, cfg = self.layers[i], self.config
        OC, IC, KH, KW = shape.dims
        kh_kw = cfg.kernel_order == "kh_kw"
        if shape.kind == "depthwise":  # (CT, tic, KH, KW) -> (CT, KH, KW, tic)
            return ((_ceil_div(OC, cfg.tile_ic), cfg.tile_ic, KH, KW),
                    (0, 2, 3, 1) if kh_kw else (0, 3, 2, 1))
        # (OCT, toc, ICT, tic, KH, KW) -> (OCT, ICT, KH, KW, toc, tic)
        return ((_ceil_div(OC, cfg.tile_oc), cfg.tile_oc, _ceil_div(IC, cfg.tile_ic),
                 cfg.tile_ic, KH, KW), (0, 2, 4, 5, 1, 3) if kh_kw else (0, 2, 5, 4, 1, 3))

    def pack_weights(self, layer: int | str, weights: Any) -> np.ndarray:
        """Words of a layer's weight segment from its int8 weights (weight_shape)."""
        i = self.layer_index(layer)
        shape, cfg = self.layers[i], self.config
        OC, IC, KH, KW = shape.dims
        w = _int_array(weights, shape.weight_shape, -128, 127,
                       f"layer {shape.name!r} weights").reshape(OC, IC, KH, KW)
        tiles, order = self._weight_tiles(i)
        if shape.kind == "depthwise":
            padded = np.zeros((tiles[0] * cfg.tile_ic, KH, KW), dtype=np.int8)
            padded[:OC] = w[:, 0]
        else:
            padded = np.zeros((tiles[0] * cfg.tile_oc, tiles[2] * cfg.tile_ic, KH, KW),
                              dtype=np.int8)
            padded[:OC, :IC] = w
        lanes = padded.reshape(tiles).transpose(order).reshape(-1, cfg.tile_ic)
        return bytes_to_words(lanes.view(np.uint8), cfg)

    def unpack_weights(self, layer: int | str, words: np.ndarray,
                       check_padding: bool = True) -> np.ndarray:
        """int64 weights (weight_shape) from a layer's weight words; LayoutError if a
        padding lane is not zero (unless check_padding is False)."""
        i = self.layer_index(layer)
        shape, cfg = self.layers[i], self.config
        OC, IC, KH, KW = shape.dims
        tiles, order = self._weight_tiles(i)
        lanes = self._check_words(i, "weight", words).view(np.int8)
        moved = tuple(tiles[d] for d in order)
        padded = lanes.reshape(moved).transpose(np.argsort(order))
        if shape.kind == "depthwise":
            padded = padded.reshape(-1, KH, KW)
            w = padded[:OC, None]
        else:
            padded = padded.reshape(tiles[0] * cfg.tile_oc, tiles[2] * cfg.tile_ic, KH, KW)
            w = padded[:OC, :IC]
        if check_padding and np.count_nonzero(padded) != np.count_nonzero(w):
            raise LayoutError(f"layer {shape.name!r} weights: a padding lane is not zero")
        return w.astype(np.int64).reshape(shape.weight_shape)

    def pack_biases(self, layer: int | str, biases: Any) -> np.ndarray:
        """Words of a layer's bias segment from its int16 biases ([OC])."""
        i = self.layer_index(layer)
        shape, cfg = self.layers[i], self.config
        b = _int_array(biases, (shape.out_channels,), -32768, 32767,
                       f"layer {shape.name!r} biases")
        padded = np.zeros(self.segment(i, "bias").words * cfg.bias_lanes, dtype="<i2")
        padded[:b.size] = b
        return bytes_to_words(padded.view(np.uint8), cfg)

    def unpack_biases(self, layer: int | str, words: np.ndarray,
                      check_padding: bool = True) -> np.ndarray:
        """int64 biases ([OC]) from a layer's bias words."""
        i = self.layer_index(layer)
        shape = self.layers[i]
        flat = np.ascontiguousarray(self._check_words(i, "bias", words)).view("<i2").reshape(-1)
        if check_padding and np.any(flat[shape.out_channels:]):
            raise LayoutError(f"layer {shape.name!r} biases: a padding lane is not zero")
        return flat[:shape.out_channels].astype(np.int64)

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

    def pack_record(self, layer: int | str, fields: RecordFields) -> np.ndarray:
        """Words of a layer's record segment (bit fields in docs/layout.md): control,
        channels and kernel words, then per-channel shift and weight-exponent words."""
        i = self.layer_index(layer)
        shape, cfg = self.layers[i], self.config
        where = f"layer {shape.name!r} record"
        if fields.kind != shape.kind:
            raise LayoutError(f"{where}: kind {fields.kind!r} != layout kind {shape.kind!r}")
        count = shape.out_channels if shape.per_channel else 1
        if len(fields.shift) != count or len(fields.weight_exp) != count:
            raise LayoutError(f"{where}: needs {count} shift and weight_exp values "
                              f"({'per-channel' if shape.per_channel else 'per-tensor'})")
        shifts = [_check_field(v, -128, 127, f"{where} shift") for v in fields.shift]
        wexps = [_check_field(v, -128, 127, f"{where} weight_exp") for v in fields.weight_exp]
        control = np.zeros(cfg.lanes, dtype=np.uint8)
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
        rows = [control[None]]
        for value in geometry:
            row = np.zeros(cfg.lanes, dtype=np.uint8)
            row[:8] = np.frombuffer(int(value).to_bytes(8, "little"), dtype=np.uint8)
            rows.append(row[None])
        if shape.per_channel:
            n = _ceil_div(count, cfg.lanes) * cfg.lanes
            for values in (shifts, wexps):
                lanes = np.zeros(n, dtype=np.int8)
                lanes[:count] = values
                rows.append(lanes.view(np.uint8).reshape(-1, cfg.lanes))
        return bytes_to_words(np.concatenate(rows), cfg)

    def unpack_record(self, layer: int | str, words: np.ndarray,
                      check_padding: bool = True) -> RecordFields:
        """RecordFields from a layer's record words; LayoutError on a reserved bit set,
        a kind code or geometry that disagrees with the layout or (check_padding) a
        nonzero pad lane."""
        i = self.layer_index(layer)
        shape = self.layers[i]
        where = f"layer {shape.name!r} record"
        b = self._check_words(i, "record", words)
        c = b[0]
        code = (int(c[3]) >> 1) & 0x7
        if int(c[3]) >> 4 or int(c[7]) or np.any(b[:RECORD_FIXED_WORDS, 8:]):
            raise LayoutError(f"{where}: reserved bits are not zero")
        if code >= len(LAYER_KINDS) or LAYER_KINDS[code] != shape.kind:
            raise LayoutError(f"{where}: kind code {code} disagrees with layout kind "
                              f"{shape.kind!r}")
        s8 = c.view(np.int8)
        geo_words = [int.from_bytes(b[w, :8].tobytes(), "little") for w in (1, 2)]
        g = {name: (geo_words[word - 1] >> lsb) & ((1 << width) - 1)
             for name, (word, lsb, width, _) in GEOMETRY_FIELDS.items()}
        if shape.per_channel:
            if check_padding and (c[0] or c[5]):
                raise LayoutError(f"{where}: per-channel control word must have n = 0 and "
                                  "weight exponent 0")
            oc = shape.out_channels
            lanes = b[RECORD_FIXED_WORDS:].view(np.int8).reshape(2, -1)
            if check_padding and np.any(lanes[:, oc:]):
                raise LayoutError(f"{where}: a padding lane is not zero")
            shift, wexp = tuple(lanes[0, :oc].tolist()), tuple(lanes[1, :oc].tolist())
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
        """The computed layout as plain data (layout.json): config, depth, regions, segments."""
        return {
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
                "word_bits": {"type": "integer", "minimum": 64, "maximum": 4096,
                              "multipleOf": 64},
                "tile_oc": {"type": "integer", "minimum": 1, "maximum": 4096},
                "tile_ic": {"type": "integer", "minimum": 8, "maximum": 512},
                "kernel_order": {"enum": list(KERNEL_ORDERS)},
                "segment_align": {"type": "integer", "minimum": 1, "maximum": 1 << 20},
                "region_align": {"type": "integer", "minimum": 1, "maximum": 1 << 30},
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
        "stream": {
            "type": "object", "additionalProperties": False,
            "required": ["header_magic", "header_fields", "segments", "words"],
            "properties": {
                "header_magic": {"const": 0xA5},
                "header_fields": {"const": {"magic": {"lsb": 56, "width": 8},
                                            "layer": {"lsb": 48, "width": 8},
                                            "kind": {"lsb": 44, "width": 4},
                                            "count": {"lsb": 16, "width": 24}}},
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
        layout = Layout(shapes, config)
    except LayoutError as e:
        raise PackageError(path, str(e)) from None
    want = layout.table()
    for key in ("depth", "addr_bits", "used_words", "regions", "segments"):
        if table[key] != want[key]:
            got, exp = table[key], want[key]
            if isinstance(got, list) and len(got) == len(exp):
                i = next(i for i, (a, b) in enumerate(zip(got, exp, strict=True)) if a != b)
                raise PackageError(path, f"$.{key}[{i}] is {got[i]}; the layout of the file's "
                                   f"config and layers gives {exp[i]}")
            raise PackageError(path, f"$.{key} is {str(got)[:80]}; the layout of the file's "
                               f"config and layers gives {str(exp)[:80]}")
    stream = table["stream"]
    segments = 3 * len(shapes)
    words = segments + layout.used_words
    if stream["segments"] != segments or stream["words"] != words:
        raise PackageError(path, f"$.stream says {stream['segments']} segments, "
                           f"{stream['words']} words; the layout gives {segments} segments, "
                           f"{words} words (data words plus one header per segment)")
    return layout, table
