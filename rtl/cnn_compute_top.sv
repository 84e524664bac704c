// cnn_compute_top.sv: simulation top of the whole accelerator (parameters + compute).
//
// Role: the device under test of the compute testbench (tb/tests_compute.py).
// The parameter path is the verified one: an HDL stream player plays the golden
// parameter stream into param_loader, which fills param_memory; the compute
// engine reads that memory, the activation memory and the descriptor memory.
// docs/compute-engine.md is the contract.
//
// Conventions:
//   - clk is an output (an HDL clock: CLK_PERIOD_NS period, first rising edge at
//     CLK_PERIOD_NS/2); rst_n is synchronous, active low.
//   - Every *_req input is a toggle: changing it requests the action once, at
//     the next rising edge. play_req: play +PARAM_STREAM (play_count words).
//     act_load_req / act_dump_req: $readmemh +ACT_LOAD into the activation
//     memory / $writememh act_dump_lo..act_dump_hi to +ACT_DUMP. desc_load_req:
//     $readmemh +DESC_FILE into the descriptor memory. stats_dump_req:
//     $writememh the per-descriptor cycle counts to +STATS_DUMP. param_dump_req:
//     $writememh the parameter memory to +DUMP_FILE. start_req: run
//     descriptors first_desc .. first_desc + num_desc - 1.
//   - pchk_* outputs: param_write_checker's counts (every loader write compared
//     in HDL with the golden image of +PARAM_EXPECT / +PARAM_EXPECT_MASK).
//   - wave_req (toggle; only in a build with `define COMPUTE_WAVES, Verilator built
//     with --trace): $dumpfile(+COMPUTE_WAVES) and $dumpvars of this top from that
//     edge on, so that a failing layer's rerun records waves from just before it.
//   - cfg_* outputs: the build's parameters as constants, for the pre-run check
//     (Verilator shows no parameters through VPI).

`timescale 1ns / 1ps

/* verilator lint_off MULTITOP */
module cnn_compute_top
  import cnn_layout_pkg::*;
#(
    parameter int CLK_PERIOD_NS = 10,
    parameter int ACT_DEPTH = 65536,
    parameter int STREAM_DEPTH = 1024,
    parameter int DESC_DEPTH = 4096,     // 32-bit fields (16 per descriptor)
    parameter int STATS_DEPTH = 256,
    parameter int WBUF_DEPTH = 1024,
    parameter bit ROUND_HALF_EVEN = 1'b1
) (
    output logic        clk /*verilator public_flat_rd*/,
    input  logic        rst_n /*verilator public_flat_rw*/,
    // parameter stream player and loader status
    input  logic        play_req /*verilator public_flat_rw*/,
    input  logic [31:0] play_count /*verilator public_flat_rw*/,
    output logic        playing /*verilator public_flat_rd*/,
    output logic [31:0] played /*verilator public_flat_rd*/,
    output logic [7:0]  load_error_flags /*verilator public_flat_rd*/,
    output logic [31:0] segments_done /*verilator public_flat_rd*/,
    output logic [31:0] words_written /*verilator public_flat_rd*/,
    input  logic        param_dump_req /*verilator public_flat_rw*/,
    // the HDL check of every parameter-memory write (param_write_checker.sv)
    output logic [31:0] pchk_expected /*verilator public_flat_rd*/,
    output logic [31:0] pchk_checked /*verilator public_flat_rd*/,
    output logic [31:0] pchk_wrong /*verilator public_flat_rd*/,
    output logic [31:0] pchk_duplicate /*verilator public_flat_rd*/,
    output logic [31:0] pchk_unexpected /*verilator public_flat_rd*/,
    output logic [31:0] pchk_first_index /*verilator public_flat_rd*/,
    output logic [1:0]  pchk_first_kind /*verilator public_flat_rd*/,
    // activation, descriptor and stats backdoor
    input  logic        act_load_req /*verilator public_flat_rw*/,
    input  logic        act_dump_req /*verilator public_flat_rw*/,
    input  logic [31:0] act_dump_lo /*verilator public_flat_rw*/,
    input  logic [31:0] act_dump_hi /*verilator public_flat_rw*/,
    input  logic        desc_load_req /*verilator public_flat_rw*/,
    input  logic        stats_dump_req /*verilator public_flat_rw*/,
    // engine control
    input  logic        start_req /*verilator public_flat_rw*/,
    input  logic [15:0] first_desc /*verilator public_flat_rw*/,
    input  logic [15:0] num_desc /*verilator public_flat_rw*/,
    output logic        busy /*verilator public_flat_rd*/,
    output logic [15:0] done_count /*verilator public_flat_rd*/,
    output logic [7:0]  err /*verilator public_flat_rd*/,
    output logic [15:0] err_desc /*verilator public_flat_rd*/,
    output logic [31:0] cycle /*verilator public_flat_rd*/,
    // waves from this point on (builds with `define COMPUTE_WAVES)
    input  logic        wave_req /*verilator public_flat_rw*/,
    // build parameters
    output logic [31:0] cfg_word_bits /*verilator public_flat_rd*/,
    output logic [31:0] cfg_tile_oc /*verilator public_flat_rd*/,
    output logic [31:0] cfg_lanes /*verilator public_flat_rd*/,
    output logic [31:0] cfg_bias_bits /*verilator public_flat_rd*/,
    output logic [31:0] cfg_round_half_even /*verilator public_flat_rd*/,
    output logic [31:0] cfg_act_depth /*verilator public_flat_rd*/,
    output logic [31:0] cfg_stream_depth /*verilator public_flat_rd*/,
    output logic [31:0] cfg_wbuf_depth /*verilator public_flat_rd*/,
    output logic [31:0] cfg_mem_depth /*verilator public_flat_rd*/
);

  localparam int ACT_LANES = TILE_IC;  // activation lanes (= input-channel tile)
  localparam int A_ADDR_W = (ACT_DEPTH > 1) ? $clog2(ACT_DEPTH) : 1;
  localparam int D_ADDR_W = $clog2(DESC_DEPTH);
  localparam int S_ADDR_W = $clog2(STATS_DEPTH);

  assign cfg_word_bits = 32'(WORD_BITS);
  assign cfg_tile_oc = 32'(TILE_OC);
  assign cfg_lanes = 32'(ACT_LANES);
  assign cfg_bias_bits = 32'(BIAS_BITS);
  assign cfg_round_half_even = 32'(ROUND_HALF_EVEN);
  assign cfg_act_depth = 32'(ACT_DEPTH);
  assign cfg_stream_depth = 32'(STREAM_DEPTH);
  assign cfg_wbuf_depth = 32'(WBUF_DEPTH);
  assign cfg_mem_depth = 32'(MEM_DEPTH);

  // ---- clock and cycle counter
  initial clk = 1'b0;
  always #(CLK_PERIOD_NS / 2) clk = ~clk;

  always_ff @(posedge clk) begin
    if (!rst_n) cycle <= '0;
    else cycle <= cycle + 32'd1;
  end

  // ---- parameter path: player -> loader -> memory
  logic [WORD_BITS-1:0] s_tdata;
  logic                 s_tvalid, s_tlast, s_tready;
  logic                 mem_we;
  logic [MEM_ADDR_BITS-1:0] mem_addr;
  logic [WORD_BITS-1:0] mem_wdata;
  /* verilator lint_off UNUSEDSIGNAL */
  logic [2:0]           ld_state;
  logic [HDR_LAYER_BITS-1:0] ld_layer;
  logic [HDR_KIND_BITS-1:0] ld_kind;
  logic                 ld_seg_end;
  /* verilator lint_on UNUSEDSIGNAL */

  param_stream_player #(
      .WORD_BITS(WORD_BITS),
      .DEPTH    (STREAM_DEPTH)
  ) u_player (
      .clk,
      .rst_n,
      .play_req,
      .play_count,
      .m_axis_tdata (s_tdata),
      .m_axis_tvalid(s_tvalid),
      .m_axis_tlast (s_tlast),
      .m_axis_tready(s_tready),
      .playing,
      .played
  );

  param_loader u_loader (
      .clk,
      .rst_n,
      .s_axis_tdata (s_tdata),
      .s_axis_tvalid(s_tvalid),
      .s_axis_tlast (s_tlast),
      .s_axis_tready(s_tready),
      .mem_stall    (1'b0),
      .mem_we,
      .mem_addr,
      .mem_wdata,
      .state        (ld_state),
      .layer        (ld_layer),
      .kind         (ld_kind),
      .segments_done,
      .words_written,
      .error_flags  (load_error_flags),
      .seg_end      (ld_seg_end)
  );

  localparam int P_ADDR_W = MEM_ADDR_BITS;
  logic                 p_re;
  logic [P_ADDR_W-1:0]  p_raddr;
  logic [WORD_BITS-1:0] p_rdata;

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
      .re      (p_re),
      .raddr   (p_raddr),
      .rdata   (p_rdata),
      .dump_req(param_dump_req)
  );

  // every write of the loader against the golden image (+PARAM_EXPECT)
  param_write_checker #(
      .DEPTH    (MEM_DEPTH),
      .WIDTH    (WORD_BITS),
      .ADDR_W   (MEM_ADDR_BITS),
      .BYTE_ADDR(ADDR_BYTE != 0)
  ) u_write_check (
      .clk,
      .we             (mem_we),
      .waddr          (mem_addr),
      .wdata          (mem_wdata),
      .expected_words (pchk_expected),
      .checked        (pchk_checked),
      .wrong          (pchk_wrong),
      .duplicate      (pchk_duplicate),
      .unexpected     (pchk_unexpected),
      .first_bad_index(pchk_first_index),
      .first_bad_kind (pchk_first_kind)
  );

  // ---- activation memory
  logic                 a_re0, a_re1, a_we;
  logic [A_ADDR_W-1:0]  a_raddr0, a_raddr1, a_waddr;
  logic [8*ACT_LANES-1:0]   a_rdata0, a_rdata1, a_wdata;
  logic [ACT_LANES-1:0]     a_wbe;

  act_memory #(
      .LANES(ACT_LANES),
      .DEPTH(ACT_DEPTH)
  ) u_act (
      .clk,
      .re0     (a_re0),
      .raddr0  (a_raddr0),
      .rdata0  (a_rdata0),
      .re1     (a_re1),
      .raddr1  (a_raddr1),
      .rdata1  (a_rdata1),
      .we      (a_we),
      .waddr   (a_waddr),
      .wbe     (a_wbe),
      .wdata   (a_wdata),
      .load_req(act_load_req),
      .dump_req(act_dump_req),
      .dump_lo (A_ADDR_W'(act_dump_lo)),
      .dump_hi (A_ADDR_W'(act_dump_hi))
  );

  // ---- descriptor memory (32-bit fields) and stats memory (simulation models)
  logic [31:0] desc_mem[DESC_DEPTH];
  logic        d_re;
  logic [D_ADDR_W-1:0] d_raddr;
  logic [31:0] d_rdata;
  logic [63:0] stats_mem[STATS_DEPTH];
  logic        s_we;
  logic [15:0] s_waddr;
  logic [63:0] s_wdata;
  string desc_file = "descriptors.hex";
  string stats_file = "stats.hex";
  logic desc_req_q, stats_req_q, start_req_q;

  initial begin
    if (!$value$plusargs("DESC_FILE=%s", desc_file)) desc_file = "descriptors.hex";
    if (!$value$plusargs("STATS_DUMP=%s", stats_file)) stats_file = "stats.hex";
    for (int i = 0; i < STATS_DEPTH; i++) stats_mem[i] = '0;
  end

  always_ff @(posedge clk) begin
    if (d_re) d_rdata <= desc_mem[d_raddr];
  end

  always @(posedge clk) begin
    desc_req_q <= desc_load_req;
    stats_req_q <= stats_dump_req;
    if ((desc_load_req ^ desc_req_q) === 1'b1) $readmemh(desc_file, desc_mem);
    if (s_we && 32'(s_waddr) < 32'(STATS_DEPTH)) stats_mem[S_ADDR_W'(s_waddr)] <= s_wdata;
    if ((stats_dump_req ^ stats_req_q) === 1'b1) $writememh(stats_file, stats_mem);
  end

  // ---- waves from a chosen edge on (simulation only)
`ifdef COMPUTE_WAVES
  string wave_file = "compute.fst";
  logic  wave_req_q;
  logic  dumping = 1'b0;

  initial begin
    if (!$value$plusargs("COMPUTE_WAVES=%s", wave_file)) wave_file = "compute.fst";
  end

  always @(posedge clk) begin
    wave_req_q <= wave_req;
    if ((wave_req ^ wave_req_q) === 1'b1) begin
      $dumpfile(wave_file);
      $dumpvars(0, cnn_compute_top);
      dumping <= 1'b1;
    end
    if (dumping) $dumpflush;  // a run killed on a hang still leaves its waves
  end
`else
  /* verilator lint_off UNUSEDSIGNAL */
  logic wave_unused;
  assign wave_unused = wave_req;
  /* verilator lint_on UNUSEDSIGNAL */
`endif

  // ---- the engine
  logic start;
  always_ff @(posedge clk) start_req_q <= start_req;
  assign start = ((start_req ^ start_req_q) === 1'b1);

  cnn_compute_engine #(
      .WORD_BITS      (WORD_BITS),
      .TILE_OC        (TILE_OC),
      .LANES          (ACT_LANES),
      .BIAS_BITS      (BIAS_BITS),
      .P_ADDR_W       (P_ADDR_W),
      .A_ADDR_W       (A_ADDR_W),
      .D_ADDR_W       (D_ADDR_W),
      .WBUF_DEPTH     (WBUF_DEPTH),
      .ROUND_HALF_EVEN(ROUND_HALF_EVEN)
  ) u_engine (
      .clk,
      .rst_n,
      .start,
      .first_desc,
      .num_desc,
      .busy,
      .done_count,
      .err,
      .err_desc,
      .d_re,
      .d_raddr,
      .d_rdata,
      .p_re,
      .p_raddr,
      .p_rdata,
      .a_re0,
      .a_raddr0,
      .a_rdata0,
      .a_re1,
      .a_raddr1,
      .a_rdata1,
      .a_we,
      .a_waddr,
      .a_wbe,
      .a_wdata,
      .s_we,
      .s_waddr,
      .s_wdata
  );

endmodule
