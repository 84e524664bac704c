// param_loader.sv: parameter-stream loader of the CNN accelerator.
//
// Role: takes the AXI4-Stream parameter stream (segments = HDR_WORDS header
// words, then the data words; tlast on the last data word) and turns every data
// word into one write of the parameter memory. The stream carries no addresses:
// the header names (layer, kind) and the loader looks the segment up in the
// generated layout package (seg_valid / seg_base / seg_words).
//
// Conventions (docs/rtl-interface.md is the contract):
//   - clk rising edge, synchronous active-low reset rst_n.
//   - A word is accepted when s_axis_tvalid && s_axis_tready; s_axis_tready is
//     0 in reset and while mem_stall is 1 (the memory cannot take a write).
//   - Data word k (0-based) of a segment is written to seg_base + k in the
//     same cycle it is accepted: mem_we/mem_addr/mem_wdata are combinational
//     and the memory stores them at the next rising edge.
//   - States: HEADER (next word is a header), DATA, DROP (discard up to tlast).
//   - error_flags are sticky until reset; a rejected header never writes.
//   - seg_end pulses (combinational, with the accepted word) when a segment
//     ends: tlast accepted in any state, or a segment starts being dropped.
//   - Any word width (WORD_W, a multiple of 8): the header is HDR_BITS wide
//     and spans HDR_WORDS = ceil(HDR_BITS / WORD_W) stream words, low word
//     first (word 0 = header bits [WORD_W-1:0]); header bits at and above
//     HDR_BITS (padding of the last header word) are reserved (zero). Fields
//     (HDR_*_LSB/BITS) may straddle words and be wider than a word.
//   - tlast on a header word before the last one: ERR_EARLY_LAST, the partial
//     header is discarded, the next word is header word 0 again.
//   - mem_addr is a word address (ADDR_BYTE = 0) or a byte address
//     (ADDR_BYTE = 1: word address * WORD_BYTES), MEM_ADDR_W bits wide; the
//     range check is on the word address (< DEPTH).

`timescale 1ns / 1ps

module param_loader
  import cnn_layout_pkg::*;
#(
    parameter int WORD_W     = WORD_BITS,
    parameter int ADDR_W     = ADDR_BITS,      // word-address bits (seg_base)
    parameter int DEPTH      = MEM_DEPTH,      // words
    parameter int H_WORDS    = HDR_WORDS,      // stream words per header (HDR_BITS wide)
    parameter bit BYTE_ADDR  = ADDR_BYTE != 0,  // mem_addr in bytes
    parameter int MEM_ADDR_W = MEM_ADDR_BITS,  // mem_addr width
    parameter int LAYER_W    = HDR_LAYER_BITS,
    parameter int KIND_W     = HDR_KIND_BITS
) (
    input  logic              clk,
    input  logic              rst_n,
    // parameter stream
    input  logic [WORD_W-1:0] s_axis_tdata,
    input  logic              s_axis_tvalid,
    input  logic              s_axis_tlast,
    output logic              s_axis_tready,
    // memory write port
    input  logic              mem_stall,
    output logic              mem_we,
    output logic [MEM_ADDR_W-1:0] mem_addr,
    output logic [WORD_W-1:0] mem_wdata,
    // status
    output logic [2:0]        state,
    output logic [LAYER_W-1:0] layer,
    output logic [KIND_W-1:0] kind,
    output logic [31:0]       segments_done,
    output logic [31:0]       words_written,
    output logic [7:0]        error_flags,
    output logic              seg_end
);

  // ---- states (state port encoding: 0 HEADER, 1 DATA, 2 DROP)
  localparam logic [2:0] ST_HEADER = 3'd0;
  localparam logic [2:0] ST_DATA = 3'd1;
  localparam logic [2:0] ST_DROP = 3'd2;

  // ---- error flag bits
  localparam int ERR_MAGIC = 0;  // bad magic or non-zero reserved header bits
  localparam int ERR_LAYER = 1;  // layer >= NUM_LAYERS
  localparam int ERR_KIND = 2;  // kind >= NUM_KINDS
  localparam int ERR_COUNT = 3;  // header count != seg_words(layer, kind)
  localparam int ERR_EARLY_LAST = 4;  // tlast before the last data word
  localparam int ERR_NO_LAST = 5;  // no tlast on the last data word
  localparam int ERR_ADDR = 6;  // address out of range (>= DEPTH)

  localparam int CNT_W = HDR_COUNT_BITS;
  localparam int HDR_W = H_WORDS * WORD_W;  // the assembled header words
  localparam int WORD_BYTES_L = WORD_W / 8;

  // Header bits that belong to a field; every other bit of the HDR_W assembled
  // bits is reserved (zero), the padding above HDR_BITS included.
  localparam logic [HDR_W-1:0] HDR_FIELDS_MASK =
      (((HDR_W'(1) << HDR_MAGIC_BITS) - 1) << HDR_MAGIC_LSB) |
      (((HDR_W'(1) << HDR_LAYER_BITS) - 1) << HDR_LAYER_LSB) |
      (((HDR_W'(1) << HDR_KIND_BITS) - 1) << HDR_KIND_LSB) |
      (((HDR_W'(1) << HDR_COUNT_BITS) - 1) << HDR_COUNT_LSB);

  // ---- registers
  logic [2:0]        state_q;
  logic [ADDR_W-1:0] base_q;      // seg_base of the current segment
  logic [CNT_W-1:0]  word_idx_q;  // k: index of the next data word
  logic [CNT_W-1:0]  last_idx_q;  // count - 1
  logic              seg_err_q;   // a word of this segment could not be written
  logic [LAYER_W-1:0] layer_q;
  logic [KIND_W-1:0] kind_q;
  logic [31:0]       segments_done_q;
  logic [31:0]       words_written_q;
  logic [7:0]        error_flags_q;
  logic              accept;  // a stream word is taken this cycle

  // ---- header assembly: words 0 .. H_WORDS-2 are kept, the last one completes it
  logic [HDR_W-1:0] hdr_cat;    // the header as it stands with the accepted word on top
  logic             hdr_final;  // the accepted HEADER-state word is the header's last

  if (H_WORDS == 1) begin : g_hdr_one
    assign hdr_cat = s_axis_tdata;
    assign hdr_final = 1'b1;
  end else begin : g_hdr_multi
    localparam int IDX_W = $clog2(H_WORDS);
    logic [IDX_W-1:0]        hdr_idx_q;  // header word expected next
    logic [HDR_W-WORD_W-1:0] hdr_low_q;  // header words 0 .. H_WORDS-2
    assign hdr_cat = {s_axis_tdata, hdr_low_q};
    assign hdr_final = (32'(hdr_idx_q) == H_WORDS - 1);
    always_ff @(posedge clk) begin
      if (!rst_n) begin
        hdr_idx_q <= '0;
        hdr_low_q <= '0;
      end else if (accept && state_q == ST_HEADER) begin
        if (hdr_final || s_axis_tlast) begin
          hdr_idx_q <= '0;
        end else begin
          hdr_low_q[32'(hdr_idx_q)*WORD_W+:WORD_W] <= s_axis_tdata;
          hdr_idx_q <= hdr_idx_q + IDX_W'(1);
        end
      end
    end
  end

  // ---- header decode (meaningful when the header's last word is accepted)
  logic [HDR_MAGIC_BITS-1:0] hdr_magic;
  logic [HDR_LAYER_BITS-1:0] hdr_layer;
  logic [HDR_KIND_BITS-1:0]  hdr_kind;
  logic [HDR_COUNT_BITS-1:0] hdr_count;
  logic                      hdr_seg_valid;
  logic [7:0]                hdr_errors;

  assign hdr_magic = hdr_cat[HDR_MAGIC_LSB+:HDR_MAGIC_BITS];
  assign hdr_layer = hdr_cat[HDR_LAYER_LSB+:HDR_LAYER_BITS];
  assign hdr_kind = hdr_cat[HDR_KIND_LSB+:HDR_KIND_BITS];
  assign hdr_count = hdr_cat[HDR_COUNT_LSB+:HDR_COUNT_BITS];
  assign hdr_seg_valid = seg_valid(hdr_layer, hdr_kind);
  assign hdr_errors[ERR_MAGIC] = (hdr_magic != HEADER_MAGIC) ||
                                 ((hdr_cat & ~HDR_FIELDS_MASK) != '0);
  assign hdr_errors[ERR_LAYER] = 32'(hdr_layer) >= 32'(NUM_LAYERS);
  assign hdr_errors[ERR_KIND] = 32'(hdr_kind) >= 32'(NUM_KINDS);
  // the count can only be checked against a segment that exists
  assign hdr_errors[ERR_COUNT] = hdr_seg_valid && (hdr_count != seg_words(hdr_layer, hdr_kind));
  assign hdr_errors[7:4] = '0;  // data-word errors, never raised by a header alone

  // ---- handshake and write port
  logic last_word;  // the accepted DATA word is the segment's last (k == count - 1)
  logic addr_ok;    // the word address is inside the memory
  logic [ADDR_W-1:0] word_addr;  // base + k

  assign s_axis_tready = rst_n && !mem_stall;
  assign accept = s_axis_tvalid && s_axis_tready;
  assign last_word = (word_idx_q == last_idx_q);

  assign word_addr = base_q + ADDR_W'(word_idx_q);
  if (BYTE_ADDR) begin : g_byte_addr
    assign mem_addr = MEM_ADDR_W'(word_addr) * MEM_ADDR_W'(WORD_BYTES_L);
  end else begin : g_word_addr
    assign mem_addr = MEM_ADDR_W'(word_addr);
  end
  assign mem_wdata = s_axis_tdata;
  assign addr_ok = 32'(word_addr) < 32'(DEPTH);
  assign mem_we = accept && (state_q == ST_DATA) && addr_ok;

  // ---- next state, flags raised this cycle, segment completion
  logic [2:0] state_d;
  logic [7:0] new_errors;
  logic       seg_ok;  // a segment ends with all its words stored

  always_comb begin
    state_d = state_q;
    new_errors = '0;
    seg_ok = 1'b0;
    if (accept) begin
      case (state_q)
        ST_HEADER: begin
          if (!hdr_final) begin
            // a header word before the last: tlast here cuts the header short
            new_errors[ERR_EARLY_LAST] = s_axis_tlast;
          end else if (hdr_errors != '0) begin
            new_errors = hdr_errors;
            state_d = s_axis_tlast ? ST_HEADER : ST_DROP;
          end else if (s_axis_tlast) begin
            new_errors[ERR_EARLY_LAST] = 1'b1;  // a header alone: no data word at all
            state_d = ST_HEADER;
          end else begin
            state_d = ST_DATA;
          end
        end
        ST_DATA: begin
          new_errors[ERR_ADDR] = !addr_ok;
          if (s_axis_tlast && !last_word) begin
            new_errors[ERR_EARLY_LAST] = 1'b1;
            state_d = ST_HEADER;
          end else if (last_word && !s_axis_tlast) begin
            new_errors[ERR_NO_LAST] = 1'b1;
            state_d = ST_DROP;
          end else if (last_word) begin
            seg_ok = !seg_err_q && addr_ok;
            state_d = ST_HEADER;
          end
        end
        default: begin  // ST_DROP
          if (s_axis_tlast) state_d = ST_HEADER;
        end
      endcase
    end
  end

  assign seg_end = accept && (s_axis_tlast || (state_q != ST_DROP && state_d == ST_DROP));

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      state_q <= ST_HEADER;
      base_q <= '0;
      word_idx_q <= '0;
      last_idx_q <= '0;
      seg_err_q <= 1'b0;
      layer_q <= '0;
      kind_q <= '0;
      segments_done_q <= '0;
      words_written_q <= '0;
      error_flags_q <= '0;
    end else begin
      state_q <= state_d;
      error_flags_q <= error_flags_q | new_errors;
      if (mem_we) words_written_q <= words_written_q + 32'd1;
      if (seg_ok) segments_done_q <= segments_done_q + 32'd1;
      if (accept && state_q == ST_HEADER && hdr_final) begin
        layer_q <= hdr_layer;
        kind_q <= hdr_kind;
        word_idx_q <= '0;
        last_idx_q <= hdr_count - CNT_W'(1);
        seg_err_q <= 1'b0;
        // only a valid header selects a segment (seg_base needs seg_valid)
        if (hdr_seg_valid) base_q <= ADDR_W'(seg_base(hdr_layer, hdr_kind));
      end else if (accept && state_q == ST_DATA) begin
        word_idx_q <= word_idx_q + CNT_W'(1);
        if (!addr_ok) seg_err_q <= 1'b1;
      end
    end
  end

  assign state = state_q;
  assign layer = layer_q;
  assign kind = kind_q;
  assign segments_done = segments_done_q;
  assign words_written = words_written_q;
  assign error_flags = error_flags_q;

endmodule : param_loader
