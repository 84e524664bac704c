// axi_param_slave.sv: AXI4 write slave in front of the parameter memory's write port.
//
// Role: a host writes the parameter image at the layout's addresses over AXI4
// INCR bursts; every accepted beat becomes one write of the parameter memory
// (one word per beat: the AXI data width is the accelerator word width).
// Write channels only (AW, W, B): the memory has no AXI read path.
//
// Conventions (docs/stimulus-paths.md is the contract):
//   - clk rising edge, synchronous active-low reset rst_n.
//   - Byte address = word address * WORD_BYTES (WORD_BYTES = DATA_W / 8, a
//     power of two). Beat k of a burst at awaddr goes to word
//     awaddr / WORD_BYTES + k.
//   - One burst at a time: AW is accepted in IDLE, then the awlen + 1 beats
//     (wready = 1 in DATA), then one B response. W beats offered before AW
//     wait (wready = 0 until AW is taken), as AXI4 allows.
//   - A burst is legal when awburst = INCR, awsize = log2(WORD_BYTES) and
//     awaddr is a multiple of WORD_BYTES; an illegal burst writes nothing.
//   - A beat is written when the burst is legal, wstrb is all ones and the
//     word address is < DEPTH; any other beat is not written.
//   - bresp = SLVERR (2'b10) when any beat of the burst was not written or
//     wlast was wrong (on a beat other than the last, or missing on the last);
//     else OKAY. The burst always ends after awlen + 1 beats.
//   - error_flags are sticky until reset: [0] partial wstrb, [1] word address
//     >= DEPTH, [2] awburst not INCR or awsize not the word, [3] awaddr not a
//     multiple of WORD_BYTES, [4] wlast on the wrong beat.
//   - mem_addr is a word address (BYTE_ADDR = 0) or a byte address
//     (BYTE_ADDR = 1: word address * WORD_BYTES), MEM_ADDR_W bits.
//   - burst_end pulses with the B handshake (for a write log's tick).
//
// Fault injection (checks of the testbench, never in a real build):
//   `define AXI_MUT_WSTRB_LANE  the top strobe lane ignored (a strobe with only
//                                lane WORD_BYTES-1 low is taken as full)
//   `define AXI_MUT_ADDR_PLUS1  every beat written one word too high

`timescale 1ns / 1ps

module axi_param_slave #(
    parameter int DATA_W     = 64,
    parameter int ADDR_W     = 32,       // AXI byte-address width
    parameter int ID_W       = 4,
    parameter int DEPTH      = 1024,     // memory words
    parameter int WADDR_W    = $clog2(DEPTH),  // word-address bits
    parameter bit BYTE_ADDR  = 1'b0,     // mem_addr in bytes
    parameter int MEM_ADDR_W = BYTE_ADDR ? WADDR_W + $clog2(DATA_W / 8) : WADDR_W
) (
    input  logic                  clk,
    input  logic                  rst_n,
    // AXI4 write address channel
    input  logic [ID_W-1:0]       s_axi_awid,
    input  logic [ADDR_W-1:0]     s_axi_awaddr,
    input  logic [7:0]            s_axi_awlen,
    input  logic [2:0]            s_axi_awsize,
    input  logic [1:0]            s_axi_awburst,
    input  logic                  s_axi_awvalid,
    output logic                  s_axi_awready,
    // write data channel
    input  logic [DATA_W-1:0]     s_axi_wdata,
    input  logic [DATA_W/8-1:0]   s_axi_wstrb,
    input  logic                  s_axi_wlast,
    input  logic                  s_axi_wvalid,
    output logic                  s_axi_wready,
    // write response channel
    output logic [ID_W-1:0]       s_axi_bid,
    output logic [1:0]            s_axi_bresp,
    output logic                  s_axi_bvalid,
    input  logic                  s_axi_bready,
    // memory write port
    output logic                  mem_we,
    output logic [MEM_ADDR_W-1:0] mem_addr,
    output logic [DATA_W-1:0]     mem_wdata,
    // status
    output logic [7:0]            error_flags,
    output logic [31:0]           words_written,
    output logic [31:0]           bursts_done,
    output logic [31:0]           slverr_count,
    output logic                  burst_end
);

  localparam int WORD_BYTES = DATA_W / 8;
  localparam int LSB = $clog2(WORD_BYTES);   // byte-offset bits of a word
  localparam logic [2:0] SIZE = 3'(LSB);
  localparam logic [1:0] BURST_INCR = 2'b01;
  localparam logic [1:0] RESP_OKAY = 2'b00, RESP_SLVERR = 2'b10;
  // word-address arithmetic width: one bit more than the AXI word index, so an
  // address beyond the memory is seen as one (no wrap into range)
  localparam int WA_W = ADDR_W - LSB + 1;

  localparam int ERR_STRB = 0, ERR_RANGE = 1, ERR_BURST = 2, ERR_ALIGN = 3, ERR_LAST = 4;

  typedef enum logic [1:0] {IDLE = 2'd0, DATA = 2'd1, RESP = 2'd2} state_t;

  state_t            state_q;
  logic [ID_W-1:0]   id_q;
  logic [WA_W-1:0]   waddr_q;     // word address of the next beat
  logic [7:0]        beats_q;     // beats left after the current one
  logic              legal_q;     // burst type/size/alignment legal
  logic              err_q;       // SLVERR for this burst
  logic [7:0]        flags_q;
  logic [31:0]       words_q, bursts_q, slverr_q;

  logic aw_hs, w_hs, b_hs;
  assign s_axi_awready = rst_n && state_q == IDLE;
  assign s_axi_wready  = rst_n && state_q == DATA;
  assign s_axi_bvalid  = state_q == RESP;
  assign s_axi_bid     = id_q;
  assign s_axi_bresp   = err_q ? RESP_SLVERR : RESP_OKAY;
  assign aw_hs = s_axi_awvalid && s_axi_awready;
  assign w_hs  = s_axi_wvalid && s_axi_wready;
  assign b_hs  = s_axi_bvalid && s_axi_bready;

  // ---- the beat: which checks pass
  logic strb_full, in_range, last_beat, beat_ok;
  logic [WA_W-1:0] beat_addr;
`ifdef AXI_MUT_WSTRB_LANE
  assign strb_full = &s_axi_wstrb[WORD_BYTES-2:0];
`else
  assign strb_full = &s_axi_wstrb;
`endif
`ifdef AXI_MUT_ADDR_PLUS1
  assign beat_addr = waddr_q + WA_W'(1);
`else
  assign beat_addr = waddr_q;
`endif
  assign in_range  = beat_addr < WA_W'(DEPTH);
  assign last_beat = beats_q == 8'd0;
  assign beat_ok   = legal_q && strb_full && in_range;

  assign mem_we    = w_hs && beat_ok;
  assign mem_wdata = s_axi_wdata;
  assign mem_addr  = BYTE_ADDR ? MEM_ADDR_W'(beat_addr) << LSB : MEM_ADDR_W'(beat_addr);

  // ---- the burst's legality, at AW
  logic aw_legal, aw_type_ok, aw_aligned;
  assign aw_type_ok = s_axi_awburst == BURST_INCR && s_axi_awsize == SIZE;
  assign aw_aligned = s_axi_awaddr[LSB-1:0] == '0;
  assign aw_legal   = aw_type_ok && aw_aligned;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      state_q <= IDLE;
      id_q <= '0;
      waddr_q <= '0;
      beats_q <= '0;
      legal_q <= 1'b0;
      err_q <= 1'b0;
      flags_q <= '0;
      words_q <= '0;
      bursts_q <= '0;
      slverr_q <= '0;
    end else begin
      case (state_q)
        IDLE: if (aw_hs) begin
          id_q <= s_axi_awid;
          waddr_q <= WA_W'(s_axi_awaddr >> LSB);
          beats_q <= s_axi_awlen;
          legal_q <= aw_legal;
          err_q <= !aw_legal;
          if (!aw_type_ok) flags_q[ERR_BURST] <= 1'b1;
          if (!aw_aligned) flags_q[ERR_ALIGN] <= 1'b1;
          state_q <= DATA;
        end
        DATA: if (w_hs) begin
          waddr_q <= waddr_q + WA_W'(1);
          beats_q <= beats_q - 8'd1;
          if (mem_we) words_q <= words_q + 32'd1;
          if (!strb_full) flags_q[ERR_STRB] <= 1'b1;
          if (!in_range) flags_q[ERR_RANGE] <= 1'b1;
          if (s_axi_wlast != last_beat) flags_q[ERR_LAST] <= 1'b1;
          if (!beat_ok || s_axi_wlast != last_beat) err_q <= 1'b1;
          if (last_beat) state_q <= RESP;
        end
        RESP: if (b_hs) begin
          bursts_q <= bursts_q + 32'd1;
          if (err_q) slverr_q <= slverr_q + 32'd1;
          state_q <= IDLE;
        end
        default: state_q <= IDLE;
      endcase
    end
  end

  assign error_flags = flags_q;
  assign words_written = words_q;
  assign bursts_done = bursts_q;
  assign slverr_count = slverr_q;
  assign burst_end = b_hs;

endmodule : axi_param_slave
