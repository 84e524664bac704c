// cnn_compute_engine.sv: reference compute engine of the int8 CNN accelerator.
//
// Role: runs a list of layer descriptors. A weighted layer (regular conv,
// depthwise conv, pointwise conv, linear) reads its record, weights and biases
// from the parameter memory the loader filled (same memory, same layout as
// docs/layout.md), its input activations from the activation memory, and writes
// its output activations there; a residual add and a global average pool read
// and write the activation memory only. docs/compute-engine.md is the contract:
// the descriptor fields, the activation layout, and the arithmetic
// (docs/arithmetic.md, "Hardware arithmetic").
//
// Datapath: a PE array of TILE_OC x LANES multipliers (LANES = TILE_IC int8
// lanes per parameter word and per activation word), int32 accumulators, one
// requantizer per lane. Regular/pointwise/linear layers: output-stationary per
// output-channel tile; the tile's weights are first copied into a weight buffer
// (one entry = TILE_OC words = TILE_OC x LANES weights for one (ic tile, kh, kw)),
// then every output pixel takes ic_tiles * KH * KW cycles, one activation word
// and one buffer entry per cycle (TILE_OC * LANES MACs). Depthwise layers use
// the diagonal (LANES MACs per cycle). Per cycle of a layer there is no stall:
// the memories answer in one cycle.
//
// Conventions: lanes little-endian (lane l = bits [8l+7:8l]); weights int8,
// activations uint8, biases BIAS_BITS two's complement; shifts n > 0 round by
// ROUND_HALF_EVEN (1: ties to even, 0: ties up), n = 0 none, n < 0 left shift
// with saturation; outputs clamp to [relu ? zp_y : 0, 255].
//
// Control: `start` (one-cycle pulse while idle) runs descriptors first_desc ..
// first_desc + num_desc - 1; `busy` is high until the last output is written.
// `done_count` counts finished descriptors since start. `err` (sticky until the
// next start): bit 0 unsupported layer kind, bit 1 weight buffer too small,
// bit 2 unknown op, bit 3 activation map too large; the run stops at the
// failing descriptor (err_desc). One stats word per descriptor: the cycles it
// took (s_we/s_waddr/s_wdata).

`timescale 1ns / 1ps

module cnn_compute_engine #(
    parameter int WORD_BITS = 64,          // parameter-memory word
    parameter int TILE_OC = 8,             // output-channel tile (PE rows)
    parameter int LANES = WORD_BITS / 8,   // = TILE_IC = TILE_DW = activation lanes
    parameter int BIAS_BITS = 16,
    parameter int P_ADDR_W = 20,           // parameter-memory word address
    parameter int A_ADDR_W = 20,           // activation-memory word address
    parameter int D_ADDR_W = 12,           // descriptor-memory address (32-bit fields)
    parameter int WBUF_DEPTH = 1024,       // weight-buffer entries
    parameter bit ROUND_HALF_EVEN = 1'b1,
    parameter int ACC_W = 32               // accumulator width
) (
    input  logic                   clk,
    input  logic                   rst_n,
    // control
    input  logic                   start,
    input  logic [15:0]            first_desc,
    input  logic [15:0]            num_desc,
    output logic                   busy,
    output logic [15:0]            done_count,
    output logic [7:0]             err,
    output logic [15:0]            err_desc,
    // descriptor memory read port (1-cycle latency)
    output logic                   d_re,
    output logic [D_ADDR_W-1:0]    d_raddr,
    input  logic [31:0]            d_rdata,
    // parameter memory read port (1-cycle latency)
    output logic                   p_re,
    output logic [P_ADDR_W-1:0]    p_raddr,
    input  logic [WORD_BITS-1:0]   p_rdata,
    // activation memory: two read ports (1-cycle latency), one write port
    output logic                   a_re0,
    output logic [A_ADDR_W-1:0]    a_raddr0,
    input  logic [8*LANES-1:0]     a_rdata0,
    output logic                   a_re1,
    output logic [A_ADDR_W-1:0]    a_raddr1,
    input  logic [8*LANES-1:0]     a_rdata1,
    output logic                   a_we,
    output logic [A_ADDR_W-1:0]    a_waddr,
    output logic [LANES-1:0]       a_wbe,
    output logic [8*LANES-1:0]     a_wdata,
    // per-descriptor statistics
    output logic                   s_we,
    output logic [15:0]            s_waddr,
    output logic [63:0]            s_wdata
);

  localparam int BIAS_LANES = WORD_BITS / BIAS_BITS;
  localparam int WB_W = (WBUF_DEPTH > 1) ? $clog2(WBUF_DEPTH) : 1;
  localparam int LANE_W = (LANES > 1) ? $clog2(LANES) : 1;  // a lane index
  localparam logic [1:0] OP_WEIGHTED = 2'd0, OP_ADD = 2'd1, OP_POOL = 2'd2;
  localparam logic [2:0] K_REGULAR = 3'd0, K_DEPTHWISE = 3'd1, K_POINTWISE = 3'd2,
                         K_LINEAR = 3'd3;

  typedef enum logic [3:0] {
    S_IDLE, S_DESC, S_REC, S_SETUP, S_WLOAD, S_BLOAD, S_SLOAD, S_CONV, S_ADD, S_POOL,
    S_DIV, S_POOLR, S_POOLW, S_DRAIN, S_END
  } state_t;

  state_t state_q;

  // ------------------------------------------------------------------ requantization
  // v: accumulator + bias (exact); n: shift (int8); result: the output code.
  function automatic logic [7:0] requant(input logic signed [63:0] v, input logic signed [7:0] n,
                                         input logic [7:0] zp, input logic relu);
    logic signed [63:0] q, r, lo;
    logic [63:0] rem, half;
    int k;
    if (n > 0) begin
      k = (n > 40) ? 40 : int'(n);
      q = v >>> k;
      rem = 64'(v - (q <<< k));
      half = 64'(1) << (k - 1);
      r = q + 64'((rem > half || (rem == half && (ROUND_HALF_EVEN ? q[0] : 1'b1))) ? 1 : 0);
    end else if (n == 0) begin
      r = v;
    end else begin
      k = -int'(n);
      if (v == 0) r = 0;
      else if (k >= 31) r = (v > 0) ? 64'sd1 <<< 40 : -(64'sd1 <<< 40);
      else r = v <<< k;
    end
    r = r + 64'($unsigned(zp));
    lo = relu ? 64'($unsigned(zp)) : 64'sd0;
    if (r < lo) r = lo;
    if (r > 64'sd255) r = 64'sd255;
    return r[7:0];
  endfunction

  // ------------------------------------------------------------------ descriptor
  // (not every field bit is used: reserved bits and fields of other ops)
  /* verilator lint_off UNUSEDSIGNAL */
  logic [16*32-1:0] desc_q;  // field f = bits [32f+31:32f] (packed: Icarus-safe selects)
  /* verilator lint_on UNUSEDSIGNAL */
  logic [15:0] cur_q, last_desc_q;
  logic [4:0]  di_q;          // descriptor field being issued
  logic        dv_q;          // a field read is in flight
  logic [3:0]  dv_idx_q;

  wire [1:0]  op      = desc_q[1:0];
  wire        per_ch  = desc_q[8];
  wire [31:0] rec_a   = desc_q[63:32];
  wire [31:0] w_base  = desc_q[95:64];
  wire [31:0] b_base  = desc_q[127:96];
  wire [31:0] in_base = desc_q[159:128];
  wire [31:0] in2_base = desc_q[191:160];
  wire [31:0] out_base = desc_q[223:192];
  wire [31:0] in_h    = desc_q[255:224];
  wire [31:0] in_w    = desc_q[287:256];
  wire [31:0] out_h   = desc_q[319:288];
  wire [31:0] out_w   = desc_q[351:320];
  wire [31:0] chans   = desc_q[383:352];
  wire [7:0]  za      = desc_q[391:384];
  wire [7:0]  zb      = desc_q[399:392];
  wire [7:0]  zy      = desc_q[407:400];
  wire        add_relu = desc_q[408];
  wire [4:0]  ka      = desc_q[420:416];
  wire [4:0]  kb      = desc_q[428:424];
  wire [4:0]  ky      = desc_q[436:432];
  wire [31:0] divisor = desc_q[479:448];

  // ------------------------------------------------------------------ record
  /* verilator lint_off UNUSEDSIGNAL */
  logic [3*64-1:0] rec_q;  // part p = bits [64p+63:64p] (the scale exponents unused)
  /* verilator lint_on UNUSEDSIGNAL */
  logic [1:0]  ri_q;
  logic        rv_q;
  logic [1:0]  rv_idx_q;

  wire signed [7:0] rec_shift = rec_q[7:0];
  wire [7:0]  zpx     = rec_q[15:8];
  wire [7:0]  zpy     = rec_q[23:16];
  wire        relu    = rec_q[24];
  wire [2:0]  kind    = rec_q[27:25];
  wire [23:0] oc_n    = rec_q[87:64];
  wire [23:0] ic_n    = rec_q[111:88];
  wire [7:0]  kh      = rec_q[135:128];
  wire [7:0]  kw      = rec_q[143:136];
  wire [7:0]  sh      = rec_q[151:144];
  wire [7:0]  sw      = rec_q[159:152];
  wire [7:0]  ph      = rec_q[167:160];
  wire [7:0]  pw      = rec_q[175:168];
  wire [7:0]  dh      = rec_q[183:176];
  wire [7:0]  dw      = rec_q[191:184];

  // derived per layer (S_SETUP)
  logic        is_dw_q;
  logic [31:0] tiles_q;       // output tiles (oc tiles, or channel tiles for depthwise)
  logic [31:0] ic_tiles_q;    // input-channel tiles summed per output (1 for depthwise)
  logic [31:0] tile_words_q;  // weight words per tile
  logic [31:0] tile_ch_q;     // channels per tile (TILE_OC, or LANES for depthwise)

  // ------------------------------------------------------------------ tile state
  logic [31:0] tile_q;        // current output tile
  logic [31:0] c0_q;          // first channel of the tile
  logic [31:0] ld_i_q;        // load issue counter
  logic        ld_v_q;        // a load read is in flight
  logic [31:0] ld_idx_q;      // index of the word arriving
  logic [WB_W-1:0] we_ent_q;  // weight-buffer entry being filled
  logic [$clog2(TILE_OC+1)-1:0] we_oc_q;  // word of the entry being filled

  logic [TILE_OC*WORD_BITS-1:0] wbuf[WBUF_DEPTH];
  logic signed [BIAS_BITS-1:0] bias_q[LANES];
  logic signed [7:0] shift_q[LANES];

  // bias words of the tile: channels c0 .. c0 + tile_ch - 1
  wire [31:0] bias_w0 = c0_q / 32'(BIAS_LANES);
  wire [31:0] bias_w1 = (c0_q + tile_ch_q - 1) / 32'(BIAS_LANES);

  // ------------------------------------------------------------------ conv step generator (S0)
  logic [31:0] oy_q, ox_q, icx_q, ky_q, kx_q, ent_q;
  logic        gen_q;         // steps are being issued
  logic signed [31:0] iy0_q, ix0_q;  // top-left input of the pixel's window

  wire signed [31:0] iy = iy0_q + $signed(ky_q * 32'(dh));
  wire signed [31:0] ix = ix0_q + $signed(kx_q * 32'(dw));
  wire pad = (iy < 0) || (iy >= $signed(in_h)) || (ix < 0) || (ix >= $signed(in_w));
  wire [31:0] ct = is_dw_q ? tile_q : icx_q;  // input channel tile of the step
  wire [A_ADDR_W-1:0] conv_addr = A_ADDR_W'(in_base + (ct * in_h + 32'(iy)) * in_w + 32'(ix));
  wire last_k = (kx_q == 32'(kw) - 1) && (ky_q == 32'(kh) - 1);
  wire last_step = last_k && (is_dw_q || icx_q == ic_tiles_q - 1);
  wire last_px = (ox_q == out_w - 1) && (oy_q == out_h - 1);

  // S1: registered memory outputs and the step's flags
  logic        s1_v_q, s1_pad_q, s1_first_q, s1_last_q;
  logic [31:0] s1_oy_q, s1_ox_q;
  logic [TILE_OC*WORD_BITS-1:0] wrow_q;

  // S2: finished accumulators
  logic        fin_v_q;
  logic [31:0] fin_oy_q, fin_ox_q;
  logic signed [ACC_W-1:0] acc_q[LANES];
  logic signed [ACC_W-1:0] fin_q[LANES];

  // MAC array (S1)
  logic signed [9:0]  xs[LANES];
  logic signed [ACC_W-1:0] term[LANES];

  always_comb begin
    for (int i = 0; i < LANES; i++) begin
      xs[i] = s1_pad_q ? 10'sd0 : $signed({2'b00, a_rdata0[8*i +: 8]}) - $signed({2'b00, zpx});
    end
  end

  // One PE row: sum over the lanes of (x - zp) * w; a padded step has no operand.
  function automatic logic signed [ACC_W-1:0] row_sum(input logic [8*LANES-1:0] x,
                                                      input logic padded, input logic [7:0] zp,
                                                      input logic [WORD_BITS-1:0] w);
    logic signed [ACC_W-1:0] sum;
    logic signed [9:0] xi;
    sum = '0;
    for (int i = 0; i < LANES; i++) begin
      xi = padded ? 10'sd0 : $signed({2'b00, x[8*i +: 8]}) - $signed({2'b00, zp});
      sum = sum + ACC_W'(xi * $signed(w[8*i +: 8]));
    end
    return sum;
  endfunction

  // (functions hold the per-lane temporaries: an always_comb never reads what it
  // writes, which Icarus would re-run without end)
  always_comb begin
    for (int l = 0; l < LANES; l++) begin
      if (is_dw_q) term[l] = ACC_W'(xs[l] * $signed(wrow_q[8*l +: 8]));
      else if (l < TILE_OC) term[l] = row_sum(a_rdata0, s1_pad_q, zpx,
                                               wrow_q[l*WORD_BITS +: WORD_BITS]);
      else term[l] = '0;
    end
  end

  // ------------------------------------------------------------------ add / pool
  logic [31:0] el_i_q;        // word issued (add: word index; pool: pixel index)
  logic [31:0] el_n_q;        // words (add) or pixels (pool) to go through
  logic [31:0] pc_q;          // pool: channel tile
  logic        e1_v_q, e1_last_q;
  logic [31:0] e1_idx_q;
  logic [31:0] psum_q[LANES];
  logic signed [47:0] dacc_q[LANES];  // pool: sum(x - zp)
  logic [31:0] dq_q[LANES], dr_q[LANES];
  logic [5:0]  dbit_q;
  logic [8*LANES-1:0] pool_y;  // the rounded averages of the channel tile (S_POOLR)

  // add: one lane, S = ((a - za) << ka) + ((b - zb) << kb), then the requantizer
  function automatic logic [7:0] add_code(input logic [7:0] a, input logic [7:0] b);
    logic signed [63:0] da, db;
    da = 64'($signed({1'b0, a}) - $signed({1'b0, za}));
    db = 64'($signed({1'b0, b}) - $signed({1'b0, zb}));
    return requant((da <<< ka) + (db <<< kb), 8'(ky), zy, add_relu);
  endfunction

  // pool: zp + round(acc / d) from the quotient q and remainder r of |acc| / d
  function automatic logic [7:0] pool_code(input logic [31:0] q, input logic [31:0] r,
                                           input logic negative);
    logic up;
    logic signed [63:0] y;
    up = ({1'b0, r, 1'b0} > {2'b00, divisor}) ||
         ({1'b0, r, 1'b0} == {2'b00, divisor} && (ROUND_HALF_EVEN ? q[0] : !negative));
    y = 64'(q) + 64'(up);
    if (negative) y = -y;
    y = y + 64'(za);
    if (y < 0) y = 0;
    if (y > 255) y = 255;
    return y[7:0];
  endfunction

  // (per-lane continuous assignments: Icarus 11 runs an always_comb that writes a
  // vector part by part again on its own writes, a zero-delay loop)
  logic [8*LANES-1:0] add_y;
  for (genvar l = 0; l < LANES; l++) begin : g_add_lane
    assign add_y[8*l +: 8] = add_code(a_rdata0[8*l +: 8], a_rdata1[8*l +: 8]);
  end


  // ------------------------------------------------------------------ outputs
  logic [31:0] cycles_q;
  logic [1:0]  drain_q;
  logic        start_q;

  // conv output word of the finished pixel
  wire [A_ADDR_W-1:0] conv_out_addr =
      A_ADDR_W'(out_base + ((c0_q / 32'(LANES)) * out_h + fin_oy_q) * out_w + fin_ox_q);
  wire [31:0] lane0 = is_dw_q ? 32'd0 : c0_q % 32'(LANES);

  // the finished pixel's output word, lane by lane: a lane of the tile gets its
  // requantized sum, a lane after the last output tile (padding channel) the zero point
  logic [8*LANES-1:0] conv_wdata;
  logic [LANES-1:0]   conv_wbe;
  for (genvar l = 0; l < LANES; l++) begin : g_out_lane
    wire        in_tile = is_dw_q || (32'(l) >= lane0 && 32'(l) < lane0 + 32'(TILE_OC));
    wire        pad_ch = !is_dw_q && tile_q == tiles_q - 1 && 32'(l) >= lane0 + 32'(TILE_OC);
    wire [LANE_W-1:0] src = LANE_W'(!in_tile ? 32'd0 : is_dw_q ? 32'(l) : 32'(l) - lane0);
    assign conv_wbe[l] = in_tile || pad_ch;
    assign conv_wdata[8*l +: 8] = !in_tile ? (pad_ch ? zpy : 8'd0) :
        requant(64'(fin_q[src]) + 64'(bias_q[src]), shift_q[src], zpy, relu);
  end

  // the write port (each output assigned once: no part-select writes, see g_add_lane)
  always_comb begin
    if (fin_v_q) begin
      a_we = 1'b1;
      a_waddr = conv_out_addr;
      a_wbe = conv_wbe;
      a_wdata = conv_wdata;
    end else if (state_q == S_ADD && e1_v_q) begin
      a_we = 1'b1;
      a_waddr = A_ADDR_W'(out_base + e1_idx_q);
      a_wbe = '1;
      a_wdata = add_y;
    end else if (state_q == S_POOLW) begin
      a_we = 1'b1;
      a_waddr = A_ADDR_W'(out_base + pc_q);
      a_wbe = '1;
      a_wdata = pool_y;
    end else begin
      a_we = 1'b0;
      a_waddr = '0;
      a_wbe = '0;
      a_wdata = '0;
    end
  end

  // read ports
  always_comb begin
    d_re = 1'b0;
    d_raddr = '0;
    p_re = 1'b0;
    p_raddr = '0;
    a_re0 = 1'b0;
    a_raddr0 = '0;
    a_re1 = 1'b0;
    a_raddr1 = '0;
    unique case (state_q)
      S_DESC: begin
        d_re = (di_q < 5'd16);
        d_raddr = D_ADDR_W'({cur_q, 4'b0000} + 20'(di_q[3:0]));
      end
      S_REC: begin
        p_re = (ri_q < 2'd3);
        p_raddr = P_ADDR_W'(rec_a + 32'(ri_q));
      end
      S_WLOAD: begin
        p_re = (ld_i_q < tile_words_q);
        p_raddr = P_ADDR_W'(w_base + tile_q * tile_words_q + ld_i_q);
      end
      S_BLOAD: begin
        p_re = (ld_i_q <= bias_w1 - bias_w0);
        p_raddr = P_ADDR_W'(b_base + bias_w0 + ld_i_q);
      end
      S_SLOAD: begin
        p_re = (ld_i_q == 0);
        p_raddr = P_ADDR_W'(rec_a + 32'd3 + c0_q / 32'(LANES));
      end
      S_CONV: begin
        a_re0 = gen_q && !pad;  // padding reads nothing (the operand is 0)
        a_raddr0 = conv_addr;
      end
      S_ADD: begin
        a_re0 = (el_i_q < el_n_q);
        a_raddr0 = A_ADDR_W'(in_base + el_i_q);
        a_re1 = (el_i_q < el_n_q);
        a_raddr1 = A_ADDR_W'(in2_base + el_i_q);
      end
      S_POOL: begin
        a_re0 = (el_i_q < el_n_q);
        a_raddr0 = A_ADDR_W'(in_base + pc_q * el_n_q + el_i_q);
      end
      default: ;
    endcase
  end

  assign busy = (state_q != S_IDLE);
  assign s_we = (state_q == S_END);
  assign s_waddr = cur_q;
  assign s_wdata = 64'(cycles_q);

  // ------------------------------------------------------------------ control
  always_ff @(posedge clk) begin
    if (!rst_n) begin
      state_q <= S_IDLE;
      done_count <= '0;
      err <= '0;
      err_desc <= '0;
      cur_q <= '0;
      last_desc_q <= '0;
      gen_q <= 1'b0;
      s1_v_q <= 1'b0;
      fin_v_q <= 1'b0;
      e1_v_q <= 1'b0;
      dv_q <= 1'b0;
      rv_q <= 1'b0;
      ld_v_q <= 1'b0;
      start_q <= 1'b0;
    end else begin
      cycles_q <= cycles_q + 32'd1;
      start_q <= start;
      // defaults of the one-cycle pipeline flags
      dv_q <= 1'b0;
      rv_q <= 1'b0;
      ld_v_q <= 1'b0;
      s1_v_q <= 1'b0;
      fin_v_q <= 1'b0;
      e1_v_q <= 1'b0;

      unique case (state_q)
        S_IDLE: begin
          if (start && !start_q && num_desc != 16'd0) begin
            cur_q <= first_desc;
            last_desc_q <= first_desc + num_desc - 16'd1;
            done_count <= '0;
            err <= '0;
            err_desc <= '0;
            di_q <= '0;
            cycles_q <= '0;
            state_q <= S_DESC;
          end
        end

        // 16 descriptor fields, one read per cycle
        S_DESC: begin
          if (di_q < 5'd16) begin
            di_q <= di_q + 5'd1;
            dv_q <= 1'b1;
            dv_idx_q <= di_q[3:0];
          end
          if (dv_q) desc_q[32*dv_idx_q +: 32] <= d_rdata;
          if (dv_q && dv_idx_q == 4'd15) begin
            ri_q <= '0;
            el_i_q <= '0;
            pc_q <= '0;
            unique case (op)
              OP_WEIGHTED: state_q <= S_REC;
              OP_ADD: begin
                el_n_q <= ((chans + 32'(LANES) - 1) / 32'(LANES)) * in_h * in_w;
                state_q <= S_ADD;
              end
              OP_POOL: begin
                el_n_q <= in_h * in_w;
                state_q <= S_POOL;
              end
              default: begin
                err[2] <= 1'b1;
                err_desc <= cur_q;
                state_q <= S_IDLE;
              end
            endcase
          end
        end

        // the three 64-bit record parts (control, channels, kernel)
        S_REC: begin
          if (ri_q < 2'd3) begin
            ri_q <= ri_q + 2'd1;
            rv_q <= 1'b1;
            rv_idx_q <= ri_q;
          end
          if (rv_q) rec_q[64*rv_idx_q +: 64] <= p_rdata[63:0];
          if (rv_q && rv_idx_q == 2'd2) state_q <= S_SETUP;
        end

        S_SETUP: begin
          is_dw_q <= (kind == K_DEPTHWISE);
          tile_q <= '0;
          c0_q <= '0;
          if (kind == K_DEPTHWISE) begin
            tiles_q <= (32'(oc_n) + 32'(LANES) - 1) / 32'(LANES);
            ic_tiles_q <= 32'd1;
            tile_words_q <= 32'(kh) * 32'(kw);
            tile_ch_q <= 32'(LANES);
          end else begin
            tiles_q <= (32'(oc_n) + 32'(TILE_OC) - 1) / 32'(TILE_OC);
            ic_tiles_q <= (32'(ic_n) + 32'(LANES) - 1) / 32'(LANES);
            tile_words_q <= ((32'(ic_n) + 32'(LANES) - 1) / 32'(LANES)) * 32'(kh) * 32'(kw)
                            * 32'(TILE_OC);
            tile_ch_q <= 32'(TILE_OC);
          end
          ld_i_q <= '0;
          we_ent_q <= '0;
          we_oc_q <= '0;
          if (kind != K_REGULAR && kind != K_DEPTHWISE && kind != K_POINTWISE &&
              kind != K_LINEAR) begin
            err[0] <= 1'b1;
            err_desc <= cur_q;
            state_q <= S_IDLE;
          end else if (((kind == K_DEPTHWISE) ? 32'(kh) * 32'(kw)
                        : ((32'(ic_n) + 32'(LANES) - 1) / 32'(LANES)) * 32'(kh) * 32'(kw))
                       > 32'(WBUF_DEPTH)) begin
            err[1] <= 1'b1;
            err_desc <= cur_q;
            state_q <= S_IDLE;
          end else begin
            state_q <= S_WLOAD;
          end
        end

        // the tile's weights into the weight buffer, one word per cycle
        S_WLOAD: begin
          if (ld_i_q < tile_words_q) begin
            ld_i_q <= ld_i_q + 32'd1;
            ld_v_q <= 1'b1;
          end
          if (ld_v_q) begin
            wbuf[we_ent_q][32'(we_oc_q) * WORD_BITS +: WORD_BITS] <= p_rdata;
            if (is_dw_q || 32'(we_oc_q) == TILE_OC - 1) begin
              we_oc_q <= '0;
              we_ent_q <= we_ent_q + WB_W'(1);
            end else begin
              we_oc_q <= we_oc_q + 1'b1;
            end
          end
          if (ld_v_q && ld_i_q == tile_words_q) begin
            ld_i_q <= '0;
            state_q <= S_BLOAD;
          end
        end

        // the tile's biases: bias words bias_w0 .. bias_w1
        S_BLOAD: begin
          if (ld_i_q <= bias_w1 - bias_w0) begin
            ld_i_q <= ld_i_q + 32'd1;
            ld_v_q <= 1'b1;
            ld_idx_q <= bias_w0 + ld_i_q;
          end
          if (ld_v_q) begin
            for (int i = 0; i < LANES; i++) begin
              if (32'(i) < tile_ch_q && (c0_q + 32'(i)) / 32'(BIAS_LANES) == ld_idx_q) begin
                bias_q[i] <= p_rdata[BIAS_BITS * ((c0_q + 32'(i)) % 32'(BIAS_LANES)) +: BIAS_BITS];
              end
            end
          end
          if (ld_v_q && ld_idx_q == bias_w1) begin
            ld_i_q <= '0;
            if (per_ch) begin
              state_q <= S_SLOAD;
            end else begin
              for (int i = 0; i < LANES; i++) shift_q[i] <= rec_shift;
              state_q <= S_CONV;
            end
            oy_q <= '0;
            ox_q <= '0;
            icx_q <= '0;
            ky_q <= '0;
            kx_q <= '0;
            ent_q <= '0;
            iy0_q <= -$signed(32'(ph));
            ix0_q <= -$signed(32'(pw));
            gen_q <= !per_ch;
          end
        end

        // per-channel shifts: one record word holds the tile's lanes
        S_SLOAD: begin
          if (ld_i_q == 0) begin
            ld_i_q <= 32'd1;
            ld_v_q <= 1'b1;
          end
          if (ld_v_q) begin
            for (int i = 0; i < LANES; i++) begin
              if (32'(i) < tile_ch_q) shift_q[i] <= p_rdata[8 * ((c0_q + 32'(i)) % 32'(LANES)) +: 8];
            end
            gen_q <= 1'b1;
            state_q <= S_CONV;
          end
        end

        // one (pixel, ic tile, kh, kw) step per cycle
        S_CONV: begin
          if (gen_q) begin
            s1_v_q <= 1'b1;
            s1_pad_q <= pad;
            s1_first_q <= (ent_q == 0);
            s1_last_q <= last_step;
            s1_oy_q <= oy_q;
            s1_ox_q <= ox_q;
            wrow_q <= wbuf[WB_W'(ent_q)];
            if (last_step) begin
              ent_q <= '0;
              kx_q <= '0;
              ky_q <= '0;
              icx_q <= '0;
              if (last_px) begin
                gen_q <= 1'b0;
              end else if (ox_q == out_w - 1) begin
                ox_q <= '0;
                oy_q <= oy_q + 32'd1;
                ix0_q <= -$signed(32'(pw));
                iy0_q <= iy0_q + $signed(32'(sh));
              end else begin
                ox_q <= ox_q + 32'd1;
                ix0_q <= ix0_q + $signed(32'(sw));
              end
            end else begin
              ent_q <= ent_q + 32'd1;
              if (kx_q != 32'(kw) - 1) begin
                kx_q <= kx_q + 32'd1;
              end else begin
                kx_q <= '0;
                if (ky_q != 32'(kh) - 1) begin
                  ky_q <= ky_q + 32'd1;
                end else begin
                  ky_q <= '0;
                  icx_q <= icx_q + 32'd1;
                end
              end
            end
          end
          if (s1_v_q) begin
            for (int l = 0; l < LANES; l++) begin
              acc_q[l] <= (s1_first_q ? '0 : acc_q[l]) + term[l];
              fin_q[l] <= (s1_first_q ? '0 : acc_q[l]) + term[l];
            end
            fin_v_q <= s1_last_q;
            fin_oy_q <= s1_oy_q;
            fin_ox_q <= s1_ox_q;
          end
          if (!gen_q && !s1_v_q) begin
            drain_q <= 2'd1;
            state_q <= S_DRAIN;
          end
        end

        // residual add: one word per cycle
        S_ADD: begin
          if (el_i_q < el_n_q) begin
            el_i_q <= el_i_q + 32'd1;
            e1_v_q <= 1'b1;
            e1_idx_q <= el_i_q;
          end
          if (!(el_i_q < el_n_q) && !e1_v_q) state_q <= S_END;
        end

        // global average pool: sum one channel tile over the map
        S_POOL: begin
          if (el_i_q < el_n_q) begin
            el_i_q <= el_i_q + 32'd1;
            e1_v_q <= 1'b1;
            e1_last_q <= (el_i_q == el_n_q - 1);
            e1_idx_q <= el_i_q;
          end
          if (e1_v_q) begin
            for (int l = 0; l < LANES; l++) begin
              psum_q[l] <= ((e1_idx_q == 0) ? 32'd0 : psum_q[l]) + 32'(a_rdata0[8*l +: 8]);
            end
          end
          if (e1_v_q && e1_last_q) begin
            for (int l = 0; l < LANES; l++) begin
              dacc_q[l] <= 48'((e1_idx_q == 0) ? 32'd0 : psum_q[l]) + 48'(a_rdata0[8*l +: 8])
                           - 48'(za) * 48'(divisor);
            end
            dbit_q <= 6'd32;
            state_q <= S_DIV;
          end
        end

        // |acc| / d, restoring division, one quotient bit per cycle for every lane
        S_DIV: begin
          if (dbit_q == 6'd32) begin
            for (int l = 0; l < LANES; l++) begin
              dq_q[l] <= 32'((dacc_q[l] < 0) ? -dacc_q[l] : dacc_q[l]);
              dr_q[l] <= '0;
            end
            dbit_q <= 6'd31;
          end else begin
            for (int l = 0; l < LANES; l++) begin
              logic [32:0] rem;
              rem = {dr_q[l], dq_q[l][31]};
              if (rem >= 33'(divisor)) begin
                dr_q[l] <= 32'(rem - 33'(divisor));
                dq_q[l] <= {dq_q[l][30:0], 1'b1};
              end else begin
                dr_q[l] <= rem[31:0];
                dq_q[l] <= {dq_q[l][30:0], 1'b0};
              end
            end
            if (dbit_q == 6'd0) state_q <= S_POOLR;
            else dbit_q <= dbit_q - 6'd1;
          end
        end

        // round the quotients (registered: no combinational loop through the divider)
        S_POOLR: begin
          for (int l = 0; l < LANES; l++) pool_y[8*l +: 8] <= pool_code(dq_q[l], dr_q[l],
                                                                       dacc_q[l] < 0);
          state_q <= S_POOLW;
        end

        // write the channel tile's averages, then the next tile
        S_POOLW: begin
          if (pc_q + 32'd1 < (chans + 32'(LANES) - 1) / 32'(LANES)) begin
            pc_q <= pc_q + 32'd1;
            el_i_q <= '0;
            state_q <= S_POOL;
          end else begin
            state_q <= S_END;
          end
        end

        // the last pixel's requantization and write, then the next tile
        S_DRAIN: begin
          if (drain_q != 2'd0) begin
            drain_q <= drain_q - 2'd1;
          end else if (tile_q + 32'd1 < tiles_q) begin
            tile_q <= tile_q + 32'd1;
            c0_q <= c0_q + tile_ch_q;
            ld_i_q <= '0;
            we_ent_q <= '0;
            we_oc_q <= '0;
            state_q <= S_WLOAD;
          end else begin
            state_q <= S_END;
          end
        end

        // stats word written (s_we), then the next descriptor
        S_END: begin
          done_count <= done_count + 16'd1;
          cycles_q <= '0;
          if (cur_q == last_desc_q) begin
            state_q <= S_IDLE;
          end else begin
            cur_q <= cur_q + 16'd1;
            di_q <= '0;
            state_q <= S_DESC;
          end
        end

        default: state_q <= S_IDLE;
      endcase
    end
  end

endmodule
