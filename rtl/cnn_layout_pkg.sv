// cnn_layout_pkg.sv: parameter-memory layout of the CNN accelerator.
//
// GENERATED FILE, DO NOT EDIT. Written by golden/svpkg.py from the package
// manifest's weighted layers (shapes and per-channel-ness only) and the
// LayoutConfig below. Regenerate with:
//     .venv/bin/python -m cosim.golden.svpkg --write
// (`python -m cosim.golden.svpkg --check` tells whether this file is current.)
//
// Network: MobileNetV2-ReLU, 10 classes, per-tensor weights (53 weighted
// layers; quant.model, as `cosim package` exports the shipped checkpoint)
// LayoutConfig: word_bits=64 tile_oc=8 tile_ic=8 kernel_order=kh_kw segment_align=8 region_align=4096
//   tile_dw=8 weight_loop_order=oc_tile,ic_tile,kh,kw,oc,ic
//   depthwise_loop_order=c_tile,kh,kw,c bias_bits=16 lane_order=little
//   record_format=word_aligned region_order=weights,biases,records
//   memory_depth=auto address_unit=word header=64 bits, magic 0xa5, magic
//   [63:56], layer [55:48], kind [47:44], count [39:16]
//
// Addresses are WORD addresses (one WORD_BITS-bit word each), not bytes.
// Lanes are little-endian: lane 0 = bits [7:0] (int16 bias lanes: [15:0]).
// Segment kinds: 0 weights, 1 biases, 2 record. A loader takes the stream
// header (HDR_*), checks magic, layer < NUM_LAYERS, kind < NUM_KINDS and
// count == seg_words(layer, kind), then writes the count data words to
// seg_base(layer, kind), seg_base + 1, ... The stream carries no addresses.
// See docs/layout.md.
//
//   #  layer                  kind      weight shape   pc weights base  words  biases base words  record base words
//   0  features.0.0           regular   32x3x3x3       n           0x0    288      0x44000     8      0x46000     3
//   1  features.1.conv.0.0    depthwise 32x1x3x3       n         0x120     36      0x44008     8      0x46008     3
//   2  features.1.conv.1      pointwise 16x32x1x1      n         0x148     64      0x44010     4      0x46010     3
//   3  features.2.conv.0.0    pointwise 96x16x1x1      n         0x188    192      0x44018    24      0x46018     3
//   4  features.2.conv.1.0    depthwise 96x1x3x3       n         0x248    108      0x44030    24      0x46020     3
//   5  features.2.conv.2      pointwise 24x96x1x1      n         0x2b8    288      0x44048     6      0x46028     3
//   6  features.3.conv.0.0    pointwise 144x24x1x1     n         0x3d8    432      0x44050    36      0x46030     3
//   7  features.3.conv.1.0    depthwise 144x1x3x3      n         0x588    162      0x44078    36      0x46038     3
//   8  features.3.conv.2      pointwise 24x144x1x1     n         0x630    432      0x440a0     6      0x46040     3
//   9  features.4.conv.0.0    pointwise 144x24x1x1     n         0x7e0    432      0x440a8    36      0x46048     3
//  10  features.4.conv.1.0    depthwise 144x1x3x3      n         0x990    162      0x440d0    36      0x46050     3
//  11  features.4.conv.2      pointwise 32x144x1x1     n         0xa38    576      0x440f8     8      0x46058     3
//  12  features.5.conv.0.0    pointwise 192x32x1x1     n         0xc78    768      0x44100    48      0x46060     3
//  13  features.5.conv.1.0    depthwise 192x1x3x3      n         0xf78    216      0x44130    48      0x46068     3
//  14  features.5.conv.2      pointwise 32x192x1x1     n        0x1050    768      0x44160     8      0x46070     3
//  15  features.6.conv.0.0    pointwise 192x32x1x1     n        0x1350    768      0x44168    48      0x46078     3
//  16  features.6.conv.1.0    depthwise 192x1x3x3      n        0x1650    216      0x44198    48      0x46080     3
//  17  features.6.conv.2      pointwise 32x192x1x1     n        0x1728    768      0x441c8     8      0x46088     3
//  18  features.7.conv.0.0    pointwise 192x32x1x1     n        0x1a28    768      0x441d0    48      0x46090     3
//  19  features.7.conv.1.0    depthwise 192x1x3x3      n        0x1d28    216      0x44200    48      0x46098     3
//  20  features.7.conv.2      pointwise 64x192x1x1     n        0x1e00   1536      0x44230    16      0x460a0     3
//  21  features.8.conv.0.0    pointwise 384x64x1x1     n        0x2400   3072      0x44240    96      0x460a8     3
//  22  features.8.conv.1.0    depthwise 384x1x3x3      n        0x3000    432      0x442a0    96      0x460b0     3
//  23  features.8.conv.2      pointwise 64x384x1x1     n        0x31b0   3072      0x44300    16      0x460b8     3
//  24  features.9.conv.0.0    pointwise 384x64x1x1     n        0x3db0   3072      0x44310    96      0x460c0     3
//  25  features.9.conv.1.0    depthwise 384x1x3x3      n        0x49b0    432      0x44370    96      0x460c8     3
//  26  features.9.conv.2      pointwise 64x384x1x1     n        0x4b60   3072      0x443d0    16      0x460d0     3
//  27  features.10.conv.0.0   pointwise 384x64x1x1     n        0x5760   3072      0x443e0    96      0x460d8     3
//  28  features.10.conv.1.0   depthwise 384x1x3x3      n        0x6360    432      0x44440    96      0x460e0     3
//  29  features.10.conv.2     pointwise 64x384x1x1     n        0x6510   3072      0x444a0    16      0x460e8     3
//  30  features.11.conv.0.0   pointwise 384x64x1x1     n        0x7110   3072      0x444b0    96      0x460f0     3
//  31  features.11.conv.1.0   depthwise 384x1x3x3      n        0x7d10    432      0x44510    96      0x460f8     3
//  32  features.11.conv.2     pointwise 96x384x1x1     n        0x7ec0   4608      0x44570    24      0x46100     3
//  33  features.12.conv.0.0   pointwise 576x96x1x1     n        0x90c0   6912      0x44588   144      0x46108     3
//  34  features.12.conv.1.0   depthwise 576x1x3x3      n        0xabc0    648      0x44618   144      0x46110     3
//  35  features.12.conv.2     pointwise 96x576x1x1     n        0xae48   6912      0x446a8    24      0x46118     3
//  36  features.13.conv.0.0   pointwise 576x96x1x1     n        0xc948   6912      0x446c0   144      0x46120     3
//  37  features.13.conv.1.0   depthwise 576x1x3x3      n        0xe448    648      0x44750   144      0x46128     3
//  38  features.13.conv.2     pointwise 96x576x1x1     n        0xe6d0   6912      0x447e0    24      0x46130     3
//  39  features.14.conv.0.0   pointwise 576x96x1x1     n       0x101d0   6912      0x447f8   144      0x46138     3
//  40  features.14.conv.1.0   depthwise 576x1x3x3      n       0x11cd0    648      0x44888   144      0x46140     3
//  41  features.14.conv.2     pointwise 160x576x1x1    n       0x11f58  11520      0x44918    40      0x46148     3
//  42  features.15.conv.0.0   pointwise 960x160x1x1    n       0x14c58  19200      0x44940   240      0x46150     3
//  43  features.15.conv.1.0   depthwise 960x1x3x3      n       0x19758   1080      0x44a30   240      0x46158     3
//  44  features.15.conv.2     pointwise 160x960x1x1    n       0x19b90  19200      0x44b20    40      0x46160     3
//  45  features.16.conv.0.0   pointwise 960x160x1x1    n       0x1e690  19200      0x44b48   240      0x46168     3
//  46  features.16.conv.1.0   depthwise 960x1x3x3      n       0x23190   1080      0x44c38   240      0x46170     3
//  47  features.16.conv.2     pointwise 160x960x1x1    n       0x235c8  19200      0x44d28    40      0x46178     3
//  48  features.17.conv.0.0   pointwise 960x160x1x1    n       0x280c8  19200      0x44d50   240      0x46180     3
//  49  features.17.conv.1.0   depthwise 960x1x3x3      n       0x2cbc8   1080      0x44e40   240      0x46188     3
//  50  features.17.conv.2     pointwise 320x960x1x1    n       0x2d000  38400      0x44f30    80      0x46190     3
//  51  features.18.0          pointwise 1280x320x1x1   n       0x36600  51200      0x44f80   320      0x46198     3
//  52  classifier.1           linear    10x1280        n       0x42e00   2560      0x450c0     4      0x461a0     3

`timescale 1ns / 1ps

package cnn_layout_pkg;

  // A table of constants: a user reads some of them (lint_on at the end).
  /* verilator lint_off UNUSEDPARAM */

  // ---- memory word
  localparam int WORD_BITS = 64;
  localparam int LANES = 8;  // int8 lanes per word (= TILE_IC)
  localparam int BIAS_LANES = 4;  // int16 lanes per bias word
  localparam int TILE_OC = 8;
  localparam int TILE_IC = 8;
  localparam bit KERNEL_KH_OUTER = 1'b1;  // 1: kh outer, kw inner
  localparam int SEGMENT_ALIGN = 8;  // words
  localparam int REGION_ALIGN = 4096;  // words
  localparam int WORD_BYTES = 8;  // WORD_BITS / 8
  localparam int BIAS_BITS = 16;  // bias element width
  localparam int TILE_DW = 8;  // depthwise channel tile
  localparam bit LANE_ORDER_BIG = 1'b0;  // 1: lane 0 in the top bits
  localparam bit RECORD_PACKED = 1'b0;  // 1: record parts packed densely

  // ---- memory (word addresses)
  localparam int MEM_DEPTH = 287139;  // words, end of the records region
  localparam int ADDR_BITS = 19;  // clog2(MEM_DEPTH)
  localparam int ADDR_BYTE = 0;  // 1: byte addresses on the memory port
  localparam int MEM_ADDR_BITS = 19;  // DUT memory address port width
  localparam logic [ADDR_BITS-1:0] WEIGHTS_BASE = 19'h00000;  // 276460 words used, end 0x43800
  localparam logic [ADDR_BITS-1:0] BIASES_BASE = 19'h44000;  // 4268 words used, end 0x450c4
  localparam logic [ADDR_BITS-1:0] RECORDS_BASE = 19'h46000;  // 159 words used, end 0x461a3

  // ---- segment kinds (stream header kind field)
  localparam int NUM_KINDS = 3;
  localparam logic [3:0] SEG_WEIGHTS = 4'd0;
  localparam logic [3:0] SEG_BIASES = 4'd1;
  localparam logic [3:0] SEG_RECORDS = 4'd2;

  // ---- layer kinds (record bits [27:25])
  localparam logic [2:0] LAYER_REGULAR = 3'd0;
  localparam logic [2:0] LAYER_DEPTHWISE = 3'd1;
  localparam logic [2:0] LAYER_POINTWISE = 3'd2;
  localparam logic [2:0] LAYER_LINEAR = 3'd3;
  localparam logic [2:0] LAYER_GROUPED = 3'd4;

  // ---- stream header word: magic, layer, kind, data word count (no address)
  localparam logic [7:0] HEADER_MAGIC = 8'hA5;
  localparam int HDR_BITS = 64;  // header width
  localparam int HDR_WORDS = 1;  // words per header, low word first
  localparam int HDR_MAGIC_LSB = 56;
  localparam int HDR_MAGIC_BITS = 8;
  localparam int HDR_LAYER_LSB = 48;
  localparam int HDR_LAYER_BITS = 8;
  localparam int HDR_KIND_LSB = 44;
  localparam int HDR_KIND_BITS = 4;
  localparam int HDR_COUNT_LSB = 16;
  localparam int HDR_COUNT_BITS = 24;

  // ---- record control word (word 0 of a record segment)
  localparam int REC_SHIFT_LSB = 0;
  localparam int REC_SHIFT_BITS = 8;
  localparam int REC_IN_ZP_LSB = 8;
  localparam int REC_IN_ZP_BITS = 8;
  localparam int REC_OUT_ZP_LSB = 16;
  localparam int REC_OUT_ZP_BITS = 8;
  localparam int REC_RELU_LSB = 24;
  localparam int REC_RELU_BITS = 1;
  localparam int REC_KIND_LSB = 25;
  localparam int REC_KIND_BITS = 3;
  localparam int REC_IN_EXP_LSB = 32;
  localparam int REC_IN_EXP_BITS = 8;
  localparam int REC_W_EXP_LSB = 40;
  localparam int REC_W_EXP_BITS = 8;
  localparam int REC_OUT_EXP_LSB = 48;
  localparam int REC_OUT_EXP_BITS = 8;

  // ---- record words 1 (channels) and 2 (kernel): geometry; per-channel shift
  // and weight-exponent words follow from word REC_FIXED_WORDS on
  localparam int REC_FIXED_WORDS = 3;
  localparam int REC_PART_WORDS = 1;  // words per 64-bit record part (word_aligned)
  localparam int REC_CHANNELS_WORD = 1;
  localparam int REC_KERNEL_WORD = 2;
  localparam int REC_OUT_CHANNELS_LSB = 0;  // in record word 1
  localparam int REC_OUT_CHANNELS_BITS = 24;
  localparam int REC_IN_CHANNELS_LSB = 24;  // in record word 1
  localparam int REC_IN_CHANNELS_BITS = 24;
  localparam int REC_GROUPS_LSB = 48;  // in record word 1
  localparam int REC_GROUPS_BITS = 16;
  localparam int REC_KERNEL_H_LSB = 0;  // in record word 2
  localparam int REC_KERNEL_H_BITS = 8;
  localparam int REC_KERNEL_W_LSB = 8;  // in record word 2
  localparam int REC_KERNEL_W_BITS = 8;
  localparam int REC_STRIDE_H_LSB = 16;  // in record word 2
  localparam int REC_STRIDE_H_BITS = 8;
  localparam int REC_STRIDE_W_LSB = 24;  // in record word 2
  localparam int REC_STRIDE_W_BITS = 8;
  localparam int REC_PADDING_H_LSB = 32;  // in record word 2
  localparam int REC_PADDING_H_BITS = 8;
  localparam int REC_PADDING_W_LSB = 40;  // in record word 2
  localparam int REC_PADDING_W_BITS = 8;
  localparam int REC_DILATION_H_LSB = 48;  // in record word 2
  localparam int REC_DILATION_H_BITS = 8;
  localparam int REC_DILATION_W_LSB = 56;  // in record word 2
  localparam int REC_DILATION_W_BITS = 8;

  // ---- layers, in execution order
  localparam int NUM_LAYERS = 53;

  // Entry (layer, kind) of SEG_BASE_FLAT / SEG_WORDS_FLAT is at
  // [(layer * NUM_KINDS + kind) * width +: width]; use seg_base / seg_words.
  localparam logic [NUM_LAYERS*NUM_KINDS*ADDR_BITS-1:0] SEG_BASE_FLAT = {
    19'h461a0, 19'h450c0, 19'h42e00,  // layer 52 classifier.1: record, biases, weights
    19'h46198, 19'h44f80, 19'h36600,  // layer 51 features.18.0: record, biases, weights
    19'h46190, 19'h44f30, 19'h2d000,  // layer 50 features.17.conv.2: record, biases, weights
    19'h46188, 19'h44e40, 19'h2cbc8,  // layer 49 features.17.conv.1.0: record, biases, weights
    19'h46180, 19'h44d50, 19'h280c8,  // layer 48 features.17.conv.0.0: record, biases, weights
    19'h46178, 19'h44d28, 19'h235c8,  // layer 47 features.16.conv.2: record, biases, weights
    19'h46170, 19'h44c38, 19'h23190,  // layer 46 features.16.conv.1.0: record, biases, weights
    19'h46168, 19'h44b48, 19'h1e690,  // layer 45 features.16.conv.0.0: record, biases, weights
    19'h46160, 19'h44b20, 19'h19b90,  // layer 44 features.15.conv.2: record, biases, weights
    19'h46158, 19'h44a30, 19'h19758,  // layer 43 features.15.conv.1.0: record, biases, weights
    19'h46150, 19'h44940, 19'h14c58,  // layer 42 features.15.conv.0.0: record, biases, weights
    19'h46148, 19'h44918, 19'h11f58,  // layer 41 features.14.conv.2: record, biases, weights
    19'h46140, 19'h44888, 19'h11cd0,  // layer 40 features.14.conv.1.0: record, biases, weights
    19'h46138, 19'h447f8, 19'h101d0,  // layer 39 features.14.conv.0.0: record, biases, weights
    19'h46130, 19'h447e0, 19'h0e6d0,  // layer 38 features.13.conv.2: record, biases, weights
    19'h46128, 19'h44750, 19'h0e448,  // layer 37 features.13.conv.1.0: record, biases, weights
    19'h46120, 19'h446c0, 19'h0c948,  // layer 36 features.13.conv.0.0: record, biases, weights
    19'h46118, 19'h446a8, 19'h0ae48,  // layer 35 features.12.conv.2: record, biases, weights
    19'h46110, 19'h44618, 19'h0abc0,  // layer 34 features.12.conv.1.0: record, biases, weights
    19'h46108, 19'h44588, 19'h090c0,  // layer 33 features.12.conv.0.0: record, biases, weights
    19'h46100, 19'h44570, 19'h07ec0,  // layer 32 features.11.conv.2: record, biases, weights
    19'h460f8, 19'h44510, 19'h07d10,  // layer 31 features.11.conv.1.0: record, biases, weights
    19'h460f0, 19'h444b0, 19'h07110,  // layer 30 features.11.conv.0.0: record, biases, weights
    19'h460e8, 19'h444a0, 19'h06510,  // layer 29 features.10.conv.2: record, biases, weights
    19'h460e0, 19'h44440, 19'h06360,  // layer 28 features.10.conv.1.0: record, biases, weights
    19'h460d8, 19'h443e0, 19'h05760,  // layer 27 features.10.conv.0.0: record, biases, weights
    19'h460d0, 19'h443d0, 19'h04b60,  // layer 26 features.9.conv.2: record, biases, weights
    19'h460c8, 19'h44370, 19'h049b0,  // layer 25 features.9.conv.1.0: record, biases, weights
    19'h460c0, 19'h44310, 19'h03db0,  // layer 24 features.9.conv.0.0: record, biases, weights
    19'h460b8, 19'h44300, 19'h031b0,  // layer 23 features.8.conv.2: record, biases, weights
    19'h460b0, 19'h442a0, 19'h03000,  // layer 22 features.8.conv.1.0: record, biases, weights
    19'h460a8, 19'h44240, 19'h02400,  // layer 21 features.8.conv.0.0: record, biases, weights
    19'h460a0, 19'h44230, 19'h01e00,  // layer 20 features.7.conv.2: record, biases, weights
    19'h46098, 19'h44200, 19'h01d28,  // layer 19 features.7.conv.1.0: record, biases, weights
    19'h46090, 19'h441d0, 19'h01a28,  // layer 18 features.7.conv.0.0: record, biases, weights
    19'h46088, 19'h441c8, 19'h01728,  // layer 17 features.6.conv.2: record, biases, weights
    19'h46080, 19'h44198, 19'h01650,  // layer 16 features.6.conv.1.0: record, biases, weights
    19'h46078, 19'h44168, 19'h01350,  // layer 15 features.6.conv.0.0: record, biases, weights
    19'h46070, 19'h44160, 19'h01050,  // layer 14 features.5.conv.2: record, biases, weights
    19'h46068, 19'h44130, 19'h00f78,  // layer 13 features.5.conv.1.0: record, biases, weights
    19'h46060, 19'h44100, 19'h00c78,  // layer 12 features.5.conv.0.0: record, biases, weights
    19'h46058, 19'h440f8, 19'h00a38,  // layer 11 features.4.conv.2: record, biases, weights
    19'h46050, 19'h440d0, 19'h00990,  // layer 10 features.4.conv.1.0: record, biases, weights
    19'h46048, 19'h440a8, 19'h007e0,  // layer 9 features.4.conv.0.0: record, biases, weights
    19'h46040, 19'h440a0, 19'h00630,  // layer 8 features.3.conv.2: record, biases, weights
    19'h46038, 19'h44078, 19'h00588,  // layer 7 features.3.conv.1.0: record, biases, weights
    19'h46030, 19'h44050, 19'h003d8,  // layer 6 features.3.conv.0.0: record, biases, weights
    19'h46028, 19'h44048, 19'h002b8,  // layer 5 features.2.conv.2: record, biases, weights
    19'h46020, 19'h44030, 19'h00248,  // layer 4 features.2.conv.1.0: record, biases, weights
    19'h46018, 19'h44018, 19'h00188,  // layer 3 features.2.conv.0.0: record, biases, weights
    19'h46010, 19'h44010, 19'h00148,  // layer 2 features.1.conv.1: record, biases, weights
    19'h46008, 19'h44008, 19'h00120,  // layer 1 features.1.conv.0.0: record, biases, weights
    19'h46000, 19'h44000, 19'h00000  // layer 0 features.0.0: record, biases, weights
  };
  localparam logic [NUM_LAYERS*NUM_KINDS*HDR_COUNT_BITS-1:0] SEG_WORDS_FLAT = {
    24'd3, 24'd4, 24'd2560,  // layer 52 classifier.1: record, biases, weights
    24'd3, 24'd320, 24'd51200,  // layer 51 features.18.0: record, biases, weights
    24'd3, 24'd80, 24'd38400,  // layer 50 features.17.conv.2: record, biases, weights
    24'd3, 24'd240, 24'd1080,  // layer 49 features.17.conv.1.0: record, biases, weights
    24'd3, 24'd240, 24'd19200,  // layer 48 features.17.conv.0.0: record, biases, weights
    24'd3, 24'd40, 24'd19200,  // layer 47 features.16.conv.2: record, biases, weights
    24'd3, 24'd240, 24'd1080,  // layer 46 features.16.conv.1.0: record, biases, weights
    24'd3, 24'd240, 24'd19200,  // layer 45 features.16.conv.0.0: record, biases, weights
    24'd3, 24'd40, 24'd19200,  // layer 44 features.15.conv.2: record, biases, weights
    24'd3, 24'd240, 24'd1080,  // layer 43 features.15.conv.1.0: record, biases, weights
    24'd3, 24'd240, 24'd19200,  // layer 42 features.15.conv.0.0: record, biases, weights
    24'd3, 24'd40, 24'd11520,  // layer 41 features.14.conv.2: record, biases, weights
    24'd3, 24'd144, 24'd648,  // layer 40 features.14.conv.1.0: record, biases, weights
    24'd3, 24'd144, 24'd6912,  // layer 39 features.14.conv.0.0: record, biases, weights
    24'd3, 24'd24, 24'd6912,  // layer 38 features.13.conv.2: record, biases, weights
    24'd3, 24'd144, 24'd648,  // layer 37 features.13.conv.1.0: record, biases, weights
    24'd3, 24'd144, 24'd6912,  // layer 36 features.13.conv.0.0: record, biases, weights
    24'd3, 24'd24, 24'd6912,  // layer 35 features.12.conv.2: record, biases, weights
    24'd3, 24'd144, 24'd648,  // layer 34 features.12.conv.1.0: record, biases, weights
    24'd3, 24'd144, 24'd6912,  // layer 33 features.12.conv.0.0: record, biases, weights
    24'd3, 24'd24, 24'd4608,  // layer 32 features.11.conv.2: record, biases, weights
    24'd3, 24'd96, 24'd432,  // layer 31 features.11.conv.1.0: record, biases, weights
    24'd3, 24'd96, 24'd3072,  // layer 30 features.11.conv.0.0: record, biases, weights
    24'd3, 24'd16, 24'd3072,  // layer 29 features.10.conv.2: record, biases, weights
    24'd3, 24'd96, 24'd432,  // layer 28 features.10.conv.1.0: record, biases, weights
    24'd3, 24'd96, 24'd3072,  // layer 27 features.10.conv.0.0: record, biases, weights
    24'd3, 24'd16, 24'd3072,  // layer 26 features.9.conv.2: record, biases, weights
    24'd3, 24'd96, 24'd432,  // layer 25 features.9.conv.1.0: record, biases, weights
    24'd3, 24'd96, 24'd3072,  // layer 24 features.9.conv.0.0: record, biases, weights
    24'd3, 24'd16, 24'd3072,  // layer 23 features.8.conv.2: record, biases, weights
    24'd3, 24'd96, 24'd432,  // layer 22 features.8.conv.1.0: record, biases, weights
    24'd3, 24'd96, 24'd3072,  // layer 21 features.8.conv.0.0: record, biases, weights
    24'd3, 24'd16, 24'd1536,  // layer 20 features.7.conv.2: record, biases, weights
    24'd3, 24'd48, 24'd216,  // layer 19 features.7.conv.1.0: record, biases, weights
    24'd3, 24'd48, 24'd768,  // layer 18 features.7.conv.0.0: record, biases, weights
    24'd3, 24'd8, 24'd768,  // layer 17 features.6.conv.2: record, biases, weights
    24'd3, 24'd48, 24'd216,  // layer 16 features.6.conv.1.0: record, biases, weights
    24'd3, 24'd48, 24'd768,  // layer 15 features.6.conv.0.0: record, biases, weights
    24'd3, 24'd8, 24'd768,  // layer 14 features.5.conv.2: record, biases, weights
    24'd3, 24'd48, 24'd216,  // layer 13 features.5.conv.1.0: record, biases, weights
    24'd3, 24'd48, 24'd768,  // layer 12 features.5.conv.0.0: record, biases, weights
    24'd3, 24'd8, 24'd576,  // layer 11 features.4.conv.2: record, biases, weights
    24'd3, 24'd36, 24'd162,  // layer 10 features.4.conv.1.0: record, biases, weights
    24'd3, 24'd36, 24'd432,  // layer 9 features.4.conv.0.0: record, biases, weights
    24'd3, 24'd6, 24'd432,  // layer 8 features.3.conv.2: record, biases, weights
    24'd3, 24'd36, 24'd162,  // layer 7 features.3.conv.1.0: record, biases, weights
    24'd3, 24'd36, 24'd432,  // layer 6 features.3.conv.0.0: record, biases, weights
    24'd3, 24'd6, 24'd288,  // layer 5 features.2.conv.2: record, biases, weights
    24'd3, 24'd24, 24'd108,  // layer 4 features.2.conv.1.0: record, biases, weights
    24'd3, 24'd24, 24'd192,  // layer 3 features.2.conv.0.0: record, biases, weights
    24'd3, 24'd4, 24'd64,  // layer 2 features.1.conv.1: record, biases, weights
    24'd3, 24'd8, 24'd36,  // layer 1 features.1.conv.0.0: record, biases, weights
    24'd3, 24'd8, 24'd288  // layer 0 features.0.0: record, biases, weights
  };
  localparam logic [NUM_LAYERS*3-1:0] LAYER_KIND_FLAT = {
    3'd3,  // layer 52 classifier.1: linear
    3'd2,  // layer 51 features.18.0: pointwise
    3'd2,  // layer 50 features.17.conv.2: pointwise
    3'd1,  // layer 49 features.17.conv.1.0: depthwise
    3'd2,  // layer 48 features.17.conv.0.0: pointwise
    3'd2,  // layer 47 features.16.conv.2: pointwise
    3'd1,  // layer 46 features.16.conv.1.0: depthwise
    3'd2,  // layer 45 features.16.conv.0.0: pointwise
    3'd2,  // layer 44 features.15.conv.2: pointwise
    3'd1,  // layer 43 features.15.conv.1.0: depthwise
    3'd2,  // layer 42 features.15.conv.0.0: pointwise
    3'd2,  // layer 41 features.14.conv.2: pointwise
    3'd1,  // layer 40 features.14.conv.1.0: depthwise
    3'd2,  // layer 39 features.14.conv.0.0: pointwise
    3'd2,  // layer 38 features.13.conv.2: pointwise
    3'd1,  // layer 37 features.13.conv.1.0: depthwise
    3'd2,  // layer 36 features.13.conv.0.0: pointwise
    3'd2,  // layer 35 features.12.conv.2: pointwise
    3'd1,  // layer 34 features.12.conv.1.0: depthwise
    3'd2,  // layer 33 features.12.conv.0.0: pointwise
    3'd2,  // layer 32 features.11.conv.2: pointwise
    3'd1,  // layer 31 features.11.conv.1.0: depthwise
    3'd2,  // layer 30 features.11.conv.0.0: pointwise
    3'd2,  // layer 29 features.10.conv.2: pointwise
    3'd1,  // layer 28 features.10.conv.1.0: depthwise
    3'd2,  // layer 27 features.10.conv.0.0: pointwise
    3'd2,  // layer 26 features.9.conv.2: pointwise
    3'd1,  // layer 25 features.9.conv.1.0: depthwise
    3'd2,  // layer 24 features.9.conv.0.0: pointwise
    3'd2,  // layer 23 features.8.conv.2: pointwise
    3'd1,  // layer 22 features.8.conv.1.0: depthwise
    3'd2,  // layer 21 features.8.conv.0.0: pointwise
    3'd2,  // layer 20 features.7.conv.2: pointwise
    3'd1,  // layer 19 features.7.conv.1.0: depthwise
    3'd2,  // layer 18 features.7.conv.0.0: pointwise
    3'd2,  // layer 17 features.6.conv.2: pointwise
    3'd1,  // layer 16 features.6.conv.1.0: depthwise
    3'd2,  // layer 15 features.6.conv.0.0: pointwise
    3'd2,  // layer 14 features.5.conv.2: pointwise
    3'd1,  // layer 13 features.5.conv.1.0: depthwise
    3'd2,  // layer 12 features.5.conv.0.0: pointwise
    3'd2,  // layer 11 features.4.conv.2: pointwise
    3'd1,  // layer 10 features.4.conv.1.0: depthwise
    3'd2,  // layer 9 features.4.conv.0.0: pointwise
    3'd2,  // layer 8 features.3.conv.2: pointwise
    3'd1,  // layer 7 features.3.conv.1.0: depthwise
    3'd2,  // layer 6 features.3.conv.0.0: pointwise
    3'd2,  // layer 5 features.2.conv.2: pointwise
    3'd1,  // layer 4 features.2.conv.1.0: depthwise
    3'd2,  // layer 3 features.2.conv.0.0: pointwise
    3'd2,  // layer 2 features.1.conv.1: pointwise
    3'd1,  // layer 1 features.1.conv.0.0: depthwise
    3'd0  // layer 0 features.0.0: regular
  };
  // bit i: layer i has per-channel weights (its record has shift and
  // weight-exponent words after the control word)
  localparam logic [NUM_LAYERS-1:0] LAYER_PER_CHANNEL = 53'h0;

  // 1 when (layer, kind) names a segment of this layout.
  function automatic logic seg_valid(input logic [HDR_LAYER_BITS-1:0] layer,
                                     input logic [HDR_KIND_BITS-1:0] kind);
    return 32'(layer) < 32'(NUM_LAYERS) && 32'(kind) < 32'(NUM_KINDS);
  endfunction

  // First word address of segment (layer, kind); needs seg_valid(layer, kind).
  function automatic logic [ADDR_BITS-1:0] seg_base(
      input logic [HDR_LAYER_BITS-1:0] layer, input logic [HDR_KIND_BITS-1:0] kind);
    return SEG_BASE_FLAT[(32'(layer) * NUM_KINDS + 32'(kind)) * ADDR_BITS +: ADDR_BITS];
  endfunction

  // Data words of segment (layer, kind); needs seg_valid(layer, kind).
  function automatic logic [HDR_COUNT_BITS-1:0] seg_words(
      input logic [HDR_LAYER_BITS-1:0] layer, input logic [HDR_KIND_BITS-1:0] kind);
    return SEG_WORDS_FLAT[(32'(layer) * NUM_KINDS + 32'(kind)) * HDR_COUNT_BITS +:
                          HDR_COUNT_BITS];
  endfunction

  // Layer kind code (LAYER_*) of a layer; needs layer < NUM_LAYERS.
  function automatic logic [2:0] layer_kind(input logic [HDR_LAYER_BITS-1:0] layer);
    return LAYER_KIND_FLAT[32'(layer) * 3 +: 3];
  endfunction

  /* verilator lint_on UNUSEDPARAM */

endpackage : cnn_layout_pkg
