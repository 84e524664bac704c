// param_memory.sv: the accelerator's parameter memory (simulation model).
//
// Role: DEPTH words of WIDTH bits. One synchronous write port (we, waddr,
// wdata: stored at the rising clk edge), one registered read port (re, raddr:
// rdata holds mem[raddr] from the edge after re). Addresses are word
// addresses, or byte addresses when BYTE_ADDR = 1 (word index = address /
// (WIDTH / 8); the low bits of a byte address are ignored).
//
// Initial contents (simulation model): every word starts as INIT_POISON (time
// 0, before the first clock edge; no reset touches the array), on 4-state and
// 2-state simulators alike, so that a write that never happened, and also a
// dropped write of an all-zero word, leaves a visible poison word in the dump.
// The default pattern repeats 64'hBAD0_C0DE_DEAD_F00D in every 64-bit limb.
//
// Dump (simulation only): at the first rising clk edge at which dump_req is 1
// after being 0, the whole array is written with $writememh to the file named
// by plusarg +DUMP_FILE=<path> (default "param_memory.hex"). The dump sees
// every write made at earlier edges; the file is complete once that edge has
// passed.

`timescale 1ns / 1ps

module param_memory #(
    parameter int DEPTH = 1024,
    parameter int WIDTH = 64,
    parameter int ADDR_W = $clog2(DEPTH),
    parameter bit BYTE_ADDR = 1'b0,
    parameter logic [WIDTH-1:0] INIT_POISON = WIDTH'({((WIDTH + 63) / 64) {64'hBAD0_C0DE_DEAD_F00D}})
) (
    input  logic              clk,
    // write port
    input  logic              we,
    input  logic [ADDR_W-1:0] waddr,
    input  logic [WIDTH-1:0]  wdata,
    // read port
    input  logic              re,
    input  logic [ADDR_W-1:0] raddr,
    output logic [WIDTH-1:0]  rdata,
    // simulation dump
    input  logic              dump_req
);

  logic [WIDTH-1:0] mem[DEPTH];

  localparam int IDX_W = DEPTH > 1 ? $clog2(DEPTH) : 1;

  // word index of an address port
  function automatic logic [IDX_W-1:0] word_index(input logic [ADDR_W-1:0] a);
    return IDX_W'(BYTE_ADDR ? a / ADDR_W'(WIDTH / 8) : a);
  endfunction

  // Poison fill at time 0 and the write port share the array, so both are
  // plain processes (an always_ff variable may not be written by an initial).
  initial begin
    for (int i = 0; i < DEPTH; i++) mem[i] = INIT_POISON;
  end

  always @(posedge clk) begin
    if (we) mem[word_index(waddr)] <= wdata;
  end

  always_ff @(posedge clk) begin
    if (re) rdata <= mem[word_index(raddr)];
  end

  // ---- $writememh dump on a rising edge of dump_req (sampled at clk)
  string dump_file = "param_memory.hex";
  logic  dump_req_q;

  initial begin
    if (!$value$plusargs("DUMP_FILE=%s", dump_file)) dump_file = "param_memory.hex";
  end

  // Simulation-only process (system tasks), hence a plain always.
  always @(posedge clk) begin
    dump_req_q <= dump_req;
    // === / !==: a dump_req_q still X/Z (input undriven until now) counts as 0
    if (dump_req === 1'b1 && dump_req_q !== 1'b1) begin
      $writememh(dump_file, mem);
      $display("param_memory: %0d words dumped to %s", DEPTH, dump_file);
    end
  end

endmodule : param_memory
