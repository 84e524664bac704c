// cnn_param_axi_top.sv: simulation top of the pushed and fetched parameter paths.
//
// Role: the device under test of tb/tests_axi.py. Three writers share one
// parameter memory (param_memory) through a write-port mux:
//   - s_axi_*  : AXI4 write slave (axi_param_slave), a host pushing the image
//                at the layout's byte addresses with INCR bursts;
//   - s_axil_* : AXI4-Lite write slave (axi_lite_param_slave), one word per
//                transaction;
//   - m_axi_*  : AXI4 read master of the DMA fetcher (param_dma), which reads
//                every segment from a DRAM image at dma_base after dma_start.
// A test uses one writer at a time; two writers in the same cycle raise
// `collisions` (the AXI4 slave wins, then AXI4-Lite, then the DMA).
//
// Conventions (docs/stimulus-paths.md; the write log, clock, dump and cfg_*
// outputs are those of cnn_param_top, docs/rtl-interface.md):
//   - clk is an INPUT, driven by the testbench (cocotb Clock): cocotbext-axi
//     samples the handshakes right at the rising edge; on the Verilator
//     simulator that read gives the values before the edge only for an edge
//     made by a Python clock (an HDL clock edge is seen after the flops
//     updated).
//     rst_n synchronous active low.
//   - AXI data width = WORD_BITS (the accelerator word), AXI byte address =
//     word address * WORD_BYTES, AXI_ADDR_W address bits.
//   - Write log wlog_addr/wlog_data/wlog_bad/wlog_cycle[LOG_ENTRIES],
//     wlog_count, wlog_tick: as in cnn_param_top; the tick toggles every
//     LOG_ENTRIES/2 writes, at every AXI4 B handshake and at the last beat of
//     every DMA burst.
//   - mem_addr (observation) is MEM_ADDR_BITS wide, word or byte addresses
//     as the layout package says (ADDR_BYTE).
//   - VPI visibility on Verilator: the ports (inputs public_flat_rw, outputs
//     public_flat_rd) and the wlog_* arrays.
//
// Fault injection: the defines of axi_param_slave.sv, axi_lite_param_slave.sv
// and param_dma.sv pass through.

`timescale 1ns / 1ps

// rtl/ holds two simulation tops (cnn_param_top, this one): linting every file of
// rtl/ at once must not call that a mistake.
/* verilator lint_off MULTITOP */
module cnn_param_axi_top
  import cnn_layout_pkg::*;
#(
    parameter int LOG_ENTRIES = 1024,
    parameter int CYCLE_W = 32,
    parameter int AXI_ADDR_W = 32,
    parameter int ID_W = 4
) (
    input  logic                     clk /*verilator public_flat_rw*/,
    input  logic                     rst_n /*verilator public_flat_rw*/,
    // AXI4 write slave
    input  logic [ID_W-1:0]          s_axi_awid /*verilator public_flat_rw*/,
    input  logic [AXI_ADDR_W-1:0]    s_axi_awaddr /*verilator public_flat_rw*/,
    input  logic [7:0]               s_axi_awlen /*verilator public_flat_rw*/,
    input  logic [2:0]               s_axi_awsize /*verilator public_flat_rw*/,
    input  logic [1:0]               s_axi_awburst /*verilator public_flat_rw*/,
    input  logic                     s_axi_awvalid /*verilator public_flat_rw*/,
    output logic                     s_axi_awready /*verilator public_flat_rd*/,
    input  logic [WORD_BITS-1:0]     s_axi_wdata /*verilator public_flat_rw*/,
    input  logic [WORD_BYTES-1:0]    s_axi_wstrb /*verilator public_flat_rw*/,
    input  logic                     s_axi_wlast /*verilator public_flat_rw*/,
    input  logic                     s_axi_wvalid /*verilator public_flat_rw*/,
    output logic                     s_axi_wready /*verilator public_flat_rd*/,
    output logic [ID_W-1:0]          s_axi_bid /*verilator public_flat_rd*/,
    output logic [1:0]               s_axi_bresp /*verilator public_flat_rd*/,
    output logic                     s_axi_bvalid /*verilator public_flat_rd*/,
    input  logic                     s_axi_bready /*verilator public_flat_rw*/,
    // AXI4-Lite write slave
    input  logic [AXI_ADDR_W-1:0]    s_axil_awaddr /*verilator public_flat_rw*/,
    input  logic                     s_axil_awvalid /*verilator public_flat_rw*/,
    output logic                     s_axil_awready /*verilator public_flat_rd*/,
    input  logic [WORD_BITS-1:0]     s_axil_wdata /*verilator public_flat_rw*/,
    input  logic [WORD_BYTES-1:0]    s_axil_wstrb /*verilator public_flat_rw*/,
    input  logic                     s_axil_wvalid /*verilator public_flat_rw*/,
    output logic                     s_axil_wready /*verilator public_flat_rd*/,
    output logic [1:0]               s_axil_bresp /*verilator public_flat_rd*/,
    output logic                     s_axil_bvalid /*verilator public_flat_rd*/,
    input  logic                     s_axil_bready /*verilator public_flat_rw*/,
    // DMA: control and AXI4 read master
    input  logic                     dma_start /*verilator public_flat_rw*/,
    input  logic [AXI_ADDR_W-1:0]    dma_base /*verilator public_flat_rw*/,
    input  logic [31:0]              dma_seg_first /*verilator public_flat_rw*/,
    input  logic [31:0]              dma_seg_count /*verilator public_flat_rw*/,
    output logic                     dma_busy /*verilator public_flat_rd*/,
    output logic                     dma_done /*verilator public_flat_rd*/,
    output logic                     dma_error /*verilator public_flat_rd*/,
    output logic [7:0]               dma_error_flags /*verilator public_flat_rd*/,
    output logic [31:0]              dma_words /*verilator public_flat_rd*/,
    output logic [31:0]              dma_bursts /*verilator public_flat_rd*/,
    output logic [ID_W-1:0]          m_axi_arid /*verilator public_flat_rd*/,
    output logic [AXI_ADDR_W-1:0]    m_axi_araddr /*verilator public_flat_rd*/,
    output logic [7:0]               m_axi_arlen /*verilator public_flat_rd*/,
    output logic [2:0]               m_axi_arsize /*verilator public_flat_rd*/,
    output logic [1:0]               m_axi_arburst /*verilator public_flat_rd*/,
    output logic                     m_axi_arvalid /*verilator public_flat_rd*/,
    input  logic                     m_axi_arready /*verilator public_flat_rw*/,
    input  logic [ID_W-1:0]          m_axi_rid /*verilator public_flat_rw*/,
    input  logic [WORD_BITS-1:0]     m_axi_rdata /*verilator public_flat_rw*/,
    input  logic [1:0]               m_axi_rresp /*verilator public_flat_rw*/,
    input  logic                     m_axi_rlast /*verilator public_flat_rw*/,
    input  logic                     m_axi_rvalid /*verilator public_flat_rw*/,
    output logic                     m_axi_rready /*verilator public_flat_rd*/,
    // host slave status
    output logic [7:0]               axi_error_flags /*verilator public_flat_rd*/,
    output logic [31:0]              axi_words /*verilator public_flat_rd*/,
    output logic [31:0]              axi_bursts /*verilator public_flat_rd*/,
    output logic [31:0]              axi_slverr /*verilator public_flat_rd*/,
    output logic [7:0]               axil_error_flags /*verilator public_flat_rd*/,
    output logic [31:0]              axil_words /*verilator public_flat_rd*/,
    output logic [31:0]              axil_slverr /*verilator public_flat_rd*/,
    output logic [31:0]              collisions /*verilator public_flat_rd*/,
    // memory write bus (observation)
    output logic                     mem_we /*verilator public_flat_rd*/,
    output logic [MEM_ADDR_BITS-1:0] mem_addr /*verilator public_flat_rd*/,
    output logic [WORD_BITS-1:0]     mem_wdata /*verilator public_flat_rd*/,
    // memory dump ($writememh to +DUMP_FILE) on a rising edge
    input  logic                     dump_req /*verilator public_flat_rw*/,
    // write log
    output logic [31:0]              wlog_count /*verilator public_flat_rd*/,
    output logic                     wlog_tick /*verilator public_flat_rd*/,
    // build parameters (constants, for the pre-run check)
    output logic [31:0]              cfg_word_bits /*verilator public_flat_rd*/,
    output logic [31:0]              cfg_addr_bits /*verilator public_flat_rd*/,
    output logic [31:0]              cfg_mem_depth /*verilator public_flat_rd*/,
    output logic [31:0]              cfg_num_layers /*verilator public_flat_rd*/,
    output logic [31:0]              cfg_addr_byte /*verilator public_flat_rd*/
);

  localparam int LOG_W = $clog2(LOG_ENTRIES);
  localparam int HALF_W = LOG_W - 1;

  assign cfg_word_bits = 32'(WORD_BITS);
  assign cfg_addr_bits = 32'(MEM_ADDR_BITS);
  assign cfg_mem_depth = 32'(MEM_DEPTH);
  assign cfg_num_layers = 32'(NUM_LAYERS);
  assign cfg_addr_byte = 32'(ADDR_BYTE);

  // ---- the three writers
  logic                     a_we, l_we, d_we, a_end, d_end;
  logic [MEM_ADDR_BITS-1:0] a_addr, l_addr, d_addr;
  logic [WORD_BITS-1:0]     a_data, l_data, d_data;

  axi_param_slave #(
      .DATA_W    (WORD_BITS),
      .ADDR_W    (AXI_ADDR_W),
      .ID_W      (ID_W),
      .DEPTH     (MEM_DEPTH),
      .WADDR_W   (ADDR_BITS),
      .BYTE_ADDR (ADDR_BYTE != 0),
      .MEM_ADDR_W(MEM_ADDR_BITS)
  ) u_axi (
      .clk,
      .rst_n,
      .s_axi_awid,
      .s_axi_awaddr,
      .s_axi_awlen,
      .s_axi_awsize,
      .s_axi_awburst,
      .s_axi_awvalid,
      .s_axi_awready,
      .s_axi_wdata,
      .s_axi_wstrb,
      .s_axi_wlast,
      .s_axi_wvalid,
      .s_axi_wready,
      .s_axi_bid,
      .s_axi_bresp,
      .s_axi_bvalid,
      .s_axi_bready,
      .mem_we       (a_we),
      .mem_addr     (a_addr),
      .mem_wdata    (a_data),
      .error_flags  (axi_error_flags),
      .words_written(axi_words),
      .bursts_done  (axi_bursts),
      .slverr_count (axi_slverr),
      .burst_end    (a_end)
  );

  axi_lite_param_slave #(
      .DATA_W    (WORD_BITS),
      .ADDR_W    (AXI_ADDR_W),
      .DEPTH     (MEM_DEPTH),
      .WADDR_W   (ADDR_BITS),
      .BYTE_ADDR (ADDR_BYTE != 0),
      .MEM_ADDR_W(MEM_ADDR_BITS)
  ) u_axil (
      .clk,
      .rst_n,
      .s_axil_awaddr,
      .s_axil_awvalid,
      .s_axil_awready,
      .s_axil_wdata,
      .s_axil_wstrb,
      .s_axil_wvalid,
      .s_axil_wready,
      .s_axil_bresp,
      .s_axil_bvalid,
      .s_axil_bready,
      .mem_we       (l_we),
      .mem_addr     (l_addr),
      .mem_wdata    (l_data),
      .error_flags  (axil_error_flags),
      .words_written(axil_words),
      .slverr_count (axil_slverr)
  );

  param_dma #(
      .WORD_W    (WORD_BITS),
      .ADDR_W    (AXI_ADDR_W),
      .ID_W      (ID_W),
      .BYTE_ADDR (ADDR_BYTE != 0),
      .MEM_ADDR_W(MEM_ADDR_BITS)
  ) u_dma (
      .clk,
      .rst_n,
      .start        (dma_start),
      .base_addr    (dma_base),
      .seg_first    (dma_seg_first),
      .seg_count    (dma_seg_count),
      .busy         (dma_busy),
      .done         (dma_done),
      .error        (dma_error),
      .error_flags  (dma_error_flags),
      .words_written(dma_words),
      .bursts       (dma_bursts),
      .burst_end    (d_end),
      .m_axi_arid,
      .m_axi_araddr,
      .m_axi_arlen,
      .m_axi_arsize,
      .m_axi_arburst,
      .m_axi_arvalid,
      .m_axi_arready,
      .m_axi_rid,
      .m_axi_rdata,
      .m_axi_rresp,
      .m_axi_rlast,
      .m_axi_rvalid,
      .m_axi_rready,
      .mem_we       (d_we),
      .mem_addr     (d_addr),
      .mem_wdata    (d_data)
  );

  // ---- write-port mux (one writer at a time; a second one is a collision)
  always_comb begin
    mem_we = a_we || l_we || d_we;
    mem_addr = a_we ? a_addr : l_we ? l_addr : d_addr;
    mem_wdata = a_we ? a_data : l_we ? l_data : d_data;
  end

  logic [31:0] collisions_q;
  always_ff @(posedge clk) begin
    if (!rst_n) collisions_q <= '0;
    else if (32'(a_we) + 32'(l_we) + 32'(d_we) > 32'd1) collisions_q <= collisions_q + 32'd1;
  end
  assign collisions = collisions_q;

  // The top has no reader: the read port is tied off.
  /* verilator lint_off UNUSEDSIGNAL */
  logic [WORD_BITS-1:0] mem_rdata;
  /* verilator lint_on UNUSEDSIGNAL */

  param_memory #(
      .DEPTH    (MEM_DEPTH),
      .WIDTH    (WORD_BITS),
      .ADDR_W   (MEM_ADDR_BITS),
      .BYTE_ADDR(ADDR_BYTE != 0)
  ) u_mem (
      .clk,
      .we      (mem_we),
      .waddr   (mem_addr),
      .wdata   (mem_wdata),
      .re      (1'b0),
      .raddr   ({MEM_ADDR_BITS{1'b0}}),
      .rdata   (mem_rdata),
      .dump_req
  );

  // ---- write log (as in cnn_param_top)
  logic [MEM_ADDR_BITS-1:0] wlog_addr [LOG_ENTRIES] /*verilator public_flat_rd*/;
  logic [WORD_BITS-1:0]     wlog_data [LOG_ENTRIES] /*verilator public_flat_rd*/;
  logic                     wlog_bad  [LOG_ENTRIES] /*verilator public_flat_rd*/;
  logic [CYCLE_W-1:0]       wlog_cycle[LOG_ENTRIES] /*verilator public_flat_rd*/;

  logic [CYCLE_W-1:0] cycle_q;
  logic [31:0]        wlog_count_q;
  logic               wlog_tick_q;
  logic               log_write;
  logic [LOG_W-1:0]   log_slot;
  logic               half_crossed;

  assign log_write = (mem_we !== 1'b0);
  assign log_slot = wlog_count_q[LOG_W-1:0];
  assign half_crossed = (wlog_count_q[HALF_W-1:0] == {HALF_W{1'b1}});

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      cycle_q <= '0;
      wlog_count_q <= '0;
      wlog_tick_q <= 1'b0;
    end else begin
      cycle_q <= cycle_q + CYCLE_W'(1);
      if (log_write) wlog_count_q <= wlog_count_q + 32'd1;
      if ((log_write && half_crossed) || a_end || d_end) wlog_tick_q <= !wlog_tick_q;
    end
  end

  always_ff @(posedge clk) begin
    if (rst_n && log_write) begin
      wlog_addr[log_slot] <= mem_addr;
      wlog_data[log_slot] <= mem_wdata;
      wlog_bad[log_slot] <= $isunknown(mem_we) || $isunknown(mem_addr) ||
                            $isunknown(mem_wdata);
      wlog_cycle[log_slot] <= cycle_q;
    end
  end

  assign wlog_count = wlog_count_q;
  assign wlog_tick = wlog_tick_q;

endmodule : cnn_param_axi_top
