// axi_lite_param_slave.sv: AXI4-Lite write slave in front of the parameter memory.
//
// Role: a host (a CPU's register bus) writes the parameter image one word per
// transaction at the layout's addresses. The data width is the accelerator
// word width (AXI4-Lite allows 32 and 64 bits; 32 is the natural CPU bus, the
// module takes any power-of-two byte count). Write channels only.
//
// Conventions (docs/stimulus-paths.md is the contract):
//   - clk rising edge, synchronous active-low reset rst_n.
//   - Byte address = word address * WORD_BYTES; the word written is
//     awaddr / WORD_BYTES.
//   - AW and W are taken independently (either may come first; each is held
//     in a one-entry register until the other arrives); the write happens in
//     the cycle after both are held, and its response enters a two-entry B
//     queue (answered in order). A held AW/W is replaced in the cycle it is
//     written, so back-to-back AW+W pairs are taken one per cycle while the
//     master takes B every cycle; when the B queue is full, the slave stops
//     writing and (once its holding registers are full) accepting. Every
//     ready and valid output depends on registers only (no combinational path
//     from an input of the interface).
//   - The word is written when wstrb is all ones, awaddr is a multiple of
//     WORD_BYTES and the word address is < DEPTH; otherwise nothing is
//     written and bresp = SLVERR (2'b10).
//   - error_flags are sticky until reset: [0] partial wstrb, [1] word address
//     >= DEPTH, [3] awaddr not a multiple of WORD_BYTES (the AXI4 slave's bit
//     numbers; [2] and [4] do not exist in AXI4-Lite).
//   - mem_addr: word address (BYTE_ADDR = 0) or byte address (BYTE_ADDR = 1).
//
// Fault injection: the same defines as axi_param_slave.sv
// (AXI_MUT_WSTRB_LANE, AXI_MUT_ADDR_PLUS1).

`timescale 1ns / 1ps

module axi_lite_param_slave #(
    parameter int DATA_W     = 32,
    parameter int ADDR_W     = 32,
    parameter int DEPTH      = 1024,
    parameter int WADDR_W    = $clog2(DEPTH),
    parameter bit BYTE_ADDR  = 1'b0,
    parameter int MEM_ADDR_W = BYTE_ADDR ? WADDR_W + $clog2(DATA_W / 8) : WADDR_W
) (
    input  logic                  clk,
    input  logic                  rst_n,
    input  logic [ADDR_W-1:0]     s_axil_awaddr,
    input  logic                  s_axil_awvalid,
    output logic                  s_axil_awready,
    input  logic [DATA_W-1:0]     s_axil_wdata,
    input  logic [DATA_W/8-1:0]   s_axil_wstrb,
    input  logic                  s_axil_wvalid,
    output logic                  s_axil_wready,
    output logic [1:0]            s_axil_bresp,
    output logic                  s_axil_bvalid,
    input  logic                  s_axil_bready,
    // memory write port
    output logic                  mem_we,
    output logic [MEM_ADDR_W-1:0] mem_addr,
    output logic [DATA_W-1:0]     mem_wdata,
    // status
    output logic [7:0]            error_flags,
    output logic [31:0]           words_written,
    output logic [31:0]           slverr_count
);

  localparam int WORD_BYTES = DATA_W / 8;
  localparam int LSB = $clog2(WORD_BYTES);
  localparam int WA_W = ADDR_W - LSB + 1;
  localparam int ERR_STRB = 0, ERR_RANGE = 1, ERR_ALIGN = 3;

  logic                  aw_held_q, w_held_q;
  logic [1:0]            b_cnt_q;  // responses queued (0..2), head first
  logic [1:0]            b_err_q;  // [0] the head's SLVERR, [1] the second's
  logic [ADDR_W-1:0]     awaddr_q;
  logic [DATA_W-1:0]     wdata_q;
  logic [WORD_BYTES-1:0] wstrb_q;
  logic [7:0]            flags_q;
  logic [31:0]           words_q, slverr_q;

  logic do_write, b_pop, strb_full, aligned, in_range, ok;
  logic [WA_W-1:0] word_addr;
  // the write: both halves held and room in the B queue (registers only)
  assign do_write = aw_held_q && w_held_q && b_cnt_q != 2'd2;
  assign b_pop    = s_axil_bvalid && s_axil_bready;

  assign s_axil_awready = rst_n && (!aw_held_q || do_write);
  assign s_axil_wready  = rst_n && (!w_held_q || do_write);
  assign s_axil_bvalid  = b_cnt_q != 2'd0;
  assign s_axil_bresp   = b_err_q[0] ? 2'b10 : 2'b00;
`ifdef AXI_MUT_WSTRB_LANE
  assign strb_full = &wstrb_q[WORD_BYTES-2:0];
`else
  assign strb_full = &wstrb_q;
`endif
`ifdef AXI_MUT_ADDR_PLUS1
  assign word_addr = WA_W'(awaddr_q >> LSB) + WA_W'(1);
`else
  assign word_addr = WA_W'(awaddr_q >> LSB);
`endif
  assign aligned  = awaddr_q[LSB-1:0] == '0;
  assign in_range = word_addr < WA_W'(DEPTH);
  assign ok       = strb_full && aligned && in_range;

  assign mem_we    = do_write && ok;
  assign mem_wdata = wdata_q;
  assign mem_addr  = BYTE_ADDR ? MEM_ADDR_W'(word_addr) << LSB : MEM_ADDR_W'(word_addr);

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      aw_held_q <= 1'b0;
      w_held_q <= 1'b0;
      b_cnt_q <= '0;
      b_err_q <= '0;
      awaddr_q <= '0;
      wdata_q <= '0;
      wstrb_q <= '0;
      flags_q <= '0;
      words_q <= '0;
      slverr_q <= '0;
    end else begin
      if (s_axil_awvalid && s_axil_awready) begin
        aw_held_q <= 1'b1;
        awaddr_q <= s_axil_awaddr;
      end
      if (s_axil_wvalid && s_axil_wready) begin
        w_held_q <= 1'b1;
        wdata_q <= s_axil_wdata;
        wstrb_q <= s_axil_wstrb;
      end
      // a write frees its holding registers unless a new AW/W arrives in the
      // same cycle (the handshakes above, ready = 1 because of do_write)
      if (do_write) begin
        if (!(s_axil_awvalid && s_axil_awready)) aw_held_q <= 1'b0;
        if (!(s_axil_wvalid && s_axil_wready)) w_held_q <= 1'b0;
        if (ok) words_q <= words_q + 32'd1;
        else slverr_q <= slverr_q + 32'd1;
        if (!strb_full) flags_q[ERR_STRB] <= 1'b1;
        if (!in_range) flags_q[ERR_RANGE] <= 1'b1;
        if (!aligned) flags_q[ERR_ALIGN] <= 1'b1;
      end
      // the B queue: push the write's response, pop on the B handshake
      case ({do_write, b_pop})
        2'b10: begin
          b_err_q[b_cnt_q[0]] <= !ok;  // b_cnt_q is 0 or 1 here
          b_cnt_q <= b_cnt_q + 2'd1;
        end
        2'b01: begin
          b_err_q <= {1'b0, b_err_q[1]};
          b_cnt_q <= b_cnt_q - 2'd1;
        end
        2'b11: b_err_q[0] <= !ok;  // b_cnt_q is 1 here: the new one is the head
        default: ;
      endcase
    end
  end

  assign error_flags = flags_q;
  assign words_written = words_q;
  assign slverr_count = slverr_q;

endmodule : axi_lite_param_slave
