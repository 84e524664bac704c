"""Generate rtl/cnn_layout_pkg.sv: the layout parameters and tables the RTL loader needs.

The committed file is generated from the MobileNetV2-ReLU shapes of the shipped
checkpoint (quant.model.mobilenet_v2_relu, 10 classes, per-tensor weights, as
`cosim package` builds by default) with the default LayoutConfig. The layout
depends only on shapes and per-channel-ness, so no package is needed.

    python -m cosim.golden.svpkg --check    exit 1 if rtl/cnn_layout_pkg.sv is stale
    python -m cosim.golden.svpkg --write    regenerate it

Icarus 11 has no unpacked-array localparams, so the tables are flattened packed
vectors with accessor functions (seg_base, seg_words, layer_kind).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from cosim.golden.image import HEADER_FIELDS, HEADER_MAGIC
from cosim.golden.layout import (
    CONTROL_FIELDS,
    GEOMETRY_FIELDS,
    LAYER_KINDS,
    RECORD_FIXED_WORDS,
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


def generate(layout: Layout, source: str) -> str:
    """The text of cnn_layout_pkg.sv for `layout`; `source` names the network in the header."""
    cfg = layout.config
    ab = layout.addr_bits
    hw = HEADER_FIELDS["count"][1]
    n = len(layout.layers)
    digits = (ab + 3) // 4
    config_line = " ".join(f"{k}={v}" for k, v in cfg.as_dict().items())
    head = [
        "// cnn_layout_pkg.sv: parameter-memory layout of the CNN accelerator.",
        "//",
        "// GENERATED FILE, DO NOT EDIT. Written by golden/svpkg.py from the package",
        "// manifest's weighted layers (shapes and per-channel-ness only) and the",
        "// LayoutConfig below. Regenerate with:",
        f"//     {REGENERATE}",
        "// (`python -m cosim.golden.svpkg --check` tells whether this file is current.)",
        "//",
        *[f"// {line}" for line in textwrap.wrap(f"Network: {source}", 76)],
        f"// LayoutConfig: {config_line}",
        "//",
        "// Addresses are WORD addresses (one WORD_BITS-bit word each), not bytes.",
        "// Lanes are little-endian: lane 0 = bits [7:0] (int16 bias lanes: [15:0]).",
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
        f"  localparam int LANES = {cfg.lanes};  // int8 lanes per word (= TILE_IC)",
        f"  localparam int BIAS_LANES = {cfg.bias_lanes};  // int16 lanes per bias word",
        f"  localparam int TILE_OC = {cfg.tile_oc};",
        f"  localparam int TILE_IC = {cfg.tile_ic};",
        f"  localparam bit KERNEL_KH_OUTER = 1'b{int(cfg.kernel_order == 'kh_kw')};"
        "  // 1: kh outer, kw inner",
        f"  localparam int SEGMENT_ALIGN = {cfg.segment_align};  // words",
        f"  localparam int REGION_ALIGN = {cfg.region_align};  // words",
        "",
        "  // ---- memory (word addresses)",
        f"  localparam int MEM_DEPTH = {layout.depth};  // words, end of the records region",
        f"  localparam int ADDR_BITS = {ab};  // clog2(MEM_DEPTH)",
    ]
    for r in layout.regions:
        body.append(f"  localparam logic [ADDR_BITS-1:0] {r.name.upper()}_BASE = "
                    f"{ab}'h{r.base:0{digits}x};  // {r.used} words used, end {r.end:#x}")
    body += [
        "",
        "  // ---- segment kinds (stream header kind field)",
        f"  localparam int NUM_KINDS = {len(TENSORS)};",
    ]
    kind_bits = HEADER_FIELDS["kind"][1]
    for k, region in enumerate(REGIONS):
        body.append(f"  localparam logic [{kind_bits - 1}:0] SEG_{region.upper()} = "
                    f"{kind_bits}'d{k};")
    body += ["", "  // ---- layer kinds (record bits [27:25])"]
    for k, kind in enumerate(LAYER_KINDS):
        body.append(f"  localparam logic [2:0] LAYER_{kind.upper()} = 3'd{k};")
    body += [
        "",
        "  // ---- stream header word: magic, layer, kind, data word count (no address)",
        f"  localparam logic [7:0] HEADER_MAGIC = 8'h{HEADER_MAGIC:02X};",
    ]
    for name, (lsb, width) in HEADER_FIELDS.items():
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
        f"  localparam int REC_FIXED_WORDS = {RECORD_FIXED_WORDS};",
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
                            "`cosim package` exports the shipped checkpoint)")


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
