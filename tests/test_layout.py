"""golden.layout: packing, word counts, placement and the address map, property-tested.

The vectorized packers are compared with a literal loop-nest transcription of
the layout rules (docs/layout.md) on random shapes, partial tiles included.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from cosim.golden.image import header_word, parse_header
from cosim.golden.layout import DEPTHWISE_LOOPS as DW_LOOPS_
from cosim.golden.layout import (
    LAYER_KINDS,
    REGIONS,
    TENSORS,
    LayerShape,
    Layout,
    LayoutConfig,
    LayoutError,
    RecordFields,
    segment_words,
)
from cosim.golden.layout import WEIGHT_LOOPS as WEIGHT_LOOPS_
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- strategies


@st.composite
def configs(draw) -> LayoutConfig:
    bits = draw(st.sampled_from([64, 64, 128]))
    seg = draw(st.sampled_from([1, 2, 4, 8, 16]))
    return LayoutConfig(word_bits=bits, tile_oc=draw(st.integers(1, 12)), tile_ic=bits // 8,
                        kernel_order=draw(st.sampled_from(["kh_kw", "kw_kh"])),
                        segment_align=seg,
                        region_align=seg * draw(st.sampled_from([1, 4, 64, 512])))


@st.composite
def shapes(draw, name: str = "layer") -> LayerShape:
    kind = draw(st.sampled_from(LAYER_KINDS))
    oc = draw(st.integers(1, 20))
    if kind == "linear":
        shape: tuple[int, ...] = (oc, draw(st.integers(1, 40)))
    elif kind == "pointwise":
        shape = (oc, draw(st.integers(1, 40)), 1, 1)
    elif kind == "depthwise":
        shape = (oc, 1, draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    elif kind == "grouped":  # oc a multiple of some groups > 1 (random_record picks them)
        oc = draw(st.integers(2, 4)) * draw(st.integers(1, 6))
        shape = (oc, draw(st.integers(2, 12)), draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    else:
        shape = (oc, draw(st.integers(1, 20)), draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return LayerShape(name, kind, shape, draw(st.booleans()))


@st.composite
def networks(draw) -> list[LayerShape]:
    n = draw(st.integers(1, 6))
    return [draw(shapes(name=f"layer{i}")) for i in range(n)]


def random_weights(shape: LayerShape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, shape.weight_shape)


def valid_groups(shape: LayerShape) -> list[int]:
    """The groups a record of this layer may carry: 1 for regular, pointwise and linear;
    any divisor > 1 of OC for grouped; any divisor of OC for depthwise (channel
    multiplier OC / groups)."""
    oc = shape.out_channels
    if shape.kind == "grouped":
        return [g for g in range(2, oc + 1) if oc % g == 0]
    if shape.kind == "depthwise":
        return [g for g in range(1, oc + 1) if oc % g == 0]
    return [1]


def random_record(shape: LayerShape, seed: int) -> RecordFields:
    """Every field drawn over its whole range (geometry: 8-bit fields 0/1..255)."""
    rng = np.random.default_rng(seed)
    count = shape.out_channels if shape.per_channel else 1
    oc, ic, kh, kw = shape.dims
    groups = int(rng.choice(valid_groups(shape)))
    linear = shape.kind == "linear"

    def pair(lo: int) -> tuple[int, int]:
        return (1, 1) if linear and lo else (0, 0) if linear else tuple(
            rng.integers(lo, 256, 2).tolist())

    return RecordFields(
        kind=shape.kind, relu=bool(rng.integers(0, 2)),
        input_zero_point=int(rng.integers(0, 256)), output_zero_point=int(rng.integers(0, 256)),
        input_exp=int(rng.integers(-128, 128)), output_exp=int(rng.integers(-128, 128)),
        shift=tuple(rng.integers(-128, 128, count).tolist()),
        weight_exp=tuple(rng.integers(-128, 128, count).tolist()),
        groups=groups, stride=pair(1), padding=pair(0), dilation=pair(1),
        out_channels=oc, in_channels=ic * groups, kernel=(kh, kw))


# ---------------------------------------------------------------- a loop-nest reference


def as_ints(words: np.ndarray, cfg: LayoutConfig) -> list[int]:
    """Words as Python ints (column 0 = bits [63:0])."""
    w = np.asarray(words).reshape(len(words), cfg.limbs)
    return [sum(int(limb) << (64 * j) for j, limb in enumerate(row)) for row in w]


def lanes_to_int(values: list[int], bits: int) -> int:
    mask = (1 << bits) - 1
    return sum((v & mask) << (bits * lane) for lane, v in enumerate(values))


def kernel_positions(kh_n: int, kw_n: int, order: str) -> list[tuple[int, int]]:
    if order == "kh_kw":
        return [(kh, kw) for kh in range(kh_n) for kw in range(kw_n)]
    return [(kh, kw) for kw in range(kw_n) for kh in range(kh_n)]


def reference_weight_words(shape: LayerShape, w: np.ndarray, cfg: LayoutConfig) -> list[int]:
    oc_n, ic_n, kh_n, kw_n = shape.dims
    w4 = w.reshape(oc_n, ic_n, kh_n, kw_n)
    words = []
    kernel = kernel_positions(kh_n, kw_n, cfg.kernel_order)
    if shape.kind == "depthwise":
        for c_tile in range(math.ceil(oc_n / cfg.tile_ic)):
            for kh, kw in kernel:
                lanes = []
                for lane in range(cfg.tile_ic):
                    c = c_tile * cfg.tile_ic + lane
                    lanes.append(int(w4[c, 0, kh, kw]) if c < oc_n else 0)
                words.append(lanes_to_int(lanes, 8))
        return words
    for oc_tile in range(math.ceil(oc_n / cfg.tile_oc)):
        for ic_tile in range(math.ceil(ic_n / cfg.tile_ic)):
            for kh, kw in kernel:
                for oc_in in range(cfg.tile_oc):
                    oc = oc_tile * cfg.tile_oc + oc_in
                    lanes = []
                    for lane in range(cfg.tile_ic):
                        ic = ic_tile * cfg.tile_ic + lane
                        lanes.append(int(w4[oc, ic, kh, kw]) if oc < oc_n and ic < ic_n else 0)
                    words.append(lanes_to_int(lanes, 8))
    return words


def reference_bias_words(b: np.ndarray, cfg: LayoutConfig) -> list[int]:
    padded = list(b) + [0] * (math.ceil(len(b) / cfg.tile_oc) * cfg.tile_oc - len(b))
    lanes = cfg.bias_lanes
    padded += [0] * (math.ceil(len(padded) / lanes) * lanes - len(padded))
    return [lanes_to_int([int(v) for v in padded[j:j + lanes]], 16)
            for j in range(0, len(padded), lanes)]


def reference_record_words(shape: LayerShape, r: RecordFields, cfg: LayoutConfig) -> list[int]:
    pc = shape.per_channel
    word = ((0 if pc else r.shift[0] & 0xFF) | r.input_zero_point << 8
            | r.output_zero_point << 16 | int(r.relu) << 24
            | LAYER_KINDS.index(shape.kind) << 25 | (r.input_exp & 0xFF) << 32
            | (0 if pc else r.weight_exp[0] & 0xFF) << 40 | (r.output_exp & 0xFF) << 48)
    oc, ic, kh, kw = shape.dims
    channels = oc | (ic * r.groups) << 24 | r.groups << 48
    kernel = lanes_to_int([kh, kw, *r.stride, *r.padding, *r.dilation], 8)
    words = [word, channels, kernel]
    if pc:
        for values in (r.shift, r.weight_exp):
            for j in range(0, len(values), cfg.lanes):
                words.append(lanes_to_int(list(values[j:j + cfg.lanes]), 8))
    return words


def expected_counts(shape: LayerShape, cfg: LayoutConfig) -> dict[str, int]:
    """The word-count formulas of the issue, restated."""
    oc, ic, kh, kw = shape.dims
    if shape.kind == "depthwise":
        weights = math.ceil(oc / cfg.tile_ic) * kh * kw
    else:
        weights = (math.ceil(oc / cfg.tile_oc) * math.ceil(ic / cfg.tile_ic) * kh * kw
                   * cfg.tile_oc)
    biases = math.ceil(math.ceil(oc / cfg.tile_oc) * cfg.tile_oc / (cfg.word_bits // 16))
    record = 3 + 2 * math.ceil(oc / (cfg.word_bits // 8)) if shape.per_channel else 3
    return {"weight": weights, "bias": biases, "record": record}


# ---------------------------------------------------------------- properties


@SETTINGS
@given(shape=shapes(), cfg=configs(), seed=st.integers(0, 2**32 - 1))
def test_packing_matches_the_loop_nest_and_round_trips(shape, cfg, seed):
    layout = Layout.from_shapes([shape], cfg)
    w = random_weights(shape, seed)
    words = layout.pack_weights(0, w)
    assert words.dtype == np.uint64
    assert words.shape == ((len(words),) if cfg.word_bits == 64 else (len(words), cfg.limbs))
    assert as_ints(words, cfg) == reference_weight_words(shape, w, cfg)
    np.testing.assert_array_equal(layout.unpack_weights(0, words), w)

    b = np.random.default_rng(seed).integers(-32768, 32768, shape.out_channels)
    bias_words = layout.pack_biases("layer", b)
    assert as_ints(bias_words, cfg) == reference_bias_words(b, cfg)
    np.testing.assert_array_equal(layout.unpack_biases(0, bias_words), b)

    record = random_record(shape, seed)
    record_words = layout.pack_record(0, record)
    assert as_ints(record_words, cfg) == reference_record_words(shape, record, cfg)
    assert layout.unpack_record(0, record_words) == record


@SETTINGS
@given(shape=shapes(), cfg=configs())
def test_word_counts_equal_the_formulas(shape, cfg):
    layout = Layout.from_shapes([shape], cfg)
    want = expected_counts(shape, cfg)
    for tensor in TENSORS:
        assert layout.segment(0, tensor).words == want[tensor]
        assert segment_words(shape, tensor, cfg)[0] == want[tensor]


@SETTINGS
@given(shape=shapes(), cfg=configs(), seed=st.integers(0, 2**32 - 1))
def test_locate_names_every_lane_and_padding_lanes_are_zero(shape, cfg, seed):
    layout = Layout.from_shapes([shape], cfg)
    oc_n, ic_n, kh_n, kw_n = shape.dims
    w = random_weights(shape, seed).reshape(oc_n, ic_n, kh_n, kw_n)
    seg = layout.segment(0, "weight")
    lanes = np.ascontiguousarray(layout.pack_weights(0, w.reshape(shape.weight_shape)))
    lanes = lanes.view(np.int8).reshape(seg.words, cfg.tile_ic)
    padding_words = padding_lanes = 0
    for word in range(seg.words):
        where = layout.locate(seg.base + word)
        assert where is not None and where.tensor == "weight" and where.word_index == word
        assert len(where.lanes) == cfg.tile_ic
        padding_words += all(lane.padding for lane in where.lanes)
        for lane in where.lanes:
            value = lanes[word, lane.lane]
            if lane.padding:
                padding_lanes += 1
                assert value == 0
            else:
                assert value == w[lane.oc, lane.ic, where.kh, where.kw]
                assert layout.address_of(0, "weight", lane.oc, lane.ic, where.kh,
                                         where.kw) == (seg.base + word, lane.lane)
    assert (padding_words, padding_lanes) == (seg.padding_words, seg.padding_lanes)

    bias = layout.segment(0, "bias")
    b = np.arange(1, shape.out_channels + 1)
    blanes = np.ascontiguousarray(layout.pack_biases(0, b)).view("<i2").reshape(bias.words, -1)
    for word in range(bias.words):
        where = layout.locate(bias.base + word)
        for lane in where.lanes:
            assert blanes[word, lane.lane] == (0 if lane.padding else b[lane.oc])


@SETTINGS
@given(net=networks(), cfg=configs(), data=st.data())
def test_address_of_and_locate_are_inverse(net, cfg, data):
    layout = Layout.from_shapes(net, cfg)
    for _ in range(10):
        i = data.draw(st.integers(0, len(net) - 1))
        shape = net[i]
        oc_n, ic_n, kh_n, kw_n = shape.dims
        tensor = data.draw(st.sampled_from(TENSORS))
        oc = data.draw(st.integers(0, oc_n - 1))
        ic = data.draw(st.integers(0, ic_n - 1))
        kh = data.draw(st.integers(0, kh_n - 1))
        kw = data.draw(st.integers(0, kw_n - 1))
        address, lane = layout.address_of(shape.name, tensor, oc, ic, kh, kw)
        where = layout.locate(address)
        assert where is not None
        assert (where.layer, where.name, where.tensor) == (i, shape.name, tensor)
        assert where.region == REGIONS[TENSORS.index(tensor)]
        seg = layout.segment(i, tensor)
        assert seg.base <= address < seg.end and where.word_index == address - seg.base
        if tensor == "weight":
            assert (where.kh, where.kw) == (kh, kw)
            assert where.lanes[lane].oc == oc and not where.lanes[lane].padding
            assert where.lanes[lane].ic == (0 if shape.kind == "depthwise" else ic)
        elif tensor == "bias":
            assert where.lanes[lane].oc == oc and not where.lanes[lane].padding
        elif shape.per_channel:
            assert where.field == "shift" and where.lanes[lane].oc == oc
            assert layout.locate(address + math.ceil(oc_n / cfg.lanes)).field == "weight_exp"
        else:
            assert where.field == "control" and lane == 0
            assert [layout.locate(address + k).field for k in (1, 2)] == ["channels", "kernel"]
    # and back: every stored address locates to a segment that address_of reaches
    address = data.draw(st.integers(0, layout.depth + 3))
    where = layout.locate(address)
    inside = [s for s in layout.segments if s.base <= address < s.end]
    assert (where is None) == (not inside)


@SETTINGS
@given(net=networks(), cfg=configs())
def test_segments_are_aligned_ordered_and_never_overlap(net, cfg):
    layout = Layout.from_shapes(net, cfg)
    assert [r.name for r in layout.regions] == list(REGIONS)
    previous_end = 0
    for region, tensor in zip(layout.regions, TENSORS, strict=True):
        assert region.base % cfg.region_align == 0
        assert previous_end <= region.base < previous_end + cfg.region_align
        segs = [s for s in layout.segments if s.region == region.name]
        assert [s.layer for s in segs] == list(range(len(net)))  # execution order
        assert all(s.tensor == tensor for s in segs)
        cursor = region.base
        for s in segs:
            assert s.base % cfg.segment_align == 0
            assert cursor <= s.base < cursor + cfg.segment_align
            cursor = s.end
        assert region.end == cursor and region.used == sum(s.words for s in segs)
        previous_end = region.end
    assert layout.depth == previous_end == layout.regions[-1].end
    ordered = sorted(layout.segments, key=lambda s: s.base)
    assert ordered == layout.segments
    for a, b in zip(ordered, ordered[1:], strict=False):
        assert a.end <= b.base
    assert layout.addr_bits >= 1 and 2 ** layout.addr_bits >= layout.depth
    assert layout.addr_bits == 1 or 2 ** (layout.addr_bits - 1) < layout.depth


@SETTINGS
@given(layer=st.integers(0, 255), kind=st.integers(0, 2), count=st.integers(0, 2**24 - 1))
def test_header_round_trip(layer, kind, count):
    word = header_word(layer, kind, count)
    assert word >> 56 == 0xA5 and word & 0xFFFF == 0 and (word >> 40) & 0xF == 0
    assert parse_header(word) == (layer, kind, count)


# ---------------------------------------------------------------- the worked example


def example_layout() -> Layout:
    return Layout.from_shapes([LayerShape("conv", "regular", (10, 3, 3, 3)),
                               LayerShape("dw", "depthwise", (10, 1, 3, 3))])


def test_worked_example_of_docs_layout_md():
    layout = example_layout()
    o, i, kh, kw = np.meshgrid(range(10), range(3), range(3), range(3), indexing="ij")
    conv = layout.pack_weights("conv", 16 * i + o - 2 * (3 * kh + kw))
    hexes = [f"{int(v):016x}" for v in conv]
    assert len(hexes) == 144
    assert hexes[0:3] == ["0000000000201000", "0000000000211101", "0000000000221202"]
    assert hexes[7:10] == ["0000000000271707", "00000000001e0efe", "00000000001f0fff"]
    assert hexes[72:75] == ["0000000000281808", "0000000000291909", "0000000000000000"]
    assert hexes[71] == "00000000001707f7"
    assert set(hexes[74:80]) == {"0" * 16}
    c, _, kh, kw = np.meshgrid(range(10), range(1), range(3), range(3), indexing="ij")
    dw = [f"{int(v):016x}" for v in layout.pack_weights("dw", c + 16 * kh + 4 * kw)]
    assert len(dw) == 18
    assert dw[:2] == ["0706050403020100", "0b0a090807060504"]
    assert dw[9:11] == ["0000000000000908", "0000000000000d0c"]
    bias = [f"{int(v):016x}" for v in layout.pack_biases("conv", np.arange(10) * 1000 - 4000)]
    assert bias == ["fc18f830f448f060", "0bb807d003e80000", "0000000013880fa0", "0" * 16]
    record = RecordFields("regular", True, 64, 0, -5, -4, (8,), (-7,), padding=(1, 1))
    assert [f"{int(v):016x}" for v in layout.pack_record("conv", record)] == [
        "00fcf9fb01004008", "000100000300000a", "0101010101010303"]
    assert f"{header_word(0, 0, 144):016x}" == "a500000000900000"
    assert f"{header_word(0, 1, 4):016x}" == "a500100000040000"
    assert f"{header_word(1, 0, 18):016x}" == "a501000000120000"
    table = [(s.name, s.tensor, s.base, s.words, s.padding_words, s.padding_lanes)
             for s in layout.segments]
    assert table == [("conv", "weight", 0, 144, 54, 882), ("dw", "weight", 144, 18, 0, 54),
                     ("conv", "bias", 4096, 4, 1, 6), ("dw", "bias", 4104, 4, 1, 6),
                     ("conv", "record", 8192, 3, 0, 0), ("dw", "record", 8200, 3, 0, 0)]
    assert layout.depth == 8203
    where = layout.locate(8)
    assert (where.oc_tile, where.ic_tile, where.kh, where.kw) == (0, 0, 0, 1)
    assert [(lane.lane, lane.oc, lane.ic, lane.padding) for lane in where.lanes[2:4]] == [
        (2, 0, 2, False), (3, 0, 3, True)]
    assert layout.address_of("conv", "weight", 9, 2, 0, 0) == (73, 2)
    assert layout.locate(162) is None and layout.locate(4100) is None
    assert layout.locate(8203) is None
    assert [layout.locate(8192 + k).field for k in range(3)] == ["control", "channels",
                                                                 "kernel"]

    per_channel = Layout.from_shapes([LayerShape("conv", "regular", (10, 3, 3, 3)),
                                      LayerShape("dw", "depthwise", (10, 1, 3, 3), True)])
    w_exp = tuple(range(-7, 3))  # n = log2(2^-4 / (2^-4 * 2^e)) = -e
    record = RecordFields("depthwise", True, 0, 0, -4, -4, tuple(-e for e in w_exp), w_exp,
                          groups=10, padding=(1, 1))
    assert [f"{int(v):016x}" for v in per_channel.pack_record("dw", record)] == [
        "00fc00fc03000000", "000a00000a00000a", "0101010101010303", "0001020304050607",
        "000000000000feff", "00fffefdfcfbfaf9", "0000000000000201"]
    assert per_channel.locate(8200 + 3).field == "shift"
    assert per_channel.locate(8200 + 5).field == "weight_exp"


def test_grouped_worked_example_of_docs_layout_md():
    """A grouped conv [6, 4, 3, 3], groups 2 (8 input channels, 3 outputs per group),
    stride 2, padding 1: tiled like a regular conv over its [6, 4] weight matrix."""
    layout = Layout.from_shapes([LayerShape("grp", "grouped", (6, 4, 3, 3))])
    o, i, kh, kw = np.meshgrid(range(6), range(4), range(3), range(3), indexing="ij")
    words = [f"{int(v):016x}" for v in layout.pack_weights("grp", 16 * o + i - 4 * (3 * kh + kw))]
    assert len(words) == 72 and layout.segment("grp", "weight").padding_words == 18
    assert words[0:2] == ["0000000003020100", "0000000013121110"]
    assert words[5] == "0000000053525150"
    assert words[6:8] == ["0" * 16, "0" * 16]
    assert words[8] == "00000000fffefdfc"
    assert words[71] == "000000000000000000"[-16:]
    assert words[69] == "0000000033323130"
    where = layout.locate(3)
    assert [(lane.oc, lane.ic, lane.padding) for lane in where.lanes[3:5]] == [
        (3, 3, False), (3, 4, True)]
    record = RecordFields("grouped", False, 3, 5, -4, -3, (6,), (-7,), groups=2,
                          stride=(2, 2), padding=(1, 1))
    assert [f"{int(v):016x}" for v in layout.pack_record("grp", record)] == [
        "00fdf9fc08050306", "0002000008000006", "0101010102020303"]
    back = layout.unpack_record("grp", layout.pack_record("grp", record))
    assert (back.groups, back.in_channels, back.out_channels, back.kernel) == (2, 8, 6, (3, 3))


def test_kw_kh_order_puts_kh_innermost():
    layout = Layout.from_shapes([LayerShape("c", "regular", (1, 1, 2, 3))],
                                LayoutConfig(kernel_order="kw_kh", tile_oc=1))
    w = np.arange(6).reshape(1, 1, 2, 3)  # w[kh, kw] = 3 * kh + kw
    assert [int(v) for v in layout.pack_weights(0, w)] == [0, 3, 1, 4, 2, 5]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("kwargs, text", [
    ({"word_bits": 4}, "word_bits must be an integer >= 8"),
    ({"word_bits": 36}, "multiple of 8 in [8, 1024]"),
    ({"word_bits": 1032}, "multiple of 8 in [8, 1024]"),
    ({"tile_ic": 0}, "tile_ic must be an integer >= 1"),
    ({"tile_dw": 5000}, "tile_dw must be at most 4096"),
    ({"bias_bits": 8}, "bias_bits must be 16 or 32"),
    ({"lane_order": "middle"}, "lane_order must be one of little, big"),
    ({"lane_order": "big", "word_bits": 24}, "lane_order big needs bias_bits (16) to divide"),
    ({"record_format": "dense"}, "record_format must be one of word_aligned, packed"),
    ({"region_order": ("weights", "biases")}, "region_order must be a permutation"),
    ({"weight_loop_order": ("oc_tile", "ic_tile", "kh", "kw", "oc", "oc")},
     "weight_loop_order must be a permutation"),
    ({"depthwise_loop_order": ("c", "kh", "kw")}, "depthwise_loop_order must be a permutation"),
    ({"kernel_order": "kw_kh", "weight_loop_order": ("oc_tile", "ic_tile", "kh", "kw", "oc",
                                                     "ic")}, "contradicts weight_loop_order"),
    ({"address_unit": "bit"}, "address_unit must be one of word, byte"),
    ({"memory_depth": 0}, "memory_depth must be an integer >= 1"),
    ({"header": {"bits": 32}}, "must lie inside the 32-bit header"),
    ({"tile_oc": 0}, "tile_oc must be an integer >= 1"),
    ({"kernel_order": "hw"}, "kernel_order must be one of kh_kw, kw_kh"),
    ({"segment_align": 8, "region_align": 12}, "multiple of segment_align"),
    ({"segment_align": True}, "segment_align must be an integer"),
])
def test_bad_config_is_a_one_line_layout_error(kwargs, text):
    with pytest.raises(LayoutError) as info:
        LayoutConfig(**kwargs)
    assert text in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_shapes_values_and_coordinates_are_layout_errors():
    with pytest.raises(LayoutError, match="1 input channel per group"):
        LayerShape("d", "depthwise", (8, 2, 3, 3))
    with pytest.raises(LayoutError, match="1x1 kernel"):
        LayerShape("p", "pointwise", (8, 2, 3, 3))
    with pytest.raises(LayoutError, match="2 positive dimensions"):
        LayerShape("fc", "linear", (8, 2, 1, 1))
    with pytest.raises(LayoutError, match="kind 'dense'"):
        LayerShape("x", "dense", (8, 2))
    with pytest.raises(LayoutError, match="unique"):
        Layout.from_shapes([LayerShape("a", "linear", (2, 2))] * 2)
    with pytest.raises(LayoutError, match="at least one"):
        Layout.from_shapes([])
    layout = example_layout()
    with pytest.raises(LayoutError, match="shape"):
        layout.pack_weights("conv", np.zeros((10, 3, 3)))
    with pytest.raises(LayoutError, match="outside"):
        layout.pack_weights("conv", np.full((10, 3, 3, 3), 128))
    with pytest.raises(LayoutError, match="outside"):
        layout.pack_biases("conv", np.full(10, 40000))
    with pytest.raises(LayoutError, match="unknown layer"):
        layout.segment("nope", "weight")
    with pytest.raises(LayoutError, match="oc is 10"):
        layout.address_of("conv", "weight", 10)
    with pytest.raises(LayoutError, match="expected 144"):
        layout.unpack_weights("conv", np.zeros(143, dtype=np.uint64))
    words = layout.pack_weights("conv", np.ones((10, 3, 3, 3), dtype=np.int64))
    words[0] |= np.uint64(1) << np.uint64(56)  # lane 7 of word 0 is padding (ic 7 >= 3)
    with pytest.raises(LayoutError, match="padding lane"):
        layout.unpack_weights("conv", words)
    assert layout.unpack_weights("conv", words, check_padding=False).sum() == 270
    record = RecordFields("regular", False, 300, 0, 0, 0, (1,), (0,))
    with pytest.raises(LayoutError, match="input zero point is 300"):
        layout.pack_record("conv", record)
    bad = layout.pack_record("conv", RecordFields("regular", False, 0, 0, 0, 0, (1,), (0,)))
    bad[0] |= np.uint64(1) << np.uint64(60)
    with pytest.raises(LayoutError, match="reserved"):
        layout.unpack_record("conv", bad)
    with pytest.raises(LayoutError, match="magic"):
        parse_header(0x5A00000000010000)
    with pytest.raises(LayoutError, match="24 bits"):
        header_word(0, 0, 1 << 24)


# ---------------------------------------------------------------- record fields at their limits


def _record(shape: LayerShape, **kw) -> RecordFields:
    base = {"kind": shape.kind, "relu": False, "input_zero_point": 0, "output_zero_point": 0,
            "input_exp": 0, "output_exp": 0, "shift": (0,), "weight_exp": (0,)}
    return RecordFields(**(base | kw))


#: (field, shape, config, record overrides) at a limit (packs and unpacks to the same
#: record) and one past it (a one-line LayoutError naming the layer and the field).
#: Channel counts at the 24-bit limit need a layout whose weight segment still fits
#: the header's 24-bit word count: depthwise (OC lanes per word) or tile_oc 1.
_MAX24, _MAX16 = (1 << 24) - 1, (1 << 16) - 1
_TILE1 = LayoutConfig(tile_oc=1)
_CONV = LayerShape("c", "regular", (1, 1, 1, 1))
RECORD_LIMITS = [
    # field, limit case (shape, config, overrides), past case (shape, config, overrides)
    ("shift", (_CONV, None, {"shift": (127,)}), (_CONV, None, {"shift": (128,)})),
    ("shift", (_CONV, None, {"shift": (-128,)}), (_CONV, None, {"shift": (-129,)})),
    ("weight_exp", (_CONV, None, {"weight_exp": (127,)}), (_CONV, None, {"weight_exp": (128,)})),
    ("weight_exp", (_CONV, None, {"weight_exp": (-128,)}),
     (_CONV, None, {"weight_exp": (-129,)})),
    ("input zero point", (_CONV, None, {"input_zero_point": 255}),
     (_CONV, None, {"input_zero_point": 256})),
    ("input zero point", (_CONV, None, {"input_zero_point": 0}),
     (_CONV, None, {"input_zero_point": -1})),
    ("output zero point", (_CONV, None, {"output_zero_point": 255}),
     (_CONV, None, {"output_zero_point": 256})),
    ("output zero point", (_CONV, None, {"output_zero_point": 0}),
     (_CONV, None, {"output_zero_point": -1})),
    ("input_exp", (_CONV, None, {"input_exp": 127}), (_CONV, None, {"input_exp": 128})),
    ("input_exp", (_CONV, None, {"input_exp": -128}), (_CONV, None, {"input_exp": -129})),
    ("output_exp", (_CONV, None, {"output_exp": 127}), (_CONV, None, {"output_exp": 128})),
    ("output_exp", (_CONV, None, {"output_exp": -128}), (_CONV, None, {"output_exp": -129})),
    ("out_channels", (LayerShape("d", "depthwise", (_MAX24, 1, 1, 1)), None, {}),
     (LayerShape("d", "depthwise", (_MAX24 + 1, 1, 1, 1)), None, {})),
    ("in_channels", (LayerShape("fc", "linear", (1, _MAX24)), _TILE1, {}),
     (LayerShape("fc", "linear", (1, _MAX24 + 1)), _TILE1, {})),
    ("in_channels", (LayerShape("g", "grouped", (2, (_MAX24 - 1) // 2, 1, 1)), _TILE1,
                     {"groups": 2}),
     (LayerShape("g", "grouped", (2, (_MAX24 + 1) // 2, 1, 1)), _TILE1, {"groups": 2})),
    ("groups", (LayerShape("d", "depthwise", (_MAX16, 1, 1, 1)), None, {"groups": _MAX16}),
     (LayerShape("d", "depthwise", (_MAX16 + 1, 1, 1, 1)), None, {"groups": _MAX16 + 1})),
    ("groups", (LayerShape("g", "grouped", (_MAX16, 2, 1, 1)), None, {"groups": _MAX16}),
     (LayerShape("g", "grouped", (_MAX16 + 1, 2, 1, 1)), None, {"groups": _MAX16 + 1})),
    ("kernel_h", (LayerShape("k", "regular", (1, 1, 255, 1)), None, {}),
     (LayerShape("k", "regular", (1, 1, 256, 1)), None, {})),
    ("kernel_w", (LayerShape("k", "regular", (1, 1, 1, 255)), None, {}),
     (LayerShape("k", "regular", (1, 1, 1, 256)), None, {})),
    ("kernel_h", (LayerShape("k", "depthwise", (8, 1, 255, 255)), None, {"groups": 8}),
     (LayerShape("k", "depthwise", (8, 1, 256, 255)), None, {"groups": 8})),
    *[(f"{name}_{hw}", (_CONV, None, {name: tuple(v if j == k else lo for j in range(2))}),
       (_CONV, None, {name: tuple(past if j == k else lo for j in range(2))}))
      for name, lo in (("stride", 1), ("padding", 0), ("dilation", 1))
      for k, hw in enumerate("hw") for v, past in ((255, 256), (lo, lo - 1))],
]


@pytest.mark.parametrize(("field", "limit", "past"), RECORD_LIMITS,
                         ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(RECORD_LIMITS)])
def test_every_record_field_at_its_limit_and_one_past(field, limit, past):
    shape, cfg, kw = limit
    layout = Layout.from_shapes([shape], cfg)
    record = _record(shape, **kw)
    words = layout.pack_record(0, record)
    back = layout.unpack_record(0, words)
    assert back.kind == record.kind and back.shift == record.shift
    for name in ("groups", "stride", "padding", "dilation", "input_zero_point",
                 "output_zero_point", "input_exp", "output_exp", "weight_exp"):
        assert getattr(back, name) == getattr(record, name), name
    oc, ic, kh, kw_ = shape.dims
    assert (back.out_channels, back.in_channels, back.kernel) == (oc, ic * record.groups,
                                                                  (kh, kw_))
    shape, cfg, kw = past
    with pytest.raises(LayoutError) as info:
        Layout.from_shapes([shape], cfg).pack_record(0, _record(shape, **kw))
    text = str(info.value)
    assert "\n" not in text and f"layer {shape.name!r}" in text and field in text, text


def test_record_limits_cover_every_field():
    """The table above names every control and geometry field (a new field needs a row)."""
    from cosim.golden.layout import CONTROL_FIELDS, GEOMETRY_FIELDS

    named = {f.replace(" ", "_") for f, _, _ in RECORD_LIMITS}
    want = (set(CONTROL_FIELDS) - {"relu", "kind"}) | set(GEOMETRY_FIELDS)
    assert want <= named, want - named


@pytest.mark.parametrize("kind", LAYER_KINDS)
def test_every_kind_code_round_trips_and_a_wrong_code_is_refused(kind):
    shape = {"linear": LayerShape("x", "linear", (4, 4)),
             "depthwise": LayerShape("x", "depthwise", (4, 1, 3, 3)),
             "pointwise": LayerShape("x", "pointwise", (4, 4, 1, 1)),
             "grouped": LayerShape("x", "grouped", (4, 2, 3, 3)),
             "regular": LayerShape("x", "regular", (4, 4, 3, 3))}[kind]
    layout = Layout.from_shapes([shape])
    groups = {"depthwise": 4, "grouped": 2}.get(kind, 1)
    for relu in (False, True):
        words = layout.pack_record(0, _record(shape, relu=relu, groups=groups))
        assert (int(words[0]) >> 25) & 7 == LAYER_KINDS.index(kind)
        assert layout.unpack_record(0, words).relu is relu
    for code in range(8):
        if code == LAYER_KINDS.index(kind):
            continue
        bad = words.copy()
        bad[0] = (int(bad[0]) & ~(7 << 25)) | code << 25
        with pytest.raises(LayoutError, match=f"kind code {code} disagrees"):
            layout.unpack_record(0, bad)


@pytest.mark.parametrize(("shape", "kw", "text"), [
    (LayerShape("r", "regular", (4, 2, 3, 3)), {"groups": 2}, "a grouped conv is kind 'grouped'"),
    (LayerShape("p", "pointwise", (4, 2, 1, 1)), {"groups": 2}, "groups 1"),
    (LayerShape("fc", "linear", (4, 2)), {"groups": 2}, "groups 1"),
    (LayerShape("g", "grouped", (4, 2, 3, 3)), {"groups": 1}, "groups > 1"),
    (LayerShape("g", "grouped", (4, 2, 3, 3)), {"groups": 3}, "does not divide"),
    (LayerShape("d", "depthwise", (4, 1, 3, 3)), {"groups": 3}, "does not divide"),
    (LayerShape("g", "grouped", (4, 2, 3, 3)), {"groups": 2, "in_channels": 2}, "in_channels"),
    (LayerShape("c", "regular", (4, 2, 3, 3)), {"out_channels": 5}, "out_channels"),
    (LayerShape("c", "regular", (4, 2, 7, 7)), {"kernel": (3, 3)}, "kernel"),
    (LayerShape("fc", "linear", (4, 2)), {"stride": (2, 2)}, "a linear layer has stride"),
    (LayerShape("c", "regular", (4, 2, 3, 3)), {"stride": (2,)}, "two integers"),
    (LayerShape("c", "regular", (4, 2, 3, 3)), {"groups": True}, "groups is True"),
])
def test_record_geometry_that_disagrees_with_the_layout_is_refused(shape, kw, text):
    layout = Layout.from_shapes([shape])
    with pytest.raises(LayoutError) as info:
        layout.pack_record(0, _record(shape, **kw))
    assert text in str(info.value) and f"layer {shape.name!r}" in str(info.value)


def test_a_channel_multiplier_conv_may_be_grouped_or_depthwise():
    """groups == in channels < out channels (weight [OC, 1, KH, KW]): quant.graph calls it
    grouped, quant.package.conv_kind depthwise; the layout takes either (the record's
    kind and groups tell the datapath which tiling it reads)."""
    for kind in ("grouped", "depthwise"):
        layout = Layout.from_shapes([LayerShape("m", kind, (8, 1, 3, 3))])
        back = layout.unpack_record(0, layout.pack_record(0, _record(layout.layers[0],
                                                                     groups=4)))
        assert (back.kind, back.groups, back.in_channels, back.out_channels) == (kind, 4, 4, 8)


@pytest.mark.parametrize(("shape", "cfg", "ok"), [
    # the largest weight segment the 24-bit header count allows (tile_oc 1: one word
    # per 8 input channels), and one word more
    (LayerShape("c", "pointwise", (1, 8 * _MAX24, 1, 1)), _TILE1, True),
    (LayerShape("c", "pointwise", (1, 8 * _MAX24 + 1, 1, 1)), _TILE1, False),
    # 2048 channels: a 5x5 regular conv fits (13.1M words), 7x7 does not (25.7M)
    (LayerShape("c", "regular", (2048, 2048, 5, 5)), None, True),
    (LayerShape("c", "regular", (2048, 2048, 7, 7)), None, False),
    (LayerShape("c", "regular", (512, 512, 11, 11)), None, True),
    (LayerShape("c", "grouped", (2048, 64, 11, 11)), None, True),
    (LayerShape("c", "depthwise", (2048, 1, 11, 11)), None, True),
])
def test_the_segment_word_count_limit(shape, cfg, ok):
    if ok:
        words = Layout.from_shapes([shape], cfg).segment(0, "weight").words
        assert words <= _MAX24
        assert words == _MAX24 or shape.dims[0] != 1
    else:
        with pytest.raises(LayoutError, match="24-bit count allows 16777215"):
            Layout.from_shapes([shape], cfg)


def test_header_layer_index_limit():
    shapes = [LayerShape(f"l{i}", "linear", (1, 1)) for i in range(256)]
    layout = Layout.from_shapes(shapes, LayoutConfig(region_align=8))
    assert layout.segment(255, "record").layer == 255
    assert header_word(255, 2, 3) >> 48 & 0xFF == 255
    with pytest.raises(LayoutError, match="allows 256"):
        Layout.from_shapes([*shapes, LayerShape("l256", "linear", (1, 1))])
    with pytest.raises(LayoutError, match="layer 256 does not fit in 8 bits"):
        header_word(256, 0, 1)


# ---------------------------------------------------------------- the generalized layout
#
# Systematic (not sampled) coverage of every layout option of the accelerator file: an
# independent reference (the loop nest of the loop order written out with
# itertools.product, and the lane bit formula of the contract) gives the words; the
# packers must equal it, and every parameter of every small layer must be found at
# place_of / address_of, locate must invert it, padding lanes must be zero.

SMALL = [
    LayerShape("reg", "regular", (5, 3, 3, 2), per_channel=True),
    LayerShape("dw", "depthwise", (7, 1, 3, 3)),
    LayerShape("pw", "pointwise", (9, 6, 1, 1), per_channel=True),
    LayerShape("fc", "linear", (5, 11), per_channel=True),
    LayerShape("grp", "grouped", (6, 3, 2, 2)),
]
WORD_BITS = (8, 16, 24, 32, 40, 64, 128, 1024)
TILES = (1, 3, 8, 16)


def ref_elements(shape: LayerShape, cfg: LayoutConfig, w: np.ndarray
                 ) -> list[tuple[int, tuple[int, int, int, int] | None]]:
    """(value, (oc, ic, kh, kw) or None for padding) of every weight element, in stream
    order: the nested loops of the loop order, outer first."""
    import itertools

    oc_n, ic_n, kh_n, kw_n = shape.dims
    w4 = w.reshape(oc_n, ic_n, kh_n, kw_n)
    if shape.kind == "depthwise":
        ext = {"c_tile": math.ceil(oc_n / cfg.tile_dw), "c": cfg.tile_dw, "kh": kh_n,
               "kw": kw_n}
        order = cfg.depthwise_loop_order
    else:
        ext = {"oc_tile": math.ceil(oc_n / cfg.tile_oc), "oc": cfg.tile_oc,
               "ic_tile": math.ceil(ic_n / cfg.tile_ic), "ic": cfg.tile_ic, "kh": kh_n,
               "kw": kw_n}
        order = cfg.weight_loop_order
    out = []
    for idx in itertools.product(*(range(ext[n]) for n in order)):
        c = dict(zip(order, idx, strict=True))
        if shape.kind == "depthwise":
            oc, ic = c["c_tile"] * cfg.tile_dw + c["c"], 0
        else:
            oc, ic = c["oc_tile"] * cfg.tile_oc + c["oc"], c["ic_tile"] * cfg.tile_ic + c["ic"]
        real = oc < oc_n and ic < ic_n
        out.append((int(w4[oc, ic, c["kh"], c["kw"]]) if real else 0,
                    (oc, ic, c["kh"], c["kw"]) if real else None))
    return out


def ref_words(values: list[int], bits: int, cfg: LayoutConfig) -> list[int]:
    """Elements of `bits` bits packed into words by the contract's lane formula, zero
    padded: little: element j of the dense bit stream at bits [(j+1)e-1:je]; big:
    element j of a word at bits [W-1-je : W-(j+1)e]."""
    W, mask = cfg.word_bits, (1 << bits) - 1
    n = math.ceil(len(values) * bits / W)
    if cfg.lane_order == "little":
        stream = sum((v & mask) << (k * bits) for k, v in enumerate(values))
        return [(stream >> (i * W)) & ((1 << W) - 1) for i in range(n)]
    per = W // bits
    return [sum((values[i * per + j] & mask) << (W - (j + 1) * bits)
                for j in range(per) if i * per + j < len(values)) for i in range(n)]


def ref_record(shape: LayerShape, r: RecordFields, cfg: LayoutConfig) -> list[int]:
    pc = shape.per_channel
    control = ((0 if pc else r.shift[0] & 0xFF) | r.input_zero_point << 8
               | r.output_zero_point << 16 | int(r.relu) << 24
               | LAYER_KINDS.index(shape.kind) << 25 | (r.input_exp & 0xFF) << 32
               | (0 if pc else r.weight_exp[0] & 0xFF) << 40 | (r.output_exp & 0xFF) << 48)
    oc, ic, kh, kw = shape.dims
    channels = oc | (ic * r.groups) << 24 | r.groups << 48
    kernel = lanes_to_int([kh, kw, *r.stride, *r.padding, *r.dilation], 8)
    parts = [control, channels, kernel]
    W = cfg.word_bits
    if cfg.record_format == "packed":
        seq = [b for v in parts for b in v.to_bytes(8, "little")]
        if pc:
            seq += [v & 0xFF for v in (*r.shift, *r.weight_exp)]
        return ref_words(seq, 8, cfg)
    pw = max(1, math.ceil(64 / W))
    words = [(v >> (k * W)) & ((1 << W) - 1) for v in parts for k in range(pw)]
    if pc:
        for values in (r.shift, r.weight_exp):
            words += ref_words(list(values), 8, cfg)
    return words


def value_at(words: list[int], base: int, place, cfg: LayoutConfig) -> int:
    """The signed element at a place, read from the segment's words (bit arithmetic on the
    concatenated words: an element may straddle two words)."""
    stream = sum(w << (k * cfg.word_bits) for k, w in enumerate(words))
    raw = (stream >> ((place.address - base) * cfg.word_bits + place.lsb)) & (
        (1 << place.bits) - 1)
    return raw - (1 << place.bits) if raw >> (place.bits - 1) else raw


def check_layout(cfg: LayoutConfig, shapes: list[LayerShape] = SMALL, seed: int = 0,
                 locate_all: bool = True) -> None:
    """Every check of this section for one config (AssertionError on a failure)."""
    layout = Layout.from_shapes(shapes, cfg)
    rng = np.random.default_rng(seed)
    for i, shape in enumerate(shapes):
        oc_n, ic_n, kh_n, kw_n = shape.dims
        # weights: reference words, counts, every parameter at its place, locate
        w = rng.integers(-128, 128, shape.weight_shape)
        words = layout.pack_weights(i, w)
        ints = as_ints(words, cfg)
        elems = ref_elements(shape, cfg, w)
        assert ints == ref_words([v for v, _ in elems], 8, cfg), (shape.name, "weights")
        seg = layout.segment(i, "weight")
        assert seg.words == math.ceil(len(elems) / cfg.word_bytes)
        assert seg.padding_lanes == seg.words * cfg.word_bytes - sum(
            c is not None for _, c in elems)
        np.testing.assert_array_equal(layout.unpack_weights(i, words), w)
        w4 = w.reshape(oc_n, ic_n, kh_n, kw_n)
        for oc in range(oc_n):
            for ic in range(ic_n):
                for kh in range(kh_n):
                    for kw in range(kw_n):
                        p = layout.place_of(i, "weight", oc, ic, kh, kw)
                        assert value_at(ints, seg.base, p, cfg) == w4[oc, ic, kh, kw]
                        assert layout.address_of(i, "weight", oc, ic, kh, kw) == (
                            p.address, p.lane)
                        if locate_all:
                            where = layout.locate(p.address)
                            lane = next(x for x in where.lanes if x.lsb == p.lsb)
                            assert (lane.oc, lane.ic, lane.kh, lane.kw, lane.padding) == (
                                oc, ic, kh, kw, False)
        if locate_all:
            seen = 0
            for a in range(seg.base, seg.end):
                where = layout.locate(a)
                assert where.tensor == "weight" and where.layer == i
                for lane in where.lanes:
                    if lane.padding:
                        assert value_at(ints, seg.base, _place(a, lane), cfg) == 0
                    seen += 1
            assert seen == len(elems)
        # biases
        hi = 1 << (cfg.bias_bits - 1)
        b = rng.integers(-hi, hi, oc_n)
        words = layout.pack_biases(i, b)
        ints = as_ints(words, cfg)
        padded = [*b.tolist(), *[0] * (math.ceil(oc_n / cfg.tile_oc) * cfg.tile_oc - oc_n)]
        assert ints == ref_words(padded, cfg.bias_bits, cfg), (shape.name, "biases")
        bseg = layout.segment(i, "bias")
        assert bseg.words == math.ceil(len(padded) * cfg.bias_bits / cfg.word_bits)
        np.testing.assert_array_equal(layout.unpack_biases(i, words), b)
        for oc in range(oc_n):
            p = layout.place_of(i, "bias", oc)
            assert value_at(ints, bseg.base, p, cfg) == b[oc]
            lane = next(x for x in layout.locate(p.address).lanes if x.lsb == p.lsb)
            assert (lane.oc, lane.padding, lane.bits) == (oc, False, cfg.bias_bits)
        for a in range(bseg.base, bseg.end):
            for lane in layout.locate(a).lanes:
                if lane.padding and (a - bseg.base) * cfg.word_bits + lane.lsb + lane.bits <= (
                        bseg.words * cfg.word_bits):
                    assert value_at(ints, bseg.base, _place(a, lane), cfg) == 0
        # record
        r = random_record(shape, seed + i)
        words = layout.pack_record(i, r)
        ints = as_ints(words, cfg)
        assert ints == ref_record(shape, r, cfg), (shape.name, "record")
        rseg = layout.segment(i, "record")
        back = layout.unpack_record(i, words)
        assert (back.shift, back.weight_exp, back.stride, back.groups) == (
            r.shift, r.weight_exp, r.stride, r.groups)
        if shape.per_channel:
            for field, values in (("shift", r.shift), ("weight_exp", r.weight_exp)):
                for oc in range(oc_n):
                    p = layout.place_of(i, "record", oc, field=field)
                    assert value_at(ints, rseg.base, p, cfg) == values[oc]
                    where = layout.locate(p.address)
                    lane = next(x for x in where.lanes if x.lsb == p.lsb)
                    assert lane.oc == oc and not lane.padding
        else:
            p = layout.place_of(i, "record", 0)
            assert value_at(ints, rseg.base, p, cfg) == r.shift[0]
            p = layout.place_of(i, "record", 0, field="weight_exp")
            assert value_at(ints, rseg.base, p, cfg) == r.weight_exp[0]
    # placement: regions in region_order, aligned; segments aligned, in layer order
    bases = {r.name: r.base for r in layout.regions}
    assert sorted(bases, key=bases.get) == list(cfg.region_order)
    prev = 0
    for name in cfg.region_order:
        reg = layout.region(name)
        assert reg.base % cfg.region_align == 0 and reg.base >= prev
        segs = [s for s in layout.segments if s.region == name]
        assert [s.layer for s in segs] == list(range(len(shapes)))
        for a, c in zip(segs, segs[1:], strict=False):
            assert c.base >= a.end and c.base % cfg.segment_align == 0
        prev = reg.end
    assert layout.end == prev and layout.depth == (cfg.memory_depth or prev)
    assert layout.mem_addr_bits == (layout.addr_bits if cfg.address_unit == "word" else max(
        1, (layout.depth * cfg.word_bytes - 1).bit_length()))
    # headers: words, value and fields round-trip
    from cosim.golden.image import header_value, header_words

    for i in range(len(shapes)):
        for kind in range(3):
            count = layout.segment(i, TENSORS[kind]).words
            h = header_word(i, kind, count, cfg.header)
            hw = header_words(h, cfg)
            assert len(hw) == math.ceil(cfg.header.bits / cfg.word_bits)
            assert header_value(hw, cfg) == h
            assert parse_header(h, cfg.header) == (i, kind, count)


def _place(address: int, lane):
    from cosim.golden.layout import ElementPlace

    return ElementPlace(address, lane.lane, lane.lsb, lane.bits)


@pytest.mark.parametrize("bits", WORD_BITS)
@pytest.mark.parametrize("tile_oc", TILES)
@pytest.mark.parametrize("tile_ic", TILES)
def test_every_word_width_and_tile(bits, tile_oc, tile_ic):
    check_layout(LayoutConfig(word_bits=bits, tile_oc=tile_oc, tile_ic=tile_ic,
                              tile_dw=tile_ic, segment_align=2, region_align=16),
                 locate_all=bits <= 128)


@pytest.mark.parametrize("bits", WORD_BITS)
@pytest.mark.parametrize("lane_order", ["little", "big"])
@pytest.mark.parametrize("bias_bits", [16, 32])
@pytest.mark.parametrize("record_format", ["word_aligned", "packed"])
def test_every_word_width_lane_order_bias_width_and_record_format(bits, lane_order, bias_bits,
                                                                  record_format):
    if lane_order == "big" and bits % bias_bits:
        with pytest.raises(LayoutError, match="lane_order big needs bias_bits"):
            LayoutConfig(word_bits=bits, lane_order=lane_order, bias_bits=bias_bits)
        return
    check_layout(LayoutConfig(word_bits=bits, tile_oc=3, tile_ic=8, tile_dw=3,
                              lane_order=lane_order, bias_bits=bias_bits,
                              record_format=record_format, segment_align=1, region_align=1),
                 seed=bits, locate_all=bits <= 128)


def test_every_weight_loop_order_permutation():
    import itertools

    shapes = [LayerShape("reg", "regular", (3, 5, 2, 3))]
    for order in itertools.permutations(WEIGHT_LOOPS_):
        for bits in (24, 64):
            check_layout(LayoutConfig(word_bits=bits, tile_oc=2, tile_ic=3,
                                      weight_loop_order=order, segment_align=1,
                                      region_align=1), shapes, locate_all=False)


def test_every_depthwise_loop_order_permutation():
    import itertools

    shapes = [LayerShape("dw", "depthwise", (5, 1, 2, 3))]
    for order in itertools.permutations(DW_LOOPS_):
        for bits, lanes in ((16, "big"), (24, "little"), (64, "little")):
            check_layout(LayoutConfig(word_bits=bits, tile_dw=3, lane_order=lanes,
                                      depthwise_loop_order=order, segment_align=1,
                                      region_align=1), shapes)


@pytest.mark.parametrize("order", list(__import__("itertools").permutations(REGIONS)))
@pytest.mark.parametrize("unit", ["word", "byte"])
def test_every_region_order_and_address_unit(order, unit):
    cfg = LayoutConfig(word_bits=40, region_order=order, address_unit=unit, region_align=32,
                       segment_align=4)
    check_layout(cfg, locate_all=False)
    layout = Layout.from_shapes(SMALL, cfg)
    deeper = Layout.from_shapes(SMALL, LayoutConfig(word_bits=40, region_order=order,
                                                    address_unit=unit, region_align=32,
                                                    segment_align=4,
                                                    memory_depth=layout.end + 1000))
    assert deeper.depth == layout.end + 1000 and deeper.segments == layout.segments
    with pytest.raises(LayoutError, match="memory_depth"):
        Layout.from_shapes(SMALL, LayoutConfig(word_bits=40, region_order=order,
                                               memory_depth=layout.end - 1))


def test_wide_and_multi_word_headers():
    from cosim.golden.layout import HeaderFormat

    for bits, hbits in ((8, 64), (24, 64), (32, 96), (64, 128), (128, 32), (1024, 200)):
        fields = {"magic": {"lsb": hbits - 8, "width": 8}, "layer": {"lsb": 0, "width": 8},
                  "kind": {"lsb": 8, "width": 4},
                  "count": {"lsb": 12, "width": min(20, hbits - 20)}}
        cfg = LayoutConfig(word_bits=bits, header=HeaderFormat(bits=hbits, magic=0x3C,
                                                               fields=fields))
        assert cfg.header_words == math.ceil(hbits / bits)
        check_layout(cfg, locate_all=False)
        with pytest.raises(LayoutError, match="magic"):
            parse_header(header_word(1, 2, 3, cfg.header) ^ (1 << (hbits - 8)), cfg.header)
        with pytest.raises(LayoutError, match="reserved bits"):
            parse_header(header_word(1, 2, 3, cfg.header) | (1 << (hbits + 3)), cfg.header)


def test_the_default_config_is_todays_layout_in_every_view():
    """LayoutConfig() agrees with the old fixed formulas (kept above) on random nets."""
    cfg = LayoutConfig()
    assert (cfg.tile_dw, cfg.header_words, cfg.record_fixed_words) == (8, 1, 3)
    check_layout(cfg)
    for s in SMALL:
        want = expected_counts(s, cfg)
        got = {t: segment_words(s, t, cfg)[0] for t in TENSORS}
        assert got == want


# -- fault injection: a wrong stride or loop order in a copy of the packer is caught


def test_a_wrong_stride_in_place_of_is_caught(monkeypatch):
    good = Layout._strides

    def bad(self, i):
        tiles, names, strides = good(self, i)
        if "kw" in strides and tiles[names.index("kw")] > 1:
            strides = {**strides, "kw": strides["kw"] + 1}
        return tiles, names, strides

    monkeypatch.setattr(Layout, "_strides", bad)
    with pytest.raises(AssertionError):
        check_layout(LayoutConfig(word_bits=32, tile_oc=3, tile_ic=3), locate_all=False)


def test_a_wrong_loop_order_in_the_packer_is_caught(monkeypatch):
    import cosim.golden.layout as layout_mod

    good = layout_mod._weight_axes

    def bad(shape, config):
        tiles, names, order = good(shape, config)
        return tiles, names, (*order[:-2], order[-1], order[-2])  # swap the inner loops

    monkeypatch.setattr(layout_mod, "_weight_axes", bad)
    with pytest.raises(AssertionError):
        check_layout(LayoutConfig(word_bits=24, tile_oc=2, tile_ic=3), locate_all=False)


def test_a_wrong_lane_order_in_the_packer_is_caught(monkeypatch):
    import cosim.golden.layout as layout_mod

    good = layout_mod._to_rows

    def bad(elements, ebytes, words, config):
        rows = good(elements, ebytes, words, config)
        return rows[:, ::-1] if ebytes == 2 else rows  # biases: the other lane order

    monkeypatch.setattr(layout_mod, "_to_rows", bad)
    with pytest.raises(AssertionError):
        check_layout(LayoutConfig(word_bits=64, tile_oc=3), locate_all=False)
