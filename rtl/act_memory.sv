// act_memory.sv: the compute engine's activation memory (simulation model).
//
// Role: DEPTH words of LANES uint8 lanes (lane l = bits [8l+7:8l]). Two
// registered read ports (re0/raddr0 -> rdata0, re1/raddr1 -> rdata1: data of
// the address presented at an edge is on rdata from that edge on), one
// synchronous write port with a byte enable per lane (we, waddr, wbe, wdata).
// Addresses are word addresses. docs/compute-engine.md is the contract (the
// tensor layout: word B + (t*H + y)*W + x holds channels t*LANES + l).
//
// Initial contents: every lane INIT_POISON, so that an output word the engine
// never wrote shows up in a dump instead of passing as a plausible code.
//
// Backdoor (simulation only, so that the testbench moves whole tensors with one
// call instead of one Python await per word):
//   - load_req toggles: at the next clk edge the memory reads the file named by
//     +ACT_LOAD=<path> with $readmemh (lines "@<hex address>" then words; only
//     the words in the file change).
//   - dump_req toggles: at the next clk edge words dump_lo..dump_hi are written
//     to +ACT_DUMP=<path> with $writememh.

`timescale 1ns / 1ps

module act_memory #(
    parameter int LANES = 8,
    parameter int DEPTH = 1024,
    parameter int ADDR_W = (DEPTH > 1) ? $clog2(DEPTH) : 1,
    parameter logic [7:0] INIT_POISON = 8'hA5
) (
    input  logic                  clk,
    input  logic                  re0,
    input  logic [ADDR_W-1:0]     raddr0,
    output logic [8*LANES-1:0]    rdata0,
    input  logic                  re1,
    input  logic [ADDR_W-1:0]     raddr1,
    output logic [8*LANES-1:0]    rdata1,
    input  logic                  we,
    input  logic [ADDR_W-1:0]     waddr,
    input  logic [LANES-1:0]      wbe,
    input  logic [8*LANES-1:0]    wdata,
    input  logic                  load_req,
    input  logic                  dump_req,
    input  logic [ADDR_W-1:0]     dump_lo,
    input  logic [ADDR_W-1:0]     dump_hi
);

  logic [8*LANES-1:0] mem[DEPTH];

  initial begin
    for (int i = 0; i < DEPTH; i++) mem[i] = {LANES{INIT_POISON}};
  end

  always_ff @(posedge clk) begin
    if (re0) rdata0 <= mem[raddr0];
    if (re1) rdata1 <= mem[raddr1];
  end

  // ---- write port and backdoor load and dump (simulation only). The writes and
  // the load share the array, hence one plain process.
  string load_file = "act_load.hex";
  string dump_file = "act_dump.hex";
  logic  load_req_q;
  logic  dump_req_q;

  initial begin
    if (!$value$plusargs("ACT_LOAD=%s", load_file)) load_file = "act_load.hex";
    if (!$value$plusargs("ACT_DUMP=%s", dump_file)) dump_file = "act_dump.hex";
  end

  always @(posedge clk) begin
    load_req_q <= load_req;
    dump_req_q <= dump_req;
    // a toggle is a request; (x ^ q) === 1 is false while either is still X/Z
    if ((load_req ^ load_req_q) === 1'b1) begin
      $readmemh(load_file, mem);
    end else if (we) begin
      for (int l = 0; l < LANES; l++) begin
        if (wbe[l]) mem[waddr][8*l +: 8] <= wdata[8*l +: 8];
      end
    end
    if ((dump_req ^ dump_req_q) === 1'b1) begin
      $writememh(dump_file, mem, dump_lo, dump_hi);
    end
  end

endmodule
