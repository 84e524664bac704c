"""Generate rtl/cnn_layout_pkg.sv: the layout parameters and tables the RTL loader needs.

The committed file is generated from the MobileNetV2-ReLU shapes of the shipped
checkpoint (quant.model.mobilenet_v2_relu, 10 classes, per-tensor weights, as
`cosim package` builds by default) with the default LayoutConfig (the shipped
default.toml accelerator). The layout depends only on shapes and per-channel-ness,
so no package is needed.

    python -m cosim.golden.svpkg --check    exit 1 if rtl/cnn_layout_pkg.sv is stale
    python -m cosim.golden.svpkg --write    regenerate it

`generate(layout, source, made_by=...)` writes the package of any layout (any
accelerator file); `cosim svpkg --accel FILE --out DIR` (cosim/cli_svpkg.py) is the
command for a network and an accelerator.

Icarus 11 has no unpacked-array localparams, so the tables are flattened packed
vectors with accessor functions (seg_base, seg_words, layer_kind).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from cosim.golden.layout import (
    CONTROL_FIELDS,
    GEOMETRY_FIELDS,
    LAYER_KINDS,
    REGIONS,
    TENSORS,
    LayerShape,
    Layout,
    LayoutConfig,
)
from cosim.quant.formats import atomic_write_bytes

__all__ = ["DEFAULT_PATH", "default_text", "generate", "main", "model_shapes"]

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "rtl" / "cnn_layout_pkg.sv"
REGENERATE = ".venv/bin/python -m cosim.golden.svpkg --write"
#: How a package other than the committed one is made (named in its header comment).
MADE_BY = "cosim svpkg --accel FILE --out DIR"
#: Record control-word fields: name -> (lsb, width); see docs/layout.md.
_CONTROL_NAMES = {"SHIFT": "shift", "IN_ZP": "input_zero_point", "OUT_ZP": "output_zero_point",
                  "RELU": "relu", "KIND": "kind", "IN_EXP": "input_exp", "W_EXP": "weight_exp",
                  "OUT_EXP": "output_exp"}
RECORD_FIELDS: dict[str, tuple[int, int]] = {
    sv: CONTROL_FIELDS[py][:2] for sv, py in _CONTROL_NAMES.items()}
#: Geometry fields of record words 1 (channels) and 2 (kernel): SV name -> (word, lsb,
#: width), lsb inside that word.
GEOMETRY_SV: dict[str, tuple[int, int, int]] = {
    name.upper(): GEOMETRY_FIELDS[name][:3] for name in GEOMETRY_FIELDS}


def model_shapes(num_classes: int = 10, width_mult: float = 1.0) -> list[LayerShape]:
    """LayerShapes of MobileNetV2-ReLU in execution order (Conv2d/Linear module order,
    which is the manifest's order), per-tensor weights; no quantization needed."""
    import torch.nn as nn
    from cosim.quant.model import mobilenet_v2_relu
    from cosim.quant.package import conv_kind

    model = mobilenet_v2_relu(num_classes=num_classes, width_mult=width_mult)
    shapes = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            shape = tuple(module.weight.shape)
            shapes.append(LayerShape(name, conv_kind(shape, module.groups), shape))
        elif isinstance(module, nn.Linear):
            shapes.append(LayerShape(name, "linear", tuple(module.weight.shape)))
    return shapes


def _flat(name: str, width: int, entries: Sequence[tuple[int, str]], count: str,
          per_line: int, labels: Sequence[str]) -> list[str]:
    """A packed localparam holding `entries` (value, comment-less), entry 0 at the LSBs.

    SystemVerilog concatenation lists the MSBs first, so lines run from the last
    entry down; `labels[i]` names line i (entries i*per_line ...).
    """
    lines = [f"  localparam logic [{count}*{width}-1:0] {name} = {{"]
    groups = [entries[i:i + per_line] for i in range(0, len(entries), per_line)]
    for g, group in reversed(list(enumerate(groups))):
        values = ", ".join(v for _, v in reversed(group))
        comma = "," if g else ""
        lines.append(f"    {values}{comma}  // {labels[g]}")
    lines.append("  };")
    return lines


def _config_lines(cfg: LayoutConfig) -> list[str]:
    d = cfg.as_dict()
    old = ("word_bits", "tile_oc", "tile_ic", "kernel_order", "segment_align", "region_align")
    lines = ["LayoutConfig: " + " ".join(f"{k}={d[k]}" for k in old)]
    hdr = cfg.header
    rest = (f"tile_dw={cfg.tile_dw} weight_loop_order={','.join(cfg.weight_loop_order)} "
            f"depthwise_loop_order={','.join(cfg.depthwise_loop_order)} "
            f"bias_bits={cfg.bias_bits} lane_order={cfg.lane_order} "
            f"record_format={cfg.record_format} region_order={','.join(cfg.region_order)} "
            f"memory_depth={cfg.memory_depth or 'auto'} address_unit={cfg.address_unit} "
            f"header={hdr.bits} bits, magic {hdr.magic:#x}, "
            + ", ".join(f"{n} [{lsb + w - 1}:{lsb}]" for n, lsb, w in hdr.fields))
    lines += textwrap.wrap(rest, 76 - 3, initial_indent="  ", subsequent_indent="  ")
    return lines


def generate(layout: Layout, source: str, made_by: str | None = None,
             accelerator: str | None = None) -> str:
    """The text of cnn_layout_pkg.sv for `layout`; `source` names the network in the
    header, `accelerator` (optional) the accelerator file, `made_by` the command that
    writes this file (default: `cosim svpkg --accel FILE --out DIR`; the committed
    file names its --write command)."""
    cfg = layout.config
    hdr = cfg.header
    ab = layout.addr_bits
    hw = hdr.width("count")
    n = len(layout.layers)
    digits = (ab + 3) // 4
    if made_by is None:
        how = ["// GENERATED FILE, DO NOT EDIT. Written by golden/svpkg.py from the network's",
               "// weighted layers (shapes and per-channel-ness only) and the accelerator's",
               "// LayoutConfig below. Made with:",
               f"//     {MADE_BY}",
               "// (not the committed rtl/cnn_layout_pkg.sv, which describes the default",
               "// accelerator and the shipped MobileNetV2-ReLU).",
               ]
    else:
        how = ["// GENERATED FILE, DO NOT EDIT. Written by golden/svpkg.py from the package",
               "// manifest's weighted layers (shapes and per-channel-ness only) and the",
               "// LayoutConfig below. Regenerate with:",
               f"//     {made_by}",
               "// (`python -m cosim.golden.svpkg --check` tells whether this file is current.)",
               ]
    if cfg.lane_order == "little":
        lanes_line = (f"// Lanes are little-endian: lane 0 = bits [7:0] (int{cfg.bias_bits} bias "
                      f"lanes: [{cfg.bias_bits - 1}:0]).")
    else:
        lanes_line = (f"// Lanes are big-endian: lane 0 = bits [{cfg.word_bits - 1}:"
                      f"{cfg.word_bits - 8}] (int{cfg.bias_bits} bias lanes: "
                      f"[{cfg.word_bits - 1}:{cfg.word_bits - cfg.bias_bits}]).")
    head = [
        "// cnn_layout_pkg.sv: parameter-memory layout of the CNN accelerator.",
        "//",
        *how,
        "//",
        *[f"// {line}" for line in textwrap.wrap(f"Network: {source}", 76)],
        *([f"// {line}" for line in textwrap.wrap(f"Accelerator: {accelerator}", 76)]
          if accelerator else []),
        *[f"// {line}" for line in _config_lines(cfg)],
        "//",
        "// Addresses are WORD addresses (one WORD_BITS-bit word each), not bytes.",
        lanes_line,
        "// Segment kinds: 0 weights, 1 biases, 2 record. A loader takes the stream",
        "// header (HDR_*), checks magic, layer < NUM_LAYERS, kind < NUM_KINDS and",
        "// count == seg_words(layer, kind), then writes the count data words to",
        "// seg_base(layer, kind), seg_base + 1, ... The stream carries no addresses.",
        "// See docs/layout.md.",
        "//",
        f"// {'#':>3}  {'layer':<22} {'kind':<9} {'weight shape':<14} {'pc':<2} "
        f"{'weights base':>12} {'words':>6} {'biases base':>12} {'words':>5} "
        f"{'record base':>12} {'words':>5}",
    ]
    for i, s in enumerate(layout.layers):
        w, b, r = (layout.segment(i, t) for t in TENSORS)
        shape = "x".join(map(str, s.weight_shape))
        head.append(
            f"// {i:>3}  {s.name:<22} {s.kind:<9} {shape:<14} {'y' if s.per_channel else 'n':<2} "
            f"{w.base:>#12x} {w.words:>6} {b.base:>#12x} {b.words:>5} {r.base:>#12x} "
            f"{r.words:>5}")
    body = [
        "",
        "`timescale 1ns / 1ps",
        "",
        "package cnn_layout_pkg;",
        "",
        "  // A table of constants: a user reads some of them (lint_on at the end).",
        "  /* verilator lint_off UNUSEDPARAM */",
        "",
        "  // ---- memory word",
        f"  localparam int WORD_BITS = {cfg.word_bits};",
        f"  localparam int LANES = {cfg.lanes};  // int8 lanes per word "
        + ("(= TILE_IC)" if cfg.lanes == cfg.tile_ic else "(WORD_BITS / 8)"),
        f"  localparam int BIAS_LANES = {cfg.bias_lanes};  // int{cfg.bias_bits} lanes per bias "
        "word" + ("" if cfg.word_bits % cfg.bias_bits == 0 else " (whole ones; biases straddle)"),
        f"  localparam int TILE_OC = {cfg.tile_oc};",
        f"  localparam int TILE_IC = {cfg.tile_ic};",
        f"  localparam bit KERNEL_KH_OUTER = 1'b{int(cfg.kernel_order == 'kh_kw')};"
        "  // 1: kh outer, kw inner",
        f"  localparam int SEGMENT_ALIGN = {cfg.segment_align};  // words",
        f"  localparam int REGION_ALIGN = {cfg.region_align};  // words",
        f"  localparam int WORD_BYTES = {cfg.word_bytes};  // WORD_BITS / 8",
        f"  localparam int BIAS_BITS = {cfg.bias_bits};  // bias element width",
        f"  localparam int TILE_DW = {cfg.tile_dw};  // depthwise channel tile",
        f"  localparam bit LANE_ORDER_BIG = 1'b{int(cfg.lane_order == 'big')};"
        "  // 1: lane 0 in the top bits",
        f"  localparam bit RECORD_PACKED = 1'b{int(cfg.record_format == 'packed')};"
        "  // 1: record parts packed densely",
        "",
        "  // ---- memory (word addresses)",
        f"  localparam int MEM_DEPTH = {layout.depth};  // words, "
        + (f"end of the {cfg.region_order[-1]} region" if layout.depth == layout.end
           else f"memory.depth (the layout ends at {layout.end})"),
        f"  localparam int ADDR_BITS = {ab};  // clog2(MEM_DEPTH)",
        f"  localparam int ADDR_BYTE = {int(cfg.address_unit == 'byte')};"
        "  // 1: byte addresses on the memory port",
        f"  localparam int MEM_ADDR_BITS = {layout.mem_addr_bits};"
        "  // DUT memory address port width",
    ]
    for r in layout.regions:
        body.append(f"  localparam logic [ADDR_BITS-1:0] {r.name.upper()}_BASE = "
                    f"{ab}'h{r.base:0{digits}x};  // {r.used} words used, end {r.end:#x}")
    body += [
        "",
        "  // ---- segment kinds (stream header kind field)",
        f"  localparam int NUM_KINDS = {len(TENSORS)};",
    ]
    kind_bits = hdr.width("kind")
    for k, region in enumerate(REGIONS):
        body.append(f"  localparam logic [{kind_bits - 1}:0] SEG_{region.upper()} = "
                    f"{kind_bits}'d{k};")
    body += ["", "  // ---- layer kinds (record bits [27:25])"]
    for k, kind in enumerate(LAYER_KINDS):
        body.append(f"  localparam logic [2:0] LAYER_{kind.upper()} = 3'd{k};")
    body += [
        "",
        "  // ---- stream header word: magic, layer, kind, data word count (no address)",
        f"  localparam logic [{hdr.width('magic') - 1}:0] HEADER_MAGIC = "
        f"{hdr.width('magic')}'h{hdr.magic:0{(hdr.width('magic') + 3) // 4}X};",
        f"  localparam int HDR_BITS = {hdr.bits};  // header width",
        f"  localparam int HDR_WORDS = {cfg.header_words};"
        "  // words per header, low word first",
    ]
    for name, lsb, width in hdr.fields:
        body.append(f"  localparam int HDR_{name.upper()}_LSB = {lsb};")
        body.append(f"  localparam int HDR_{name.upper()}_BITS = {width};")
    body += ["", "  // ---- record control word (word 0 of a record segment)"]
    for name, (lsb, width) in RECORD_FIELDS.items():
        body.append(f"  localparam int REC_{name}_LSB = {lsb};")
        body.append(f"  localparam int REC_{name}_BITS = {width};")
    body += [
        "",
        "  // ---- record words 1 (channels) and 2 (kernel): geometry; per-channel shift",
        "  // and weight-exponent words follow from word REC_FIXED_WORDS on",
        f"  localparam int REC_FIXED_WORDS = {cfg.record_fixed_words};",
        f"  localparam int REC_PART_WORDS = {cfg.record_part_words};"
        "  // words per 64-bit record part (word_aligned)",
        "  localparam int REC_CHANNELS_WORD = 1;",
        "  localparam int REC_KERNEL_WORD = 2;",
    ]
    for name, (word, lsb, width) in GEOMETRY_SV.items():
        body.append(f"  localparam int REC_{name}_LSB = {lsb};  // in record word {word}")
        body.append(f"  localparam int REC_{name}_BITS = {width};")
    body += [
        "",
        "  // ---- layers, in execution order",
        f"  localparam int NUM_LAYERS = {n};",
        "",
        "  // Entry (layer, kind) of SEG_BASE_FLAT / SEG_WORDS_FLAT is at",
        "  // [(layer * NUM_KINDS + kind) * width +: width]; use seg_base / seg_words.",
    ]
    labels = [f"layer {i} {s.name}: record, biases, weights" for i, s in enumerate(layout.layers)]
    bases = [(seg.base, f"{ab}'h{seg.base:0{digits}x}") for i in range(n)
             for seg in (layout.segment(i, t) for t in TENSORS)]
    words = [(seg.words, f"{hw}'d{seg.words}") for i in range(n)
             for seg in (layout.segment(i, t) for t in TENSORS)]
    body += _flat("SEG_BASE_FLAT", "ADDR_BITS", bases, "NUM_LAYERS*NUM_KINDS", 3, labels)
    body += _flat("SEG_WORDS_FLAT", "HDR_COUNT_BITS", words, "NUM_LAYERS*NUM_KINDS", 3, labels)
    kinds = [(0, f"3'd{LAYER_KINDS.index(s.kind)}") for s in layout.layers]
    body += _flat("LAYER_KIND_FLAT", "3", kinds, "NUM_LAYERS", 1,
                  [f"layer {i} {s.name}: {s.kind}" for i, s in enumerate(layout.layers)])
    per_channel = sum(1 << i for i, s in enumerate(layout.layers) if s.per_channel)
    body += [
        "  // bit i: layer i has per-channel weights (its record has shift and",
        "  // weight-exponent words after the control word)",
        f"  localparam logic [NUM_LAYERS-1:0] LAYER_PER_CHANNEL = {n}'h{per_channel:x};",
        "",
        "  // 1 when (layer, kind) names a segment of this layout.",
        "  function automatic logic seg_valid(input logic [HDR_LAYER_BITS-1:0] layer,",
        "                                     input logic [HDR_KIND_BITS-1:0] kind);",
        "    return 32'(layer) < 32'(NUM_LAYERS) && 32'(kind) < 32'(NUM_KINDS);",
        "  endfunction",
        "",
        "  // First word address of segment (layer, kind); needs seg_valid(layer, kind).",
        "  function automatic logic [ADDR_BITS-1:0] seg_base(",
        "      input logic [HDR_LAYER_BITS-1:0] layer, input logic [HDR_KIND_BITS-1:0] kind);",
        "    return SEG_BASE_FLAT[(32'(layer) * NUM_KINDS + 32'(kind)) * ADDR_BITS +: ADDR_BITS];",
        "  endfunction",
        "",
        "  // Data words of segment (layer, kind); needs seg_valid(layer, kind).",
        "  function automatic logic [HDR_COUNT_BITS-1:0] seg_words(",
        "      input logic [HDR_LAYER_BITS-1:0] layer, input logic [HDR_KIND_BITS-1:0] kind);",
        "    return SEG_WORDS_FLAT[(32'(layer) * NUM_KINDS + 32'(kind)) * HDR_COUNT_BITS +:",
        "                          HDR_COUNT_BITS];",
        "  endfunction",
        "",
        "  // Layer kind code (LAYER_*) of a layer; needs layer < NUM_LAYERS.",
        "  function automatic logic [2:0] layer_kind(input logic [HDR_LAYER_BITS-1:0] layer);",
        "    return LAYER_KIND_FLAT[32'(layer) * 3 +: 3];",
        "  endfunction",
        "",
        "  /* verilator lint_on UNUSEDPARAM */",
        "",
        "endpackage : cnn_layout_pkg",
        "",
    ]
    return "\n".join(head + body)


def default_layout() -> Layout:
    """The layout the committed file describes: MobileNetV2-ReLU shapes, default config."""
    return Layout.from_shapes(model_shapes(), LayoutConfig())


def default_text() -> str:
    """The text rtl/cnn_layout_pkg.sv must have."""
    layout = default_layout()
    return generate(layout, f"MobileNetV2-ReLU, 10 classes, per-tensor weights "
                            f"({len(layout.layers)} weighted layers; quant.model, as "
                            "`cosim package` exports the shipped checkpoint)",
                    made_by=REGENERATE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cosim.golden.svpkg", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if the file is stale "
                      "(the default)")
    mode.add_argument("--write", action="store_true", help="regenerate the file")
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH,
                        help="the package file (default: rtl/cnn_layout_pkg.sv)")
    args = parser.parse_args(argv)
    text = default_text()
    if args.write:
        atomic_write_bytes(args.out, text.encode("ascii"))
        print(f"wrote {args.out}")
        return 0
    current = args.out.read_text(encoding="ascii") if args.out.is_file() else None
    if current != text:
        print(f"{args.out} is stale or missing; regenerate with: {REGENERATE}", file=sys.stderr)
        return 1
    print(f"{args.out} is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
