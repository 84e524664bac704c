// param_write_checker.sv: checks every write of the parameter memory in HDL
// (simulation model).
//
// Role: the compute testbench's parameter check at simulator speed. It watches
// the write port of param_memory (we, waddr, wdata: the same port, the same
// address convention) and compares each write, as it happens, with the golden
// memory image, so no dump of the parameter memory and no Python pass over it
// is needed. The expected image is read at time 0 with $readmemh from two files
// the testbench writes (tb/compute/prepare.py):
//   +PARAM_EXPECT=<path>       the golden image.hex: '@<word index>' runs of
//                              WIDTH-bit words (MSB first), as `cosim golden`
//                              writes it
//   +PARAM_EXPECT_MASK=<path>  the same '@<word index>' runs, one '1' per word:
//                              the word indices the image holds
// Without +PARAM_EXPECT the checker is off (expected_words = 0).
//
// Per write (at the rising clk edge with we = 1), word index i = waddr (or
// waddr / (WIDTH / 8) when BYTE_ADDR = 1):
//   - i outside the image (beyond DEPTH or not in the mask)  -> unexpected
//   - i already written                                      -> duplicate
//   - wdata differs from the image word (4-state: x/z too)   -> wrong
// Every write counts in `checked`. The load was right exactly when wrong,
// duplicate and unexpected are 0 and checked = expected_words: every word of
// the image written once, with its golden value, and nothing else.
// first_bad_index / first_bad_kind (1 unexpected, 2 duplicate, 3 wrong; 0 none)
// name the first bad write. The ports are VPI-visible (its cocotb unit test,
// tb/tests_write_checker.py, drives it as the top).

`timescale 1ns / 1ps

module param_write_checker #(
    parameter int DEPTH = 1024,
    parameter int WIDTH = 64,
    parameter int ADDR_W = $clog2(DEPTH),
    parameter bit BYTE_ADDR = 1'b0
) (
    input  logic              clk /*verilator public_flat_rw*/,
    input  logic              we /*verilator public_flat_rw*/,
    input  logic [ADDR_W-1:0] waddr /*verilator public_flat_rw*/,
    input  logic [WIDTH-1:0]  wdata /*verilator public_flat_rw*/,
    output logic [31:0]       expected_words /*verilator public_flat_rd*/,
    output logic [31:0]       checked /*verilator public_flat_rd*/,
    output logic [31:0]       wrong /*verilator public_flat_rd*/,
    output logic [31:0]       duplicate /*verilator public_flat_rd*/,
    output logic [31:0]       unexpected /*verilator public_flat_rd*/,
    output logic [31:0]       first_bad_index /*verilator public_flat_rd*/,
    output logic [1:0]        first_bad_kind /*verilator public_flat_rd*/
);

  localparam int IDX_W = DEPTH > 1 ? $clog2(DEPTH) : 1;

  logic [WIDTH-1:0] expect_mem[DEPTH];
  logic             in_image[DEPTH];
  logic             written[DEPTH];
  string            image_file;
  string            mask_file;

  // Expected image at time 0 (a plain initial: system tasks; the arrays are also
  // written by the write process below, hence plain processes on both sides).
  initial begin
    expected_words = '0;
    checked = '0;
    wrong = '0;
    duplicate = '0;
    unexpected = '0;
    first_bad_index = '0;
    first_bad_kind = 2'd0;
    for (int i = 0; i < DEPTH; i++) begin
      in_image[i] = 1'b0;
      written[i] = 1'b0;
    end
    if ($value$plusargs("PARAM_EXPECT=%s", image_file)) begin
      if (!$value$plusargs("PARAM_EXPECT_MASK=%s", mask_file)) begin
        $display("param_write_checker: +PARAM_EXPECT needs +PARAM_EXPECT_MASK");
        $finish;
      end
      $readmemh(image_file, expect_mem);
      $readmemh(mask_file, in_image);
      for (int i = 0; i < DEPTH; i++) begin
        if (in_image[i] === 1'b1) expected_words = expected_words + 32'd1;
      end
    end
  end

  function automatic logic [ADDR_W-1:0] word_index(input logic [ADDR_W-1:0] a);
    return BYTE_ADDR ? a / ADDR_W'(WIDTH / 8) : a;
  endfunction

  logic [ADDR_W-1:0] index;
  logic              in_range;
  assign index = word_index(waddr);
  assign in_range = 32'(index) < 32'(DEPTH);

  task automatic flag(input logic [1:0] bad_kind);
    if (first_bad_kind == 2'd0) begin
      first_bad_kind <= bad_kind;
      first_bad_index <= 32'(index);
    end
  endtask

  always @(posedge clk) begin
    if (we && expected_words != 0) begin
      checked <= checked + 32'd1;
      if (!in_range || in_image[IDX_W'(index)] !== 1'b1) begin
        unexpected <= unexpected + 32'd1;
        flag(2'd1);
      end else if (written[IDX_W'(index)]) begin
        duplicate <= duplicate + 32'd1;
        flag(2'd2);
      end else begin
        written[IDX_W'(index)] <= 1'b1;
        if (wdata !== expect_mem[IDX_W'(index)]) begin
          wrong <= wrong + 32'd1;
          flag(2'd3);
        end
      end
    end
  end

endmodule : param_write_checker
