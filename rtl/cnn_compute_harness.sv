// cnn_compute_harness.sv: pure-HDL harness of cnn_compute_top (no Python at all).
//
// Role: the baseline of the compute rows of `make bench` (bench/compute.py): the
// same engine, the same sources and the same input files as the pyuvm compute
// testbench (tb/tests_compute.py), driven from one initial block, so that the
// bench can measure what the testbench costs on top of the simulator alone.
//
// Sequence (every request is a toggle of a cnn_compute_top *_req input, driven
// on the falling edge, acted on at the next rising edge):
//   reset (4 cycles); play +STREAM_WORDS words of +PARAM_STREAM through the
//   loader, every write checked in HDL (param_write_checker, +PARAM_EXPECT);
//   optionally ($test$plusargs("PARAM_DUMP")) dump the parameter memory to
//   +DUMP_FILE; load +DESC_FILE; load +ACT_LOAD (the network input);
//   run descriptors 0 .. +NUM_DESC-1 in one start; dump activation words
//   0 .. +ACT_WORDS-1 to +ACT_DUMP and the per-descriptor cycles to +STATS_DUMP;
//   print one line "HARNESS ..." with the cycle counts and the engine's status;
//   finished = 1; $finish (not with +NO_FINISH: tb/tests_harness.py, the bench's
//   "same harness under cocotb, Python idle" baseline, ends the run itself).
// The file plusargs are read by the modules of cnn_compute_top themselves.
// The parameters are passed through to cnn_compute_top (tb/compute/prepare.py's
// Prepared.parameters).

`timescale 1ns / 1ps

module cnn_compute_harness #(
    parameter int CLK_PERIOD_NS = 10,
    parameter int ACT_DEPTH = 65536,
    parameter int STREAM_DEPTH = 1024,
    parameter int DESC_DEPTH = 4096,
    parameter int STATS_DEPTH = 256,
    parameter int WBUF_DEPTH = 1024,
    parameter bit ROUND_HALF_EVEN = 1'b1,
    parameter int TIMEOUT_CYCLES = 2000000000
) (
    // 1 once the run is over (the bench's cocotb baseline waits for it, then ends the
    // simulation itself: +NO_FINISH; otherwise the harness calls $finish)
    output logic finished /*verilator public_flat_rd*/
);

  logic        clk;
  logic        rst_n;
  logic        play_req, param_dump_req, act_load_req, act_dump_req;
  logic        desc_load_req, stats_dump_req, start_req, wave_req;
  logic [31:0] play_count, act_dump_lo, act_dump_hi;
  logic [15:0] first_desc, num_desc;
  logic        playing, busy;
  logic [31:0] played, segments_done, words_written, cycle;
  logic [7:0]  load_error_flags, err;
  logic [31:0] pchk_expected, pchk_checked, pchk_wrong, pchk_duplicate, pchk_unexpected;
  logic [31:0] pchk_first_index;
  logic [1:0]  pchk_first_kind;
  logic [15:0] done_count, err_desc;
  /* verilator lint_off UNUSEDSIGNAL */
  logic [31:0] cfg_word_bits, cfg_tile_oc, cfg_lanes, cfg_bias_bits, cfg_round_half_even;
  logic [31:0] cfg_act_depth, cfg_stream_depth, cfg_wbuf_depth, cfg_mem_depth;
  /* verilator lint_on UNUSEDSIGNAL */

  cnn_compute_top #(
      .CLK_PERIOD_NS  (CLK_PERIOD_NS),
      .ACT_DEPTH      (ACT_DEPTH),
      .STREAM_DEPTH   (STREAM_DEPTH),
      .DESC_DEPTH     (DESC_DEPTH),
      .STATS_DEPTH    (STATS_DEPTH),
      .WBUF_DEPTH     (WBUF_DEPTH),
      .ROUND_HALF_EVEN(ROUND_HALF_EVEN)
  ) u_top (
      .clk,
      .rst_n,
      .play_req,
      .play_count,
      .playing,
      .played,
      .load_error_flags,
      .segments_done,
      .words_written,
      .param_dump_req,
      .pchk_expected,
      .pchk_checked,
      .pchk_wrong,
      .pchk_duplicate,
      .pchk_unexpected,
      .pchk_first_index,
      .pchk_first_kind,
      .act_load_req,
      .act_dump_req,
      .act_dump_lo,
      .act_dump_hi,
      .desc_load_req,
      .stats_dump_req,
      .start_req,
      .first_desc,
      .num_desc,
      .busy,
      .done_count,
      .err,
      .err_desc,
      .cycle,
      .wave_req,
      .cfg_word_bits,
      .cfg_tile_oc,
      .cfg_lanes,
      .cfg_bias_bits,
      .cfg_round_half_even,
      .cfg_act_depth,
      .cfg_stream_depth,
      .cfg_wbuf_depth,
      .cfg_mem_depth
  );

  int unsigned stream_words;
  int unsigned n_desc;
  int unsigned act_words;
  int unsigned load_cycles;
  int unsigned run_cycles;
  int unsigned t0;
  int unsigned waited;

  // two edges after a toggle: acted on at the first, settled after the second
  task automatic settle;
    repeat (2) @(negedge clk);
  endtask

  initial begin
    finished = 1'b0;
    if (!$value$plusargs("STREAM_WORDS=%d", stream_words)) stream_words = 0;
    if (!$value$plusargs("NUM_DESC=%d", n_desc)) n_desc = 0;
    if (!$value$plusargs("ACT_WORDS=%d", act_words)) act_words = ACT_DEPTH;
    if (act_words == 0 || act_words > ACT_DEPTH) act_words = ACT_DEPTH;
    {play_req, param_dump_req, act_load_req, act_dump_req} = '0;
    {desc_load_req, stats_dump_req, start_req, wave_req} = '0;
    play_count = '0;
    act_dump_lo = '0;
    act_dump_hi = '0;
    first_desc = '0;
    num_desc = '0;
    rst_n = 1'b0;
    repeat (4) @(negedge clk);
    rst_n = 1'b1;
    @(negedge clk);

    // parameter stream: player -> loader -> parameter memory
    t0 = cycle;
    play_count = stream_words;
    play_req = ~play_req;
    settle();
    while (playing) @(negedge clk);
    repeat (4) @(negedge clk);  // the loader's last write
    load_cycles = cycle - t0;
    if ($test$plusargs("PARAM_DUMP")) begin
      param_dump_req = ~param_dump_req;
      settle();
    end

    desc_load_req = ~desc_load_req;
    settle();
    act_load_req = ~act_load_req;
    settle();

    // every descriptor in one run
    first_desc = '0;
    num_desc = 16'(n_desc);
    t0 = cycle;
    start_req = ~start_req;
    settle();
    waited = 0;
    while (busy && waited < TIMEOUT_CYCLES) begin
      @(negedge clk);
      waited++;
    end
    run_cycles = cycle - t0;

    act_dump_lo = '0;
    act_dump_hi = act_words - 1;
    act_dump_req = ~act_dump_req;
    settle();
    stats_dump_req = ~stats_dump_req;
    settle();

    $display("HARNESS stream_words=%0d played=%0d words_written=%0d segments=%0d load_flags=%0d load_cycles=%0d pchk_expected=%0d pchk_checked=%0d pchk_wrong=%0d pchk_duplicate=%0d pchk_unexpected=%0d pchk_first_index=%0d pchk_first_kind=%0d descriptors=%0d done=%0d err=%0d err_desc=%0d run_cycles=%0d total_cycles=%0d act_words=%0d timeout=%0d",
             stream_words, played, words_written, segments_done, load_error_flags,
             load_cycles, pchk_expected, pchk_checked, pchk_wrong, pchk_duplicate,
             pchk_unexpected, pchk_first_index, pchk_first_kind, n_desc, done_count, err, err_desc, run_cycles, cycle, act_words,
             (busy ? 1 : 0));
    finished = 1'b1;
    if (!$test$plusargs("NO_FINISH")) $finish;
  end

endmodule
