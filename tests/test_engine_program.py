"""golden/engine_program.py: the compute engine's program, descriptors and act files.

On the shipped 32x32 MobileNetV2-ReLU package (build/package, made by
cosim.tb.sim.ensure_golden when missing) and on small synthetic packages
(tests/tiny_package.py, tests/synthetic_nets.py).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
from cosim.golden.engine_program import (
    DESCRIPTOR_FIELDS,
    EngineError,
    Program,
    Tensor,
    build_program,
    check_engine_config,
    descriptor_words,
    expected_outputs,
    first_differences,
    identical_fraction,
    input_words,
    pack_activation,
    padding_lane_errors,
    read_act_dump,
    read_act_dump_masked,
    unpack_activation,
    words_to_hex_lines,
    write_act_load,
    write_descriptors,
    write_param_stream,
)
from cosim.golden.image import build_stream, stream_words
from cosim.golden.layout import Layout, LayoutConfig
from cosim.quant.package import load_package

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_nets import conv, linear, multi_op_spec, write_network  # noqa: E402
from tiny_package import make_tiny_package  # noqa: E402

LANES = 8


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def mnv2():
    """(package, layout, program) of the shipped 32x32 MobileNetV2-ReLU package."""
    from cosim.tb.sim import PACKAGE_DIR, ensure_golden

    ensure_golden()
    package = load_package(PACKAGE_DIR)
    layout = Layout.from_package(package, LayoutConfig())
    return package, layout, build_program(package, layout)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = make_tiny_package(tmp_path_factory.mktemp("tiny") / "package")
    package = load_package(root)
    layout = Layout.from_package(package, LayoutConfig())
    return package, layout, build_program(package, layout, input_shape=(3, 9, 7))


def engine_spec() -> list[dict]:
    """Every engine op with partial channel tiles, 5x5 dilated, strided and per-channel
    layers, odd maps (the input is 3x11x13)."""
    return [
        conv("stem", "input", 12, 3, 3, stride=2),                            # 12x6x7
        conv("dil", "stem", 13, 12, 5, dilation=2, relu=False, per_channel=True),
        conv("dw", "dil", 13, 13, 3, groups=13, stride=2),                    # 13x3x4
        conv("pw", "dw", 20, 13, 1, relu=False, per_channel=True),
        conv("pw_skip", "dw", 20, 13, 1, relu=False),
        {"name": "add", "op": "add", "inputs": ["pw", "pw_skip"], "relu": True},
        {"name": "gap", "op": "adaptive_avg_pool2d", "inputs": ["add"], "output_size": [1, 1]},
        {"name": "flatten", "op": "flatten", "inputs": ["gap"], "start_dim": 1},
        linear("fc1", "flatten", 17, 20, relu=True),
        linear("fc", "fc1", 5, 17, per_channel=True),
    ]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = write_network(tmp_path_factory.mktemp("synth") / "package", engine_spec(), seed=3)
    package = load_package(root)
    layout = Layout.from_package(package, LayoutConfig())
    return package, layout, build_program(package, layout, input_shape=(3, 11, 13))


def _package_of(tmp_path: Path, spec: list[dict], shape=(3, 16, 16)):
    package = load_package(write_network(tmp_path / "package", spec, seed=1))
    return package, Layout.from_package(package, LayoutConfig()), shape


# ---------------------------------------------------------------- MobileNetV2


def test_mobilenet_program_covers_every_layer(mnv2):
    package, _, program = mnv2
    ops = [layer["op"] for layer in package.layers]
    counts = program.counts()
    assert counts["weighted"] == ops.count("conv2d") + ops.count("linear") == 53
    assert counts["add"] == ops.count("add") == 10
    assert counts["pool"] == ops.count("adaptive_avg_pool2d") == 1
    engine = [layer["name"] for layer in package.layers
              if layer["op"] in ("conv2d", "linear", "add", "adaptive_avg_pool2d")]
    assert [s.name for s in program.steps] == engine
    assert program.input_name == "input" and program.input.shape == (3, 32, 32)
    assert program.input.base == 0
    assert program.logits_name == "classifier.1"
    assert program.logits.shape == (10, 1, 1)
    assert program.tensors["flatten"] is program.tensors["avgpool"]
    assert program.aliases == {"flatten": "avgpool"}
    assert program.act_words == 18774
    assert program.total_macs == 6124928
    assert program.lanes == LANES


def test_mobilenet_macs_and_kinds(mnv2):
    package, _, program = mnv2
    for s in program.steps:
        entry = package.layer(s.name)
        if s.op != "weighted":
            assert s.macs == 0
            continue
        assert s.kind == entry["kind"]
        shape = entry["weight_shape"]
        o = s.output
        if entry["op"] == "linear":
            assert s.macs == shape[0] * shape[1]
        else:
            assert s.macs == shape[0] * o.h * o.w * shape[1] * shape[2] * shape[3]


def _check_descriptors(package, layout, program: Program):
    for s in program.steps:
        f = dict(zip(DESCRIPTOR_FIELDS, s.fields, strict=True))
        assert f["reserved"] == 0
        assert f["op"] & 3 == {"weighted": 0, "add": 1, "pool": 2}[s.op]
        assert f["in_base"] == s.inputs[0].base and f["out_base"] == s.output.base
        assert (f["in_h"], f["in_w"]) == (s.inputs[0].h, s.inputs[0].w)
        assert (f["out_h"], f["out_w"]) == (s.output.h, s.output.w)
        entry = package.layer(s.name)
        if s.op == "weighted":
            assert f["rec_addr"] == layout.segment(s.name, "record").base
            assert f["w_base"] == layout.segment(s.name, "weight").base
            assert f["b_base"] == layout.segment(s.name, "bias").base
            # the first element of each segment (place_of is the layout's own answer)
            assert f["w_base"] == layout.place_of(s.name, "weight", 0, 0, 0, 0).address
            assert f["b_base"] == layout.place_of(s.name, "bias", 0).address
            # per-channel: channel 0's shift is the first word after the fixed parts
            fixed = layout.config.record_fixed_words if isinstance(entry["shift"], list) else 0
            assert f["rec_addr"] + fixed == layout.place_of(s.name, "record", 0).address
            assert bool(f["op"] & 0x100) == isinstance(entry["shift"], list)
            assert f["op"] & ~0x103 == 0
            assert f["in2_base"] == 0 and f["divisor"] == 0
        elif s.op == "add":
            a, b = entry["input"]
            y = entry["output"]
            assert f["in2_base"] == s.inputs[1].base
            assert f["channels"] == s.output.channels
            assert f["zps"] == (a["zero_point"] | b["zero_point"] << 8
                                | y["zero_point"] << 16 | int(entry["relu"]) << 24)
            ea, eb, ey = (int(np.log2(q["scale"])) for q in (a, b, y))
            m = min(ea, eb, ey)
            assert f["shifts"] == (ea - m) | (eb - m) << 8 | (ey - m) << 16
        else:
            x = s.inputs[0]
            assert f["divisor"] == x.h * x.w and f["zps"] == x.zero_point
            assert f["channels"] == x.channels and (s.output.h, s.output.w) == (1, 1)
    words = descriptor_words(program.steps)
    assert words.dtype == np.uint32 and words.shape == (16 * len(program.steps),)
    assert (program.descriptors()[program.index(program.steps[-1].name)]
            == np.array(program.steps[-1].fields, dtype=np.uint32)).all()


def test_mobilenet_descriptors_hold_layout_bases(mnv2):
    _check_descriptors(*mnv2)


def _check_allocation(program: Program):
    tensors = [program.input] + [s.output for s in program.steps]
    assert tensors[0].base == 0
    for prev, cur in zip(tensors, tensors[1:], strict=False):
        assert cur.base == prev.end  # contiguous, in execution order, no overlap
    assert tensors[-1].end == program.act_words
    assert len({t.name for t in tensors}) == len(tensors)
    for t in tensors:
        assert t.words == -(-t.channels // program.lanes) * t.h * t.w


def test_mobilenet_act_bases_contiguous(mnv2):
    _check_allocation(mnv2[2])


def test_mobilenet_stream_file_round_trip(mnv2, tmp_path):
    package, layout, _ = mnv2
    path = tmp_path / "stream_player.hex"
    n = write_param_stream(path, package, layout)
    words, tlast = stream_words(build_stream(package, layout), layout.config)
    lines = path.read_text().splitlines()
    assert n == len(lines) == words.shape[0] == 281046
    assert all(len(line) == 17 for line in lines)
    values = [int(line, 16) for line in lines]
    assert [v >> 64 for v in values] == tlast.astype(int).tolist()
    assert np.array_equal(np.array([v & (2**64 - 1) for v in values], dtype=np.uint64), words)


def test_mobilenet_expected_outputs_match_golden_run(mnv2):
    from cosim.golden.infer import IntegerModel

    package, _, program = mnv2
    model = IntegerModel.from_package(package)
    images = np.random.default_rng(0).normal(0, 1, (2, 3, 32, 32)).astype(np.float32)
    run = model.run(images)
    expected = expected_outputs(program, run, batch_index=1)
    assert list(expected) == [s.name for s in program.steps]
    for s in program.steps:
        golden = np.asarray(run[s.name])[1].reshape(s.output.shape)
        assert np.array_equal(unpack_activation(expected[s.name], s.output, LANES), golden)
        assert padding_lane_errors(expected[s.name], s.output, LANES) == 0
    x = input_words(program, run, 1)
    assert np.array_equal(unpack_activation(x, program.input, LANES), run["input"][1])


# ---------------------------------------------------------------- synthetic packages


def test_tiny_package_program(tiny):
    package, layout, program = tiny
    assert [(s.name, s.op) for s in program.steps] == [
        ("features.0.0", "weighted"), ("features.1.conv.0.0", "weighted"),
        ("add_0", "add"), ("avgpool", "pool"), ("classifier.1", "weighted")]
    conv0, dw, add, pool, fc = program.steps
    assert conv0.output.shape == (4, 5, 4)  # 9x7, 3x3 stride 2 pad 1
    assert dw.output.shape == (4, 5, 4) and dw.fields[0] == 0x100  # per-channel shifts
    assert conv0.fields[0] == 0
    assert add.field("shifts") == 1 << 16  # 2^-4, 2^-4 -> 2^-3: ka = kb = 0, ky = 1
    assert pool.field("divisor") == 20
    assert fc.inputs[0] is pool.output and fc.output.shape == (3, 1, 1)
    assert program.logits_name == "classifier.1"
    assert fc.macs == 12 and dw.macs == 4 * 20 * 9 and conv0.macs == 4 * 20 * 27
    _check_descriptors(package, layout, program)
    _check_allocation(program)


def test_synthetic_program_shapes_match_golden(synth):
    from cosim.golden.infer import IntegerModel

    package, layout, program = synth
    assert program.counts() == {"weighted": 7, "add": 1, "pool": 1}
    _check_descriptors(package, layout, program)
    _check_allocation(program)
    run = IntegerModel.from_package(package).run(
        np.random.default_rng(1).normal(0, 1, (1, 3, 11, 13)).astype(np.float32))
    for s in program.steps:
        assert int(np.prod(s.output.shape)) == np.asarray(run[s.name])[0].size, s.name
        if np.asarray(run[s.name]).ndim == 4:
            assert np.asarray(run[s.name]).shape[1:] == s.output.shape
    expected = expected_outputs(program, run)
    for s in program.steps:
        assert np.array_equal(unpack_activation(expected[s.name], s.output, LANES),
                              np.asarray(run[s.name])[0].reshape(s.output.shape))
    assert program.step("dil").fields[0] == 0x100 and program.step("fc1").fields[0] == 0


def test_stream_file_round_trip_tiny(tiny, tmp_path):
    package, layout, _ = tiny
    path = tmp_path / "s.hex"
    n = write_param_stream(path, package, layout)
    words, tlast = stream_words(build_stream(package, layout), layout.config)
    lines = path.read_text().splitlines()
    assert n == len(lines) == words.shape[0]
    for line, w, t in zip(lines, words, tlast, strict=True):
        assert len(line) == 17 and int(line, 16) == (int(t) << 64 | int(w))


def test_input_shape_needed_without_model_input_shape(tiny):
    package, layout, _ = tiny
    with pytest.raises(EngineError, match="input shape is unknown"):
        build_program(package, layout)


# ---------------------------------------------------------------- unsupported


@pytest.mark.parametrize(("config", "key"), [
    (LayoutConfig(word_bits=32), "word_bits (word.bits)"),
    (LayoutConfig(word_bits=128), "word_bits (word.bits)"),
    (LayoutConfig(tile_dw=4), "tile_dw (tile.dw)"),
    (LayoutConfig(tile_oc=3), "tile_oc (tile.oc)"),
    (LayoutConfig(weight_loop_order=("ic_tile", "oc_tile", "kh", "kw", "oc", "ic")),
     "weight_loop_order (weights.loop_order)"),
    (LayoutConfig(kernel_order="kw_kh"), "weight_loop_order (weights.loop_order)"),
    (LayoutConfig(depthwise_loop_order=("kh", "kw", "c_tile", "c")),
     "depthwise_loop_order (weights.depthwise_loop_order)"),
    (LayoutConfig(lane_order="big"), "lane_order (word.lane_order)"),
    (LayoutConfig(record_format="packed"), "record_format (record.format)"),
    (LayoutConfig(address_unit="byte"), "address_unit (memory.address_unit)"),
])
def test_engine_config_errors_name_the_key(config, key, tiny):
    with pytest.raises(EngineError) as info:
        check_engine_config(config)
    message = str(info.value)
    assert message.startswith(f"accelerator {key} ") and "\n" not in message
    assert "compute engine" in message
    package = tiny[0]
    with pytest.raises(EngineError, match=key.split()[0]):
        build_program(package, Layout.from_package(package, config), input_shape=(3, 9, 7))


def test_engine_configs_accepted():
    check_engine_config(LayoutConfig())
    check_engine_config(LayoutConfig(word_bits=128, tile_ic=16, tile_oc=16))
    check_engine_config(LayoutConfig(word_bits=128, tile_ic=16, tile_oc=4, bias_bits=32))


def test_unsupported_op_max_pool(tmp_path):
    package, layout, shape = _package_of(tmp_path, multi_op_spec())
    with pytest.raises(EngineError) as info:
        build_program(package, layout, input_shape=shape)
    assert str(info.value) == (
        "layer 'pool': op 'max_pool2d' is not supported by the compute engine (supported: "
        "quantize, conv2d, linear, add, adaptive_avg_pool2d, flatten, dequantize)")


@pytest.mark.parametrize(("spec", "match"), [
    ([conv("c", "input", 8, 3, 3), {"name": "r", "op": "relu", "inputs": ["c"]},
      {"name": "g", "op": "adaptive_avg_pool2d", "inputs": ["r"], "output_size": [1, 1]},
      {"name": "f", "op": "flatten", "inputs": ["g"], "start_dim": 1},
      linear("fc", "f", 4, 8)], "layer 'r': op 'relu' is not supported"),
    ([conv("c", "input", 8, 3, 3), conv("grp", "c", 8, 8, 3, groups=2),
      {"name": "g", "op": "adaptive_avg_pool2d", "inputs": ["grp"], "output_size": [1, 1]},
      {"name": "f", "op": "flatten", "inputs": ["g"], "start_dim": 1},
      linear("fc", "f", 4, 8)], "layer 'grp': conv2d kind 'grouped' is not supported"),
    ([conv("c", "input", 8, 3, 3, stride=4),
      {"name": "f", "op": "flatten", "inputs": ["c"], "start_dim": 1},
      linear("fc", "f", 4, 128)], "layer 'f': flatten of a 8x4x4 map is not supported"),
    ([conv("c", "input", 8, 3, 3),
      {"name": "g", "op": "adaptive_avg_pool2d", "inputs": ["c"], "output_size": [2, 2]},
      {"name": "f", "op": "flatten", "inputs": ["g"], "start_dim": 1},
      linear("fc", "f", 4, 32)], r"layer 'g': adaptive_avg_pool2d to \[2, 2\] is not"),
])
def test_unsupported_geometry(spec, match, tmp_path):
    package, layout, shape = _package_of(tmp_path, spec)
    with pytest.raises(EngineError, match=match):
        build_program(package, layout, input_shape=shape)


def test_add_shift_over_31_and_record_fields_refused(tiny):
    package, layout, _ = tiny
    bad = copy.copy(package)
    bad.layers = copy.deepcopy(package.layers)
    add = next(layer for layer in bad.layers if layer["op"] == "add")
    add["input"][0]["scale"] = 2.0 ** 40
    with pytest.raises(EngineError, match="layer 'add_0': add shift ka = 44"):
        build_program(bad, layout, input_shape=(3, 9, 7))
    bad.layers = copy.deepcopy(package.layers)
    bad.layers[1]["padding"] = [300, 1]
    with pytest.raises(EngineError, match=r"layer 'features.0.0': padding \[300, 1\] does not "
                                          "fit the record"):
        build_program(bad, layout, input_shape=(3, 9, 7))


# ---------------------------------------------------------------- activation words


@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (7, 3)])
def test_pack_unpack_round_trip(hw):
    rng = np.random.default_rng(hw[0] * 10 + hw[1])
    h, w = hw
    for channels in range(1, 3 * LANES + 1):
        zp = int(rng.integers(0, 256))
        t = Tensor("t", channels, h, w, 100, zp)
        codes = rng.integers(0, 256, (channels, h, w)).astype(np.uint8)
        words = pack_activation(codes, t, LANES)
        tiles = -(-channels // LANES)
        assert words.shape == (t.words, LANES) == (tiles * h * w, LANES)
        assert words.dtype == np.uint8
        for c, y, x in [(0, 0, 0), (channels - 1, h - 1, w - 1), (channels // 2, h // 2, 0)]:
            tile, lane = divmod(c, LANES)
            assert words[(tile * h + y) * w + x, lane] == codes[c, y, x]
        assert np.array_equal(unpack_activation(words, t, LANES), codes)
        pad = words.reshape(tiles, h, w, LANES)[-1, :, :, channels - (tiles - 1) * LANES:]
        assert (pad == zp).all()
        assert padding_lane_errors(words, t, LANES) == 0
        if channels % LANES:
            bad = words.copy()
            bad[-1, LANES - 1] ^= 1
            assert padding_lane_errors(bad, t, LANES) == 1
            assert first_differences(words, bad, t, LANES) == []
            assert identical_fraction(words, bad, t, LANES) == 1.0


def test_pack_features_vector_and_errors():
    t = Tensor("fc", 10, 1, 1, 0, 7)
    words = pack_activation(np.arange(10, dtype=np.uint8), t, LANES)
    assert words.tolist() == [list(range(8)), [8, 9, 7, 7, 7, 7, 7, 7]]
    with pytest.raises(EngineError, match="'fc': codes have shape"):
        pack_activation(np.zeros(11, np.uint8), t, LANES)
    with pytest.raises(EngineError, match=r"in \[0, 255\]"):
        pack_activation(np.full(10, 256), t, LANES)
    with pytest.raises(EngineError, match="words have shape"):
        unpack_activation(words[:1], t, LANES)


def test_first_differences_order_and_fraction():
    t = Tensor("t", 10, 2, 3, 0, 0)
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 200, (10, 2, 3)).astype(np.uint8)
    exp = pack_activation(codes, t, LANES)
    got_codes = codes.copy()
    for c, y, x in [(9, 0, 0), (1, 1, 2), (1, 0, 1), (4, 1, 0)]:
        got_codes[c, y, x] += 1
    got = pack_activation(got_codes, t, LANES)
    diffs = first_differences(exp, got, t, LANES)
    assert [d[:3] for d in diffs] == [(1, 0, 1), (1, 1, 2), (4, 1, 0), (9, 0, 0)]
    assert diffs[0][3:] == (int(codes[1, 0, 1]), int(codes[1, 0, 1]) + 1)
    assert len(first_differences(exp, got, t, LANES, limit=2)) == 2
    assert identical_fraction(exp, got, t, LANES) == pytest.approx(56 / 60)


# ---------------------------------------------------------------- files


def test_hex_lines_lane0_rightmost():
    words = np.array([[0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0xab]], dtype=np.uint8)
    assert words_to_hex_lines(words) == ["ab07060504030201"]


def test_act_load_file_and_read_back(tmp_path):
    a = Tensor("a", 3, 2, 2, 0, 5)
    b = Tensor("b", 9, 1, 3, a.end, 200)
    rng = np.random.default_rng(2)
    wa = pack_activation(rng.integers(0, 256, a.shape).astype(np.uint8), a, LANES)
    wb = pack_activation(rng.integers(0, 256, b.shape).astype(np.uint8), b, LANES)
    path = tmp_path / "act.hex"
    assert write_act_load(path, [(a, wa), (b, wb)]) == a.words + b.words
    lines = path.read_text().splitlines()
    assert lines[0] == "@0" and lines[1 + a.words] == f"@{b.base:x}"
    assert all(len(line) == 16 for line in lines if not line.startswith("@"))
    # the load file reads back as a dump of 0..b.last ("@addr" lines, Verilator style)
    with pytest.raises(EngineError, match="outside the range"):
        read_act_dump(path, a.base, a.last, LANES)
    both = read_act_dump(path, 0, b.last, LANES)
    assert np.array_equal(both, np.concatenate([wa, wb]))


def test_read_act_dump_icarus_style(tmp_path):
    words = np.arange(24, dtype=np.uint8).reshape(3, 8)
    path = tmp_path / "icarus.hex"
    path.write_text("\n".join(words_to_hex_lines(words)) + "\n")
    assert np.array_equal(read_act_dump(path, 40, 42, LANES), words)
    with pytest.raises(EngineError, match="outside the range"):
        read_act_dump(path, 40, 41, LANES)
    with pytest.raises(EngineError, match="1 of 4 words .* missing"):
        read_act_dump(path, 40, 43, LANES)


def test_read_act_dump_verilator_style(tmp_path):
    words = np.arange(16, dtype=np.uint8).reshape(2, 8)
    lines = words_to_hex_lines(words)
    path = tmp_path / "verilator.hex"
    path.write_text(f"// $writememh dump\n// of mem\n@28\n{lines[0]}\n{lines[1]}  // end\n")
    assert np.array_equal(read_act_dump(path, 0x28, 0x29, LANES), words)
    # short words are zero-extended, underscores allowed, several per line
    path.write_text("@0\n1 0000_0000_0000_00ff /* c */ 2\n")
    got = read_act_dump(path, 0, 2, LANES)
    assert got[:, 0].tolist() == [1, 255, 2] and not got[:, 1:].any()


def test_read_act_dump_unknown_bytes(tmp_path):
    path = tmp_path / "x.hex"
    path.write_text("0102030405060708\nxxxxxxxxxxxxxxxx\n0000000000000x00\n")
    with pytest.raises(EngineError, match="2 words hold x/z bytes .*0x1"):
        read_act_dump(path, 0, 2, LANES)
    words, unknown = read_act_dump_masked(path, 0, 2, LANES)
    assert words[0].tolist() == [8, 7, 6, 5, 4, 3, 2, 1]
    assert unknown[1].all() and not unknown[0].any()
    assert unknown[2].tolist() == [False, True] + [False] * 6
    path.write_text("0102030405060708090a\n")
    with pytest.raises(EngineError, match="bad word"):
        read_act_dump(path, 0, 0, LANES)


def test_write_descriptors(tiny, tmp_path):
    _, _, program = tiny
    path = tmp_path / "desc.hex"
    write_descriptors(path, program.steps)
    lines = path.read_text().splitlines()
    assert len(lines) == 16 * len(program.steps)
    assert all(len(line) == 8 for line in lines)
    for i, s in enumerate(program.steps):
        assert [int(v, 16) for v in lines[16 * i:16 * i + 16]] == list(s.fields)


def test_read_act_dump_real_simulator_output(tmp_path):
    """The exact text of `$writememh("dump.hex", mem, 3, 6)` of 64-bit words (mem[i] =
    64'h0102030405060700 + i, mem[5] = 'x): Icarus 11 writes a "// 0x00000000" comment
    line first and x digits; Verilator 5.048 writes the words only, x as 0 (2-state)."""
    icarus = tmp_path / "icarus.hex"
    icarus.write_text("// 0x00000000\n0102030405060703\n0102030405060704\n"
                      "xxxxxxxxxxxxxxxx\n0102030405060706\n")
    verilator = tmp_path / "verilator.hex"
    verilator.write_text("0102030405060703\n0102030405060704\n0000000000000000\n"
                         "0102030405060706\n")
    words, unknown = read_act_dump_masked(icarus, 3, 6, LANES)
    assert unknown[2].all() and not unknown[[0, 1, 3]].any()
    got = read_act_dump(verilator, 3, 6, LANES)
    assert got[:, 0].tolist() == [3, 4, 0, 6] and got[0, 1:].tolist() == [7, 6, 5, 4, 3, 2, 1]
    assert np.array_equal(words[[0, 1, 3]], got[[0, 1, 3]])
    with pytest.raises(EngineError, match="x/z"):
        read_act_dump(icarus, 3, 6, LANES)


def test_read_act_dump_every_form_reads_the_same(tmp_path):
    """The vectorized reader gives the same words and unknown bytes for every form a
    simulator writes: one word per line (the fast path), a comment header, '@' address
    runs (absolute), short words (leading zeros dropped) and x/z digits."""
    rng = np.random.default_rng(7)
    lo, n = 100, 37
    words = rng.integers(0, 256, size=(n, LANES), dtype=np.uint8)
    lines = [bytes(w[::-1]).hex() for w in words]
    lines[5] = "x" * 16                       # a whole word unknown
    lines[9] = lines[9][:-1] + "z"            # one byte (lane 0) unknown
    plain = tmp_path / "plain.hex"
    plain.write_text("".join(f"{t}\n" for t in lines))
    ref_words, ref_unknown = read_act_dump_masked(plain, lo, lo + n - 1, LANES)
    assert ref_unknown[5].all() and ref_unknown[9].tolist() == [True] + [False] * 7
    keep = np.ones(n, dtype=bool)
    keep[[5, 9]] = False
    assert np.array_equal(ref_words[keep], words[keep])
    forms = {
        "comment": "// 0x00000064\n" + "".join(f"{t}\n" for t in lines),
        "runs": "".join((f"@{lo + k:x}\n" if k % 10 == 0 else "") + f"{t}\n"
                        for k, t in enumerate(lines)),
        "short": "".join(f"{t.lstrip('0') or '0'} " for t in lines),
        "underscores": "".join(f"{t[:8]}_{t[8:]}\n" for t in lines),
    }
    for name, text in forms.items():
        path = tmp_path / f"{name}.hex"
        path.write_text(text)
        got_words, got_unknown = read_act_dump_masked(path, lo, lo + n - 1, LANES)
        assert np.array_equal(got_words, ref_words), name
        assert np.array_equal(got_unknown, ref_unknown), name


def test_read_act_dump_lenient_marks_what_a_broken_dump_lacks(tmp_path):
    """strict=False (the testbench): a missing word and a bad token are unknown, a word
    outside the range is ignored; strict (the default) names each in one line."""
    path = tmp_path / "broken.hex"
    path.write_text("@0\n0102030405060708\nnothex!!\n@5\n1111111111111111\n")
    words, unknown = read_act_dump_masked(path, 0, 2, LANES, strict=False)
    assert words[0].tolist() == [8, 7, 6, 5, 4, 3, 2, 1] and not unknown[0].any()
    assert unknown[1].all() and unknown[2].all()
    with pytest.raises(EngineError, match="bad word 'nothex!!' at address 0x1"):
        read_act_dump_masked(path, 0, 2, LANES)
    path.write_text("@0\n0102030405060708\n@5\n1111111111111111\n")
    with pytest.raises(EngineError, match="outside the range"):
        read_act_dump_masked(path, 0, 2, LANES)
    path.write_text("0102030405060708\n")
    with pytest.raises(EngineError, match="2 of 3 words .* missing .first at 0x1"):
        read_act_dump_masked(path, 0, 2, LANES)


def test_first_of_each_kind_is_the_first_step_of_every_kind(mnv2, synth):
    """Program.first_of_each_kind (COMPUTE_LAYERS=kinds): one index per (op, kind), the
    first step having it, in execution order."""
    for _, _, program in (mnv2, synth):
        picked = program.first_of_each_kind()
        assert picked == sorted(picked)
        kinds = [(s.op, s.kind) for s in program.steps]
        assert [kinds[i] for i in picked] == list(dict.fromkeys(kinds))
        assert all(kinds.index(kinds[i]) == i for i in picked)
    assert len(mnv2[2].first_of_each_kind()) == 6  # 4 weighted kinds, add, pool
