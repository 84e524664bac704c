// param_stream_player.sv: HDL-side player of the parameter stream (simulation).
//
// Role: plays a whole parameter stream onto an AXI4-Stream master at one word
// per cycle (less when tready is low), so that a testbench loads every
// parameter with one call instead of one Python await per word. The stream is
// the golden stream of docs/layout.md ("The stream"), headers included.
//
// File (+PARAM_STREAM=<path>, read with $readmemh when play_req toggles): one
// line per stream word, the (WORD_BITS+1)-bit value {tlast, word} in hex.
// play_count words are played (at most DEPTH). `playing` is high from the
// edge after the toggle until the last word has been accepted; `played`
// counts accepted words since the toggle.

`timescale 1ns / 1ps

module param_stream_player #(
    parameter int WORD_BITS = 64,
    parameter int DEPTH = 1024
) (
    input  logic                 clk,
    input  logic                 rst_n,
    input  logic                 play_req,
    input  logic [31:0]          play_count,
    output logic [WORD_BITS-1:0] m_axis_tdata,
    output logic                 m_axis_tvalid,
    output logic                 m_axis_tlast,
    input  logic                 m_axis_tready,
    output logic                 playing,
    output logic [31:0]          played
);

  logic [WORD_BITS:0] words[DEPTH];
  string stream_file = "param_stream.hex";
  logic  req_q;
  logic [31:0] count_q;

  initial begin
    if (!$value$plusargs("PARAM_STREAM=%s", stream_file)) stream_file = "param_stream.hex";
  end

  assign m_axis_tvalid = playing;
  assign m_axis_tdata = words[played[$clog2(DEPTH)-1:0]][WORD_BITS-1:0];
  assign m_axis_tlast = words[played[$clog2(DEPTH)-1:0]][WORD_BITS];

  // The file is read by the same process that plays it (simulation only).
  always @(posedge clk) begin
    req_q <= play_req;
    if (!rst_n) begin
      playing <= 1'b0;
      played <= '0;
    end else if ((play_req ^ req_q) === 1'b1) begin
      $readmemh(stream_file, words, 0, play_count - 1);
      count_q <= (play_count > 32'(DEPTH)) ? 32'(DEPTH) : play_count;
      played <= '0;
      playing <= (play_count != 32'd0);
    end else if (playing && m_axis_tready) begin
      played <= played + 32'd1;
      if (played + 32'd1 == count_q) playing <= 1'b0;
    end
  end

endmodule
