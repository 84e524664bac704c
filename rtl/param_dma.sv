// param_dma.sv: DMA fetcher of the parameter image (AXI4 read master).
//
// Role: the accelerator fetches its own parameters. After a start pulse with
// the DRAM byte address of the image (base_addr: the image as it lies in the
// parameter memory, word address w at base_addr + w * W_BYTES), it reads
// every segment of the layout package (seg_base / seg_words, layer 0..
// NUM_LAYERS-1, kind 0..NUM_KINDS-1; empty segments skipped) with AXI4 INCR
// bursts and writes each word into the parameter memory at its word address.
// seg_first / seg_count (sampled with start) restrict the run to segment
// indices [seg_first, seg_first + seg_count), index = layer * NUM_KINDS +
// kind (seg_count = 0: from seg_first to the end), e.g. to reload one layer.
//
// Conventions (docs/stimulus-paths.md is the contract):
//   - clk rising edge, synchronous active-low reset rst_n.
//   - Bursts: arburst INCR, arsize = log2(W_BYTES) (one word per beat; the
//     AXI data width is WORD_W, a power-of-two number of bytes), arlen + 1 =
//     min(words left in the segment, MAX_BEATS, words to the next 4 KiB
//     boundary): a burst never crosses 4 KiB and never leaves its segment.
//     One burst outstanding; rready = 1 while a burst is in flight (the
//     memory takes a write every cycle).
//   - start is taken when idle (busy = 0). base_addr must be a multiple of
//     W_BYTES, else error_flags[2] and done at once (nothing read).
//   - rresp != OKAY on a beat: that beat is not written, error_flags[0]; the
//     burst is drained to its end and the DMA stops (done = 1, error = 1).
//     rlast on the wrong beat: error_flags[1], the same stop. rid not the
//     arid (0): error_flags[3] (the beat is still taken).
//   - done and error hold until the next start or reset; error_flags sticky
//     until reset. words_written (memory writes) and bursts (ARs) count the
//     current run (cleared by start).
//   - burst_end pulses with the last beat of every burst (a write log's tick).
//   - mem_addr: word address (BYTE_ADDR = 0) or byte address (BYTE_ADDR = 1).
//
// Fault injection (checks of the testbench's read monitor and scoreboard):
//   `define DMA_MUT_SKIP_WORD     the first burst of layer 1's weights starts
//                                 one word late (one word never fetched)
//   `define DMA_MUT_DOUBLE_BURST  the first burst of layer 2's weights is read
//                                 (and written) twice
//   `define DMA_MUT_CROSS_4K      bursts ignore the 4 KiB boundary

`timescale 1ns / 1ps

module param_dma
  import cnn_layout_pkg::*;
#(
    parameter int WORD_W     = WORD_BITS,
    parameter int ADDR_W     = 32,          // AXI byte-address width
    parameter int ID_W       = 4,
    parameter int MAX_BEATS  = 256,         // 1..256
    parameter bit BYTE_ADDR  = ADDR_BYTE != 0,
    parameter int MEM_ADDR_W = MEM_ADDR_BITS
) (
    input  logic                  clk,
    input  logic                  rst_n,
    // control
    input  logic                  start,
    input  logic [ADDR_W-1:0]     base_addr,
    input  logic [31:0]           seg_first,    // first segment index fetched
    input  logic [31:0]           seg_count,    // segments fetched (0: to the end)
    output logic                  busy,
    output logic                  done,
    output logic                  error,
    output logic [7:0]            error_flags,
    output logic [31:0]           words_written,
    output logic [31:0]           bursts,
    output logic                  burst_end,
    // AXI4 read address channel
    output logic [ID_W-1:0]       m_axi_arid,
    output logic [ADDR_W-1:0]     m_axi_araddr,
    output logic [7:0]            m_axi_arlen,
    output logic [2:0]            m_axi_arsize,
    output logic [1:0]            m_axi_arburst,
    output logic                  m_axi_arvalid,
    input  logic                  m_axi_arready,
    // read data channel
    input  logic [ID_W-1:0]       m_axi_rid,
    input  logic [WORD_W-1:0]     m_axi_rdata,
    input  logic [1:0]            m_axi_rresp,
    input  logic                  m_axi_rlast,
    input  logic                  m_axi_rvalid,
    output logic                  m_axi_rready,
    // memory write port
    output logic                  mem_we,
    output logic [MEM_ADDR_W-1:0] mem_addr,
    output logic [WORD_W-1:0]     mem_wdata
);

  localparam int W_BYTES = WORD_W / 8;
  localparam int LSB = $clog2(W_BYTES);
  localparam int PAGE_WORDS = 4096 / W_BYTES;  // words per 4 KiB page
  localparam int PAGE_W = $clog2(PAGE_WORDS);
  localparam int CNT_W = HDR_COUNT_BITS;          // words left in a segment
  localparam int SEG_W = $clog2(NUM_LAYERS * NUM_KINDS + 1);
  localparam int ERR_RESP = 0, ERR_LAST = 1, ERR_BASE = 2, ERR_ID = 3;

  typedef enum logic [2:0] {
    IDLE = 3'd0, PICK = 3'd1, SIZE = 3'd2, ADDR = 3'd3, DATA = 3'd4, FINISH = 3'd5
  } state_t;

  state_t               state_q;
  logic [SEG_W-1:0]     seg_q;        // segment index layer * NUM_KINDS + kind
  logic [32:0]          seg_end_q;    // first index not fetched
  logic [ADDR_BITS-1:0] word_q;       // memory word address of the next beat
  logic [CNT_W-1:0]     left_q;       // words left in the segment after this burst
  logic [8:0]           beats_q;      // beats of the burst in flight
  logic [8:0]           beat_q;       // beats received of it
  logic [ADDR_W-1:0]    base_q;
  logic [ADDR_W-1:0]    araddr_q;
  logic                 bad_q;        // the burst in flight had an error
  logic                 done_q, error_q;
  logic [7:0]           flags_q;
  logic [31:0]          words_q, bursts_q;
`ifdef DMA_MUT_DOUBLE_BURST
  logic                 doubled_q;
`endif

  // ---- the current segment (layer, kind) from its index
  logic [HDR_LAYER_BITS-1:0] cur_layer;
  logic [HDR_KIND_BITS-1:0]  cur_kind;
  assign cur_layer = HDR_LAYER_BITS'(32'(seg_q) / NUM_KINDS);
  assign cur_kind  = HDR_KIND_BITS'(32'(seg_q) % NUM_KINDS);

  // ---- the next burst: min(left, MAX_BEATS, words to the 4 KiB boundary)
  logic [ADDR_W-1:0] next_addr;
  logic [PAGE_W:0]   to_page;
  logic [CNT_W-1:0]  burst_words;
  assign next_addr = base_q + (ADDR_W'(word_q) << LSB);
  assign to_page = (PAGE_W + 1)'(PAGE_WORDS) - (PAGE_W + 1)'(next_addr[11:LSB]);
  always_comb begin
    burst_words = left_q;
    if (burst_words > CNT_W'(MAX_BEATS)) burst_words = CNT_W'(MAX_BEATS);
`ifndef DMA_MUT_CROSS_4K
    if (burst_words > CNT_W'(to_page)) burst_words = CNT_W'(to_page);
`endif
  end

  assign m_axi_arid = '0;
  assign m_axi_araddr = araddr_q;
  assign m_axi_arlen = 8'(beats_q - 9'd1);
  assign m_axi_arsize = 3'(LSB);
  assign m_axi_arburst = 2'b01;
  assign m_axi_arvalid = state_q == ADDR;
  assign m_axi_rready = state_q == DATA;

  logic r_hs, last_beat;
  assign r_hs = m_axi_rvalid && m_axi_rready;
  assign last_beat = beat_q + 9'd1 == beats_q;

  assign mem_we = r_hs && m_axi_rresp == 2'b00;
  assign mem_wdata = m_axi_rdata;
  assign mem_addr = BYTE_ADDR ? MEM_ADDR_W'(word_q) << LSB : MEM_ADDR_W'(word_q);

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      state_q <= IDLE;
      seg_q <= '0;
      seg_end_q <= '0;
      word_q <= '0;
      left_q <= '0;
      beats_q <= '0;
      beat_q <= '0;
      base_q <= '0;
      araddr_q <= '0;
      bad_q <= 1'b0;
      done_q <= 1'b0;
      error_q <= 1'b0;
      flags_q <= '0;
      words_q <= '0;
      bursts_q <= '0;
`ifdef DMA_MUT_DOUBLE_BURST
      doubled_q <= 1'b0;
`endif
    end else begin
      case (state_q)
        IDLE: if (start) begin
          base_q <= base_addr;
          seg_q <= 32'(seg_first) < NUM_LAYERS * NUM_KINDS ? SEG_W'(seg_first)
                                                            : SEG_W'(NUM_LAYERS * NUM_KINDS);
          seg_end_q <= seg_count == '0 ? 33'(NUM_LAYERS * NUM_KINDS)
                                       : 33'(seg_first) + 33'(seg_count);
          words_q <= '0;
          bursts_q <= '0;
          done_q <= 1'b0;
          error_q <= 1'b0;
          if (base_addr[LSB-1:0] != '0) begin
            flags_q[ERR_BASE] <= 1'b1;
            error_q <= 1'b1;
            state_q <= FINISH;
          end else begin
            state_q <= PICK;
          end
        end
        PICK: begin  // the segment seg_q: load it, or skip it when empty
          if (32'(seg_q) >= NUM_LAYERS * NUM_KINDS || 33'(seg_q) >= seg_end_q) begin
            state_q <= FINISH;
          end else if (seg_words(cur_layer, cur_kind) == '0) begin
            seg_q <= seg_q + SEG_W'(1);
          end else begin
            word_q <= seg_base(cur_layer, cur_kind);
            left_q <= seg_words(cur_layer, cur_kind);
            state_q <= SIZE;
`ifdef DMA_MUT_SKIP_WORD
            if (32'(seg_q) == NUM_KINDS) begin
              word_q <= seg_base(cur_layer, cur_kind) + ADDR_BITS'(1);
              left_q <= seg_words(cur_layer, cur_kind) - CNT_W'(1);
            end
`endif
          end
        end
        SIZE: begin  // the next burst of the segment: address and length
          araddr_q <= next_addr;
          beats_q <= 9'(burst_words);
          left_q <= left_q - burst_words;
          state_q <= ADDR;
        end
        ADDR: begin
          if (m_axi_arready) begin
            bursts_q <= bursts_q + 32'd1;
            beat_q <= '0;
            bad_q <= 1'b0;
            state_q <= DATA;
          end
        end
        DATA: if (r_hs) begin
          beat_q <= beat_q + 9'd1;
          word_q <= word_q + ADDR_BITS'(1);
          if (mem_we) words_q <= words_q + 32'd1;
          if (m_axi_rresp != 2'b00) begin
            flags_q[ERR_RESP] <= 1'b1;
            bad_q <= 1'b1;
          end
          if (m_axi_rlast != last_beat) begin
            flags_q[ERR_LAST] <= 1'b1;
            bad_q <= 1'b1;
          end
          if (m_axi_rid != m_axi_arid) flags_q[ERR_ID] <= 1'b1;
          if (last_beat) begin
            if (bad_q || m_axi_rresp != 2'b00 || m_axi_rlast != last_beat) begin
              error_q <= 1'b1;
              state_q <= FINISH;
`ifdef DMA_MUT_DOUBLE_BURST
            end else if (32'(seg_q) == 2 * NUM_KINDS && !doubled_q) begin
              doubled_q <= 1'b1;  // rewind: the same burst again
              word_q <= word_q + ADDR_BITS'(1) - ADDR_BITS'(beats_q);
              left_q <= left_q + CNT_W'(beats_q);
              state_q <= SIZE;
`endif
            end else if (left_q == '0) begin
              seg_q <= seg_q + SEG_W'(1);
              state_q <= PICK;
            end else begin
              state_q <= SIZE;
            end
          end
        end
        FINISH: begin
          done_q <= 1'b1;
          state_q <= IDLE;
        end
        default: state_q <= IDLE;
      endcase
    end
  end

  assign busy = state_q != IDLE;
  assign done = done_q;
  assign error = error_q;
  assign error_flags = flags_q;
  assign words_written = words_q;
  assign bursts = bursts_q;
  assign burst_end = r_hs && last_beat;

endmodule : param_dma
