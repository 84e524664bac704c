"""golden.accelerator: the accelerator file (TOML), its schema, its errors and the shipped files.

Every key of ACCELERATOR_SCHEMA (enumerated from the schema, not hand-picked) gets a
bad-value case and an unknown-key case; each must be one line naming the file and the
dotted key. The shipped files load and lay out MobileNetV2-ReLU and the small CNN.
"""

from __future__ import annotations

import copy
import json
import os
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cosim.golden import svpkg
from cosim.golden.accelerator import (
    ACCELERATOR_MAX_BYTES,
    ACCELERATOR_SCHEMA,
    SHIPPED_ACCELERATORS,
    Accelerator,
    AcceleratorError,
    default_accelerator,
    load_accelerator,
    schema_keys,
)
from cosim.golden.image import build_image, build_stream, parse_header
from cosim.golden.layout import LayerShape, Layout, LayoutConfig
from cosim.quant.errors import UserError
from cosim.quant.package import load_package
from tiny_package import make_tiny_package

DEFAULT_TOML = SHIPPED_ACCELERATORS["default"]


# ---------------------------------------------------------------- a small TOML writer


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def dumps(data: dict[str, Any], prefix: str = "") -> str:
    """TOML text of nested dicts (scalars first, then [sub.tables])."""
    lines = [f"{json.dumps(k)} = {_value(v)}" for k, v in data.items()
             if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            name = f"{prefix}{json.dumps(k)}"
            lines += ["", f"[{name}]", dumps(v, name + ".")]
    return "\n".join(lines)


def write(tmp_path: Path, data: dict[str, Any], name: str = "acc.toml") -> Path:
    path = tmp_path / name
    path.write_text(dumps(data) + "\n", encoding="utf-8")
    return path


def default_data() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_TOML.read_text(encoding="utf-8"))


def assert_one_line(info: pytest.ExceptionInfo, path: Path, key: str) -> str:
    text = str(info.value)
    assert "\n" not in text and isinstance(info.value, UserError)
    assert text.startswith(f"{path}: {key}: expected "), text
    assert ", got " in text, text
    return text


def schema_node(key: str) -> dict[str, Any]:
    node = ACCELERATOR_SCHEMA
    for part in key.split("."):
        node = node["properties"][part]
    return node


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = data
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value


# ---------------------------------------------------------------- the shipped files


def test_default_toml_gives_layout_config_exactly():
    acc = default_accelerator()
    assert acc.layout_config == LayoutConfig()
    assert acc.layout_config.as_dict() == LayoutConfig().as_dict()
    assert acc.name == "default" and acc.rounding == "half_even"
    assert acc.path == DEFAULT_TOML
    import hashlib
    assert acc.sha256 == hashlib.sha256(DEFAULT_TOML.read_bytes()).hexdigest()


def test_shipped_files_are_the_contract():
    assert set(SHIPPED_ACCELERATORS) == {"default", "acc32_16x16", "acc128"}
    a32 = load_accelerator("acc32_16x16").layout_config
    assert (a32.word_bits, a32.tile_oc, a32.tile_ic, a32.header_words) == (32, 16, 16, 2)
    assert a32.record_fixed_words == 6
    a128 = load_accelerator(SHIPPED_ACCELERATORS["acc128"]).layout_config
    assert (a128.word_bits, a128.tile_oc, a128.tile_ic, a128.bias_bits) == (128, 8, 16, 32)
    for name, path in SHIPPED_ACCELERATORS.items():
        acc = load_accelerator(path)
        assert acc.name == name == path.stem
        assert acc.description


def _small_cnn_shapes() -> list[LayerShape]:
    import torch.nn as nn
    from cosim.quant.model import small_cnn
    from cosim.quant.package import conv_kind

    shapes = []
    for name, m in small_cnn().named_modules():
        if isinstance(m, nn.Conv2d):
            shapes.append(LayerShape(name, conv_kind(tuple(m.weight.shape), m.groups),
                                     tuple(m.weight.shape)))
        elif isinstance(m, nn.Linear):
            shapes.append(LayerShape(name, "linear", tuple(m.weight.shape)))
    return shapes


@pytest.mark.parametrize("name", sorted(SHIPPED_ACCELERATORS))
def test_every_shipped_file_lays_out_mobilenet_and_the_small_cnn(name):
    acc = load_accelerator(SHIPPED_ACCELERATORS[name])
    for shapes in (svpkg.model_shapes(), _small_cnn_shapes()):
        layout = acc.layout(shapes)
        assert layout.accelerator == acc.record()
        assert layout.table()["accelerator"]["sha256"] == acc.sha256
        cfg = layout.config
        # the weights segment of every layer holds exactly its padded tensor
        for i, s in enumerate(layout.layers):
            seg = layout.segment(i, "weight")
            oc, ic, kh, kw = s.dims
            if s.kind == "depthwise":
                elems = -(-oc // cfg.tile_dw) * cfg.tile_dw * kh * kw
            else:
                elems = (-(-oc // cfg.tile_oc) * cfg.tile_oc * -(-ic // cfg.tile_ic)
                         * cfg.tile_ic * kh * kw)
            assert seg.words == -(-elems // cfg.word_bytes)
        text = svpkg.generate(layout, "test", accelerator=str(acc.path))
        assert f"localparam int WORD_BITS = {cfg.word_bits};" in text
        assert f"localparam int HDR_WORDS = {cfg.header_words};" in text


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Any:
    return load_package(make_tiny_package(tmp_path_factory.mktemp("tiny") / "package"))


@pytest.mark.parametrize("name", sorted(SHIPPED_ACCELERATORS))
def test_every_shipped_file_builds_a_stream_and_image_that_unpack(tiny, name):
    acc = load_accelerator(name)
    layout = acc.layout([s for s in Layout.from_package(tiny).layers])
    segments = build_stream(tiny, layout)
    image = build_image(tiny, layout)
    cfg = layout.config
    for seg in segments:
        assert seg.header_words.shape[0] == cfg.header_words
        assert parse_header(seg.header, cfg.header) == (seg.layer, seg.kind, seg.count)
        info = layout.segment(seg.layer, seg.tensor)
        np.testing.assert_array_equal(image.read(info.base, info.words), seg.words)
    for i, s in enumerate(layout.layers):
        w = layout.unpack_weights(i, image.read(*_span(layout, i, "weight")))
        np.testing.assert_array_equal(w, tiny.weight_int8(s.name))
        b = layout.unpack_biases(i, image.read(*_span(layout, i, "bias")))
        np.testing.assert_array_equal(b, tiny.bias_int16(s.name))
        layout.unpack_record(i, image.read(*_span(layout, i, "record")))


def _span(layout: Layout, i: int, tensor: str) -> tuple[int, int]:
    seg = layout.segment(i, tensor)
    return seg.base, seg.words


def test_a_shipped_name_and_a_path_load_the_same():
    assert load_accelerator("acc128") == load_accelerator(SHIPPED_ACCELERATORS["acc128"])
    assert isinstance(load_accelerator("default"), Accelerator)


# ---------------------------------------------------------------- every key: bad values


LEAVES = [k for k in schema_keys() if schema_node(k).get("type") != "object"]
TABLES = [k for k in schema_keys() if schema_node(k).get("type") == "object"]


def test_the_schema_keys_cover_the_file():
    keys = set(schema_keys())
    data = default_data()

    def walk(node: dict, prefix: str = "") -> list[str]:
        out = []
        for k, v in node.items():
            out.append(prefix + k)
            if isinstance(v, dict):
                out += walk(v, prefix + k + ".")
        return out

    assert set(walk(data)) | {"header.fields"} <= keys
    assert len(LEAVES) >= 25 and "header.fields.count.width" in LEAVES


def _boundary_bad(node: dict[str, Any]) -> list[Any]:
    """Values of the right type that the schema refuses."""
    if "const" in node:
        return [node["const"] + 1]
    if "enum" in node:
        return ["nope" if isinstance(node["enum"][0], str) else 7]
    if node.get("type") == "integer":
        bad = [node["minimum"] - 1]
        if "maximum" in node:
            bad.append(node["maximum"] + 1)
        if "multipleOf" in node:
            bad.append(node["minimum"] + 1)
        return bad
    if node.get("type") == "array":
        items = node["items"]["enum"]
        return [[items[0]] * len(items), items[:-1], [*items[:-1], "x"]]
    if node.get("type") == "string":
        return ["Bad Name!"] if "pattern" in node else ["x" * (node["maxLength"] + 1)]
    if "anyOf" in node:
        return ["automatic", 0]
    raise AssertionError(f"no boundary case for {node}")


@pytest.mark.parametrize("key", schema_keys())
def test_every_key_with_a_value_of_the_wrong_type(tmp_path, key):
    data = default_data()
    set_key(data, key, [True])
    path = write(tmp_path, data)
    with pytest.raises(AcceleratorError) as info:
        load_accelerator(path)
    text = assert_one_line(info, path, key)
    assert text.endswith("got [true]")


@pytest.mark.parametrize("key", LEAVES)
def test_every_leaf_with_an_out_of_range_value(tmp_path, key):
    for bad in _boundary_bad(schema_node(key)):
        data = default_data()
        set_key(data, key, bad)
        path = write(tmp_path, data)
        with pytest.raises(AcceleratorError) as info:
            load_accelerator(path)
        text = assert_one_line(info, path, key)
        assert schema_node(key)["description"] in text


@pytest.mark.parametrize("key", ["", *TABLES])
def test_every_table_refuses_an_unknown_key(tmp_path, key):
    data = default_data()
    set_key(data, f"{key}.colour" if key else "colour", 1)
    path = write(tmp_path, data)
    with pytest.raises(AcceleratorError) as info:
        load_accelerator(path)
    text = assert_one_line(info, path, f"{key}.colour" if key else "colour")
    assert 'unknown key "colour"' in text


@pytest.mark.parametrize("key", LEAVES)
def test_every_leaf_misspelt_is_an_unknown_key(tmp_path, key):
    data = default_data()
    set_key(data, key + "s", 1)  # e.g. word.bitss next to word.bits: a typo
    path = write(tmp_path, data)
    with pytest.raises(AcceleratorError) as info:
        load_accelerator(path)
    assert_one_line(info, path, key + "s")


@pytest.mark.parametrize("key", [k for k in schema_keys()
                                 if k in ACCELERATOR_SCHEMA["required"]
                                 or k.split(".")[0] == "header" and k.count(".") >= 2])
def test_a_required_key_missing(tmp_path, key):
    data = default_data()
    *parents, last = key.split(".")
    node = data
    for p in parents:
        node = node[p]
    del node[last]
    path = write(tmp_path, data)
    with pytest.raises(AcceleratorError) as info:
        load_accelerator(path)
    assert "(a required key)" in assert_one_line(info, path, key)


# ---------------------------------------------------------------- semantic checks


@pytest.mark.parametrize("change, key, text", [
    ({"memory.segment_align": 16, "memory.region_align": 24}, "memory.region_align",
     "a multiple of memory.segment_align (16), got 24"),
    ({"header.fields.layer": {"lsb": 50, "width": 8}}, "header.fields.layer",
     "shared with magic"),
    ({"header.fields.count": {"lsb": 60, "width": 24}}, "header.fields.count",
     "inside the 64-bit header"),
    ({"header.bits": 32}, "header.fields.magic", "inside the 32-bit header"),
    ({"header.magic": 0x1A5}, "header.magic", "fits the 8-bit magic field, got 0x1a5"),
    ({"header.fields.kind": {"lsb": 44, "width": 1}}, "header.fields.kind.width",
     "at least 2"),
    ({"word.bits": 24, "word.lane_order": "big"}, "word.lane_order",
     "bias.bits (16) does not divide word.bits (24)"),
])
def test_semantic_errors_name_the_key(tmp_path, change, key, text):
    data = default_data()
    for k, v in change.items():
        set_key(data, k, v)
    path = write(tmp_path, data)
    with pytest.raises(AcceleratorError) as info:
        load_accelerator(path)
    assert text in assert_one_line(info, path, key)


def test_a_network_that_does_not_fit_names_the_key(tmp_path):
    data = default_data()
    set_key(data, "memory.depth", 100)
    path = write(tmp_path, data)
    acc = load_accelerator(path)
    assert acc.layout_config.memory_depth == 100
    with pytest.raises(AcceleratorError) as info:
        acc.layout(svpkg.model_shapes())
    assert_one_line(info, path, "memory.depth")
    data = default_data()
    set_key(data, "header.fields.layer", {"lsb": 48, "width": 4})
    acc = load_accelerator(write(tmp_path, data))
    with pytest.raises(AcceleratorError) as info:
        acc.layout(svpkg.model_shapes())  # 53 layers > 16
    assert_one_line(info, tmp_path / "acc.toml", "header.fields.layer.width")
    data = default_data()
    set_key(data, "header.fields.count", {"lsb": 16, "width": 10})
    acc = load_accelerator(write(tmp_path, data))
    with pytest.raises(AcceleratorError) as info:
        acc.layout(svpkg.model_shapes())
    assert_one_line(info, tmp_path / "acc.toml", "header.fields.count.width")


def test_optional_tables_default_to_todays_layout(tmp_path):
    data = {"format_version": 1, "name": "minimal", "word": {"bits": 64},
            "tile": {"oc": 8, "ic": 8}}
    acc = load_accelerator(write(tmp_path, data))
    assert acc.layout_config == LayoutConfig() and acc.description == ""
    data["tile"]["ic"] = 16  # tile.dw defaults to tile.ic
    assert load_accelerator(write(tmp_path, data)).layout_config.tile_dw == 16


def test_every_field_reaches_the_layout_config(tmp_path):
    data = default_data()
    changes = {"word.bits": 96, "word.lane_order": "big", "tile.oc": 3, "tile.ic": 5,
               "tile.dw": 7, "weights.loop_order": ["ic", "oc", "kw", "kh", "ic_tile",
                                                    "oc_tile"],
               "weights.depthwise_loop_order": ["c", "kw", "kh", "c_tile"],
               "bias.bits": 32, "record.format": "packed",
               "memory.region_order": ["records", "weights", "biases"],
               "memory.region_align": 64, "memory.segment_align": 2, "memory.depth": 1 << 20,
               "memory.address_unit": "byte", "header.bits": 96, "header.magic": 0x5A,
               "header.fields.count": {"lsb": 64, "width": 32}, "datapath.rounding": "half_up"}
    for k, v in changes.items():
        set_key(data, k, v)
    acc = load_accelerator(write(tmp_path, data))
    c = acc.layout_config
    assert (c.word_bits, c.lane_order, c.tile_oc, c.tile_ic, c.tile_dw) == (96, "big", 3, 5, 7)
    assert c.weight_loop_order == ("ic", "oc", "kw", "kh", "ic_tile", "oc_tile")
    assert c.kernel_order == "kw_kh"
    assert c.depthwise_loop_order == ("c", "kw", "kh", "c_tile")
    assert (c.bias_bits, c.record_format, c.region_order) == (
        32, "packed", ("records", "weights", "biases"))
    assert (c.region_align, c.segment_align, c.memory_depth, c.address_unit) == (
        64, 2, 1 << 20, "byte")
    assert (c.header.bits, c.header.magic, c.header.field("count")) == (96, 0x5A, (64, 32))
    assert acc.rounding == "half_up"
    assert c.header_words == 1


# ---------------------------------------------------------------- the file itself


def test_file_problems_are_one_line(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(AcceleratorError) as info:
        load_accelerator(missing)
    assert "no such file" in assert_one_line(info, missing, "(file)")
    with pytest.raises(AcceleratorError) as info:
        load_accelerator(tmp_path)
    assert "a directory" in assert_one_line(info, tmp_path, "(file)")
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (ACCELERATOR_MAX_BYTES + 1))
    with pytest.raises(AcceleratorError) as info:
        load_accelerator(big)
    assert_one_line(info, big, "(file)")
    bad = tmp_path / "bad.toml"
    bad.write_text("format_version = 1\nname = \n")
    with pytest.raises(AcceleratorError) as info:
        load_accelerator(bad)
    assert "line 2" in assert_one_line(info, bad, "(syntax)")
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"description = \"caf\xe9\"\n")
    with pytest.raises(AcceleratorError) as info:
        load_accelerator(latin)
    assert "UTF-8" in assert_one_line(info, latin, "(file)")
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo.toml"
        os.mkfifo(fifo)
        with pytest.raises(AcceleratorError) as info:
            load_accelerator(fifo)  # never opened: would block
        assert "not a regular file" in assert_one_line(info, fifo, "(file)")


def test_the_raw_data_is_kept_and_the_dataclass_is_frozen():
    acc = default_accelerator()
    assert acc.raw["word"]["bits"] == 64
    with pytest.raises(AttributeError):
        acc.name = "x"  # type: ignore[misc]
    assert copy.deepcopy(acc) == acc


def test_worked_32bit_example_of_docs():
    """The words of docs/accelerator-file.md, 'Worked example: a 32-bit accelerator'."""
    from cosim.golden.image import header_word, header_words
    from cosim.golden.layout import RecordFields

    acc = load_accelerator("acc32_16x16")
    layout = acc.layout([LayerShape("conv", "regular", (10, 3, 3, 3)),
                         LayerShape("dw", "depthwise", (10, 1, 3, 3))])
    assert [(s.name, s.tensor, s.base, s.words) for s in layout.segments] == [
        ("conv", "weight", 0, 576), ("dw", "weight", 576, 36), ("conv", "bias", 4096, 8),
        ("dw", "bias", 4104, 8), ("conv", "record", 8192, 6), ("dw", "record", 8200, 6)]
    assert (layout.depth, layout.addr_bits) == (8206, 14)
    o, i, kh, kw = np.meshgrid(range(10), range(3), range(3), range(3), indexing="ij")
    w = [f"{int(v):08x}" for v in layout.pack_weights(0, 16 * i + o - 2 * (3 * kh + kw))]
    assert w[0:5] == ["00201000", "00000000", "00000000", "00000000", "00211101"]
    assert w[36] == "00291909" and set(w[40:64]) == {"00000000"} and w[64] == "001e0efe"
    assert layout.address_of("conv", "weight", 9, 2, 0, 0) == (36, 2)
    assert layout.place_of("conv", "weight", 9, 2, 0, 0).lsb == 16
    c, kh, kw = np.meshgrid(range(10), range(3), range(3), indexing="ij")
    d = [f"{int(v):08x}" for v in layout.pack_weights(1, (c + 16 * kh + 4 * kw)[:, None])]
    assert d[:7] == ["03020100", "07060504", "00000908", "00000000", "07060504", "0b0a0908",
                     "00000d0c"]
    b = [f"{int(v):08x}" for v in layout.pack_biases(0, np.arange(10) * 1000 - 4000)]
    assert b == ["f448f060", "fc18f830", "03e80000", "0bb807d0", "13880fa0", *["00000000"] * 3]
    r = RecordFields(kind="regular", relu=True, input_zero_point=64, output_zero_point=0,
                     input_exp=-5, output_exp=-4, shift=(8,), weight_exp=(-7,),
                     padding=(1, 1))
    assert [f"{int(v):08x}" for v in layout.pack_record(0, r)] == [
        "01004008", "00fcf9fb", "0300000a", "00010000", "01010303", "01010101"]
    cfg = layout.config
    h = header_word(0, 0, 576, cfg.header)
    assert f"{h:016x}" == "a500000002400000"
    assert [f"{int(v):08x}" for v in header_words(h, cfg)] == ["02400000", "a5000000"]
    assert [f"{int(v):08x}" for v in header_words(header_word(0, 1, 8, cfg.header), cfg)] == [
        "00080000", "a5001000"]
    text = svpkg.generate(layout, "docs example")
    for const in ("WORD_BITS = 32;", "WORD_BYTES = 4;", "LANES = 4;", "BIAS_LANES = 2;",
                  "TILE_OC = 16;", "TILE_IC = 16;", "HDR_BITS = 64;", "HDR_WORDS = 2;",
                  "REC_PART_WORDS = 2;", "REC_FIXED_WORDS = 6;"):
        assert f"localparam int {const}" in text, const


def test_the_error_examples_of_docs(tmp_path):
    """The one-line errors quoted in docs/accelerator-file.md."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "accelerator-file.md").read_text()
    cases = [({"word.bits": 36}, None), ({"tile.colour": 1}, None),
             ({"memory.segment_align": 16, "memory.region_align": 24}, None),
             ({"header.fields.layer": {"lsb": 50, "width": 8}}, None),
             ({"memory.depth": 100}, svpkg.model_shapes())]
    for change, shapes in cases:
        data = default_data()
        for k, v in change.items():
            set_key(data, k, v)
        path = write(tmp_path, data)
        with pytest.raises(AcceleratorError) as info:
            acc = load_accelerator(path)
            acc.layout(shapes)
        line = str(info.value).replace(str(path), "acc.toml")
        assert line in docs, line
