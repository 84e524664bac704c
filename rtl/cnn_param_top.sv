// cnn_param_top.sv: simulation top of the parameter path (loader + memory).
//
// Role: the device under test the cocotb/pyuvm testbench drives. It makes its
// own clock (an HDL clock is cheaper than a Python one), connects the
// parameter stream to param_loader and the loader's write port to
// param_memory, and keeps a write log the testbench reads in batches.
//
// Conventions (docs/rtl-interface.md is the contract):
//   - clk is an output: CLK_PERIOD_NS period, starts low, first rising edge
//     at CLK_PERIOD_NS/2. rst_n is synchronous, active low.
//   - Write log: a circular buffer of LOG_ENTRIES (a power of two) entries;
//     write number n (0-based since reset) goes to entry n % LOG_ENTRIES:
//     wlog_addr/wlog_data (the write), wlog_bad (an X/Z bit on mem_we,
//     mem_addr or mem_wdata while the write was enabled; 0 on 2-state
//     simulators), wlog_cycle (clock cycles since reset at the write).
//     wlog_count counts writes since reset. wlog_tick toggles when wlog_count
//     reaches a multiple of LOG_ENTRIES/2 and when a segment ends, so a
//     monitor that wakes on wlog_tick and reads [last_read, wlog_count) never
//     misses an entry.
//   - Writes while rst_n is low (a contract violation: s_axis_tready is 0 in
//     reset, so no word can be accepted) are not in the write log; they are
//     counted in rst_writes (since time 0, never cleared) and the last one is
//     kept in rst_write_addr / rst_write_data.
//   - Memory address: mem_addr / wlog_addr / rst_write_addr are MEM_ADDR_BITS
//     wide, word addresses (ADDR_BYTE = 0) or byte addresses (ADDR_BYTE = 1:
//     word address * WORD_BYTES), as the layout package says.
//   - cfg_* outputs: the build's parameters as constants (WORD_BITS,
//     MEM_ADDR_BITS, MEM_DEPTH, NUM_LAYERS, HDR_BITS, ADDR_BYTE), so a
//     testbench can check them before the first clock on any simulator
//     (Verilator shows no parameters through VPI).
//   - VPI visibility (Verilator runs without --public-flat-rw): the ports of
//     this module (inputs public_flat_rw, outputs public_flat_rd) and the
//     wlog_* arrays (public_flat_rd); nothing inside the loader or the memory.

`timescale 1ns / 1ps

// rtl/ holds two simulation tops (this one, cnn_param_axi_top): linting every file
// of rtl/ at once must not call that a mistake.
/* verilator lint_off MULTITOP */
module cnn_param_top
  import cnn_layout_pkg::*;
#(
    parameter int CLK_PERIOD_NS = 10,
    parameter int LOG_ENTRIES = 1024,
    parameter int CYCLE_W = 32
) (
    output logic                 clk /*verilator public_flat_rd*/,
    input  logic                 rst_n /*verilator public_flat_rw*/,
    // parameter stream (AXI4-Stream)
    input  logic [WORD_BITS-1:0] s_axis_tdata /*verilator public_flat_rw*/,
    input  logic                 s_axis_tvalid /*verilator public_flat_rw*/,
    input  logic                 s_axis_tlast /*verilator public_flat_rw*/,
    output logic                 s_axis_tready /*verilator public_flat_rd*/,
    // memory write bus (observation) and back-pressure
    input  logic                 mem_stall /*verilator public_flat_rw*/,
    output logic                 mem_we /*verilator public_flat_rd*/,
    output logic [MEM_ADDR_BITS-1:0] mem_addr /*verilator public_flat_rd*/,
    output logic [WORD_BITS-1:0] mem_wdata /*verilator public_flat_rd*/,
    // loader status
    output logic [2:0]           state /*verilator public_flat_rd*/,
    output logic [HDR_LAYER_BITS-1:0] layer /*verilator public_flat_rd*/,
    output logic [HDR_KIND_BITS-1:0] kind /*verilator public_flat_rd*/,
    output logic [31:0]          segments_done /*verilator public_flat_rd*/,
    output logic [31:0]          words_written /*verilator public_flat_rd*/,
    output logic [7:0]           error_flags /*verilator public_flat_rd*/,
    // memory dump ($writememh to +DUMP_FILE) on a rising edge
    input  logic                 dump_req /*verilator public_flat_rw*/,
    // write log
    output logic [31:0]          wlog_count /*verilator public_flat_rd*/,
    output logic                 wlog_tick /*verilator public_flat_rd*/,
    // writes while rst_n is low (must stay 0)
    output logic [31:0]          rst_writes /*verilator public_flat_rd*/,
    output logic [MEM_ADDR_BITS-1:0] rst_write_addr /*verilator public_flat_rd*/,
    output logic [WORD_BITS-1:0] rst_write_data /*verilator public_flat_rd*/,
    // build parameters (constants, for the testbench's pre-run check)
    output logic [31:0]          cfg_word_bits /*verilator public_flat_rd*/,
    output logic [31:0]          cfg_addr_bits /*verilator public_flat_rd*/,
    output logic [31:0]          cfg_mem_depth /*verilator public_flat_rd*/,
    output logic [31:0]          cfg_num_layers /*verilator public_flat_rd*/,
    output logic [31:0]          cfg_hdr_bits /*verilator public_flat_rd*/,
    output logic [31:0]          cfg_addr_byte /*verilator public_flat_rd*/
);

  localparam int LOG_W = $clog2(LOG_ENTRIES);
  localparam int HALF_W = LOG_W - 1;  // wlog_count bits below a half-log boundary

  // ---- build parameters
  assign cfg_word_bits = 32'(WORD_BITS);
  assign cfg_addr_bits = 32'(MEM_ADDR_BITS);
  assign cfg_mem_depth = 32'(MEM_DEPTH);
  assign cfg_num_layers = 32'(NUM_LAYERS);
  assign cfg_hdr_bits = 32'(HDR_BITS);
  assign cfg_addr_byte = 32'(ADDR_BYTE);

  // ---- clock
  initial clk = 1'b0;
  always #(CLK_PERIOD_NS / 2) clk = ~clk;

  // ---- loader and memory
  logic seg_end;

  param_loader u_loader (
      .clk,
      .rst_n,
      .s_axis_tdata,
      .s_axis_tvalid,
      .s_axis_tlast,
      .s_axis_tready,
      .mem_stall,
      .mem_we,
      .mem_addr,
      .mem_wdata,
      .state,
      .layer,
      .kind,
      .segments_done,
      .words_written,
      .error_flags,
      .seg_end
  );

  // The simulation top has no reader: the read port is for the datapath that
  // will consume the parameters. Tied off; its data output is left unused.
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

  // ---- write log
  logic [MEM_ADDR_BITS-1:0] wlog_addr [LOG_ENTRIES] /*verilator public_flat_rd*/;
  logic [WORD_BITS-1:0] wlog_data [LOG_ENTRIES] /*verilator public_flat_rd*/;
  logic                 wlog_bad  [LOG_ENTRIES] /*verilator public_flat_rd*/;
  logic [CYCLE_W-1:0]   wlog_cycle[LOG_ENTRIES] /*verilator public_flat_rd*/;

  logic [CYCLE_W-1:0] cycle_q;  // clock cycles since reset
  logic [31:0]        wlog_count_q;
  logic               wlog_tick_q;
  logic               log_write;  // a write is (or may be, with X/Z) enabled
  logic [LOG_W-1:0]   log_slot;
  logic               half_crossed;  // this write completes a half of the log

  // `!== 1'b0` so that an X/Z write enable is logged (and flagged bad) too.
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
      if ((log_write && half_crossed) || seg_end) wlog_tick_q <= !wlog_tick_q;
    end
  end

  always_ff @(posedge clk) begin
    if (rst_n && log_write) begin
      wlog_addr[log_slot] <= mem_addr;
      wlog_data[log_slot] <= mem_wdata;
      // one $isunknown per signal: Icarus 11 returns 1 for a concatenation of
      // these nets even when every bit is known
      wlog_bad[log_slot] <= $isunknown(mem_we) || $isunknown(mem_addr) ||
                            $isunknown(mem_wdata);
      wlog_cycle[log_slot] <= cycle_q;
    end
  end

  assign wlog_count = wlog_count_q;
  assign wlog_tick = wlog_tick_q;

  // ---- writes while in reset: counted from time 0 (no reset can clear them),
  // hence an initial value and a plain always process.
  logic [31:0]          rst_writes_q;
  logic [MEM_ADDR_BITS-1:0] rst_write_addr_q;
  logic [WORD_BITS-1:0] rst_write_data_q;

  initial begin
    rst_writes_q = '0;
    rst_write_addr_q = '0;
    rst_write_data_q = '0;
  end

  always @(posedge clk) begin
    if (rst_n !== 1'b1 && log_write) begin
      rst_writes_q <= rst_writes_q + 32'd1;
      rst_write_addr_q <= mem_addr;
      rst_write_data_q <= mem_wdata;
    end
  end

  assign rst_writes = rst_writes_q;
  assign rst_write_addr = rst_write_addr_q;
  assign rst_write_data = rst_write_data_q;

endmodule : cnn_param_top
